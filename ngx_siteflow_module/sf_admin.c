
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * The pure parts of the Site Flow Log and the admin API; see sf_admin.h.
 */


#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sf_admin.h"


static int sf_admin_segment(const char *p, size_t len, const char *s);
static int sf_admin_secret_arg(const char *name, size_t len);
static size_t sf_admin_put(char *out, size_t size, size_t n, const char *s,
    size_t len);
static int sf_admin_num(const char *s, size_t len, size_t *i, size_t digits,
    unsigned *v);
static int64_t sf_admin_days(int64_t y, unsigned m, unsigned d);
static void sf_admin_digits(char *out, unsigned v, unsigned n);
static void sf_prom_put(sf_prom_t *p, const char *s, size_t len);
static void sf_prom_str(sf_prom_t *p, const char *s);
static void sf_prom_escaped(sf_prom_t *p, const char *s, int label);
static void sf_prom_u64(sf_prom_t *p, uint64_t v);
static void sf_prom_seconds(sf_prom_t *p, uint64_t ms);


static const char  *sf_admin_secret_args[] = {
    "token", "access_token", "api_key", "apikey", "key", "secret",
    "password", "signature", NULL
};


static int
sf_admin_segment(const char *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}


sf_admin_route_e
sf_admin_route(const char *path, size_t len, uint64_t *id, const char **arg,
    size_t *arg_len)
{
    char         c;
    size_t       i, n, seg_len[4];
    uint64_t     v;
    const char  *seg[4], *end;

    while (len && path[0] == '/') {
        path++;
        len--;
    }

    if (len && path[len - 1] == '/') {
        len--;
    }

    if (len == 0) {
        return SF_ADMIN_CONSOLE;
    }

    /* up to four segments; more (or an empty one) is not a route */

    n = 0;
    end = path + len;

    while (path < end) {
        if (n == 4) {
            return SF_ADMIN_NOT_FOUND;
        }

        seg[n] = path;

        while (path < end && *path != '/') {
            path++;
        }

        seg_len[n] = path - seg[n];

        if (seg_len[n] == 0) {
            return SF_ADMIN_NOT_FOUND;
        }

        n++;

        if (path < end) {
            path++;

            if (path == end) {
                return SF_ADMIN_NOT_FOUND;
            }
        }
    }

    if (n == 1) {
        if (sf_admin_segment(seg[0], seg_len[0], "log")) {
            return SF_ADMIN_LOG;
        }

        if (sf_admin_segment(seg[0], seg_len[0], "queue")) {
            return SF_ADMIN_QUEUE;
        }

        if (sf_admin_segment(seg[0], seg_len[0], "metrics")) {
            return SF_ADMIN_METRICS;
        }

        return SF_ADMIN_NOT_FOUND;
    }

    if (n == 2 && sf_admin_segment(seg[0], seg_len[0], "log")
        && sf_admin_segment(seg[1], seg_len[1], "enabled"))
    {
        return SF_ADMIN_LOG_ENABLED;
    }

    if (n == 2 && sf_admin_segment(seg[0], seg_len[0], "send")) {

        if (seg_len[1] > SF_ADMIN_ORDER_ID_MAX) {
            return SF_ADMIN_BAD_ID;
        }

        for (i = 0; i < seg_len[1]; i++) {
            c = seg[1][i];

            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                  || (c >= '0' && c <= '9') || c == '-' || c == '_'
                  || c == '.'))
            {
                return SF_ADMIN_BAD_ID;
            }
        }

        if (arg != NULL) {
            *arg = seg[1];
            *arg_len = seg_len[1];
        }

        return SF_ADMIN_SEND;
    }

    if (n == 3 && sf_admin_segment(seg[0], seg_len[0], "queue")
        && sf_admin_segment(seg[2], seg_len[2], "retry"))
    {
        if (seg_len[1] > 19) {
            return SF_ADMIN_BAD_ID;
        }

        v = 0;

        for (i = 0; i < seg_len[1]; i++) {
            if (seg[1][i] < '0' || seg[1][i] > '9') {
                return SF_ADMIN_BAD_ID;
            }

            v = v * 10 + (seg[1][i] - '0');
        }

        if (v == 0) {
            return SF_ADMIN_BAD_ID;
        }

        if (id != NULL) {
            *id = v;
        }

        return SF_ADMIN_QUEUE_RETRY;
    }

    return SF_ADMIN_NOT_FOUND;
}


