
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_qrec.c: the spool record codec, the recovery scan
 * (torn tails, flipped bits, zero-filled tails), CRC-32C, segment names
 * and the job / state payload JSON.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "sf_qrec.h"


#define NRECS      3
#define MAX_SEEN   16


typedef struct {
    unsigned    count;
    int         stop_at;              /* stop after this record, or -1 */
    sf_qrec_t   recs[MAX_SEEN];
} seen_t;


/* three records of different types and payload sizes, back to back */

typedef struct {
    unsigned char  buf[512];
    size_t         len;
    size_t         start[NRECS + 1];  /* start[NRECS] is the end */
} three_t;


static const unsigned char  golden[] = {
    0x53, 0x46, 0x51, 0x31, 0x02, 0x00, 0x00, 0x00,
    0x07, 0x00, 0x00, 0x00, 0xa6, 0x06, 0x96, 0xf9,
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
    0x7b, 0x22, 0x61, 0x22, 0x3a, 0x31, 0x7d, 0x00,
};


static uint32_t
crc_bitwise(uint32_t crc, const unsigned char *p, size_t len)
{
    int  k;

    crc = ~crc;

    while (len-- > 0) {
        crc ^= *p++;

        for (k = 0; k < 8; k++) {
            crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78 : crc >> 1;
        }
    }

    return ~crc;
}


static uint32_t
rnd(uint32_t *state)
{
    /* xorshift32: deterministic test data */

    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;

    return *state;
}


static int
collect(const sf_qrec_t *r, void *data)
{
    seen_t  *seen;

    seen = data;

    if (seen->count < MAX_SEEN) {
        seen->recs[seen->count] = *r;
    }

    seen->count++;

    return seen->stop_at >= 0 && (int) seen->count > seen->stop_at;
}


static void
seen_init(seen_t *seen)
{
    memset(seen, 0, sizeof(seen_t));
    seen->stop_at = -1;
}


static void
three_build(three_t *t)
{
    size_t       n, i;
    sf_qrec_t    r;
    static const char  *payloads[NRECS] = {
        "{\"kind\":\"order.create\"}", "", "{\"state\":\"done\"}"
    };
    static const uint16_t  types[NRECS] = {
        SF_QREC_JOB, SF_QREC_FORGET, SF_QREC_STATE
    };

    memset(t, 0, sizeof(three_t));

    for (i = 0; i < NRECS; i++) {
        r.type = types[i];
        r.job_id = 1000 + i;
        r.time_ms = 1700000000000ULL + i;
        r.payload = (const unsigned char *) payloads[i];
        r.len = strlen(payloads[i]);

        t->start[i] = t->len;

        n = sf_qrec_encode(&r, t->buf + t->len, sizeof(t->buf) - t->len);
        assert_int_equal(n, sf_qrec_size(r.len));

        t->len += n;
    }

    t->start[NRECS] = t->len;
}


static void
check_seen(const three_t *t, const unsigned char *base, const seen_t *seen,
    unsigned count)
{
    unsigned  i;

    assert_int_equal(seen->count, count);

    for (i = 0; i < count; i++) {
        assert_int_equal(seen->recs[i].job_id, 1000 + i);
        assert_ptr_equal(seen->recs[i].payload,
                         base + t->start[i] + SF_QREC_HEADER_SIZE);
    }
}


static void
test_crc_vectors(void **state)
{
    unsigned char  b[32];
    size_t         i;

    (void) state;

    assert_int_equal(sf_qrec_crc32c(0, (const unsigned char *) "123456789",
                                    9),
                     0xe3069283);
    assert_int_equal(sf_qrec_crc32c(0, NULL, 0), 0);
    assert_int_equal(sf_qrec_crc32c(0, (const unsigned char *) "", 0), 0);

    /* RFC 3720 B.4 */

    memset(b, 0, sizeof(b));
    assert_int_equal(sf_qrec_crc32c(0, b, 32), 0x8a9136aa);

    memset(b, 0xff, sizeof(b));
    assert_int_equal(sf_qrec_crc32c(0, b, 32), 0x62a8ab43);

    for (i = 0; i < 32; i++) {
        b[i] = (unsigned char) i;
    }

    assert_int_equal(sf_qrec_crc32c(0, b, 32), 0x46dd794e);

    for (i = 0; i < 32; i++) {
        b[i] = (unsigned char) (31 - i);
    }

    assert_int_equal(sf_qrec_crc32c(0, b, 32), 0x113fdb5c);
}


/* slice-by-8 against bit-wise, every length, alignment and split */

static void
test_crc_reference(void **state)
{
    size_t         len, off, cut;
    uint32_t       seed, want;
    unsigned char  data[300 + 8];

    (void) state;

    seed = 0x12345678;

    for (len = 0; len < sizeof(data); len++) {
        data[len] = (unsigned char) rnd(&seed);
    }

    for (off = 0; off < 8; off++) {
        for (len = 0; len + off <= 300; len++) {
            want = crc_bitwise(0, data + off, len);

            assert_int_equal(sf_qrec_crc32c(0, data + off, len), want);

            cut = len / 3;
            assert_int_equal(sf_qrec_crc32c(sf_qrec_crc32c(0, data + off,
                                                           cut),
                                            data + off + cut, len - cut),
                             want);
        }
    }
}


static void
test_size(void **state)
{
    (void) state;

    assert_int_equal(SF_QREC_HEADER_SIZE, 32);
    assert_int_equal(sf_qrec_size(0), 32);
    assert_int_equal(sf_qrec_size(1), 40);
    assert_int_equal(sf_qrec_size(7), 40);
    assert_int_equal(sf_qrec_size(8), 40);
    assert_int_equal(sf_qrec_size(9), 48);
    assert_int_equal(sf_qrec_size(SF_QREC_MAX_PAYLOAD - 1),
                     32 + SF_QREC_MAX_PAYLOAD);
    assert_int_equal(sf_qrec_size(SF_QREC_MAX_PAYLOAD),
                     32 + SF_QREC_MAX_PAYLOAD);
    assert_int_equal(sf_qrec_size(SF_QREC_MAX_PAYLOAD + 1), 0);
    assert_int_equal(sf_qrec_size(SIZE_MAX), 0);
    assert_int_equal(sf_qrec_size(SIZE_MAX - 6), 0);
}


/* the byte layout, computed independently */

static void
test_golden(void **state)
{
    size_t          n;
    sf_qrec_t       r;
    unsigned char   out[64];

    (void) state;

    r.type = SF_QREC_STATE;
    r.job_id = 0x0102030405060708ULL;
    r.time_ms = 0x1122334455667788ULL;
    r.payload = (const unsigned char *) "{\"a\":1}";
    r.len = 7;

    memset(out, 0xee, sizeof(out));

    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), sizeof(golden));
    assert_memory_equal(out, golden, sizeof(golden));
    assert_int_equal(out[sizeof(golden)], 0xee);

    memset(&r, 0x55, sizeof(r));

    assert_int_equal(sf_qrec_decode(golden, sizeof(golden), &r, &n),
                     SF_QREC_OK);
    assert_int_equal(n, sizeof(golden));
    assert_int_equal(r.type, SF_QREC_STATE);
    assert_true(r.job_id == 0x0102030405060708ULL);
    assert_true(r.time_ms == 0x1122334455667788ULL);
    assert_int_equal(r.len, 7);
    assert_ptr_equal(r.payload, golden + 32);
}


