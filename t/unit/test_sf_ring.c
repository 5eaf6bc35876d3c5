
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_ring.c: format and attach checks, append and walk
 * newest first, every filter, overwrite order and the overwritten
 * counter against a reference model, per-storefront clear, truncation,
 * snapshots and attaching to copies.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sf_ring.h"


#define MAX_SEEN     8192
#define MODEL_MAX    20000
#define NAPP         300


typedef struct {
    size_t            n;
    size_t            stop_after;         /* 0: never stop */
    sf_ring_entry_t   e[MAX_SEEN];
} seen_t;


/*
 * The reference model: each record gets a virtual start address that
 * only grows; a record that would cross a multiple of the data size
 * starts at the next multiple instead.  The ring holds exactly the
 * records that start at or after (end of the newest) - data size.
 */

typedef struct {
    uint64_t          id;
    uint64_t          v;
    uint64_t          time_ms;
    int               deleted;
    int               gone;
    unsigned          sf;
    char             *buf;                /* the six strings */
    size_t            len[6];
} model_rec_t;


typedef struct {
    size_t            data_size;
    uint64_t          tail_v;
    uint64_t          overwritten;
    size_t            n;
    model_rec_t      *recs;
} model_t;


static const char  *storefronts[] = { "a", "shop", "store-three" };


static int collect(const sf_ring_entry_t *e, void *data);
static void *region_new(size_t size);
static void fill_entry(sf_ring_entry_t *e, const char *sf,
    const char *method, const char *url, const char *order_id,
    const char *req, const char *resp);
static size_t walk_all(const void *buf, size_t len,
    const sf_ring_filter_t *f, seen_t *seen);
static void check_equal_entries(const seen_t *a, const seen_t *b);
static void model_append(model_t *m, const sf_ring_entry_t *e, uint64_t id,
    unsigned sf);
static void model_clear(model_t *m, int sf);
static void model_check(const model_t *m, sf_ring_t *ring, size_t size);


static int
collect(const sf_ring_entry_t *e, void *data)
{
    seen_t  *seen = data;

    assert_true(seen->n < MAX_SEEN);
    seen->e[seen->n++] = *e;

    return seen->stop_after != 0 && seen->n >= seen->stop_after;
}


static void *
region_new(size_t size)
{
    void  *p;

    p = malloc(size);
    assert_non_null(p);
    memset(p, 0xa5, size);

    return p;
}


static void
fill_entry(sf_ring_entry_t *e, const char *sf, const char *method,
    const char *url, const char *order_id, const char *req,
    const char *resp)
{
    memset(e, 0, sizeof(sf_ring_entry_t));

    e->storefront = sf;
    e->storefront_len = (sf != NULL) ? strlen(sf) : 0;
    e->method = method;
    e->method_len = (method != NULL) ? strlen(method) : 0;
    e->url = url;
    e->url_len = (url != NULL) ? strlen(url) : 0;
    e->order_id = order_id;
    e->order_id_len = (order_id != NULL) ? strlen(order_id) : 0;
    e->request = req;
    e->request_len = (req != NULL) ? strlen(req) : 0;
    e->response = resp;
    e->response_len = (resp != NULL) ? strlen(resp) : 0;
}


static size_t
walk_all(const void *buf, size_t len, const sf_ring_filter_t *f,
    seen_t *seen)
{
    size_t  i, n;

    seen->n = 0;
    n = sf_ring_walk(buf, len, f, collect, seen);

    assert_int_equal(n, seen->n);

    for (i = 1; i < seen->n; i++) {
        assert_true(seen->e[i].id < seen->e[i - 1].id);
    }

    return n;
}


static int
str_eq(const char *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}


static void
check_equal_entries(const seen_t *a, const seen_t *b)
{
    size_t                  i;
    const sf_ring_entry_t  *x, *y;

    assert_int_equal(a->n, b->n);

    for (i = 0; i < a->n; i++) {
        x = &a->e[i];
        y = &b->e[i];

        assert_true(x->id == y->id);
        assert_true(x->time_ms == y->time_ms);
        assert_int_equal(x->flags, y->flags);
        assert_int_equal(x->status, y->status);
        assert_int_equal(x->url_len, y->url_len);
        assert_memory_equal(x->url, y->url, x->url_len);
        assert_int_equal(x->request_len, y->request_len);
        assert_memory_equal(x->request, y->request, x->request_len);
        assert_int_equal(x->response_len, y->response_len);
        assert_memory_equal(x->response, y->response, x->response_len);
    }
}


