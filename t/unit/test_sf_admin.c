
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_admin.c: admin routes, URL redaction, UTF-8 cuts,
 * "since" parsing, timestamps and the Prometheus writer.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sf_admin.h"


static sf_admin_route_e
route(const char *path, uint64_t *id, char *arg)
{
    size_t            len;
    const char       *a;
    sf_admin_route_e  rc;

    a = NULL;
    len = 0;
    rc = sf_admin_route(path, strlen(path), id, &a, &len);

    if (arg != NULL) {
        arg[0] = '\0';

        if (a != NULL) {
            memcpy(arg, a, len);
            arg[len] = '\0';
        }
    }

    return rc;
}


static void
test_route(void **state)
{
    uint64_t  id;
    char      arg[128];

    (void) state;

    assert_int_equal(route("", NULL, NULL), SF_ADMIN_CONSOLE);
    assert_int_equal(route("/", NULL, NULL), SF_ADMIN_CONSOLE);
    assert_int_equal(route("log", NULL, NULL), SF_ADMIN_LOG);
    assert_int_equal(route("/log", NULL, NULL), SF_ADMIN_LOG);
    assert_int_equal(route("log/", NULL, NULL), SF_ADMIN_LOG);
    assert_int_equal(route("log//", NULL, NULL), SF_ADMIN_NOT_FOUND);
    assert_int_equal(route("logs", NULL, NULL), SF_ADMIN_NOT_FOUND);
    assert_int_equal(route("log/enabled", NULL, NULL),
                     SF_ADMIN_LOG_ENABLED);
    assert_int_equal(route("queue", NULL, NULL), SF_ADMIN_QUEUE);
    assert_int_equal(route("metrics", NULL, NULL), SF_ADMIN_METRICS);
    assert_int_equal(route("metrics/x", NULL, NULL), SF_ADMIN_NOT_FOUND);
    assert_int_equal(route("queue//retry", NULL, NULL), SF_ADMIN_NOT_FOUND);

    id = 0;
    assert_int_equal(route("queue/42/retry", &id, NULL),
                     SF_ADMIN_QUEUE_RETRY);
    assert_int_equal(id, 42);
    assert_int_equal(route("queue/18446744073/retry", &id, NULL),
                     SF_ADMIN_QUEUE_RETRY);
    assert_int_equal(id, 18446744073ULL);
    assert_int_equal(route("queue/0/retry", &id, NULL), SF_ADMIN_BAD_ID);
    assert_int_equal(route("queue/x1/retry", &id, NULL), SF_ADMIN_BAD_ID);
    assert_int_equal(route("queue/12345678901234567890/retry", &id, NULL),
                     SF_ADMIN_BAD_ID);
    assert_int_equal(route("queue/1/cancel", &id, NULL),
                     SF_ADMIN_NOT_FOUND);

    assert_int_equal(route("send/PN-1001", NULL, arg), SF_ADMIN_SEND);
    assert_string_equal(arg, "PN-1001");
    assert_int_equal(route("send/a%20b", NULL, arg), SF_ADMIN_BAD_ID);
    assert_int_equal(route("send", NULL, arg), SF_ADMIN_NOT_FOUND);
    assert_int_equal(route("send/1/2", NULL, arg), SF_ADMIN_NOT_FOUND);
    assert_int_equal(route("a/b/c/d/e", NULL, NULL), SF_ADMIN_NOT_FOUND);
}


static char *
redact(const char *url)
{
    size_t       n;
    static char  out[1024];

    n = sf_admin_redact_url(url, strlen(url), out, sizeof(out) - 1);
    out[n] = '\0';

    return out;
}


static void
test_redact(void **state)
{
    char    small[8];
    size_t  n;

    (void) state;

    assert_string_equal(redact("/hook"), "/hook");
    assert_string_equal(redact("/hook?token=s3cr3t"), "/hook?token=***");
    assert_string_equal(redact("/hook?a=1&TOKEN=s3cr3t&b=2"),
                        "/hook?a=1&TOKEN=***&b=2");
    assert_string_equal(redact("/hook?token="), "/hook?token=***");
    assert_string_equal(redact("/hook?token"), "/hook?token");
    assert_string_equal(redact("/hook?tokens=x&xtoken=y"),
                        "/hook?tokens=x&xtoken=y");
    assert_string_equal(redact("/h?access_token=a;secret=b#token=c"),
                        "/h?access_token=***;secret=***");
    /* a URL in the query is not the URL's own user:password@ */
    assert_string_equal(redact("/hook?token=s3cr3t&u=http://a@b/c"),
                        "/hook?token=***&u=http://a@b/c");
    /* nginx's $arg_token finds a token after a "#" in the request line */
    assert_string_equal(redact("/hook?x=1#&token=s3cr3t"),
                        "/hook?x=1#&token=***");
    assert_string_equal(redact("/h?token=a&token=b"),
                        "/h?token=***&token=***");
    assert_string_equal(redact("https://u:p@api.example.com/x?key=1"),
                        "https://***@api.example.com/x?key=***");
    assert_string_equal(redact("https://api.example.com/a@b"),
                        "https://api.example.com/a@b");
    assert_string_equal(redact("/p?q=token=x"), "/p?q=token=x");

    n = sf_admin_redact_url("/hook?token=abc", 15, small, sizeof(small));
    assert_int_equal(n, sizeof(small));
    assert_memory_equal(small, "/hook?to", 8);
}


