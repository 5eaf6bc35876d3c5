
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_order.c: every branch of the send decision at the
 * hook (order events, order_deleted, is_deleted, is_archived, echo,
 * manual, siteflow_printnow_fetch, trigger statuses) and in the order job
 * (the duplicate guard, force, the look-up of a create that may be out,
 * manual sends, trigger statuses), with the exact reason texts the hook
 * answers and the job records; reasons cut at the buffer size.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sf_order.h"


#define DEL_PREFIX  "the order is deleted in PrintNow (is_deleted: true): "


static const sf_order_str_t  triggers[] = {
    { 4, (const unsigned char *) "Paid" },
    { 8, (const unsigned char *) "Approved" }
};


static sf_order_facts_t
hook(void)
{
    sf_order_facts_t  f;

    memset(&f, 0, sizeof(f));

    f.stage = SF_ORDER_AT_HOOK;
    f.siteflow_id = "sf-1";
    f.siteflow_id_len = 4;
    f.now_ms = 1000000;
    f.echo_window = 60000;
    f.status = "paid";
    f.status_len = 4;
    f.triggers = triggers;
    f.ntriggers = 2;

    return f;
}


static sf_order_facts_t
job(void)
{
    sf_order_facts_t  f;

    f = hook();
    f.stage = SF_ORDER_AT_JOB;

    return f;
}


static void
expect(const sf_order_facts_t *f, sf_order_decision_t want,
    const char *reason)
{
    char                 buf[1024];
    size_t               len;
    sf_order_decision_t  d;

    memset(buf, 'x', sizeof(buf));

    d = sf_order_decide(f, buf, sizeof(buf), &len);

    assert_string_equal(sf_order_decision_name(d),
                        sf_order_decision_name(want));
    assert_int_equal(len, strlen(reason));
    assert_memory_equal(buf, reason, len);
}


static void
test_hook_live(void **state)
{
    sf_order_facts_t  f;

    (void) state;

    f = hook();
    expect(&f, SF_ORDER_SEND, "");

    f.status = "APPROVED";
    f.status_len = 8;
    expect(&f, SF_ORDER_SEND, "");

    f.status = "New Order";
    f.status_len = 9;
    expect(&f, SF_ORDER_SKIP_STATUS,
           "status \"New Order\" is not a trigger status");

    /* same length, one byte apart; a prefix is not a match */
    f.status = "Pain";
    f.status_len = 4;
    expect(&f, SF_ORDER_SKIP_STATUS, "status \"Pain\" is not a trigger status");

    f.status = "paid";
    f.status_len = 3;
    expect(&f, SF_ORDER_SKIP_STATUS, "status \"pai\" is not a trigger status");

    f.status = NULL;
    f.status_len = 0;
    expect(&f, SF_ORDER_SKIP_NO_STATUS, "the order in the body has no status");

    /* fetch on: the job decides on the fetched order, whatever the body */
    f.fetch = 1;
    expect(&f, SF_ORDER_FETCH, "");

    f.ntriggers = 0;
    expect(&f, SF_ORDER_SKIP_MANUAL,
           "siteflow_order_trigger is manual: orders are sent with the "
           "admin send call only");

    f.archived = 1;
    expect(&f, SF_ORDER_SKIP_ARCHIVED,
           "the order is archived in PrintNow (is_archived: true): it is "
           "not sent to SiteFlow");

    f.pending_order = 1;
    expect(&f, SF_ORDER_SKIP_QUEUED, "a job for this order is already queued");
}


static void
test_hook_index(void **state)
{
    sf_order_facts_t  f;

    (void) state;

    f = hook();
    f.archived = 1;
    f.pending_order = 1;

    f.index = SF_ORDER_SENT;
    expect(&f, SF_ORDER_SKIP_SENT, "already sent to SiteFlow as \"sf-1\"");

    /* our own update of the order in PrintNow comes back as a hook */
    f.updated_ms = f.now_ms - 59999;
    expect(&f, SF_ORDER_SKIP_ECHO,
           "echo of our own update of the order in PrintNow");

    f.updated_ms = f.now_ms - 60000;
    expect(&f, SF_ORDER_SKIP_SENT, "already sent to SiteFlow as \"sf-1\"");

    /* an update stamped after now (another worker's clock) is no echo */
    f.updated_ms = f.now_ms + 1;
    expect(&f, SF_ORDER_SKIP_SENT, "already sent to SiteFlow as \"sf-1\"");

    f.index = SF_ORDER_CANCELLED;
    expect(&f, SF_ORDER_SKIP_CANCELLED,
           "the order was sent to SiteFlow as \"sf-1\" and cancelled there");

    f.siteflow_id = NULL;
    f.siteflow_id_len = 0;
    expect(&f, SF_ORDER_SKIP_CANCELLED,
           "the order was sent to SiteFlow as \"\" and cancelled there");
}


