
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_ship.c: Ship API shipment request validation and the
 * JSON string escaping helper.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "sf_ship.h"
#include "ref_ship.h"


#define MSG_SIZE  8192


/* the example body of the SiteFlow "Ship API Request" page, verbatim */

static const char  seed_body[] =
    "{\n"
    "  \"output\": {\n"
    "    \"type\": \"printer\",\n"
    "    \"deviceName\": \"zebra01\",\n"
    "    \"format\": \"pdf\",\n"
    "    \"orientation\": \"portrait\",\n"
    "    \"dimensions\": {\n"
    "      \"unit\": \"inch\",\n"
    "      \"width\": 4,\n"
    "      \"height\": 6\n"
    "    },\n"
    "    \"dpi\": 203\n"
    "  },\n"
    "  \"shipmentId\": \"5976029c770e36a13e25a85e\",\n"
    "  \"timezone\": \"Europe/London\",\n"
    "  \"dateFormat\": \"dd/MM/yyyy\",\n"
    "  \"weightUnit\": \"g\",\n"
    "  \"dimensionUnit\": \"mm\",\n"
    "  \"currency\": \"GBP\",\n"
    "  \"shipTo\": {\n"
    "    \"name\": \"John Smith\",\n"
    "    \"companyName\": \"HP GSB Solutions\",\n"
    "    \"address1\": \"1 Primrose Street\",\n"
    "    \"address2\": \"200 Commerce Street\",\n"
    "    \"address3\": \"\",\n"
    "    \"town\": \"London\",\n"
    "    \"state\": \"\",\n"
    "    \"postcode\": \"IG11 0HQ\",\n"
    "    \"isoCountry\": \"GB\",\n"
    "    \"phone\": \"0202223333\",\n"
    "    \"email\": \"siteflow@hp.com \"\n"
    "  },\n"
    "  \"orderNumber\": \"20170721051327\",\n"
    "  \"carrier\": {},\n"
    "  \"return\": {\n"
    "    \"name\": \"Jane Doe\",\n"
    "    \"companyName\": \"HP GSB Solutions\",\n"
    "    \"address1\": \"1 Primrose Street\",\n"
    "    \"address2\": \"\",\n"
    "    \"address3\": \"\",\n"
    "    \"town\": \"London\",\n"
    "    \"state\": \"\",\n"
    "    \"postcode\": \"IG11 0HQ\",\n"
    "    \"isoCountry\": \"GB\",\n"
    "    \"phone\": \"0202223333\",\n"
    "    \"email\": \"getintouch@hp.com\"\n"
    "  },\n"
    "  \"shipper\": {\n"
    "    \"name\": \"Mr Smith\",\n"
    "    \"address1\": \"1 Primrose Street\",\n"
    "    \"town\": \"London\",\n"
    "    \"postcode\": \"IG11 0HQ\",\n"
    "    \"isoCountry\": \"GB\",\n"
    "    \"phone\": \"0202223333\",\n"
    "    \"email\": \"getintouch@hp.com\"\n"
    "  },\n"
    "  \"packages\": [\n"
    "    {\n"
    "      \"weight\": 6,\n"
    "      \"totalWeight\": 11,\n"
    "      \"height\": 334,\n"
    "      \"width\": 229,\n"
    "      \"depth\": 1,\n"
    "      \"volume\": 76486,\n"
    "      \"referenceNumber\": \"20170721051327-1-1\",\n"
    "      \"value\": 200,\n"
    "      \"items\": [\n"
    "        {\n"
    "          \"type\": \"production\",\n"
    "          \"barcode\": \"B30000B96B\",\n"
    "          \"sourceItemId\": \"20170721051327-1\",\n"
    "          \"description\": \"Postcard\",\n"
    "          \"value\": 200,\n"
    "          \"count\": 1\n"
    "        }\n"
    "      ]\n"
    "    }\n"
    "  ]\n"
    "}\n";


/* only what is mandatory */

static const char  minimal_body[] =
    "{\"shipmentId\":\"s1\",\"orderNumber\":1,"
    "\"shipTo\":{\"name\":\"a\",\"address1\":\"b\",\"town\":\"c\","
    "\"postcode\":\"d\",\"isoCountry\":\"GB\"},"
    "\"return\":{\"name\":\"a\",\"address1\":\"b\",\"town\":\"c\","
    "\"postcode\":\"d\",\"isoCountry\":\"GBR\"},"
    "\"shipper\":{\"name\":\"a\",\"address1\":\"b\",\"town\":\"c\","
    "\"postcode\":\"d\",\"isoCountry\":\"826\"},"
    "\"packages\":[{\"items\":[{}]}]}";


/* several problems at once, and the exact message they give */

static const char  multi_body[] =
    "{\"output\":{\"format\":\"PDF\",\"dimensions\":{\"unit\":\"cm\"}},"
    "\"shipmentId\":\"  \",\"weightUnit\":\"kg\","
    "\"shipTo\":{\"name\":\"a\",\"address1\":\"b\",\"town\":\"c\","
    "\"isoCountry\":\"GB\"},"
    "\"return\":{\"name\":\"a\",\"address1\":\"b\",\"town\":\"c\","
    "\"postcode\":\"d\",\"isoCountry\":\"Great Britain\"},"
    "\"shipper\":[],"
    "\"packages\":[{\"items\":[]},7,"
    "{\"items\":[{\"count\":0,\"type\":\"gift\"},{\"count\":2}]}]}";

static const char  multi_msg[] =
    "output.format must be one of pdf, png, zpl; "
    "output.dimensions.unit must be one of mm, inch; "
    "shipmentId must not be empty; "
    "weightUnit must be one of g, oz; "
    "shipTo.postcode is required; "
    "orderNumber is required; "
    "return.isoCountry must be an ISO 3166-1 country code "
    "(2 or 3 letters, or 3 digits); "
    "shipper must be an object; "
    "packages[0].items must be a non-empty array; "
    "packages[1] must be an object; "
    "packages[2].items[0].count must be a positive integer; "
    "packages[2].items[0].type must be one of production, stock";

#define MULTI_COUNT  12


static sf_ship_rc_t
run(const char *body, size_t len, char *msg, unsigned *n)
{
    return sf_ship_validate(body, len, msg, MSG_SIZE, n);
}


