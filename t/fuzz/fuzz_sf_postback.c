
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_postback.c.
 *
 * sf_postback_parse() on the input as a body, and on the input spliced in
 * as the items array of a shipped postback; each with item arrays of
 * 1 and SF_PB_MAX_ITEMS entries and with none (NULL), and with err
 * buffers of 0, 1, 8 and 1024 bytes, every buffer an exact-size heap
 * block so that ASan catches a write past it.  Checks: the result does
 * not depend on the err size; err is NUL-terminated, valid UTF-8 without
 * control characters, a cut err ends with "..." and is a prefix of the
 * full one; on SF_PB_OK every string of the struct is NUL-terminated in
 * its buffer and valid UTF-8 (no control characters in the message),
 * the event is known, nitems is within the limit, the ship date is "" or
 * a YYYY-MM-DD, and a postback is the same as itself; the results with
 * the small, the large and no items array agree.
 *
 * Seed corpus: the JSON files in t/unit/postback/.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_postback.h"


#define FUZZ_ERR_FULL  1024


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void fuzz_utf8(const char *s, size_t size, int controls);
static void fuzz_struct(const sf_postback_t *pb, unsigned limit);
static void fuzz_body(const char *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         *body;
    size_t        n;
    static const char  head[] =
        "{\"sourceOrderId\":\"1\",\"event\":\"shipped\",\"shipmentIndex\":0,"
        "\"items\":[";
    static const char  tail[] = "]}";

    fuzz_body((const char *) data, size);

    n = sizeof(head) - 1 + size + sizeof(tail) - 1;

    body = malloc(n);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, head, sizeof(head) - 1);
    memcpy(body + sizeof(head) - 1, data, size);
    memcpy(body + sizeof(head) - 1 + size, tail, sizeof(tail) - 1);

    fuzz_body(body, n);

    free(body);

    return 0;
}


/* NUL-terminated within size, valid UTF-8, no control characters unless
   allowed (they never are in what sf_postback.c writes) */

static void
fuzz_utf8(const char *s, size_t size, int controls)
{
    size_t   i, len;
    json_t  *j;

    len = strnlen(s, size);

    if (len >= size) {
        abort();
    }

    for (i = 0; i < len && !controls; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            abort();
        }
    }

    j = json_stringn(s, len);

    if (j == NULL) {
        abort();
    }

    json_decref(j);
}


static void
fuzz_struct(const sf_postback_t *pb, unsigned limit)
{
    unsigned  i;

    if (sf_postback_event_name(pb->event) == NULL
        || strcmp(pb->event_name, sf_postback_event_name(pb->event)) != 0
        || sf_postback_rank(pb->event) < 0
        || pb->source_order_id[0] == '\0'
        || pb->shipment_index < -1
        || pb->nitems > limit
        || !sf_postback_same(pb, pb)
        || !sf_postback_supersedes(pb->event, 0))
    {
        abort();
    }

    fuzz_utf8(pb->event_name, sizeof(pb->event_name), 0);
    fuzz_utf8(pb->source_order_id, sizeof(pb->source_order_id), 0);
    fuzz_utf8(pb->timestamp, sizeof(pb->timestamp), 0);
    fuzz_utf8(pb->tracking_number, sizeof(pb->tracking_number), 0);
    fuzz_utf8(pb->tracking_url, sizeof(pb->tracking_url), 0);
    fuzz_utf8(pb->carrier, sizeof(pb->carrier), 0);
    fuzz_utf8(pb->ship_date, sizeof(pb->ship_date), 0);
    fuzz_utf8(pb->message, sizeof(pb->message), 0);

    if (pb->ship_date[0] != '\0'
        && (strlen(pb->ship_date) != 10 || pb->ship_date[4] != '-'
            || pb->ship_date[7] != '-'))
    {
        abort();
    }

    if (pb->tracking_url[0] != '\0'
        && strncasecmp(pb->tracking_url, "http", 4) != 0)
    {
        abort();
    }

    if (pb->items != NULL) {
        for (i = 0; i < pb->nitems; i++) {
            fuzz_utf8(pb->items[i], SF_PB_ITEM_ID_LEN, 0);

            if (pb->items[i][0] == '\0') {
                abort();
            }
        }
    }
}


static void
fuzz_body(const char *data, size_t size)
{
    char           *err, *full;
    size_t          i, len, full_len;
    unsigned        small_n, large_n, none_n;
    sf_pb_rc_t      rc, full_rc, small_rc, none_rc;
    sf_postback_t   pb;
    char          (*small)[SF_PB_ITEM_ID_LEN];
    char          (*large)[SF_PB_ITEM_ID_LEN];
    static const size_t  sizes[] = { 1, 8 };

    full = malloc(FUZZ_ERR_FULL);
    small = malloc(sizeof(*small));
    large = malloc(sizeof(*large) * SF_PB_MAX_ITEMS);

    if (full == NULL || small == NULL || large == NULL) {
        goto done;
    }

    /* a large items array */

    full_rc = sf_postback_parse(data, size, &pb, large, SF_PB_MAX_ITEMS,
                                full, FUZZ_ERR_FULL);

    if (full_rc > SF_PB_UNKNOWN_EVENT) {
        abort();
    }

    fuzz_utf8(full, FUZZ_ERR_FULL, 0);
    full_len = strlen(full);

    if ((full_rc == SF_PB_OK) != (full_len == 0) || pb.items != large) {
        abort();
    }

    large_n = pb.nitems;

    if (full_rc == SF_PB_OK) {
        fuzz_struct(&pb, SF_PB_MAX_ITEMS);
    }

    /* no items array: the same result, ids counted */

    none_rc = sf_postback_parse(data, size, &pb, NULL, 0, NULL, 0);
    none_n = pb.nitems;

    if (none_rc != full_rc || pb.items != NULL
        || (full_rc == SF_PB_OK && none_n != large_n))
    {
        abort();
    }

    if (none_rc == SF_PB_OK) {
        fuzz_struct(&pb, SF_PB_MAX_ITEMS);
    }

    /* a one-entry items array: the same unless there are more ids */

    small_rc = sf_postback_parse(data, size, &pb, small, 1, NULL, 0);
    small_n = pb.nitems;

    if (full_rc == SF_PB_OK) {
        if (large_n <= 1 ? small_rc != SF_PB_OK || small_n != large_n
                         : small_rc != SF_PB_INVALID)
        {
            abort();
        }

        if (small_rc == SF_PB_OK) {
            fuzz_struct(&pb, 1);
        }

    } else if (small_rc != full_rc) {
        abort();
    }

    /* small err buffers: same result, the message cut cleanly */

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        err = malloc(sizes[i]);
        if (err == NULL) {
            break;
        }

        rc = sf_postback_parse(data, size, &pb, large, SF_PB_MAX_ITEMS, err,
                               sizes[i]);

        if (rc != full_rc) {
            abort();
        }

        fuzz_utf8(err, sizes[i], 0);
        len = strlen(err);

        if (len == full_len) {
            if (memcmp(err, full, len) != 0) {
                abort();
            }

        } else if (len >= 3) {
            if (memcmp(err + len - 3, "...", 3) != 0
                || memcmp(err, full, len - 3) != 0)
            {
                abort();
            }

        } else if (len != 0) {
            abort();
        }

        free(err);
    }

done:

    free(full);
    free(small);
    free(large);
}