static void
test_init_attach(void **state)
{
    char           *copy;
    size_t          size;
    sf_ring_t      *ring;
    unsigned char  *region;

    (void) state;

    size = 8192 + 5;
    region = region_new(size + 8);

    assert_null(sf_ring_init(NULL, size));
    assert_null(sf_ring_init(region, SF_RING_MIN_SIZE - 1));
    assert_null(sf_ring_init(region + 4, size));

    ring = sf_ring_init(region, size);
    assert_ptr_equal(ring, region);
    assert_int_equal(sf_ring_used(ring), 0);
    assert_int_equal(sf_ring_count(ring), 0);
    assert_true(sf_ring_overwritten(ring) == 0);
    assert_true(ring->data_size == SF_RING_DATA_SIZE(size));
    assert_true(ring->data_size % 8 == 0);

    assert_ptr_equal(sf_ring_attach(region, size), region);

    /* wrong size, too small, misaligned, NULL */
    assert_null(sf_ring_attach(region, size + 8));
    assert_null(sf_ring_attach(region, size - 1));
    assert_null(sf_ring_attach(region, 100));
    assert_null(sf_ring_attach(NULL, size));
    copy = (char *) region + 4;
    assert_null(sf_ring_attach(copy, size));

    /* wrong magic, wrong version */
    region[0] ^= 1;
    assert_null(sf_ring_attach(region, size));
    assert_int_equal(sf_ring_walk(region, size, NULL, NULL, NULL), 0);
    region[0] ^= 1;
    ring->version = SF_RING_VERSION + 1;
    assert_null(sf_ring_attach(region, size));
    ring->version = SF_RING_VERSION;
    assert_non_null(sf_ring_attach(region, size));

    /* inconsistent head / tail / used */
    ring->used = 8;
    assert_null(sf_ring_attach(region, size));
    ring->used = 0;
    ring->tail = 16;
    assert_null(sf_ring_attach(region, size));
    ring->tail = 0;
    ring->data_size += 8;
    assert_null(sf_ring_attach(region, size));
    ring->data_size -= 8;
    assert_non_null(sf_ring_attach(region, size));

    /* attach to garbage */
    memset(region, 0x5a, size);
    assert_null(sf_ring_attach(region, size));

    free(region);
}