static sf_ship_rc_t
run_str(const char *body, char *msg, unsigned *n)
{
    return run(body, strlen(body), msg, n);
}


/* true if s is valid UTF-8 without control characters */

static int
clean_text(const char *s)
{
    size_t  i, len, quoted;

    len = strlen(s);
    quoted = 0;

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }

        if (s[i] == '"' || s[i] == '\\') {
            quoted++;
        }
    }

    /* only '"' and '\\' escaped, no replacement: valid UTF-8 */

    return sf_ship_json_escaped_len(s, len) == len + quoted
           && strstr(s, "\xef\xbf\xbd") == NULL;
}


/*
 * Parses the seed body, applies one change at path "obj.key" (obj may be
 * "" for the root, or "packages0" / "item00" for the first package and
 * item), validates the result and returns the rc; value NULL deletes.
 */

static sf_ship_rc_t
mutate(const char *obj, const char *key, json_t *value, char *msg,
    unsigned *n)
{
    char          *text;
    json_t        *root, *target;
    sf_ship_rc_t   rc;

    root = json_loads(seed_body, 0, NULL);
    assert_non_null(root);

    if (obj[0] == '\0') {
        target = root;

    } else if (strcmp(obj, "packages0") == 0) {
        target = json_array_get(json_object_get(root, "packages"), 0);

    } else if (strcmp(obj, "item00") == 0) {
        target = json_array_get(json_object_get(
                     json_array_get(json_object_get(root, "packages"), 0),
                     "items"), 0);

    } else if (strcmp(obj, "dimensions") == 0) {
        target = json_object_get(json_object_get(root, "output"),
                                 "dimensions");

    } else {
        target = json_object_get(root, obj);
    }

    assert_non_null(target);

    if (value == NULL) {
        assert_int_equal(json_object_del(target, key), 0);

    } else {
        assert_int_equal(json_object_set_new(target, key, value), 0);
    }

    text = json_dumps(root, 0);
    assert_non_null(text);

    rc = run_str(text, msg, n);

    free(text);
    json_decref(root);

    return rc;
}


static void
expect_one(const char *obj, const char *key, json_t *value,
    const char *expected)
{
    char      msg[MSG_SIZE];
    unsigned  n;

    assert_int_equal(mutate(obj, key, value, msg, &n), SF_SHIP_INVALID);
    assert_string_equal(msg, expected);
    assert_int_equal(n, 1);
}


static void
expect_ok(const char *obj, const char *key, json_t *value)
{
    char      msg[MSG_SIZE];
    unsigned  n;

    assert_int_equal(mutate(obj, key, value, msg, &n), SF_SHIP_OK);
    assert_string_equal(msg, "");
    assert_int_equal(n, 0);
}


static void
test_seed_valid(void **state)
{
    char      msg[MSG_SIZE];
    unsigned  n;

    (void) state;

    n = 99;
    strcpy(msg, "junk");

    assert_int_equal(run(seed_body, sizeof(seed_body) - 1, msg, &n),
                     SF_SHIP_OK);
    assert_string_equal(msg, "");
    assert_int_equal(n, 0);

    assert_int_equal(run_str(minimal_body, msg, &n), SF_SHIP_OK);
    assert_int_equal(n, 0);

    /* nproblems may be NULL, and msg too when its size is 0 */

    assert_int_equal(sf_ship_validate(seed_body, sizeof(seed_body) - 1,
                                      NULL, 0, NULL),
                     SF_SHIP_OK);
}


static void
test_address_fields(void **state)
{
    char         expected[256];
    size_t       a, k;
    const char  *addrs[] = { "shipTo", "return", "shipper" };
    const char  *keys[] = { "name", "address1", "town", "postcode",
                            "isoCountry" };

    (void) state;

    for (a = 0; a < 3; a++) {
        for (k = 0; k < 5; k++) {
            snprintf(expected, sizeof(expected), "%s.%s is required",
                     addrs[a], keys[k]);
            expect_one(addrs[a], keys[k], NULL, expected);
            expect_one(addrs[a], keys[k], json_null(), expected);

            snprintf(expected, sizeof(expected), "%s.%s must not be empty",
                     addrs[a], keys[k]);
            expect_one(addrs[a], keys[k], json_string(""), expected);
            expect_one(addrs[a], keys[k], json_string(" \t\r\n"), expected);

            snprintf(expected, sizeof(expected), "%s.%s must be a string",
                     addrs[a], keys[k]);
            expect_one(addrs[a], keys[k], json_integer(5), expected);
            expect_one(addrs[a], keys[k], json_true(), expected);
            expect_one(addrs[a], keys[k], json_object(), expected);
        }

        snprintf(expected, sizeof(expected), "%s is required", addrs[a]);
        expect_one("", addrs[a], NULL, expected);
        expect_one("", addrs[a], json_null(), expected);

        snprintf(expected, sizeof(expected), "%s must be an object",
                 addrs[a]);
        expect_one("", addrs[a], json_array(), expected);
        expect_one("", addrs[a], json_string("x"), expected);

        /* optional address fields are not checked */

        expect_ok(addrs[a], "phone", json_integer(202));
        expect_ok(addrs[a], "email", NULL);
    }
}


static void
test_country_codes(void **state)
{
    size_t       i;
    const char  *good[] = { "GB", "gb", "GBR", "Gbr", "826", "004" };
    const char  *bad[] = { "G", "GBRX", "G1", "12", "1234", "GB ", " GB",
                           "G-", "\xc3\x84\x42", "82a" };

    (void) state;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        expect_ok("shipTo", "isoCountry", json_string(good[i]));
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_one("shipper", "isoCountry", json_string(bad[i]),
                   "shipper.isoCountry must be an ISO 3166-1 country code "
                   "(2 or 3 letters, or 3 digits)");
    }
}


