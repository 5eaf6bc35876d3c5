
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_json.h"


#define SF_JSON_ELLIPSIS  "..."


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
    int                   real;
    char                 *e;
    size_t                n, digits;
    double                d;
    const unsigned char  *p, *start;
    char                  token[48], back[48];

    start = *pp;
    p = start;
    real = 0;

    if (p < end && *p == '-') {
        p++;
    }

    if (p == end || *p < '0' || *p > '9') {
        return 0;
    }

    if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') {
        return 0;
    }

    digits = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        p++;
        digits++;
    }

    if (p < end && *p == '.') {
        real = 1;
        p++;

        if (p == end || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    n = (size_t) (p - start);

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

    static const char  hex[] = "0123456789ABCDEF";

    d = dst;
    *d++ = '"';

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            *d++ = (char) c;
            continue;
        }

        *d++ = '\\';

        switch (c) {
        case '"':
            *d++ = '"';
            break;
        case '\\':
            *d++ = '\\';
            break;
        case '\b':
            *d++ = 'b';
            break;
        case '\f':
            *d++ = 'f';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 0xf];
        }
    }

    *d++ = '"';

    return (size_t) (d - dst);
}
