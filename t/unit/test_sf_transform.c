
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_mapping.c and sf_transform.c: every PrintNow order
 * fixture in t/unit/transform/ against its expected SiteFlow order (or
 * skip/invalid reason), the mapping file's error messages, the
 * transform's reasons for malformed orders, the printnow body overrides
 * and allocation failures.  Run from t/unit/ (as "make" does).
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "sf_mapping.h"
#include "sf_transform.h"


#define FIXTURES  "transform/"


typedef struct {
    const char  *name;
    const char  *mapping;
    const char  *destination;
} fixture_t;


static const fixture_t  fixtures[] = {
    { "01-single-item", "mapping.json", NULL },
    { "02-multi-item", "mapping.json", NULL },
    { "03-options-attributes", "mapping.json", NULL },
    { "04-international-unicode", "mapping.json", NULL },
    { "05-nulls-everywhere", "mapping.json", NULL },
    { "06-unmapped-product", "mapping.json", NULL },
    { "07-all-unmapped", "mapping.json", NULL },
    { "08-integration-key", "mapping.json", NULL },
    { "09-carrier-fallback", "mapping.json", NULL },
    { "10-missing-postcode", "mapping.json", NULL },
    { "11-missing-country", "mapping.json", NULL },
    { "12-quantity-string", "mapping.json", NULL },
    { "13-200-items", "mapping.json", NULL },
    { "14-option-names-unicode", "mapping.json", NULL },
    { "15-url-encoding", "mapping.json", NULL },
    { "16-no-items", "mapping.json", NULL },
    { "17-bad-quantity", "mapping.json", NULL },
    { "18-duplicate-item-ids", "mapping.json", NULL },
    { "19-defaults", "mapping-strict.json", "strict-dest" },
    { "20-no-carrier", "mapping-strict.json", "strict-dest" },
    { "21-missing-option-in-sku", "mapping.json", NULL },
    { "22-no-source-id", "mapping-strict.json", "strict-dest" },
    { "23-ship-to-name", "mapping-ship-to.json", NULL },
    { "24-ship-to-name-fallback", "mapping-ship-to.json", NULL },
};


/* a minimal valid product, and a mapping around extra top-level keys */

#define P12                                                                  \
    "\"12\": {\"sku\": \"S\", \"components\": [{\"code\": \"c\", "          \
    "\"path\": \"https://x/{item_id}\"}]}"

#define MAP(extra)  "{\"products\": {" P12 "}" extra "}"


/* helpers */

static sf_mapping_t *
load_mapping(const char *file)
{
    char           path[256], err[SF_MAPPING_ERR_SIZE];
    sf_mapping_t  *m;

    (void) snprintf(path, sizeof(path), FIXTURES "%s", file);

    m = sf_mapping_load(path, err, sizeof(err));

    if (m == NULL) {
        fail_msg("%s: %s", path, err);
    }

    assert_string_equal(err, "");

    return m;
}


static json_t *
load_json(const char *name, const char *suffix)
{
    char           path[256];
    json_t        *j;
    json_error_t   jerr;

    (void) snprintf(path, sizeof(path), FIXTURES "%s%s", name, suffix);

    j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

    if (j == NULL) {
        fail_msg("%s: %s", path, jerr.text);
    }

    return j;
}


static sf_mapping_t *
parse(const char *text)
{
    char           err[SF_MAPPING_ERR_SIZE];
    sf_mapping_t  *m;

    m = sf_mapping_parse(text, strlen(text), "m.json", err, sizeof(err));

    if (m == NULL) {
        fail_msg("mapping: %s", err);
    }

    return m;
}


static void
expect_mapping_error(const char *text, const char *msg)
{
    char           err[SF_MAPPING_ERR_SIZE];
    sf_mapping_t  *m;

    memset(err, 'Z', sizeof(err));

    m = sf_mapping_parse(text, strlen(text), "m.json", err, sizeof(err));

    if (m != NULL) {
        sf_mapping_free(m);
        fail_msg("mapping accepted: %s", text);
    }

    assert_string_equal(err, msg);
}


/* valid UTF-8 without control characters */

static void
assert_clean_text(const char *s)
{
    json_t  *j;
    size_t   i;

    for (i = 0; s[i] != '\0'; i++) {
        assert_true((unsigned char) s[i] >= 0x20 && s[i] != 0x7f);
    }

    j = json_string(s);
    assert_non_null(j);
    json_decref(j);
}


/* a transform, its rc and reason; the reason is also checked cut short */

static json_t *
transform(const sf_mapping_t *m, const json_t *order, const char *dest,
    int rc, const char *reason)
{
    int      r;
    char     buf[SF_TRANSFORM_REASON_SIZE], small[16];
    size_t   size, len;
    json_t  *out, *copy;

    copy = json_deep_copy(order);
    assert_non_null(copy);

    out = (json_t *) 0x1;
    memset(buf, 'Z', sizeof(buf));

    r = sf_transform_order(m, order, dest, &out, buf, sizeof(buf));

    if (r != rc || (reason != NULL && strcmp(buf, reason) != 0)) {
        fail_msg("rc %d (expected %d), reason \"%s\" (expected \"%s\")",
                 r, rc, buf, reason != NULL ? reason : "");
    }

    assert_clean_text(buf);

    /* the order is only read */

    assert_true(json_equal(order, copy));
    json_decref(copy);

    if (rc == SF_TRANSFORM_OK) {
        assert_non_null(out);
        assert_string_equal(buf, "");

    } else {
        assert_null(out);
    }

    /* a short reason buffer: same result, a clean prefix */

    len = strlen(buf);

    for (size = 1; size <= sizeof(small) && rc != SF_TRANSFORM_OK; size++) {
        json_t  *o2;

        memset(small, 'Z', sizeof(small));

        r = sf_transform_order(m, order, dest, &o2, small, size);

        assert_int_equal(r, rc);
        assert_null(o2);
        assert_non_null(memchr(small, '\0', size));
        assert_true(strlen(small) <= len);
        assert_memory_equal(small, buf, strlen(small));
        assert_clean_text(small);
    }

    r = sf_transform_order(m, order, dest, &copy, NULL, 0);
    assert_int_equal(r, rc);
    json_decref(copy);

    return out;
}


/* the fixtures */

static void
test_fixture(void **state)
{
    int               rc;
    char             *text;
    char              sid[SF_TRANSFORM_SOURCE_ID_MAX + 1];
    json_t           *order, *expected, *out, *again, *v;
    const char       *reason;
    sf_mapping_t     *m;
    const fixture_t  *f;

    f = *state;

    m = load_mapping(f->mapping);
    order = load_json(f->name, ".order.json");
    expected = load_json(f->name, ".expected.json");

    if ((v = json_object_get(expected, "skip")) != NULL) {
        rc = SF_TRANSFORM_SKIP;
        reason = json_string_value(v);

    } else if ((v = json_object_get(expected, "invalid")) != NULL) {
        rc = SF_TRANSFORM_INVALID;
        reason = json_string_value(v);

    } else {
        rc = SF_TRANSFORM_OK;
        reason = "";
    }

    out = transform(m, order, f->destination, rc, reason);

    if (rc == SF_TRANSFORM_OK) {
        if (!json_equal(out, expected)) {
            text = json_dumps(out, JSON_INDENT(2));
            print_error("got:\n%s\n", text);
            free(text);
            fail_msg("%s: output differs from the expected order", f->name);
        }

        /* what is sent: dumps and reads back the same, Unicode as is */

        text = json_dumps(out, JSON_COMPACT);
        assert_non_null(text);

        again = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(again);
        assert_true(json_equal(again, out));
        json_decref(again);
        free(text);

        /* the look-up key is the order's sourceOrderId */

        rc = sf_transform_source_order_id(m, order, sid, sizeof(sid));
        assert_int_equal(rc, SF_TRANSFORM_OK);
        assert_string_equal(sid, json_string_value(json_object_get(
                                     json_object_get(out, "orderData"),
                                     "sourceOrderId")));

        json_decref(out);
    }

    json_decref(expected);
    json_decref(order);
    sf_mapping_free(m);
}


