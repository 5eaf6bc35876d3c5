
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_json_tree.c: the loader gives jansson's tree (same
 * values, key order, the last of duplicate keys) or NULL, never a tree
 * jansson would refuse; the writer gives json_dumps(JSON_COMPACT)'s bytes
 * or NULL where jansson fails too.  fuzz_sf_json_tree.c checks the same
 * on any input.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <cmocka.h>

#include <jansson.h>

#include "sf_json.h"
#include "sf_json_tree.h"


/* text both read: equal trees, and both writers give jansson's bytes */

static void
same(const char *text)
{
    char    *a_text, *b_text;
    size_t   len;
    json_t  *a, *b;

    a = sf_json_tree_load(text, strlen(text));
    b = json_loadb(text, strlen(text), 0, NULL);

    assert_non_null(a);
    assert_non_null(b);
    assert_true(json_equal(a, b));

    a_text = sf_json_tree_dump(a, &len);
    b_text = json_dumps(b, JSON_COMPACT);

    assert_non_null(a_text);
    assert_non_null(b_text);
    assert_string_equal(a_text, b_text);
    assert_int_equal(len, strlen(b_text));

    free(a_text);
    free(b_text);
    json_decref(a);
    json_decref(b);
}


/* text the loader leaves to jansson (jansson's answer is given) */

static void
unsure(const char *text, size_t len, int jansson_reads)
{
    json_t  *b;

    assert_null(sf_json_tree_load(text, len));

    b = json_loadb(text, len, 0, NULL);
    assert_int_equal(b != NULL, jansson_reads);
    json_decref(b);

    /* sf_json_load() gives jansson's answer */
    b = sf_json_load(text, len, NULL);
    assert_int_equal(b != NULL, jansson_reads);
    json_decref(b);
}


/* a byte order mark: the loader and jansson refuse it, sf_json_load() skips
   it (an upstream's answer written by a .NET or Windows tool) */

static void
test_bom(void **state)
{
    json_t  *b;

    (void) state;

    assert_null(sf_json_tree_load("\xef\xbb\xbf[1]", 6));
    assert_null(json_loadb("\xef\xbb\xbf[1]", 6, 0, NULL));

    b = sf_json_load("\xef\xbb\xbf{\"id\":5001}", 14, NULL);
    assert_true(json_is_object(b));
    assert_int_equal(json_integer_value(json_object_get(b, "id")), 5001);
    json_decref(b);

    /* one mark only, and only at the start */
    assert_null(sf_json_load("\xef\xbb\xbf\xef\xbb\xbf[1]", 9, NULL));
    assert_null(sf_json_load("[1]\xef\xbb\xbf", 6, NULL));
    assert_null(sf_json_load("\xef\xbb", 2, NULL));
    assert_null(sf_json_load("\xef\xbb\xbf", 3, NULL));

    assert_int_equal(sf_json_bom("\xef\xbb\xbf", 3), 3);
    assert_int_equal(sf_json_bom("\xef\xbb", 2), 0);
    assert_int_equal(sf_json_bom("{}", 2), 0);
}


static void
test_values(void **state)
{
    (void) state;

    same("{}");
    same("[]");
    same(" \t\r\n{ \"a\" : 1 , \"b\" : [ true , false , null ] }\n");
    same("{\"z\":1,\"a\":2,\"m\":{\"y\":[1,2,{\"k\":\"v\"}],\"b\":{}}}");
    same("[0,-0,1,-1,999999999999999999,-999999999999999999]");
    same("[1.5,-0.0,0.1,1e10,1E-5,2.5e+3,123456789.123456789,1e-320]");
    same("{\"s\":\"caf\\u00e9 \\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}");
    same("{\"raw\":\"café 😀 \x7f\"}");
    same("{\"\\u00e9t\\u00e9\":\"key with escapes\"}");
    same("{\"c\":\"\\u0001\\u001f\"}");
    same("[\"\"]");
}


static void
test_duplicates(void **state)
{
    json_t  *a;
    char    *text;

    (void) state;

    /* jansson without JSON_REJECT_DUPLICATES: the last value, first place */

    same("{\"a\":1,\"b\":2,\"a\":3}");

    a = sf_json_tree_load("{\"a\":1,\"b\":2,\"a\":3}", 19);
    assert_non_null(a);
    text = sf_json_tree_dump(a, NULL);
    assert_string_equal(text, "{\"a\":3,\"b\":2}");
    free(text);
    json_decref(a);
}


