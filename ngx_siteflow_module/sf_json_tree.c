
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_json.h"
#include "sf_json_tree.h"


/* reading */

typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    char                 *buf;          /* unescaped strings */
    size_t                size;
    char                  small[1024];
} sf_json_tree_in_t;


static json_t *sf_json_tree_value(sf_json_tree_in_t *in, unsigned depth);
static json_t *sf_json_tree_object(sf_json_tree_in_t *in, unsigned depth);
static json_t *sf_json_tree_array(sf_json_tree_in_t *in, unsigned depth);
static int sf_json_tree_next(sf_json_tree_in_t *in, unsigned char close);
static int sf_json_tree_string(sf_json_tree_in_t *in, const char **s,
    size_t *len);
static json_t *sf_json_tree_number(sf_json_tree_in_t *in);


#define sf_json_tree_ws(c)                                                   \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

#define sf_json_tree_skip(in)                                                \
    while ((in)->p < (in)->end && sf_json_tree_ws(*(in)->p)) { (in)->p++; }


json_t *
sf_json_tree_load(const char *p, size_t len)
{
    json_t             *v;
    sf_json_tree_in_t   in;

    in.p = (const unsigned char *) p;
    in.end = in.p + len;
    in.buf = in.small;
    in.size = sizeof(in.small);

    sf_json_tree_skip(&in);

    v = NULL;

    /* without JSON_DECODE_ANY: an object or an array */

    if (in.p < in.end && (*in.p == '{' || *in.p == '[')) {
        v = sf_json_tree_value(&in, 0);
    }

    if (v != NULL) {
        sf_json_tree_skip(&in);

        if (in.p != in.end) {
            json_decref(v);
            v = NULL;
        }
    }

    if (in.buf != in.small) {
        free(in.buf);
    }

    return v;
}


static json_t *
sf_json_tree_value(sf_json_tree_in_t *in, unsigned depth)
{
    size_t       len;
    const char  *s;

    sf_json_tree_skip(in);

    if (in->p == in->end) {
        return NULL;
    }

    switch (*in->p) {

    case '{':
        return sf_json_tree_object(in, depth + 1);

    case '[':
        return sf_json_tree_array(in, depth + 1);

    case '"':
        if (sf_json_tree_string(in, &s, &len) != 0) {
            return NULL;
        }

        return json_stringn_nocheck(s, len);

    case 't':
        if (in->end - in->p >= 4 && memcmp(in->p, "true", 4) == 0) {
            in->p += 4;
            return json_true();
        }

        return NULL;

    case 'f':
        if (in->end - in->p >= 5 && memcmp(in->p, "false", 5) == 0) {
            in->p += 5;
            return json_false();
        }

        return NULL;

    case 'n':
        if (in->end - in->p >= 4 && memcmp(in->p, "null", 4) == 0) {
            in->p += 4;
            return json_null();
        }

        return NULL;

    default:
        return sf_json_tree_number(in);
    }
}


static json_t *
sf_json_tree_object(sf_json_tree_in_t *in, unsigned depth)
{
    char         key_small[128], *key;
    size_t       len;
    json_t      *obj, *v;
    const char  *s;

    if (depth > SF_JSON_TREE_DEPTH) {
        return NULL;
    }

    in->p++;                                            /* '{' */

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    sf_json_tree_skip(in);

    if (in->p < in->end && *in->p == '}') {
        in->p++;
        return obj;
    }

    for ( ;; ) {
        sf_json_tree_skip(in);

        if (in->p == in->end || *in->p != '"'
            || sf_json_tree_string(in, &s, &len) != 0)
        {
            goto failed;
        }

        /* the key, NUL-terminated, before the value reuses the buffer */

        key = (len < sizeof(key_small)) ? key_small : malloc(len + 1);
        if (key == NULL) {
            goto failed;
        }

        memcpy(key, s, len);
        key[len] = '\0';

        sf_json_tree_skip(in);

        v = NULL;

        if (in->p < in->end && *in->p == ':') {
            in->p++;
            v = sf_json_tree_value(in, depth);
        }

        /* as jansson's parser: a duplicate key replaces the value */

        if (v == NULL || json_object_set_new_nocheck(obj, key, v) != 0) {
            if (key != key_small) {
                free(key);
            }

            goto failed;
        }

        if (key != key_small) {
            free(key);
        }

        switch (sf_json_tree_next(in, '}')) {
        case 1:
            continue;
        case 0:
            return obj;
        default:
            goto failed;
        }
    }

failed:

    json_decref(obj);
    return NULL;
}


