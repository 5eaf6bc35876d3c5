
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_qrec.c.
 *
 * Raw bytes as a spool segment: sf_qrec_scan() and sf_qrec_decode().
 * Checks: good_end <= len and a multiple of 8; OK means good_end == len;
 * decoding at good_end gives the scan's result; every record the scan
 * passes re-encodes to exactly its bytes (an exact-size heap block each,
 * so ASan catches any overrun) and its payload lies inside the buffer.
 *
 * Built segments: the input also describes records (type, ids, payload
 * bytes) that are encoded back to back, then cut at one point and, in a
 * copy, one bit flipped.  Checks: the intact segment scans OK with every
 * record as written; the cut one stops at the last complete record with
 * SHORT; the flipped one stops at the damaged record with BAD, or SHORT
 * only when the damaged length field points past the end.
 *
 * The bytes as a record payload (sf_qpay_decode()) of each type the
 * module writes: directly, wrapped as the job object ("j") and the
 * results ("r"), and cut at NUL bytes into values of the payload keys
 * (the first byte of each piece picks the key) so that the fuzzer reaches
 * every field without a dictionary.  A decoded payload must encode
 * (unless a JOB has no job object), decode again to the same fields, and
 * encode to the same bytes; segment names must parse only in the form
 * sf_qrec_segment_name() writes.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_qrec.h"


#define FUZZ_MAX_RECS   32


typedef struct {
    const unsigned char  *base;
    size_t                len;
    size_t                next;     /* where the next record must start */
    unsigned              count;
} fuzz_scan_t;


typedef struct {
    sf_qrec_t   recs[FUZZ_MAX_RECS];
    size_t      start[FUZZ_MAX_RECS + 1];
    unsigned    n;
} fuzz_built_t;


typedef struct {
    const fuzz_built_t  *b;
    unsigned             count;
} fuzz_match_t;


static int fuzz_check_record(const sf_qrec_t *r, void *data);
static void fuzz_raw(const unsigned char *data, size_t size);
static int fuzz_resync_record(const sf_qrec_t *r, void *data);
static void fuzz_resync_gap(size_t off, size_t len, void *data);
static void fuzz_resync(const unsigned char *data, size_t size);
static int fuzz_match_record(const sf_qrec_t *r, void *data);
static void fuzz_built(const unsigned char *data, size_t size);
static void fuzz_payload(const unsigned char *data, size_t size);
static void fuzz_payload_type(int type, const unsigned char *data,
    size_t size);
static void fuzz_same(const sf_qpay_t *a, const sf_qpay_t *b);
static void fuzz_wrapped(const unsigned char *data, size_t size);
static void fuzz_keyed(const unsigned char *data, size_t size);
static void fuzz_segment_name(const unsigned char *data, size_t size);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_raw(data, size);
    fuzz_resync(data, size);
    fuzz_built(data, size);
    fuzz_payload(data, size);
    fuzz_wrapped(data, size);
    fuzz_keyed(data, size);
    fuzz_segment_name(data, size);

    return 0;
}


static int
fuzz_check_record(const sf_qrec_t *r, void *data)
{
    size_t          total, off;
    fuzz_scan_t    *s;
    unsigned char  *again;

    s = data;

    if (r->payload < s->base + SF_QREC_HEADER_SIZE
        || r->len > s->len
        || (size_t) (r->payload - s->base) > s->len - r->len)
    {
        abort();
    }

    off = (size_t) (r->payload - s->base) - SF_QREC_HEADER_SIZE;

    if (off != s->next) {
        abort();
    }

    total = sf_qrec_size(r->len);

    if (total == 0 || off + total > s->len) {
        abort();
    }

    again = malloc(total);
    if (again == NULL) {
        return 1;
    }

    if (sf_qrec_encode(r, again, total) != total
        || memcmp(again, s->base + off, total) != 0)
    {
        abort();
    }

    free(again);

    s->next = off + total;
    s->count++;

    return 0;
}


