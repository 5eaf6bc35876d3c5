
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_breaker.c: a breaker per storefront and upstream,
 * one probe at a time once its backoff is over, failures counted per
 * probe, and a job waiting only for the upstreams it calls.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sf_breaker.h"


#define SF  SF_BREAKER_SITEFLOW
#define PN  SF_BREAKER_PRINTNOW
#define S1  "shop1", 5
#define S2  "shop2", 5


static sf_breakers_t  br;


static int
setup(void **state)
{
    (void) state;
    memset(&br, 0, sizeof(br));
    return 0;
}


static sf_breaker_change_t
failed(const char *name, size_t len, unsigned up, unsigned *probe,
    uint64_t now, uint64_t backoff)
{
    sf_breaker_t  *b;

    return sf_breaker_report(&br, name, len, up, 0, probe, now, backoff, &b);
}


static sf_breaker_change_t
answered(const char *name, size_t len, unsigned up, unsigned *probe)
{
    sf_breaker_t  *b;

    return sf_breaker_report(&br, name, len, up, 1, probe, 0, 0, &b);
}


static void
test_closed_allows_all(void **state)
{
    unsigned  probe = 7;

    (void) state;

    assert_int_equal(sf_breaker_allows(&br, S1, SF | PN, 100, &probe), 1);
    assert_int_equal(probe, 0);
    assert_int_equal(answered(S1, SF, &probe), SF_BREAKER_SAME);
    assert_int_equal(br.n, 0);          /* an answer creates nothing */
    assert_int_equal(br.open, 0);
}


static void
test_one_probe_after_backoff(void **state)
{
    unsigned  probe = 0, p2 = 0;

    (void) state;

    assert_int_equal(failed(S1, SF, &probe, 1000, 500), SF_BREAKER_OPENED);
    assert_int_equal(br.open, 1);
    assert_int_equal(sf_breaker_failures(&br, S1), 1);

    /* before the backoff is over: every job that calls SiteFlow waits */
    assert_int_equal(sf_breaker_allows(&br, S1, SF, 1499, &probe), 0);
    assert_int_equal(probe, 0);

    /* then one probe, and only one */
    assert_int_equal(sf_breaker_allows(&br, S1, SF | PN, 1500, &probe), 1);
    assert_int_equal(probe, SF);
    assert_int_equal(sf_breaker_allows(&br, S1, SF, 9999, &p2), 0);

    /* the probe fails: two failures, a longer wait from now */
    assert_int_equal(sf_breaker_next_failures(&br, S1, SF), 2);
    assert_int_equal(failed(S1, SF, &probe, 1600, 1000), SF_BREAKER_OPENED);
    assert_int_equal(probe, 0);
    assert_int_equal(sf_breaker_failures(&br, S1), 2);
    assert_int_equal(sf_breaker_allows(&br, S1, SF, 2599, &p2), 0);
    assert_int_equal(sf_breaker_allows(&br, S1, SF, 2600, &p2), 1);
    assert_int_equal(p2, SF);

    /* the next probe is answered: closed, everything goes */
    assert_int_equal(answered(S1, SF, &p2), SF_BREAKER_CLOSED);
    assert_int_equal(p2, 0);
    assert_int_equal(br.open, 0);
    assert_int_equal(sf_breaker_failures(&br, S1), 0);
    assert_int_equal(sf_breaker_allows(&br, S1, SF, 2601, &p2), 1);
    assert_int_equal(p2, 0);
}


static void
test_runs_started_together_are_one_failure(void **state)
{
    unsigned  none = 0;

    (void) state;

    /* 32 runs in flight when SiteFlow went down: one failure */
    assert_int_equal(failed(S1, SF, &none, 1000, 500), SF_BREAKER_OPENED);

    for (int i = 0; i < 31; i++) {
        assert_int_equal(failed(S1, SF, &none, 1001 + i, 500),
                         SF_BREAKER_SAME);
    }

    assert_int_equal(sf_breaker_failures(&br, S1), 1);
}


