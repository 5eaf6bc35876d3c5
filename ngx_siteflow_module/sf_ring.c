
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * The Site Flow Log ring; the format and the rules are described in
 * sf_ring.h.
 */


#include <string.h>

#include "sf_json.h"
#include "sf_ring.h"


#define SF_RING_NFIELDS        6

#define SF_RING_F_STOREFRONT   0
#define SF_RING_F_METHOD       1
#define SF_RING_F_URL          2
#define SF_RING_F_ORDER_ID     3
#define SF_RING_F_REQUEST      4
#define SF_RING_F_RESPONSE     5

#define SF_RING_ALIGN_MASK     ((size_t) 7)
#define SF_RING_PAD_MIN        8


/* the record header as stored (64 bytes, see sf_ring.h) */
typedef struct {
    uint32_t      magic;
    uint32_t      size;
    uint64_t      id;
    uint64_t      time_ms;
    uint32_t      duration_ms;
    uint16_t      status;
    uint16_t      flags;
    uint8_t       direction;
    uint8_t       reserved[7];
    uint32_t      len[SF_RING_NFIELDS];
} sf_ring_rec_t;


_Static_assert(sizeof(sf_ring_t) == SF_RING_HEADER_SIZE,
               "ring header size");
_Static_assert(sizeof(sf_ring_rec_t) == SF_RING_REC_HEADER_SIZE,
               "record header size");


static int sf_ring_check(const sf_ring_t *h, size_t size);
static size_t sf_ring_next(const sf_ring_t *ring, size_t pos);
static void sf_ring_drop_oldest(sf_ring_t *ring);
static void sf_ring_pad(sf_ring_t *ring, size_t pos, size_t len);
static void sf_ring_fields(const sf_ring_entry_t *e, const char **p,
    size_t *len);
static int sf_ring_record_ok(const unsigned char *data, size_t pos,
    size_t size, sf_ring_rec_t *rec);
static int sf_ring_match(const sf_ring_rec_t *rec, const unsigned char *s,
    const sf_ring_filter_t *f);
static uint32_t sf_ring_get32(const unsigned char *p);
static void sf_ring_put32(unsigned char *p, uint32_t v);


/* the caps of the six fields, and the order in which they are cut */

static const size_t  sf_ring_caps[SF_RING_NFIELDS] = {
    SF_RING_MAX_STOREFRONT, SF_RING_MAX_METHOD, SF_RING_MAX_URL,
    SF_RING_MAX_ORDER_ID, (size_t) -1, (size_t) -1
};

static const int  sf_ring_cut_order[SF_RING_NFIELDS] = {
    SF_RING_F_RESPONSE, SF_RING_F_REQUEST, SF_RING_F_URL,
    SF_RING_F_ORDER_ID, SF_RING_F_STOREFRONT, SF_RING_F_METHOD
};

static const uint16_t  sf_ring_trunc_flags[SF_RING_NFIELDS] = {
    SF_RING_TRUNC_STOREFRONT, SF_RING_TRUNC_METHOD, SF_RING_TRUNC_URL,
    SF_RING_TRUNC_ORDER_ID, SF_RING_TRUNC_REQUEST, SF_RING_TRUNC_RESPONSE
};


sf_ring_t *
sf_ring_init(void *region, size_t size)
{
    sf_ring_t  *ring;

    if (region == NULL || ((uintptr_t) region & SF_RING_ALIGN_MASK) != 0
        || size < SF_RING_MIN_SIZE)
    {
        return NULL;
    }

    ring = region;

    memset(ring, 0, sizeof(sf_ring_t));

    ring->magic = SF_RING_MAGIC;
    ring->version = SF_RING_VERSION;
    ring->size = size;
    ring->data_size = SF_RING_DATA_SIZE(size);
    ring->next_id = 1;

    return ring;
}


sf_ring_t *
sf_ring_attach(void *region, size_t size)
{
    if (region == NULL || ((uintptr_t) region & SF_RING_ALIGN_MASK) != 0
        || size < SF_RING_MIN_SIZE)
    {
        return NULL;
    }

    if (!sf_ring_check(region, size)) {
        return NULL;
    }

    return region;
}