static void
test_append_walk(void **state)
{
    size_t            size;
    seen_t           *seen;
    uint64_t          id;
    sf_ring_t        *ring;
    sf_ring_entry_t   e;
    void             *region;

    (void) state;

    size = 16384;
    region = region_new(size);
    ring = sf_ring_init(region, size);
    seen = calloc(1, sizeof(seen_t));

    assert_int_equal(walk_all(region, size, NULL, seen), 0);

    fill_entry(&e, "shop", "POST", "/hook?token=<redacted>", "1042",
               "{\"a\":1}", "{\"ok\":true}");
    e.time_ms = 1000;
    e.status = 202;
    e.duration_ms = 7;
    e.direction = SF_RING_IN;

    assert_int_equal(sf_ring_append(ring, &e, &id), 0);
    assert_true(id == 1);
    assert_int_equal(sf_ring_used(ring),
                     SF_RING_RECORD_SIZE(4 + 4 + 22 + 4 + 7 + 11));

    fill_entry(&e, "shop", "GET", "https://api.siteflow/orders/9", "1042",
               NULL, "");
    e.time_ms = 2000;
    e.status = 200;
    e.duration_ms = 120;
    e.direction = SF_RING_OUT;
    assert_int_equal(sf_ring_append(ring, &e, &id), 0);
    assert_true(id == 2);

    fill_entry(&e, "other", "POST", "/postback", "77", "x", NULL);
    e.time_ms = 3000;
    e.flags = SF_RING_DELETED | SF_RING_TRUNC_REQUEST;
    assert_int_equal(sf_ring_append(ring, &e, NULL), 0);

    assert_int_equal(sf_ring_count(ring), 3);
    assert_int_equal(walk_all(region, size, NULL, seen), 3);

    assert_true(seen->e[0].id == 3);
    assert_int_equal(seen->e[0].flags,
                     SF_RING_TRUNC_REQUEST | SF_RING_TRUNCATED);
    assert_true(str_eq(seen->e[0].storefront, seen->e[0].storefront_len,
                       "other"));
    assert_int_equal(seen->e[0].response_len, 0);

    assert_true(seen->e[1].id == 2);
    assert_int_equal(seen->e[1].direction, SF_RING_OUT);
    assert_int_equal(seen->e[1].status, 200);
    assert_int_equal(seen->e[1].duration_ms, 120);
    assert_true(seen->e[1].time_ms == 2000);
    assert_int_equal(seen->e[1].flags, 0);
    assert_true(str_eq(seen->e[1].url, seen->e[1].url_len,
                       "https://api.siteflow/orders/9"));
    assert_int_equal(seen->e[1].request_len, 0);

    assert_true(seen->e[2].id == 1);
    assert_int_equal(seen->e[2].direction, SF_RING_IN);
    assert_int_equal(seen->e[2].status, 202);
    assert_int_equal(seen->e[2].duration_ms, 7);
    assert_true(str_eq(seen->e[2].storefront, seen->e[2].storefront_len,
                       "shop"));
    assert_true(str_eq(seen->e[2].method, seen->e[2].method_len, "POST"));
    assert_true(str_eq(seen->e[2].url, seen->e[2].url_len,
                       "/hook?token=<redacted>"));
    assert_true(str_eq(seen->e[2].order_id, seen->e[2].order_id_len,
                       "1042"));
    assert_true(str_eq(seen->e[2].request, seen->e[2].request_len,
                       "{\"a\":1}"));
    assert_true(str_eq(seen->e[2].response, seen->e[2].response_len,
                       "{\"ok\":true}"));

    /* a callback that stops */
    seen->n = 0;
    seen->stop_after = 2;
    assert_int_equal(sf_ring_walk(region, size, NULL, collect, seen), 2);
    seen->stop_after = 0;

    /* no callback: just counts */
    assert_int_equal(sf_ring_walk(region, size, NULL, NULL, NULL), 3);

    /* bad arguments */
    e.request = NULL;
    e.request_len = 3;
    assert_int_equal(sf_ring_append(ring, &e, NULL), -1);
    assert_int_equal(sf_ring_append(ring, NULL, NULL), -1);
    assert_int_equal(sf_ring_append(NULL, &e, NULL), -1);
    assert_int_equal(sf_ring_count(ring), 3);
    assert_int_equal(sf_ring_walk(NULL, size, NULL, NULL, NULL), 0);
    assert_int_equal(sf_ring_walk(region, 64, NULL, NULL, NULL), 0);

    free(seen);
    free(region);
}


