
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for the mapping's ship_to.name (sf_mapping.c loads it,
 * sf_transform_ship.c renders it): the load errors, which placeholders
 * it takes and where, and shipTo.name with the override and its fall
 * back to the built-in rule (the address's person, else its company,
 * else the customer).  Run from t/unit/ (as "make" does).
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

#include "sf_mapping.h"
#include "sf_transform.h"


#define P12                                                                  \
    "\"12\": {\"sku\": \"S\", \"components\": [{\"code\": \"c\", "          \
    "\"path\": \"https://x/{item_id}\"}]}"

#define MAP(extra)                                                           \
    "{\"destination\": \"d\", \"products\": {" P12 "}" extra "}"

#define SHIP_TO(name)  MAP(", \"ship_to\": {\"name\": \"" name "\"}")


static const char  order_text[] =
    "{\"id\": 5001,"
    " \"customer\": {\"first_name\": \"Cora\", \"last_name\": \"Buyer\"},"
    " \"shipping_address\": {\"name\": \"Default\", \"first_name\": \"Ann\","
    "   \"last_name\": \"Lee\", \"company\": \"Lee & Co\","
    "   \"line_1\": \"1 A St\", \"city\": \"Leeds\","
    "   \"postal_code\": \"LS1 1AA\", \"country_code\": \"GB\"},"
    " \"items\": [{\"id\": 7, \"quantity\": 1, \"product_id\": 12}]}";


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

    m = sf_mapping_parse(text, strlen(text), "m.json", err, sizeof(err));

    if (m != NULL) {
        sf_mapping_free(m);
        fail_msg("mapping accepted: %s", text);
    }

    assert_string_equal(err, msg);
}