static void
test_top_fields(void **state)
{
    (void) state;

    expect_one("", "shipmentId", NULL, "shipmentId is required");
    expect_one("", "shipmentId", json_string(""),
               "shipmentId must not be empty");
    expect_one("", "shipmentId", json_integer(5),
               "shipmentId must be a string");

    expect_one("", "orderNumber", NULL, "orderNumber is required");
    expect_one("", "orderNumber", json_null(), "orderNumber is required");
    expect_one("", "orderNumber", json_string(" "),
               "orderNumber must not be empty");
    expect_one("", "orderNumber", json_false(),
               "orderNumber must be a string or a number");
    expect_one("", "orderNumber", json_array(),
               "orderNumber must be a string or a number");
    expect_ok("", "orderNumber", json_integer(20170721051327LL));
    expect_ok("", "orderNumber", json_real(12.5));

    /* unknown keys are allowed, unchecked keys are not checked */

    expect_ok("", "somethingNew", json_pack("{s:[i]}", "x", 1));
    expect_ok("", "carrier", json_string("anything"));
    expect_ok("", "currency", json_integer(1));
    expect_ok("", "output", NULL);
}


static void
test_enums(void **state)
{
    (void) state;

    expect_ok("output", "format", json_string("png"));
    expect_ok("output", "format", json_string("zpl"));
    expect_ok("output", "format", json_null());
    expect_one("output", "format", json_string("PDF"),
               "output.format must be one of pdf, png, zpl");
    expect_one("output", "format", json_string("pdf "),
               "output.format must be one of pdf, png, zpl");
    expect_one("output", "format", json_string(""),
               "output.format must be one of pdf, png, zpl");
    expect_one("output", "format", json_integer(1),
               "output.format must be a string");

    expect_ok("output", "orientation", json_string("landscape"));
    expect_one("output", "orientation", json_string("upside-down"),
               "output.orientation must be one of portrait, landscape");

    expect_one("", "output", json_string("pdf"), "output must be an object");
    expect_one("output", "dimensions", json_integer(4),
               "output.dimensions must be an object");
    expect_ok("dimensions", "unit", json_string("mm"));
    expect_ok("dimensions", "unit", NULL);
    expect_one("dimensions", "unit", json_string("cm"),
               "output.dimensions.unit must be one of mm, inch");
    expect_one("dimensions", "unit", json_array(),
               "output.dimensions.unit must be a string");

    expect_ok("", "weightUnit", json_string("oz"));
    expect_one("", "weightUnit", json_string("kg"),
               "weightUnit must be one of g, oz");
    expect_one("", "weightUnit", json_real(1.0),
               "weightUnit must be a string");

    expect_ok("", "dimensionUnit", json_string("inch"));
    expect_one("", "dimensionUnit", json_string("in"),
               "dimensionUnit must be one of mm, inch");
}


static void
test_packages(void **state)
{
    (void) state;

    expect_one("", "packages", NULL, "packages is required");
    expect_one("", "packages", json_array(),
               "packages must be a non-empty array");
    expect_one("", "packages", json_object(),
               "packages must be a non-empty array");
    expect_one("", "packages", json_pack("[i]", 1),
               "packages[0] must be an object");
    expect_one("", "packages", json_pack("[n]"),
               "packages[0] must be an object");

    expect_one("packages0", "items", NULL, "packages[0].items is required");
    expect_one("packages0", "items", json_array(),
               "packages[0].items must be a non-empty array");
    expect_one("packages0", "items", json_string("x"),
               "packages[0].items must be a non-empty array");
    expect_one("packages0", "items", json_pack("[{}s]", "x"),
               "packages[0].items[1] must be an object");

    expect_ok("item00", "count", json_integer(2));
    expect_ok("item00", "count", NULL);
    expect_one("item00", "count", json_integer(0),
               "packages[0].items[0].count must be a positive integer");
    expect_one("item00", "count", json_integer(-3),
               "packages[0].items[0].count must be a positive integer");
    expect_one("item00", "count", json_real(1.0),
               "packages[0].items[0].count must be a positive integer");
    expect_one("item00", "count", json_string("1"),
               "packages[0].items[0].count must be a positive integer");

    expect_ok("item00", "type", json_string("stock"));
    expect_ok("item00", "type", NULL);
    expect_one("item00", "type", json_string("Stock"),
               "packages[0].items[0].type must be one of production, stock");
    expect_one("item00", "type", json_integer(3),
               "packages[0].items[0].type must be a string");
}


static void
test_multiple(void **state)
{
    char      msg[MSG_SIZE];
    unsigned  n;

    (void) state;

    assert_int_equal(run_str(multi_body, msg, &n), SF_SHIP_INVALID);
    assert_string_equal(msg, multi_msg);
    assert_int_equal(n, MULTI_COUNT);
}


/*
 * Every buffer size from 0 to past the full message: never more than size
 * bytes, always NUL-terminated, the full message when it fits, otherwise
 * whole problems followed by "; ..." (or just "..."/"" when tiny).
 */

static void
test_truncation(void **state)
{
    char          *buf;
    size_t         size, len, full;
    unsigned       n;
    sf_ship_rc_t   rc;

    (void) state;

    full = sizeof(multi_msg) - 1;

    for (size = 0; size <= full + 8; size++) {
        /* an exact-size heap block, so ASan sees any overflow */
        buf = malloc(size > 0 ? size : 1);
        assert_non_null(buf);

        n = 0;
        rc = sf_ship_validate(multi_body, sizeof(multi_body) - 1,
                              size > 0 ? buf : NULL, size, &n);

        assert_int_equal(rc, SF_SHIP_INVALID);
        assert_int_equal(n, MULTI_COUNT);

        if (size == 0) {
            free(buf);
            continue;
        }

        len = strnlen(buf, size);
        assert_true(len < size);

        if (size > full) {
            assert_string_equal(buf, multi_msg);

        } else if (size < 4) {
            assert_string_equal(buf, "");

        } else if (strcmp(buf, "...") != 0) {
            assert_true(len >= 5);
            assert_memory_equal(buf + len - 5, "; ...", 5);

            /* a prefix of the full message, cut at a problem boundary */
            assert_memory_equal(buf, multi_msg, len - 5);
            assert_memory_equal(multi_msg + len - 5, "; ", 2);

            /* and as much as fits: the next problem would not have */
            assert_true(strstr(multi_msg + len - 3, "; ") == NULL
                        || (size_t) (strstr(multi_msg + len - 3, "; ")
                                     - multi_msg) + 6 > size);

        } else {
            /* not even the first problem fits with "; ..." after it */
            assert_true(strlen("output.format must be one of pdf, png, zpl")
                        + 6 > size);
        }

        free(buf);
    }
}