static void
test_filters(void **state)
{
    char              oid[16];
    size_t            size, i;
    seen_t           *seen;
    sf_ring_t        *ring;
    sf_ring_entry_t   e;
    sf_ring_filter_t  f;
    void             *region;

    (void) state;

    size = 65536;
    region = region_new(size);
    ring = sf_ring_init(region, size);
    seen = calloc(1, sizeof(seen_t));

    /* id i: storefront i % 3, order id "o<i % 5>", time 100 * i */

    for (i = 1; i <= 30; i++) {
        snprintf(oid, sizeof(oid), "o%u", (unsigned) (i % 5));
        fill_entry(&e, storefronts[i % 3], "POST", "/x", oid, "{}", "{}");
        e.time_ms = 100 * i;
        assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    }

    memset(&f, 0, sizeof(f));
    assert_int_equal(walk_all(region, size, &f, seen), 30);

    f.limit = 4;
    assert_int_equal(walk_all(region, size, &f, seen), 4);
    assert_true(seen->e[0].id == 30 && seen->e[3].id == 27);

    f.limit = 100;
    assert_int_equal(walk_all(region, size, &f, seen), 30);

    memset(&f, 0, sizeof(f));
    f.order_id = "o3";
    f.order_id_len = 2;
    assert_int_equal(walk_all(region, size, &f, seen), 6);

    for (i = 0; i < seen->n; i++) {
        assert_true(seen->e[i].id % 5 == 3);
    }

    f.order_id = "o";                     /* exact, not a prefix */
    f.order_id_len = 1;
    assert_int_equal(walk_all(region, size, &f, seen), 0);

    f.order_id = "";                      /* empty matches empty only */
    f.order_id_len = 0;
    assert_int_equal(walk_all(region, size, &f, seen), 0);

    memset(&f, 0, sizeof(f));
    f.since_ms = 2500;
    assert_int_equal(walk_all(region, size, &f, seen), 6);
    assert_true(seen->e[5].id == 25);

    f.since_ms = 2501;
    assert_int_equal(walk_all(region, size, &f, seen), 5);

    memset(&f, 0, sizeof(f));
    f.storefront = "shop";
    f.storefront_len = 4;
    assert_int_equal(walk_all(region, size, &f, seen), 10);

    for (i = 0; i < seen->n; i++) {
        assert_true(seen->e[i].id % 3 == 1);
    }

    f.storefront = "sho";
    f.storefront_len = 3;
    assert_int_equal(walk_all(region, size, &f, seen), 0);

    /* all together: shop (id % 3 == 1), o1 (id % 5 == 1): 1, 16; */
    f.storefront = "shop";
    f.storefront_len = 4;
    f.order_id = "o1";
    f.order_id_len = 2;
    assert_int_equal(walk_all(region, size, &f, seen), 2);
    assert_true(seen->e[0].id == 16 && seen->e[1].id == 1);

    f.since_ms = 200;
    assert_int_equal(walk_all(region, size, &f, seen), 1);

    f.since_ms = 0;
    f.limit = 1;
    assert_int_equal(walk_all(region, size, &f, seen), 1);
    assert_true(seen->e[0].id == 16);

    free(seen);
    free(region);
}


static void
test_clear(void **state)
{
    size_t            size, i, n;
    seen_t           *seen;
    sf_ring_t        *ring;
    sf_ring_entry_t   e;
    sf_ring_filter_t  f;
    void             *region;

    (void) state;

    size = 65536;
    region = region_new(size);
    ring = sf_ring_init(region, size);
    seen = calloc(1, sizeof(seen_t));

    for (i = 1; i <= 30; i++) {
        fill_entry(&e, storefronts[i % 3], "GET", "/", "o", NULL, NULL);
        assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    }

    n = sf_ring_used(ring);

    assert_int_equal(sf_ring_clear(ring, "shop", 4), 10);
    assert_int_equal(sf_ring_clear(ring, "shop", 4), 0);
    assert_int_equal(sf_ring_clear(ring, "nobody", 6), 0);
    assert_int_equal(sf_ring_used(ring), n);       /* in place */
    assert_int_equal(sf_ring_count(ring), 20);
    assert_int_equal(walk_all(region, size, NULL, seen), 20);

    for (i = 0; i < seen->n; i++) {
        assert_true(seen->e[i].id % 3 != 1);
    }

    memset(&f, 0, sizeof(f));
    f.storefront = "shop";
    f.storefront_len = 4;
    assert_int_equal(walk_all(region, size, &f, seen), 0);
    f.storefront = "a";
    f.storefront_len = 1;
    assert_int_equal(walk_all(region, size, &f, seen), 10);

    /* new entries of the cleared storefront show again */
    fill_entry(&e, "shop", "GET", "/", "o", NULL, NULL);
    assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    assert_int_equal(sf_ring_count(ring), 21);

    /* NULL clears all */
    assert_int_equal(sf_ring_clear(ring, NULL, 0), 21);
    assert_int_equal(sf_ring_count(ring), 0);
    assert_int_equal(walk_all(region, size, NULL, seen), 0);
    assert_int_equal(sf_ring_clear(NULL, "a", 1), 0);

    /* deleted records overwritten do not count as overwritten */
    for (i = 0; i < 2000; i++) {
        fill_entry(&e, "a", "GET", "/", "o", NULL, NULL);
        assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    }

    assert_true(sf_ring_overwritten(ring)
                == 2031 - sf_ring_count(ring) - 31);

    free(seen);
    free(region);
}