static void
test_upstreams_apart(void **state)
{
    unsigned  probe = 0;

    (void) state;

    /* SiteFlow down: a PrintNow update still goes, and PrintNow's
       answer does not close SiteFlow's breaker */
    assert_int_equal(failed(S1, SF, &probe, 1000, 500), SF_BREAKER_OPENED);
    assert_int_equal(sf_breaker_allows(&br, S1, PN, 1001, &probe), 1);
    assert_int_equal(probe, 0);
    assert_int_equal(answered(S1, PN, &probe), SF_BREAKER_SAME);
    assert_int_equal(sf_breaker_allows(&br, S1, SF | PN, 1002, &probe), 0);

    /* another storefront is not concerned */
    assert_int_equal(sf_breaker_allows(&br, S2, SF, 1002, &probe), 1);

    /* both open: a job calling both probes both */
    assert_int_equal(failed(S1, PN, &probe, 1000, 500), SF_BREAKER_OPENED);
    assert_int_equal(br.open, 2);
    assert_int_equal(sf_breaker_allows(&br, S1, SF | PN, 1500, &probe), 1);
    assert_int_equal(probe, SF | PN);

    /* the run ends without an answer: the probes end, failures stay */
    sf_breaker_probe_end(&br, S1, &probe);
    assert_int_equal(probe, 0);
    assert_int_equal(sf_breaker_failures(&br, S1), 1);
    assert_int_equal(sf_breaker_allows(&br, S1, PN, 1500, &probe), 1);
    assert_int_equal(probe, PN);
}


static void
test_names_and_room(void **state)
{
    char      name[300];
    unsigned  probe = 0, i;

    (void) state;

    /* names are capped: two long names alike in their first 128 bytes
       share breakers */
    memset(name, 'x', sizeof(name));
    assert_int_equal(failed(name, 200, SF, &probe, 0, 100), SF_BREAKER_OPENED);
    assert_int_equal(sf_breaker_allows(&br, name, 250, SF, 50, &probe), 0);

    /* no room: nothing opens, nothing waits */
    for (i = 1; i < SF_BREAKERS; i++) {
        snprintf(name, sizeof(name), "s%u", i);
        (void) failed(name, strlen(name), SF, &probe, 0, 100);
    }

    assert_int_equal(br.n, SF_BREAKERS);
    assert_int_equal(failed("late", 4, SF, &probe, 0, 100), SF_BREAKER_SAME);
    assert_int_equal(sf_breaker_allows(&br, "late", 4, SF, 1, &probe), 1);
}


static int
gone(uint64_t owner, void *data)
{
    return owner == *(uint64_t *) data;
}


/* shared by processes: a probe whose process is gone ends */

static void
test_probe_of_a_gone_owner(void **state)
{
    uint64_t  dead = 0;
    unsigned  probe = 0, p2 = 0;

    (void) state;

    assert_int_equal(failed(S1, SF, &probe, 1000, 500), SF_BREAKER_OPENED);
    assert_int_equal(failed(S2, SF, &probe, 1000, 500), SF_BREAKER_OPENED);

    /* process 101 probes shop1's SiteFlow, process 202 shop2's */
    assert_int_equal(sf_breaker_allows(&br, S1, SF | PN, 1500, &probe), 1);
    assert_int_equal(probe, SF);
    sf_breaker_probe_owner(&br, S1, probe, 101);
    assert_int_equal(sf_breaker_allows(&br, S2, SF, 1500, &p2), 1);
    sf_breaker_probe_owner(&br, S2, p2, 202);

    /* nobody gone: nothing ends, shop1 waits for its probe */
    assert_int_equal(sf_breaker_probes_release(&br, gone, &dead), 0);
    assert_int_equal(sf_breaker_allows(&br, S1, SF, 1600, &p2), 0);

    /* 101 is gone: its probe ends, the next one may go; 202's stays */
    dead = 101;
    assert_int_equal(sf_breaker_probes_release(&br, gone, &dead), 1);
    assert_int_equal(sf_breaker_allows(&br, S1, SF, 1600, &p2), 1);
    assert_int_equal(p2, SF);
    assert_int_equal(sf_breaker_allows(&br, S2, SF, 1600, &probe), 0);
    assert_int_equal(sf_breaker_failures(&br, S1), 1);   /* still open */

    /* a probe that ended by its answer has no owner left */
    sf_breaker_probe_owner(&br, S1, p2, 303);
    assert_int_equal(answered(S1, SF, &p2), SF_BREAKER_CLOSED);
    dead = 303;
    assert_int_equal(sf_breaker_probes_release(&br, gone, &dead), 0);

    /* an owner told for a probe not given changes nothing */
    sf_breaker_probe_owner(&br, S1, SF, 404);
    dead = 404;
    assert_int_equal(sf_breaker_probes_release(&br, gone, &dead), 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_closed_allows_all, setup),
        cmocka_unit_test_setup(test_one_probe_after_backoff, setup),
        cmocka_unit_test_setup(test_runs_started_together_are_one_failure,
                               setup),
        cmocka_unit_test_setup(test_upstreams_apart, setup),
        cmocka_unit_test_setup(test_names_and_room, setup),
        cmocka_unit_test_setup(test_probe_of_a_gone_owner, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