static void
test_hook_deleted_event(void **state)
{
    sf_order_facts_t  f;

    (void) state;

    f = hook();
    f.deleted = SF_ORDER_DELETED_EVENT;

    expect(&f, SF_ORDER_SKIP_DELETED, "siteflow_cancel_on_delete is off");

    f.cancel_on_delete = 1;
    expect(&f, SF_ORDER_SKIP_DELETED, "the order was never sent to SiteFlow");

    f.pending_order = 1;
    expect(&f, SF_ORDER_CANCEL, "");

    f.pending_order = 0;
    f.index = SF_ORDER_SENT;
    expect(&f, SF_ORDER_CANCEL, "");

    f.pending_cancel = 1;
    expect(&f, SF_ORDER_SKIP_QUEUED,
           "a cancel of this order is already queued");

    f.index = SF_ORDER_CANCELLED;
    expect(&f, SF_ORDER_SKIP_CANCELLED,
           "the order is already cancelled in SiteFlow");
}


static void
test_hook_deleted_flag(void **state)
{
    sf_order_facts_t  f;

    (void) state;

    f = hook();
    f.deleted = SF_ORDER_DELETED_FLAG;

    f.index = SF_ORDER_CANCELLED;
    expect(&f, SF_ORDER_SKIP_DELETED,
           DEL_PREFIX "it is already cancelled in SiteFlow");

    f.index = SF_ORDER_NOT_SENT;
    f.cancel_on_delete = 1;
    expect(&f, SF_ORDER_SKIP_DELETED, DEL_PREFIX "it is not sent to SiteFlow");

    f.cancel_on_delete = 0;
    f.index = SF_ORDER_SENT;
    expect(&f, SF_ORDER_SKIP_DELETED,
           DEL_PREFIX "it was sent to SiteFlow and stays there "
           "(siteflow_cancel_on_delete is off)");

    f.index = SF_ORDER_NOT_SENT;
    f.pending_order = 1;
    f.fetch = 1;
    expect(&f, SF_ORDER_SKIP_DELETED,
           DEL_PREFIX "the job already queued for it fetches the order "
           "again and skips it");

    f.fetch = 0;
    expect(&f, SF_ORDER_SKIP_DELETED,
           DEL_PREFIX "a job for it is already queued with the order as "
           "hooked before (siteflow_cancel_on_delete is off)");

    /* cancel_on_delete on: as order_deleted */
    f.cancel_on_delete = 1;
    expect(&f, SF_ORDER_CANCEL, "");

    f.pending_cancel = 1;
    expect(&f, SF_ORDER_SKIP_QUEUED,
           "a cancel of this order is already queued");

    f.pending_cancel = 0;
    f.pending_order = 0;
    f.index = SF_ORDER_SENT;
    expect(&f, SF_ORDER_CANCEL, "");
}


static void
test_job(void **state)
{
    sf_order_facts_t  f;

    (void) state;

    f = job();
    expect(&f, SF_ORDER_SEND, "");

    /* no echo, archived or queue checks in the job: the hook did them */
    f.updated_ms = f.now_ms;
    f.archived = 1;
    f.pending_order = 1;
    f.fetch = 1;
    expect(&f, SF_ORDER_SEND, "");

    f.status = "shipped";
    f.status_len = 7;
    expect(&f, SF_ORDER_SKIP_STATUS,
           "status \"shipped\" is not a trigger status");

    /* an admin send asks for the order: no trigger check */
    f.manual = 1;
    expect(&f, SF_ORDER_SEND, "");

    f.manual = 0;
    f.ntriggers = 0;
    expect(&f, SF_ORDER_SKIP_MANUAL,
           "siteflow_order_trigger is manual: orders are sent with the "
           "admin send call only");

    /* the status is checked before the manual trigger in the job */
    f.status = NULL;
    expect(&f, SF_ORDER_SKIP_NO_STATUS, "the PrintNow order has no status");

    f.manual = 1;
    expect(&f, SF_ORDER_SEND, "");

    /* a create may be out: looked up whatever the status says */
    f.manual = 0;
    f.lookup = 1;
    expect(&f, SF_ORDER_LOOKUP, "");

    /* the duplicate guard first, cancelled or sent alike */
    f.index = SF_ORDER_CANCELLED;
    expect(&f, SF_ORDER_SKIP_SENT, "already sent to SiteFlow as \"sf-1\"");

    f.index = SF_ORDER_SENT;
    expect(&f, SF_ORDER_SKIP_SENT, "already sent to SiteFlow as \"sf-1\"");

    f.force = 1;
    expect(&f, SF_ORDER_LOOKUP, "");
}