static json_t *
order(void)
{
    json_t  *o;

    o = json_loads(order_text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(o);

    return o;
}


static json_t *
address(json_t *o)
{
    return json_object_get(o, "shipping_address");
}


/* the transform's result: rc and reason checked, the order returned */

static json_t *
transform(const sf_mapping_t *m, const json_t *o, int rc, const char *reason)
{
    int      r;
    char     buf[SF_TRANSFORM_REASON_SIZE];
    json_t  *out;

    r = sf_transform_order(m, o, NULL, &out, buf, sizeof(buf));

    if (r != rc || strcmp(buf, reason) != 0) {
        fail_msg("rc %d (expected %d), reason \"%s\" (expected \"%s\")",
                 r, rc, buf, reason);
    }

    return out;
}


static json_t *
ship_to(json_t *out)
{
    return json_object_get(json_array_get(json_object_get(
               json_object_get(out, "orderData"), "shipments"), 0),
               "shipTo");
}


/* shipTo.name of o through m */

static void
expect_name(const sf_mapping_t *m, const json_t *o, const char *name)
{
    json_t  *out;

    out = transform(m, o, SF_TRANSFORM_OK, "");

    assert_string_equal(json_string_value(json_object_get(ship_to(out),
                                                          "name")),
                        name);
    json_decref(out);
}


static void
test_load_errors(void **state)
{
    (void) state;

    expect_mapping_error(MAP(", \"ship_to\": \"{ship_first_name}\""),
        "\"m.json\": ship_to must be an object");
    expect_mapping_error(MAP(", \"ship_to\": {\"companyName\": \"x\"}"),
        "\"m.json\": ship_to: unknown key \"companyName\"");
    expect_mapping_error(MAP(", \"ship_to\": {\"name\": null}"),
        "\"m.json\": ship_to.name must be a string");
    expect_mapping_error(SHIP_TO(""),
        "\"m.json\": ship_to.name must not be empty");
    expect_mapping_error(SHIP_TO("  "),
        "\"m.json\": ship_to.name must not be empty");
    expect_mapping_error(SHIP_TO("{ship_first_name}\\n{ship_last_name}"),
        "\"m.json\": ship_to.name must not contain control characters");

    /* placeholders: unknown, misspelt, of another section, unterminated */

    expect_mapping_error(SHIP_TO("{first_name} {last_name}"),
        "\"m.json\": unknown placeholder \"{first_name}\" in ship_to.name");
    expect_mapping_error(SHIP_TO("{ship_label}"),
        "\"m.json\": unknown placeholder \"{ship_label}\" in ship_to.name");
    expect_mapping_error(SHIP_TO("{Ship_First_Name}"),
        "\"m.json\": unknown placeholder \"{Ship_First_Name}\" in "
        "ship_to.name");
    expect_mapping_error(SHIP_TO("{ship_first_name"),
        "\"m.json\": unterminated placeholder \"{ship_first_name\" in "
        "ship_to.name");
    expect_mapping_error(SHIP_TO("Order {order_id}"),
        "\"m.json\": placeholder \"{order_id}\" cannot be used in "
        "ship_to.name");
    expect_mapping_error(SHIP_TO("{option:Recipient}"),
        "\"m.json\": placeholder \"{option:Recipient}\" cannot be used in "
        "ship_to.name");

    /* and the ship_to placeholders nowhere else */

    expect_mapping_error("{\"products\": {\"12\": {\"sku\": "
                         "\"{customer_last_name}\"}}}",
        "\"m.json\": placeholder \"{customer_last_name}\" cannot be used "
        "in products.\"12\".sku");
    expect_mapping_error(MAP(", \"printnow\": {\"shipped\": "
                             "{\"to\": \"{ship_address_label}\"}}"),
        "\"m.json\": placeholder \"{ship_address_label}\" cannot be used "
        "in printnow.shipped.\"to\"");
    expect_mapping_error(MAP(", \"source_order_id\": \"{ship_company}\""),
        "\"m.json\": placeholder \"{ship_company}\" cannot be used in "
        "source_order_id");
}


static void
test_load(void **state)
{
    sf_mapping_t  *m;

    (void) state;

    m = parse(MAP(""));
    assert_int_equal(m->ship_to_name.nsegs, 0);
    sf_mapping_free(m);

    m = parse(MAP(", \"ship_to\": {}"));
    assert_int_equal(m->ship_to_name.nsegs, 0);
    sf_mapping_free(m);

    m = parse(SHIP_TO("{ship_first_name} {ship_last_name} {ship_company} "
                      "{ship_address_label} {customer_first_name} "
                      "{customer_last_name}"));
    assert_int_equal(m->ship_to_name.nsegs, 11);
    assert_int_equal(m->ship_to_name.segs[0].var, SF_TPL_SHIP_FIRST_NAME);
    assert_int_equal(m->ship_to_name.segs[2].var, SF_TPL_SHIP_LAST_NAME);
    assert_int_equal(m->ship_to_name.segs[4].var, SF_TPL_SHIP_COMPANY);
    assert_int_equal(m->ship_to_name.segs[6].var,
                     SF_TPL_SHIP_ADDRESS_LABEL);
    assert_int_equal(m->ship_to_name.segs[8].var,
                     SF_TPL_CUSTOMER_FIRST_NAME);
    assert_int_equal(m->ship_to_name.segs[10].var,
                     SF_TPL_CUSTOMER_LAST_NAME);
    assert_string_equal(m->ship_to_name.where, "ship_to.name");
    sf_mapping_free(m);
}


static void
test_override(void **state)
{
    json_t        *o, *a, *out;
    sf_mapping_t  *m;

    (void) state;

    o = order();
    a = address(o);

    /* no ship_to: the built-in rule, the label never */

    m = parse(MAP(""));
    expect_name(m, o, "Ann Lee");
    sf_mapping_free(m);

    /* last name first */

    m = parse(SHIP_TO("{ship_last_name}, {ship_first_name}"));
    expect_name(m, o, "Lee, Ann");

    /* a placeholder without a value: the built-in rule */

    json_object_set_new(a, "first_name", json_string(" "));
    expect_name(m, o, "Lee");
    json_object_set_new(a, "first_name", json_null());
    expect_name(m, o, "Lee");
    json_object_del(a, "last_name");
    expect_name(m, o, "Lee & Co");
    sf_mapping_free(m);

    json_object_set_new(a, "first_name", json_string("Ann"));
    json_object_set_new(a, "last_name", json_string("Lee"));

    /* the company before the person (a business storefront) */

    m = parse(SHIP_TO("{ship_company}"));
    expect_name(m, o, "Lee & Co");

    out = transform(m, o, SF_TRANSFORM_OK, "");
    assert_string_equal(json_string_value(json_object_get(ship_to(out),
                                                          "companyName")),
                        "Lee & Co");
    json_decref(out);

    json_object_set_new(a, "company", json_string(""));
    expect_name(m, o, "Ann Lee");
    sf_mapping_free(m);

    json_object_set_new(a, "company", json_string("Lee & Co"));

    /* the customer, and literal text with braces */

    m = parse(SHIP_TO("{{{customer_first_name} {customer_last_name}}} "
                      "c/o {ship_company}"));
    expect_name(m, o, "{Cora Buyer} c/o Lee & Co");

    json_object_del(o, "customer");
    expect_name(m, o, "Ann Lee");
    sf_mapping_free(m);

    /* the address-book label only when asked for */

    m = parse(SHIP_TO("{ship_first_name} {ship_last_name} "
                      "({ship_address_label})"));
    expect_name(m, o, "Ann Lee (Default)");

    json_object_set_new(a, "name", json_null());
    expect_name(m, o, "Ann Lee");

    json_object_set_new(a, "name", json_integer(7));
    transform(m, o, SF_TRANSFORM_INVALID,
              "shipping_address.name must be a string");
    json_object_set_new(a, "name", json_string("Default"));
    sf_mapping_free(m);

    json_decref(o);
}


static void
test_override_edges(void **state)
{
    char          *big;
    json_t        *o, *a, *out;
    sf_mapping_t  *m;

    (void) state;

    o = order();
    a = address(o);

    /* literal text alone ships where the built-in rule has no name */

    json_object_del(a, "first_name");
    json_object_del(a, "last_name");
    json_object_del(a, "company");
    json_object_del(o, "customer");

    m = parse(MAP(""));
    transform(m, o, SF_TRANSFORM_INVALID,
              "no name to ship to: shipping_address has no first_name, "
              "last_name or company, and the customer no first_name or "
              "last_name");
    sf_mapping_free(m);

    m = parse(SHIP_TO("Goods In"));
    expect_name(m, o, "Goods In");

    /* customerName falls back to shipTo.name as sent */

    out = transform(m, o, SF_TRANSFORM_OK, "");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(out, "orderData"),
                            "customerName")),
                        "Goods In");
    json_decref(out);
    sf_mapping_free(m);

    /* nothing from the template, nothing from the rule */

    m = parse(SHIP_TO("{ship_first_name} {ship_last_name}"));
    transform(m, o, SF_TRANSFORM_INVALID,
              "no name to ship to: shipping_address has no first_name, "
              "last_name or company, and the customer no first_name or "
              "last_name");

    /* a wrong type named even when the template gives a name */

    json_object_set_new(a, "first_name", json_string("Ann"));
    json_object_set_new(a, "last_name", json_true());
    transform(m, o, SF_TRANSFORM_INVALID,
              "shipping_address.last_name must be a string");
    sf_mapping_free(m);

    /* values are inserted as they are: Unicode, quotes */

    json_object_set_new(a, "last_name",
                        json_string("\"\xc5\x81\xc3\xb3" "d\xc5\xba\" \xc3\x9cnal"));
    m = parse(SHIP_TO("{ship_last_name} {ship_first_name}"));
    expect_name(m, o, "\"\xc5\x81\xc3\xb3" "d\xc5\xba\" \xc3\x9cnal Ann");
    sf_mapping_free(m);

    /* two 4095-byte values and a space fit SF_MAPPING_MAX_RENDER, three not */

    big = malloc(SF_TRANSFORM_MAX_STRING);
    assert_non_null(big);
    memset(big, 'n', SF_TRANSFORM_MAX_STRING - 1);
    big[SF_TRANSFORM_MAX_STRING - 1] = '\0';
    json_object_set_new(a, "first_name", json_string(big));

    m = parse(SHIP_TO("{ship_first_name} {ship_first_name}"));
    out = transform(m, o, SF_TRANSFORM_OK, "");
    assert_int_equal(strlen(json_string_value(json_object_get(
                         ship_to(out), "name"))),
                     2 * SF_TRANSFORM_MAX_STRING - 1);
    json_decref(out);
    sf_mapping_free(m);

    m = parse(SHIP_TO("{ship_first_name}{ship_first_name}"
                      "{ship_first_name}"));
    transform(m, o, SF_TRANSFORM_INVALID,
              "the mapping's ship_to.name gives more than 8192 bytes");
    sf_mapping_free(m);

    free(big);
    json_decref(o);
}