static void
fuzz_raw(const unsigned char *data, size_t size)
{
    size_t        end, n;
    sf_qrec_t     r;
    fuzz_scan_t   s;
    sf_qrec_rc_t  rc, rc2;

    s.base = data;
    s.len = size;
    s.next = 0;
    s.count = 0;

    rc = sf_qrec_scan(data, size, fuzz_check_record, &s, &end);

    if (end > size || end % SF_QREC_ALIGN != 0 || end != s.next) {
        abort();
    }

    switch (rc) {

    case SF_QREC_OK:
        if (end != size) {
            abort();
        }
        break;

    case SF_QREC_SHORT:
    case SF_QREC_BAD:
        rc2 = sf_qrec_decode(data + end, size - end, &r, &n);

        if (rc2 != rc || r.payload != NULL) {
            abort();
        }

        if (rc == SF_QREC_SHORT && n != 0
            && (n <= size - end || n > SF_QREC_MAX_SIZE))
        {
            abort();
        }

        if (rc == SF_QREC_BAD && n != 0) {
            abort();
        }

        break;

    default:
        /* SF_QREC_STOPPED: only on allocation failure in the callback */
        break;
    }

    /* no callback: the same result */

    if (rc != SF_QREC_STOPPED) {
        if (sf_qrec_scan(data, size, NULL, NULL, &n) != rc || n != end) {
            abort();
        }
    }
}


/*
 * sf_qrec_scan_resync(): records and gaps tile the buffer from 0 to
 * len - tail in order, each record decodes where it is, a gap never hides
 * a valid record at an aligned offset, the tail holds none
 */

static int
fuzz_resync_record(const sf_qrec_t *r, void *data)
{
    size_t        off;
    fuzz_scan_t  *s;

    s = data;

    if (r->payload < s->base + SF_QREC_HEADER_SIZE
        || (size_t) (r->payload - s->base) > s->len)
    {
        abort();
    }

    off = (size_t) (r->payload - s->base) - SF_QREC_HEADER_SIZE;

    if (off != s->next || off % SF_QREC_ALIGN != 0
        || off + sf_qrec_size(r->len) > s->len)
    {
        abort();
    }

    s->next = off + sf_qrec_size(r->len);
    s->count++;

    return 0;
}


static void
fuzz_resync_gap(size_t off, size_t len, void *data)
{
    fuzz_scan_t  *s;

    s = data;

    if (off != s->next || len == 0 || off + len > s->len
        || (off + len) % SF_QREC_ALIGN != 0
        || sf_qrec_resync(s->base, s->len, off + 1) != off + len)
    {
        abort();
    }

    s->next = off + len;
}


static void
fuzz_resync(const unsigned char *data, size_t size)
{
    fuzz_scan_t      s;
    sf_qrec_stats_t  st;

    s.base = data;
    s.len = size;
    s.next = 0;
    s.count = 0;

    if (sf_qrec_scan_resync(data, size, fuzz_resync_record, fuzz_resync_gap,
                            &s, &st)
        != SF_QREC_OK)
    {
        abort();
    }

    if (st.records != s.count || s.next + st.tail != size
        || (st.tail != 0) != (st.tail_rc != SF_QREC_OK)
        || (st.tail && sf_qrec_resync(data, size, s.next + 1) != size)
        || st.good_end > s.next)
    {
        abort();
    }
}


static int
fuzz_match_record(const sf_qrec_t *r, void *data)
{
    fuzz_match_t     *m;
    const sf_qrec_t  *w;

    m = data;

    if (m->count >= m->b->n) {
        abort();
    }

    w = &m->b->recs[m->count];

    if (r->type != w->type || r->job_id != w->job_id
        || r->time_ms != w->time_ms || r->len != w->len
        || (r->len > 0 && memcmp(r->payload, w->payload, r->len) != 0))
    {
        abort();
    }

    m->count++;

    return 0;
}