static void
model_append(model_t *m, const sf_ring_entry_t *e, uint64_t id, unsigned sf)
{
    size_t        size, i, total;
    char         *p;
    model_rec_t  *r;
    const char   *src[6];

    assert_true(m->n < MODEL_MAX);

    r = &m->recs[m->n++];

    src[0] = e->storefront;
    r->len[0] = e->storefront_len;
    src[1] = e->method;
    r->len[1] = e->method_len;
    src[2] = e->url;
    r->len[2] = e->url_len;
    src[3] = e->order_id;
    r->len[3] = e->order_id_len;
    src[4] = e->request;
    r->len[4] = e->request_len;
    src[5] = e->response;
    r->len[5] = e->response_len;

    total = 0;

    for (i = 0; i < 6; i++) {
        total += r->len[i];
    }

    r->buf = malloc(total + 1);
    assert_non_null(r->buf);

    for (p = r->buf, i = 0; i < 6; i++) {
        memcpy(p, src[i], r->len[i]);
        p += r->len[i];
    }

    r->id = id;
    r->time_ms = e->time_ms;
    r->sf = sf;
    r->deleted = 0;
    r->gone = 0;

    size = SF_RING_RECORD_SIZE(total);

    r->v = m->tail_v;

    if (r->v % m->data_size + size > m->data_size) {
        r->v += m->data_size - r->v % m->data_size;
    }

    m->tail_v = r->v + size;

    for (i = 0; i < m->n; i++) {
        r = &m->recs[i];

        if (!r->gone && r->v + m->data_size < m->tail_v) {
            r->gone = 1;

            if (!r->deleted) {
                m->overwritten++;
            }
        }
    }
}


static void
model_clear(model_t *m, int sf)
{
    size_t  i;

    for (i = 0; i < m->n; i++) {
        if (!m->recs[i].gone && (sf < 0 || m->recs[i].sf == (unsigned) sf)) {
            m->recs[i].deleted = 1;
        }
    }
}


static void
model_check(const model_t *m, sf_ring_t *ring, size_t size)
{
    char                   *p;
    size_t                  i, k, j;
    seen_t                 *seen;
    const model_rec_t      *r;
    const sf_ring_entry_t  *e;
    const char             *got[6];
    size_t                  got_len[6];

    seen = calloc(1, sizeof(seen_t));
    assert_non_null(seen);

    walk_all(ring, size, NULL, seen);

    k = 0;

    for (i = m->n; i > 0; i--) {
        r = &m->recs[i - 1];

        if (r->gone) {
            break;
        }

        if (r->deleted) {
            continue;
        }

        assert_true(k < seen->n);
        e = &seen->e[k++];

        assert_true(e->id == r->id);
        assert_true(e->time_ms == r->time_ms);

        got[0] = e->storefront;
        got_len[0] = e->storefront_len;
        got[1] = e->method;
        got_len[1] = e->method_len;
        got[2] = e->url;
        got_len[2] = e->url_len;
        got[3] = e->order_id;
        got_len[3] = e->order_id_len;
        got[4] = e->request;
        got_len[4] = e->request_len;
        got[5] = e->response;
        got_len[5] = e->response_len;

        for (p = r->buf, j = 0; j < 6; j++) {
            assert_int_equal(got_len[j], r->len[j]);
            assert_memory_equal(got[j], p, r->len[j]);
            p += r->len[j];
        }
    }

    /* everything older is gone (the model drops in order) */
    for ( ; i > 0; i--) {
        assert_true(m->recs[i - 1].gone);
    }

    assert_int_equal(k, seen->n);
    assert_int_equal(sf_ring_count(ring), seen->n);
    assert_true(sf_ring_overwritten(ring) == m->overwritten);

    free(seen);
}