static json_t *
sf_json_tree_array(sf_json_tree_in_t *in, unsigned depth)
{
    json_t  *arr, *v;

    if (depth > SF_JSON_TREE_DEPTH) {
        return NULL;
    }

    in->p++;                                            /* '[' */

    arr = json_array();
    if (arr == NULL) {
        return NULL;
    }

    sf_json_tree_skip(in);

    if (in->p < in->end && *in->p == ']') {
        in->p++;
        return arr;
    }

    for ( ;; ) {
        v = sf_json_tree_value(in, depth);

        if (v == NULL || json_array_append_new(arr, v) != 0) {
            goto failed;
        }

        switch (sf_json_tree_next(in, ']')) {
        case 1:
            continue;
        case 0:
            return arr;
        default:
            goto failed;
        }
    }

failed:

    json_decref(arr);
    return NULL;
}


/* after a member or element: 1 at ',', 0 at close (both taken), else -1 */

static int
sf_json_tree_next(sf_json_tree_in_t *in, unsigned char close)
{
    sf_json_tree_skip(in);

    if (in->p == in->end) {
        return -1;
    }

    if (*in->p == ',') {
        in->p++;
        return 1;
    }

    if (*in->p == close) {
        in->p++;
        return 0;
    }

    return -1;
}


/*
 * The string at in->p (its opening quote): *s and *len its value, in the
 * text itself when it has no escape, else in in->buf.  -1 if it is not a
 * JSON string jansson reads: a raw control character, bytes that are not
 * UTF-8, a bad escape, a lone surrogate, \u0000 (without JSON_ALLOW_NUL).
 */