static void
test_bad_json(void **state)
{
    char          msg[MSG_SIZE];
    char          small[24];
    unsigned      n;
    const char   *s;

    (void) state;

    s = "{\n  \"shipmentId\": x\n}";
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "invalid JSON at line 2, column 17: "
                             "invalid token near 'x'");
    assert_int_equal(n, 1);

    s = "{\"a\": 1,";
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_BAD_JSON);
    assert_true(strncmp(msg, "invalid JSON at line 1, column ", 31) == 0);

    /* a truncated seed body */
    assert_int_equal(run(seed_body, 200, msg, &n), SF_SHIP_BAD_JSON);
    assert_true(strncmp(msg, "invalid JSON at line ", 21) == 0);

    s = "{\"shipTo\": {}, \"shipTo\": {}}";
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_BAD_JSON);
    assert_non_null(strstr(msg, "duplicate object key"));

    s = "{\"shipmentId\": \"a\\u0000b\"}";
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_BAD_JSON);
    assert_non_null(strstr(msg, "NUL character"));

    s = "{\"a\": 1} trailing";
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_BAD_JSON);

    /* raw NUL byte, invalid UTF-8, control bytes: message stays clean */

    assert_int_equal(run("{\"a\":\0}", 7, msg, &n), SF_SHIP_BAD_JSON);
    assert_true(clean_text(msg));

    assert_int_equal(run_str("{\"a\":\"\xff\xfe\"}", msg, &n),
                     SF_SHIP_BAD_JSON);
    assert_true(clean_text(msg));

    assert_int_equal(run_str("{\"a\":\"\xc3\xa9\x01\"}", msg, &n),
                     SF_SHIP_BAD_JSON);
    assert_true(clean_text(msg));

    assert_int_equal(run_str("{\"\xc3\xa9\xc3\xa9\xc3\xa9\": \x1b[31m}", msg,
                             &n),
                     SF_SHIP_BAD_JSON);
    assert_true(clean_text(msg));

    /* a small buffer: cut cleanly, ends with "..." */

    assert_int_equal(sf_ship_validate("{\n  \"shipmentId\": x\n}", 21,
                                      small, sizeof(small), &n),
                     SF_SHIP_BAD_JSON);
    assert_string_equal(small, "invalid JSON at line...");
    assert_int_equal(n, 1);

    /* top level must be an object */

    assert_int_equal(run_str("[1, 2]", msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "request body must be a JSON object");
    assert_int_equal(n, 1);

    assert_int_equal(run_str(" 42 ", msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "request body must be a JSON object");

    assert_int_equal(run_str("\"x\"", msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "request body must be a JSON object");

    assert_int_equal(run_str("null", msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "request body must be a JSON object");
}


static void
test_empty(void **state)
{
    char      msg[MSG_SIZE];
    unsigned  n;

    (void) state;

    assert_int_equal(run("", 0, msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "empty request body");
    assert_int_equal(n, 1);

    assert_int_equal(run(NULL, 0, msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "empty request body");

    assert_int_equal(run_str(" \r\n\t ", msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "empty request body");

    assert_int_equal(run(NULL, 5, msg, &n), SF_SHIP_ERROR);
    assert_int_equal(n, 0);
}


static char *
nested(size_t levels, const char *inner)
{
    char    *s, *p;
    size_t   i, len;

    len = strlen("{\"shipmentId\":\"x\",\"carrier\":") + levels * 6
          + strlen(inner) + 2;

    s = malloc(len);
    assert_non_null(s);

    p = s;
    p += sprintf(p, "{\"shipmentId\":\"x\",\"carrier\":");

    for (i = 0; i < levels; i++) {
        p += sprintf(p, "{\"a\":");
    }

    p += sprintf(p, "%s", inner);

    for (i = 0; i < levels; i++) {
        *p++ = '}';
    }

    *p++ = '}';
    *p = '\0';

    return s;
}


static void
test_depth(void **state)
{
    char      msg[MSG_SIZE];
    char     *s;
    unsigned  n;

    (void) state;

    /* root + 30 objects + [ ] = 32 levels: allowed */

    s = nested(30, "[1]");
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_INVALID);
    assert_null(strstr(msg, "nesting"));
    free(s);

    /* 33 levels */

    s = nested(31, "[1]");
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "invalid JSON at line 1, column 184: "
                             "nesting too deep (more than 32 levels)");
    assert_int_equal(n, 1);
    free(s);

    /* brackets inside strings, with escaped quotes, do not count */

    s = nested(1, "\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"");
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_INVALID);
    assert_null(strstr(msg, "nesting"));
    free(s);

    /* far beyond jansson's own limit: stopped before parsing */

    s = malloc(100001);
    assert_non_null(s);
    memset(s, '[', 100000);
    s[100000] = '\0';

    assert_int_equal(run_str(s, msg, &n), SF_SHIP_BAD_JSON);
    assert_string_equal(msg, "invalid JSON at line 1, column 33: "
                             "nesting too deep (more than 32 levels)");
    free(s);
}


static char *
many_packages(size_t npackages, size_t nitems, const char *package)
{
    char      *s, *text;
    size_t     i;
    json_t    *root, *packages, *items, *pkg;

    root = json_loads(minimal_body, 0, NULL);
    assert_non_null(root);

    items = json_array();
    for (i = 0; i < nitems; i++) {
        json_array_append_new(items, json_pack("{si}", "count", 1));
    }

    packages = json_array();
    for (i = 0; i < npackages; i++) {
        if (package != NULL) {
            pkg = json_loads(package, JSON_DECODE_ANY, NULL);
            assert_non_null(pkg);

        } else {
            pkg = json_pack("{sO}", "items", items);
        }

        json_array_append_new(packages, pkg);
    }

    json_object_set_new(root, "packages", packages);
    json_decref(items);

    text = json_dumps(root, JSON_COMPACT);
    assert_non_null(text);
    json_decref(root);

    s = text;

    return s;
}


#define HUGE_PREFIX                                                           \
    "packages: too many packages (5000, limit 1000); "                        \
    "packages[0] must be an object; "


static void
test_huge(void **state)
{
    char     *s, msg[MSG_SIZE];
    unsigned  n;

    (void) state;

    s = many_packages(SF_SHIP_MAX_PACKAGES, 1, NULL);
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_OK);
    free(s);

    s = many_packages(SF_SHIP_MAX_PACKAGES + 1, 1, NULL);
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_INVALID);
    assert_string_equal(msg, "packages: too many packages (1001, limit 1000)");
    assert_int_equal(n, 1);
    free(s);

    s = many_packages(1, SF_SHIP_MAX_ITEMS, NULL);
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_OK);
    free(s);

    s = many_packages(2, SF_SHIP_MAX_ITEMS + 5, NULL);
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_INVALID);
    assert_string_equal(msg,
                        "packages[0].items: too many items (1005, limit 1000); "
                        "packages[1].items: too many items (1005, limit 1000)");
    assert_int_equal(n, 2);
    free(s);

    /* 5000 bad packages: only the first 1000 are looked at and counted */

    s = many_packages(5000, 0, "7");
    assert_int_equal(run_str(s, msg, &n), SF_SHIP_INVALID);
    assert_int_equal(n, 1 + SF_SHIP_MAX_PACKAGES);
    assert_true(strncmp(msg, HUGE_PREFIX, strlen(HUGE_PREFIX)) == 0);
    assert_true(strlen(msg) < MSG_SIZE);
    assert_string_equal(msg + strlen(msg) - 5, "; ...");
    free(s);
}



