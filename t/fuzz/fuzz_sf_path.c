
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_path.c: any id, as one path segment.
 *
 * The input is an id appended between "/api/v2/order/" and "/shipped"
 * into exact-size heap buffers (the documented 3 bytes per id byte, and a
 * few bytes short).  Checks: an id is refused exactly when it is empty,
 * "." or ".."; an accepted one becomes only unreserved bytes and %XX,
 * decodes back to the id, adds no "/", "?" or "#", and the whole path is
 * clean (no dot segment); too small a buffer says SF_PATH_NO_ROOM and
 * never writes past its end.  The input is also checked as a path with
 * sf_path_is_clean (no crash, no read past the end).
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf_path.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


static void
check_segment(const char *id, size_t len, size_t size)
{
    char          *buf, *seg;
    size_t         pos, i, n, start;
    sf_path_rc_t   rc, want;

    buf = malloc(size);
    if (buf == NULL) {
        return;
    }

    want = (len == 0) ? SF_PATH_EMPTY
           : ((len == 1 && id[0] == '.')
              || (len == 2 && id[0] == '.' && id[1] == '.'))
             ? SF_PATH_DOT : SF_PATH_OK;

    if (sf_path_segment_check(id, len) != want) {
        abort();
    }

    pos = 0;
    rc = sf_path_append(buf, size, &pos, "/api/v2/order/");

    if (rc != SF_PATH_OK) {
        free(buf);
        return;
    }

    start = pos;
    rc = sf_path_append_segment(buf, size, &pos, id, len);

    if (want != SF_PATH_OK) {
        if (rc != want || pos != start) {
            abort();
        }

        free(buf);
        return;
    }

    if (rc == SF_PATH_NO_ROOM) {
        if (pos != start) {
            abort();
        }

        free(buf);
        return;
    }

    if (rc != SF_PATH_OK || pos >= size || buf[pos] != '\0') {
        abort();
    }

    /* only unreserved bytes and %XX, decoding back to the id */

    seg = buf + start;
    n = 0;

    for (i = 0; i < pos - start; n++) {
        if (seg[i] == '%') {
            if (i + 2 >= pos - start + 1 || hexval(seg[i + 1]) < 0
                || hexval(seg[i + 2]) < 0
                || n >= len
                || (unsigned char) id[n]
                   != (unsigned) (hexval(seg[i + 1]) * 16
                                  + hexval(seg[i + 2])))
            {
                abort();
            }

            i += 3;
            continue;
        }

        if (!((seg[i] >= 'A' && seg[i] <= 'Z')
              || (seg[i] >= 'a' && seg[i] <= 'z')
              || (seg[i] >= '0' && seg[i] <= '9') || seg[i] == '-'
              || seg[i] == '.' || seg[i] == '_' || seg[i] == '~')
            || n >= len || seg[i] != id[n])
        {
            abort();
        }

        i++;
    }

    if (n != len) {
        abort();
    }

    if (sf_path_append(buf, size, &pos, "/shipped") == SF_PATH_OK
        && !sf_path_is_clean(buf, pos))
    {
        abort();
    }

    free(buf);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t       full;
    const char  *id = (const char *) data;

    if (size > 4096) {
        return 0;
    }

    full = sizeof("/api/v2/order/") - 1 + 3 * size + sizeof("/shipped");

    check_segment(id, size, full);
    check_segment(id, size, full - 9);
    check_segment(id, size, sizeof("/api/v2/order/") + 1);

    (void) sf_path_is_clean(id, size);

    return 0;
}
