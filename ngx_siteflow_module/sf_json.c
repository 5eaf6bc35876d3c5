
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

#include <jansson.h>

#include "sf_json.h"


#define SF_JSON_ELLIPSIS  "..."


#define P1  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
#define P0  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

const unsigned char  sf_json_plain[256] = {
    P0, P0,                                               /* 0x00 - 0x1f */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,       /* 0x20: '"' */
    P1, P1,                                               /* 0x30 - 0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,       /* 0x50: '\\' */
    P1, P1,                                               /* 0x60 - 0x7f */
    P0, P0, P0, P0, P0, P0, P0, P0                        /* 0x80 - 0xff */
};

#undef P1
#undef P0


int
sf_json_too_deep(const unsigned char *p, size_t len, unsigned max_depth,
    size_t *line, size_t *column)
{
    size_t    i, l, col;
    unsigned  depth, in_string, escaped;

    l = 1;
    col = 0;
    depth = 0;
    in_string = 0;
    escaped = 0;

    for (i = 0; i < len; i++) {

        if (p[i] == '\n') {
            l++;
            col = 0;

        } else if ((p[i] & 0xc0) != 0x80) {
            col++;
        }

        if (in_string) {
            if (escaped) {
                escaped = 0;

            } else if (p[i] == '\\') {
                escaped = 1;

            } else if (p[i] == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (p[i]) {

        case '"':
            in_string = 1;
            break;

        case '[':
        case '{':
            if (++depth > max_depth) {
                if (line != NULL) {
                    *line = l;
                }

                if (column != NULL) {
                    *column = col;
                }

                return 1;
            }

            break;

        case ']':
        case '}':
            if (depth > 0) {
                depth--;
            }

            break;

        default:
            break;
        }
    }

    return 0;
}


void
sf_json_copy_cut(char *dst, size_t size, const char *src, size_t len)
{
    size_t  cut, tail;

    if (size == 0 || dst == NULL) {
        return;
    }

    if (len < size) {
        memcpy(dst, src, len);
        dst[len] = '\0';
        return;
    }

    tail = (size >= sizeof(SF_JSON_ELLIPSIS)) ? sizeof(SF_JSON_ELLIPSIS) - 1
                                              : 0;
    cut = sf_json_utf8_cut(src, len, size - 1 - tail);

    memcpy(dst, src, cut);
    memcpy(dst + cut, SF_JSON_ELLIPSIS, tail);
    dst[cut + tail] = '\0';
}


size_t
sf_json_utf8(const unsigned char *p, size_t n, size_t *skip)
{
    size_t         i, need, dummy;
    unsigned char  c, lo, hi;

    if (skip == NULL) {
        skip = &dummy;
    }

    c = p[0];

    if (c < 0x80) {
        *skip = 1;
        return 1;
    }

    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;

    } else if (c == 0xe0) {
        need = 2;
        lo = 0xa0;

    } else if (c == 0xed) {
        need = 2;
        hi = 0x9f;

    } else if (c >= 0xe1 && c <= 0xef) {
        need = 2;

    } else if (c == 0xf0) {
        need = 3;
        lo = 0x90;

    } else if (c >= 0xf1 && c <= 0xf3) {
        need = 3;

    } else if (c == 0xf4) {
        need = 3;
        hi = 0x8f;

    } else {
        *skip = 1;
        return 0;
    }

    for (i = 1; i <= need; i++) {
        if (i >= n || p[i] < lo || p[i] > hi) {
            *skip = i;
            return 0;
        }

        lo = 0x80;
        hi = 0xbf;
    }

    *skip = need + 1;

    return need + 1;
}


size_t
sf_json_clean(char *dst, size_t size, const char *src, size_t len,
    unsigned flags)
{
    size_t                i, o, k, skip;
    const char           *unit;
    const unsigned char  *p;

    p = (const unsigned char *) src;

    if (flags & SF_JSON_CLEAN_CUT) {
        len = sf_json_utf8_trim(src, len);
    }

    for (i = 0, o = 0; i < len; i += skip) {
        k = sf_json_utf8(p + i, len - i, &skip);
        unit = src + i;

        if (k == 0) {
            unit = (flags & SF_JSON_CLEAN_QMARK) ? "?" : "\xef\xbf\xbd";
            k = (flags & SF_JSON_CLEAN_QMARK) ? 1 : 3;

        } else if ((flags & SF_JSON_CLEAN_CONTROL)
                   && (p[i] < 0x20 || p[i] == 0x7f))
        {
            unit = "?";
        }

        if (k > size - o) {
            break;
        }

        memcpy(dst + o, unit, k);
        o += k;
    }

    return o;
}


int
sf_json_utf8_valid(const unsigned char *p, size_t len)
{
    size_t  i, k;

    for (i = 0; i < len; i += k) {
        k = sf_json_utf8(p + i, len - i, NULL);

        if (k == 0) {
            return 0;
        }
    }

    return 1;
}


size_t
sf_json_utf8_cut(const char *p, size_t n, size_t max)
{
    size_t  i, k;

    if (n <= max) {
        return n;
    }

    /* step back over continuation bytes to the start of a character */

    i = max;

    for (k = 0; k < 3 && i > 0 && ((unsigned char) p[i] & 0xc0) == 0x80; k++)
    {
        i--;
    }

    return i;
}


size_t
sf_json_utf8_trim(const char *p, size_t n)
{
    size_t          i, k, need;
    unsigned char   c;

    /* the start of the last character: back over continuation bytes */

    i = n;

    for (k = 0; k < 3 && i > 0 && ((unsigned char) p[i - 1] & 0xc0) == 0x80;
         k++)
    {
        i--;
    }

    if (i == 0) {
        return n;
    }

    c = (unsigned char) p[i - 1];

    if (c < 0xc0) {
        return n;               /* ASCII, or no lead byte: nothing to do */
    }

    need = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : 2;

    return (n - (i - 1) < need) ? i - 1 : n;
}


/*
 * The compact form jansson writes: is p[0 .. len - 1] an object or array
 * exactly as json_dumps(json_loadb(p, 0), JSON_COMPACT) would give it
 * back?  Checked without building anything; 0 also when unsure (deeper
 * than SF_JSON_COMPACT_DEPTH, an integer of more than 18 digits, a real
 * that does not come back the same through strtod() and "%.17g", a
 * \u0000, a \u escape jansson would not write).  Duplicate keys are not
 * looked for: jansson keeps the last value, the text keeps both.
 */

#define SF_JSON_COMPACT_DEPTH  64

static int sf_json_compact_string(const unsigned char **pp,
    const unsigned char *end);
static int sf_json_compact_number(const unsigned char **pp,
    const unsigned char *end);


size_t
sf_json_bom(const void *p, size_t len)
{
    const unsigned char  *s = p;

    return (len >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) ? 3 : 0;
}


int
sf_json_compact(const unsigned char *p, size_t len)
{
    unsigned              depth;
    const unsigned char  *end;
    unsigned char         stack[SF_JSON_COMPACT_DEPTH];

    end = p + len;

    if (len < 2 || (*p != '{' && *p != '[')) {
        return 0;
    }

    depth = 0;

    /* at a value */

value:

    if (p == end) {
        return 0;
    }

    switch (*p) {

    case '{':
    case '[':
        if (depth == SF_JSON_COMPACT_DEPTH) {
            return 0;
        }

        stack[depth++] = *p++;

        if (p == end) {
            return 0;
        }

        if (*p == (stack[depth - 1] == '{' ? '}' : ']')) {
            p++;
            depth--;
            goto next;
        }

        if (stack[depth - 1] == '{') {
            goto key;
        }

        goto value;

    case '"':
        if (!sf_json_compact_string(&p, end)) {
            return 0;
        }

        goto next;

    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0) {
            return 0;
        }

        p += 4;
        goto next;

    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0) {
            return 0;
        }

        p += 5;
        goto next;

    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) {
            return 0;
        }

        p += 4;
        goto next;

    default:
        if (!sf_json_compact_number(&p, end)) {
            return 0;
        }

        goto next;
    }

