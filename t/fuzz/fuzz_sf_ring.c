
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_ring.c.
 *
 * The input picks a region size (4 KiB .. 68 KiB, an exact-size heap
 * block so ASan catches any access outside it) and then a sequence of
 * operations: appends of random fields (some far over the caps and the
 * record limit), per-storefront and global clears, and walks with
 * random filters.  A reference model gives every record a virtual start
 * address that only grows (a record that would cross a multiple of the
 * data size starts at the next one); the ring must hold exactly the
 * records that start at or after the end of the newest minus the data
 * size.  After every operation:
 *
 *   - a full walk of the ring and of an exact-size snapshot visit the
 *     model's live records, newest first, in strictly decreasing id,
 *     each field a prefix of what was appended (cut only with its
 *     SF_RING_TRUNC_* flag, within its cap, on a UTF-8 boundary rule),
 *     every record within a quarter of the data area;
 *   - sf_ring_count() and sf_ring_overwritten() match the model;
 *   - the ring attaches; the snapshot attaches when large enough, and a
 *     snapshot buffer one byte short is left untouched;
 *   - a filtered walk visits exactly the model's matching entries.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_ring.h"


#define FUZZ_MAX_RECS   4096
#define FUZZ_POOL_SIZE  (128 * 1024)
#define FUZZ_MAX_SEEN   4096


typedef struct {
    const unsigned char  *p;
    size_t                len;
} fuzz_in_t;


typedef struct {
    uint64_t      id;
    uint64_t      v;
    uint64_t      time_ms;
    int           deleted;
    int           gone;
    const char   *orig[6];
    size_t        orig_len[6];
    size_t        len[6];             /* as stored */
} fuzz_rec_t;


typedef struct {
    size_t        data_size;
    uint64_t      tail_v;
    uint64_t      overwritten;
    size_t        n;
    fuzz_rec_t    recs[FUZZ_MAX_RECS];
} fuzz_model_t;


typedef struct {
    size_t            n;
    sf_ring_entry_t   e[FUZZ_MAX_SEEN];
} fuzz_seen_t;


static unsigned fuzz_byte(fuzz_in_t *in);
static unsigned fuzz_u16(fuzz_in_t *in);
static void fuzz_pool_init(void);
static const char *fuzz_pool_str(fuzz_in_t *in, size_t len);
static int fuzz_cut_ok(const char *p, size_t len, size_t orig_len);
static int fuzz_collect(const sf_ring_entry_t *e, void *data);
static void fuzz_entry_fields(const sf_ring_entry_t *e, const char **p,
    size_t *len);
static void fuzz_append(fuzz_model_t *m, sf_ring_t *ring, size_t size,
    fuzz_in_t *in);
static void fuzz_clear(fuzz_model_t *m, sf_ring_t *ring, fuzz_in_t *in);
static void fuzz_walk(fuzz_model_t *m, sf_ring_t *ring, size_t size,
    fuzz_in_t *in);
static int fuzz_rec_match(const fuzz_rec_t *r, const sf_ring_filter_t *f);
static void fuzz_check(fuzz_model_t *m, sf_ring_t *ring, size_t size);
static void fuzz_check_walk(fuzz_model_t *m, const void *buf, size_t len);


static char               fuzz_pool[FUZZ_POOL_SIZE];
static int                fuzz_pool_ready;
static fuzz_model_t       fuzz_model;
static fuzz_seen_t        fuzz_seen;

static const char *const  fuzz_storefronts[] = { "a", "shop", "s3", "" };
static const char *const  fuzz_order_ids[] = { "1", "2", "10", "" };

static const size_t  fuzz_caps[6] = {
    SF_RING_MAX_STOREFRONT, SF_RING_MAX_METHOD, SF_RING_MAX_URL,
    SF_RING_MAX_ORDER_ID, (size_t) -1, (size_t) -1
};

static const uint16_t  fuzz_trunc[6] = {
    SF_RING_TRUNC_STOREFRONT, SF_RING_TRUNC_METHOD, SF_RING_TRUNC_URL,
    SF_RING_TRUNC_ORDER_ID, SF_RING_TRUNC_REQUEST, SF_RING_TRUNC_RESPONSE
};


static unsigned
fuzz_byte(fuzz_in_t *in)
{
    unsigned  b;

    if (in->len == 0) {
        return 0;
    }

    b = in->p[0];
    in->p++;
    in->len--;

    return b;
}


static unsigned
fuzz_u16(fuzz_in_t *in)
{
    unsigned  v;

    v = fuzz_byte(in);

    return v | fuzz_byte(in) << 8;
}


