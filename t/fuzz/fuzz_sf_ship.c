
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_ship.c.
 *
 * sf_ship_validate(): arbitrary bytes as the request body, with message
 * buffers of 0, 1, 4, 16, 64 and 4096 bytes, each an exact-size heap
 * block so that ASan catches any write past it.  Checks: the message is
 * NUL-terminated within the buffer, valid UTF-8 without control
 * characters; the result and the problem count do not depend on the
 * buffer size; a cut INVALID message is a prefix of the full one ending
 * in "; ..." (or is "..." or "").
 *
 * The same against the reference, the jansson-tree validation of commit
 * 0903028 (t/unit/ref_ship.h): result, problem count and message must be
 * equal, and so must sf_ship_order_number() and the order id the Site
 * Flow Log took then.
 *
 * sf_ship_json_escape(): the same bytes; the output never passes the
 * buffer, is cut only between whole units (a prefix of the full output),
 * and the full output, in quotes, parses as a JSON string that equals the
 * input whenever the input is valid UTF-8.
 *
 * Seed corpus: the JSON files in t/unit/ship/.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_ship.h"
#include "../unit/ref_ship.h"


#define FUZZ_FULL  4096


static void fuzz_check_text(const char *s, size_t len);
static void fuzz_validate(const char *data, size_t size);
static void fuzz_reference(const char *data, size_t size);
static void fuzz_escape(const char *data, size_t size);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_validate((const char *) data, size);
    fuzz_reference((const char *) data, size);
    fuzz_escape((const char *) data, size);

    return 0;
}


/* valid UTF-8 (RFC 3629) and no control characters */

static void
fuzz_check_text(const char *s, size_t len)
{
    json_t  *j;
    size_t   i;

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            abort();
        }
    }

    /* jansson's json_stringn() rejects invalid UTF-8 */

    j = json_stringn(s, len);

    if (j == NULL) {
        abort();
    }

    json_decref(j);
}


static void
fuzz_validate(const char *data, size_t size)
{
    char          *buf, *full;
    size_t         i, len, full_len;
    unsigned       n, full_n;
    sf_ship_rc_t   rc, full_rc;
    static const size_t  sizes[] = { 1, 4, 16, 64 };

    full = malloc(FUZZ_FULL);
    if (full == NULL) {
        return;
    }

    full_rc = sf_ship_validate(data, size, full, FUZZ_FULL, &full_n);

    if (full_rc > SF_SHIP_ERROR) {
        abort();
    }

    full_len = strnlen(full, FUZZ_FULL);
    if (full_len >= FUZZ_FULL) {
        abort();
    }

    fuzz_check_text(full, full_len);

    switch (full_rc) {
    case SF_SHIP_OK:
        if (full_n != 0 || full_len != 0) {
            abort();
        }
        break;

    case SF_SHIP_INVALID:
        if (full_n == 0 || full_len == 0) {
            abort();
        }
        break;

    case SF_SHIP_BAD_JSON:
        if (full_n != 1 || full_len == 0) {
            abort();
        }
        break;

    default:
        /* SF_SHIP_ERROR: allocation failure only */
        break;
    }

    /* no buffer at all */

    n = 12345;
    rc = sf_ship_validate(data, size, NULL, 0, &n);

    if (rc != full_rc || (rc != SF_SHIP_ERROR && n != full_n)) {
        abort();
    }

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        buf = malloc(sizes[i]);
        if (buf == NULL) {
            break;
        }

        memset(buf, 'Z', sizes[i]);

        rc = sf_ship_validate(data, size, buf, sizes[i], &n);

        if (rc != full_rc || (rc != SF_SHIP_ERROR && n != full_n)) {
            abort();
        }

        if (memchr(buf, '\0', sizes[i]) == NULL) {
            abort();
        }

        len = strlen(buf);

        fuzz_check_text(buf, len);

        if (len == full_len) {
            if (memcmp(buf, full, len) != 0) {
                abort();
            }

        } else if (rc == SF_SHIP_INVALID && len > 0
                   && strcmp(buf, "...") != 0)
        {
            /* whole problems, then "; ..." */

            if (len < 5 || memcmp(buf + len - 5, "; ...", 5) != 0
                || memcmp(buf, full, len - 5) != 0
                || memcmp(full + len - 5, "; ", 2) != 0)
            {
                abort();
            }

        } else if (rc != SF_SHIP_INVALID && len > 0) {
            /* a prefix of the full message, "..." appended if room */

            if (len < 3 || memcmp(buf + len - 3, "...", 3) != 0
                || memcmp(buf, full, len - 3) != 0)
            {
                abort();
            }
        }

        free(buf);
    }

    free(full);
}


static void
fuzz_reference(const char *data, size_t size)
{
    char          *msg, *ref, id[300], ref_id[300];
    size_t         k, ref_k;
    unsigned       n, ref_n;
    sf_ship_rc_t   rc, ref_rc;

    msg = malloc(FUZZ_FULL);
    ref = malloc(FUZZ_FULL);

    if (msg == NULL || ref == NULL) {
        free(msg);
        free(ref);
        return;
    }

    rc = sf_ship_validate(data, size, msg, FUZZ_FULL, &n);
    ref_rc = ref_ship_validate(data, size, ref, FUZZ_FULL, &ref_n);

    /* an allocation failure of jansson may hit one and not the other */

    if (rc != SF_SHIP_ERROR && ref_rc != SF_SHIP_ERROR
        && (rc != ref_rc || n != ref_n || strcmp(msg, ref) != 0))
    {
        abort();
    }

    k = sf_ship_order_number(data, size, id, sizeof(id));
    ref_k = ref_ship_order_number(data, size, ref_id, sizeof(ref_id));

    if (k != ref_k || memcmp(id, ref_id, k) != 0) {
        abort();
    }

    free(msg);
    free(ref);
}


static void
fuzz_escape(const char *data, size_t size)
{
    char          *full, *buf, *quoted;
    size_t         need, n, i;
    json_t        *j, *in;
    static const size_t  sizes[] = { 1, 2, 7, 16 };

    need = sf_ship_json_escaped_len(data, size);

    full = malloc(need + 1);
    quoted = malloc(need + 2);

    if (full == NULL || quoted == NULL) {
        free(full);
        free(quoted);
        return;
    }

    n = sf_ship_json_escape(data, size, full, need + 1);

    if (n != need || full[n] != '\0') {
        abort();
    }

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        buf = malloc(sizes[i]);
        if (buf == NULL) {
            break;
        }

        n = sf_ship_json_escape(data, size, buf, sizes[i]);

        if (n >= sizes[i] || buf[n] != '\0' || n > need
            || memcmp(buf, full, n) != 0)
        {
            abort();
        }

        /* cut between units: what was written is itself a valid string */

        quoted[0] = '"';
        memcpy(quoted + 1, buf, n);
        quoted[n + 1] = '"';

        j = json_loadb(quoted, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                       NULL);
        if (j == NULL || !json_is_string(j)) {
            abort();
        }

        json_decref(j);
        free(buf);
    }

    /* the full output is a JSON string equal to valid UTF-8 input */

    quoted[0] = '"';
    memcpy(quoted + 1, full, need);
    quoted[need + 1] = '"';

    j = json_loadb(quoted, need + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    if (j == NULL || !json_is_string(j)) {
        abort();
    }

    in = json_stringn(data, size);

    if (in != NULL) {
        if (json_string_length(j) != size
            || memcmp(json_string_value(j), data, size) != 0)
        {
            abort();
        }

        json_decref(in);
    }

    json_decref(j);
    free(full);
    free(quoted);
}
