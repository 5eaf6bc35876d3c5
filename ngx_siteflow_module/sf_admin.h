
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_ADMIN_H_INCLUDED_
#define _SF_ADMIN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * The pure parts of the Site Flow Log and the admin API: URL redaction,
 * body caps, "since" parsing, timestamps, routing of admin paths and the
 * Prometheus text exposition format.  libc only, never nginx headers.
 */


/* admin routes, relative to the location prefix */
typedef enum {
    SF_ADMIN_NOT_FOUND = 0,
    SF_ADMIN_CONSOLE,           /* "" */
    SF_ADMIN_LOG,               /* "log" */
    SF_ADMIN_LOG_ENABLED,       /* "log/enabled" */
    SF_ADMIN_QUEUE,             /* "queue" */
    SF_ADMIN_QUEUE_RETRY,       /* "queue/{id}/retry", id digits */
    SF_ADMIN_SEND,              /* "send/{printnow_order_id}" */
    SF_ADMIN_METRICS,           /* "metrics" */
    SF_ADMIN_BAD_ID             /* retry or send with an invalid id */
} sf_admin_route_e;

#define SF_ADMIN_ORDER_ID_MAX  64


/*
 * Routes path[0 .. len - 1] (the URI after the location prefix, leading
 * slashes ignored, one trailing slash allowed).  For QUEUE_RETRY *id gets
 * the job id; for SEND *arg and *arg_len the order id (1 to
 * SF_ADMIN_ORDER_ID_MAX of A-Z a-z 0-9 "-" "_" "."), pointing into path.
 */
sf_admin_route_e sf_admin_route(const char *path, size_t len, uint64_t *id,
    const char **arg, size_t *arg_len);


/* bytes sf_admin_redact_url() may need for a URL of n bytes */
#define SF_ADMIN_REDACT_SIZE(n)  ((n) * 2 + 8)

/*
 * Copies url to out (size bytes, not NUL-terminated, cut if too small)
 * with the values of secret-bearing query arguments replaced by "***":
 * token, access_token, api_key, apikey, key, secret, password, signature
 * (names compared case-insensitively), and any user:password@ in front
 * of the host replaced by "***@".  Returns the bytes written.
 */
size_t sf_admin_redact_url(const char *url, size_t len, char *out,
    size_t size);

/*
 * Parses "since": milliseconds since the epoch (digits only), or
 * ISO-8601 "YYYY-MM-DD", "YYYY-MM-DDThh:mm[:ss[.fff]]" with an optional
 * "Z" or "+hh:mm"/"-hh:mm" (no offset: UTC; a space may replace "T").
 * 0 and *ms set, or -1.
 */
int sf_admin_parse_since(const char *s, size_t len, uint64_t *ms);

/* "YYYY-MM-DDThh:mm:ss.fffZ" and a NUL: SF_ADMIN_TIME_LEN + 1 bytes */
#define SF_ADMIN_TIME_LEN  24

size_t sf_admin_format_time(uint64_t ms, char *out);


/*
 * Prometheus text exposition format 0.0.4 into a caller buffer.  On
 * overflow the writer stops and sets overflow; the caller checks it once
 * at the end.
 */
typedef struct {
    char         *buf;
    size_t        size;
    size_t        len;
    int           overflow;
} sf_prom_t;

void sf_prom_init(sf_prom_t *p, char *buf, size_t size);

/* "# HELP name help" and "# TYPE name type" */
void sf_prom_family(sf_prom_t *p, const char *name, const char *type,
    const char *help);

/* name{label="value"} v, or name v when label is NULL */
void sf_prom_sample(sf_prom_t *p, const char *name, const char *label,
    const char *value, uint64_t v);

/* name{label1="value1",label2="value2"} v */
void sf_prom_sample2(sf_prom_t *p, const char *name, const char *label1,
    const char *value1, const char *label2, const char *value2, uint64_t v);

/*
 * A histogram in seconds from millisecond data: bounds_ms[0 .. n - 1]
 * ascending, counts[0 .. n] per bucket (not cumulative, counts[n] above
 * the last bound), sum_ms; writes name_bucket{label="value",le=...},
 * name_sum and name_count (label may be NULL).
 */
void sf_prom_histogram(sf_prom_t *p, const char *name, const char *label,
    const char *value, const uint64_t *bounds_ms, const uint64_t *counts,
    size_t n, uint64_t sum_ms);


#endif /* _SF_ADMIN_H_INCLUDED_ */