static void
test_round_trip(void **state)
{
    size_t          i, k, n, total;
    uint16_t        type;
    uint32_t        seed;
    sf_qrec_t       r, d;
    unsigned char  *payload, *out, *again;
    static const size_t  sizes[] = {
        0, 1, 2, 7, 8, 9, 15, 16, 17, 1000, 4096,
        SF_QREC_MAX_PAYLOAD - 9, SF_QREC_MAX_PAYLOAD - 8,
        SF_QREC_MAX_PAYLOAD - 1, SF_QREC_MAX_PAYLOAD
    };

    (void) state;

    payload = malloc(SF_QREC_MAX_PAYLOAD);
    out = malloc(SF_QREC_MAX_SIZE);
    again = malloc(SF_QREC_MAX_SIZE);
    assert_non_null(payload);
    assert_non_null(out);
    assert_non_null(again);

    seed = 99;

    for (i = 0; i < SF_QREC_MAX_PAYLOAD; i++) {
        payload[i] = (unsigned char) rnd(&seed);
    }

    for (type = SF_QREC_JOB; type <= SF_QREC_FORGET; type++) {
        for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            r.type = type;
            r.job_id = UINT64_MAX - k;
            r.time_ms = (uint64_t) k << 40 | type;
            r.payload = payload;
            r.len = sizes[k];

            total = sf_qrec_size(sizes[k]);

            assert_int_equal(sf_qrec_encode(&r, out, total), total);
            assert_int_equal(total % 8, 0);

            assert_int_equal(sf_qrec_decode(out, total, &d, &n), SF_QREC_OK);
            assert_int_equal(n, total);
            assert_int_equal(d.type, type);
            assert_true(d.job_id == r.job_id);
            assert_true(d.time_ms == r.time_ms);
            assert_int_equal(d.len, sizes[k]);
            assert_memory_equal(d.payload, payload, sizes[k]);

            /* re-encoding gives the same bytes */

            assert_int_equal(sf_qrec_encode(&d, again, total), total);
            assert_memory_equal(again, out, total);

            /* one byte less is a torn record */

            assert_int_equal(sf_qrec_decode(out, total - 1, &d, &n),
                             SF_QREC_SHORT);
            assert_int_equal(n, total);
        }
    }

    /* one byte too many */

    r.len = SF_QREC_MAX_PAYLOAD + 1;
    assert_int_equal(sf_qrec_encode(&r, out, SF_QREC_MAX_SIZE), 0);

    free(payload);
    free(out);
    free(again);
}


static void
test_encode_errors(void **state)
{
    sf_qrec_t      r;
    unsigned char  out[64];

    (void) state;

    r.type = SF_QREC_JOB;
    r.job_id = 1;
    r.time_ms = 2;
    r.payload = (const unsigned char *) "abc";
    r.len = 3;

    assert_int_equal(sf_qrec_encode(&r, out, 39), 0);
    assert_int_equal(sf_qrec_encode(&r, out, 40), 40);
    assert_int_equal(sf_qrec_encode(&r, NULL, 40), 0);
    assert_int_equal(sf_qrec_encode(NULL, out, 40), 0);

    r.type = 0;
    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), 0);
    r.type = 5;
    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), 0);
    r.type = 0xffff;
    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), 0);

    r.type = SF_QREC_FORGET;
    r.payload = NULL;
    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), 0);

    r.len = 0;
    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), 32);
}


/* the payload built in place at out + header, and other overlaps */

static void
test_encode_in_place(void **state)
{
    size_t         n;
    sf_qrec_t      r, d;
    unsigned char  out[128], ref[128];
    static const char  text[] = "{\"kind\":\"x\",\"n\":12345}";

    (void) state;

    r.type = SF_QREC_JOB;
    r.job_id = 7;
    r.time_ms = 8;
    r.payload = (const unsigned char *) text;
    r.len = sizeof(text) - 1;

    n = sf_qrec_encode(&r, ref, sizeof(ref));
    assert_int_equal(n, sf_qrec_size(r.len));

    memset(out, 0xaa, sizeof(out));
    memcpy(out + SF_QREC_HEADER_SIZE, text, r.len);
    r.payload = out + SF_QREC_HEADER_SIZE;

    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), n);
    assert_memory_equal(out, ref, n);

    /* payload overlapping the header */

    memset(out, 0xaa, sizeof(out));
    memcpy(out + 3, text, r.len);
    r.payload = out + 3;

    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), n);
    assert_memory_equal(out, ref, n);

    /* payload past where it goes */

    memset(out, 0xaa, sizeof(out));
    memcpy(out + 50, text, r.len);
    r.payload = out + 50;

    assert_int_equal(sf_qrec_encode(&r, out, sizeof(out)), n);
    assert_memory_equal(out, ref, n);

    assert_int_equal(sf_qrec_decode(out, n, &d, NULL), SF_QREC_OK);
}


/* resynchronisation: a damaged record does not hide the ones after it */

typedef struct {
    unsigned  n;
    size_t    off[8];
    size_t    len[8];
} gaps_t;


static void
gap_collect(size_t off, size_t len, void *data)
{
    gaps_t  *g = data;

    if (g->n < 8) {
        g->off[g->n] = off;
        g->len[g->n] = len;
    }

    g->n++;
}


typedef struct {
    seen_t  seen;
    gaps_t  gaps;
} resync_t;


static int
resync_collect(const sf_qrec_t *r, void *data)
{
    return collect(r, &((resync_t *) data)->seen);
}


static void
resync_gap(size_t off, size_t len, void *data)
{
    gap_collect(off, len, &((resync_t *) data)->gaps);
}


static void
test_resync_every_flipped_byte(void **state)
{
    size_t           i, k;
    unsigned         j, want;
    three_t          t;
    resync_t         rs;
    sf_qrec_rc_t     rc;
    sf_qrec_stats_t  st;
    unsigned char    buf[512];

    (void) state;

    three_build(&t);

    for (k = 0; k < NRECS; k++) {
        for (i = t.start[k]; i < t.start[k + 1]; i++) {
            memcpy(buf, t.buf, t.len);
            buf[i] ^= 0x5a;

            memset(&rs, 0, sizeof(resync_t));
            rs.seen.stop_at = -1;

            rc = sf_qrec_scan_resync(buf, t.len, resync_collect, resync_gap,
                                     &rs, &st);
            assert_int_equal(rc, SF_QREC_OK);

            /* every record but the damaged one, in order */

            assert_int_equal(rs.seen.count, NRECS - 1);
            assert_int_equal(st.records, NRECS - 1);

            for (j = 0, want = 0; j < rs.seen.count; j++, want++) {
                if (want == k) {
                    want++;
                }

                assert_int_equal(rs.seen.recs[j].job_id, 1000 + want);
                assert_ptr_equal(rs.seen.recs[j].payload,
                                 buf + t.start[want] + SF_QREC_HEADER_SIZE);
            }

            if (k < NRECS - 1) {
                /* followed by a valid record: a gap, i.e. corruption */
                assert_int_equal(st.gaps, 1);
                assert_int_equal(st.skipped, t.start[k + 1] - t.start[k]);
                assert_int_equal(st.first_gap, t.start[k]);
                assert_int_equal(st.tail, 0);
                assert_int_equal(st.good_end, t.len);
                assert_int_equal(rs.gaps.n, 1);
                assert_int_equal(rs.gaps.off[0], t.start[k]);
                assert_int_equal(rs.gaps.len[0], st.skipped);

            } else {
                /* the last record: a tail, as a torn write leaves */
                assert_int_equal(st.gaps, 0);
                assert_int_equal(st.tail, t.len - t.start[k]);
                assert_true(st.tail_rc == SF_QREC_BAD
                            || st.tail_rc == SF_QREC_SHORT);
                assert_int_equal(st.good_end, t.start[k]);
                assert_int_equal(rs.gaps.n, 0);
            }

            assert_int_equal(st.max_job_id,
                             k == NRECS - 1 ? 1000 + NRECS - 2
                                            : 1000 + NRECS - 1);
        }
    }
}