key:

    if (p == end || *p != '"' || !sf_json_compact_string(&p, end)
        || p == end || *p != ':')
    {
        return 0;
    }

    p++;
    goto value;

next:

    /* after a value: the end of the text, a comma or a closing bracket */

    if (depth == 0) {
        return p == end;
    }

    if (p == end) {
        return 0;
    }

    if (*p == ',') {
        p++;

        if (stack[depth - 1] == '{') {
            goto key;
        }

        goto value;
    }

    if (*p != (stack[depth - 1] == '{' ? '}' : ']')) {
        return 0;
    }

    p++;
    depth--;
    goto next;
}


/* *pp at '"'; moved past the closing '"' */

static int
sf_json_compact_string(const unsigned char **pp, const unsigned char *end)
{
    size_t                n;
    unsigned              c;
    const unsigned char  *p;

    p = *pp + 1;

    for ( ;; ) {

        while (p < end && sf_json_plain[*p]) {
            p++;
        }

        if (p == end) {
            return 0;
        }

        c = *p;

        if (c == '"') {
            *pp = p + 1;
            return 1;
        }

        if (c < 0x20) {
            return 0;
        }

        if (c >= 0x80) {
            n = sf_json_utf8(p, (size_t) (end - p), NULL);
            if (n == 0) {
                return 0;
            }

            p += n;
            continue;
        }

        if (c != '\\') {
            p++;
            continue;
        }

        /* the escapes jansson writes, and only those */

        if (end - p < 2) {
            return 0;
        }

        switch (p[1]) {

        case '"':
        case '\\':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;

        case 'u':
            /* \u00XX, uppercase hex, a control without a short form */
            if (end - p < 6 || p[2] != '0' || p[3] != '0'
                || (p[4] != '0' && p[4] != '1'))
            {
                return 0;
            }

            c = (unsigned) (p[4] - '0') << 4;

            if (p[5] >= '0' && p[5] <= '9') {
                c |= (unsigned) (p[5] - '0');

            } else if (p[5] >= 'A' && p[5] <= 'F') {
                c |= (unsigned) (p[5] - 'A' + 10);

            } else {
                return 0;
            }

            if (c == 0 || c == '\b' || c == '\f' || c == '\n' || c == '\r'
                || c == '\t')
            {
                return 0;
            }

            p += 6;
            continue;

        default:
            return 0;
        }
    }
}