/* mapping file: messages */

static void
test_mapping_syntax(void **state)
{
    char   text[256];
    int    i, n;

    (void) state;

    expect_mapping_error("{\n  \"products\": {,}\n}",
        "invalid JSON in \"m.json\" at line 2, column 16: "
        "string or '}' expected near ','");

    expect_mapping_error("{\"products\": {\"12\": {}, \"12\": {}}}",
        "invalid JSON in \"m.json\" at line 1, column 28: "
        "duplicate object key near '\"12\"'");

    expect_mapping_error("",
        "invalid JSON in \"m.json\" at line 1, column 0: "
        "'[' or '{' expected near end of file");

    expect_mapping_error("{\"products\": {}} x",
        "invalid JSON in \"m.json\" at line 1, column 18: "
        "end of file expected near 'x'");

    expect_mapping_error("[1]",
        "\"m.json\": the mapping must be a JSON object");

    /* 1 object + 16 arrays: the 17th level */

    n = snprintf(text, sizeof(text), "{\"a\":");
    for (i = 0; i < 16; i++) {
        text[n++] = '[';
    }
    text[n] = '\0';

    expect_mapping_error(text,
        "invalid JSON in \"m.json\" at line 1, column 21: "
        "nesting too deep (more than 16 levels)");

    /* brackets inside strings do not count */

    expect_mapping_error("{\"x\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}",
        "\"m.json\": unknown top-level key \"x\"");
}


static void
test_mapping_semantics(void **state)
{
    (void) state;

    expect_mapping_error("{\"prodcts\": {}}",
        "\"m.json\": unknown top-level key \"prodcts\"");
    expect_mapping_error("{}",
        "\"m.json\": \"products\" is required");
    expect_mapping_error("{\"products\": []}",
        "\"m.json\": products must be an object");
    expect_mapping_error("{\"products\": {}}",
        "\"m.json\": products must not be empty");

    expect_mapping_error("{\"products\": {\"BC\": {}}}",
        "\"m.json\": products.\"BC\": the key must be a PrintNow product_id "
        "(digits) or \"integration:<integration_id>\"");
    expect_mapping_error("{\"products\": {\"012\": {}}}",
        "\"m.json\": products.\"012\": the key must be a PrintNow "
        "product_id (digits) or \"integration:<integration_id>\"");
    expect_mapping_error("{\"products\": {\"integration:\": {}}}",
        "\"m.json\": products.\"integration:\": the key must be a PrintNow "
        "product_id (digits) or \"integration:<integration_id>\"");

    expect_mapping_error("{\"products\": {\"12\": []}}",
        "\"m.json\": products.\"12\" must be an object");
    expect_mapping_error("{\"products\": {\"12\": {\"components\": []}}}",
        "\"m.json\": products.\"12\": \"sku\" is required");
    expect_mapping_error("{\"products\": {\"12\": {\"skus\": 1}}}",
        "\"m.json\": products.\"12\": unknown key \"skus\"");
    expect_mapping_error("{\"products\": {\"12\": {\"sku\": 5}}}",
        "\"m.json\": products.\"12\".sku must be a string");
    expect_mapping_error("{\"products\": {\"12\": {\"sku\": \" \"}}}",
        "\"m.json\": products.\"12\".sku must not be empty");
    expect_mapping_error("{\"products\": {\"12\": {\"sku\": \"S\"}}}",
        "\"m.json\": products.\"12\": \"components\" is required");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": []}}}",
        "\"m.json\": products.\"12\".components must be a non-empty array");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": {}}}}",
        "\"m.json\": products.\"12\".components must be a non-empty array");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": [1]}}}",
        "\"m.json\": products.\"12\".components[0] must be an object");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": "
        "[{\"path\": \"https://x/\"}]}}}",
        "\"m.json\": products.\"12\".components[0]: \"code\" is required");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": "
        "[{\"code\": \"c\"}]}}}",
        "\"m.json\": products.\"12\".components[0]: \"path\" is required");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": "
        "[{\"code\": \"c\", \"path\": \"https://x/\", \"fetch\": false}]}}}",
        "\"m.json\": products.\"12\".components[0]: unknown key \"fetch\"");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": "
        "[{\"code\": \"\", \"path\": \"https://x/\"}]}}}",
        "\"m.json\": products.\"12\".components[0].code must not be empty");
    expect_mapping_error(
        "{\"products\": {\"12\": {\"sku\": \"S\", \"description\": 1, "
        "\"components\": [{\"code\": \"c\", \"path\": \"https://x/\"}]}}}",
        "\"m.json\": products.\"12\".description must be a string");

    /* carriers */

    expect_mapping_error(MAP(", \"carriers\": {\"UPS Ground\": 1}"),
        "\"m.json\": carriers.\"UPS Ground\" must be a string");
    expect_mapping_error(MAP(", \"carriers\": {\"*\": \"\"}"),
        "\"m.json\": carriers.\"*\" must not be empty");
    expect_mapping_error(MAP(", \"carriers\": []"),
        "\"m.json\": carriers must be an object");

    /* return_address */

    expect_mapping_error(MAP(", \"return_address\": {\"name\": \"n\", "
                             "\"address1\": \"a\", \"town\": \"t\", "
                             "\"postcode\": \"p\"}"),
        "\"m.json\": return_address: \"isoCountry\" is required");
    expect_mapping_error(MAP(", \"return_address\": {\"address1\": \"a\"}"),
        "\"m.json\": return_address: \"name\" is required");
    expect_mapping_error(MAP(", \"return_address\": {\"zip\": \"1\"}"),
        "\"m.json\": return_address: unknown key \"zip\"");
    expect_mapping_error(MAP(", \"return_address\": {\"name\": \"n\", "
                             "\"address1\": \"a\", \"town\": \"\", "
                             "\"postcode\": \"p\", \"isoCountry\": \"US\"}"),
        "\"m.json\": return_address.town must not be empty");
    expect_mapping_error(MAP(", \"return_address\": {\"name\": \"n\", "
                             "\"address1\": \"a\", \"town\": \"t\", "
                             "\"postcode\": \"p\", \"isoCountry\": \"U.S.\"}"),
        "\"m.json\": return_address.isoCountry must be an ISO 3166-1 "
        "country code (2 or 3 letters)");
    expect_mapping_error(MAP(", \"return_address\": \"x\""),
        "\"m.json\": return_address must be an object");

    /* statuses */

    expect_mapping_error(MAP(", \"statuses\": {\"shiped\": \"Shipped\"}"),
        "\"m.json\": statuses: unknown SiteFlow event \"shiped\"");
    expect_mapping_error(MAP(", \"statuses\": {\"shipped\": true}"),
        "\"m.json\": statuses.\"shipped\" must be a string");
    expect_mapping_error(MAP(", \"statuses\": {\"shipped\": \"\"}"),
        "\"m.json\": statuses.\"shipped\" must not be empty");

    /* printnow */

    expect_mapping_error(MAP(", \"printnow\": {\"ship\": {}}"),
        "\"m.json\": printnow: unknown call \"ship\" (expected shipped, "
        "shipped_item, status or status_item)");
    expect_mapping_error(MAP(", \"printnow\": {\"shipped\": []}"),
        "\"m.json\": printnow.shipped must be an object");
    expect_mapping_error(MAP(", \"printnow\": {\"shipped\": {\"x\": []}}"),
        "\"m.json\": printnow.shipped.\"x\" must be a string, number, "
        "boolean or null");
    expect_mapping_error(MAP(", \"printnow\": {\"status\": "
                             "{\"x\": \"{item_id}\"}}"),
        "\"m.json\": placeholder \"{item_id}\" cannot be used in "
        "printnow.status.\"x\"");
    expect_mapping_error(MAP(", \"printnow\": {\"status\": "
                             "{\"x\": \"{sku}\"}}"),
        "\"m.json\": placeholder \"{sku}\" cannot be used in "
        "printnow.status.\"x\"");
    expect_mapping_error(MAP(", \"printnow\": 1"),
        "\"m.json\": printnow must be an object");

    /* defaults, destination, source_order_id */

    expect_mapping_error(MAP(", \"defaults\": {\"phone_number\": \"1\"}"),
        "\"m.json\": defaults: unknown key \"phone_number\"");
    expect_mapping_error(MAP(", \"defaults\": {\"options\": "
                             "{\"Finish\": 1}}"),
        "\"m.json\": defaults.options.\"Finish\" must be a string");
    expect_mapping_error(MAP(", \"defaults\": {\"phone\": \"\"}"),
        "\"m.json\": defaults.phone must not be empty");
    expect_mapping_error(MAP(", \"destination\": 1"),
        "\"m.json\": destination must be a string");
    expect_mapping_error(MAP(", \"source_order_id\": \"\""),
        "\"m.json\": source_order_id must not be empty");
    expect_mapping_error(MAP(", \"source_order_id\": \"a\\tb\""),
        "\"m.json\": source_order_id must not contain control characters");
    expect_mapping_error(MAP(", \"source_order_id\": \"{item_id}\""),
        "\"m.json\": placeholder \"{item_id}\" cannot be used in "
        "source_order_id");
}