static void
test_resync_shapes(void **state)
{
    size_t           n;
    three_t          t;
    resync_t         rs;
    sf_qrec_stats_t  st;
    unsigned char    buf[1024];

    (void) state;

    three_build(&t);

    /* intact: like sf_qrec_scan() */

    memset(&rs, 0, sizeof(resync_t));
    rs.seen.stop_at = -1;
    assert_int_equal(sf_qrec_scan_resync(t.buf, t.len, resync_collect,
                                         resync_gap, &rs, &st),
                     SF_QREC_OK);
    check_seen(&t, t.buf, &rs.seen, NRECS);
    assert_int_equal(st.gaps, 0);
    assert_int_equal(st.tail, 0);
    assert_int_equal(st.tail_rc, SF_QREC_OK);
    assert_int_equal(st.good_end, t.len);
    assert_int_equal(st.max_job_id, 1000 + NRECS - 1);

    /* 64 zero bytes (a hole) and 24 bytes of garbage between records */

    memcpy(buf, t.buf, t.start[1]);
    memset(buf + t.start[1], 0, 64);
    memset(buf + t.start[1] + 64, 0xa5, 24);
    n = t.start[1] + 88;
    memcpy(buf + n, t.buf + t.start[1], t.len - t.start[1]);
    n += t.len - t.start[1];

    memset(&rs, 0, sizeof(resync_t));
    rs.seen.stop_at = -1;
    assert_int_equal(sf_qrec_scan_resync(buf, n, resync_collect, resync_gap,
                                         &rs, &st),
                     SF_QREC_OK);
    assert_int_equal(rs.seen.count, NRECS);
    assert_int_equal(st.gaps, 1);
    assert_int_equal(st.skipped, 88);
    assert_int_equal(st.first_gap, t.start[1]);
    assert_int_equal(st.tail, 0);

    /* a zero-filled tail is a tail, not a gap */

    memcpy(buf, t.buf, t.len);
    memset(buf + t.len, 0, 100);

    assert_int_equal(sf_qrec_scan_resync(buf, t.len + 100, NULL, NULL, NULL,
                                         &st),
                     SF_QREC_OK);
    assert_int_equal(st.records, NRECS);
    assert_int_equal(st.gaps, 0);
    assert_int_equal(st.tail, 100);
    assert_int_equal(st.tail_rc, SF_QREC_SHORT);

    /* garbage only, and nothing */

    memset(buf, 0x5a, 200);
    assert_int_equal(sf_qrec_scan_resync(buf, 200, NULL, NULL, NULL, &st),
                     SF_QREC_OK);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.tail, 200);
    assert_int_equal(st.tail_rc, SF_QREC_BAD);

    assert_int_equal(sf_qrec_scan_resync(NULL, 10, NULL, NULL, NULL, &st),
                     SF_QREC_OK);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.tail, 0);

    /* two damaged records, the callback stops the scan */

    memcpy(buf, t.buf, t.len);
    buf[t.start[0] + 1] ^= 1;
    buf[t.start[1] + 1] ^= 1;

    memset(&rs, 0, sizeof(resync_t));
    rs.seen.stop_at = -1;
    assert_int_equal(sf_qrec_scan_resync(buf, t.len, resync_collect,
                                         resync_gap, &rs, &st),
                     SF_QREC_OK);
    assert_int_equal(rs.seen.count, 1);
    assert_int_equal(st.gaps, 1);
    assert_int_equal(st.skipped, t.start[2]);

    memcpy(buf, t.buf, t.len);
    memset(&rs, 0, sizeof(resync_t));
    rs.seen.stop_at = 1;
    assert_int_equal(sf_qrec_scan_resync(buf, t.len, resync_collect, NULL,
                                         &rs, NULL),
                     SF_QREC_STOPPED);
    assert_int_equal(rs.seen.count, 2);

    /* sf_qrec_resync(): aligned, from anywhere */

    assert_int_equal(sf_qrec_resync(t.buf, t.len, 0), 0);
    assert_int_equal(sf_qrec_resync(t.buf, t.len, 1), t.start[1]);
    assert_int_equal(sf_qrec_resync(t.buf, t.len, t.start[1]), t.start[1]);
    assert_int_equal(sf_qrec_resync(t.buf, t.len, t.start[2] + 1), t.len);
    assert_int_equal(sf_qrec_resync(t.buf, t.len, (size_t) -3), t.len);
    assert_int_equal(sf_qrec_resync(NULL, 0, 0), 0);
}


/* a torn tail at every cut point */

static void
test_torn_tail(void **state)
{
    size_t        cut, end, n;
    seen_t        seen;
    three_t       t;
    unsigned      complete, k;
    sf_qrec_t     r;
    sf_qrec_rc_t  rc;

    (void) state;

    three_build(&t);

    for (cut = 0; cut <= t.len; cut++) {
        complete = 0;

        for (k = 1; k <= NRECS; k++) {
            if (t.start[k] <= cut) {
                complete = k;
            }
        }

        seen_init(&seen);
        end = 12345;

        rc = sf_qrec_scan(t.buf, cut, collect, &seen, &end);

        check_seen(&t, t.buf, &seen, complete);
        assert_int_equal(end, t.start[complete]);
        assert_int_equal(rc, cut == t.start[complete] ? SF_QREC_OK
                                                      : SF_QREC_SHORT);

        /* what a streaming reader is told it needs */

        if (rc == SF_QREC_SHORT) {
            assert_int_equal(sf_qrec_decode(t.buf + end, cut - end, &r, &n),
                             SF_QREC_SHORT);

            if (cut - end >= 12) {
                assert_int_equal(n, t.start[complete + 1] - end);

            } else {
                assert_int_equal(n, SF_QREC_HEADER_SIZE);
            }
        }
    }
}


/* a flipped bit anywhere stops the scan at that record */

static void
test_bit_flip(void **state)
{
    size_t        pos, end, claimed;
    seen_t        seen;
    three_t       t, f;
    unsigned      k, bit, shorts, bads;
    uint32_t      len;
    sf_qrec_rc_t  rc, want;

    (void) state;

    three_build(&t);

    shorts = 0;
    bads = 0;

    for (pos = 0; pos < t.len; pos++) {
        for (bit = 0; bit < 8; bit++) {
            f = t;
            f.buf[pos] ^= (unsigned char) (1u << bit);

            for (k = 0; t.start[k + 1] <= pos; k++) {
                /* void */
            }

            want = SF_QREC_BAD;

            if (pos - t.start[k] >= 8 && pos - t.start[k] < 12) {
                /* the length field: a torn tail if it points past the end */

                len = (uint32_t) f.buf[t.start[k] + 8]
                      | (uint32_t) f.buf[t.start[k] + 9] << 8
                      | (uint32_t) f.buf[t.start[k] + 10] << 16
                      | (uint32_t) f.buf[t.start[k] + 11] << 24;

                claimed = sf_qrec_size(len);

                if (claimed != 0 && t.start[k] + claimed > t.len) {
                    want = SF_QREC_SHORT;
                }
            }

            seen_init(&seen);

            rc = sf_qrec_scan(f.buf, f.len, collect, &seen, &end);

            assert_int_equal(rc, want);
            assert_int_equal(end, t.start[k]);
            check_seen(&t, f.buf, &seen, k);

            if (rc == SF_QREC_SHORT) {
                shorts++;

            } else {
                bads++;
            }
        }
    }

    assert_int_equal(shorts + bads, t.len * 8);
    assert_true(bads > shorts * 10);
}


/* a preallocated / zero-extended file: a zero magic ends the data */

static void
test_zero_tail(void **state)
{
    size_t          i, end, n, len;
    seen_t          seen;
    three_t         t;
    sf_qrec_t       r;
    unsigned char  *buf;

    (void) state;

    three_build(&t);

    buf = calloc(1, t.len + 4096);
    assert_non_null(buf);

    memcpy(buf, t.buf, t.len);

    for (i = 1; i <= 4096; i++) {
        seen_init(&seen);

        assert_int_equal(sf_qrec_scan(buf, t.len + i, collect, &seen, &end),
                         SF_QREC_SHORT);
        assert_int_equal(end, t.len);
        check_seen(&t, buf, &seen, NRECS);

        if (i > 40) {
            i += 97;
        }
    }

    /* decode says "end of data": SHORT and 0 needed */

    assert_int_equal(sf_qrec_decode(buf + t.len, 4096, &r, &n),
                     SF_QREC_SHORT);
    assert_int_equal(n, 0);
    assert_int_equal(sf_qrec_decode(buf + t.len, 3, &r, &n), SF_QREC_SHORT);
    assert_int_equal(n, 0);

    /* an all-zero file */

    assert_int_equal(sf_qrec_scan(buf + t.len, 4096, NULL, NULL, &end),
                     SF_QREC_SHORT);
    assert_int_equal(end, 0);

    /*
     * the third record's header landed, its payload reads as zeros
     * (the size was extended first): BAD at that record
     */

    len = t.start[2] + SF_QREC_HEADER_SIZE;
    memset(buf + len, 0, t.len + 4096 - len);

    seen_init(&seen);

    assert_int_equal(sf_qrec_scan(buf, t.len, collect, &seen, &end),
                     SF_QREC_BAD);
    assert_int_equal(end, t.start[2]);
    check_seen(&t, buf, &seen, 2);

    /* and cut inside it: SHORT */

    assert_int_equal(sf_qrec_scan(buf, t.len - 1, NULL, NULL, &end),
                     SF_QREC_SHORT);
    assert_int_equal(end, t.start[2]);

    free(buf);
}