static int
sf_json_tree_string(sf_json_tree_in_t *in, const char **s, size_t *len)
{
    char                 *d, *nb;
    unsigned              c, lo;
    const unsigned char  *p, *start, *q;
    unsigned              high, esc;

    start = ++in->p;
    high = 0;
    esc = 0;

    for (p = start; p < in->end; p++) {
        while (p < in->end && sf_json_plain[*p]) {
            p++;
        }

        if (p == in->end || *p == '"') {
            break;
        }

        if (*p < 0x20) {
            return -1;
        }

        if (*p == '\\') {
            esc = 1;

            if (++p == in->end) {
                return -1;
            }

        } else if (*p >= 0x80) {
            high = 1;
        }
    }

    if (p == in->end) {
        return -1;
    }

    in->p = p + 1;

    /* escapes are ASCII: the raw bytes are UTF-8 or the value is not */

    if (high && !sf_json_utf8_valid(start, (size_t) (p - start))) {
        return -1;
    }

    if (!esc) {
        *s = (const char *) start;
        *len = (size_t) (p - start);
        return 0;
    }

    /* the value is never longer than its text */

    if ((size_t) (p - start) > in->size) {
        nb = malloc((size_t) (p - start));
        if (nb == NULL) {
            return -1;
        }

        if (in->buf != in->small) {
            free(in->buf);
        }

        in->buf = nb;
        in->size = (size_t) (p - start);
    }

    d = in->buf;

    for (q = start; q < p; q++) {
        if (*q != '\\') {
            *d++ = (char) *q;
            continue;
        }

        q++;

        switch (*q) {
        case '"':
        case '\\':
        case '/':
            *d++ = (char) *q;
            continue;
        case 'b':
            *d++ = '\b';
            continue;
        case 'f':
            *d++ = '\f';
            continue;
        case 'n':
            *d++ = '\n';
            continue;
        case 'r':
            *d++ = '\r';
            continue;
        case 't':
            *d++ = '\t';
            continue;
        case 'u':
            break;
        default:
            return -1;
        }

        if (p - q < 5 || !sf_json_hex4(q + 1, &c) || c == 0) {
            return -1;
        }

        q += 4;

        if (c >= 0xdc00 && c <= 0xdfff) {
            return -1;                              /* a lone low half */
        }

        if (c >= 0xd800 && c <= 0xdbff) {
            if (p - q < 7 || q[1] != '\\' || q[2] != 'u'
                || !sf_json_hex4(q + 3, &lo)
                || lo < 0xdc00 || lo > 0xdfff)
            {
                return -1;
            }

            q += 6;
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        }

        if (c < 0x80) {
            *d++ = (char) c;

        } else if (c < 0x800) {
            *d++ = (char) (0xc0 | (c >> 6));
            *d++ = (char) (0x80 | (c & 0x3f));

        } else if (c < 0x10000) {
            *d++ = (char) (0xe0 | (c >> 12));
            *d++ = (char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (char) (0x80 | (c & 0x3f));

        } else {
            *d++ = (char) (0xf0 | (c >> 18));
            *d++ = (char) (0x80 | ((c >> 12) & 0x3f));
            *d++ = (char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (char) (0x80 | (c & 0x3f));
        }
    }

    *s = in->buf;
    *len = (size_t) (d - in->buf);

    return 0;
}


/*
 * A number as jansson's lexer reads it: an integer when there is neither
 * a fraction nor an exponent (json_int_t; more than 18 digits: unsure),
 * else a real from strtod() (jansson's too, in the C locale nginx runs
 * in; one that overflows: unsure, jansson says why).
 */

static json_t *
sf_json_tree_number(sf_json_tree_in_t *in)
{
    char                  text[64], *e;
    size_t                len, digits;
    double                d;
    json_int_t            n;
    unsigned              real;
    const unsigned char  *p, *start;

    start = in->p;

    len = sf_json_number(start, in->end, &real, &digits);
    if (len == 0) {
        return NULL;
    }

    in->p = start + len;

    if (!real) {
        if (digits > 18) {
            return NULL;
        }

        n = 0;

        for (p = start + (*start == '-'); p < in->p; p++) {
            n = n * 10 + (*p - '0');
        }

        return json_integer(*start == '-' ? -n : n);
    }

    if (len >= sizeof(text)) {
        return NULL;
    }

    memcpy(text, start, len);
    text[len] = '\0';

    d = strtod(text, &e);

    if (e != text + len || isinf(d)) {        /* overflow */
        return NULL;
    }

    return json_real(d);
}


/* writing */

typedef struct {
    char    *buf;
    size_t   len;
    size_t   size;
} sf_json_tree_out_t;


static int sf_json_tree_write(sf_json_tree_out_t *out, const json_t *v,
    unsigned depth);
static int sf_json_tree_room(sf_json_tree_out_t *out, size_t n);
static int sf_json_tree_text(sf_json_tree_out_t *out, const char *s,
    size_t len);


char *
sf_json_tree_dump(const json_t *v, size_t *len)
{
    sf_json_tree_out_t  out;

    /* without JSON_ENCODE_ANY: an object or an array */

    if (v == NULL || (!json_is_object(v) && !json_is_array(v))) {
        return NULL;
    }

    out.buf = NULL;
    out.len = 0;
    out.size = 0;

    if (sf_json_tree_write(&out, v, 0) != 0
        || sf_json_tree_room(&out, 1) != 0)
    {
        free(out.buf);
        return NULL;
    }

    out.buf[out.len] = '\0';

    if (len != NULL) {
        *len = out.len;
    }

    return out.buf;
}


static int
sf_json_tree_write(sf_json_tree_out_t *out, const json_t *v, unsigned depth)
{
    int          n;
    char         num[64];
    size_t       i, size, klen;
    void        *it;
    unsigned     first;
    const char  *key;

    switch (json_typeof(v)) {

    case JSON_OBJECT:
        if (++depth > SF_JSON_TREE_DEPTH || sf_json_tree_room(out, 2) != 0) {
            return -1;
        }

        out->buf[out->len++] = '{';
        first = 1;

        /* jansson keeps (and dumps) the keys in insertion order */

        for (it = json_object_iter((json_t *) v); it != NULL;
             it = json_object_iter_next((json_t *) v, it))
        {
            key = json_object_iter_key(it);
#if JANSSON_VERSION_HEX >= 0x020e00
            klen = json_object_iter_key_len(it);
#else
            klen = strlen(key);
#endif

            if (!first) {
                if (sf_json_tree_room(out, 1) != 0) {
                    return -1;
                }

                out->buf[out->len++] = ',';
            }

            first = 0;

            if (sf_json_tree_text(out, key, klen) != 0
                || sf_json_tree_room(out, 1) != 0)
            {
                return -1;
            }

            out->buf[out->len++] = ':';

            if (sf_json_tree_write(out, json_object_iter_value(it), depth)
                != 0)
            {
                return -1;
            }
        }

        if (sf_json_tree_room(out, 1) != 0) {
            return -1;
        }

        out->buf[out->len++] = '}';
        return 0;

    case JSON_ARRAY:
        if (++depth > SF_JSON_TREE_DEPTH || sf_json_tree_room(out, 2) != 0) {
            return -1;
        }

        out->buf[out->len++] = '[';
        size = json_array_size(v);

        for (i = 0; i < size; i++) {
            if (i != 0) {
                if (sf_json_tree_room(out, 1) != 0) {
                    return -1;
                }

                out->buf[out->len++] = ',';
            }

            if (sf_json_tree_write(out, json_array_get(v, i), depth) != 0) {
                return -1;
            }
        }

        if (sf_json_tree_room(out, 1) != 0) {
            return -1;
        }

        out->buf[out->len++] = ']';
        return 0;

    case JSON_STRING:
        return sf_json_tree_text(out, json_string_value(v),
                                 json_string_length(v));

    case JSON_INTEGER:
        n = (int) sf_json_int(num, (long long) json_integer_value(v));
        break;

    case JSON_REAL:

        /* jansson's own printing of reals (precision, ".0", exponent) */

        n = (int) json_dumpb(v, num, sizeof(num),
                             JSON_ENCODE_ANY | JSON_COMPACT);
        if (n == 0) {
            return -1;
        }

        break;

    case JSON_TRUE:
        n = 4;
        memcpy(num, "true", 4);
        break;

    case JSON_FALSE:
        n = 5;
        memcpy(num, "false", 5);
        break;

    case JSON_NULL:
        n = 4;
        memcpy(num, "null", 4);
        break;

    default:
        return -1;
    }

    if (n <= 0 || (size_t) n >= sizeof(num)
        || sf_json_tree_room(out, (size_t) n) != 0)
    {
        return -1;
    }

    memcpy(out->buf + out->len, num, (size_t) n);
    out->len += (size_t) n;

    return 0;
}


/*
 * A string or key, escaped as sf_json_escape() (jansson) does, in one pass
 * that checks the UTF-8 too: jansson refuses to write a string that is
 * not UTF-8.
 */

static int
sf_json_tree_text(sf_json_tree_out_t *out, const char *s, size_t len)
{
    char                 *d;
    size_t                n;
    const unsigned char  *p, *end, *run;

    if (s == NULL || sf_json_tree_room(out, sf_json_escaped_max(len)) != 0) {
        return -1;
    }

    d = out->buf + out->len;
    *d++ = '"';

    p = (const unsigned char *) s;
    end = p + len;

    while (p < end) {

        /* a run of bytes written as they are */

        run = p;

        while (p < end && sf_json_plain[*p]) {
            p++;
        }

        if (p != run) {
            memcpy(d, run, (size_t) (p - run));
            d += p - run;
            continue;
        }

        if (*p >= 0x80) {
            n = sf_json_utf8(p, (size_t) (end - p), NULL);
            if (n == 0) {
                return -1;
            }

            memcpy(d, p, n);
            d += n;
            p += n;
            continue;
        }

        /* '"', '\\' or a control character, as jansson escapes them */

        d += sf_json_escape_char(d, *p);
        p++;
    }

    *d++ = '"';
    out->len = (size_t) (d - out->buf);

    return 0;
}


static int
sf_json_tree_room(sf_json_tree_out_t *out, size_t n)
{
    char    *nb;
    size_t   size;

    if (out->size - out->len >= n) {
        return 0;
    }

    size = out->size ? out->size : 1024;

    while (size - out->len < n) {
        if (size > ((size_t) -1) / 2) {
            return -1;
        }

        size *= 2;
    }

    nb = realloc(out->buf, size);
    if (nb == NULL) {
        return -1;
    }

    out->buf = nb;
    out->size = size;

    return 0;
}


json_t *
sf_json_load(const char *p, size_t len, json_error_t *err)
{
    size_t   bom;
    json_t  *v;

    /* an upstream's answer with a byte order mark is read all the same */

    bom = sf_json_bom(p, len);
    p += bom;
    len -= bom;

    v = sf_json_tree_load(p, len);

    if (v != NULL) {
        return v;
    }

    return json_loadb(p, len, 0, err);
}


char *
sf_json_dump(const json_t *v)
{
    char  *text;

    text = sf_json_tree_dump(v, NULL);

    if (text != NULL) {
        return text;
    }

    return json_dumps(v, JSON_COMPACT);
}