/* an integer of up to 18 digits, or a real that comes back the same */

static int
sf_json_compact_number(const unsigned char **pp, const unsigned char *end)
{
    char                 *e;
    size_t                n, digits;
    double                d;
    unsigned              real;
    const unsigned char  *p, *start;
    char                  token[48], back[48];

    start = *pp;

    n = sf_json_number(start, end, &real, &digits);
    if (n == 0) {
        return 0;
    }

    p = start + n;

    if (!real) {
        /* "-0" is read as 0 */
        if (digits > 18 || (n == 2 && start[0] == '-' && start[1] == '0')) {
            return 0;
        }

        *pp = p;
        return 1;
    }

    /* a real: what jansson writes back ("%.17g", a ".0" if needed) */

    if (n >= sizeof(token)) {
        return 0;
    }

    memcpy(token, start, n);
    token[n] = '\0';

    d = strtod(token, &e);

    if (e != token + n || !(d - d == 0) || d == 0) {
        return 0;
    }

    if (snprintf(back, sizeof(back), "%.17g", d) >= (int) sizeof(back)
        || strchr(back, 'e') != NULL || strchr(back, '.') == NULL
        || strcmp(back, token) != 0)
    {
        return 0;
    }

    *pp = p;
    return 1;
}


/*
 * src[0 .. len - 1] (UTF-8, NULs allowed) as a JSON string the way
 * jansson writes it without flags (quotes included) into dst, which has
 * room for sf_json_escaped_max(len) bytes; returns the bytes written.
 */

size_t
sf_json_escape(char *dst, const char *src, size_t len)
{
    char           *d;
    size_t          i;
    unsigned char   c;

    d = dst;
    *d++ = '"';

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            *d++ = (char) c;
            continue;
        }

        d += sf_json_escape_char(d, c);
    }

    *d++ = '"';

    return (size_t) (d - dst);
}


size_t
sf_json_int(char *dst, long long v)
{
    char                tmp[SF_JSON_INT_LEN];
    size_t              n, len;
    unsigned long long  u;

    /* the magnitude in unsigned arithmetic: -LLONG_MIN does not fit */

    u = (v < 0) ? 0ULL - (unsigned long long) v : (unsigned long long) v;
    n = sizeof(tmp);

    do {
        tmp[--n] = (char) ('0' + u % 10);
        u /= 10;
    } while (u);

    len = 0;

    if (v < 0) {
        dst[len++] = '-';
    }

    memcpy(dst + len, tmp + n, sizeof(tmp) - n);
    len += sizeof(tmp) - n;
    dst[len] = '\0';

    return len;
}