static void
test_mapping_placeholders(void **state)
{
    char    *text;
    size_t   i, n;

    (void) state;

#define COMP(path, attrs)                                                    \
    "{\"products\": {\"12\": {\"sku\": \"S\", \"components\": "             \
    "[{\"code\": \"c\", \"path\": \"" path "\"" attrs "}]}}}"

    expect_mapping_error(COMP("https://x/{foo}", ""),
        "\"m.json\": unknown placeholder \"{foo}\" in "
        "products.\"12\".components[0].path");
    expect_mapping_error(COMP("https://x/{order_id", ""),
        "\"m.json\": unterminated placeholder \"{order_id\" in "
        "products.\"12\".components[0].path");
    expect_mapping_error(COMP("https://x/{Order_Id}", ""),
        "\"m.json\": unknown placeholder \"{Order_Id}\" in "
        "products.\"12\".components[0].path");
    expect_mapping_error(COMP("https://x/{option:}", ""),
        "\"m.json\": empty option name in placeholder \"{option:}\" in "
        "products.\"12\".components[0].path");
    expect_mapping_error(COMP("https://x/", ", \"attributes\": "
                              "{\"a\": \"{tracking_number}\"}"),
        "\"m.json\": placeholder \"{tracking_number}\" cannot be used in "
        "products.\"12\".components[0].attributes.\"a\"");
    expect_mapping_error(COMP("https://x/", ", \"attributes\": {\"a\": null}"),
        "\"m.json\": products.\"12\".components[0].attributes.\"a\" must be "
        "a string, number or boolean");
    expect_mapping_error(COMP("https://x/", ", \"attributes\": {\"a\": {}}"),
        "\"m.json\": products.\"12\".components[0].attributes.\"a\" must be "
        "a string, number or boolean");
    expect_mapping_error(COMP("https://x/", ", \"attributes\": []"),
        "\"m.json\": products.\"12\".components[0].attributes must be an "
        "object");

    expect_mapping_error(COMP("ftp://x/{item_id}", ""),
        "\"m.json\": products.\"12\".components[0].path must be an http:// "
        "or https:// URL");
    expect_mapping_error(COMP("https://", ""),
        "\"m.json\": products.\"12\".components[0].path must be an http:// "
        "or https:// URL");
    expect_mapping_error(COMP("", ""),
        "\"m.json\": products.\"12\".components[0].path must be an http:// "
        "or https:// URL");
    expect_mapping_error(COMP("https://x/a b", ""),
        "\"m.json\": products.\"12\".components[0].path: space, control or "
        "non-ASCII character in the URL (percent-encode it)");
    expect_mapping_error(COMP("https://x/\xc3\xa9", ""),
        "\"m.json\": products.\"12\".components[0].path: space, control or "
        "non-ASCII character in the URL (percent-encode it)");

    expect_mapping_error("{\"products\": {\"12\": {\"sku\": \"{sku}\"}}}",
        "\"m.json\": placeholder \"{sku}\" cannot be used in "
        "products.\"12\".sku");

    /* 33 placeholders */

    text = malloc(4096);
    assert_non_null(text);

    n = (size_t) snprintf(text, 4096,
                          "{\"products\": {\"12\": {\"sku\": \"");
    for (i = 0; i < 33; i++) {
        n += (size_t) snprintf(text + n, 4096 - n, "{item_id}");
    }
    (void) snprintf(text + n, 4096 - n, "\"}}}");

    expect_mapping_error(text,
        "\"m.json\": too many placeholders in products.\"12\".sku "
        "(limit 32)");

    /* a template of 2049 bytes */

    n = (size_t) snprintf(text, 4096,
                          "{\"products\": {\"12\": {\"sku\": \"");
    memset(text + n, 'a', 2049);
    n += 2049;
    (void) snprintf(text + n, 4096 - n, "\"}}}");

    expect_mapping_error(text,
        "\"m.json\": products.\"12\".sku is too long (2049 bytes, "
        "limit 2048)");

    free(text);

#undef COMP
}


/* a mapping with n products "1" .. "n" */

static char *
products_text(size_t n)
{
    char    *text;
    size_t   i, len;

    text = malloc(n * 96 + 64);
    assert_non_null(text);

    len = (size_t) sprintf(text, "{\"products\": {");

    for (i = 0; i < n; i++) {
        len += (size_t) sprintf(text + len, "%s\"%zu\": {\"sku\": \"S\", "
                                "\"components\": [{\"code\": \"c\", "
                                "\"path\": \"https://x/\"}]}",
                                (i > 0) ? ", " : "", i + 1);
    }

    (void) sprintf(text + len, "}}");

    return text;
}


