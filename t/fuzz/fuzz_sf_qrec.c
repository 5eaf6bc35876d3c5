
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
 * The bytes as JSON: sf_qjob_decode() and sf_qstate_decode(), directly,
 * wrapped as step / result values, and cut at NUL bytes into values of
 * the known keys (the first byte of each piece picks the key) so that
 * the fuzzer reaches the checks of every field without a dictionary.
 * A decoded payload must encode, decode again, and encode to the same
 * bytes; sf_qstate_set_error() of the bytes must be valid UTF-8 within
 * bounds; segment names must parse only in the form
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
static void fuzz_job(const unsigned char *data, size_t size);
static void fuzz_state(const unsigned char *data, size_t size);
static void fuzz_wrapped(const unsigned char *data, size_t size);
static void fuzz_keyed(const unsigned char *data, size_t size);
static void fuzz_error_text(const unsigned char *data, size_t size);
static void fuzz_segment_name(const unsigned char *data, size_t size);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_raw(data, size);
    fuzz_resync(data, size);
    fuzz_built(data, size);
    fuzz_job(data, size);
    fuzz_state(data, size);
    fuzz_wrapped(data, size);
    fuzz_keyed(data, size);
    fuzz_error_text(data, size);
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
fuzz_job(const unsigned char *data, size_t size)
{
    char           *out, *again;
    size_t          len, len2, out_size;
    sf_qjob_t       j, d;
    sf_qjson_rc_t   rc;

    rc = sf_qjob_decode(data, size, &j);

    if (rc != SF_QJSON_OK) {
        if (j.steps != NULL || j.kind[0] != '\0') {
            abort();
        }

        return;
    }

    if (j.steps == NULL || strlen(j.kind) == 0
        || strlen(j.kind) >= sizeof(j.kind))
    {
        abort();
    }

    /* re-encoded JSON may be longer than the input (numbers, escapes) */

    out_size = 4 * size + 1024;
    out = malloc(out_size);
    again = malloc(out_size);

    if (out == NULL || again == NULL) {
        goto done;
    }

    rc = sf_qjob_encode(&j, out, out_size, &len);

    if (rc == SF_QJSON_TOO_LARGE && len > SF_QREC_MAX_PAYLOAD) {
        goto done;
    }

    if (rc != SF_QJSON_OK) {
        abort();
    }

    if (sf_qjob_decode((unsigned char *) out, len, &d) != SF_QJSON_OK) {
        abort();
    }

    if (strcmp(d.kind, j.kind) != 0 || strcmp(d.storefront, j.storefront)
        || strcmp(d.order_key, j.order_key) != 0
        || !json_equal(d.steps, j.steps))
    {
        abort();
    }

    if (sf_qjob_encode(&d, again, out_size, &len2) != SF_QJSON_OK
        || len2 != len || memcmp(again, out, len) != 0)
    {
        abort();
    }

    json_decref(d.steps);

done:

    free(out);
    free(again);
    json_decref(j.steps);
}


static void
fuzz_state(const unsigned char *data, size_t size)
{
    char           *out, *again;
    size_t          len, len2, out_size;
    sf_qstate_t     s, d;
    sf_qjson_rc_t   rc;

    rc = sf_qstate_decode(data, size, &s);

    if (rc != SF_QJSON_OK) {
        if (s.results != NULL || s.last_error[0] != '\0') {
            abort();
        }

        return;
    }

    if (s.state < SF_QSTATE_PENDING || s.state > SF_QSTATE_SKIPPED
        || s.step > SF_QJOB_MAX_STEPS
        || strlen(s.last_error) >= sizeof(s.last_error)
        || strcmp(sf_qstate_name(s.state), "unknown") == 0)
    {
        abort();
    }

    out_size = 4 * size + 1024;
    out = malloc(out_size);
    again = malloc(out_size);

    if (out == NULL || again == NULL) {
        goto done;
    }

    rc = sf_qstate_encode(&s, out, out_size, &len);

    if (rc == SF_QJSON_TOO_LARGE && len > SF_QREC_MAX_PAYLOAD) {
        goto done;
    }

    if (rc != SF_QJSON_OK) {
        abort();
    }

    if (sf_qstate_decode((unsigned char *) out, len, &d) != SF_QJSON_OK) {
        abort();
    }

    if (d.state != s.state || d.attempts != s.attempts || d.step != s.step
        || d.started != s.started || d.next_attempt_ms != s.next_attempt_ms
        || strcmp(d.last_error, s.last_error) != 0
        || (s.results == NULL) != (d.results == NULL)
        || (s.results != NULL && !json_equal(d.results, s.results)))
    {
        abort();
    }

    if (sf_qstate_encode(&d, again, out_size, &len2) != SF_QJSON_OK
        || len2 != len || memcmp(again, out, len) != 0)
    {
        abort();
    }

    json_decref(d.results);

done:

    free(out);
    free(again);
    json_decref(s.results);
}