size_t
sf_json_escape_char(char *dst, unsigned char c)
{
    const char  *e;

    static const char  from[] = "\"\\\b\f\n\r\t";
    static const char  to[] = "\"\\bfnrt";
    static const char  hex[] = "0123456789ABCDEF";

    dst[0] = '\\';

    e = memchr(from, c, sizeof(from) - 1);

    if (e != NULL) {
        dst[1] = to[e - from];
        return 2;
    }

    dst[1] = 'u';
    dst[2] = '0';
    dst[3] = '0';
    dst[4] = hex[c >> 4];
    dst[5] = hex[c & 0xf];

    return 6;
}


size_t
sf_json_number(const unsigned char *p, const unsigned char *end,
    unsigned *real, size_t *digits)
{
    const unsigned char  *start;

    start = p;
    *real = 0;

    if (p < end && *p == '-') {
        p++;
    }

    if (p == end || *p < '0' || *p > '9') {
        return 0;
    }

    if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') {
        return 0;
    }

    *digits = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        p++;
        (*digits)++;
    }

    if (p < end && *p == '.') {
        *real = 1;

        if (++p == end || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        *real = 1;

        if (++p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return (size_t) (p - start);
}


/*
 * The strict reader of request bodies (sf_json_strict()): an object that
 * jansson reads with JSON_REJECT_DUPLICATES, for sure, copied without the
 * whitespace between tokens.  Unsure (0) past SF_JSON_STRICT_DEPTH
 * levels, with more than SF_JSON_STRICT_KEYS keys open at once, a key
 * with an escape, an integer of more than 18 digits, a real of more than
 * 40 characters, a \u0000 or a lone surrogate escape.
 */

#define SF_JSON_STRICT_DEPTH  32
#define SF_JSON_STRICT_KEYS   256

typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    unsigned char        *out;
    unsigned              depth;
    unsigned              nkeys;
    const unsigned char  *keys[SF_JSON_STRICT_KEYS];     /* in out */
    unsigned              key_len[SF_JSON_STRICT_KEYS];
} sf_json_strict_t;


static int sf_json_strict_value(sf_json_strict_t *s);
static int sf_json_strict_string(sf_json_strict_t *s, int key);
static int sf_json_strict_number(sf_json_strict_t *s);


#define sf_json_ws(s)                                                        \
    while ((s)->p < (s)->end                                                 \
           && (*(s)->p == ' ' || *(s)->p == '\n' || *(s)->p == '\r'          \
               || *(s)->p == '\t'))                                          \
    {                                                                        \
        (s)->p++;                                                            \
    }


int
sf_json_strict(const unsigned char *p, size_t len, unsigned char *out,
    size_t *out_len)
{
    unsigned char     *start;
    sf_json_strict_t   s;

    s.p = p;
    s.end = p + len;
    s.out = out;
    s.depth = 0;
    s.nkeys = 0;
    start = out;

    sf_json_ws(&s);

    if (s.p == s.end || *s.p != '{' || !sf_json_strict_value(&s)) {
        return 0;
    }

    sf_json_ws(&s);

    if (s.p != s.end) {
        return 0;
    }

    *out_len = (size_t) (s.out - start);

    return 1;
}


/* s->p at a value (no whitespace before it) */

static int
sf_json_strict_value(sf_json_strict_t *s)
{
    size_t          n;
    unsigned        i, first;
    const char     *word;
    unsigned char   open, close;

    switch (*s->p) {

    case '"':
        return sf_json_strict_string(s, 0);

    case '{':
    case '[':
        break;

    case 't':
        word = "true";
        n = 4;
        goto word;

    case 'f':
        word = "false";
        n = 5;
        goto word;

    case 'n':
        word = "null";
        n = 4;
        goto word;

    default:
        return sf_json_strict_number(s);
    }

    if (s->depth == SF_JSON_STRICT_DEPTH) {
        return 0;
    }

    s->depth++;
    open = *s->p++;
    close = (open == '{') ? '}' : ']';
    *s->out++ = open;
    first = s->nkeys;

    sf_json_ws(s);

    if (s->p < s->end && *s->p == close) {
        goto closed;
    }

    for ( ;; ) {
        if (s->p == s->end) {
            return 0;
        }

        if (open == '{') {
            if (*s->p != '"' || !sf_json_strict_string(s, 1)) {
                return 0;
            }

            /* a key twice in this object: jansson refuses the body */

            for (i = first; i < s->nkeys - 1; i++) {
                if (s->key_len[i] == s->key_len[s->nkeys - 1]
                    && memcmp(s->keys[i], s->keys[s->nkeys - 1],
                              s->key_len[i]) == 0)
                {
                    return 0;
                }
            }

            sf_json_ws(s);

            if (s->p == s->end || *s->p != ':') {
                return 0;
            }

            s->p++;
            *s->out++ = ':';

            sf_json_ws(s);

            if (s->p == s->end) {
                return 0;
            }
        }

        if (!sf_json_strict_value(s)) {
            return 0;
        }

        sf_json_ws(s);

        if (s->p == s->end) {
            return 0;
        }

        if (*s->p == close) {
            break;
        }

        if (*s->p != ',') {
            return 0;
        }

        s->p++;
        *s->out++ = ',';

        sf_json_ws(s);
    }

closed:

    s->p++;
    *s->out++ = close;
    s->nkeys = first;
    s->depth--;

    return 1;

word:

    if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return 0;
    }

    memcpy(s->out, s->p, n);
    s->p += n;
    s->out += n;

    return 1;
}