int
sf_ring_append(sf_ring_t *ring, const sf_ring_entry_t *e, uint64_t *id)
{
    size_t          len[SF_RING_NFIELDS], total, need, max, room, over, cut;
    size_t          pos, i, k;
    uint16_t        flags;
    const char     *p[SF_RING_NFIELDS];
    unsigned char  *data, *s;
    sf_ring_rec_t   rec;

    if (ring == NULL || e == NULL) {
        return -1;
    }

    sf_ring_fields(e, p, len);

    for (i = 0; i < SF_RING_NFIELDS; i++) {
        if (p[i] == NULL && len[i] != 0) {
            return -1;
        }
    }

    flags = e->flags & SF_RING_TRUNC_ANY;

    /* the per-field caps */

    total = 0;

    for (i = 0; i < SF_RING_NFIELDS; i++) {
        if (len[i] > sf_ring_caps[i]) {
            len[i] = sf_json_utf8_cut(p[i], len[i], sf_ring_caps[i]);
            flags |= sf_ring_trunc_flags[i];
        }

        total += len[i];
    }

    /* the record cap, bodies first */

    max = SF_RING_MAX_RECORD(ring->data_size);
    room = max - SF_RING_REC_HEADER_SIZE - SF_RING_TRAILER_SIZE;

    for (k = 0; k < SF_RING_NFIELDS && total > room; k++) {
        i = sf_ring_cut_order[k];

        if (len[i] == 0) {
            continue;
        }

        over = total - room;
        cut = (over >= len[i]) ? 0
                               : sf_json_utf8_cut(p[i], len[i], len[i] - over);

        total -= len[i] - cut;
        len[i] = cut;
        flags |= sf_ring_trunc_flags[i];
    }

    if (flags & SF_RING_TRUNC_ANY) {
        flags |= SF_RING_TRUNCATED;
    }

    need = SF_RING_RECORD_SIZE(total);

    /* make room: the record goes at tail, never split */

    for ( ;; ) {
        if (ring->used == 0 || ring->tail > ring->head) {

            /* [head, tail) holds the records, free space runs to the end */

            if (ring->data_size - ring->tail >= need) {
                break;
            }

            if (ring->tail < ring->data_size) {
                sf_ring_pad(ring, ring->tail, ring->data_size - ring->tail);
                ring->used += ring->data_size - ring->tail;
            }

            ring->tail = 0;
            continue;
        }

        /* wrapped (or full): the free space is [tail, head) */

        if (ring->head - ring->tail >= need) {
            break;
        }

        sf_ring_drop_oldest(ring);
    }

    data = (unsigned char *) ring + SF_RING_HEADER_SIZE;
    pos = ring->tail;

    memset(&rec, 0, sizeof(sf_ring_rec_t));

    rec.magic = SF_RING_REC_MAGIC;
    rec.size = (uint32_t) need;
    rec.id = ring->next_id;
    rec.time_ms = e->time_ms;
    rec.duration_ms = e->duration_ms;
    rec.status = e->status;
    rec.flags = flags;
    rec.direction = e->direction;

    for (i = 0; i < SF_RING_NFIELDS; i++) {
        rec.len[i] = (uint32_t) len[i];
    }

    memcpy(data + pos, &rec, sizeof(sf_ring_rec_t));

    s = data + pos + SF_RING_REC_HEADER_SIZE;

    for (i = 0; i < SF_RING_NFIELDS; i++) {
        if (len[i] != 0) {
            memcpy(s, p[i], len[i]);
            s += len[i];
        }
    }

    memset(s, 0, data + pos + need - SF_RING_TRAILER_SIZE - s);
    sf_ring_put32(data + pos + need - SF_RING_TRAILER_SIZE, (uint32_t) need);

    ring->tail = pos + need;
    ring->used += need;
    ring->records++;

    if (id != NULL) {
        *id = ring->next_id;
    }

    ring->next_id++;

    return 0;
}