static int
sf_admin_secret_arg(const char *name, size_t len)
{
    size_t  i;

    for (i = 0; sf_admin_secret_args[i] != NULL; i++) {
        if (len == strlen(sf_admin_secret_args[i])
            && strncasecmp(name, sf_admin_secret_args[i], len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static size_t
sf_admin_put(char *out, size_t size, size_t n, const char *s, size_t len)
{
    if (n >= size) {
        return n;
    }

    if (len > size - n) {
        len = size - n;
    }

    memcpy(out + n, s, len);

    return n + len;
}


size_t
sf_admin_redact_url(const char *url, size_t len, char *out, size_t size)
{
    char         c;
    size_t       n, i, k, start, name_end, at, slash;
    const char  *q, *scheme;

    n = 0;
    i = 0;

    /*
     * user:password@ of an absolute URL; a scheme only at the start:
     * "http:" in a query is not one
     */

    for (k = 0; k < len; k++) {
        c = url[k];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (k > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-'
                            || c == '.'))))
        {
            break;
        }
    }

    scheme = (k > 0 && k < len && url[k] == ':') ? url + k : NULL;

    if (scheme != NULL && (size_t) (scheme - url) + 3 <= len
        && scheme[1] == '/' && scheme[2] == '/')
    {
        start = scheme - url + 3;
        slash = start;

        while (slash < len && url[slash] != '/' && url[slash] != '?'
               && url[slash] != '#')
        {
            slash++;
        }

        at = slash;

        while (at > start && url[at - 1] != '@') {
            at--;
        }

        if (at > start) {
            n = sf_admin_put(out, size, n, url, start);
            n = sf_admin_put(out, size, n, "***@", 4);
            i = at;
        }
    }

    q = memchr(url + i, '?', len - i);

    if (q == NULL) {
        return sf_admin_put(out, size, n, url + i, len - i);
    }

    n = sf_admin_put(out, size, n, url + i, q - (url + i) + 1);
    i = q - url + 1;

    while (i < len) {
        start = i;

        /*
         * no fragment here: in a request line "#" is part of the query,
         * and nginx finds "&token=" after it as well
         */

        while (i < len && url[i] != '&' && url[i] != ';') {
            i++;
        }

        name_end = start;

        while (name_end < i && url[name_end] != '=') {
            name_end++;
        }

        if (name_end < i
            && sf_admin_secret_arg(url + start, name_end - start))
        {
            n = sf_admin_put(out, size, n, url + start,
                             name_end - start + 1);
            n = sf_admin_put(out, size, n, "***", 3);

        } else {
            n = sf_admin_put(out, size, n, url + start, i - start);
        }

        if (i < len) {
            n = sf_admin_put(out, size, n, url + i, 1);
            i++;
        }
    }

    return n;
}


static int
sf_admin_num(const char *s, size_t len, size_t *i, size_t digits,
    unsigned *v)
{
    size_t  k;

    if (*i + digits > len) {
        return -1;
    }

    *v = 0;

    for (k = 0; k < digits; k++) {
        if (s[*i + k] < '0' || s[*i + k] > '9') {
            return -1;
        }

        *v = *v * 10 + (s[*i + k] - '0');
    }

    *i += digits;

    return 0;
}


/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */

static int64_t
sf_admin_days(int64_t y, unsigned m, unsigned d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}


int
sf_admin_parse_since(const char *s, size_t len, uint64_t *ms)
{
    size_t    i;
    int64_t   t, off;
    unsigned  y, mo, d, h, mi, sec, frac, oh, om, k;

    if (len == 0 || len > 40) {
        return -1;
    }

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) { /* void */ }

    if (i == len) {
        if (len > 15) {
            return -1;
        }

        t = 0;

        for (i = 0; i < len; i++) {
            t = t * 10 + (s[i] - '0');
        }

        *ms = (uint64_t) t;
        return 0;
    }

    i = 0;
    h = mi = sec = frac = 0;
    off = 0;

    if (sf_admin_num(s, len, &i, 4, &y) != 0
        || i >= len || s[i++] != '-'
        || sf_admin_num(s, len, &i, 2, &mo) != 0
        || i >= len || s[i++] != '-'
        || sf_admin_num(s, len, &i, 2, &d) != 0)
    {
        return -1;
    }

    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31) {
        return -1;
    }

    if (i < len && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        i++;

        if (sf_admin_num(s, len, &i, 2, &h) != 0
            || i >= len || s[i++] != ':'
            || sf_admin_num(s, len, &i, 2, &mi) != 0)
        {
            return -1;
        }

        if (i < len && s[i] == ':') {
            i++;

            if (sf_admin_num(s, len, &i, 2, &sec) != 0) {
                return -1;
            }

            if (i < len && (s[i] == '.' || s[i] == ',')) {
                i++;

                for (k = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                    if (k < 3) {
                        frac = frac * 10 + (s[i] - '0');
                        k++;
                    }
                }

                if (k == 0) {
                    return -1;
                }

                while (k++ < 3) {
                    frac *= 10;
                }
            }
        }

        if (h > 23 || mi > 59 || sec > 60) {
            return -1;
        }

        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
            i++;

        } else if (i < len && (s[i] == '+' || s[i] == '-')) {
            k = (s[i++] == '-');

            if (sf_admin_num(s, len, &i, 2, &oh) != 0) {
                return -1;
            }

            if (i < len && s[i] == ':') {
                i++;
            }

            if (sf_admin_num(s, len, &i, 2, &om) != 0 || oh > 23
                || om > 59)
            {
                return -1;
            }

            off = (int64_t) (oh * 60 + om) * 60000;

            if (k) {
                off = -off;
            }
        }
    }

    if (i != len) {
        return -1;
    }

    t = sf_admin_days(y, mo, d) * 86400000
        + (int64_t) (h * 3600 + mi * 60 + sec) * 1000 + frac - off;

    if (t < 0) {
        return -1;
    }

    *ms = (uint64_t) t;

    return 0;
}