/* s->p at '"' */

static int
sf_json_strict_string(sf_json_strict_t *s, int key)
{
    size_t                n;
    unsigned              c, lo;
    const unsigned char  *p, *start;

    start = s->p;
    p = s->p + 1;

    for ( ;; ) {
        while (p < s->end && sf_json_plain[*p]) {
            p++;
        }

        if (p == s->end) {
            return 0;
        }

        c = *p;

        if (c == '"') {
            break;
        }

        if (c < 0x20) {
            return 0;
        }

        if (c >= 0x80) {
            n = sf_json_utf8(p, (size_t) (s->end - p), NULL);
            if (n == 0) {
                return 0;
            }

            p += n;
            continue;
        }

        if (c != '\\') {
            p++;
            continue;
        }

        if (key || s->end - p < 2) {
            return 0;
        }

        switch (p[1]) {

        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;

        case 'u':
            if (s->end - p < 6 || !sf_json_hex4(p + 2, &c) || c == 0) {
                return 0;
            }

            p += 6;

            if (c >= 0xdc00 && c <= 0xdfff) {
                return 0;
            }

            if (c >= 0xd800 && c <= 0xdbff) {
                if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u'
                    || !sf_json_hex4(p + 2, &lo) || lo < 0xdc00
                    || lo > 0xdfff)
                {
                    return 0;
                }

                p += 6;
            }

            continue;

        default:
            return 0;
        }
    }

    p++;
    n = (size_t) (p - start);

    if (key) {
        if (s->nkeys == SF_JSON_STRICT_KEYS) {
            return 0;
        }

        s->keys[s->nkeys] = s->out + 1;
        s->key_len[s->nkeys] = (unsigned) (n - 2);
        s->nkeys++;
    }

    memcpy(s->out, start, n);
    s->out += n;
    s->p = p;

    return 1;
}


static int
sf_json_strict_number(sf_json_strict_t *s)
{
    char                 *e;
    size_t                n, digits;
    double                d;
    unsigned              real;
    const unsigned char  *p, *start;
    char                  token[48];

    start = s->p;

    n = sf_json_number(start, s->end, &real, &digits);
    if (n == 0) {
        return 0;
    }

    p = start + n;

    if (!real) {
        if (digits > 18) {
            return 0;
        }

    } else {
        /* jansson refuses a real that overflows */

        if (n > 40) {
            return 0;
        }

        memcpy(token, start, n);
        token[n] = '\0';

        d = strtod(token, &e);

        if (e != token + n || !(d - d == 0)) {
            return 0;
        }
    }

    memcpy(s->out, start, n);
    s->out += n;
    s->p = p;

    return 1;
}


int
sf_json_hex4(const unsigned char *p, unsigned *v)
{
    unsigned  i, c;

    *v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if (c >= 'a' && c <= 'f') {
            c -= 'a' - 10;

        } else if (c >= 'A' && c <= 'F') {
            c -= 'A' - 10;

        } else {
            return 0;
        }

        *v = (*v << 4) | c;
    }

    return 1;
}


/*
 * The members of an object in text that is valid JSON without whitespace
 * between tokens (what sf_json_strict() writes): up to max of them into
 * m; returns how many the object has, or -1 if a key has an escape (the
 * caller cannot match it by its bytes).
 */