static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
}


/* a length above the maximum is BAD as soon as it is read */

static void
test_oversized_length(void **state)
{
    size_t         n, end;
    sf_qrec_t      r;
    unsigned char  buf[64];
    static const uint32_t  lens[] = {
        SF_QREC_MAX_PAYLOAD + 1, SF_QREC_MAX_PAYLOAD + 8, 0x7fffffff,
        0x80000000, 0xffffffff
    };

    (void) state;

    for (n = 0; n < sizeof(lens) / sizeof(lens[0]); n++) {
        memcpy(buf, golden, 32);
        put32(buf + 8, lens[n]);

        assert_int_equal(sf_qrec_decode(buf, 12, &r, NULL), SF_QREC_BAD);
        assert_int_equal(sf_qrec_decode(buf, 32, &r, NULL), SF_QREC_BAD);
        assert_int_equal(sf_qrec_scan(buf, 32, NULL, NULL, &end),
                         SF_QREC_BAD);
        assert_int_equal(end, 0);
    }

    /* the maximum itself is only short of bytes */

    memcpy(buf, golden, 32);
    put32(buf + 8, SF_QREC_MAX_PAYLOAD);

    assert_int_equal(sf_qrec_decode(buf, 32, &r, &n), SF_QREC_SHORT);
    assert_int_equal(n, SF_QREC_MAX_SIZE);
}


static void
test_header_fields(void **state)
{
    size_t         n, i;
    sf_qrec_t      r;
    unsigned char  buf[64];

    (void) state;

    /* an empty buffer needs a header */

    assert_int_equal(sf_qrec_decode(golden, 0, &r, &n), SF_QREC_SHORT);
    assert_int_equal(n, SF_QREC_HEADER_SIZE);
    assert_int_equal(sf_qrec_decode(NULL, 10, &r, &n), SF_QREC_SHORT);
    assert_int_equal(sf_qrec_scan(golden, 0, NULL, NULL, &n), SF_QREC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sf_qrec_scan(NULL, 0, NULL, NULL, NULL), SF_QREC_OK);

    /* a prefix of the magic is short, anything else is bad */

    for (i = 1; i < 4; i++) {
        assert_int_equal(sf_qrec_decode(golden, i, &r, &n), SF_QREC_SHORT);
        assert_int_equal(n, SF_QREC_HEADER_SIZE);
    }

    memcpy(buf, golden, sizeof(golden));
    buf[1] = 'X';
    assert_int_equal(sf_qrec_decode(buf, 2, &r, &n), SF_QREC_BAD);
    assert_int_equal(n, 0);

    /* "SFQ2" */

    memcpy(buf, golden, sizeof(golden));
    buf[3] = '2';
    assert_int_equal(sf_qrec_decode(buf, sizeof(golden), &r, &n),
                     SF_QREC_BAD);

    /* type, checked as soon as it is there */

    memcpy(buf, golden, sizeof(golden));
    buf[4] = 0;
    assert_int_equal(sf_qrec_decode(buf, 6, &r, NULL), SF_QREC_BAD);
    buf[4] = 5;
    assert_int_equal(sf_qrec_decode(buf, 6, &r, NULL), SF_QREC_BAD);
    buf[4] = 1;
    buf[5] = 1;
    assert_int_equal(sf_qrec_decode(buf, 6, &r, NULL), SF_QREC_BAD);
    buf[5] = 0;
    assert_int_equal(sf_qrec_decode(buf, 6, &r, NULL), SF_QREC_SHORT);

    /* flags */

    memcpy(buf, golden, sizeof(golden));
    buf[7] = 0x80;
    assert_int_equal(sf_qrec_decode(buf, 8, &r, NULL), SF_QREC_BAD);
    assert_int_equal(sf_qrec_decode(buf, 7, &r, NULL), SF_QREC_SHORT);

    /* padding must be zero */

    memcpy(buf, golden, sizeof(golden));
    buf[39] = ' ';
    assert_int_equal(sf_qrec_decode(buf, sizeof(golden), &r, &n),
                     SF_QREC_BAD);

    /* a failed decode leaves nothing behind */

    memset(&r, 0x55, sizeof(r));
    assert_int_equal(sf_qrec_decode(buf, sizeof(golden), &r, &n),
                     SF_QREC_BAD);
    assert_int_equal(r.type, 0);
    assert_null(r.payload);
    assert_int_equal(r.len, 0);

    /* decode looks at one record only */

    memcpy(buf, golden, sizeof(golden));
    memset(buf + sizeof(golden), 0xff, sizeof(buf) - sizeof(golden));
    assert_int_equal(sf_qrec_decode(buf, sizeof(buf), &r, &n), SF_QREC_OK);
    assert_int_equal(n, sizeof(golden));
    assert_int_equal(sf_qrec_scan(buf, sizeof(buf), NULL, NULL, &n),
                     SF_QREC_BAD);
    assert_int_equal(n, sizeof(golden));
}


static void
test_scan_stop(void **state)
{
    size_t    end;
    seen_t    seen;
    three_t   t;
    int       k;

    (void) state;

    three_build(&t);

    for (k = 0; k < NRECS; k++) {
        seen_init(&seen);
        seen.stop_at = k;

        assert_int_equal(sf_qrec_scan(t.buf, t.len, collect, &seen, &end),
                         SF_QREC_STOPPED);
        assert_int_equal(end, t.start[k + 1]);
        check_seen(&t, t.buf, &seen, (unsigned) k + 1);

        /* resume where it stopped */

        seen_init(&seen);

        assert_int_equal(sf_qrec_scan(t.buf + end, t.len - end, collect,
                                      &seen, &end),
                         SF_QREC_OK);
        assert_int_equal(seen.count, NRECS - k - 1);
    }

    assert_int_equal(sf_qrec_scan(t.buf, t.len, NULL, NULL, &end),
                     SF_QREC_OK);
    assert_int_equal(end, t.len);

    assert_string_equal(sf_qrec_strerror(SF_QREC_OK), "ok");
    assert_string_equal(sf_qrec_strerror(SF_QREC_SHORT), "short");
    assert_string_equal(sf_qrec_strerror(SF_QREC_BAD), "bad");
    assert_string_equal(sf_qrec_strerror(SF_QREC_STOPPED), "stopped");
    assert_string_equal(sf_qrec_strerror((sf_qrec_rc_t) 42), "unknown");
}


static void
test_segment_names(void **state)
{
    char      name[SF_QREC_SEGMENT_NAME_LEN + 1], small[28];
    uint64_t  seq;
    size_t    i;
    static const char  *bad[] = {
        "journal-000000000000001A.sfq",
        "journal-000000000000001a.sfq.tmp",
        "journal-00000000000001a.sfq",
        "journal-0000000000000001a.sfq",
        "Journal-000000000000001a.sfq",
        "journal-000000000000001a.SFQ",
        "journal-000000000000001g.sfq",
        "journal- 00000000000001a.sfq",
        "journal-+00000000000001a.sfq",
        "",
        NULL
    };

    (void) state;

    assert_int_equal(sf_qrec_segment_name(0x1a, name, sizeof(name)), 0);
    assert_string_equal(name, "journal-000000000000001a.sfq");
    assert_int_equal(strlen(name), SF_QREC_SEGMENT_NAME_LEN);

    assert_int_equal(sf_qrec_segment_parse(name, strlen(name), &seq), 0);
    assert_true(seq == 0x1a);

    assert_int_equal(sf_qrec_segment_name(UINT64_MAX, name, sizeof(name)),
                     0);
    assert_string_equal(name, "journal-ffffffffffffffff.sfq");
    assert_int_equal(sf_qrec_segment_parse(name, strlen(name), &seq), 0);
    assert_true(seq == UINT64_MAX);

    assert_int_equal(sf_qrec_segment_name(0, name, sizeof(name)), 0);
    assert_string_equal(name, "journal-0000000000000000.sfq");
    assert_int_equal(sf_qrec_segment_parse(name, strlen(name), NULL), 0);

    assert_int_equal(sf_qrec_segment_name(1, small, sizeof(small)), -1);
    assert_int_equal(sf_qrec_segment_name(1, NULL, 100), -1);

    for (i = 0; bad[i] != NULL; i++) {
        assert_int_equal(sf_qrec_segment_parse(bad[i], strlen(bad[i]), &seq),
                         -1);
    }

    assert_int_equal(sf_qrec_segment_parse(NULL, 28, &seq), -1);

    /* the length is what counts, not a NUL */

    assert_int_equal(sf_qrec_segment_parse("journal-000000000000001a.sfqX",
                                           28, &seq),
                     0);
}


