
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_job.c: the outcome of a delivery attempt, the backoff
 * schedule with jitter, and the give-up age.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sf_job.h"


#define NOT_SENT  0
#define SENT      1


typedef struct {
    unsigned           status;
    sf_net_error_t     err;
    int                sent;
    sf_job_outcome_t   want;
} classify_case_t;


static const classify_case_t  classify_cases[] = {

    /* a response */

    { 200, SF_NET_OK, SENT, SF_JOB_DONE },
    { 201, SF_NET_OK, SENT, SF_JOB_DONE },
    { 202, SF_NET_OK, NOT_SENT, SF_JOB_DONE },
    { 204, SF_NET_OK, SENT, SF_JOB_DONE },
    { 299, SF_NET_OK, SENT, SF_JOB_DONE },
    { 301, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 302, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 304, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 400, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 401, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 403, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 404, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 409, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 413, SF_NET_OK, NOT_SENT, SF_JOB_FAIL },
    { 422, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 499, SF_NET_OK, SENT, SF_JOB_FAIL },
    { 408, SF_NET_OK, SENT, SF_JOB_RETRY },
    { 408, SF_NET_OK, NOT_SENT, SF_JOB_RETRY },
    { 429, SF_NET_OK, SENT, SF_JOB_RETRY },
    { 429, SF_NET_OK, NOT_SENT, SF_JOB_RETRY },
    { 500, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },
    { 500, SF_NET_OK, NOT_SENT, SF_JOB_RETRY },
    { 502, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },
    { 503, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },
    { 503, SF_NET_OK, NOT_SENT, SF_JOB_RETRY },
    { 504, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },
    { 599, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },

    /* no usable status */

    { 0, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },
    { 0, SF_NET_OK, NOT_SENT, SF_JOB_RETRY },
    { 100, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },
    { 199, SF_NET_OK, NOT_SENT, SF_JOB_RETRY },
    { 600, SF_NET_OK, SENT, SF_JOB_AMBIGUOUS },
    { 999, SF_NET_OK, NOT_SENT, SF_JOB_RETRY },

    /* nothing can have been sent */

    { 0, SF_NET_CONNECT, NOT_SENT, SF_JOB_RETRY },
    { 0, SF_NET_CONNECT, SENT, SF_JOB_RETRY },
    { 0, SF_NET_DNS, NOT_SENT, SF_JOB_RETRY },
    { 0, SF_NET_DNS, SENT, SF_JOB_RETRY },

    /* the request may have reached the server */

    { 0, SF_NET_TIMEOUT, NOT_SENT, SF_JOB_RETRY },
    { 0, SF_NET_TIMEOUT, SENT, SF_JOB_AMBIGUOUS },
    { 0, SF_NET_RESET, NOT_SENT, SF_JOB_RETRY },
    { 0, SF_NET_RESET, SENT, SF_JOB_AMBIGUOUS },
    { 0, SF_NET_TLS, NOT_SENT, SF_JOB_RETRY },
    { 0, SF_NET_TLS, SENT, SF_JOB_AMBIGUOUS },
    { 0, SF_NET_OTHER, NOT_SENT, SF_JOB_RETRY },
    { 0, SF_NET_OTHER, SENT, SF_JOB_AMBIGUOUS },
    { 200, SF_NET_TIMEOUT, SENT, SF_JOB_AMBIGUOUS },
    { 200, SF_NET_RESET, SENT, SF_JOB_AMBIGUOUS },
    { 500, SF_NET_RESET, NOT_SENT, SF_JOB_RETRY },
    { 0, (sf_net_error_t) 99, SENT, SF_JOB_AMBIGUOUS },
    { 0, (sf_net_error_t) 99, NOT_SENT, SF_JOB_RETRY },

    /* an oversized response */

    { 200, SF_NET_TOO_LARGE, SENT, SF_JOB_FAIL },
    { 201, SF_NET_TOO_LARGE, SENT, SF_JOB_FAIL },
    { 0, SF_NET_TOO_LARGE, SENT, SF_JOB_FAIL },
    { 0, SF_NET_TOO_LARGE, NOT_SENT, SF_JOB_FAIL },
    { 700, SF_NET_TOO_LARGE, SENT, SF_JOB_FAIL },
    { 404, SF_NET_TOO_LARGE, SENT, SF_JOB_FAIL },
    { 301, SF_NET_TOO_LARGE, SENT, SF_JOB_FAIL },
    { 429, SF_NET_TOO_LARGE, SENT, SF_JOB_RETRY },
    { 408, SF_NET_TOO_LARGE, SENT, SF_JOB_RETRY },
    { 502, SF_NET_TOO_LARGE, SENT, SF_JOB_AMBIGUOUS },
    { 503, SF_NET_TOO_LARGE, NOT_SENT, SF_JOB_RETRY },
};


