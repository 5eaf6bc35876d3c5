
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Benchmark of sf_transform_order() on one PrintNow order (the 3-item
 * t/unit/transform/02-multi-item.order.json by default), with its
 * baseline in the same run: json_loads() + json_dumps() of the same
 * order text, i.e. the least any hook handler does with that order.
 *
 *   transform-bench MAPPING ORDER [RUNS]          wall clock, per call
 *   transform-bench MAPPING ORDER RUNS transform  loops for callgrind
 *   transform-bench MAPPING ORDER RUNS baseline   (--toggle-collect=
 *                                                 bench_*_loop)
 *
 * Wall clock: RUNS calls of each, interleaved in 10 rounds so that a
 * drifting machine hurts both alike, each call timed alone with
 * CLOCK_MONOTONIC; medians, 90th percentiles and means are printed.
 * "transform" includes freeing the result; "transform+dumps" also
 * serialises it, which is what the caller sends.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "sf_mapping.h"
#include "sf_transform.h"


#define BENCH_ROUNDS  10


typedef struct {
    const sf_mapping_t  *m;
    const json_t        *order;
    const char          *text;
} bench_t;


static double bench_now(void);
static int bench_cmp(const void *a, const void *b);
static void bench_report(const char *name, double *ns, size_t n,
    double *median);
static void bench_transform(const bench_t *b, int dump);
static void bench_baseline(const bench_t *b);
void bench_transform_loop(const bench_t *b, size_t n)
    __attribute__ ((noinline));
void bench_baseline_loop(const bench_t *b, size_t n)
    __attribute__ ((noinline));


int
main(int argc, char **argv)
{
    char           err[SF_MAPPING_ERR_SIZE], *text;
    double        *t1, *t2, *t3, t, m1, m2, m3;
    size_t         n, i, r, per;
    json_t        *order;
    bench_t        b;
    json_error_t   jerr;
    sf_mapping_t  *m;

    if (argc < 3) {
        fprintf(stderr, "usage: %s MAPPING ORDER [RUNS [transform|baseline]]"
                "\n", argv[0]);
        return 2;
    }

    n = (argc > 3) ? (size_t) strtoul(argv[3], NULL, 10) : 20000;

    m = sf_mapping_load(argv[1], err, sizeof(err));
    if (m == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    order = json_load_file(argv[2], 0, &jerr);
    if (order == NULL) {
        fprintf(stderr, "%s: %s\n", argv[2], jerr.text);
        return 1;
    }

    text = json_dumps(order, JSON_COMPACT);
    if (text == NULL) {
        return 1;
    }

    b.m = m;
    b.order = order;
    b.text = text;

    /* the transform must succeed, or the figures mean nothing */

    {
        char    *s;
        json_t  *out;

        if (sf_transform_order(m, order, NULL, &out, err, sizeof(err))
            != SF_TRANSFORM_OK)
        {
            fprintf(stderr, "transform failed: %s\n", err);
            return 1;
        }

        s = json_dumps(out, JSON_COMPACT);

        printf("order: %s, %zu bytes compact, %zu items; SiteFlow order "
               "%zu bytes\n", argv[2], strlen(text),
               json_array_size(json_object_get(order, "items")),
               (s != NULL) ? strlen(s) : 0);

        free(s);
        json_decref(out);
    }

    if (argc > 4) {
        if (strcmp(argv[4], "transform") == 0) {
            bench_transform_loop(&b, n);

        } else {
            bench_baseline_loop(&b, n);
        }

        return 0;
    }

    t1 = malloc(n * sizeof(double));
    t2 = malloc(n * sizeof(double));
    t3 = malloc(n * sizeof(double));

    if (t1 == NULL || t2 == NULL || t3 == NULL) {
        return 1;
    }

    /* warm-up */

    for (i = 0; i < 1000; i++) {
        bench_transform(&b, 1);
        bench_baseline(&b);
    }

    per = n / BENCH_ROUNDS;
    n = per * BENCH_ROUNDS;
    i = 0;

    for (r = 0; r < BENCH_ROUNDS; r++) {
        size_t  k;

        for (k = 0; k < per; k++) {
            t = bench_now();
            bench_transform(&b, 0);
            t1[i + k] = bench_now() - t;
        }

        for (k = 0; k < per; k++) {
            t = bench_now();
            bench_transform(&b, 1);
            t2[i + k] = bench_now() - t;
        }

        for (k = 0; k < per; k++) {
            t = bench_now();
            bench_baseline(&b);
            t3[i + k] = bench_now() - t;
        }

        i += per;
    }

    printf("%zu runs each, in %d interleaved rounds\n", n, BENCH_ROUNDS);
    bench_report("transform", t1, n, &m1);
    bench_report("transform+dumps", t2, n, &m2);
    bench_report("baseline loads+dumps", t3, n, &m3);
    printf("median ratio transform/baseline %.2f, "
           "(transform+dumps)/baseline %.2f\n", m1 / m3, m2 / m3);

    free(t1);
    free(t2);
    free(t3);
    free(text);
    json_decref(order);
    sf_mapping_free(m);

    return 0;
}


static double
bench_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}


static int
bench_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static void
bench_report(const char *name, double *ns, size_t n, double *median)
{
    size_t  i;
    double  sum;

    qsort(ns, n, sizeof(double), bench_cmp);

    sum = 0;

    for (i = 0; i < n; i++) {
        sum += ns[i];
    }

    *median = ns[n / 2];

    printf("%-22s median %7.2f us  p90 %7.2f us  mean %7.2f us\n", name,
           ns[n / 2] / 1000, ns[n * 9 / 10] / 1000, sum / n / 1000);
}


static void
bench_transform(const bench_t *b, int dump)
{
    char    reason[SF_TRANSFORM_REASON_SIZE], *s;
    json_t  *out;

    if (sf_transform_order(b->m, b->order, NULL, &out, reason,
                           sizeof(reason))
        != SF_TRANSFORM_OK)
    {
        abort();
    }

    if (dump) {
        s = json_dumps(out, JSON_COMPACT);
        free(s);
    }

    json_decref(out);
}


static void
bench_baseline(const bench_t *b)
{
    char    *s;
    json_t  *j;

    j = json_loads(b->text, 0, NULL);
    if (j == NULL) {
        abort();
    }

    s = json_dumps(j, JSON_COMPACT);
    free(s);
    json_decref(j);
}


void
bench_transform_loop(const bench_t *b, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        bench_transform(b, 0);
    }
}


void
bench_baseline_loop(const bench_t *b, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        bench_baseline(b);
    }
}
