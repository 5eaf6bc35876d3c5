
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
    cut = size - 1 - tail;

    while (cut > 0 && ((unsigned char) src[cut] & 0xc0) == 0x80) {
        cut--;
    }

    memcpy(dst, src, cut);
    memcpy(dst + cut, SF_JSON_ELLIPSIS, tail);
    dst[cut + tail] = '\0';
}
