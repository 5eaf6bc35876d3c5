
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <string.h>

#include "sf_path.h"


static int sf_path_unreserved(unsigned char c);
static int sf_path_dot_segment(const char *s, size_t len);


sf_path_rc_t
sf_path_segment_check(const char *id, size_t len)
{
    if (len == 0) {
        return SF_PATH_EMPTY;
    }

    if ((len == 1 && id[0] == '.')
        || (len == 2 && id[0] == '.' && id[1] == '.'))
    {
        return SF_PATH_DOT;
    }

    return SF_PATH_OK;
}


sf_path_rc_t
sf_path_append_segment(char *buf, size_t size, size_t *pos, const char *id,
    size_t len)
{
    size_t          i, p;
    unsigned char   c;
    sf_path_rc_t    rc;

    static const char  hex[] = "0123456789ABCDEF";

    rc = sf_path_segment_check(id, len);
    if (rc != SF_PATH_OK) {
        return rc;
    }

    p = *pos;

    for (i = 0; i < len; i++) {
        c = (unsigned char) id[i];

        if (sf_path_unreserved(c)) {
            if (p + 1 >= size) {
                return SF_PATH_NO_ROOM;
            }

            buf[p++] = (char) c;
            continue;
        }

        if (p + 3 >= size) {
            return SF_PATH_NO_ROOM;
        }

        buf[p++] = '%';
        buf[p++] = hex[c >> 4];
        buf[p++] = hex[c & 0x0f];
    }

    buf[p] = '\0';
    *pos = p;

    return SF_PATH_OK;
}


sf_path_rc_t
sf_path_append(char *buf, size_t size, size_t *pos, const char *text)
{
    size_t  n;

    n = strlen(text);

    if (*pos + n >= size) {
        return SF_PATH_NO_ROOM;
    }

    memcpy(buf + *pos, text, n + 1);
    *pos += n;

    return SF_PATH_OK;
}


int
sf_path_is_clean(const char *path, size_t len)
{
    size_t  i, start;

    for (i = 0; i < len; i++) {
        if (path[i] == '?' || path[i] == '#') {
            len = i;
            break;
        }
    }

    start = 0;

    for (i = 0; i <= len; i++) {
        if (i == len || path[i] == '/') {
            if (sf_path_dot_segment(path + start, i - start)) {
                return 0;
            }

            start = i + 1;
        }
    }

    return 1;
}


const char *
sf_path_rc_text(sf_path_rc_t rc)
{
    switch (rc) {

    case SF_PATH_OK:
        return "is fine";

    case SF_PATH_EMPTY:
        return "is empty";

    case SF_PATH_DOT:
        return "is \".\" or \"..\", which is not an id";

    default:
        return "is too long for a URL";
    }
}


static int
sf_path_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~';
}


/* ".", "..", each dot possibly written "%2e" or "%2E" */

static int
sf_path_dot_segment(const char *s, size_t len)
{
    size_t  i, dots;

    dots = 0;
    i = 0;

    while (i < len) {
        if (s[i] == '.') {
            i++;

        } else if (i + 2 < len && s[i] == '%' && s[i + 1] == '2'
                   && (s[i + 2] == 'e' || s[i + 2] == 'E'))
        {
            i += 3;

        } else {
            return 0;
        }

        dots++;
    }

    return dots == 1 || dots == 2;
}
