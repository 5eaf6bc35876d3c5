
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_path.c: ids become one escaped path segment; empty,
 * "." and ".." are refused; the last guard finds dot segments in clear
 * and escaped.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sf_path.h"


typedef struct {
    const char        *id;
    size_t             len;
    sf_path_rc_t       rc;
    const char        *path;     /* "/o/" + the segment + "/shipped" */
} segment_case_t;


#define S(s)  s, sizeof(s) - 1


static const segment_case_t  segment_cases[] = {
    { S("1001"), SF_PATH_OK, "/o/1001/shipped" },
    { S("PN-5001_a.b~c"), SF_PATH_OK, "/o/PN-5001_a.b~c/shipped" },
    { S("..."), SF_PATH_OK, "/o/.../shipped" },
    { S(".a"), SF_PATH_OK, "/o/.a/shipped" },
    { S("a..b"), SF_PATH_OK, "/o/a..b/shipped" },
    { S(""), SF_PATH_EMPTY, NULL },
    { S("."), SF_PATH_DOT, NULL },
    { S(".."), SF_PATH_DOT, NULL },
    { S("../../1003/shipped"), SF_PATH_OK,
      "/o/..%2F..%2F1003%2Fshipped/shipped" },
    { S("../../../../v1/secret?x=1#"), SF_PATH_OK,
      "/o/..%2F..%2F..%2F..%2Fv1%2Fsecret%3Fx%3D1%23/shipped" },
    { S("%2e%2e"), SF_PATH_OK, "/o/%252e%252e/shipped" },
    { S("a b\\c"), SF_PATH_OK, "/o/a%20b%5Cc/shipped" },
    { S("\x01\x7f\xff"), SF_PATH_OK, "/o/%01%7F%FF/shipped" },
    { S("a\0b"), SF_PATH_OK, "/o/a%00b/shipped" },
    { S("x;y=z&w+v@u:t,s$r!q'p(o)n*m"), SF_PATH_OK,
      "/o/x%3By%3Dz%26w%2Bv%40u%3At%2Cs%24r%21q%27p%28o%29n%2Am/shipped" },
};


static void
test_segments(void **state)
{
    char                   buf[256];
    size_t                 i, pos;
    sf_path_rc_t           rc;
    const segment_case_t  *c;

    (void) state;

    for (i = 0; i < sizeof(segment_cases) / sizeof(segment_cases[0]); i++) {
        c = &segment_cases[i];

        assert_int_equal(sf_path_segment_check(c->id, c->len),
                         c->rc == SF_PATH_OK ? SF_PATH_OK : c->rc);

        pos = 0;
        assert_int_equal(sf_path_append(buf, sizeof(buf), &pos, "/o/"),
                         SF_PATH_OK);

        rc = sf_path_append_segment(buf, sizeof(buf), &pos, c->id, c->len);

        if (rc != c->rc) {
            fail_msg("case %zu: rc %d, want %d", i, (int) rc, (int) c->rc);
        }

        if (c->path == NULL) {
            assert_int_equal(pos, 3);
            continue;
        }

        assert_int_equal(sf_path_append(buf, sizeof(buf), &pos, "/shipped"),
                         SF_PATH_OK);
        assert_string_equal(buf, c->path);
        assert_int_equal(pos, strlen(c->path));

        /* whatever the id, the built path has no dot segment */

        assert_true(sf_path_is_clean(buf, pos));
    }
}


static void
test_no_room(void **state)
{
    char    buf[8];
    size_t  pos;

    (void) state;

    pos = 0;
    assert_int_equal(sf_path_append_segment(buf, sizeof(buf), &pos,
                                            S("1234567")),
                     SF_PATH_OK);
    assert_string_equal(buf, "1234567");

    pos = 0;
    assert_int_equal(sf_path_append_segment(buf, sizeof(buf), &pos,
                                            S("12345678")),
                     SF_PATH_NO_ROOM);
    assert_int_equal(pos, 0);

    pos = 0;
    assert_int_equal(sf_path_append_segment(buf, sizeof(buf), &pos,
                                            S("12345/")),
                     SF_PATH_NO_ROOM);

    pos = 5;
    assert_int_equal(sf_path_append(buf, sizeof(buf), &pos, "abc"),
                     SF_PATH_NO_ROOM);
    assert_int_equal(pos, 5);
}


typedef struct {
    const char  *path;
    int          clean;
} clean_case_t;


static const clean_case_t  clean_cases[] = {
    { "/api/v2/order/1001/shipped/101", 1 },
    { "/api/v2/order/a..b/status", 1 },
    { "/api/v2/order/.../status", 1 },
    { "/api/v2/order/%2e%2e%2e", 1 },
    { "/api/v2/order/1001?x=/../", 1 },
    { "/api/v2/order/1001#/..", 1 },
    { "/api/v2/order/", 1 },
    { "", 1 },
    { "/api/v2/order/.", 0 },
    { "/api/v2/order/..", 0 },
    { "/api/v2/order/../1003/shipped", 0 },
    { "/api/v2/order/./1003", 0 },
    { "/api/v2/order/%2e%2e/1003", 0 },
    { "/api/v2/order/%2E./1003", 0 },
    { "/api/v2/order/.%2E?x", 0 },
    { "/api/v2/order/%2e", 0 },
    { "..", 0 },
    { "./x", 0 },
};


static void
test_clean(void **state)
{
    size_t               i;
    const clean_case_t  *c;

    (void) state;

    for (i = 0; i < sizeof(clean_cases) / sizeof(clean_cases[0]); i++) {
        c = &clean_cases[i];

        if (sf_path_is_clean(c->path, strlen(c->path)) != c->clean) {
            fail_msg("\"%s\": want %d", c->path, c->clean);
        }
    }
}


static void
test_texts(void **state)
{
    (void) state;

    assert_non_null(strstr(sf_path_rc_text(SF_PATH_EMPTY), "empty"));
    assert_non_null(strstr(sf_path_rc_text(SF_PATH_DOT), "\"..\""));
    assert_non_null(strstr(sf_path_rc_text(SF_PATH_NO_ROOM), "long"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_no_room),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_texts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