/*
 * The scanner and the checks on the text against the reference (the
 * jansson-tree validation of commit 0903028, t/unit/ref_ship.h): same
 * result, problem count and message, with a full and with small message
 * buffers; the order number of the log likewise.
 */

static void
compare_reference(const char *body, size_t len, unsigned all_sizes)
{
    char          msg[MSG_SIZE], ref[MSG_SIZE], id[64], ref_id[64];
    size_t        k, ref_k, i;
    unsigned      n, ref_n;
    sf_ship_rc_t  rc, ref_rc;
    static const size_t  sizes[] = { 0, 1, 4, 40, 100 };

    rc = sf_ship_validate(body, len, msg, sizeof(msg), &n);
    ref_rc = ref_ship_validate(body, len, ref, sizeof(ref), &ref_n);

    if (rc != ref_rc || n != ref_n || strcmp(msg, ref) != 0) {
        print_message("body (%zu bytes): %.*s\n new: %d %u %s\n"
                      " ref: %d %u %s\n", len, (int) len, body, rc, n, msg,
                      ref_rc, ref_n, ref);
        fail();
    }

    for (i = 0; all_sizes && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rc = sf_ship_validate(body, len, msg, sizes[i], &n);
        ref_rc = ref_ship_validate(body, len, ref, sizes[i], &ref_n);

        assert_int_equal(rc, ref_rc);
        assert_int_equal(n, ref_n);

        if (sizes[i] > 0) {
            assert_string_equal(msg, ref);
        }
    }

    /* validating gives the same order number, for a JSON object */

    rc = sf_ship_validate_order(body, len, msg, sizeof(msg), &n, id,
                                sizeof(id), &k);
    ref_rc = ref_ship_validate(body, len, ref, sizeof(ref), &ref_n);
    ref_k = ref_ship_order_number(body, len, ref_id, sizeof(ref_id));

    assert_int_equal(rc, ref_rc);
    assert_string_equal(msg, ref);

    if (rc == SF_SHIP_OK || rc == SF_SHIP_INVALID) {
        assert_int_equal(k, ref_k);
        assert_memory_equal(id, ref_id, k);

    } else {
        assert_int_equal(k, 0);
    }

    for (i = all_sizes ? 1 : sizeof(id); i <= sizeof(id); i += 21) {
        k = sf_ship_order_number(body, len, id, i);
        ref_k = ref_ship_order_number(body, len, ref_id, i);

        if (k != ref_k || memcmp(id, ref_id, k) != 0) {
            print_message("body (%zu bytes): %.*s\n new order id: %.*s\n"
                          " ref order id: %.*s\n", len, (int) len, body,
                          (int) k, id, (int) ref_k, ref_id);
            fail();
        }
    }
}


static void
same_as_reference(const char *body, size_t len)
{
    compare_reference(body, len, 1);
}


#define SAME(s)  same_as_reference(s, sizeof(s) - 1)

#define ADDR  "{\"name\":\"a\",\"address1\":\"b\",\"town\":\"c\"," \
              "\"postcode\":\"d\",\"isoCountry\":\"GB\"}"
#define TOP   "\"shipmentId\":\"s\",\"orderNumber\":\"o\",\"shipTo\":" ADDR \
              ",\"return\":" ADDR ",\"shipper\":" ADDR