static json_t *
steps_new(void)
{
    json_t        *steps;
    json_error_t   err;

    steps = json_loads("[{\"do\":\"fetch\",\"url\":\"https://x/\\u00e9\"},"
                       "{\"do\":\"create\",\"n\":[1,2.5,null,true]}]",
                       0, &err);
    assert_non_null(steps);

    return steps;
}


static void
job_fill(sf_qjob_t *j, const char *kind, const char *storefront,
    const char *order_key)
{
    memset(j, 0, sizeof(sf_qjob_t));

    strcpy(j->kind, kind);
    strcpy(j->storefront, storefront);
    strcpy(j->order_key, order_key);
}


static sf_qjson_rc_t
job_decode_str(const char *text, sf_qjob_t *j)
{
    return sf_qjob_decode((const unsigned char *) text, strlen(text), j);
}


static void
test_job_round_trip(void **state)
{
    char        out[4096], again[4096];
    size_t      len, len2;
    sf_qjob_t   j, d;

    (void) state;

    /* UTF-8: Latin-1 range, CJK, an astral character (emoji) */

    job_fill(&j, "order.create", "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac",
             "PN-\xf0\x9f\x8e\x89-\"quoted\"\\/\n");
    j.steps = steps_new();

    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len), SF_QJSON_OK);
    assert_int_equal(sf_qjob_decode((unsigned char *) out, len, &d),
                     SF_QJSON_OK);

    assert_string_equal(d.kind, j.kind);
    assert_string_equal(d.storefront, j.storefront);
    assert_string_equal(d.order_key, j.order_key);
    assert_non_null(d.steps);
    assert_true(json_equal(d.steps, j.steps));

    assert_int_equal(sf_qjob_encode(&d, again, sizeof(again), &len2),
                     SF_QJSON_OK);
    assert_int_equal(len2, len);
    assert_memory_equal(again, out, len);

    json_decref(d.steps);

    /* the encoder did not take the caller's reference */

    assert_int_equal(j.steps->refcount, 1);
    json_decref(j.steps);
}


/* the format, byte for byte */

static void
test_job_exact_format(void **state)
{
    char        out[256];
    size_t      len;
    sf_qjob_t   j;
    json_t     *steps;
    static const char  want[] =
        "{\"kind\":\"postback.status\",\"storefront\":\"shop\","
        "\"order_key\":\"1042\",\"steps\":[{\"a\":1}]}";

    (void) state;

    steps = json_loads("[{\"a\":1}]", 0, NULL);
    assert_non_null(steps);

    job_fill(&j, "postback.status", "shop", "1042");
    j.steps = steps;

    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len), SF_QJSON_OK);
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(out, want, len);

    /* a buffer of exactly that size, one byte less, none */

    assert_int_equal(sf_qjob_encode(&j, out, len, &len), SF_QJSON_OK);
    assert_int_equal(sf_qjob_encode(&j, out, len - 1, &len),
                     SF_QJSON_TOO_LARGE);
    assert_int_equal(len, sizeof(want) - 1);
    assert_int_equal(sf_qjob_encode(&j, NULL, 0, &len), SF_QJSON_TOO_LARGE);
    assert_int_equal(len, sizeof(want) - 1);

    /* empty storefront and order key, no steps */

    json_decref(steps);
    steps = json_array();
    job_fill(&j, "k", "", "");
    j.steps = steps;

    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len), SF_QJSON_OK);
    assert_int_equal(len, strlen("{\"kind\":\"k\",\"storefront\":\"\","
                                 "\"order_key\":\"\",\"steps\":[]}"));

    json_decref(steps);
}


static void
test_job_decode_invalid(void **state)
{
    size_t      i;
    sf_qjob_t   j;
    static const char  *bad[] = {
        "",
        " ",
        "null",
        "[]",
        "\"x\"",
        "{}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\"}",
        "{\"storefront\":\"s\",\"order_key\":\"o\",\"steps\":[]}",
        "{\"kind\":\"a\",\"order_key\":\"o\",\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"steps\":[]}",
        "{\"kind\":null,\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":null,\"order_key\":\"o\","
            "\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":null}",
        "{\"kind\":1,\"storefront\":\"s\",\"order_key\":\"o\",\"steps\":[]}",
        "{\"kind\":\"\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[]}",
        "{\"kind\":\"a b\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[]}",
        "{\"kind\":\"caf\\u00e9\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":5,\"order_key\":\"o\",\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":[],"
            "\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":{}}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[1]}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[{},[]]}",
        "{\"kind\":\"a\",\"storefront\":\"s\\u0000\",\"order_key\":\"o\","
            "\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[],\"kind\":\"b\"}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[{\"x\":1,\"x\":2}]}",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[]} x",
        "{\"kind\":\"a\",\"storefront\":\"s\",\"order_key\":\"o\","
            "\"steps\":[]",
        "{\"kind\":\"a\",\"storefront\":\"\xff\",\"order_key\":\"o\","
            "\"steps\":[]}",
        "{\"kind\":\"a\",\"storefront\":\"\xed\xa0\x80\",\"order_key\":"
            "\"o\",\"steps\":[]}",
        NULL
    };

    (void) state;

    for (i = 0; bad[i] != NULL; i++) {
        memset(&j, 0x55, sizeof(j));

        if (job_decode_str(bad[i], &j) != SF_QJSON_INVALID) {
            fail_msg("accepted: %s", bad[i]);
        }

        assert_null(j.steps);
        assert_int_equal(j.kind[0], '\0');
    }

    assert_int_equal(sf_qjob_decode(NULL, 0, &j), SF_QJSON_INVALID);

    /* unknown keys are ignored, null optional-free fields are fine */

    assert_int_equal(job_decode_str("{\"v\":2,\"kind\":\"a-b_c.9Z\","
                                    "\"storefront\":\"\",\"order_key\":\"\","
                                    "\"steps\":[],\"future\":{\"x\":[1]}}",
                                    &j),
                     SF_QJSON_OK);
    assert_string_equal(j.kind, "a-b_c.9Z");
    assert_int_equal(json_array_size(j.steps), 0);
    json_decref(j.steps);

    /* NUL inside opaque step data is kept */

    assert_int_equal(job_decode_str("{\"kind\":\"a\",\"storefront\":\"s\","
                                    "\"order_key\":\"o\","
                                    "\"steps\":[{\"b\":\"x\\u0000y\"}]}",
                                    &j),
                     SF_QJSON_OK);
    assert_int_equal(json_string_length(json_object_get(
                         json_array_get(j.steps, 0), "b")), 3);
    json_decref(j.steps);
}


static char *
job_text(size_t kind_len, size_t storefront_len, size_t order_key_len,
    size_t nsteps, size_t depth)
{
    char    *p, *s;
    size_t   i;

    s = malloc(8192);
    assert_non_null(s);

    p = s;
    p += sprintf(p, "{\"kind\":\"");
    memset(p, 'k', kind_len);
    p += kind_len;
    p += sprintf(p, "\",\"storefront\":\"");

    /* two-byte characters where they fit, to count bytes not characters */

    for (i = 0; i + 2 <= storefront_len; i += 2) {
        p += sprintf(p, "\xc3\xa9");
    }

    if (i < storefront_len) {
        *p++ = 's';
    }

    p += sprintf(p, "\",\"order_key\":\"");
    memset(p, 'o', order_key_len);
    p += order_key_len;
    p += sprintf(p, "\",\"steps\":[");

    for (i = 0; i < nsteps; i++) {
        p += sprintf(p, "%s{}", i ? "," : "");
    }

    /* depth: the top object (1), steps (2), then nested objects */

    if (depth > 2) {
        if (nsteps > 0) {
            p += sprintf(p, ",");
        }

        for (i = 2; i < depth; i++) {
            p += sprintf(p, "{\"d\":");
        }

        p += sprintf(p, "1");

        for (i = 2; i < depth; i++) {
            *p++ = '}';
        }
    }

    p += sprintf(p, "]}");

    return s;
}