static void
test_mapping_quoting(void **state)
{
    char           err[SF_MAPPING_ERR_SIZE], *text;
    size_t         n;
    sf_mapping_t  *m;

    (void) state;

    /* keys in messages: '"' and '\' escaped, controls as '?' */

    expect_mapping_error("{\"a\\\"b\\\\c\\nd\": 1}",
        "\"m.json\": unknown top-level key \"a\\\"b\\\\c?d\"");

    /* and cut to 64 bytes at a character boundary */

    expect_mapping_error("{\"" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "\xc3\xa9zzz\": 1}",
        "\"m.json\": unknown top-level key \""
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "...\"");

    /* the file name too */

    text = "{\"x\": 1}";
    m = sf_mapping_parse(text, strlen(text), "dir/a \"b\".json", err,
                         sizeof(err));
    assert_null(m);
    assert_string_equal(err, "\"dir/a \\\"b\\\".json\": unknown top-level "
                             "key \"x\"");

    /* short error buffers: NUL-terminated prefixes, whole characters */

    text = "{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\": 1}";

    for (n = 0; n < 48; n++) {
        memset(err, 'Z', sizeof(err));

        m = sf_mapping_parse(text, strlen(text), "m.json", err, n);
        assert_null(m);

        if (n == 0) {
            assert_int_equal(err[0], 'Z');
            continue;
        }

        assert_non_null(memchr(err, '\0', n));
        assert_memory_equal(err, "\"m.json\": unknown top-level key "
                                 "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"",
                            strlen(err));
        assert_clean_text(err);
    }

    /* too many products, then just enough */

    text = products_text(SF_MAPPING_MAX_PRODUCTS + 1);

    expect_mapping_error(text,
        "\"m.json\": products: too many products (10001, limit 10000)");

    free(text);

    text = products_text(SF_MAPPING_MAX_PRODUCTS);

    m = parse(text);
    assert_int_equal(m->nproducts, SF_MAPPING_MAX_PRODUCTS);
    assert_non_null(sf_mapping_product(m, "1", 1));
    assert_non_null(sf_mapping_product(m, "10000", 5));
    assert_null(sf_mapping_product(m, "10001", 5));
    sf_mapping_free(m);

    free(text);
}


static void
test_mapping_load(void **state)
{
    int            fd;
    char           err[SF_MAPPING_ERR_SIZE], path[64];
    sf_mapping_t  *m;
    static const char  bad[] = "{\n  \"products\": {\n    \"12\": x\n}\n";

    (void) state;

    m = sf_mapping_load("/nonexistent/mapping.json", err, sizeof(err));
    assert_null(m);
    assert_string_equal(err, "open() \"/nonexistent/mapping.json\" failed "
                             "(2: No such file or directory)");

    m = sf_mapping_load(FIXTURES, err, sizeof(err));
    assert_null(m);
    assert_string_equal(err, "\"" FIXTURES "\": not a regular file");

    (void) snprintf(path, sizeof(path), "/tmp/sf-mapping-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), sizeof(bad) - 1);
    (void) close(fd);

    m = sf_mapping_load(path, err, sizeof(err));
    assert_null(m);
    assert_true(strncmp(err, "invalid JSON in \"/tmp/sf-mapping-", 33) == 0);
    assert_non_null(strstr(err, "\" at line 3, column 11: invalid token "
                                "near 'x'"));
    (void) unlink(path);

    m = load_mapping("mapping.json");
    sf_mapping_free(m);

    sf_mapping_free(NULL);
}


static void
test_mapping_accessors(void **state)
{
    sf_mapping_t  *m, *m2;

    (void) state;

    m = load_mapping("mapping.json");

    assert_int_equal(sf_mapping_event("shipped", 7), SF_EVENT_SHIPPED);
    assert_int_equal(sf_mapping_event("received", 8), SF_EVENT_RECEIVED);
    assert_int_equal(sf_mapping_event("submission_error", 16),
                     SF_EVENT_SUBMISSION_ERROR);
    assert_int_equal(sf_mapping_event("shiped", 6), -1);
    assert_int_equal(sf_mapping_event("shipped", 6), -1);

    assert_string_equal(sf_mapping_status(m, SF_EVENT_SHIPPED), "Shipped");
    assert_string_equal(sf_mapping_status(m, SF_EVENT_PRINTREADY),
                        "In Production");
    assert_null(sf_mapping_status(m, SF_EVENT_COMPLETE));
    assert_null(sf_mapping_status(m, SF_EVENT_SUBMISSION_ERROR));
    assert_null(sf_mapping_status(m, SF_EVENT_COUNT));

    assert_string_equal(sf_mapping_carrier(m, "UPS Ground", 10),
                        "ups_ground");
    assert_string_equal(sf_mapping_carrier(m, "UPS", 3), "standard");
    assert_string_equal(sf_mapping_carrier(m, NULL, 0), "standard");
    assert_string_equal(sf_mapping_carrier(m, "FedEx 2Day", 10),
                        "fedex_2day");

    assert_non_null(sf_mapping_product(m, "12", 2));
    assert_non_null(sf_mapping_product(m, "integration:BANNER-XL", 21));
    assert_null(sf_mapping_product(m, "1", 1));
    assert_null(sf_mapping_product(m, "123", 3));
    assert_string_equal(m->destination, "acme-print");

    m2 = parse(MAP(""));
    assert_null(m2->destination);
    assert_null(sf_mapping_carrier(m2, "UPS", 3));
    assert_false(m2->has_carriers);
    assert_int_equal(m2->source_order_id.nsegs, 1);
    assert_int_equal(m2->source_order_id.segs[0].var, SF_TPL_ORDER_ID);
    sf_mapping_free(m2);

    sf_mapping_free(m);
}


static void
test_printnow_body(void **state)
{
    char           *text;
    json_t         *body;
    sf_pn_vars_t    vars;
    sf_mapping_t   *m;

    (void) state;

    m = load_mapping("mapping.json");

    memset(&vars, 0, sizeof(vars));
    vars.tracking_number = "1Z999AA10123456784";
    vars.carrier = "UPS \"Ground\" ü";
    vars.order_id = "5001";
    vars.item_id = "77";
    vars.status = "Shipped";
    vars.comment = "Left the building";

    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_SHIPPED, &vars,
                                              &body), 0);
    assert_non_null(body);

    text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"carrier\":\"UPS \\\"Ground\\\" \xc3\xbc\","
                              "\"send_email\":true,"
                              "\"tracking_number\":\"1Z999AA10123456784\"}");
    free(text);
    json_decref(body);

    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_STATUS_ITEM, &vars,
                                              &body), 0);
    text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"comment\":\"Left the building (item 77)\","
                              "\"notify\":false,\"status\":\"Shipped\"}");
    free(text);
    json_decref(body);

    /* no override: the caller's built-in body */

    body = (json_t *) 0x1;
    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_STATUS, &vars,
                                              &body), 0);
    assert_null(body);

    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_COUNT, &vars,
                                              &body), 0);
    assert_null(body);

    /* invalid UTF-8 in a value */

    vars.tracking_number = "\xff";
    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_SHIPPED, &vars,
                                              &body), -1);
    assert_null(body);

    sf_mapping_free(m);

    /* literals of every kind */

    m = parse(MAP(", \"printnow\": {\"shipped_item\": {\"a\": 1, "
                  "\"b\": 2.5, \"c\": null, \"d\": false, \"e\": \"{{x}}\", "
                  "\"f\": \"{item_id}/{order_id}\"}}"));

    memset(&vars, 0, sizeof(vars));
    vars.order_id = "9";

    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_SHIPPED_ITEM, &vars,
                                              &body), 0);
    text = json_dumps(body, JSON_COMPACT);
    assert_string_equal(text, "{\"a\":1,\"b\":2.5,\"c\":null,\"d\":false,"
                              "\"e\":\"{x}\"}");
    free(text);
    json_decref(body);

    sf_mapping_free(m);

    /*
     * a value the postback did not give: NULL, or "" as the postback
     * handler passes sf_postback_t's absent strings; a field whose
     * template uses one is left out (docs/mapping.md), never sent as ""
     * or with a hole in its text
     */

    m = parse(MAP(", \"printnow\": {\"shipped\": {"
                  "\"trackingNumber\": \"{tracking_number}\", "
                  "\"shipDate\": \"{ship_date}\", "
                  "\"url\": \"{tracking_url}\", \"carrier\": \"{carrier}\", "
                  "\"note\": \"order {order_id} shipped via {carrier}\", "
                  "\"notify\": true}}"));

    memset(&vars, 0, sizeof(vars));
    vars.tracking_number = "T10";
    vars.tracking_url = "";
    vars.carrier = "";
    vars.ship_date = "2024-05-03";
    vars.order_id = "7002";

    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_SHIPPED, &vars,
                                              &body), 0);
    text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"notify\":true,\"shipDate\":\"2024-05-03\","
                              "\"trackingNumber\":\"T10\"}");
    free(text);
    json_decref(body);

    vars.tracking_number = NULL;
    vars.ship_date = "";
    vars.carrier = "DHL";

    assert_int_equal(sf_mapping_printnow_body(m, SF_PN_SHIPPED, &vars,
                                              &body), 0);
    text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"carrier\":\"DHL\","
                              "\"note\":\"order 7002 shipped via DHL\","
                              "\"notify\":true}");
    free(text);
    json_decref(body);

    sf_mapping_free(m);
}


