
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_PATH_H_INCLUDED_
#define _SF_PATH_H_INCLUDED_


#include <stddef.h>


/*
 * Upstream URL paths built from ids (PrintNow order and item ids, SiteFlow
 * order ids, sourceOrderIds): every id is one path segment, percent-escaped
 * so that it can hold no "/", "?", "#" or "%" of its own, and an id that is
 * empty, "." or ".." (which a server, or libcurl without
 * CURLOPT_PATH_AS_IS, would resolve as a dot segment) is refused.  Pure C.
 */


typedef enum {
    SF_PATH_OK = 0,
    SF_PATH_EMPTY,           /* the id is empty */
    SF_PATH_DOT,             /* the id is "." or ".." */
    SF_PATH_NO_ROOM          /* the path does not fit the buffer */
} sf_path_rc_t;


/* whether an id may be a path segment: SF_PATH_OK, _EMPTY or _DOT */
sf_path_rc_t sf_path_segment_check(const char *id, size_t len);

/*
 * appends the id as one escaped segment at buf + *pos (size bytes in all,
 * always NUL-terminated when room was left); *pos moves past it.  Every
 * byte but ALPHA, DIGIT, "-", ".", "_" and "~" becomes %XX.
 */
sf_path_rc_t sf_path_append_segment(char *buf, size_t size, size_t *pos,
    const char *id, size_t len);

/* appends literal text (the fixed parts of a path) */
sf_path_rc_t sf_path_append(char *buf, size_t size, size_t *pos,
    const char *text);

/*
 * 1 if a path (up to its "?" or "#") has no "." or ".." segment, in
 * clear or percent-escaped ("%2e", ".%2E", ...); else 0.  The last
 * guard before a request leaves.
 */
int sf_path_is_clean(const char *path, size_t len);

/* a short English text for a refusal: "is empty", "is \".\" or \"..\"" */
const char *sf_path_rc_text(sf_path_rc_t rc);


#endif /* _SF_PATH_H_INCLUDED_ */
