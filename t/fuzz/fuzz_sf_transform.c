
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_transform*.c: arbitrary bytes, decoded by
 * jansson as the PrintNow order, transformed through a fixed mapping
 * (every placeholder kind, URL paths with a leading placeholder, an
 * integration key, carriers with "*", defaults, a ship_to.name override
 * that falls back to the built-in rule when a value is missing).
 *
 * Checks: the order is not modified; the result is one of the four
 * codes; SKIP and INVALID give a non-empty reason and no order, any
 * result gives a NUL-terminated reason of valid UTF-8 without control
 * characters, also when cut short; OK gives a SiteFlow order that has
 * everything SiteFlow requires (destination.name, sourceOrderId equal to
 * sf_transform_source_order_id(), 1..1000 items with unique non-empty
 * sourceItemId, non-empty sku, quantity 1..10^9, components whose path is
 * an "http(s)://" URL of printable ASCII, shipTo with name, address1,
 * town, postcode and an upper-case 2-3 letter isoCountry), no JSON null
 * anywhere, and that dumps and loads back equal.
 *
 * Seed corpus: the orders of t/unit/transform/, e.g.
 *
 *   mkdir -p t/fuzz/corpus-sf_transform
 *   cp t/unit/transform/[0-9]*.order.json t/fuzz/corpus-sf_transform/
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sf_mapping.h"
#include "sf_transform.h"


static void fuzz_check_text(const char *s);
static void fuzz_no_null(const json_t *j);
static const char *fuzz_str(const json_t *obj, const char *key);
static void fuzz_check_order(const json_t *order, const json_t *out);


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static sf_mapping_t  *fuzz_mapping;

static const char  fuzz_mapping_text[] =
    "{"
    "\"source_order_id\": \"PN-{order_id}\","
    "\"destination\": \"fuzz\","
    "\"products\": {"
    "  \"12\": {\"sku\": \"BC-{option:Size}\","
    "    \"components\": [{\"code\": \"text\","
    "      \"path\": \"https://f.example/{order_id}/{item_id}.pdf\","
    "      \"attributes\": {\"finish\": \"{option:Finish}\","
    "        \"code\": \"{option_integration_id:Paper}\", \"n\": 1,"
    "        \"b\": false, \"r\": 0.5}}]},"
    "  \"13\": {\"sku\": \"FLY\", \"description\": \"{sku} x{quantity}\","
    "    \"components\": [{\"code\": \"c\","
    "      \"path\": \"{option:URL}\"},"
    "      {\"code\": \"t\", \"path\": \"http://f/{sku}/{product_id}?q="
    "{quantity}&o={option:Größe / Size}\"}]},"
    "  \"0\": {\"sku\": \"ZERO\", \"components\": [{\"code\": \"c\","
    "      \"path\": \"https://f/{{x}}/{item_id}\"}]},"
    "  \"integration:X\": {\"sku\": \"{product_id}\", \"components\": "
    "    [{\"code\": \"c\", \"path\": \"https://f/{item_id}\"}]}"
    "},"
    "\"carriers\": {\"UPS Ground\": \"ups\", \"*\": \"std\"},"
    "\"return_address\": {\"name\": \"R\", \"address1\": \"A\", "
    "  \"town\": \"T\", \"postcode\": \"P\", \"isoCountry\": \"US\"},"
    "\"defaults\": {\"options\": {\"Size\": \"std\"}, \"phone\": \"0\"},"
    "\"ship_to\": {\"name\": \"{ship_last_name}, {ship_first_name} "
    "({ship_address_label}) {customer_last_name}\"}"
    "}";


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char  err[SF_MAPPING_ERR_SIZE];

    (void) argc;
    (void) argv;

    fuzz_mapping = sf_mapping_parse(fuzz_mapping_text,
                                    sizeof(fuzz_mapping_text) - 1,
                                    "fuzz.json", err, sizeof(err));
    if (fuzz_mapping == NULL) {
        abort();
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int      rc, rc2;
    char     reason[SF_TRANSFORM_REASON_SIZE], small[8];
    json_t  *order, *copy, *out, *out2;
    size_t   i;

    order = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);
    if (order == NULL) {
        return 0;
    }

    copy = json_deep_copy(order);
    if (copy == NULL) {
        json_decref(order);
        return 0;
    }

    memset(reason, 'Z', sizeof(reason));

    rc = sf_transform_order(fuzz_mapping, order, NULL, &out, reason,
                            sizeof(reason));

    if (!json_equal(order, copy)) {
        abort();
    }

    fuzz_check_text(reason);

    switch (rc) {

    case SF_TRANSFORM_OK:
        if (out == NULL || reason[0] != '\0') {
            abort();
        }

        fuzz_check_order(order, out);
        json_decref(out);
        break;

    case SF_TRANSFORM_SKIP:
    case SF_TRANSFORM_INVALID:
    case SF_TRANSFORM_ERROR:
        if (out != NULL || reason[0] == '\0') {
            abort();
        }

        break;

    default:
        abort();
    }

    /* the same result with short reason buffers, a prefix of the reason */

    for (i = 1; i <= sizeof(small); i += 3) {
        memset(small, 'Z', sizeof(small));

        rc2 = sf_transform_order(fuzz_mapping, order, "d", &out2, small, i);

        if (rc2 != rc || memchr(small, '\0', i) == NULL
            || strncmp(small, reason, strlen(small)) != 0)
        {
            abort();
        }

        fuzz_check_text(small);
        json_decref(out2);
    }

    json_decref(copy);
    json_decref(order);

    return 0;
}