size_t
sf_ring_snapshot(const sf_ring_t *ring, void *out, size_t out_size)
{
    size_t                n, first;
    sf_ring_t             h;
    unsigned char        *o;
    const unsigned char  *data;

    if (ring == NULL) {
        return 0;
    }

    n = SF_RING_HEADER_SIZE + ring->used;

    if (out == NULL || out_size < n) {
        return n;
    }

    data = (const unsigned char *) ring + SF_RING_HEADER_SIZE;
    o = (unsigned char *) out + SF_RING_HEADER_SIZE;

    /* the used bytes, oldest first */

    first = ring->data_size - ring->head;

    if (first > ring->used) {
        first = ring->used;
    }

    memcpy(o, data + ring->head, first);
    memcpy(o + first, data, ring->used - first);

    /* the header of a full ring whose data area is exactly those bytes */

    h = *ring;

    h.size = n;
    h.data_size = ring->used;
    h.head = 0;
    h.tail = ring->used;

    memcpy(out, &h, SF_RING_HEADER_SIZE);

    return n;
}


size_t
sf_ring_walk(const void *snapshot, size_t len, const sf_ring_filter_t *f,
    sf_ring_visit_pt cb, void *data)
{
    int                   kind;
    size_t                n, pos, left, size;
    sf_ring_t             h;
    const char           *s;
    const unsigned char  *base;
    sf_ring_rec_t         rec;
    sf_ring_entry_t       e;

    if (snapshot == NULL || len < SF_RING_HEADER_SIZE) {
        return 0;
    }

    memcpy(&h, snapshot, SF_RING_HEADER_SIZE);

    if (!sf_ring_check(&h, len)) {
        return 0;
    }

    base = (const unsigned char *) snapshot + SF_RING_HEADER_SIZE;
    pos = h.tail;
    left = h.used;
    n = 0;

    /* backwards from tail, by the trailers */

    while (left > 0) {
        if (pos == 0) {
            pos = h.data_size;
        }

        if (pos < SF_RING_PAD_MIN) {
            break;
        }

        size = sf_ring_get32(base + pos - SF_RING_TRAILER_SIZE);

        if (size < SF_RING_PAD_MIN || (size & SF_RING_ALIGN_MASK) != 0
            || size > pos || size > left)
        {
            break;
        }

        pos -= size;
        left -= size;

        kind = sf_ring_record_ok(base, pos, size, &rec);

        if (kind == 0) {
            break;
        }

        if (kind == 2 || (rec.flags & SF_RING_DELETED)) {
            continue;
        }

        s = (const char *) base + pos + SF_RING_REC_HEADER_SIZE;

        if (!sf_ring_match(&rec, (const unsigned char *) s, f)) {
            continue;
        }

        e.id = rec.id;
        e.time_ms = rec.time_ms;
        e.duration_ms = rec.duration_ms;
        e.status = rec.status;
        e.flags = rec.flags;
        e.direction = rec.direction;

        e.storefront = s;
        e.storefront_len = rec.len[SF_RING_F_STOREFRONT];
        e.method = e.storefront + e.storefront_len;
        e.method_len = rec.len[SF_RING_F_METHOD];
        e.url = e.method + e.method_len;
        e.url_len = rec.len[SF_RING_F_URL];
        e.order_id = e.url + e.url_len;
        e.order_id_len = rec.len[SF_RING_F_ORDER_ID];
        e.request = e.order_id + e.order_id_len;
        e.request_len = rec.len[SF_RING_F_REQUEST];
        e.response = e.request + e.request_len;
        e.response_len = rec.len[SF_RING_F_RESPONSE];

        n++;

        if (cb != NULL && cb(&e, data) != 0) {
            break;
        }

        if (f != NULL && f->limit != 0 && n >= f->limit) {
            break;
        }
    }

    return n;
}


