
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for the UTF-8 helpers of sf_json.c that every caller uses:
 * the sanitiser (U+FFFD or '?', control characters, no cut character),
 * the validity check and the cut at a character boundary.
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


#define S(s)  s, sizeof(s) - 1


static void
clean(const char *src, size_t len, size_t size, unsigned flags,
    const char *want, size_t want_len)
{
    char    buf[64];
    size_t  n;

    memset(buf, 'x', sizeof(buf));

    n = sf_json_clean(buf, size, src, len, flags);

    assert_int_equal(n, want_len);
    assert_memory_equal(buf, want, want_len);

    /* nothing written past what it returns */
    assert_int_equal(buf[n], 'x');
    assert_int_equal(sf_json_utf8_valid((unsigned char *) buf, n), 1);
}


static void
test_clean_fffd(void **state)
{
    (void) state;

    /* valid UTF-8, control characters included, is copied as it is */
    clean(S("a\xc3\xa9\t\x7f\xf0\x9f\x98\x80"), 64, 0,
          S("a\xc3\xa9\t\x7f\xf0\x9f\x98\x80"));

    /* one U+FFFD per maximal invalid subpart */
    clean(S("a\xff" "b"), 64, 0, S("a\xef\xbf\xbd" "b"));
    clean(S("\xe2\x82" "b"), 64, 0, S("\xef\xbf\xbd" "b"));
    clean(S("\xc0\xaf"), 64, 0, S("\xef\xbf\xbd\xef\xbf\xbd"));
    clean(S("\xed\xa0\x80"), 64, 0,
          S("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    clean(S("\xf4\x90\x80\x80"), 64, 0,
          S("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    clean(S("\xe2\x82"), 64, 0, S("\xef\xbf\xbd"));

    /* a NUL is a character */
    clean(S("a\0b"), 64, 0, S("a\0b"));
}


static void
test_clean_qmark(void **state)
{
    (void) state;

    clean(S("a\xff" "b\xe2\x82"), 64, SF_JSON_CLEAN_QMARK, S("a?b?"));

    /* control characters only with SF_JSON_CLEAN_CONTROL */
    clean(S("a\tb\x7f\n"), 64, SF_JSON_CLEAN_QMARK, S("a\tb\x7f\n"));
    clean(S("a\tb\x7f\n\0"), 64, SF_JSON_CLEAN_QMARK | SF_JSON_CLEAN_CONTROL,
          S("a?b???"));
    clean(S("\x1f \xc3\xa9"), 64, SF_JSON_CLEAN_CONTROL,
          S("? \xc3\xa9"));
}


static void
test_clean_cut(void **state)
{
    (void) state;

    /* a character that does not fit is left out, whole */
    clean(S("ab\xe2\x82\xac" "c"), 4, 0, S("ab"));
    clean(S("ab\xe2\x82\xac" "c"), 5, 0, S("ab\xe2\x82\xac"));
    clean(S("ab\xff"), 4, 0, S("ab"));
    clean(S("ab\xff"), 5, 0, S("ab\xef\xbf\xbd"));
    clean(S("ab\xff"), 3, SF_JSON_CLEAN_QMARK, S("ab?"));
    clean(S("abc"), 0, 0, S(""));
    clean(NULL, 0, 64, 0, S(""));

    /* text cut at a byte count: a last character cut short is left out */
    clean(S("ab\xe2\x82"), 64, SF_JSON_CLEAN_CUT, S("ab"));
    clean(S("ab\xf0\x9f\x98"), 64, SF_JSON_CLEAN_CUT, S("ab"));
    clean(S("ab\xe2\x82\xac"), 64, SF_JSON_CLEAN_CUT, S("ab\xe2\x82\xac"));
    clean(S("a\xff" "b\xc3"), 64, SF_JSON_CLEAN_CUT, S("a\xef\xbf\xbd" "b"));
    clean(S("a\xe2\x82" "b"), 64, SF_JSON_CLEAN_CUT,
          S("a\xef\xbf\xbd" "b"));
    clean(S("ab\xe2\x82"), 64, SF_JSON_CLEAN_CUT | SF_JSON_CLEAN_QMARK,
          S("ab"));
}


static void
test_valid(void **state)
{
    (void) state;

    assert_int_equal(sf_json_utf8_valid((unsigned char *) S("")), 1);
    assert_int_equal(sf_json_utf8_valid((unsigned char *) S("a\0\xc3\xa9")),
                     1);
    assert_int_equal(
        sf_json_utf8_valid((unsigned char *) S("\xf4\x8f\xbf\xbf")), 1);

    /* overlong, surrogate, above U+10FFFF, cut, lone continuation */
    assert_int_equal(sf_json_utf8_valid((unsigned char *) S("\xc1\xbf")), 0);
    assert_int_equal(sf_json_utf8_valid((unsigned char *) S("\xe0\x9f\xbf")),
                     0);
    assert_int_equal(sf_json_utf8_valid((unsigned char *) S("\xed\xa0\x80")),
                     0);
    assert_int_equal(
        sf_json_utf8_valid((unsigned char *) S("\xf4\x90\x80\x80")), 0);
    assert_int_equal(sf_json_utf8_valid((unsigned char *) S("a\xe2\x82")), 0);
    assert_int_equal(sf_json_utf8_valid((unsigned char *) S("\x80")), 0);
}


static void
test_utf8_trim(void **state)
{
    const char  *s = "ab\xc3\xa9" "cd\xe2\x82\xac" "e\xf0\x9f\x98\x80";

    (void) state;

    assert_int_equal(sf_json_utf8_trim(s, 0), 0);
    assert_int_equal(sf_json_utf8_trim(s, 2), 2);
    assert_int_equal(sf_json_utf8_trim(s, 3), 2);      /* lead byte alone */
    assert_int_equal(sf_json_utf8_trim(s, 4), 4);
    assert_int_equal(sf_json_utf8_trim(s, 7), 6);      /* 1 of 3 */
    assert_int_equal(sf_json_utf8_trim(s, 8), 6);      /* 2 of 3 */
    assert_int_equal(sf_json_utf8_trim(s, 9), 9);
    assert_int_equal(sf_json_utf8_trim(s, 11), 10);    /* 1 of 4 */
    assert_int_equal(sf_json_utf8_trim(s, 13), 10);    /* 3 of 4 */
    assert_int_equal(sf_json_utf8_trim(s, 14), 14);

    /* stray continuation bytes are left for the sanitiser */
    assert_int_equal(sf_json_utf8_trim("a\x80\x80", 3), 3);
}


static void
test_utf8_cut(void **state)
{
    const char  *s = "ab\xc3\xa9" "cd\xe2\x82\xac";

    (void) state;

    assert_int_equal(sf_json_utf8_cut(s, 9, 20), 9);
    assert_int_equal(sf_json_utf8_cut(s, 9, 9), 9);
    assert_int_equal(sf_json_utf8_cut(s, 9, 4), 4);
    assert_int_equal(sf_json_utf8_cut(s, 9, 3), 2);
    assert_int_equal(sf_json_utf8_cut(s, 9, 8), 6);
    assert_int_equal(sf_json_utf8_cut(s, 9, 7), 6);
    assert_int_equal(sf_json_utf8_cut(s, 9, 0), 0);

    /* four bytes, cut after each of them */
    s = "a\xf0\x9f\x98\x80" "b";
    assert_int_equal(sf_json_utf8_cut(s, 6, 2), 1);
    assert_int_equal(sf_json_utf8_cut(s, 6, 3), 1);
    assert_int_equal(sf_json_utf8_cut(s, 6, 4), 1);
    assert_int_equal(sf_json_utf8_cut(s, 6, 5), 5);

    /* not UTF-8: at most three bytes back */
    assert_int_equal(sf_json_utf8_cut("\x80\x80\x80\x80\x80\x80", 6, 5),
                     2);
    assert_int_equal(sf_json_utf8_cut("\x80\x80\x80", 3, 2), 0);
}


static void
test_copy_cut(void **state)
{
    char  buf[8];

    (void) state;

    sf_json_copy_cut(buf, sizeof(buf), S("abc"));
    assert_string_equal(buf, "abc");

    /* 7 bytes of room: 4 and "...", the euro sign is not split */
    sf_json_copy_cut(buf, sizeof(buf), S("abc\xe2\x82\xac" "defg"));
    assert_string_equal(buf, "abc...");

    sf_json_copy_cut(buf, 3, S("abcdef"));
    assert_string_equal(buf, "ab");
}


/*
 * sf_json_compact(): when it says yes, jansson writes the text back the
 * same (the writers copy it instead); the cases where it must say no or
 * may say no (it is never looser than jansson)
 */

static void
compact_is(const char *text, size_t len, int want)
{
    char    *back;
    json_t  *v;
    int      got;

    got = sf_json_compact((const unsigned char *) text, len);

    if (want >= 0) {
        if (got != want) {
            fail_msg("sf_json_compact(\"%.*s\") = %d, want %d",
                     (int) len, text, got, want);
        }
    }

    if (!got) {
        return;
    }

    /* a key twice: the one case documented to differ */

    v = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (v == NULL && want < 0) {
        return;
    }

    json_decref(v);

    v = json_loadb(text, len, 0, NULL);
    assert_non_null(v);
    back = json_dumps(v, JSON_COMPACT);
    assert_non_null(back);

    if (strlen(back) != len || memcmp(back, text, len) != 0) {
        fail_msg("\"%.*s\" comes back as \"%s\"", (int) len, text, back);
    }

    free(back);
    json_decref(v);
}


static void
test_compact(void **state)
{
    size_t        i, n, k;
    char          buf[256];
    static const char  *yes[] = {
        "{}", "[]", "{\"a\":1}", "[1,-2,0,true,false,null]",
        "{\"a\":{\"b\":[{},[]]},\"c\":\"x\"}",
        "{\"p\":12.99,\"q\":0.5,\"r\":-3.25}",
        "[\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001F\"]",
        "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/\x7f\"]",
        "[123456789012345678]", "{\"event\":\"order\",\"n\":[1,2.5]}"
    };
    static const char  *no[] = {
        "", "{", "}", "[", "1", "\"a\"", "{ }", "[1, 2]", "{\"a\" :1}",
        "[1,]", "{\"a\":1,}", "[01]", "[-0]", "[1.0]", "[1e2]", "[1E2]",
        "[0.0]", "[1.]", "[.5]", "[+1]", "[1234567890123456789]",
        "[\"\\/\"]", "[\"\\u00e9\"]", "[\"\\u0000\"]",
        "[\"\\u000a\"]", "[\"\\u000A\"]", "[\"\\u001f\"]",
        "[\"\x01\"]", "[\"\xc3\"]", "[\"\xed\xa0\x80\"]", "[tru]",
        "[nul]", "{\"a\"}", "{1:2}", "[1]x", "[1] ", " [1]",
        "[0.30000000000000001]", "[\"a]", "{\"a\":}", "[[]"
    };

    (void) state;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        compact_is(yes[i], strlen(yes[i]), 1);
    }

    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        compact_is(no[i], strlen(no[i]), 0);
    }

    /* 64 levels are read, 65 are not */

    for (k = 64; k <= 65; k++) {
        n = 0;

        for (i = 0; i < k; i++) {
            buf[n++] = '[';
        }

        for (i = 0; i < k; i++) {
            buf[n++] = ']';
        }

        compact_is(buf, n, k == 64);
    }

    /* every prefix and every byte changed of a yes: jansson agrees */

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        n = strlen(yes[i]);

        for (k = 0; k < n; k++) {
            compact_is(yes[i], k, -1);
        }

        for (k = 0; k < n; k++) {
            unsigned  c;

            for (c = 0; c < 256; c += 7) {
                memcpy(buf, yes[i], n);
                buf[k] = (char) c;
                compact_is(buf, n, -1);
            }
        }
    }
}