static void
fuzz_built(const unsigned char *data, size_t size)
{
    size_t          i, p, len, total, cut, pos, end, claimed, k;
    uint32_t        plen;
    fuzz_built_t    b;
    fuzz_match_t    m;
    sf_qrec_rc_t    rc, want;
    unsigned char  *seg, *copy;

    if (size < 8) {
        return;
    }

    /* the last 8 bytes pick the cut and the flipped bit */

    cut = (size_t) data[size - 8] | (size_t) data[size - 7] << 8
          | (size_t) data[size - 6] << 16;
    pos = (size_t) data[size - 5] | (size_t) data[size - 4] << 8
          | (size_t) data[size - 3] << 16;
    size -= 8;

    /* records: [type][job id byte][payload length byte][payload] */

    b.n = 0;
    total = 0;
    p = 0;

    while (p + 3 <= size && b.n < FUZZ_MAX_RECS) {
        len = data[p + 2];

        if (len > size - p - 3) {
            len = size - p - 3;
        }

        b.recs[b.n].type = (uint16_t) (SF_QREC_JOB + data[p] % 3);
        b.recs[b.n].job_id = (uint64_t) data[p + 1] * 0x0101010101010101ULL;
        b.recs[b.n].time_ms = (uint64_t) p << 20 | b.n;
        b.recs[b.n].payload = data + p + 3;
        b.recs[b.n].len = len;
        b.start[b.n] = total;

        total += sf_qrec_size(len);
        p += 3 + len;
        b.n++;
    }

    b.start[b.n] = total;

    if (total == 0) {
        return;
    }

    seg = malloc(total);
    copy = malloc(total);

    if (seg == NULL || copy == NULL) {
        free(seg);
        free(copy);
        return;
    }

    for (i = 0; i < b.n; i++) {
        if (sf_qrec_encode(&b.recs[i], seg + b.start[i], total - b.start[i])
            != b.start[i + 1] - b.start[i])
        {
            abort();
        }
    }

    /* intact */

    m.b = &b;
    m.count = 0;

    if (sf_qrec_scan(seg, total, fuzz_match_record, &m, &end) != SF_QREC_OK
        || end != total || m.count != b.n)
    {
        abort();
    }

    /* cut */

    cut %= total + 1;

    for (k = 0; k < b.n && b.start[k + 1] <= cut; k++) {
        /* void */
    }

    m.count = 0;
    rc = sf_qrec_scan(seg, cut, fuzz_match_record, &m, &end);

    if (end != b.start[k] || m.count != k
        || rc != (cut == b.start[k] ? SF_QREC_OK : SF_QREC_SHORT))
    {
        abort();
    }

    /* one flipped bit */

    pos %= total * 8;
    memcpy(copy, seg, total);
    copy[pos / 8] ^= (unsigned char) (1u << (pos % 8));

    for (k = 0; b.start[k + 1] <= pos / 8; k++) {
        /* void */
    }

    want = SF_QREC_BAD;

    if (pos / 8 - b.start[k] >= 8 && pos / 8 - b.start[k] < 12) {
        plen = (uint32_t) copy[b.start[k] + 8]
               | (uint32_t) copy[b.start[k] + 9] << 8
               | (uint32_t) copy[b.start[k] + 10] << 16
               | (uint32_t) copy[b.start[k] + 11] << 24;

        claimed = sf_qrec_size(plen);

        if (claimed != 0 && b.start[k] + claimed > total) {
            want = SF_QREC_SHORT;
        }
    }

    m.count = 0;
    rc = sf_qrec_scan(copy, total, fuzz_match_record, &m, &end);

    if (rc != want || end != b.start[k] || m.count != k) {
        abort();
    }

    free(seg);
    free(copy);
}


static void
fuzz_payload(const unsigned char *data, size_t size)
{
    fuzz_payload_type(SF_QREC_JOB, data, size);
    fuzz_payload_type(SF_QREC_STATE, data, size);
    fuzz_payload_type(SF_QREC_INDEX, data, size);
}


static void
fuzz_payload_type(int type, const unsigned char *data, size_t size)
{
    char       *text, *again;
    size_t      len, len2;
    sf_qpay_t   p, d;

    if (sf_qpay_decode(type, data, size, &p) != 0) {
        if (p.root != NULL || p.type != type) {
            abort();
        }

        return;
    }

    text = sf_qpay_encode(&p, &len);

    if (text == NULL) {
        /* only a job without a job object cannot be written back */
        if (type != SF_QREC_JOB || p.job.data != NULL) {
            abort();
        }

        sf_qpay_free(&p);
        return;
    }

    if (len != strlen(text)
        || sf_qpay_decode(type, (unsigned char *) text, len, &d) != 0)
    {
        abort();
    }

    fuzz_same(&p, &d);

    again = sf_qpay_encode(&d, &len2);

    if (again == NULL || len2 != len || memcmp(again, text, len) != 0) {
        abort();
    }

    free(again);
    free(text);
    sf_qpay_free(&d);
    sf_qpay_free(&p);
}


static int
fuzz_str_differs(sf_qstr_t a, sf_qstr_t b)
{
    return a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0);
}


/* what the type writes is read back as it was */