static void
test_classify(void **state)
{
    size_t                  i;
    sf_job_outcome_t        got;
    const classify_case_t  *c;

    (void) state;

    for (i = 0; i < sizeof(classify_cases) / sizeof(classify_cases[0]); i++) {
        c = &classify_cases[i];

        got = sf_job_classify(c->status, c->err, c->sent);

        if (got != c->want) {
            fail_msg("status %u err %s sent %d: %s, want %s", c->status,
                     sf_net_error_name(c->err), c->sent,
                     sf_job_outcome_name(got), sf_job_outcome_name(c->want));
        }
    }
}


/* every status, both ways: the documented bands */

static void
test_classify_all_statuses(void **state)
{
    int               sent;
    unsigned          s;
    sf_job_outcome_t  want;

    (void) state;

    for (sent = 0; sent <= 1; sent++) {
        for (s = 0; s < 1000; s++) {
            if (s >= 200 && s <= 299) {
                want = SF_JOB_DONE;

            } else if (s == 408 || s == 429) {
                want = SF_JOB_RETRY;

            } else if (s >= 300 && s <= 499) {
                want = SF_JOB_FAIL;

            } else {
                want = sent ? SF_JOB_AMBIGUOUS : SF_JOB_RETRY;
            }

            assert_int_equal(sf_job_classify(s, SF_NET_OK, sent), want);

            /* the "sent" flag is any non-zero value */

            assert_int_equal(sf_job_classify(s, SF_NET_OK, sent * 7), want);
        }
    }

    assert_int_equal(sf_job_classify(~0u, SF_NET_OK, 1), SF_JOB_AMBIGUOUS);
}


/* base * 2^(attempt - 1) capped at max, computed another way */

static uint64_t
expected_delay(unsigned attempt, uint64_t base, uint64_t max)
{
    unsigned  k;

    if (attempt == 0 || base == 0 || max == 0) {
        return 0;
    }

    k = attempt - 1;

    if (k >= 64 || base > (max >> k)) {
        return max;
    }

    return base << k;
}


static void
check_backoff(uint64_t base, uint64_t max)
{
    unsigned  a, i;
    uint64_t  d, v, prev_lo, prev_hi;
    static const uint32_t  randoms[] = {
        0, 1, 2, 0x7fffffff, 0x80000000, 0xdeadbeef, 0xfffffffe, 0xffffffff
    };

    prev_lo = 0;
    prev_hi = 0;

    for (a = 0; a <= 200; a++) {
        d = expected_delay(a, base, max);

        for (i = 0; i < sizeof(randoms) / sizeof(randoms[0]); i++) {
            v = sf_job_backoff_ms(a, base, max, randoms[i]);

            if (v < d / 2 || v > d) {
                fail_msg("attempt %u base %llu max %llu random %u: %llu "
                         "not in [%llu, %llu]", a, (unsigned long long) base,
                         (unsigned long long) max, randoms[i],
                         (unsigned long long) v, (unsigned long long) d / 2,
                         (unsigned long long) d);
            }
        }

        /* the ends of the range */

        assert_true(sf_job_backoff_ms(a, base, max, 0) == d / 2);

        if (d - d / 2 < 0xffffffffULL) {
            assert_true(sf_job_backoff_ms(a, base, max, 0xffffffff) == d);
        }

        /* the bounds never shrink as attempts grow */

        assert_true(d / 2 >= prev_lo && d >= prev_hi);
        prev_lo = d / 2;
        prev_hi = d;
    }

    /* attempts far beyond 200 */

    d = expected_delay(1000, base, max);
    v = sf_job_backoff_ms(~0u, base, max, 0x12345678);
    assert_true(v >= d / 2 && v <= d);
}


static void
test_backoff_bounds(void **state)
{
    (void) state;

    /* the defaults: 1 s up to 5 min */

    check_backoff(1000, 300000);

    check_backoff(1, 1);
    check_backoff(1, 2);
    check_backoff(3, 1000);
    check_backoff(1000, 999);
    check_backoff(1, UINT64_MAX);
    check_backoff(UINT64_MAX, UINT64_MAX);
    check_backoff(UINT64_MAX / 3, UINT64_MAX - 1);
    check_backoff((uint64_t) 1 << 62, UINT64_MAX);
    check_backoff(0, 300000);
    check_backoff(1000, 0);
}