static void
fuzz_pool_init(void)
{
    size_t    i;
    uint32_t  x;

    /* ASCII, UTF-8 sequences and stray continuation bytes */

    x = 2463534242u;

    for (i = 0; i < FUZZ_POOL_SIZE; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;

        switch (x % 4) {
        case 0:
            fuzz_pool[i] = (char) (0x80 | (x >> 8 & 0x3f));
            break;
        case 1:
            fuzz_pool[i] = (char) 0xe2;
            break;
        default:
            fuzz_pool[i] = (char) ('a' + (x >> 8) % 26);
        }
    }

    fuzz_pool_ready = 1;
}


static int
fuzz_collect(const sf_ring_entry_t *e, void *data)
{
    fuzz_seen_t  *seen = data;

    if (seen->n >= FUZZ_MAX_SEEN) {
        abort();
    }

    seen->e[seen->n++] = *e;

    return 0;
}


static void
fuzz_entry_fields(const sf_ring_entry_t *e, const char **p, size_t *len)
{
    p[0] = e->storefront;
    len[0] = e->storefront_len;
    p[1] = e->method;
    len[1] = e->method_len;
    p[2] = e->url;
    len[2] = e->url_len;
    p[3] = e->order_id;
    len[3] = e->order_id_len;
    p[4] = e->request;
    len[4] = e->request_len;
    p[5] = e->response;
    len[5] = e->response_len;
}


static const char *
fuzz_pool_str(fuzz_in_t *in, size_t len)
{
    size_t  off;

    off = fuzz_u16(in) % (FUZZ_POOL_SIZE - 70000);

    return (len == 0 && off % 2 == 0) ? NULL : fuzz_pool + off;
}


/*
 * A cut at len of a string of orig_len bytes splits no UTF-8 character,
 * unless the ring gave up after stepping back over three continuation
 * bytes (then the three after len are continuation bytes too) or
 * reached the start.
 */

static int
fuzz_cut_ok(const char *p, size_t len, size_t orig_len)
{
    size_t  i;

    if (len == 0 || ((unsigned char) p[len] & 0xc0) != 0x80) {
        return 1;
    }

    for (i = 1; i <= 3; i++) {
        if (len + i >= orig_len || ((unsigned char) p[len + i] & 0xc0) != 0x80)
        {
            return 0;
        }
    }

    return 1;
}