static void
test_overwrite_model(void **state)
{
    char             *body, oid[16];
    size_t            size, i, sizes[3] = { 4096, 4096 + 1000, 65536 + 3 };
    unsigned          sf, s;
    uint64_t          id;
    model_t           m;
    sf_ring_t        *ring;
    sf_ring_entry_t   e;
    void             *region;

    (void) state;

    body = malloc(16384);
    assert_non_null(body);

    for (i = 0; i < 16384; i++) {
        body[i] = (char) ('a' + i % 26);
    }

    srand(12345);

    for (s = 0; s < 3; s++) {
        size = sizes[s];
        region = region_new(size);
        ring = sf_ring_init(region, size);

        memset(&m, 0, sizeof(m));
        m.data_size = ring->data_size;
        m.recs = calloc(MODEL_MAX, sizeof(model_rec_t));
        assert_non_null(m.recs);

        for (i = 0; i < 5000; i++) {
            sf = (unsigned) rand() % 3;
            snprintf(oid, sizeof(oid), "%u", (unsigned) rand() % 50);

            memset(&e, 0, sizeof(e));
            e.storefront = storefronts[sf];
            e.storefront_len = strlen(storefronts[sf]);
            e.method = "POST";
            e.method_len = (size_t) rand() % 5;
            e.url = body + rand() % 100;
            e.url_len = (size_t) rand() % 120;
            e.order_id = oid;
            e.order_id_len = strlen(oid);
            e.request = body + rand() % 100;
            e.request_len = (size_t) rand() % (ring->data_size / 12);
            e.response = body + rand() % 100;
            e.response_len = (size_t) rand() % (ring->data_size / 12);
            e.time_ms = i;

            if (rand() % 4 == 0) {
                e.request_len = 0;
            }

            assert_int_equal(sf_ring_append(ring, &e, &id), 0);
            assert_true(id == i + 1);
            model_append(&m, &e, id, sf);

            if (rand() % 97 == 0) {
                sf = (unsigned) rand() % 3;
                sf_ring_clear(ring, storefronts[sf],
                              strlen(storefronts[sf]));
                model_clear(&m, (int) sf);
            }

            if (i < 200 || i % 37 == 0) {
                model_check(&m, ring, size);
            }
        }

        model_check(&m, ring, size);
        assert_true(sf_ring_overwritten(ring) > 0);
        assert_non_null(sf_ring_attach(region, size));

        for (i = 0; i < m.n; i++) {
            free(m.recs[i].buf);
        }

        free(m.recs);
        free(region);
    }

    free(body);
}