static void
sf_admin_digits(char *out, unsigned v, unsigned n)
{
    while (n--) {
        out[n] = (char) ('0' + v % 10);
        v /= 10;
    }
}


size_t
sf_admin_format_time(uint64_t ms, char *out)
{
    int64_t    days, z, era, y;
    unsigned   doe, yoe, doy, mp, d, m;
    uint64_t   s;

    s = ms / 1000;
    days = (int64_t) (s / 86400);

    /* civil from days (H. Hinnant) */

    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned) (z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = (int64_t) yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    sf_admin_digits(out, (unsigned) (y % 10000), 4);
    out[4] = '-';
    sf_admin_digits(out + 5, m, 2);
    out[7] = '-';
    sf_admin_digits(out + 8, d, 2);
    out[10] = 'T';
    sf_admin_digits(out + 11, (unsigned) (s % 86400 / 3600), 2);
    out[13] = ':';
    sf_admin_digits(out + 14, (unsigned) (s % 3600 / 60), 2);
    out[16] = ':';
    sf_admin_digits(out + 17, (unsigned) (s % 60), 2);
    out[19] = '.';
    sf_admin_digits(out + 20, (unsigned) (ms % 1000), 3);
    out[23] = 'Z';
    out[24] = '\0';

    return SF_ADMIN_TIME_LEN;
}


void
sf_prom_init(sf_prom_t *p, char *buf, size_t size)
{
    p->buf = buf;
    p->size = size;
    p->len = 0;
    p->overflow = 0;
}


static void
sf_prom_put(sf_prom_t *p, const char *s, size_t len)
{
    if (p->overflow || len > p->size - p->len) {
        p->overflow = 1;
        return;
    }

    memcpy(p->buf + p->len, s, len);
    p->len += len;
}


static void
sf_prom_str(sf_prom_t *p, const char *s)
{
    sf_prom_put(p, s, strlen(s));
}


/* HELP text escapes \ and newline; label values also " */

static void
sf_prom_escaped(sf_prom_t *p, const char *s, int label)
{
    for ( /* void */ ; *s; s++) {
        if (*s == '\\') {
            sf_prom_put(p, "\\\\", 2);

        } else if (*s == '\n') {
            sf_prom_put(p, "\\n", 2);

        } else if (*s == '"' && label) {
            sf_prom_put(p, "\\\"", 2);

        } else {
            sf_prom_put(p, s, 1);
        }
    }
}