/* templates: escapes and URL encoding */

static int
tpl_value(void *data, const sf_tpl_seg_t *seg, const char **value,
    size_t *len)
{
    (void) seg;

    if (data == NULL) {
        return SF_TPL_ABSENT;
    }

    *value = data;
    *len = strlen(data);

    return SF_TPL_OK;
}


static void
test_templates(void **state)
{
    int                  rc;
    char                 buf[64];
    size_t               len;
    sf_mapping_t        *m;
    const sf_tpl_seg_t  *absent;
    const sf_tpl_t      *sku, *path;

    (void) state;

    m = parse("{\"products\": {\"12\": {\"sku\": \"a{{b}}c}d{item_id}}}\", "
              "\"components\": [{\"code\": \"c\", "
              "\"path\": \"https://x/{item_id}?q={{\"}, "
              "{\"code\": \"d\", \"path\": \"{option:U}/{item_id}\"}]}}}");

    sku = &m->products[0].sku;
    assert_int_equal(sku->nsegs, 3);

    rc = sf_tpl_render(sku, tpl_value, "X y", buf, sizeof(buf), &len,
                       &absent);
    assert_int_equal(rc, SF_TPL_OK);
    assert_string_equal(buf, "a{b}c}dX y}");
    assert_int_equal(len, 11);

    rc = sf_tpl_render(sku, tpl_value, NULL, buf, sizeof(buf), &len,
                       &absent);
    assert_int_equal(rc, SF_TPL_ABSENT);
    assert_int_equal(absent->var, SF_TPL_ITEM_ID);

    path = &m->products[0].components[0].path;

    rc = sf_tpl_render(path, tpl_value, "a/b c~-._\xc3\xa9", buf,
                       sizeof(buf), &len, &absent);
    assert_int_equal(rc, SF_TPL_OK);
    assert_string_equal(buf, "https://x/a%2Fb%20c~-._%C3%A9?q={");

    path = &m->products[0].components[1].path;

    rc = sf_tpl_render(path, tpl_value, "https://h/a b|\"<>", buf,
                       sizeof(buf), &len, &absent);
    assert_int_equal(rc, SF_TPL_OK);
    assert_string_equal(buf, "https://h/a%20b%7C%22%3C%3E/"
                             "https%3A%2F%2Fh%2Fa%20b%7C%22%3C%3E");

    /* exactly full, then one byte short */

    rc = sf_tpl_render(sku, tpl_value, "X y", buf, 12, &len, &absent);
    assert_int_equal(rc, SF_TPL_OK);

    rc = sf_tpl_render(sku, tpl_value, "X y", buf, 11, &len, &absent);
    assert_int_equal(rc, SF_TPL_TOO_LONG);

    rc = sf_tpl_render(path, tpl_value, "\xc3\xa9", buf, 13, &len, &absent);
    assert_int_equal(rc, SF_TPL_TOO_LONG);

    sf_mapping_free(m);
}


/* the transform's reasons for malformed orders */

static json_t *
order_01(void)
{
    return load_json("01-single-item", ".order.json");
}


static json_t *
item0(json_t *order)
{
    return json_array_get(json_object_get(order, "items"), 0);
}