static void
check_job_text(char *text, sf_qjson_rc_t want)
{
    sf_qjob_t  j;

    assert_int_equal(job_decode_str(text, &j), want);

    if (want == SF_QJSON_OK) {
        json_decref(j.steps);
    }

    free(text);
}


static void
test_job_bounds(void **state)
{
    char        out[8192];
    size_t      len;
    sf_qjob_t   j;
    json_t     *deep, *inner, *steps;
    unsigned    i;

    (void) state;

    check_job_text(job_text(31, 1, 1, 0, 0), SF_QJSON_OK);
    check_job_text(job_text(32, 1, 1, 0, 0), SF_QJSON_INVALID);
    check_job_text(job_text(1, 127, 1, 0, 0), SF_QJSON_OK);
    check_job_text(job_text(1, 128, 1, 0, 0), SF_QJSON_INVALID);
    check_job_text(job_text(1, 126, 1, 0, 0), SF_QJSON_OK);
    check_job_text(job_text(1, 1, 255, 0, 0), SF_QJSON_OK);
    check_job_text(job_text(1, 1, 256, 0, 0), SF_QJSON_INVALID);
    check_job_text(job_text(1, 1, 1, 64, 0), SF_QJSON_OK);
    check_job_text(job_text(1, 1, 1, 65, 0), SF_QJSON_INVALID);
    check_job_text(job_text(1, 1, 1, 0, 16), SF_QJSON_OK);
    check_job_text(job_text(1, 1, 1, 0, 17), SF_QJSON_INVALID);
    check_job_text(job_text(1, 1, 1, 63, 16), SF_QJSON_OK);

    /* brackets inside strings do not count */

    assert_int_equal(job_decode_str("{\"kind\":\"a\",\"storefront\":"
                                    "\"[[[[[[[[[[[[[[[[[[[[\","
                                    "\"order_key\":\"{{{{{{{{{{{{{{{{{{{\\\"\","
                                    "\"steps\":[]}", &j),
                     SF_QJSON_OK);
    json_decref(j.steps);

    /* the encoder applies the same depth: 16 levels in all */

    job_fill(&j, "a", "s", "o");

    for (i = 16; i <= 17; i++) {
        deep = json_object();
        inner = deep;

        /* top (1), steps (2), step object (3), then nested objects */

        for (len = 3; len < i; len++) {
            json_t  *o = json_object();

            assert_int_equal(json_object_set_new(inner, "d", o), 0);
            inner = o;
        }

        steps = json_array();
        assert_int_equal(json_array_append_new(steps, deep), 0);
        j.steps = steps;

        assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                         i == 16 ? SF_QJSON_OK : SF_QJSON_INVALID);

        if (i == 16) {
            sf_qjob_t  d;

            assert_int_equal(sf_qjob_decode((unsigned char *) out, len, &d),
                             SF_QJSON_OK);
            json_decref(d.steps);
        }

        json_decref(steps);
    }

    /* too many steps, a step that is not an object, no steps */

    steps = json_array();

    for (i = 0; i < 65; i++) {
        assert_int_equal(json_array_append_new(steps, json_object()), 0);
    }

    j.steps = steps;
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);
    assert_int_equal(len, 0);

    assert_int_equal(json_array_remove(steps, 0), 0);
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_OK);

    assert_int_equal(json_array_set_new(steps, 3, json_integer(1)), 0);
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    json_decref(steps);

    j.steps = NULL;
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    j.steps = json_object();
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);
    json_decref(j.steps);
}


static void
test_job_encode_invalid(void **state)
{
    char        out[1024];
    size_t      len;
    sf_qjob_t   j;
    json_t     *steps;

    (void) state;

    steps = json_array();

    /* fields that are not NUL-terminated within their arrays */

    job_fill(&j, "a", "s", "o");
    j.steps = steps;
    memset(j.kind, 'k', sizeof(j.kind));
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    job_fill(&j, "a", "s", "o");
    j.steps = steps;
    memset(j.storefront, 's', sizeof(j.storefront));
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    job_fill(&j, "a", "s", "o");
    j.steps = steps;
    memset(j.order_key, 'o', sizeof(j.order_key));
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    /* bad kind, invalid UTF-8 */

    job_fill(&j, "", "s", "o");
    j.steps = steps;
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    job_fill(&j, "a/b", "s", "o");
    j.steps = steps;
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    job_fill(&j, "a", "\xc3", "o");
    j.steps = steps;
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    job_fill(&j, "a", "s", "\xc0\xaf");
    j.steps = steps;
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    /* the longest fields fit */

    job_fill(&j, "a", "s", "o");
    j.steps = steps;
    memset(j.kind, 'k', sizeof(j.kind) - 1);
    memset(j.storefront, 's', sizeof(j.storefront) - 1);
    memset(j.order_key, 'o', sizeof(j.order_key) - 1);
    assert_int_equal(sf_qjob_encode(&j, out, sizeof(out), &len),
                     SF_QJSON_OK);

    assert_int_equal(sf_qjob_encode(NULL, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    json_decref(steps);

    assert_string_equal(sf_qjson_strerror(SF_QJSON_OK), "ok");
    assert_string_equal(sf_qjson_strerror(SF_QJSON_INVALID), "invalid");
    assert_string_equal(sf_qjson_strerror(SF_QJSON_TOO_LARGE), "too large");
    assert_string_equal(sf_qjson_strerror(SF_QJSON_ERROR), "error");
    assert_string_equal(sf_qjson_strerror((sf_qjson_rc_t) 9), "unknown");
}


/* a payload over SF_QREC_MAX_PAYLOAD is refused both ways */

static void
test_json_max_payload(void **state)
{
    char        *out, *big;
    size_t       len;
    json_t      *steps, *step;
    sf_qjob_t    j;

    (void) state;

    big = malloc(SF_QREC_MAX_PAYLOAD + 1);
    out = malloc(SF_QREC_MAX_PAYLOAD + 4096);
    assert_non_null(big);
    assert_non_null(out);

    memset(big, 'x', SF_QREC_MAX_PAYLOAD);
    big[SF_QREC_MAX_PAYLOAD] = '\0';

    step = json_object();
    assert_int_equal(json_object_set_new(step, "blob", json_string(big)), 0);
    steps = json_array();
    assert_int_equal(json_array_append_new(steps, step), 0);

    job_fill(&j, "a", "s", "o");
    j.steps = steps;

    assert_int_equal(sf_qjob_encode(&j, out, SF_QREC_MAX_PAYLOAD + 4096,
                                    &len),
                     SF_QJSON_TOO_LARGE);
    assert_true(len > SF_QREC_MAX_PAYLOAD);

    /* exactly SF_QREC_MAX_PAYLOAD bytes is fine */

    big[SF_QREC_MAX_PAYLOAD - (len - SF_QREC_MAX_PAYLOAD)] = '\0';
    assert_int_equal(json_object_set_new(step, "blob", json_string(big)), 0);

    assert_int_equal(sf_qjob_encode(&j, out, SF_QREC_MAX_PAYLOAD + 4096,
                                    &len),
                     SF_QJSON_OK);
    assert_int_equal(len, SF_QREC_MAX_PAYLOAD);

    json_decref(steps);

    assert_int_equal(sf_qjob_decode((unsigned char *) out, len, &j),
                     SF_QJSON_OK);
    json_decref(j.steps);

    /* one more byte of whitespace: refused before parsing */

    out[len] = ' ';
    assert_int_equal(sf_qjob_decode((unsigned char *) out, len + 1, &j),
                     SF_QJSON_INVALID);

    free(big);
    free(out);
}


static sf_qjson_rc_t
state_decode_str(const char *text, sf_qstate_t *s)
{
    return sf_qstate_decode((const unsigned char *) text, strlen(text), s);
}


static void
test_state_round_trip(void **state)
{
    int           st;
    char          out[4096], again[4096];
    size_t        len, len2;
    sf_qstate_t   s, d;
    static const char  err[] = "HTTP 503: \xe2\x80\x9c" "busy"
                               "\xe2\x80\x9d \xf0\x9f\x98\xb4\n\t\"x\"";

    (void) state;

    for (st = SF_QSTATE_PENDING; st <= SF_QSTATE_SKIPPED; st++) {
        memset(&s, 0, sizeof(s));

        s.state = st;
        s.attempts = (st == SF_QSTATE_FAILED) ? UINT_MAX : (unsigned) st;
        s.step = (st == SF_QSTATE_DONE) ? SF_QJOB_MAX_STEPS : 1;
        s.started = (st == SF_QSTATE_RETRYING);
        s.next_attempt_ms = (st == SF_QSTATE_SKIPPED)
                            ? (uint64_t) INT64_MAX : 1700000000123ULL;

        if (st != SF_QSTATE_PENDING) {
            sf_qstate_set_error(&s, err, strlen(err));
        }

        if (st == SF_QSTATE_DONE || st == SF_QSTATE_RETRYING) {
            s.results = json_loads("[{\"id\":\"sf-1\"},null,\"\\u00fc\"]",
                                   0, NULL);
            assert_non_null(s.results);
        }

        assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                         SF_QJSON_OK);
        assert_int_equal(sf_qstate_decode((unsigned char *) out, len, &d),
                         SF_QJSON_OK);

        assert_int_equal(d.state, s.state);
        assert_int_equal(d.attempts, s.attempts);
        assert_int_equal(d.step, s.step);
        assert_int_equal(d.started, s.started);
        assert_true(d.next_attempt_ms == s.next_attempt_ms);
        assert_string_equal(d.last_error, s.last_error);

        if (s.results != NULL) {
            assert_non_null(d.results);
            assert_true(json_equal(d.results, s.results));

        } else {
            assert_null(d.results);
        }

        assert_int_equal(sf_qstate_encode(&d, again, sizeof(again), &len2),
                         SF_QJSON_OK);
        assert_int_equal(len2, len);
        assert_memory_equal(again, out, len);

        json_decref(s.results);
        json_decref(d.results);
    }
}


static void
test_state_exact_format(void **state)
{
    char          out[1024];
    size_t        len;
    sf_qstate_t   s, d;
    static const char  minimal[] =
        "{\"state\":\"pending\",\"attempts\":0,\"step\":0,"
        "\"next_attempt_ms\":0}";
    static const char  full[] =
        "{\"state\":\"retrying\",\"attempts\":2,\"step\":1,"
        "\"next_attempt_ms\":1700000000000,\"last_error\":\"HTTP 503\","
        "\"started\":true,\"results\":[{\"a\":1}]}";

    (void) state;

    memset(&s, 0, sizeof(s));

    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_OK);
    assert_int_equal(len, sizeof(minimal) - 1);
    assert_memory_equal(out, minimal, len);

    s.state = SF_QSTATE_RETRYING;
    s.attempts = 2;
    s.step = 1;
    s.next_attempt_ms = 1700000000000ULL;
    s.started = 1;
    strcpy(s.last_error, "HTTP 503");
    s.results = json_loads("[{\"a\":1}]", 0, NULL);

    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_OK);
    assert_int_equal(len, sizeof(full) - 1);
    assert_memory_equal(out, full, len);

    assert_int_equal(sf_qstate_encode(&s, out, len - 1, &len),
                     SF_QJSON_TOO_LARGE);
    assert_int_equal(len, sizeof(full) - 1);

    json_decref(s.results);

    /* optional keys: absent, null, false */

    assert_int_equal(state_decode_str("{\"state\":\"done\",\"attempts\":1,"
                                      "\"step\":2,\"next_attempt_ms\":5,"
                                      "\"last_error\":null,\"started\":false,"
                                      "\"results\":null,\"new\":[]}", &d),
                     SF_QJSON_OK);
    assert_int_equal(d.state, SF_QSTATE_DONE);
    assert_int_equal(d.started, 0);
    assert_null(d.results);
    assert_string_equal(d.last_error, "");
}