static void
fuzz_same(const sf_qpay_t *a, const sf_qpay_t *b)
{
    int  bad;

    switch (a->type) {

    case SF_QREC_JOB:
        bad = a->kind != b->kind || a->created_ms != b->created_ms
              || fuzz_str_differs(a->storefront, b->storefront)
              || fuzz_str_differs(a->order_id, b->order_id)
              || fuzz_str_differs(a->job, b->job);
        break;

    case SF_QREC_STATE:
        bad = a->version != b->version || a->state != b->state
              || a->attempts != b->attempts || a->next_ms != b->next_ms
              || a->maybe_sent != b->maybe_sent
              || fuzz_str_differs(a->error, b->error)
              || fuzz_str_differs(a->results, b->results);
        break;

    default:
        bad = a->postback != b->postback || a->version != b->version
              || fuzz_str_differs(a->storefront, b->storefront)
              || fuzz_str_differs(a->order_id, b->order_id);

        if (a->postback) {
            bad = bad || a->rank != b->rank
                  || a->fingerprint != b->fingerprint;

        } else {
            bad = bad || a->state != b->state
                  || a->updated_ms != b->updated_ms
                  || a->sent_ms != b->sent_ms
                  || fuzz_str_differs(a->source_id, b->source_id)
                  || fuzz_str_differs(a->siteflow_id, b->siteflow_id);
        }
    }

    if (bad) {
        abort();
    }
}


/* the bytes as the job object and as the results, in valid payloads */

static void
fuzz_wrapped(const unsigned char *data, size_t size)
{
    size_t          n;
    unsigned char  *buf;
    static const char  job_head[] =
        "{\"k\":1,\"s\":\"shop\",\"o\":\"1042\",\"c\":1,\"j\":";
    static const char  state_head[] =
        "{\"v\":1,\"st\":1,\"a\":1,\"n\":0,\"ms\":0,\"r\":";

    buf = malloc(sizeof(job_head) + sizeof(state_head) + size + 2);
    if (buf == NULL) {
        return;
    }

    n = sizeof(job_head) - 1;
    memcpy(buf, job_head, n);
    memcpy(buf + n, data, size);
    buf[n + size] = '}';

    fuzz_payload_type(SF_QREC_JOB, buf, n + size + 1);

    n = sizeof(state_head) - 1;
    memcpy(buf, state_head, n);
    memcpy(buf + n, data, size);
    buf[n + size] = '}';

    fuzz_payload_type(SF_QREC_STATE, buf, n + size + 1);

    free(buf);
}


/*
 * "\x05" "\"shop\"" "\0" "\x03" "12" gives the values of "s" and "c":
 * each piece's first byte picks the key, the rest is its value text
 */

static void
fuzz_keyed(const unsigned char *data, size_t size)
{
    size_t                i, n, len;
    unsigned char        *buf, *p;
    const unsigned char  *piece, *end, *nul;
    static const char    *keys[] = {
        "k", "s", "o", "c", "j", "v", "st", "a", "n", "ms", "e", "r",
        "pb", "p", "src", "sf", "rk", "fp", "u", "t", "x"
    };

    n = sizeof(keys) / sizeof(keys[0]);

    /* a piece adds at most a key, quotes, ':' and ',' */

    buf = malloc(2 + (size + 1) * (3 + 4 + 2) + 2);
    if (buf == NULL) {
        return;
    }

    p = buf;
    *p++ = '{';

    piece = data;
    end = data + size;

    while (piece < end) {
        nul = memchr(piece, '\0', (size_t) (end - piece));
        if (nul == NULL) {
            nul = end;
        }

        len = (size_t) (nul - piece);

        if (len > 0) {
            if (p > buf + 1) {
                *p++ = ',';
            }

            i = piece[0] % n;

            p += sprintf((char *) p, "\"%s\":", keys[i]);
            memcpy(p, piece + 1, len - 1);
            p += len - 1;
        }

        piece = nul + 1;
    }

    *p++ = '}';

    fuzz_payload(buf, (size_t) (p - buf));

    free(buf);
}


static void
fuzz_segment_name(const unsigned char *data, size_t size)
{
    char      name[SF_QREC_SEGMENT_NAME_LEN + 1];
    uint64_t  seq;

    if (sf_qrec_segment_parse((const char *) data, size, &seq) != 0) {
        return;
    }

    if (sf_qrec_segment_name(seq, name, sizeof(name)) != 0
        || size != SF_QREC_SEGMENT_NAME_LEN
        || memcmp(name, data, size) != 0)
    {
        abort();
    }
}
