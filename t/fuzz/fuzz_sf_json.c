
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for the readers of sf_json.c that let the module
 * skip jansson: sf_json_strict() (hook bodies), sf_json_members() and
 * sf_json_compact() (spool payloads).
 *
 * Checks: when sf_json_strict() says yes, jansson reads the input with
 * JSON_REJECT_DUPLICATES, reads the copy as an equal value, and
 * sf_json_members() gives every member of it with equal values; when
 * sf_json_compact() says yes, jansson reads the input and writes it back
 * byte for byte (unless it has a key twice, the documented exception);
 * sf_json_escape() writes what jansson writes for valid UTF-8.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_json.h"


#define FUZZ_MEMBERS  64


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
fuzz_strict(const uint8_t *data, size_t size)
{
    int                n, i;
    char               key[256];
    size_t             len;
    json_t            *a, *b, *v;
    unsigned char     *out;
    sf_json_member_t   m[FUZZ_MEMBERS];

    out = malloc(size ? size : 1);
    if (out == NULL) {
        return;
    }

    if (!sf_json_strict(data, size, out, &len)) {
        free(out);
        return;
    }

    a = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
    if (a == NULL || !json_is_object(a)) {
        abort();
    }

    b = json_loadb((const char *) out, len, JSON_REJECT_DUPLICATES, NULL);
    if (b == NULL || !json_equal(a, b)) {
        abort();
    }

    n = sf_json_members(out, len, m, FUZZ_MEMBERS);

    if (n >= 0) {
        if ((size_t) n != json_object_size(a)) {
            abort();
        }

        for (i = 0; i < n && i < FUZZ_MEMBERS; i++) {
            if (m[i].key_len >= sizeof(key)) {
                continue;
            }

            memcpy(key, m[i].key, m[i].key_len);
            key[m[i].key_len] = '\0';

            v = json_loadb((const char *) m[i].value, m[i].value_len,
                           JSON_DECODE_ANY, NULL);
            if (v == NULL || !json_equal(v, json_object_get(a, key))) {
                abort();
            }

            json_decref(v);
        }
    }

    json_decref(a);
    json_decref(b);
    free(out);
}


static void
fuzz_compact(const uint8_t *data, size_t size)
{
    char    *back;
    json_t  *v;

    if (!sf_json_compact(data, size)) {
        return;
    }

    v = json_loadb((const char *) data, size, 0, NULL);
    if (v == NULL) {
        abort();
    }

    back = json_dumps(v, JSON_COMPACT);
    json_decref(v);

    if (back == NULL) {
        abort();
    }

    if ((strlen(back) != size || memcmp(back, data, size) != 0)
        && json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES,
                      NULL) != NULL)
    {
        abort();
    }

    free(back);
}


static void
fuzz_escape(const uint8_t *data, size_t size)
{
    char    *out, *back;
    size_t   n;
    json_t  *v;

    if (size > 4096 || !sf_json_utf8_valid(data, size)) {
        return;
    }

    out = malloc(sf_json_escaped_max(size));
    if (out == NULL) {
        return;
    }

    n = sf_json_escape(out, (const char *) data, size);

    v = json_stringn((const char *) data, size);
    back = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    if (back == NULL || strlen(back) != n || memcmp(back, out, n) != 0) {
        abort();
    }

    free(back);
    json_decref(v);
    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_strict(data, size);
    fuzz_compact(data, size);
    fuzz_escape(data, size);

    return 0;
}