static void
test_reason_cut(void **state)
{
    char                 buf[16];
    size_t               len;
    sf_order_facts_t     f;
    sf_order_decision_t  d;
    static const char    status[] = "a\0b";

    (void) state;

    f = hook();
    f.status = status;
    f.status_len = 3;

    /* the status is quoted byte for byte, a NUL too */
    memset(buf, 0, sizeof(buf));
    d = sf_order_decide(&f, buf, 11, &len);

    assert_int_equal(d, SF_ORDER_SKIP_STATUS);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "status \"a\0b", 11);
    assert_int_equal(buf[11], 0);

    d = sf_order_decide(&f, buf, 0, &len);
    assert_int_equal(d, SF_ORDER_SKIP_STATUS);
    assert_int_equal(len, 0);

    /* no reason for a send: nothing written */
    f.status = "PAID";
    f.status_len = 4;
    d = sf_order_decide(&f, NULL, 0, &len);
    assert_int_equal(d, SF_ORDER_SEND);
    assert_int_equal(len, 0);
}


static void
test_trigger_case(void **state)
{
    size_t                  i;
    sf_order_facts_t        f;

    static const sf_order_str_t  words[] = {
#define W(s)  { sizeof(s) - 1, (const unsigned char *) s }
        W("\xc3\x9c" "berpr\xc3\xbc" "ft"),
        W("\xd0\x9d\xd0\xbe\xd0\xb2\xd1\x8b"),
        W("Zam\xc3\xb3wienie"),
        W("\xc5\x81\xc3\xb3" "d\xc5\xba"),
        W("\xe2\x82\xac")
#undef W
    };

    static const struct {
        const char  *status;
        int          send;
    } cases[] = {
        { "\xc3\xbc" "berpr\xc3\xbc" "ft", 1 },       /* überprüft */
        { "\xc3\x9c" "BERPR\xc3\x9c" "FT", 1 },       /* ÜBERPRÜFT */
        { "UBERPRUFT", 0 },                               /* no accents */
        { "\xd0\xbd\xd0\xbe\xd0\xb2\xd1\x8b", 1 },   /* новы */
        { "\xd0\x9d\xd0\x9e\xd0\x92\xd0\xab", 1 },   /* НОВЫ */
        { "ZAM\xc3\x93WIENIE", 1 },                       /* ZAMÓWIENIE */
        { "\xc5\x82\xc3\x93" "D\xc5\xb9", 1 },       /* łÓDŹ */
        { "\xe2\x82\xac", 1 },                          /* € itself */
        { "  Approved\t", 1 },                           /* spaces */
        { "Appro ved", 0 },
        { "\xc3", 0 },                                    /* a cut byte */
        { "Pa\xc3\xaf" "d", 0 }                          /* Païd */
    };

    (void) state;

    f = hook();

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const sf_order_str_t  all[] = {
            words[0], words[1], words[2], words[3], words[4], triggers[1]
        };

        print_message("case %zu\n", i);

        f.triggers = all;
        f.ntriggers = 6;
        f.status = cases[i].status;
        f.status_len = strlen(cases[i].status);

        if (cases[i].send) {
            expect(&f, SF_ORDER_SEND, "");

        } else {
            char  want[128];

            (void) snprintf(want, sizeof(want),
                            "status \"%s\" is not a trigger status",
                            cases[i].status);
            expect(&f, SF_ORDER_SKIP_STATUS, want);
        }
    }
}


static void
test_names(void **state)
{
    (void) state;

    assert_string_equal(sf_order_decision_name(SF_ORDER_SEND), "send");
    assert_string_equal(sf_order_decision_name(SF_ORDER_SKIP_STATUS),
                        "skip_status");
    assert_string_equal(sf_order_decision_name(SF_ORDER_DECISIONS),
                        "unknown");
}


/* the index's horizon (index_retention) */

static void
test_forgotten(void **state)
{
    (void) state;

    assert_int_equal(sf_order_forgotten("6002", 4, 6002, 0), 1);
    assert_int_equal(sf_order_forgotten("6003", 4, 6002, 0), 0);
    assert_int_equal(sf_order_forgotten("17", 2, 6002, 0), 1);
    assert_int_equal(sf_order_forgotten("17", 2, 0, 0), 0);     /* none */
    assert_int_equal(sf_order_forgotten("", 0, 6002, 1), 0);
    assert_int_equal(sf_order_forgotten("A-17", 4, 6002, 0), 0);
    assert_int_equal(sf_order_forgotten("A-17", 4, 0, 1), 1);
    /* past uint64: not a number that compares */
    assert_int_equal(sf_order_forgotten("99999999999999999999", 20,
                                        6002, 0), 0);
    assert_int_equal(sf_order_forgotten("99999999999999999999", 20,
                                        6002, 1), 1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_hook_live),
        cmocka_unit_test(test_hook_index),
        cmocka_unit_test(test_hook_deleted_event),
        cmocka_unit_test(test_hook_deleted_flag),
        cmocka_unit_test(test_job),
        cmocka_unit_test(test_reason_cut),
        cmocka_unit_test(test_trigger_case),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_forgotten),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