/*
 * names with spaces around them: each part is trimmed and the parts are
 * joined with one space, by the built-in rule (shipTo.name and
 * customerName) and by a ship_to.name template alike
 */

static void
test_trim(void **state)
{
    json_t        *o, *a, *c, *out;
    sf_mapping_t  *m;

    (void) state;

    o = order();
    a = address(o);
    c = json_object_get(o, "customer");

    json_object_set_new(a, "first_name", json_string(" Ann "));
    json_object_set_new(a, "last_name", json_string(" Lee"));
    json_object_set_new(c, "first_name", json_string("\tCora \r\n"));
    json_object_set_new(c, "last_name", json_string("  Buyer  "));

    m = parse(MAP(""));

    out = transform(m, o, SF_TRANSFORM_OK, "");
    assert_string_equal(json_string_value(json_object_get(ship_to(out),
                                                          "name")),
                        "Ann Lee");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(out, "orderData"),
                            "customerName")),
                        "Cora Buyer");
    json_decref(out);

    /* one part alone, the other blank or missing */

    json_object_set_new(a, "last_name", json_string("   "));
    expect_name(m, o, "Ann");

    json_object_del(a, "last_name");
    json_object_set_new(a, "first_name", json_string("  "));
    json_object_set_new(a, "last_name", json_string("Lee  "));
    expect_name(m, o, "Lee");

    /* inner spaces are the name's own */

    json_object_set_new(a, "first_name", json_string(" Mary  Ann "));
    expect_name(m, o, "Mary  Ann Lee");
    sf_mapping_free(m);

    /* the template's placeholders */

    json_object_set_new(a, "first_name", json_string(" Ann "));
    json_object_set_new(a, "last_name", json_string(" Lee"));

    m = parse(SHIP_TO("{ship_last_name}, {ship_first_name} "
                      "({customer_first_name})"));
    expect_name(m, o, "Lee, Ann (Cora)");
    sf_mapping_free(m);

    json_decref(o);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_override),
        cmocka_unit_test(test_override_edges),
        cmocka_unit_test(test_trim),
    };

    return cmocka_run_group_tests_name("mapping ship_to.name", tests, NULL,
                                       NULL);
}