static void
sf_prom_u64(sf_prom_t *p, uint64_t v)
{
    char  buf[24];
    int   n;

    n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long) v);
    sf_prom_put(p, buf, (size_t) n);
}


/* milliseconds as seconds, without trailing zeros: 5 -> 0.005, 2500 -> 2.5 */

static void
sf_prom_seconds(sf_prom_t *p, uint64_t ms)
{
    char  buf[32];
    int   n;

    n = snprintf(buf, sizeof(buf), "%llu.%03llu",
                 (unsigned long long) (ms / 1000),
                 (unsigned long long) (ms % 1000));

    while (buf[n - 1] == '0') {
        n--;
    }

    if (buf[n - 1] == '.') {
        n--;
    }

    sf_prom_put(p, buf, (size_t) n);
}


void
sf_prom_family(sf_prom_t *p, const char *name, const char *type,
    const char *help)
{
    sf_prom_str(p, "# HELP ");
    sf_prom_str(p, name);
    sf_prom_str(p, " ");
    sf_prom_escaped(p, help, 0);
    sf_prom_str(p, "\n# TYPE ");
    sf_prom_str(p, name);
    sf_prom_str(p, " ");
    sf_prom_str(p, type);
    sf_prom_str(p, "\n");
}


void
sf_prom_sample(sf_prom_t *p, const char *name, const char *label,
    const char *value, uint64_t v)
{
    sf_prom_str(p, name);

    if (label != NULL) {
        sf_prom_str(p, "{");
        sf_prom_str(p, label);
        sf_prom_str(p, "=\"");
        sf_prom_escaped(p, value, 1);
        sf_prom_str(p, "\"}");
    }

    sf_prom_str(p, " ");
    sf_prom_u64(p, v);
    sf_prom_str(p, "\n");
}


void
sf_prom_sample2(sf_prom_t *p, const char *name, const char *label1,
    const char *value1, const char *label2, const char *value2, uint64_t v)
{
    sf_prom_str(p, name);
    sf_prom_str(p, "{");
    sf_prom_str(p, label1);
    sf_prom_str(p, "=\"");
    sf_prom_escaped(p, value1, 1);
    sf_prom_str(p, "\",");
    sf_prom_str(p, label2);
    sf_prom_str(p, "=\"");
    sf_prom_escaped(p, value2, 1);
    sf_prom_str(p, "\"} ");
    sf_prom_u64(p, v);
    sf_prom_str(p, "\n");
}


void
sf_prom_histogram(sf_prom_t *p, const char *name, const char *label,
    const char *value, const uint64_t *bounds_ms, const uint64_t *counts,
    size_t n, uint64_t sum_ms)
{
    size_t    i;
    uint64_t  total;

    total = 0;

    for (i = 0; i <= n; i++) {
        total += counts[i];

        sf_prom_str(p, name);
        sf_prom_str(p, "_bucket{");

        if (label != NULL) {
            sf_prom_str(p, label);
            sf_prom_str(p, "=\"");
            sf_prom_escaped(p, value, 1);
            sf_prom_str(p, "\",");
        }

        sf_prom_str(p, "le=\"");

        if (i < n) {
            sf_prom_seconds(p, bounds_ms[i]);

        } else {
            sf_prom_str(p, "+Inf");
        }

        sf_prom_str(p, "\"} ");
        sf_prom_u64(p, total);
        sf_prom_str(p, "\n");
    }

    sf_prom_str(p, name);
    sf_prom_str(p, "_sum");

    if (label != NULL) {
        sf_prom_str(p, "{");
        sf_prom_str(p, label);
        sf_prom_str(p, "=\"");
        sf_prom_escaped(p, value, 1);
        sf_prom_str(p, "\"}");
    }

    sf_prom_str(p, " ");
    sf_prom_seconds(p, sum_ms);
    sf_prom_str(p, "\n");

    sf_prom_str(p, name);
    sf_prom_str(p, "_count");

    if (label != NULL) {
        sf_prom_str(p, "{");
        sf_prom_str(p, label);
        sf_prom_str(p, "=\"");
        sf_prom_escaped(p, value, 1);
        sf_prom_str(p, "\"}");
    }

    sf_prom_str(p, " ");
    sf_prom_u64(p, total);
    sf_prom_str(p, "\n");
}