static void
test_state_decode_invalid(void **state)
{
    size_t        i;
    sf_qstate_t   s;
    char         *text;
    static const char  *bad[] = {
        "{}",
        "[]",
        "{\"attempts\":0,\"step\":0,\"next_attempt_ms\":0}",
        "{\"state\":\"Pending\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"running\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"done \",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"done\\u0000\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":2,\"attempts\":0,\"step\":0,\"next_attempt_ms\":0}",
        "{\"state\":null,\"attempts\":0,\"step\":0,\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"step\":0,\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"attempts\":0,\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0}",
        "{\"state\":\"done\",\"attempts\":-1,\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"attempts\":1.0,\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"attempts\":\"1\",\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"attempts\":4294967296,\"step\":0,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":65,"
            "\"next_attempt_ms\":0}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":-5}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":9223372036854775808}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":1e3}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0,\"last_error\":5}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0,\"last_error\":\"a\\u0000b\"}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0,\"started\":1}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0,\"started\":\"true\"}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0,\"results\":{}}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0,\"results\":\"x\"}",
        "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
            "\"next_attempt_ms\":0,\"state\":\"failed\"}",
        NULL
    };

    (void) state;

    for (i = 0; bad[i] != NULL; i++) {
        memset(&s, 0x55, sizeof(s));

        if (state_decode_str(bad[i], &s) != SF_QJSON_INVALID) {
            fail_msg("accepted: %s", bad[i]);
        }

        assert_null(s.results);
        assert_int_equal(s.state, 0);
        assert_int_equal(s.last_error[0], '\0');
    }

    /* last_error: 511 bytes fit, 512 do not */

    text = malloc(1024);
    assert_non_null(text);

    for (i = 511; i <= 512; i++) {
        sprintf(text, "{\"state\":\"failed\",\"attempts\":3,\"step\":0,"
                "\"next_attempt_ms\":0,\"last_error\":\"%0*d\"}", (int) i, 0);

        assert_int_equal(state_decode_str(text, &s),
                         i == 511 ? SF_QJSON_OK : SF_QJSON_INVALID);
    }

    /* results: 64 entries fit, 65 do not */

    strcpy(text, "{\"state\":\"done\",\"attempts\":0,\"step\":0,"
           "\"next_attempt_ms\":0,\"results\":[0");

    for (i = 1; i < 64; i++) {
        strcat(text, ",0");
    }

    strcat(text, "]}");
    assert_int_equal(state_decode_str(text, &s), SF_QJSON_OK);
    json_decref(s.results);

    text[strlen(text) - 2] = '\0';
    strcat(text, ",0]}");
    assert_int_equal(state_decode_str(text, &s), SF_QJSON_INVALID);

    free(text);
}


static void
test_state_encode_invalid(void **state)
{
    char          out[2048];
    size_t        len;
    unsigned      i;
    sf_qstate_t   s, d;

    (void) state;

    memset(&s, 0, sizeof(s));

    s.state = -1;
    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_INVALID);
    s.state = 5;
    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    s.state = SF_QSTATE_DONE;
    s.step = SF_QJOB_MAX_STEPS + 1;
    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    s.step = 0;
    s.next_attempt_ms = (uint64_t) INT64_MAX + 1;
    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    s.next_attempt_ms = 0;
    s.results = json_object();
    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_INVALID);
    json_decref(s.results);

    s.results = json_array();

    for (i = 0; i < 65; i++) {
        assert_int_equal(json_array_append_new(s.results, json_null()), 0);
    }

    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_INVALID);
    json_decref(s.results);
    s.results = NULL;

    assert_int_equal(sf_qstate_encode(NULL, out, sizeof(out), &len),
                     SF_QJSON_INVALID);

    /*
     * a last_error that never went through sf_qstate_set_error(): not
     * terminated, invalid UTF-8; written sanitized rather than refused
     */

    memset(s.last_error, 'e', sizeof(s.last_error));
    s.last_error[10] = (char) 0xff;
    s.last_error[11] = (char) 0xc3;

    assert_int_equal(sf_qstate_encode(&s, out, sizeof(out), &len),
                     SF_QJSON_OK);
    assert_int_equal(sf_qstate_decode((unsigned char *) out, len, &d),
                     SF_QJSON_OK);
    assert_int_equal(strlen(d.last_error), SF_QSTATE_ERROR_LEN - 1);
    assert_memory_equal(d.last_error, "eeeeeeeeee??eee", 15);
    assert_string_equal(d.last_error + SF_QSTATE_ERROR_LEN - 4, "...");
}


