
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_mapping*.c: arbitrary bytes as the mapping
 * file.
 *
 * Checks: a mapping is returned exactly when the message is empty; the
 * message is NUL-terminated within SF_MAPPING_ERR_SIZE, valid UTF-8
 * without control characters, and with short buffers (1, 7, 40 bytes) the
 * outcome is the same and the message a prefix of the full one.  A loaded
 * mapping is then used: a fixed PrintNow order is transformed through it
 * (products "1".."3", "integration:X", assorted options; the result must
 * be one of the four codes, with an order exactly for OK, which dumps and
 * loads back equal), the four printnow bodies are rendered, and the
 * status and carrier look-ups run.
 *
 * Seed corpus: the mappings of t/unit/transform/, e.g.
 *
 *   mkdir -p t/fuzz/corpus-sf_mapping
 *   cp t/unit/transform/mapping*.json t/fuzz/corpus-sf_mapping/
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_mapping.h"
#include "sf_transform.h"


static void fuzz_check_text(const char *s, size_t size);
static void fuzz_use(const sf_mapping_t *m);


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static json_t  *fuzz_order;

static const char  fuzz_order_text[] =
    "{\"id\": 42, \"integration_id\": \"EXT-1\","
    " \"customer\": {\"first_name\": \"A\", \"last_name\": \"B\","
    "   \"email\": \"a@b\"},"
    " \"shipping_address\": {\"name\": \"N\", \"line_1\": \"L\","
    "   \"city\": \"C\", \"postal_code\": \"P\", \"country_code\": \"gb\"},"
    " \"shipping_service\": \"UPS Ground\","
    " \"items\": ["
    "  {\"id\": 1, \"quantity\": 2, \"product_id\": 1, \"name\": \"one\","
    "   \"options\": [{\"name\": \"a\", \"value\": \"x y/\\u00e9\"},"
    "     {\"name\": \"URL\", \"value\": \"https://h/p q\"},"
    "     {\"name\": \"b\", \"value\": 3, \"value_integration_id\": \"B3\"}]},"
    "  {\"id\": \"2/x\", \"quantity\": \"5\", \"product_id\": \"2\"},"
    "  {\"id\": 3, \"quantity\": 1, \"product_id\": 3,"
    "   \"options\": [{\"name\": \"a\", \"value\": true}]},"
    "  {\"id\": 4, \"quantity\": 1, \"product_id\": 99,"
    "   \"integration_id\": \"X\"}"
    " ]}";


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;

    fuzz_order = json_loads(fuzz_order_text, 0, NULL);
    if (fuzz_order == NULL) {
        abort();
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           err[SF_MAPPING_ERR_SIZE], *small;
    size_t         i, len;
    sf_mapping_t  *m, *m2;
    static const size_t  sizes[] = { 1, 7, 40 };

    memset(err, 'Z', sizeof(err));

    m = sf_mapping_parse((const char *) data, size, "fuzz.json", err,
                         sizeof(err));

    fuzz_check_text(err, sizeof(err));

    if ((m == NULL) != (err[0] != '\0')) {
        abort();
    }

    len = strlen(err);

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        small = malloc(sizes[i]);
        if (small == NULL) {
            break;
        }

        memset(small, 'Z', sizes[i]);

        m2 = sf_mapping_parse((const char *) data, size, "fuzz.json", small,
                              sizes[i]);

        if ((m2 == NULL) != (m == NULL)) {
            abort();
        }

        fuzz_check_text(small, sizes[i]);

        if (strlen(small) > len || memcmp(small, err, strlen(small)) != 0) {
            abort();
        }

        sf_mapping_free(m2);
        free(small);
    }

    if (m != NULL) {
        fuzz_use(m);
        sf_mapping_free(m);
    }

    return 0;
}


/* NUL-terminated within size, valid UTF-8, no control characters */

static void
fuzz_check_text(const char *s, size_t size)
{
    size_t   i;
    json_t  *j;

    if (memchr(s, '\0', size) == NULL) {
        abort();
    }

    for (i = 0; s[i] != '\0'; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            abort();
        }
    }

    j = json_string(s);
    if (j == NULL) {
        abort();
    }

    json_decref(j);
}


static void
fuzz_use(const sf_mapping_t *m)
{
    int            rc;
    char           reason[SF_TRANSFORM_REASON_SIZE], *text;
    char           sid[SF_TRANSFORM_SOURCE_ID_MAX + 1];
    json_t        *out, *body, *again;
    unsigned       i;
    sf_pn_vars_t   vars;

    rc = sf_transform_order(m, fuzz_order, NULL, &out, reason,
                            sizeof(reason));

    fuzz_check_text(reason, sizeof(reason));

    if (rc == SF_TRANSFORM_OK) {
        if (out == NULL || reason[0] != '\0') {
            abort();
        }

        if (sf_transform_source_order_id(m, fuzz_order, sid, sizeof(sid))
            != SF_TRANSFORM_OK)
        {
            abort();
        }

        text = json_dumps(out, JSON_COMPACT);
        if (text == NULL) {
            abort();
        }

        again = json_loads(text, 0, NULL);

        if (again == NULL || !json_equal(again, out)) {
            abort();
        }

        json_decref(again);
        free(text);
        json_decref(out);

    } else if (rc > SF_TRANSFORM_ERROR || out != NULL || reason[0] == '\0') {
        abort();
    }

    memset(&vars, 0, sizeof(vars));
    vars.tracking_number = "1Z 9";
    vars.carrier = "UPS";
    vars.order_id = "42";
    vars.item_id = "7";
    vars.comment = "\xc3\xa9t\xc3\xa9";

    for (i = 0; i < SF_PN_COUNT; i++) {
        if (sf_mapping_printnow_body(m, (sf_pn_call_t) i, &vars, &body)
            != 0)
        {
            abort();
        }

        if ((body != NULL) != (m->has_printnow[i] != 0)) {
            abort();
        }

        json_decref(body);
    }

    for (i = 0; i < SF_EVENT_COUNT; i++) {
        (void) sf_mapping_status(m, (sf_mapping_event_t) i);
    }

    (void) sf_mapping_carrier(m, "UPS Ground", 10);
    (void) sf_mapping_carrier(m, NULL, 0);
}