static void
test_order_ids(void **state)
{
    char           sid[16];
    json_t        *o, *bad;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping.json");

    bad = json_array();
    transform(m, bad, NULL, SF_TRANSFORM_INVALID,
              "the order must be a JSON object");
    assert_int_equal(sf_transform_source_order_id(m, bad, sid, sizeof(sid)),
                     SF_TRANSFORM_INVALID);
    assert_string_equal(sid, "");
    json_decref(bad);

    o = order_01();

    json_object_del(o, "id");
    transform(m, o, NULL, SF_TRANSFORM_INVALID, "id is missing");

    json_object_set_new(o, "id", json_null());
    transform(m, o, NULL, SF_TRANSFORM_INVALID, "id is missing");

    json_object_set_new(o, "id", json_string(" "));
    transform(m, o, NULL, SF_TRANSFORM_INVALID, "id is empty");

    json_object_set_new(o, "id", json_integer(-1));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "id must be a non-negative integer or a string");

    json_object_set_new(o, "id", json_real(5001.0));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "id must be a non-negative integer or a string");

    json_object_set_new(o, "id", json_string("50\n01"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "id must not contain control characters");

    json_object_set_new(o, "id", json_string(
        "1234567890123456789012345678901234567890123456789012345678901234"
        "1234567890123456789012345678901234567890123456789012345678901234"
        "5"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "id is too long (129 bytes, limit 128)");

    /* sourceOrderId alone: buffer too small */

    json_object_set_new(o, "id", json_integer(123456));
    assert_int_equal(sf_transform_source_order_id(m, o, sid, 9),
                     SF_TRANSFORM_ERROR);
    assert_string_equal(sid, "");
    assert_int_equal(sf_transform_source_order_id(m, o, sid, 10),
                     SF_TRANSFORM_OK);
    assert_string_equal(sid, "PN-123456");

    json_decref(o);
    sf_mapping_free(m);

    /* the integration_id template */

    m = load_mapping("mapping-strict.json");
    o = order_01();

    json_object_set_new(o, "integration_id", json_true());
    transform(m, o, "d", SF_TRANSFORM_INVALID,
              "integration_id must be a non-negative integer or a string");

    json_object_set_new(o, "integration_id", json_string(""));
    transform(m, o, "d", SF_TRANSFORM_INVALID,
              "no value for {integration_id} (needed by source_order_id)");

    json_decref(o);
    sf_mapping_free(m);
}


static void
test_order_items(void **state)
{
    size_t         i;
    json_t        *o, *items, *it, *opt, *out;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping.json");
    o = order_01();

    json_object_set_new(o, "items", json_object());
    transform(m, o, NULL, SF_TRANSFORM_INVALID, "items must be an array");

    json_object_del(o, "items");
    transform(m, o, NULL, SF_TRANSFORM_SKIP, "order 5001 has no items");

    json_object_set_new(o, "items", json_null());
    transform(m, o, NULL, SF_TRANSFORM_SKIP, "order 5001 has no items");

    json_decref(o);

    /* item by item */

    o = order_01();
    items = json_object_get(o, "items");
    it = item0(o);

    json_array_append_new(items, json_string("x"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[1] must be an object");
    json_array_remove(items, 1);

    json_object_set_new(it, "product_id", json_object());
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].product_id must be a non-negative integer or a "
              "string");
    json_object_set_new(it, "product_id", json_integer(12));

    json_object_del(it, "id");
    transform(m, o, NULL, SF_TRANSFORM_INVALID, "items[0].id is missing");
    json_object_set_new(it, "id", json_string(""));
    transform(m, o, NULL, SF_TRANSFORM_INVALID, "items[0].id is empty");
    json_object_set_new(it, "id", json_integer(77));

    json_object_del(it, "quantity");
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity is missing");

    json_object_set_new(it, "quantity", json_integer(0));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity must be a positive integer");
    json_object_set_new(it, "quantity", json_integer(-3));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity must be a positive integer");
    json_object_set_new(it, "quantity", json_real(2.0));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity must be a positive integer");
    json_object_set_new(it, "quantity", json_string("12a"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity must be a positive integer");
    json_object_set_new(it, "quantity", json_string(" 12"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity must be a positive integer");
    json_object_set_new(it, "quantity", json_string(""));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity must be a positive integer");
    json_object_set_new(it, "quantity", json_string("99999999999999999999"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity is too large (limit 1000000000)");
    json_object_set_new(it, "quantity", json_integer(1000000001));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].quantity is too large (limit 1000000000)");
    json_object_set_new(it, "quantity", json_string("1000000000"));
    out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    json_decref(out);

    json_object_set_new(it, "options", json_string("Finish=Matte"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].options must be an array");

    json_object_set_new(it, "options", json_array());
    for (i = 0; i <= SF_TRANSFORM_MAX_OPTIONS; i++) {
        json_array_append_new(json_object_get(it, "options"),
                              json_pack("{s:s, s:s}", "name", "n",
                                        "value", "v"));
    }
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].options: too many options (257, limit 256)");

    /* an option value that cannot be text, used by a template */

    opt = json_pack("[{s:s, s:[]}]", "name", "Finish", "value");
    json_object_set_new(it, "options", opt);
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0].options[0].value must be a string, number or "
              "boolean");

    /* an option without a value (found by fuzzing): no attribute */

    json_object_set_new(it, "options",
                        json_pack("[{s:s}]", "name", "Finish"));
    out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    assert_null(json_object_get(json_object_get(json_array_get(
        json_object_get(json_array_get(json_object_get(json_object_get(out,
        "orderData"), "items"), 0), "components"), 0), "attributes"),
        "finish"));
    json_decref(out);

    opt = json_pack("[{s:s, s:[]}]", "name", "Finish", "value");
    json_object_set_new(it, "options", opt);

    /* but not when no template uses it */

    json_object_set_new(json_array_get(opt, 0), "name",
                        json_string("Unused"));
    out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    json_decref(out);

    json_decref(o);
    sf_mapping_free(m);
}


static void
test_order_limits(void **state)
{
    char          *big;
    size_t         i;
    json_t        *o, *items, *it, *out;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping.json");
    o = order_01();
    items = json_object_get(o, "items");
    it = item0(o);

    /* 1001 items */

    for (i = 1; i <= SF_TRANSFORM_MAX_ITEMS; i++) {
        json_array_append_new(items, json_pack("{s:I, s:i, s:i}", "id",
                                               (json_int_t) (1000 + i),
                                               "quantity", 1,
                                               "product_id", 12));
    }

    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items: too many items (1001, limit 1000)");

    /* 1000 items of which the last two share an id (the sorted check) */

    json_array_remove(items, SF_TRANSFORM_MAX_ITEMS);
    json_object_set_new(json_array_get(items, SF_TRANSFORM_MAX_ITEMS - 1),
                        "id", json_string("1998"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[999].id duplicates items[998].id");

    json_object_set_new(json_array_get(items, SF_TRANSFORM_MAX_ITEMS - 1),
                        "id", json_string("x"));
    out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(out, "orderData"), "items")),
                     SF_TRANSFORM_MAX_ITEMS);
    json_decref(out);

    while (json_array_size(items) > 1) {
        json_array_remove(items, 1);
    }

    /* long strings */

    big = malloc(5000);
    assert_non_null(big);

    memset(big, 'a', 4097);
    big[4097] = '\0';

    json_object_set_new(json_object_get(o, "shipping_address"), "line_1",
                        json_string(big));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.line_1 is too long (4097 bytes, "
              "limit 4096)");

    big[4096] = '\0';
    json_object_set_new(json_object_get(o, "shipping_address"), "line_1",
                        json_string(big));
    out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    json_decref(out);

    /* a path longer than SF_MAPPING_MAX_RENDER once encoded */

    for (i = 0; i + 2 <= 4000; i += 2) {
        big[i] = (char) 0xc3;
        big[i + 1] = (char) 0xa9;
    }
    big[i] = '\0';

    json_object_set_new(it, "product_id", json_integer(14));
    json_object_set_new(it, "options",
                        json_pack("[{s:s, s:s}]", "name", "Artwork URL",
                                  "value", big));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0]: products.\"14\".components[0].path gives more "
              "than 8192 bytes");

    json_object_set_new(it, "options",
                        json_pack("[{s:s, s:s}]", "name", "Artwork URL",
                                  "value", "ftp://x/y"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0]: products.\"14\".components[0].path does not give "
              "an http:// or https:// URL");

    json_object_set_new(it, "options", json_array());
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "items[0]: no value for {option:Artwork URL} (needed by "
              "products.\"14\".components[0].path)");

    free(big);
    json_decref(o);
    sf_mapping_free(m);
}