/* the bytes as a step and as results, inside valid outer objects */

static void
fuzz_wrapped(const unsigned char *data, size_t size)
{
    size_t          n;
    unsigned char  *buf;
    static const char  job_head[] =
        "{\"kind\":\"order.create\",\"storefront\":\"s\",\"order_key\":\"1\","
        "\"steps\":[";
    static const char  state_head[] =
        "{\"state\":\"retrying\",\"attempts\":1,\"step\":0,"
        "\"next_attempt_ms\":0,\"results\":[";

    buf = malloc(sizeof(job_head) + sizeof(state_head) + size + 2);
    if (buf == NULL) {
        return;
    }

    n = sizeof(job_head) - 1;
    memcpy(buf, job_head, n);
    memcpy(buf + n, data, size);
    memcpy(buf + n + size, "]}", 2);

    fuzz_job(buf, n + size + 2);

    n = sizeof(state_head) - 1;
    memcpy(buf, state_head, n);
    memcpy(buf + n, data, size);
    memcpy(buf + n + size, "]}", 2);

    fuzz_state(buf, n + size + 2);

    free(buf);
}


/*
 * "\x06" "123" "\0" "\x00" "\"done\"" gives the values of "step" and
 * "state"; each decoder gets them in an object completed with valid
 * values of its other required keys
 */

static void
fuzz_keyed(const unsigned char *data, size_t size)
{
    size_t                i, n, len, head;
    unsigned              used;
    unsigned char        *buf, *p;
    const unsigned char  *piece, *end, *nul;
    static const char    *keys[] = {
        "kind", "storefront", "order_key", "steps",
        "state", "attempts", "step", "next_attempt_ms",
        "last_error", "started", "results", "x"
    };
    static const char    *defaults[] = {
        "\"k\"", "\"\"", "\"\"", "[]",
        "\"done\"", "0", "0", "0"
    };

    n = sizeof(keys) / sizeof(keys[0]);

    /* a piece or a default adds at most a key, quotes, ':' and ',' */

    buf = malloc(2 + (size + 8) * (2 + 16 + 4) + 64);
    if (buf == NULL) {
        return;
    }

    p = buf;
    *p++ = '{';
    used = 0;

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
            used |= 1u << i;

            p += sprintf((char *) p, "\"%s\":", keys[i]);
            memcpy(p, piece + 1, len - 1);
            p += len - 1;
        }

        piece = nul + 1;
    }

    head = (size_t) (p - buf);

    /* keys 0..3 are the job's, 4..7 the state's */

    for (n = 0; n <= 4; n += 4) {
        p = buf + head;

        for (i = n; i < n + 4; i++) {
            if (!(used & (1u << i))) {
                p += sprintf((char *) p, "%s\"%s\":%s",
                             (p > buf + 1) ? "," : "", keys[i],
                             defaults[i]);
            }
        }

        *p++ = '}';

        if (n == 0) {
            fuzz_job(buf, (size_t) (p - buf));

        } else {
            fuzz_state(buf, (size_t) (p - buf));
        }
    }

    free(buf);
}


static void
fuzz_error_text(const unsigned char *data, size_t size)
{
    size_t        len;
    json_t       *j;
    sf_qstate_t   s;

    sf_qstate_set_error(&s, (const char *) data, size);

    len = strnlen(s.last_error, sizeof(s.last_error));

    if (len >= sizeof(s.last_error) || (size > 0 && len == 0)) {
        abort();
    }

    /* jansson's json_stringn() rejects invalid UTF-8 */

    j = json_stringn(s.last_error, len);
    if (j == NULL) {
        abort();
    }

    json_decref(j);

    /* short valid text is kept as is */

    if (size < sizeof(s.last_error) && memchr(data, '\0', size) == NULL) {
        j = json_stringn((const char *) data, size);

        if (j != NULL) {
            if (len != size || memcmp(s.last_error, data, size) != 0) {
                abort();
            }

            json_decref(j);
        }
    }
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