static uint64_t
since(const char *s)
{
    uint64_t  ms;

    ms = 12345;

    if (sf_admin_parse_since(s, strlen(s), &ms) != 0) {
        return (uint64_t) -1;
    }

    return ms;
}


static void
test_since(void **state)
{
    (void) state;

    assert_int_equal(since("0"), 0);
    assert_int_equal(since("1700000000123"), 1700000000123ULL);
    assert_int_equal(since("1970-01-01"), 0);
    assert_int_equal(since("2023-11-14T22:13:20Z"), 1700000000000ULL);
    assert_int_equal(since("2023-11-14T22:13:20.123Z"), 1700000000123ULL);
    assert_int_equal(since("2023-11-14T22:13:20.1Z"), 1700000000100ULL);
    assert_int_equal(since("2023-11-14T22:13:20.123456Z"),
                     1700000000123ULL);
    assert_int_equal(since("2023-11-14 22:13:20"), 1700000000000ULL);
    assert_int_equal(since("2023-11-14T22:13"), 1699999980000ULL);
    assert_int_equal(since("2023-11-15T00:13:20+02:00"), 1700000000000ULL);
    assert_int_equal(since("2023-11-14T20:13:20-0200"), 1700000000000ULL);
    assert_int_equal(since("2024-02-29T00:00:00Z"), 1709164800000ULL);

    assert_int_equal(since(""), (uint64_t) -1);
    assert_int_equal(since("abc"), (uint64_t) -1);
    assert_int_equal(since("-5"), (uint64_t) -1);
    assert_int_equal(since("2023-13-01"), (uint64_t) -1);
    assert_int_equal(since("2023-11-14T25:00"), (uint64_t) -1);
    assert_int_equal(since("2023-11-14T22:13:20.Z"), (uint64_t) -1);
    assert_int_equal(since("2023-11-14T22:13:20Zjunk"), (uint64_t) -1);
    assert_int_equal(since("1969-12-31"), (uint64_t) -1);
    assert_int_equal(since("1234567890123456"), (uint64_t) -1);
}


static void
test_time(void **state)
{
    char  buf[SF_ADMIN_TIME_LEN + 1];

    (void) state;

    assert_int_equal(sf_admin_format_time(0, buf), SF_ADMIN_TIME_LEN);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    sf_admin_format_time(1700000000123ULL, buf);
    assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
    sf_admin_format_time(1709164800000ULL, buf);
    assert_string_equal(buf, "2024-02-29T00:00:00.000Z");
    assert_int_equal(since(buf), 1709164800000ULL);
}


static void
test_prom(void **state)
{
    char       buf[4096], tiny[16];
    sf_prom_t  p;

    static const uint64_t  bounds[] = { 5, 250, 1000, 2500 };
    static const uint64_t  counts[] = { 1, 2, 0, 3, 4 };

    (void) state;

    sf_prom_init(&p, buf, sizeof(buf));
    sf_prom_family(&p, "sf_x_total", "counter", "a \\ b\nc");
    sf_prom_sample(&p, "sf_x_total", "result", "o\"k\\\n", 7);
    sf_prom_sample(&p, "sf_y", NULL, NULL, 0);
    sf_prom_sample2(&p, "sf_z", "storefront", "a\"b", "state", "pending", 9);
    sf_prom_histogram(&p, "sf_h_seconds", "upstream", "siteflow", bounds,
                      counts, 4, 12345);
    sf_prom_histogram(&p, "sf_n_seconds", NULL, NULL, bounds, counts, 4, 0);
    assert_false(p.overflow);
    buf[p.len] = '\0';

    assert_string_equal(buf,
        "# HELP sf_x_total a \\\\ b\\nc\n"
        "# TYPE sf_x_total counter\n"
        "sf_x_total{result=\"o\\\"k\\\\\\n\"} 7\n"
        "sf_y 0\n"
        "sf_z{storefront=\"a\\\"b\",state=\"pending\"} 9\n"
        "sf_h_seconds_bucket{upstream=\"siteflow\",le=\"0.005\"} 1\n"
        "sf_h_seconds_bucket{upstream=\"siteflow\",le=\"0.25\"} 3\n"
        "sf_h_seconds_bucket{upstream=\"siteflow\",le=\"1\"} 3\n"
        "sf_h_seconds_bucket{upstream=\"siteflow\",le=\"2.5\"} 6\n"
        "sf_h_seconds_bucket{upstream=\"siteflow\",le=\"+Inf\"} 10\n"
        "sf_h_seconds_sum{upstream=\"siteflow\"} 12.345\n"
        "sf_h_seconds_count{upstream=\"siteflow\"} 10\n"
        "sf_n_seconds_bucket{le=\"0.005\"} 1\n"
        "sf_n_seconds_bucket{le=\"0.25\"} 3\n"
        "sf_n_seconds_bucket{le=\"1\"} 3\n"
        "sf_n_seconds_bucket{le=\"2.5\"} 6\n"
        "sf_n_seconds_bucket{le=\"+Inf\"} 10\n"
        "sf_n_seconds_sum 0\n"
        "sf_n_seconds_count 10\n");

    sf_prom_init(&p, tiny, sizeof(tiny));
    sf_prom_family(&p, "sf_x_total", "counter", "help");
    assert_true(p.overflow);
    assert_true(p.len <= sizeof(tiny));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_since),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_prom),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