static void
test_reference_cases(void **state)
{
    (void) state;

    same_as_reference(seed_body, sizeof(seed_body) - 1);
    same_as_reference(minimal_body, sizeof(minimal_body) - 1);
    same_as_reference(multi_body, sizeof(multi_body) - 1);

    /* escaped keys: the same member as the plain spelling */

    SAME("{\"shipment\\u0049d\":\"x\",\"\\u006frderNumber\":7}");
    SAME("{" TOP ",\"pack\\u0061ges\":[{\"items\":[{\"c\\u006funt\":0}]}]}");
    SAME("{" TOP ",\"packages\":[{\"items\":[{}]}],\"shipment\\u0049d\":1}");
    SAME("{\"a\\\"b\":1,\"a\\\\b\":2,\"a\\/b\":3,\"\\b\\f\\n\\r\\t\":4}");
    SAME("{\"a\":1,\"\\u0061\":2}");
    SAME("{\"\\u00e9\":1,\"\\u00E9\":2}");
    SAME("{\"\xc3\xa9\":1,\"\\u00e9\":2}");
    SAME("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}");
    SAME("{\"shipTo\":{\"n\\u0061me\":\"\",\"name\":\"x\"}}");

    /* duplicate keys, at every level */

    SAME("{\"a\":1,\"b\":2,\"a\":3}");
    SAME("{\"x\":{\"a\":1,\"a\":1}}");
    SAME("{\"x\":[{\"a\":1},{\"a\":1}],\"y\":{\"a\":{\"a\":{\"a\":1}}}}");
    SAME("{\"x\":[{\"a\":1,\"b\":{\"a\":2},\"a\":3}]}");
    SAME("{\"orderNumber\":\"first\",\"orderNumber\":\"last\"}");
    SAME("{\"orderNumber\":1,\"orderNumber\":null}");

    /* strings: escapes, surrogates, NUL, UTF-8, control characters */

    SAME("{\"shipmentId\":\"\\ud83d\\ude00\"}");
    SAME("{\"shipmentId\":\"\\ud800\"}");
    SAME("{\"shipmentId\":\"\\udc00x\"}");
    SAME("{\"shipmentId\":\"\\ud800\\u0041\"}");
    SAME("{\"shipmentId\":\"\\ud800\\\\\"}");
    SAME("{\"shipmentId\":\"a\\u0000\"}");
    SAME("{\"a\\u0000b\":1}");
    SAME("{\"shipmentId\":\"\\u00zz\"}");
    SAME("{\"shipmentId\":\"\\x\"}");
    SAME("{\"shipmentId\":\"\\u12\"}");
    SAME("{\"shipmentId\":\"\xc3\"}");
    SAME("{\"shipmentId\":\"\xc0\xaf\"}");
    SAME("{\"shipmentId\":\"\xed\xa0\x80\"}");
    SAME("{\"shipmentId\":\"\xf4\x90\x80\x80\"}");
    SAME("{\"shipmentId\":\"\xf0\x9f\x98\x80\"}");
    SAME("{\"shipmentId\":\"\x7f\"}");
    SAME("{\"shipmentId\":\"\x1f\"}");
    SAME("{\"shipmentId\":\"a\nb\"}");
    SAME("{\"shipmentId\":\"a\tb\"}");
    SAME("{\"shipmentId\":\"unterminated}");
    SAME("{\"shipmentId\":\"\\");
    SAME("{\"\xff\":1}");

    /* blank */

    SAME("{\"shipmentId\":\" \\t\\n\\r\\f\\u000b\\u000B\\u0020\"}");
    SAME("{\"shipmentId\":\"\\u00a0\"}");
    SAME("{\"shipmentId\":\"\\b\"}");
    SAME("{\"shipmentId\":\"\\/\"}");
    SAME("{\"shipmentId\":\"\\u0008\"}");
    SAME("{\"shipmentId\":\"\\u000e\"}");
    SAME("{\"orderNumber\":\" \\u0009 \"}");
    SAME("{\"shipTo\":{\"name\":\"\\u000d\",\"town\":\"\\u000c\"}}");

    /* enumerations and country codes, escaped */

    SAME("{\"output\":{\"format\":\"p\\u0064f\"},\"weightUnit\":\"\\u0067\"}");
    SAME("{\"output\":{\"format\":\"pdf\\u0000\"}}");
    SAME("{\"output\":{\"orientation\":\"portrait \",\"format\":\"PDF\"}}");
    SAME("{\"output\":{\"dimensions\":{\"unit\":\"inch\\/\"}}}");
    SAME("{\"output\":{\"dimensions\":{\"unit\":\"\\u0069nch\"}}}");
    SAME("{\"output\":{\"dimensions\":[]}}");
    SAME("{\"output\":{\"dimensions\":{\"unit\":null}}}");
    SAME("{\"output\":[],\"weightUnit\":1,\"dimensionUnit\":\"cm\"}");
    SAME("{\"output\":{\"format\":\"a-very-long-format-name-indeed\"}}");
    SAME("{\"shipTo\":{\"isoCountry\":\"G\\u0042\"}}");
    SAME("{\"shipTo\":{\"isoCountry\":\"\\u00e9\\u00e9\"}}");
    SAME("{\"shipTo\":{\"isoCountry\":\"\xc3\xa9\"}}");
    SAME("{\"shipTo\":{\"isoCountry\":\"1A\"}}");
    SAME("{\"shipTo\":{\"isoCountry\":\"12\"}}");
    SAME("{\"shipTo\":{\"isoCountry\":\"GBRX\"}}");
    SAME("{\"shipTo\":{\"isoCountry\":\"G\\u0000\"}}");

    /* numbers */

    SAME("{\"orderNumber\":123456789012345678}");
    SAME("{\"orderNumber\":1234567890123456789}");
    SAME("{\"orderNumber\":9223372036854775807}");
    SAME("{\"orderNumber\":9223372036854775808}");
    SAME("{\"orderNumber\":-9223372036854775808}");
    SAME("{\"orderNumber\":-9223372036854775809}");
    SAME("{\"orderNumber\":-0}");
    SAME("{\"orderNumber\":0}");
    SAME("{\"orderNumber\":-12}");
    SAME("{\"orderNumber\":1.5}");
    SAME("{\"orderNumber\":1e308}");
    SAME("{\"orderNumber\":1e309}");
    SAME("{\"orderNumber\":-1e309}");
    SAME("{\"orderNumber\":1e250}");
    SAME("{\"orderNumber\":1e251}");
    SAME("{\"orderNumber\":1.5e-400}");
    SAME("{\"orderNumber\":1E+2,\"x\":0.0,\"y\":-0.0e-0}");
    SAME("{\"orderNumber\":"
         "123456789012345678901234567890123456789012345678901234567890.5}");
    SAME("{\"orderNumber\":01}");
    SAME("{\"orderNumber\":-}");
    SAME("{\"orderNumber\":1.}");
    SAME("{\"orderNumber\":.5}");
    SAME("{\"orderNumber\":1e}");
    SAME("{\"orderNumber\":1e+}");
    SAME("{\"orderNumber\":+1}");
    SAME("{\"orderNumber\":-01}");
    SAME("{\"orderNumber\":1.2.3}");
    SAME("{\"orderNumber\":12true}");
    SAME("{\"orderNumber\":\"\"}");
    SAME("{\"orderNumber\":true}");
    SAME("{\"orderNumber\":[1]}");
    SAME("{\"orderNumber\":{}}");
    SAME("{\"orderNumber\":\"a\\u00e9\\ud83d\\ude00\\n\"}");
    SAME("{\"orderNumber\":\"" "0123456789012345678901234567890123456789"
         "0123456789012345678901234567890123456789\\u00e9" "\"}");

    /* count */

    SAME("{" TOP ",\"packages\":[{\"items\":[{\"count\":1},{\"count\":0},"
         "{\"count\":-0},{\"count\":-1},{\"count\":1.0},{\"count\":1e0},"
         "{\"count\":\"1\"},{\"count\":true},{\"count\":null},"
         "{\"count\":[]},{\"count\":{}},{\"count\":90},"
         "{\"count\":123456789012345678},"
         "{\"count\":1234567890123456789},{\"count\":2E1},"
         "{\"type\":\"stock\"},{\"type\":\"Stock\"},{\"type\":7},"
         "{\"type\":null},{\"type\":\"st\\u006fck\"},[],1,null]}]}");
    SAME("{" TOP ",\"packages\":[null,{\"items\":null},{\"items\":{}},"
         "{\"items\":[]},{\"items\":[null]},{\"items\":\"x\"},[],\"p\"]}");
    SAME("{" TOP ",\"packages\":{}}");
    SAME("{" TOP ",\"packages\":[]}");
    SAME("{" TOP ",\"packages\":null}");

    /* literals, structure, whitespace */

    SAME("{\"a\":true,\"b\":false,\"c\":null,\"d\":[true,false,null]}");
    SAME("{\"a\":tru}");
    SAME("{\"a\":truex}");
    SAME("{\"a\":nul}");
    SAME("{\"a\":[true false]}");
    SAME("{\"a\":True}");
    SAME("{\"a\":1,}");
    SAME("{\"a\":[1,]}");
    SAME("{\"a\":[,1]}");
    SAME("{,}");
    SAME("{\"a\" 1}");
    SAME("{\"a\"::1}");
    SAME("{1:1}");
    SAME("{'a':1}");
    SAME("{\"a\":1}}");
    SAME("{\"a\":[1]]}");
    SAME("{\"a\":[1}");
    SAME("{\"a\":{]}");
    SAME("{}");
    SAME("{} {}");
    SAME("{}x");
    SAME(" \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n1 \t\r\n} \t\r\n");
    SAME("{\f}");
    SAME("{\"a\":1\v}");
    SAME("\xef\xbb\xbf{}");
    SAME("{\"a\":1}\0");
    SAME("{\0}");
    SAME("[{}]");
    SAME("[]");
    SAME("\"x\"");
    SAME("1");
    SAME("null");
    SAME("{");
    SAME("{\"a\"");
    SAME("{\"a\":");
    SAME("{\"a\":1");
    SAME("{\"a\":[");
    SAME("{\"a\":{\"b\":[{\"c\":\"d\"}");
}