size_t
sf_ring_clear(sf_ring_t *ring, const char *storefront, size_t len)
{
    int             kind;
    size_t          n, pos, left, size;
    uint16_t        flags;
    unsigned char  *data;
    sf_ring_rec_t   rec;

    if (ring == NULL || (storefront == NULL && len != 0)) {
        return 0;
    }

    data = (unsigned char *) ring + SF_RING_HEADER_SIZE;
    pos = ring->head;
    left = ring->used;
    n = 0;

    /* forwards from head, by the size fields */

    while (left > 0) {
        if (pos == ring->data_size) {
            pos = 0;
        }

        if (ring->data_size - pos < SF_RING_PAD_MIN) {
            break;
        }

        size = sf_ring_get32(data + pos + 4);

        if (size < SF_RING_PAD_MIN || (size & SF_RING_ALIGN_MASK) != 0
            || size > ring->data_size - pos || size > left)
        {
            break;
        }

        kind = sf_ring_record_ok(data, pos, size, &rec);

        if (kind == 0) {
            break;
        }

        if (kind == 1 && !(rec.flags & SF_RING_DELETED)
            && (storefront == NULL
                || (rec.len[SF_RING_F_STOREFRONT] == len
                    && memcmp(data + pos + SF_RING_REC_HEADER_SIZE,
                              storefront, len) == 0)))
        {
            flags = rec.flags | SF_RING_DELETED;
            memcpy(data + pos + offsetof(sf_ring_rec_t, flags), &flags,
                   sizeof(uint16_t));

            ring->deleted++;
            n++;
        }

        pos += size;
        left -= size;
    }

    return n;
}


size_t
sf_ring_used(const sf_ring_t *ring)
{
    return (ring != NULL) ? (size_t) ring->used : 0;
}


size_t
sf_ring_count(const sf_ring_t *ring)
{
    if (ring == NULL || ring->deleted > ring->records) {
        return 0;
    }

    return (size_t) (ring->records - ring->deleted);
}


uint64_t
sf_ring_overwritten(const sf_ring_t *ring)
{
    return (ring != NULL) ? ring->overwritten : 0;
}


/*
 * The header fields agree with each other and with size: what attach and
 * walk rely on before reading any record.
 */

static int
sf_ring_check(const sf_ring_t *h, size_t size)
{
    uint64_t  d;

    if (h->magic != SF_RING_MAGIC || h->version != SF_RING_VERSION
        || size < SF_RING_HEADER_SIZE || h->size != size)
    {
        return 0;
    }

    d = h->data_size;

    if (d != SF_RING_DATA_SIZE(size)
        || ((h->head | h->tail | h->used) & SF_RING_ALIGN_MASK) != 0
        || h->tail > d || h->used > d || h->deleted > h->records)
    {
        return 0;
    }

    if (h->used == 0) {
        return h->head == h->tail && h->records == 0;
    }

    if (h->head >= d) {
        return 0;
    }

    if (h->tail > h->head) {
        return h->used == h->tail - h->head;
    }

    return h->used == d - h->head + h->tail;
}


/*
 * Drops the record or padding at head.  A header that does not describe
 * a block inside the used bytes cannot come from this code: the ring is
 * then emptied (keeping next_id and overwritten), so making room always
 * ends.
 */

static void
sf_ring_drop_oldest(sf_ring_t *ring)
{
    int             kind;
    size_t          size;
    unsigned char  *data;
    sf_ring_rec_t   rec;

    data = (unsigned char *) ring + SF_RING_HEADER_SIZE;

    kind = 0;
    size = 0;

    if (ring->data_size - ring->head >= SF_RING_PAD_MIN) {
        size = sf_ring_get32(data + ring->head + 4);

        if (size >= SF_RING_PAD_MIN && (size & SF_RING_ALIGN_MASK) == 0
            && size <= ring->data_size - ring->head && size <= ring->used)
        {
            kind = sf_ring_record_ok(data, ring->head, size, &rec);
        }
    }

    if (kind == 0 || (kind == 1 && ring->records == 0)) {
        ring->head = 0;
        ring->tail = 0;
        ring->used = 0;
        ring->records = 0;
        ring->deleted = 0;
        return;
    }

    if (kind == 1) {
        ring->records--;

        if (rec.flags & SF_RING_DELETED) {
            if (ring->deleted > 0) {
                ring->deleted--;
            }

        } else {
            ring->overwritten++;
        }
    }

    ring->head = sf_ring_next(ring, ring->head + size);
    ring->used -= size;
}