static void
fuzz_append(fuzz_model_t *m, sf_ring_t *ring, size_t size, fuzz_in_t *in)
{
    unsigned          k, sf, b;
    size_t            i, total, need, max;
    uint64_t          id;
    fuzz_rec_t       *r;
    sf_ring_entry_t   e;
    sf_ring_filter_t  f;
    const char       *p[6];
    size_t            len[6];

    if (m->n >= FUZZ_MAX_RECS) {
        return;
    }

    memset(&e, 0, sizeof(e));

    b = fuzz_byte(in);
    sf = b % 5;

    if (sf < 4) {
        e.storefront = fuzz_storefronts[sf];
        e.storefront_len = strlen(e.storefront);

    } else {
        e.storefront_len = fuzz_u16(in) % 600;
        e.storefront = fuzz_pool_str(in, e.storefront_len);
    }

    k = (b >> 3) % 5;

    if (k < 4) {
        e.order_id = fuzz_order_ids[k];
        e.order_id_len = strlen(e.order_id);

    } else {
        e.order_id_len = fuzz_u16(in) % 600;
        e.order_id = fuzz_pool_str(in, e.order_id_len);
    }

    e.method_len = fuzz_byte(in) % 24;
    e.method = fuzz_pool_str(in, e.method_len);
    e.url_len = fuzz_u16(in) % 4000;
    e.url = fuzz_pool_str(in, e.url_len);
    e.request_len = fuzz_u16(in);
    e.request = fuzz_pool_str(in, e.request_len);
    e.response_len = fuzz_u16(in);
    e.response = fuzz_pool_str(in, e.response_len);

    if ((b & 0x80) == 0) {
        e.request_len %= 700;
        e.response_len %= 700;
    }

    e.time_ms = fuzz_u16(in);
    e.status = (uint16_t) fuzz_u16(in);
    e.duration_ms = fuzz_u16(in);
    e.direction = (uint8_t) fuzz_byte(in);
    e.flags = (uint16_t) fuzz_u16(in);

    if (sf_ring_append(ring, &e, &id) != 0) {
        abort();
    }

    if (id != (m->n == 0 ? 1 : m->recs[m->n - 1].id + 1)) {
        abort();
    }

    /* what was stored: the newest entry */

    fuzz_seen.n = 0;

    memset(&f, 0, sizeof(f));
    f.limit = 1;

    if (sf_ring_walk(ring, size, &f, fuzz_collect, &fuzz_seen) != 1
        || fuzz_seen.e[0].id != id
        || fuzz_seen.e[0].time_ms != e.time_ms
        || fuzz_seen.e[0].status != e.status
        || fuzz_seen.e[0].duration_ms != e.duration_ms
        || fuzz_seen.e[0].direction != e.direction)
    {
        abort();
    }

    r = &m->recs[m->n++];

    memset(r, 0, sizeof(fuzz_rec_t));

    r->id = id;
    r->time_ms = e.time_ms;

    fuzz_entry_fields(&e, r->orig, r->orig_len);
    fuzz_entry_fields(&fuzz_seen.e[0], p, len);

    total = 0;

    for (i = 0; i < 6; i++) {
        r->len[i] = len[i];
        total += len[i];

        /* the caller's truncation bits are kept */
        if ((e.flags & fuzz_trunc[i]) && !(fuzz_seen.e[0].flags
                                            & fuzz_trunc[i]))
        {
            abort();
        }

        if (len[i] > fuzz_caps[i] || len[i] > r->orig_len[i]) {
            abort();
        }

        if (len[i] < r->orig_len[i]
            && (!(fuzz_seen.e[0].flags & fuzz_trunc[i])
                || !(fuzz_seen.e[0].flags & SF_RING_TRUNCATED)
                || !fuzz_cut_ok(r->orig[i], len[i], r->orig_len[i])))
        {
            abort();
        }
    }

    if (fuzz_seen.e[0].flags & SF_RING_DELETED) {
        abort();
    }

    need = SF_RING_RECORD_SIZE(total);
    max = SF_RING_MAX_RECORD(m->data_size);

    if (need > max) {
        abort();
    }

    /* the model */

    r->v = m->tail_v;

    if (r->v % m->data_size + need > m->data_size) {
        r->v += m->data_size - r->v % m->data_size;
    }

    m->tail_v = r->v + need;

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
fuzz_clear(fuzz_model_t *m, sf_ring_t *ring, fuzz_in_t *in)
{
    int          sf;
    size_t       i, n, want, len;
    const char  *name;
    fuzz_rec_t  *r;

    sf = (int) (fuzz_byte(in) % 5);
    name = (sf < 4) ? fuzz_storefronts[sf] : NULL;

    len = (name != NULL) ? strlen(name) : 0;
    n = sf_ring_clear(ring, name, len);

    /* by the stored bytes: a long random storefront may equal a name */

    want = 0;

    for (i = 0; i < m->n; i++) {
        r = &m->recs[i];

        if (!r->gone && !r->deleted
            && (name == NULL
                || (r->len[0] == len
                    && (len == 0 || memcmp(r->orig[0], name, len) == 0))))
        {
            r->deleted = 1;
            want++;
        }
    }

    if (n != want) {
        abort();
    }
}


static int
fuzz_rec_match(const fuzz_rec_t *r, const sf_ring_filter_t *f)
{
    if (r->gone || r->deleted || r->time_ms < f->since_ms) {
        return 0;
    }

    if (f->storefront != NULL
        && (r->len[0] != f->storefront_len
            || (r->len[0] != 0
                && memcmp(r->orig[0], f->storefront, r->len[0]) != 0)))
    {
        return 0;
    }

    if (f->order_id != NULL
        && (r->len[3] != f->order_id_len
            || (r->len[3] != 0
                && memcmp(r->orig[3], f->order_id, r->len[3]) != 0)))
    {
        return 0;
    }

    return 1;
}


static void
fuzz_walk(fuzz_model_t *m, sf_ring_t *ring, size_t size, fuzz_in_t *in)
{
    unsigned          b;
    size_t            i, k, n;
    sf_ring_filter_t  f;

    memset(&f, 0, sizeof(f));

    b = fuzz_byte(in);

    f.limit = b % 8;

    if ((b >> 3) % 5 < 4) {
        f.storefront = fuzz_storefronts[(b >> 3) % 5];
        f.storefront_len = strlen(f.storefront);
    }

    b = fuzz_byte(in);

    if (b % 5 < 4) {
        f.order_id = fuzz_order_ids[b % 5];
        f.order_id_len = strlen(f.order_id);
    }

    if (b & 0x80) {
        f.since_ms = fuzz_u16(in);
    }

    fuzz_seen.n = 0;
    n = sf_ring_walk(ring, size, &f, fuzz_collect, &fuzz_seen);

    if (n != fuzz_seen.n) {
        abort();
    }

    k = 0;

    for (i = m->n; i > 0 && (f.limit == 0 || k < f.limit); i--) {
        if (!fuzz_rec_match(&m->recs[i - 1], &f)) {
            continue;
        }

        if (k >= n || fuzz_seen.e[k].id != m->recs[i - 1].id) {
            abort();
        }

        k++;
    }

    if (k != n) {
        abort();
    }
}


static void
fuzz_check_walk(fuzz_model_t *m, const void *buf, size_t len)
{
    size_t                  i, j, k, n;
    const fuzz_rec_t       *r;
    const sf_ring_entry_t  *e;
    const char             *p[6];
    size_t                  plen[6];

    fuzz_seen.n = 0;
    n = sf_ring_walk(buf, len, NULL, fuzz_collect, &fuzz_seen);

    if (n != fuzz_seen.n) {
        abort();
    }

    k = 0;

    for (i = m->n; i > 0; i--) {
        r = &m->recs[i - 1];

        if (r->gone) {
            break;
        }

        if (r->deleted) {
            continue;
        }

        if (k >= n) {
            abort();
        }

        e = &fuzz_seen.e[k++];

        if (e->id != r->id || e->time_ms != r->time_ms
            || (e->flags & SF_RING_DELETED)
            || (k > 1 && e->id >= fuzz_seen.e[k - 2].id))
        {
            abort();
        }

        fuzz_entry_fields(e, p, plen);

        for (j = 0; j < 6; j++) {
            if (plen[j] != r->len[j]
                || (plen[j] != 0 && memcmp(p[j], r->orig[j], plen[j]) != 0))
            {
                abort();
            }
        }
    }

    for ( ; i > 0; i--) {
        if (!m->recs[i - 1].gone) {
            abort();
        }
    }

    if (k != n) {
        abort();
    }
}


static void
fuzz_check(fuzz_model_t *m, sf_ring_t *ring, size_t size)
{
    size_t          n;
    unsigned char  *snap, *copy;

    if (sf_ring_attach(ring, size) != ring
        || sf_ring_used(ring) > m->data_size)
    {
        abort();
    }

    fuzz_check_walk(m, ring, size);

    if (sf_ring_count(ring) != fuzz_seen.n
        || sf_ring_overwritten(ring) != m->overwritten)
    {
        abort();
    }

    n = sf_ring_snapshot(ring, NULL, 0);

    if (n != SF_RING_HEADER_SIZE + sf_ring_used(ring)) {
        abort();
    }

    snap = malloc(n);

    if (snap == NULL) {
        abort();
    }

    memset(snap, 0x3c, n);

    if (sf_ring_snapshot(ring, snap, n - 1) != n || snap[0] != 0x3c
        || snap[n - 1] != 0x3c)
    {
        abort();
    }

    if (sf_ring_snapshot(ring, snap, n) != n) {
        abort();
    }

    fuzz_check_walk(m, snap, n);

    /* unaligned copy: the walk takes any alignment */
    copy = malloc(n + 1);

    if (copy == NULL) {
        abort();
    }

    memcpy(copy + 1, snap, n);
    fuzz_check_walk(m, copy + 1, n);

    if ((n >= SF_RING_MIN_SIZE) != (sf_ring_attach(snap, n) != NULL)) {
        abort();
    }

    free(copy);
    free(snap);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t         region_size;
    unsigned       op;
    sf_ring_t     *ring;
    fuzz_in_t      in;
    fuzz_model_t  *m;
    void          *region;

    if (!fuzz_pool_ready) {
        fuzz_pool_init();
    }

    in.p = data;
    in.len = size;

    region_size = SF_RING_MIN_SIZE + fuzz_u16(&in);
    region = malloc(region_size);

    if (region == NULL) {
        return 0;
    }

    memset(region, 0xee, region_size);

    if (sf_ring_init(region, SF_RING_MIN_SIZE - 1) != NULL) {
        abort();
    }

    ring = sf_ring_init(region, region_size);

    if (ring == NULL) {
        abort();
    }

    m = &fuzz_model;
    m->data_size = ring->data_size;
    m->tail_v = 0;
    m->overwritten = 0;
    m->n = 0;

    while (in.len > 0) {
        op = fuzz_byte(&in);

        switch (op % 8) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4:
            fuzz_append(m, ring, region_size, &in);
            break;
        case 5:
            fuzz_clear(m, ring, &in);
            break;
        default:
            fuzz_walk(m, ring, region_size, &in);
        }

        fuzz_check(m, ring, region_size);
    }

    free(region);

    return 0;
}
