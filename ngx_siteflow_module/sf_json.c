
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <stddef.h>
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