/* sf_json_escape(): jansson's escapes */

static void
test_escape(void **state)
{
    char     in[256], out[sf_json_escaped_max(256)], *back;
    size_t   i, n;
    json_t  *v;

    (void) state;

    for (i = 0; i < 128; i++) {
        in[i] = (char) i;
    }

    memcpy(in + 128, "\xc3\xa9\xf0\x9f\x98\x80", 6);

    n = sf_json_escape(out, in, 134);
    assert_true(n <= sf_json_escaped_max(134));

    v = json_stringn(in, 134);
    assert_non_null(v);
    back = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(back);
    assert_int_equal(strlen(back), n);
    assert_memory_equal(back, out, n);

    free(back);
    json_decref(v);

    assert_int_equal(sf_json_escape(out, "", 0), 2);
    assert_memory_equal(out, "\"\"", 2);
}


/*
 * sf_json_strict(): never looser than jansson with JSON_REJECT_DUPLICATES
 * (when it says yes, jansson reads the body, and reads the copy as the
 * same value); sf_json_members() finds what jansson finds
 */

static void
strict_is(const char *text, size_t len, int want)
{
    int            got;
    char           key[64];
    size_t         out_len, i;
    json_t        *a, *b, *v;
    unsigned char  out[4096];
    sf_json_member_t  m[64];
    int            n;

    assert_true(len <= sizeof(out));

    got = sf_json_strict((const unsigned char *) text, len, out, &out_len);

    if (want >= 0 && got != want) {
        fail_msg("sf_json_strict(\"%.*s\") = %d, want %d", (int) len, text,
                 got, want);
    }

    if (!got) {
        return;
    }

    a = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (a == NULL) {
        fail_msg("\"%.*s\": strict yes, jansson no", (int) len, text);
    }

    b = json_loadb((char *) out, out_len, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(b);
    assert_true(json_equal(a, b));

    n = sf_json_members(out, out_len, m, 64);
    assert_int_equal(n, (int) json_object_size(a));

    for (i = 0; i < (size_t) n && i < 64; i++) {
        assert_true(m[i].key_len < sizeof(key));
        memcpy(key, m[i].key, m[i].key_len);
        key[m[i].key_len] = '\0';
        v = json_loadb((char *) m[i].value, m[i].value_len, JSON_DECODE_ANY,
                       NULL);
        assert_non_null(v);
        assert_true(json_equal(v, json_object_get(a, key)));
        json_decref(v);
    }

    json_decref(a);
    json_decref(b);
}


static void
test_strict(void **state)
{
    size_t        i, k, n;
    unsigned      c;
    char          buf[4096];
    FILE         *f;
    static const char  *yes[] = {
        "{}", " { } ", "{\"a\":1}", "{ \"a\" : [ 1 , -2.5e3 , true ] }\n",
        "{\"a\":{\"a\":1},\"b\":\"\\u00e9\\/\\ud83d\\ude00\"}",
        "{\"x\":null,\"y\":false,\"z\":\"\xc3\xa9\"}",
        "{\"n\":123456789012345678,\"r\":0.1,\"e\":1E-400}"
    };
    static const char  *no[] = {
        "", "[]", "1", "{", "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1,\"b\":1}}",
        "{\"a\\u0062\":1}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}", "{\"a\":1e400}", "{\"a\":01}", "{\"a\":1.}",
        "{\"a\":1234567890123456789}", "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}",
        "{\"a\":tru}", "{\"a\":1}x", "{\"a\" 1}", "{\"a\":1,}", "{,}",
        "{\"a\":\"\\x\"}", "{\"a\":[1,]}"
    };

    (void) state;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        strict_is(yes[i], strlen(yes[i]), 1);
    }

    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        strict_is(no[i], strlen(no[i]), 0);
    }

    /* a PrintNow order: yes; every prefix, every byte changed: agree */

    f = fopen("transform/01-single-item.order.json", "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);

    strict_is(buf, n, 1);

    for (k = 0; k < n; k++) {
        strict_is(buf, k, -1);
    }

    for (k = 0; k < n; k++) {
        char  save = buf[k];

        for (c = 0; c < 256; c += 5) {
            buf[k] = (char) c;
            strict_is(buf, n, -1);
        }

        buf[k] = save;
    }
}