static void
test_backoff_values(void **state)
{
    (void) state;

    assert_true(sf_job_backoff_ms(0, 1000, 300000, 0xffffffff) == 0);

    assert_true(sf_job_backoff_ms(1, 1000, 300000, 0) == 500);
    assert_true(sf_job_backoff_ms(1, 1000, 300000, 0xffffffff) == 1000);
    assert_true(sf_job_backoff_ms(2, 1000, 300000, 0xffffffff) == 2000);
    assert_true(sf_job_backoff_ms(9, 1000, 300000, 0xffffffff) == 256000);
    assert_true(sf_job_backoff_ms(10, 1000, 300000, 0xffffffff) == 300000);
    assert_true(sf_job_backoff_ms(10, 1000, 300000, 0) == 150000);
    assert_true(sf_job_backoff_ms(200, 1000, 300000, 0) == 150000);

    /* the middle of the range */

    assert_true(sf_job_backoff_ms(1, 1000, 300000, 0x80000000) == 750);

    /* base above max: max */

    assert_true(sf_job_backoff_ms(1, 5000, 3000, 0xffffffff) == 3000);

    /* the largest values do not wrap */

    assert_true(sf_job_backoff_ms(64, UINT64_MAX, UINT64_MAX, 0)
                == UINT64_MAX / 2);
    assert_true(sf_job_backoff_ms(1, UINT64_MAX, UINT64_MAX, 0xffffffff)
                >= UINT64_MAX - (UINT64_MAX >> 32));
}


/* every value of [d / 2, d] is reached, by equal shares of random */

static void
test_backoff_uniform(void **state)
{
    uint64_t  d, half, span, k, r, v;
    unsigned  a;

    (void) state;

    for (a = 1; a <= 4; a++) {
        d = expected_delay(a, 1000, 300000);
        half = d / 2;
        span = d - half + 1;

        for (k = 0; k < span; k++) {

            /* the smallest random giving half + k, and the one before */

            r = ((k << 32) + span - 1) / span;

            v = sf_job_backoff_ms(a, 1000, 300000, (uint32_t) r);
            assert_true(v == half + k);

            if (r > 0) {
                v = sf_job_backoff_ms(a, 1000, 300000, (uint32_t) (r - 1));
                assert_true(v == half + k - 1);
            }
        }
    }
}


static void
test_give_up(void **state)
{
    (void) state;

    /* 0: never */

    assert_int_equal(sf_job_give_up(0, UINT64_MAX, 0), 0);
    assert_int_equal(sf_job_give_up(1000, 1000, 0), 0);

    assert_int_equal(sf_job_give_up(1000, 1000, 1), 0);
    assert_int_equal(sf_job_give_up(1000, 1999, 1000), 0);
    assert_int_equal(sf_job_give_up(1000, 2000, 1000), 1);
    assert_int_equal(sf_job_give_up(1000, 2001, 1000), 1);

    /* the clock went back: not yet */

    assert_int_equal(sf_job_give_up(5000, 1000, 1), 0);

    /* extremes */

    assert_int_equal(sf_job_give_up(0, UINT64_MAX, UINT64_MAX), 1);
    assert_int_equal(sf_job_give_up(1, UINT64_MAX, UINT64_MAX), 0);
    assert_int_equal(sf_job_give_up(UINT64_MAX, UINT64_MAX, 1), 0);
    assert_int_equal(sf_job_give_up(UINT64_MAX - 1, UINT64_MAX, 1), 1);
}


static void
test_names(void **state)
{
    (void) state;

    assert_string_equal(sf_job_outcome_name(SF_JOB_DONE), "done");
    assert_string_equal(sf_job_outcome_name(SF_JOB_RETRY), "retry");
    assert_string_equal(sf_job_outcome_name(SF_JOB_FAIL), "fail");
    assert_string_equal(sf_job_outcome_name(SF_JOB_AMBIGUOUS), "ambiguous");
    assert_string_equal(sf_job_outcome_name((sf_job_outcome_t) 4),
                        "unknown");
    assert_string_equal(sf_job_outcome_name((sf_job_outcome_t) -1),
                        "unknown");

    assert_string_equal(sf_net_error_name(SF_NET_OK), "ok");
    assert_string_equal(sf_net_error_name(SF_NET_CONNECT), "connect");
    assert_string_equal(sf_net_error_name(SF_NET_DNS), "dns");
    assert_string_equal(sf_net_error_name(SF_NET_TIMEOUT), "timeout");
    assert_string_equal(sf_net_error_name(SF_NET_RESET), "reset");
    assert_string_equal(sf_net_error_name(SF_NET_TOO_LARGE), "too_large");
    assert_string_equal(sf_net_error_name(SF_NET_TLS), "tls");
    assert_string_equal(sf_net_error_name(SF_NET_OTHER), "other");
    assert_string_equal(sf_net_error_name((sf_net_error_t) 8), "unknown");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_classify_all_statuses),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_values),
        cmocka_unit_test(test_backoff_uniform),
        cmocka_unit_test(test_give_up),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