static size_t
sf_ring_next(const sf_ring_t *ring, size_t pos)
{
    return (pos == ring->data_size) ? 0 : pos;
}


static void
sf_ring_pad(sf_ring_t *ring, size_t pos, size_t len)
{
    unsigned char  *p;

    p = (unsigned char *) ring + SF_RING_HEADER_SIZE + pos;

    memset(p, 0, len);

    sf_ring_put32(p, SF_RING_PAD_MAGIC);
    sf_ring_put32(p + 4, (uint32_t) len);
    sf_ring_put32(p + len - SF_RING_TRAILER_SIZE, (uint32_t) len);
}


static void
sf_ring_fields(const sf_ring_entry_t *e, const char **p, size_t *len)
{
    p[SF_RING_F_STOREFRONT] = e->storefront;
    len[SF_RING_F_STOREFRONT] = e->storefront_len;
    p[SF_RING_F_METHOD] = e->method;
    len[SF_RING_F_METHOD] = e->method_len;
    p[SF_RING_F_URL] = e->url;
    len[SF_RING_F_URL] = e->url_len;
    p[SF_RING_F_ORDER_ID] = e->order_id;
    len[SF_RING_F_ORDER_ID] = e->order_id_len;
    p[SF_RING_F_REQUEST] = e->request;
    len[SF_RING_F_REQUEST] = e->request_len;
    p[SF_RING_F_RESPONSE] = e->response;
    len[SF_RING_F_RESPONSE] = e->response_len;
}


/*
 * What the size bytes at data + pos hold: 1 a record (its header copied
 * to *rec), 2 padding, 0 neither (a wrong magic, or sizes that do not
 * agree).  The caller has checked that the block lies inside the data.
 */

static int
sf_ring_record_ok(const unsigned char *data, size_t pos, size_t size,
    sf_ring_rec_t *rec)
{
    size_t                total, i;
    uint32_t              magic;
    const unsigned char  *p;

    p = data + pos;
    magic = sf_ring_get32(p);

    if (magic == SF_RING_PAD_MAGIC) {
        return (sf_ring_get32(p + 4) == size
                && sf_ring_get32(p + size - SF_RING_TRAILER_SIZE) == size)
               ? 2 : 0;
    }

    if (magic != SF_RING_REC_MAGIC || size < SF_RING_RECORD_SIZE(0)) {
        return 0;
    }

    memcpy(rec, p, sizeof(sf_ring_rec_t));

    total = 0;

    for (i = 0; i < SF_RING_NFIELDS; i++) {
        total += rec->len[i];
    }

    if (rec->size != size || SF_RING_RECORD_SIZE(total) != size
        || sf_ring_get32(p + size - SF_RING_TRAILER_SIZE) != size)
    {
        return 0;
    }

    return 1;
}


static int
sf_ring_match(const sf_ring_rec_t *rec, const unsigned char *s,
    const sf_ring_filter_t *f)
{
    const unsigned char  *order_id;

    if (f == NULL) {
        return 1;
    }

    if (rec->time_ms < f->since_ms) {
        return 0;
    }

    if (f->storefront != NULL
        && (rec->len[SF_RING_F_STOREFRONT] != f->storefront_len
            || memcmp(s, f->storefront, f->storefront_len) != 0))
    {
        return 0;
    }

    if (f->order_id != NULL) {
        order_id = s + rec->len[SF_RING_F_STOREFRONT]
                   + rec->len[SF_RING_F_METHOD] + rec->len[SF_RING_F_URL];

        if (rec->len[SF_RING_F_ORDER_ID] != f->order_id_len
            || memcmp(order_id, f->order_id, f->order_id_len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


static uint32_t
sf_ring_get32(const unsigned char *p)
{
    uint32_t  v;

    memcpy(&v, p, sizeof(uint32_t));

    return v;
}


static void
sf_ring_put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof(uint32_t));
}
