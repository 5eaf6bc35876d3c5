
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_order.c: the send decision on any facts and
 * any order status (the status comes from a hook body or from PrintNow).
 *
 * The first 4 bytes choose the facts (stage, index, deleted, flags, the
 * number of triggers, the reason buffer size), the rest is the status.
 * Checks: the decision is a known one; the reason stays inside the buffer
 * (a heap buffer of exactly that size); a decision to act has no reason,
 * a skip has one when there is room; a status matched by a trigger is
 * sent at the hook unless a check before it says otherwise, and a status
 * that is not a trigger status is quoted byte for byte.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf_order.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const sf_order_str_t  triggers[] = {
    { 4, (const unsigned char *) "Paid" },
    { 8, (const unsigned char *) "Approved" },
    { 1, (const unsigned char *) "\xff" }
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                 *buf;
    size_t                len, bufsize;
    sf_order_facts_t      f;
    sf_order_decision_t   d;

    if (size < 4) {
        return 0;
    }

    memset(&f, 0, sizeof(f));

    f.stage = (data[0] & 1) ? SF_ORDER_AT_JOB : SF_ORDER_AT_HOOK;
    f.index = (sf_order_index_t) ((data[0] >> 1) % 3);
    f.deleted = (sf_order_deleted_t) ((data[0] >> 3) % 3);
    f.archived = (data[0] >> 5) & 1;
    f.fetch = (data[0] >> 6) & 1;
    f.cancel_on_delete = (data[0] >> 7) & 1;
    f.pending_order = data[1] & 1;
    f.pending_cancel = (data[1] >> 1) & 1;
    f.force = (data[1] >> 2) & 1;
    f.manual = (data[1] >> 3) & 1;
    f.lookup = (data[1] >> 4) & 1;
    f.ntriggers = (data[1] >> 5) % 4;
    f.triggers = triggers;

    f.siteflow_id = (data[2] & 1) ? "sf-id" : NULL;
    f.siteflow_id_len = f.siteflow_id ? 5 : 0;
    f.now_ms = 100000;
    f.updated_ms = (data[2] & 2) ? 99000 : 0;
    f.echo_window = (data[2] & 4) ? 5000 : 0;

    if (!(data[2] & 8)) {
        f.status = (const char *) data + 4;
        f.status_len = size - 4;
    }

    bufsize = data[3];

    buf = malloc(bufsize ? bufsize : 1);
    if (buf == NULL) {
        return 0;
    }

    d = sf_order_decide(&f, bufsize ? buf : NULL, bufsize, &len);

    if ((unsigned) d >= SF_ORDER_DECISIONS || len > bufsize) {
        abort();
    }

    if (strcmp(sf_order_decision_name(d), "unknown") == 0) {
        abort();
    }

    if (d <= SF_ORDER_LOOKUP) {
        if (len != 0) {
            abort();
        }

    } else if (bufsize > 0 && len == 0) {
        abort();
    }

    if (d == SF_ORDER_SKIP_STATUS
        && bufsize >= 8 + f.status_len
        && memcmp(buf + 8, f.status, f.status_len) != 0)
    {
        abort();
    }

    if (d == SF_ORDER_SEND && !f.manual && !f.lookup
        && (f.status == NULL || f.ntriggers == 0))
    {
        abort();
    }

    free(buf);

    return 0;
}