static void
test_truncation(void **state)
{
    char             *huge;
    size_t            size, total, max, i, n;
    seen_t           *seen;
    sf_ring_t        *ring;
    sf_ring_entry_t   e;
    void             *region;

    (void) state;

    huge = malloc(1 << 20);
    assert_non_null(huge);
    memset(huge, 'x', 1 << 20);

    seen = calloc(1, sizeof(seen_t));

    /* 64 KiB ring: the bodies are cut, response first */

    size = 65536;
    region = region_new(size);
    ring = sf_ring_init(region, size);
    max = SF_RING_MAX_RECORD(ring->data_size);

    fill_entry(&e, "shop", "POST", "/hook", "1", NULL, NULL);
    e.request = huge;
    e.request_len = 1000;
    e.response = huge;
    e.response_len = 1 << 20;
    assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    assert_int_equal(sf_ring_used(ring), max);

    assert_int_equal(walk_all(region, size, NULL, seen), 1);
    assert_int_equal(seen->e[0].flags,
                     SF_RING_TRUNCATED | SF_RING_TRUNC_RESPONSE);
    assert_int_equal(seen->e[0].request_len, 1000);
    total = 4 + 4 + 5 + 1 + 1000 + seen->e[0].response_len;
    assert_int_equal(SF_RING_RECORD_SIZE(total), max);

    /* both bodies huge: the response goes entirely, then the request */
    e.request_len = 1 << 20;
    assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    assert_int_equal(walk_all(region, size, NULL, seen), 2);
    assert_int_equal(seen->e[0].flags, SF_RING_TRUNCATED
                     | SF_RING_TRUNC_RESPONSE | SF_RING_TRUNC_REQUEST);
    assert_int_equal(seen->e[0].response_len, 0);
    assert_true(seen->e[0].request_len > 0);
    assert_true(str_eq(seen->e[0].url, seen->e[0].url_len, "/hook"));

    /* the field caps */
    e.storefront = huge;
    e.storefront_len = 1000;
    e.method = huge;
    e.method_len = 1000;
    e.url = huge;
    e.url_len = 100000;
    e.order_id = huge;
    e.order_id_len = 1000;
    e.request_len = 10;
    e.response_len = 10;
    assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    assert_int_equal(walk_all(region, size, NULL, seen), 3);
    assert_int_equal(seen->e[0].storefront_len, SF_RING_MAX_STOREFRONT);
    assert_int_equal(seen->e[0].method_len, SF_RING_MAX_METHOD);
    assert_int_equal(seen->e[0].url_len, SF_RING_MAX_URL);
    assert_int_equal(seen->e[0].order_id_len, SF_RING_MAX_ORDER_ID);
    assert_int_equal(seen->e[0].request_len, 10);
    assert_int_equal(seen->e[0].flags, SF_RING_TRUNCATED
                     | SF_RING_TRUNC_STOREFRONT | SF_RING_TRUNC_METHOD
                     | SF_RING_TRUNC_URL | SF_RING_TRUNC_ORDER_ID);

    free(region);

    /* the smallest ring: a quarter is less than the capped fields */

    size = SF_RING_MIN_SIZE;
    region = region_new(size);
    ring = sf_ring_init(region, size);
    max = SF_RING_MAX_RECORD(ring->data_size);

    e.response_len = 1 << 20;
    e.request_len = 1 << 20;

    for (i = 0; i < 10; i++) {
        assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    }

    n = ring->data_size / max;
    assert_int_equal(walk_all(region, size, NULL, seen), n);
    assert_int_equal(seen->e[0].request_len, 0);
    assert_int_equal(seen->e[0].response_len, 0);
    assert_int_equal(seen->e[0].method_len, SF_RING_MAX_METHOD);
    assert_int_equal(seen->e[0].storefront_len, SF_RING_MAX_STOREFRONT);
    total = seen->e[0].storefront_len + seen->e[0].method_len
            + seen->e[0].url_len + seen->e[0].order_id_len;
    assert_true(SF_RING_RECORD_SIZE(total) <= max);
    assert_true(seen->e[0].url_len > 0);
    assert_true(sf_ring_overwritten(ring) == 10 - n);

    /* a cut never splits a UTF-8 character: "é" is 0xc3 0xa9 */

    for (i = 0; i + 1 < 4096; i += 2) {
        huge[i] = (char) 0xc3;
        huge[i + 1] = (char) 0xa9;
    }

    fill_entry(&e, NULL, NULL, NULL, NULL, NULL, NULL);
    e.storefront = huge;
    e.storefront_len = 1001;              /* cap 256: between pairs */
    e.url = huge + 1;                     /* starts on a 0xa9 */
    e.url_len = 3001;                     /* cap 2048 falls on 0xa9 */
    assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    walk_all(region, size, NULL, seen);
    assert_int_equal(seen->e[0].storefront_len, SF_RING_MAX_STOREFRONT);
    assert_true(seen->e[0].url_len < max);
    assert_true((seen->e[0].url_len & 1) == 1);     /* 0xa9 + pairs */
    assert_int_equal((unsigned char)
                     seen->e[0].url[seen->e[0].url_len - 1], 0xa9);
    assert_true(seen->e[0].flags & SF_RING_TRUNC_URL);

    free(region);
    free(seen);
    free(huge);
}