int
sf_json_members(const unsigned char *p, size_t len, sf_json_member_t *m,
    size_t max)
{
    int                   n;
    unsigned              depth;
    const unsigned char  *end, *v;

    end = p + len;

    if (len < 2 || *p != '{') {
        return -1;
    }

    p++;
    n = 0;

    while (p < end && *p == '"') {

        /* the key */

        v = ++p;

        while (p < end && *p != '"') {
            if (*p == '\\') {
                return -1;
            }

            p++;

            while (p < end && sf_json_plain[*p]) {
                p++;
            }
        }

        if (p + 1 >= end) {
            return -1;
        }

        if ((size_t) n < max) {
            m[n].key = v;
            m[n].key_len = (size_t) (p - v);
        }

        p += 2;     /* '"' ':' */

        /* the value, up to the ',' or '}' at depth 0 */

        v = p;
        depth = 0;

        while (p < end) {
            if (*p == '"') {
                for (p++; p < end; p++) {
                    while (p < end && sf_json_plain[*p]) {
                        p++;
                    }

                    if (p == end || *p == '"') {
                        break;
                    }

                    if (*p == '\\') {
                        p++;
                    }
                }

            } else if (*p == '{' || *p == '[') {
                depth++;

            } else if (*p == '}' || *p == ']') {
                if (depth == 0) {
                    break;
                }

                depth--;

            } else if (*p == ',' && depth == 0) {
                break;
            }

            p++;
        }

        if (p >= end) {
            return -1;
        }

        if ((size_t) n < max) {
            m[n].value = v;
            m[n].value_len = (size_t) (p - v);
        }

        n++;

        if (*p == ',') {
            p++;
        }
    }

    return n;
}


/*
 * jansson's allocator in a worker (sf_json_alloc_install()): jansson
 * allocates and frees a great many small blocks for every tree (a job's
 * order is a few hundred), more than glibc's per-size caches hold, so
 * most of them went through malloc's slow paths.  Blocks of up to
 * SF_JSON_ALLOC_MAX bytes freed by jansson are kept here instead, on a
 * list per 16-byte size class, up to SF_JSON_ALLOC_KEEP per class, and
 * handed out again.  Every block is a block of the C library's malloc(),
 * found its class by malloc_usable_size(): so free() may release any of
 * them (json_dumps() text is freed with free() all over the module), and
 * blocks allocated before the allocator was installed are freed here
 * correctly.  Process-wide, as jansson's hooks are; not for threads (the
 * module calls jansson only from the event loop).
 */

#define SF_JSON_ALLOC_MAX      256
#define SF_JSON_ALLOC_CLASSES  (SF_JSON_ALLOC_MAX / 16)
#define SF_JSON_ALLOC_KEEP     4096


static void *sf_json_alloc(size_t size);
static void sf_json_alloc_free(void *p);


static void      *sf_json_alloc_lists[SF_JSON_ALLOC_CLASSES];
static unsigned   sf_json_alloc_kept[SF_JSON_ALLOC_CLASSES];


void
sf_json_alloc_install(void)
{
    json_set_alloc_funcs(sf_json_alloc, sf_json_alloc_free);
}


void
sf_json_alloc_release(void)
{
    void    *p;
    size_t   c;

    json_set_alloc_funcs(malloc, free);

    for (c = 0; c < SF_JSON_ALLOC_CLASSES; c++) {
        while (sf_json_alloc_lists[c] != NULL) {
            p = sf_json_alloc_lists[c];
            sf_json_alloc_lists[c] = *(void **) p;
            free(p);
        }

        sf_json_alloc_kept[c] = 0;
    }
}


static void *
sf_json_alloc(size_t size)
{
    void    *p;
    size_t   c;

    if (size > SF_JSON_ALLOC_MAX) {
        return malloc(size);
    }

    c = (size == 0) ? 0 : (size - 1) >> 4;

    p = sf_json_alloc_lists[c];

    if (p != NULL) {
        sf_json_alloc_lists[c] = *(void **) p;
        sf_json_alloc_kept[c]--;
        return p;
    }

    return malloc((c + 1) << 4);
}


static void
sf_json_alloc_free(void *p)
{
    size_t  n, c;

    if (p == NULL) {
        return;
    }

    n = malloc_usable_size(p);

    if (n >= 16) {
        c = (n >> 4) - 1;

        if (c < SF_JSON_ALLOC_CLASSES
            && sf_json_alloc_kept[c] < SF_JSON_ALLOC_KEEP)
        {
            *(void **) p = sf_json_alloc_lists[c];
            sf_json_alloc_lists[c] = p;
            sf_json_alloc_kept[c]++;
            return;
        }
    }

    free(p);
}