static void
test_order_address(void **state)
{
    json_t        *o, *a, *out, *ship;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping.json");
    o = order_01();
    a = json_object_get(o, "shipping_address");
    json_incref(a);

    json_object_del(o, "shipping_address");
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address is missing");

    json_object_set_new(o, "shipping_address", json_string("x"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address must be an object");

    json_object_set(o, "shipping_address", a);

    json_object_set_new(o, "customer", json_true());
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "customer must be an object");
    json_object_set_new(o, "customer", json_object());

    json_object_set_new(a, "city", json_integer(10001));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.city must be a string");
    json_object_set_new(a, "city", json_string(""));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.city is empty");
    json_object_set_new(a, "city", json_string("New York"));

    json_object_del(a, "line_1");
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.line_1 is missing");
    json_object_set_new(a, "line_1", json_string("1 A St"));

    json_object_set_new(a, "postal_code", json_integer(10001));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.postal_code must be a string");
    json_object_set_new(a, "postal_code", json_string("10001"));

    json_object_set_new(a, "country_code", json_string("U1"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.country_code must be an ISO 3166-1 "
              "country code (2 or 3 letters)");
    json_object_set_new(a, "country_code", json_string("United States"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.country_code must be an ISO 3166-1 "
              "country code (2 or 3 letters)");
    json_object_set_new(a, "country_code", json_string(""));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.country_code is empty");
    json_object_set_new(a, "country_code", json_string("usa"));

    json_object_set_new(a, "name", json_string("Default"));
    json_object_del(a, "first_name");
    json_object_set_new(a, "last_name", json_null());
    json_object_set_new(a, "company", json_string(" "));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "no name to ship to: shipping_address has no first_name, "
              "last_name or company, and the customer no first_name or "
              "last_name");
    json_object_del(a, "company");

    json_object_set_new(a, "last_name", json_string("Solo"));
    json_object_set_new(a, "email", json_null());

    /* no customer name, no email: the shipping ones */

    out = transform(m, o, "other-dest", SF_TRANSFORM_OK, "");
    ship = json_object_get(json_array_get(json_object_get(
               json_object_get(out, "orderData"), "shipments"), 0),
               "shipTo");

    assert_string_equal(json_string_value(json_object_get(ship, "name")),
                        "Solo");
    assert_string_equal(json_string_value(json_object_get(ship,
                                                          "isoCountry")),
                        "USA");
    assert_null(json_object_get(ship, "email"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(out, "orderData"),
                            "customerName")),
                        "Solo");
    assert_null(json_object_get(json_object_get(out, "orderData"), "email"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(out, "destination"), "name")),
                        "other-dest");
    json_decref(out);

    json_decref(a);
    json_decref(o);
    sf_mapping_free(m);
}


/*
 * shipTo.name: the address's first_name + last_name, else its company,
 * else the customer's name; the address "name" (an address-book label
 * like "Default") never.
 */

static const char *
ship_to_name(sf_mapping_t *m, json_t *o, json_t **out)
{
    json_t  *ship;

    *out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    ship = json_object_get(json_array_get(json_object_get(
               json_object_get(*out, "orderData"), "shipments"), 0),
               "shipTo");

    return json_string_value(json_object_get(ship, "name"));
}


static void
test_order_ship_to_name(void **state)
{
    json_t        *o, *a, *c, *out;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping.json");
    o = order_01();
    a = json_object_get(o, "shipping_address");
    c = json_object_get(o, "customer");

    /* PrintNow's own example: label "Default", company "" */

    json_object_set_new(a, "name", json_string("Default"));
    json_object_set_new(a, "company", json_string(""));
    json_object_set_new(a, "first_name", json_string("Demo"));
    json_object_set_new(a, "last_name", json_string("User"));
    json_object_set_new(c, "first_name", json_string("Someone"));
    json_object_set_new(c, "last_name", json_string("Else"));

    assert_string_equal(ship_to_name(m, o, &out), "Demo User");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(out, "orderData"),
                            "customerName")),
                        "Someone Else");
    json_decref(out);

    /* one of the two is enough */

    json_object_set_new(a, "first_name", json_null());
    assert_string_equal(ship_to_name(m, o, &out), "User");
    json_decref(out);

    /* no person on the address: its company */

    json_object_set_new(a, "last_name", json_string("  "));
    json_object_set_new(a, "company", json_string("Acme Widgets Ltd"));
    assert_string_equal(ship_to_name(m, o, &out), "Acme Widgets Ltd");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(
            json_object_get(out, "orderData"), "shipments"), 0), "shipTo"),
        "companyName")),
                        "Acme Widgets Ltd");
    json_decref(out);

    /* neither: the customer's name */

    json_object_del(a, "company");
    assert_string_equal(ship_to_name(m, o, &out), "Someone Else");
    json_decref(out);

    json_object_set_new(c, "first_name", json_null());
    assert_string_equal(ship_to_name(m, o, &out), "Else");
    json_decref(out);

    /* the label alone is not a name */

    json_object_del(o, "customer");
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "no name to ship to: shipping_address has no first_name, "
              "last_name or company, and the customer no first_name or "
              "last_name");

    /* a wrong type is still named */

    json_object_set_new(a, "company", json_integer(7));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address.company must be a string");

    json_decref(o);
    sf_mapping_free(m);
}


static void
test_order_carrier_destination(void **state)
{
    json_t        *o, *out;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping-strict.json");
    o = order_01();

    json_object_del(o, "shipping_service");
    transform(m, o, "d", SF_TRANSFORM_INVALID,
              "shipping_service is missing and the mapping has no \"*\" "
              "carrier");

    json_object_set_new(o, "shipping_service", json_integer(3));
    transform(m, o, "d", SF_TRANSFORM_INVALID,
              "shipping_service must be a string");

    json_object_set_new(o, "shipping_service", json_string("UPS Ground"));

    transform(m, o, NULL, SF_TRANSFORM_ERROR,
              "no SiteFlow destination name: set \"destination\" in the "
              "mapping");
    transform(m, o, "", SF_TRANSFORM_ERROR, NULL);

    out = transform(m, o, "d", SF_TRANSFORM_OK, "");
    json_decref(out);

    json_decref(o);
    sf_mapping_free(m);

    /* no carriers section: no carrier sent */

    m = parse(MAP(", \"destination\": \"x\""));
    o = order_01();

    out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    assert_null(json_object_get(json_array_get(json_object_get(
                    json_object_get(out, "orderData"), "shipments"), 0),
                    "carrier"));
    assert_null(json_object_get(json_array_get(json_object_get(
                    json_object_get(out, "orderData"), "shipments"), 0),
                    "returnAddress"));
    json_decref(out);

    json_decref(o);
    sf_mapping_free(m);
}


static void
test_skip_reasons(void **state)
{
    size_t         i;
    json_t        *o, *items;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping.json");
    o = order_01();
    items = json_object_get(o, "items");
    json_array_clear(items);

    for (i = 0; i < 12; i++) {
        json_array_append_new(items, json_pack("{s:I, s:i, s:I}", "id",
                                               (json_int_t) i, "quantity", 1,
                                               "product_id",
                                               (json_int_t) (90 + i % 10)));
    }

    transform(m, o, NULL, SF_TRANSFORM_SKIP,
              "no item of order 5001 has a mapped product (product_id 90, "
              "91, 92, 93, 94, 95, 96, 97, ...)");

    json_array_clear(items);
    json_array_append_new(items, json_pack("{s:i, s:i, s:s}", "id", 1,
                                           "quantity", 1, "product_id",
                                           "a\"b"));
    transform(m, o, NULL, SF_TRANSFORM_SKIP,
              "no item of order 5001 has a mapped product (product_id "
              "a\\\"b)");

    json_decref(o);

    /*
     * deleted or archived in PrintNow: never printed, whatever else the
     * order holds (PrintNow's own order example has is_deleted: true)
     */

    o = order_01();

    json_object_set_new(o, "is_deleted", json_false());
    json_object_set_new(o, "is_archived", json_null());
    json_decref(transform(m, o, NULL, SF_TRANSFORM_OK, ""));

    json_object_set_new(o, "is_deleted", json_true());
    transform(m, o, NULL, SF_TRANSFORM_SKIP,
              "order 5001 is deleted in PrintNow (is_deleted: true)");

    /* even when it would be invalid, and before archived */

    json_object_set_new(o, "is_archived", json_true());
    json_object_del(o, "shipping_address");
    transform(m, o, NULL, SF_TRANSFORM_SKIP,
              "order 5001 is deleted in PrintNow (is_deleted: true)");

    json_object_set_new(o, "is_deleted", json_false());
    transform(m, o, NULL, SF_TRANSFORM_SKIP,
              "order 5001 is archived in PrintNow (is_archived: true)");

    /* only JSON true counts */

    json_object_set_new(o, "is_archived", json_string("true"));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "shipping_address is missing");

    json_decref(o);
    sf_mapping_free(m);
}