static void
test_snapshot(void **state)
{
    char             *buf, *copy;
    size_t            size, n, i;
    seen_t           *a, *b;
    sf_ring_t        *ring, *snap;
    sf_ring_entry_t   e;
    sf_ring_filter_t  f;
    void             *region, *region2;

    (void) state;

    a = calloc(1, sizeof(seen_t));
    b = calloc(1, sizeof(seen_t));

    size = 16384;
    region = region_new(size);
    ring = sf_ring_init(region, size);

    /* the empty ring */
    n = sf_ring_snapshot(ring, NULL, 0);
    assert_int_equal(n, SF_RING_HEADER_SIZE);
    buf = malloc(n);
    assert_int_equal(sf_ring_snapshot(ring, buf, n), n);
    assert_int_equal(walk_all(buf, n, NULL, a), 0);
    assert_null(sf_ring_attach(buf, n));           /* below the minimum */
    free(buf);

    /* wrapped, with padding, some deleted */
    for (i = 0; i < NAPP; i++) {
        fill_entry(&e, storefronts[i % 3], "GET", "/orders", "17",
                   "request body", NULL);
        e.response = "response body of some length";
        e.response_len = 5 + i % 23;
        e.time_ms = i;
        assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    }

    sf_ring_clear(ring, "a", 1);
    assert_true(ring->tail <= ring->head);

    n = sf_ring_snapshot(ring, NULL, 0);
    assert_int_equal(n, SF_RING_HEADER_SIZE + sf_ring_used(ring));

    /* a buffer one byte short: nothing written */
    buf = malloc(n + 1);
    memset(buf, 0x11, n + 1);
    assert_int_equal(sf_ring_snapshot(ring, buf, n - 1), n);

    for (i = 0; i <= n; i++) {
        assert_int_equal(buf[i], 0x11);
    }

    /* unaligned, exact size */
    assert_int_equal(sf_ring_snapshot(ring, buf + 1, n), n);
    assert_int_equal(sf_ring_snapshot(NULL, buf, n), 0);

    walk_all(region, size, NULL, a);
    walk_all(buf + 1, n, NULL, b);
    assert_true(a->n > 10);
    check_equal_entries(a, b);

    memset(&f, 0, sizeof(f));
    f.storefront = "shop";
    f.storefront_len = 4;
    f.since_ms = 80;
    walk_all(region, size, &f, a);
    walk_all(buf + 1, n, &f, b);
    assert_true(a->n > 0);
    check_equal_entries(a, b);

    /* a snapshot is a ring: it attaches with its own length */
    copy = malloc(n);
    memcpy(copy, buf + 1, n);
    snap = sf_ring_attach(copy, n);
    assert_non_null(snap);
    assert_int_equal(sf_ring_count(snap), sf_ring_count(ring));
    assert_int_equal(sf_ring_used(snap), sf_ring_used(ring));
    assert_true(sf_ring_overwritten(snap) == sf_ring_overwritten(ring));
    assert_null(sf_ring_attach(copy, n + 8));
    assert_int_equal(sf_ring_walk(copy, n - 8, NULL, NULL, NULL), 0);

    /* and a full one: appending drops its oldest records */
    assert_int_equal(sf_ring_append(snap, &e, NULL), 0);
    walk_all(copy, n, NULL, b);
    assert_true(b->e[0].id == NAPP + 1);
    assert_true(sf_ring_snapshot(snap, NULL, 0) <= n);

    /* a byte copy of the region at another address is the same ring */
    region2 = region_new(size);
    memcpy(region2, region, size);
    assert_non_null(sf_ring_attach(region2, size));
    walk_all(region, size, NULL, a);
    walk_all(region2, size, NULL, b);
    check_equal_entries(a, b);

    /* both go on the same way */
    assert_int_equal(sf_ring_append(region2, &e, NULL), 0);
    assert_int_equal(sf_ring_append(ring, &e, NULL), 0);
    walk_all(region, size, NULL, a);
    walk_all(region2, size, NULL, b);
    check_equal_entries(a, b);
    assert_memory_equal(region, region2, size);

    /* a damaged record ends a walk there, nothing read outside */
    memset((char *) region2 + SF_RING_HEADER_SIZE, 0xff,
           ((sf_ring_t *) region2)->data_size);
    walk_all(region2, size, NULL, b);
    assert_int_equal(b->n, 0);

    /* appending to a damaged ring still works and stays in bounds */
    for (i = 0; i < NAPP; i++) {
        assert_int_equal(sf_ring_append(region2, &e, NULL), 0);
    }

    assert_non_null(sf_ring_attach(region2, size));
    walk_all(region2, size, NULL, b);
    assert_true(b->n > 0 && b->e[0].id == 2 * NAPP + 1);

    free(region2);
    free(copy);
    free(buf);
    free(region);
    free(a);
    free(b);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_init_attach),
        cmocka_unit_test(test_append_walk),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_overwrite_model),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_snapshot),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