/*
 * sf_json_alloc_install(): trees built before and after it are freed
 * right, json_dumps() text is freed with free(), blocks come back
 */

static void
test_alloc(void **state)
{
    int      i;
    char    *text;
    json_t  *before, *after, *v;
    void    *seen;

    (void) state;

    before = json_pack("{s:s, s:[i, f, s]}", "a", "some text long enough",
                       "b", 1, 2.5, "x");
    assert_non_null(before);

    sf_json_alloc_install();

    for (i = 0; i < 3; i++) {
        after = json_loadb("{\"k\":[1,2,{\"z\":\"a string of some length\"}],"
                           "\"m\":\"\\u00e9\"}", 56, 0, NULL);
        assert_non_null(after);

        text = json_dumps(after, JSON_COMPACT);
        assert_non_null(text);
        assert_string_equal(text, "{\"k\":[1,2,{\"z\":\"a string of some "
                                  "length\"}],\"m\":\"\xc3\xa9\"}");
        free(text);

        assert_int_equal(json_object_set_new(before, "c", after), 0);
    }

    json_decref(before);

    /* a freed small block is the next one of its size */

    v = json_integer(1);
    seen = v;
    json_decref(v);
    v = json_integer(2);
    assert_ptr_equal(v, seen);
    json_decref(v);
}