/* objects with many keys, duplicates late, depth at the limits */

static void
test_reference_shapes(void **state)
{
    char    *s, *p;
    size_t   i, k;

    (void) state;

    s = malloc(65536);
    assert_non_null(s);

    for (k = 60; k <= 70; k++) {

        /* k distinct keys, then k keys with a duplicate at the end */

        p = s + sprintf(s, "{\"shipmentId\":\"s\"");

        for (i = 0; i < k; i++) {
            p += sprintf(p, ",\"k%zu\":%zu", i, i);
        }

        p += sprintf(p, "}");
        same_as_reference(s, p - s);

        p[-1] = '\0';
        p += sprintf(p - 1, ",\"k%zu\":0}", k / 2) - 1;
        same_as_reference(s, p - s);
    }

    /* 300 keys open at once across nested objects */

    p = s;

    for (i = 0; i < 30; i++) {
        p += sprintf(p, "{");

        for (k = 0; k < 10; k++) {
            p += sprintf(p, "\"k%zu\":%zu,", k, k);
        }

        p += sprintf(p, "\"n\":");
    }

    p += sprintf(p, "{\"k1\":1,\"k1\":2}");

    for (i = 0; i < 30; i++) {
        p += sprintf(p, "}");
    }

    same_as_reference(s, p - s);

    /* depth 31, 32, 33 with arrays and objects */

    for (k = 30; k <= 34; k++) {
        p = s;

        for (i = 0; i < k; i++) {
            p += sprintf(p, (i % 2) ? "[" : "{\"a\":");
        }

        p += sprintf(p, "1");

        for (i = k; i-- > 0; ) {
            p += sprintf(p, (i % 2) ? "]" : "}");
        }

        same_as_reference(s, p - s);
    }

    free(s);
}


/*
 * Deterministic mutations of the seed body and of bodies with problems:
 * every byte replaced by one of a few interesting bytes, deleted or
 * doubled, and pieces inserted; each variant must give what the
 * reference gives.
 */

static void
test_reference_mutations(void **state)
{
    char          *buf;
    size_t         len, i, j, k, b;
    const char    *base;
    static const char  bytes[] = "\"\\{}[],:0 -1e.nu\x80\xc3\x01";
    static const char *const  pieces[] = {
        "\\u0000", "\\ud800", "\\u0041", "null", "{}", "[]", "\"\"", ",",
        "1e400", "\\\"", "\xf0\x9f\x98\x80", "\"a\":1,",
    };
    const char   *bases[3];
    size_t        lens[3];

    (void) state;

    bases[0] = seed_body;
    lens[0] = sizeof(seed_body) - 1;
    bases[1] = minimal_body;
    lens[1] = sizeof(minimal_body) - 1;
    bases[2] = multi_body;
    lens[2] = sizeof(multi_body) - 1;

    buf = malloc(4096);
    assert_non_null(buf);

    for (b = 0; b < 3; b++) {
        base = bases[b];
        len = lens[b];

        for (i = 0; i < len; i++) {

            for (j = 0; j < sizeof(bytes) - 1; j++) {
                memcpy(buf, base, len);
                buf[i] = bytes[j];
                compare_reference(buf, len, 0);
            }

            /* deleted */
            memcpy(buf, base, i);
            memcpy(buf + i, base + i + 1, len - i - 1);
            compare_reference(buf, len - 1, 0);

            /* doubled */
            memcpy(buf, base, i + 1);
            memcpy(buf + i + 1, base + i, len - i);
            compare_reference(buf, len + 1, 0);

            if (i % 3 != 0) {
                continue;
            }

            for (j = 0; j < sizeof(pieces) / sizeof(pieces[0]); j++) {
                k = strlen(pieces[j]);
                memcpy(buf, base, i);
                memcpy(buf + i, pieces[j], k);
                memcpy(buf + i + k, base + i, len - i);
                compare_reference(buf, len + k, 0);
            }
        }

        /* every prefix */

        for (i = 0; i <= len; i++) {
            same_as_reference(base, i);
        }
    }

    free(buf);
}