/* valid UTF-8 without control characters */

static void
fuzz_check_text(const char *s)
{
    size_t   i;
    json_t  *j;

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
fuzz_no_null(const json_t *j)
{
    size_t       i;
    json_t      *v;
    const char  *key;

    if (json_is_null(j)) {
        abort();
    }

    if (json_is_object(j)) {
        json_object_foreach((json_t *) j, key, v) {
            fuzz_no_null(v);
        }

    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            fuzz_no_null(v);
        }
    }
}


/* a non-empty string member, or abort */

static const char *
fuzz_str(const json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (!json_is_string(v) || json_string_length(v) == 0) {
        abort();
    }

    return json_string_value(v);
}


static void
fuzz_check_order(const json_t *order, const json_t *out)
{
    int          rc;
    char         sid[SF_TRANSFORM_SOURCE_ID_MAX + 1], *text;
    size_t       i, j, k, n;
    json_t      *od, *items, *it, *comps, *c, *q, *ship, *to, *again;
    const char  *p, *a, *b;

    fuzz_no_null(out);

    (void) fuzz_str(json_object_get(out, "destination"), "name");

    od = json_object_get(out, "orderData");

    rc = sf_transform_source_order_id(fuzz_mapping, order, sid, sizeof(sid));

    if (rc != SF_TRANSFORM_OK || strcmp(sid, fuzz_str(od, "sourceOrderId"))
                                 != 0)
    {
        abort();
    }

    items = json_object_get(od, "items");
    n = json_array_size(items);

    if (n == 0 || n > SF_TRANSFORM_MAX_ITEMS) {
        abort();
    }

    for (i = 0; i < n; i++) {
        it = json_array_get(items, i);

        a = fuzz_str(it, "sourceItemId");

        for (j = 0; j < i; j++) {
            b = fuzz_str(json_array_get(items, j), "sourceItemId");

            if (strcmp(a, b) == 0) {
                abort();
            }
        }

        (void) fuzz_str(it, "sku");

        q = json_object_get(it, "quantity");

        if (!json_is_integer(q) || json_integer_value(q) < 1
            || json_integer_value(q) > SF_TRANSFORM_MAX_QUANTITY)
        {
            abort();
        }

        comps = json_object_get(it, "components");

        if (json_array_size(comps) == 0) {
            abort();
        }

        for (j = 0; j < json_array_size(comps); j++) {
            c = json_array_get(comps, j);

            (void) fuzz_str(c, "code");
            p = fuzz_str(c, "path");

            if (strncasecmp(p, "http://", 7) != 0
                && strncasecmp(p, "https://", 8) != 0)
            {
                abort();
            }

            for (k = 0; p[k] != '\0'; k++) {
                if ((unsigned char) p[k] <= 0x20
                    || (unsigned char) p[k] >= 0x7f)
                {
                    abort();
                }
            }

            if (!json_is_true(json_object_get(c, "fetch"))) {
                abort();
            }
        }
    }

    ship = json_array_get(json_object_get(od, "shipments"), 0);
    to = json_object_get(ship, "shipTo");

    (void) fuzz_str(to, "name");
    (void) fuzz_str(to, "address1");
    (void) fuzz_str(to, "town");
    (void) fuzz_str(to, "postcode");
    p = fuzz_str(to, "isoCountry");

    for (k = 0; p[k] != '\0'; k++) {
        if (p[k] < 'A' || p[k] > 'Z') {
            abort();
        }
    }

    if (k != 2 && k != 3) {
        abort();
    }

    (void) fuzz_str(json_object_get(ship, "carrier"), "alias");

    /* what is sent reads back the same */

    text = json_dumps(out, JSON_COMPACT);
    if (text == NULL) {
        abort();
    }

    again = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

    if (again == NULL || !json_equal(again, out)) {
        abort();
    }

    json_decref(again);
    free(text);
}