static void
test_state_set_error(void **state)
{
    char          msg[2048];
    size_t        i, len;
    sf_qstate_t   s;
    static const char  mixed[] = "a\0b\xff" "c\xc3(\xe2\x82" "d\xed\xa0\x80"
                                 "e\xf4\x90\x80\x80" "f\xc0\xaf";

    (void) state;

    memset(&s, 0x55, sizeof(s));

    sf_qstate_set_error(&s, NULL, 0);
    assert_string_equal(s.last_error, "");

    sf_qstate_set_error(&s, "timeout", 7);
    assert_string_equal(s.last_error, "timeout");

    /* only len bytes are read */

    sf_qstate_set_error(&s, "timeout", 4);
    assert_string_equal(s.last_error, "time");

    /* NUL and invalid UTF-8 become '?' */

    sf_qstate_set_error(&s, mixed, sizeof(mixed) - 1);
    assert_string_equal(s.last_error, "a?b?c?(??d???e????f??");

    /* exactly 511 bytes: kept whole */

    memset(msg, 'x', sizeof(msg));
    sf_qstate_set_error(&s, msg, 511);
    assert_int_equal(strlen(s.last_error), 511);
    assert_int_equal(s.last_error[510], 'x');

    /* 512: cut, "..." at the end, 511 bytes in all */

    sf_qstate_set_error(&s, msg, 512);
    assert_int_equal(strlen(s.last_error), 511);
    assert_string_equal(s.last_error + 508, "...");
    assert_int_equal(s.last_error[507], 'x');

    /*
     * multi-byte characters are never split: for each alignment of a
     * 2-, 3- and 4-byte character around the cut, the result is valid
     * UTF-8 and ends with "..."
     */

    for (len = 2; len <= 4; len++) {
        for (i = 0; i < 8; i++) {
            size_t   n, out;
            json_t  *j;

            memset(msg, 'x', i);
            n = i;

            while (n + len < sizeof(msg)) {
                static const char  *chars[] = {
                    NULL, NULL, "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x8e\x89"
                };

                memcpy(msg + n, chars[len], len);
                n += len;
            }

            sf_qstate_set_error(&s, msg, n);

            out = strlen(s.last_error);
            assert_true(out <= 511);
            assert_true(out >= 511 - len - 3);
            assert_string_equal(s.last_error + out - 3, "...");
            assert_int_equal((out - 3 - i) % len, 0);
            assert_memory_equal(s.last_error, msg, out - 3);

            /* jansson agrees it is valid UTF-8 */

            j = json_string(s.last_error);
            assert_non_null(j);
            json_decref(j);
        }
    }
}


static void
test_state_names(void **state)
{
    int  st;
    static const char  *names[] = {
        "pending", "retrying", "done", "failed", "skipped"
    };

    (void) state;

    assert_int_equal(SF_QSTATE_PENDING, 0);

    for (st = SF_QSTATE_PENDING; st <= SF_QSTATE_SKIPPED; st++) {
        assert_string_equal(sf_qstate_name(st), names[st]);
        assert_int_equal(sf_qstate_parse(names[st], strlen(names[st])), st);
    }

    assert_string_equal(sf_qstate_name(-1), "unknown");
    assert_string_equal(sf_qstate_name(5), "unknown");
    assert_string_equal(sf_qstate_name(INT_MAX), "unknown");

    assert_int_equal(sf_qstate_parse("done", 3), -1);
    assert_int_equal(sf_qstate_parse("doneX", 5), -1);
    assert_int_equal(sf_qstate_parse("DONE", 4), -1);
    assert_int_equal(sf_qstate_parse("", 0), -1);
    assert_int_equal(sf_qstate_parse(NULL, 4), -1);
    assert_int_equal(sf_qstate_parse("failed!", 6), SF_QSTATE_FAILED);
}


/* a whole spool segment: job + states + forget, scanned and decoded */

typedef struct {
    unsigned   jobs;
    unsigned   states;
    unsigned   forgets;
    int        last_state;
} apply_t;


static int
apply(const sf_qrec_t *r, void *data)
{
    apply_t      *a;
    sf_qjob_t     j;
    sf_qstate_t   s;

    a = data;

    switch (r->type) {

    case SF_QREC_JOB:
        assert_int_equal(sf_qjob_decode(r->payload, r->len, &j),
                         SF_QJSON_OK);
        assert_string_equal(j.kind, "order.create");
        json_decref(j.steps);
        a->jobs++;
        break;

    case SF_QREC_STATE:
        assert_int_equal(sf_qstate_decode(r->payload, r->len, &s),
                         SF_QJSON_OK);
        a->last_state = s.state;
        json_decref(s.results);
        a->states++;
        break;

    default:
        assert_int_equal(r->len, 0);
        a->forgets++;
        break;
    }

    return 0;
}


static void
test_segment_end_to_end(void **state)
{
    size_t          off, len, end;
    apply_t         a;
    sf_qjob_t       j;
    sf_qrec_t       r;
    sf_qstate_t     s;
    unsigned char   seg[4096];

    (void) state;

    off = 0;

    job_fill(&j, "order.create", "shop", "1042");
    j.steps = steps_new();

    /* built in place: JSON at seg + off + header, then the record */

    assert_int_equal(sf_qjob_encode(&j, (char *) seg + off
                                        + SF_QREC_HEADER_SIZE,
                                    sizeof(seg) - off - SF_QREC_HEADER_SIZE,
                                    &len),
                     SF_QJSON_OK);
    json_decref(j.steps);

    r.type = SF_QREC_JOB;
    r.job_id = 1;
    r.time_ms = 1000;
    r.payload = seg + off + SF_QREC_HEADER_SIZE;
    r.len = len;
    off += sf_qrec_encode(&r, seg + off, sizeof(seg) - off);

    memset(&s, 0, sizeof(s));
    s.state = SF_QSTATE_RETRYING;
    s.attempts = 1;
    sf_qstate_set_error(&s, "HTTP 503", 8);

    assert_int_equal(sf_qstate_encode(&s, (char *) seg + off
                                          + SF_QREC_HEADER_SIZE,
                                      sizeof(seg) - off
                                      - SF_QREC_HEADER_SIZE, &len),
                     SF_QJSON_OK);

    r.type = SF_QREC_STATE;
    r.time_ms = 2000;
    r.payload = seg + off + SF_QREC_HEADER_SIZE;
    r.len = len;
    off += sf_qrec_encode(&r, seg + off, sizeof(seg) - off);

    s.state = SF_QSTATE_DONE;
    s.step = 2;

    assert_int_equal(sf_qstate_encode(&s, (char *) seg + off
                                          + SF_QREC_HEADER_SIZE,
                                      sizeof(seg) - off
                                      - SF_QREC_HEADER_SIZE, &len),
                     SF_QJSON_OK);

    r.time_ms = 3000;
    r.payload = seg + off + SF_QREC_HEADER_SIZE;
    r.len = len;
    off += sf_qrec_encode(&r, seg + off, sizeof(seg) - off);

    r.type = SF_QREC_FORGET;
    r.payload = NULL;
    r.len = 0;
    off += sf_qrec_encode(&r, seg + off, sizeof(seg) - off);

    memset(&a, 0, sizeof(a));

    assert_int_equal(sf_qrec_scan(seg, off, apply, &a, &end), SF_QREC_OK);
    assert_int_equal(end, off);
    assert_int_equal(a.jobs, 1);
    assert_int_equal(a.states, 2);
    assert_int_equal(a.forgets, 1);
    assert_int_equal(a.last_state, SF_QSTATE_DONE);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_crc_vectors),
        cmocka_unit_test(test_crc_reference),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_encode_in_place),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_bit_flip),
        cmocka_unit_test(test_zero_tail),
        cmocka_unit_test(test_oversized_length),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_scan_stop),
        cmocka_unit_test(test_resync_every_flipped_byte),
        cmocka_unit_test(test_resync_shapes),
        cmocka_unit_test(test_segment_names),
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_job_exact_format),
        cmocka_unit_test(test_job_decode_invalid),
        cmocka_unit_test(test_job_bounds),
        cmocka_unit_test(test_job_encode_invalid),
        cmocka_unit_test(test_json_max_payload),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_exact_format),
        cmocka_unit_test(test_state_decode_invalid),
        cmocka_unit_test(test_state_encode_invalid),
        cmocka_unit_test(test_state_set_error),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_segment_end_to_end),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