static void
test_reason_edges(void **state)
{
    int            rc;
    char           id[128], reason[64];
    size_t         i, len;
    json_t        *o, *items, *out, *attrs, *expected;
    sf_mapping_t  *m;

    (void) state;

    m = load_mapping("mapping.json");
    o = order_01();
    items = json_object_get(o, "items");
    json_array_clear(items);

    /* 60 x U+00E9: quoted as 32 of them and "...", cut mid-character */

    for (i = 0; i < 120; i += 2) {
        id[i] = (char) 0xc3;
        id[i + 1] = (char) 0xa9;
    }

    json_array_append_new(items, json_pack("{s:i, s:i, s:s#}", "id", 1,
                                           "quantity", 1, "product_id",
                                           id, (int) 120));

    out = transform(m, o, NULL, SF_TRANSFORM_SKIP, NULL);
    assert_null(out);

    for (len = 56; len <= sizeof(reason); len++) {
        rc = sf_transform_order(m, o, NULL, &out, reason, len);
        assert_int_equal(rc, SF_TRANSFORM_SKIP);
        assert_clean_text(reason);
        assert_true(strlen(reason) >= len - 2);
        assert_true(strlen(reason) < len);
    }

    rc = sf_transform_order(m, o, NULL, &out, NULL, 0);
    assert_int_equal(rc, SF_TRANSFORM_SKIP);

    json_decref(o);
    sf_mapping_free(m);

    /* order values with control characters are shown as '?' */

    m = load_mapping("mapping-strict.json");
    o = order_01();

    json_object_set_new(o, "shipping_service", json_string("a\tb\"c"));
    transform(m, o, "d", SF_TRANSFORM_INVALID,
              "shipping_service \"a?b\\\"c\" has no carrier in the "
              "mapping (and no \"*\")");

    json_decref(o);
    sf_mapping_free(m);

    /* attribute literals of every kind, and a sourceOrderId too long */

    m = parse("{\"source_order_id\": \"{integration_id}{integration_id}"
              "{integration_id}\", \"destination\": \"d\", "
              "\"products\": {\"12\": {\"sku\": \"S\", "
              "\"components\": [{\"code\": \"c\", "
              "\"path\": \"https://x/{item_id}\", \"attributes\": "
              "{\"r\": 0.5, \"f\": false, \"i\": -3, \"t\": true, "
              "\"s\": \"\"}}]}}}");
    o = order_01();

    out = transform(m, o, NULL, SF_TRANSFORM_OK, "");
    attrs = json_object_get(json_array_get(json_object_get(json_array_get(
                json_object_get(json_object_get(out, "orderData"), "items"),
                0), "components"), 0), "attributes");
    expected = json_pack("{s:f, s:b, s:i, s:b, s:s}", "r", 0.5, "f", 0,
                         "i", -3, "t", 1, "s", "");
    assert_true(json_equal(attrs, expected));
    json_decref(expected);
    json_decref(out);

    for (i = 0; i < 100; i++) {
        id[i] = 'x';
    }

    json_object_set_new(o, "integration_id", json_stringn(id, 100));
    transform(m, o, NULL, SF_TRANSFORM_INVALID,
              "sourceOrderId is too long (limit 256 bytes)");

    json_decref(o);
    sf_mapping_free(m);
}


/* allocation failures: ERROR "out of memory", nothing leaked (ASan) */

static long  oom_countdown;


static void *
oom_malloc(size_t size)
{
    if (oom_countdown == 0) {
        return NULL;
    }

    oom_countdown--;

    return malloc(size);
}


static void
test_out_of_memory(void **state)
{
    int            rc;
    long           n;
    char           reason[SF_TRANSFORM_REASON_SIZE];
    size_t         i;
    json_t        *o, *expected, *out, *body;
    sf_pn_vars_t   vars;
    sf_mapping_t  *m;

    (void) state;

    for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {

        /* the 200 items take long under ASan and add no new path */

        if (strcmp(fixtures[i].name, "13-200-items") == 0) {
            continue;
        }

        m = load_mapping(fixtures[i].mapping);
        o = load_json(fixtures[i].name, ".order.json");
        expected = load_json(fixtures[i].name, ".expected.json");

        for (n = 0; n < 100000; n++) {
            oom_countdown = n;
            json_set_alloc_funcs(oom_malloc, free);

            rc = sf_transform_order(m, o, fixtures[i].destination, &out,
                                    reason, sizeof(reason));

            json_set_alloc_funcs(malloc, free);

            if (rc != SF_TRANSFORM_ERROR) {
                break;
            }

            assert_string_equal(reason, "out of memory");
            assert_null(out);
        }

        if (rc == SF_TRANSFORM_OK) {
            assert_true(json_equal(out, expected));
            json_decref(out);

        } else {
            assert_null(out);
        }

        json_decref(expected);
        json_decref(o);
        sf_mapping_free(m);
    }

    m = load_mapping("mapping.json");

    memset(&vars, 0, sizeof(vars));
    vars.tracking_number = "1Z";

    for (n = 0; n < 1000; n++) {
        oom_countdown = n;
        json_set_alloc_funcs(oom_malloc, free);

        rc = sf_mapping_printnow_body(m, SF_PN_SHIPPED, &vars, &body);

        json_set_alloc_funcs(malloc, free);

        if (rc == 0) {
            assert_non_null(body);
            json_decref(body);
            break;
        }

        assert_null(body);
    }

    assert_true(n > 2);

    sf_mapping_free(m);
}


int
main(void)
{
    int                      failed;
    size_t                   i;
    struct CMUnitTest        orders[sizeof(fixtures) / sizeof(fixtures[0])];
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_mapping_syntax),
        cmocka_unit_test(test_mapping_semantics),
        cmocka_unit_test(test_mapping_placeholders),
        cmocka_unit_test(test_mapping_quoting),
        cmocka_unit_test(test_mapping_load),
        cmocka_unit_test(test_mapping_accessors),
        cmocka_unit_test(test_printnow_body),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_order_ids),
        cmocka_unit_test(test_order_items),
        cmocka_unit_test(test_order_limits),
        cmocka_unit_test(test_order_address),
        cmocka_unit_test(test_order_ship_to_name),
        cmocka_unit_test(test_order_carrier_destination),
        cmocka_unit_test(test_skip_reasons),
        cmocka_unit_test(test_reason_edges),
        cmocka_unit_test(test_out_of_memory),
    };

    for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        memset(&orders[i], 0, sizeof(orders[i]));
        orders[i].name = fixtures[i].name;
        orders[i].test_func = test_fixture;
        orders[i].initial_state = (void *) &fixtures[i];
    }

    failed = _cmocka_run_group_tests("transform fixtures", orders,
                                     sizeof(orders) / sizeof(orders[0]),
                                     NULL, NULL);

    failed += cmocka_run_group_tests_name("mapping and transform", tests,
                                          NULL, NULL);

    return failed;
}