static void
test_order_number(void **state)
{
    char    id[300];
    size_t  n;

    (void) state;

#define ORDER(body, size, expected)                                           \
    n = sf_ship_order_number(body, sizeof(body) - 1, id, size);               \
    assert_int_equal(n, sizeof(expected) - 1);                                \
    assert_memory_equal(id, expected, n)

    ORDER("{\"orderNumber\":\"A-1\"}", sizeof(id), "A-1");
    ORDER("{\"orderNumber\":\"A-1\"}", 2, "A-");
    ORDER("{\"orderNumber\":42}", sizeof(id), "42");
    ORDER("{\"orderNumber\":-0}", sizeof(id), "0");
    ORDER("{\"orderNumber\":-7}", sizeof(id), "-7");
    ORDER("{\"orderNumber\":9223372036854775807}", sizeof(id),
          "9223372036854775807");
    ORDER("{\"orderNumber\":9223372036854775808}", sizeof(id), "");
    ORDER("{\"orderNumber\":4.2}", sizeof(id), "");
    ORDER("{\"orderNumber\":4e2}", sizeof(id), "");
    ORDER("{\"orderNumber\":true}", sizeof(id), "");
    ORDER("{\"orderNumber\":null}", sizeof(id), "");
    ORDER("{\"orderNumber\":\"\"}", sizeof(id), "");
    ORDER("{\"o\\u0072derNumber\":\"esc\\u00e9\\n\"}", sizeof(id),
          "esc\xc3\xa9\n");
    ORDER("{\"orderNumber\":\"a\",\"orderNumber\":\"b\"}", sizeof(id), "b");
    ORDER("{\"x\":{\"orderNumber\":\"inner\"}}", sizeof(id), "");
    ORDER("{\"orderNumber\":\"a\\u0000\"}", sizeof(id), "");
    ORDER("{\"orderNumber\":\"a\"", sizeof(id), "");
    ORDER("[{\"orderNumber\":\"a\"}]", sizeof(id), "");
    ORDER("{\"orderNumber\":\"\\ud83d\\ude00\"}", sizeof(id),
          "\xf0\x9f\x98\x80");

    /* a valid shipment that is deeper than 32 levels: none */

    ORDER("{\"orderNumber\":1,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]"
          "]]]]]]]]]]]]]]]]]]]]]]]]}", sizeof(id), "");
    ORDER("{\"orderNumber\":1,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]"
          "]]]]]]]]]]]]]]]]]]]]]]}", sizeof(id), "1");

    assert_int_equal(sf_ship_order_number(NULL, 0, id, sizeof(id)), 0);
    assert_int_equal(sf_ship_order_number("{}", 2, id, 0), 0);

#undef ORDER
}


static void
expect_escape(const char *in, size_t len, const char *expected)
{
    char    out[256];
    size_t  n;

    n = sf_ship_json_escape(in, len, out, sizeof(out));
    assert_string_equal(out, expected);
    assert_int_equal(n, strlen(expected));
    assert_int_equal(sf_ship_json_escaped_len(in, len), strlen(expected));
}


#define EXPECT_ESCAPE(in, expected)                                           \
    expect_escape(in, sizeof(in) - 1, expected)


static void
test_escape(void **state)
{
    (void) state;

    EXPECT_ESCAPE("", "");
    EXPECT_ESCAPE("plain text", "plain text");
    EXPECT_ESCAPE("say \"hi\" \\ /", "say \\\"hi\\\" \\\\ /");
    EXPECT_ESCAPE("a\nb\tc\rd\be\ff", "a\\nb\\tc\\rd\\be\\ff");
    EXPECT_ESCAPE("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    EXPECT_ESCAPE("a\0b", "a\\u0000b");

    /* multibyte UTF-8 is kept: 2, 3 and 4 bytes, U+10FFFF */
    EXPECT_ESCAPE("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
                  "\xf4\x8f\xbf\xbf");

    /* invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart */
#define FFFD  "\xef\xbf\xbd"
    EXPECT_ESCAPE("\xff", FFFD);
    EXPECT_ESCAPE("a\x80z", "a" FFFD "z");
    EXPECT_ESCAPE("\xe2\x82z", FFFD "z");
    EXPECT_ESCAPE("\xe2\x82", FFFD);
    EXPECT_ESCAPE("\xf0\x9f\x98", FFFD);
    EXPECT_ESCAPE("\xc0\xaf", FFFD FFFD);
    EXPECT_ESCAPE("\xed\xa0\x80", FFFD FFFD FFFD);
    EXPECT_ESCAPE("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
    EXPECT_ESCAPE("\xf5\"", FFFD "\\\"");
#undef FFFD
}


static void
test_escape_truncation(void **state)
{
    char          out[64];
    size_t        size, n, full;
    const char    in[] = "\x01\xc3\xa9\"\xf0\x9f\x98\x80x";
    const char    expected[] = "\\u0001\xc3\xa9\\\"\xf0\x9f\x98\x80x";

    (void) state;

    full = sizeof(expected) - 1;
    assert_int_equal(sf_ship_json_escaped_len(in, sizeof(in) - 1), full);

    memset(out, 'Z', sizeof(out));
    assert_int_equal(sf_ship_json_escape(in, sizeof(in) - 1, out, 0), 0);
    assert_int_equal(out[0], 'Z');

    for (size = 1; size <= full + 2; size++) {
        memset(out, 'Z', sizeof(out));

        n = sf_ship_json_escape(in, sizeof(in) - 1, out, size);

        assert_true(n < size);
        assert_int_equal(out[n], '\0');
        assert_int_equal(out[size], 'Z');
        assert_memory_equal(out, expected, n);

        /* cut only between whole units */
        assert_true(n == 0 || n == 6 || n == 8 || n == 10 || n == 14
                    || n == 15);
        assert_true(n == full || size <= full);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_seed_valid),
        cmocka_unit_test(test_address_fields),
        cmocka_unit_test(test_country_codes),
        cmocka_unit_test(test_top_fields),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_packages),
        cmocka_unit_test(test_multiple),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_huge),
        cmocka_unit_test(test_reference_cases),
        cmocka_unit_test(test_reference_shapes),
        cmocka_unit_test(test_reference_mutations),
        cmocka_unit_test(test_order_number),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_truncation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