static void
test_invalid(void **state)
{
    (void) state;

    unsure("", 0, 0);
    unsure("  ", 2, 0);
    unsure("1", 1, 0);                      /* not without JSON_DECODE_ANY */
    unsure("\"a\"", 3, 0);
    unsure("{", 1, 0);
    unsure("{\"a\"}", 5, 0);
    unsure("{\"a\":}", 6, 0);
    unsure("{\"a\":1,}", 8, 0);
    unsure("[1,]", 4, 0);
    unsure("[01]", 4, 0);
    unsure("[1.]", 4, 0);
    unsure("[1e]", 4, 0);
    unsure("[-]", 3, 0);
    unsure("[.5]", 4, 0);
    unsure("[+1]", 4, 0);
    unsure("[tru]", 5, 0);
    unsure("[truex]", 7, 0);
    unsure("[nul]", 5, 0);
    unsure("[\"a\tb\"]", 7, 0);             /* a raw control character */
    unsure("[\"\\x\"]", 6, 0);
    unsure("[\"\\u12\"]", 8, 0);
    unsure("[\"\\ud83d\"]", 10, 0);         /* a lone high half */
    unsure("[\"\\ude00\"]", 10, 0);         /* a lone low half */
    unsure("[\"\\ud83d\\u0041\"]", 16, 0);
    unsure("[\"\xc3\"]", 5, 0);             /* cut UTF-8 */
    unsure("[\"\xc0\xaf\"]", 6, 0);         /* overlong */
    unsure("[\"\xed\xa0\x80\"]", 7, 0);     /* a surrogate in UTF-8 */
    unsure("[1] x", 5, 0);
    unsure("[1][2]", 6, 0);
    unsure("[\"a\0b\"]", 7, 0);
    unsure("[1e999]", 7, 0);                /* overflow: jansson says so */
}


static void
test_unsure_valid(void **state)
{
    char    deep[200];
    size_t  i;

    (void) state;

    /* valid, and left to jansson */

    unsure("[\"\\u0000\"]", 10, 0);         /* jansson needs JSON_ALLOW_NUL */
    unsure("[1234567890123456789]", 21, 1); /* 19 digits */
    unsure("[-1234567890123456789]", 22, 1);
    unsure("[99999999999999999999]", 22, 0); /* too big for jansson too */

    for (i = 0; i < 65; i++) {
        deep[i] = '[';
        deep[65 + i] = ']';
    }

    unsure(deep, 130, 1);

    /* 64 levels are read */
    same("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
}


static void
test_dump_unsure(void **state)
{
    char    *text;
    size_t   i;
    json_t  *v, *in;

    (void) state;

    /* not an object or array: jansson refuses without JSON_ENCODE_ANY */

    v = json_integer(1);
    assert_null(sf_json_tree_dump(v, NULL));
    assert_null(json_dumps(v, JSON_COMPACT));
    json_decref(v);

    /* a string that is not UTF-8: jansson refuses to write it too */

    v = json_pack("{s:o}", "a", json_stringn_nocheck("\xff", 1));
    assert_null(sf_json_tree_dump(v, NULL));
    assert_null(json_dumps(v, JSON_COMPACT));
    assert_null(sf_json_dump(v));
    json_decref(v);

    /* NUL inside a string (json_stringn): \u0000, as jansson */

    v = json_pack("[o]", json_stringn("a\0b", 3));
    text = sf_json_tree_dump(v, NULL);
    assert_string_equal(text, "[\"a\\u0000b\"]");
    free(text);
    json_decref(v);

    /* deeper than 64: jansson's writer, through sf_json_dump() */

    v = json_array();
    in = v;

    for (i = 0; i < 70; i++) {
        json_t  *a = json_array();

        json_array_append_new(in, a);
        in = a;
    }

    assert_null(sf_json_tree_dump(v, NULL));
    text = sf_json_dump(v);
    assert_non_null(text);
    assert_int_equal(strlen(text), 142);
    free(text);
    json_decref(v);
}


static void
test_order(void **state)
{
    FILE    *f;
    char     buf[65536];
    size_t   n;

    (void) state;

    /* a PrintNow order as the hook stores it */

    f = fopen("../fixtures/orders/5001.json", "r");
    if (f == NULL) {
        fail_msg("t/fixtures/orders/5001.json: run from t/unit");
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';

    same(buf);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_unsure_valid),
        cmocka_unit_test(test_dump_unsure),
        cmocka_unit_test(test_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
