
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_hook_id.c: where a PrintNow hook's body holds the
 * order id, in the documented order (order.id, order.order_id, data.id,
 * data.order_id, id, order_id; null counts as absent), and the same
 * answer from jansson's tree and from the body's text.
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

#include "sf_hook_id.h"
#include "sf_json.h"


#define MEMBERS  64


typedef struct {
    const char  *body;
    const char  *id;          /* the value as compact JSON, NULL: none */
    const char  *prefix;
    const char  *field;
} id_case_t;


static const id_case_t  id_cases[] = {
    /* a v2 order, the documented envelopes */
    { "{\"id\":5001,\"status\":\"New\"}", "5001", "", "id" },
    { "{\"event\":\"order_created\",\"order\":{\"id\":5001}}", "5001",
      "order.", "id" },
    { "{\"event\":\"x\",\"data\":{\"id\":\"W5\"}}", "\"W5\"", "data.",
      "id" },
    { "{\"event\":\"x\",\"id\":7}", "7", "", "id" },
    { "{\"event\":\"x\",\"order_id\":8}", "8", "", "order_id" },

    /* precedence */
    { "{\"id\":1,\"order\":{\"id\":2},\"data\":{\"id\":3}}", "2",
      "order.", "id" },
    { "{\"id\":1,\"data\":{\"id\":3}}", "3", "data.", "id" },
    { "{\"order\":{\"order_id\":4},\"data\":{\"id\":3}}", "4", "order.",
      "order_id" },
    { "{\"order_id\":9,\"id\":1}", "1", "", "id" },

    /* the order object without an id: the others are read */
    { "{\"event\":\"x\",\"order\":{\"status\":\"New\"},\"id\":5001}", "5001",
      "", "id" },
    { "{\"order\":{\"status\":\"New\"},\"data\":{\"order_id\":6}}", "6",
      "data.", "order_id" },
    { "{\"order\":{\"status\":\"New\"},\"order_id\":\"A-1\"}", "\"A-1\"", "",
      "order_id" },

    /* null is absent */
    { "{\"order\":{\"id\":null},\"id\":12}", "12", "", "id" },
    { "{\"id\":null,\"order_id\":13}", "13", "", "order_id" },
    { "{\"id\":null}", NULL, "", "id" },

    /* "order" or "data" that is not an object does not count */
    { "{\"order\":\"5\",\"data\":[1],\"id\":14}", "14", "", "id" },

    /* none: the refusal names "id" */
    { "{\"event\":\"x\"}", NULL, "", "id" },
    { "{\"order\":{},\"data\":{}}", NULL, "", "id" },

    /* a wrong type is returned as found: the caller refuses it */
    { "{\"order\":{\"id\":[1]}}", "[1]", "order.", "id" },
};


static char *
dump(json_t *v)
{
    return (v == NULL) ? NULL : json_dumps(v, JSON_COMPACT|JSON_ENCODE_ANY);
}


static void
check(const id_case_t *c, json_t *v, const char *prefix, const char *field)
{
    char  *text;

    text = dump(v);

    if (c->id == NULL) {
        assert_null(text);

    } else {
        assert_non_null(text);
        assert_string_equal(text, c->id);
    }

    free(text);

    assert_string_equal(prefix, c->prefix);
    assert_string_equal(field, c->field);
}


/* what ngx_http_siteflow_hook_text() does: the chosen order object */

static json_t *
by_text(const char *body, const char **prefix, const char **field)
{
    int                      nr, no, i;
    size_t                   len;
    json_t                  *v;
    unsigned char           *text;
    const char              *keys[] = { "order", "data" };
    sf_json_member_t        *m;
    sf_json_member_t         rm[MEMBERS], om[MEMBERS];

    text = malloc(strlen(body) + 1);
    assert_non_null(text);

    assert_true(sf_json_strict((const unsigned char *) body, strlen(body),
                               text, &len));

    nr = sf_json_members(text, len, rm, MEMBERS);
    assert_true(nr >= 0 && nr <= MEMBERS);

    memcpy(om, rm, nr * sizeof(sf_json_member_t));
    no = nr;
    *prefix = "";

    for (i = 0; i < 2; i++) {
        for (m = rm; m < rm + nr; m++) {
            if (m->key_len == strlen(keys[i])
                && memcmp(m->key, keys[i], m->key_len) == 0
                && m->value[0] == '{')
            {
                break;
            }
        }

        if (m < rm + nr) {
            no = sf_json_members(m->value, m->value_len, om, MEMBERS);
            assert_true(no >= 0 && no <= MEMBERS);
            *prefix = (i == 0) ? "order." : "data.";
            break;
        }
    }

    v = sf_hook_id_text(rm, nr, om, no, MEMBERS, prefix, field);

    free(text);

    return v;
}


static void
test_cases(void **state)
{
    size_t         i;
    json_t        *root, *v;
    const char    *prefix, *field;

    (void) state;

    for (i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
        print_message("case %zu: %s\n", i, id_cases[i].body);

        root = json_loads(id_cases[i].body, 0, NULL);
        assert_non_null(root);

        prefix = field = "unset";
        v = sf_hook_id(root, &prefix, &field);
        check(&id_cases[i], v, prefix, field);

        json_decref(root);

        prefix = field = "unset";
        v = by_text(id_cases[i].body, &prefix, &field);
        assert_non_null(field);
        check(&id_cases[i], v, prefix, field);

        json_decref(v);
    }
}


/* a "data" object of more members than the text path reads: it declines */

static void
test_data_too_big(void **state)
{
    int                i, nr, no;
    char              *body, *p;
    json_t            *v;
    size_t             len;
    const char        *prefix, *field;
    unsigned char     *text;
    sf_json_member_t   rm[MEMBERS], om[MEMBERS];

    (void) state;

    body = malloc(16 * (MEMBERS + 10) + 100);
    assert_non_null(body);

    p = body + sprintf(body, "{\"order\":{\"status\":\"New\"},\"data\":{");

    for (i = 0; i < MEMBERS + 1; i++) {
        p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
    }

    sprintf(p, ",\"id\":77}}");

    text = malloc(strlen(body) + 1);
    assert_non_null(text);
    assert_true(sf_json_strict((const unsigned char *) body, strlen(body),
                               text, &len));

    nr = sf_json_members(text, len, rm, MEMBERS);
    assert_int_equal(nr, 2);

    no = sf_json_members(rm[0].value, rm[0].value_len, om, MEMBERS);
    assert_int_equal(no, 1);

    prefix = "order.";
    v = sf_hook_id_text(rm, nr, om, no, MEMBERS, &prefix, &field);
    assert_null(v);
    assert_null(field);

    /* jansson's tree answers instead */

    v = json_loads(body, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_integer_value(sf_hook_id(v, &prefix, &field)), 77);
    assert_string_equal(prefix, "data.");
    json_decref(v);

    free(text);
    free(body);
}


static void
test_member(void **state)
{
    json_t            *v;
    const char        *body = "{\"a\":1,\"bb\":\"x\",\"c\":null}";
    sf_json_member_t   m[8];
    int                n;

    (void) state;

    n = sf_json_members((const unsigned char *) body, strlen(body), m, 8);
    assert_int_equal(n, 3);

    v = sf_hook_member(m, n, "bb");
    assert_string_equal(json_string_value(v), "x");
    json_decref(v);

    v = sf_hook_member(m, n, "c");
    assert_true(json_is_null(v));

    assert_null(sf_hook_member(m, n, "b"));
    assert_null(sf_hook_member(m, n, "d"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_data_too_big),
        cmocka_unit_test(test_member),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