/* sf_json_int() writes what "%lld" writes */

static void
test_int(void **state)
{
    char                want[32], got[SF_JSON_INT_LEN];
    size_t              i, n;
    long long           v;
    unsigned long long  x;

    static const long long  edges[] = {
        0, 1, -1, 9, 10, -9, -10, 99, 100, 12345, -12345,
        999999999999999999LL, 1000000000000000000LL,
        9223372036854775807LL, -9223372036854775807LL - 1,
        -9223372036854775807LL
    };

    (void) state;

    for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        snprintf(want, sizeof(want), "%lld", edges[i]);
        n = sf_json_int(got, edges[i]);
        assert_string_equal(got, want);
        assert_int_equal(n, strlen(want));
    }

    /* every power of ten and its neighbours, both signs; then a spread */

    for (x = 1; x <= 1000000000000000000ULL; x *= 10) {
        for (v = (long long) x - 1; v <= (long long) x + 1; v++) {
            snprintf(want, sizeof(want), "%lld", v);
            assert_int_equal(sf_json_int(got, v), strlen(want));
            assert_string_equal(got, want);
            snprintf(want, sizeof(want), "%lld", -v);
            assert_int_equal(sf_json_int(got, -v), strlen(want));
            assert_string_equal(got, want);
        }
    }

    for (x = 88172645463325252ULL, i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = (long long) (x >> (i % 64));
        snprintf(want, sizeof(want), "%lld", v);
        assert_int_equal(sf_json_int(got, v), strlen(want));
        assert_string_equal(got, want);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_clean_fffd),
        cmocka_unit_test(test_clean_qmark),
        cmocka_unit_test(test_clean_cut),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_utf8_cut),
        cmocka_unit_test(test_utf8_trim),
        cmocka_unit_test(test_copy_cut),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_int),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
