
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_SHIP_H_INCLUDED_
#define _SF_SHIP_H_INCLUDED_


#include <stddef.h>


/*
 * Validation of a SiteFlow Ship API shipment request body (the JSON that
 * SiteFlow POSTs to <endpoint>/shipment).  Pure C: libc and jansson only,
 * no global state, safe to call from any thread.  The checks are listed
 * at the top of sf_ship.c.
 */


/* limits on the work done for one body; exceeding them is a problem */
#define SF_SHIP_MAX_DEPTH       32     /* nesting of objects and arrays */
#define SF_SHIP_MAX_PACKAGES    1000   /* packages[] entries */
#define SF_SHIP_MAX_ITEMS       1000   /* items[] entries per package */


typedef enum {
    SF_SHIP_OK = 0,          /* body valid, msg is "" */
    SF_SHIP_INVALID,         /* parsed, but problems listed in msg */
    SF_SHIP_BAD_JSON,        /* empty, not JSON, too deep or not an object */
    SF_SHIP_ERROR            /* internal (allocation) */
} sf_ship_rc_t;


/*
 * Validates body[0 .. len - 1] (not NUL-terminated).
 *
 * msg receives a NUL-terminated, valid UTF-8 message without control
 * characters; it never exceeds msg_size bytes including the NUL (msg may
 * be NULL if msg_size is 0).  For SF_SHIP_INVALID it lists the problems
 * joined with "; ", each naming the JSON path; when they do not all fit,
 * the message is cut after a whole problem and ends with "; ..." (it is
 * just "..." if no problem fits that way, "" if msg_size < 4); other
 * messages are cut at a character boundary and end with "...".
 * *nproblems (if nproblems is not NULL) is set to the total
 * number of problems, including those that did not fit: 0 for SF_SHIP_OK
 * and SF_SHIP_ERROR, 1 for SF_SHIP_BAD_JSON.
 *
 * The caller bounds len (the request body size limit).
 */
sf_ship_rc_t sf_ship_validate(const char *body, size_t len, char *msg,
    size_t msg_size, unsigned *nproblems);


/*
 * sf_ship_validate() that also gives what sf_ship_order_number() would
 * find in the body, when the body is a JSON object (SF_SHIP_OK or
 * SF_SHIP_INVALID), without reading it again: *order_len is set to its
 * length (0 for none, and for the other results).
 */
sf_ship_rc_t sf_ship_validate_order(const char *body, size_t len, char *msg,
    size_t msg_size, unsigned *nproblems, char *order, size_t order_size,
    size_t *order_len);

/*
 * The top-level "orderNumber" of a shipment request body, for the Site
 * Flow Log's order filter: if body[0 .. len - 1] is valid JSON (duplicate
 * keys allowed, the last one counts) and an object at most
 * SF_SHIP_MAX_DEPTH deep whose "orderNumber" is a string or an integer,
 * writes the string (unescaped) or the integer in decimal to out, cut at
 * size bytes, not NUL-terminated, and returns its length; otherwise
 * returns 0.
 */
size_t sf_ship_order_number(const char *body, size_t len, char *out,
    size_t size);


/*
 * Writes the JSON string escaping of in[0 .. len - 1] (without the
 * surrounding quotes) to out: '"' and '\\' are escaped, control characters
 * and DEL become \b, \f, \n, \r, \t or \u00XX, valid UTF-8 is copied as
 * is, and each maximal invalid UTF-8 subsequence becomes U+FFFD.  Output
 * is cut only between whole escapes/characters; out is NUL-terminated if
 * out_size > 0.  Returns the bytes written, excluding the NUL.
 */
size_t sf_ship_json_escape(const char *in, size_t len, char *out,
    size_t out_size);

/*
 * Returns the bytes sf_ship_json_escape() needs for in[0 .. len - 1],
 * excluding the NUL: out_size must be at least this plus 1 for no cut.
 */
size_t sf_ship_json_escaped_len(const char *in, size_t len);


#endif /* _SF_SHIP_H_INCLUDED_ */
