
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_QREC_H_INCLUDED_
#define _SF_QREC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <jansson.h>


/*
 * The durable job spool: record codec, recovery scan and the record
 * payloads the module writes (sf_qpay_*).
 * Pure C: libc and jansson only, never nginx headers; caller-provided
 * buffers, no global state (the CRC tables are constant), safe to call
 * from any thread.
 *
 * The spool is a directory of append-only journal segments named
 * "journal-<16 lowercase hex digits>.sfq" (the segment number).  A
 * segment is a sequence of records, nothing else (no segment header).
 * A record, all integers little-endian, 8-byte aligned:
 *
 *    offset  size  field
 *      0      4    magic    "SFQ1" (0x31514653); its last byte is the
 *                           format version (SF_QREC_VERSION, '1')
 *      4      2    type     SF_QREC_JOB, SF_QREC_STATE, SF_QREC_FORGET or
 *                           SF_QREC_INDEX
 *      6      2    flags    0
 *      8      4    length   payload bytes, at most SF_QREC_MAX_PAYLOAD
 *     12      4    crc      CRC-32C of bytes 0..11, 16..31 and the payload
 *     16      8    job_id
 *     24      8    time_ms  wall clock (ms since the epoch) when written
 *     32    length payload  JSON text, sf_qpay_encode() (below)
 *      .     0..7  padding  zero bytes up to a multiple of 8
 *
 * The padding is not covered by the CRC, so decoding requires it to be
 * zero: a record decodes only if every one of its bytes is as encoded,
 * and sf_qrec_encode() of a decoded record gives back the same bytes.
 *
 * Recovery (what the glue does with sf_qrec_scan()):
 *
 *   - the newest snapshot, then every later segment is scanned in
 *     segment number order; a STATE or INDEX record applies when its
 *     per-job (per-entry) version is not older than what is known, so
 *     the order of records across files does not matter (FORGET is not
 *     written: compaction leaves finished jobs out of the snapshot);
 *   - in the LAST segment, SHORT or BAD both mean "the write of a batch
 *     was cut by a crash": what follows good_end is ignored, with a
 *     warning, and never appended to (a new segment is started; nothing
 *     after it was acknowledged, since a batch is acknowledged only after
 *     its fdatasync, which makes every earlier byte durable too).  SHORT
 *     is the common shape of a torn tail; BAD is what it looks like on
 *     file systems that extend the size before the data lands (the torn
 *     record reads as zeros or stale bytes) and also what real corruption
 *     looks like, so log BAD louder than SHORT;
 *   - in any EARLIER segment, anything but SF_QREC_OK is corruption of
 *     data that was acknowledged: the glue keeps what precedes good_end
 *     and reports it (those segments are complete and were fsynced).
 *
 * A zero magic word (four zero bytes where a record should start, or
 * fewer than four bytes, all zero, at the end of the buffer) is the end of
 * the written data, as in a preallocated or zero-extended file: SHORT.
 *
 * Without a header checksum a flipped bit in the length field cannot be
 * told from a torn tail when the damaged length points past the end of
 * the buffer: that is SHORT.  Every other single flipped bit anywhere in
 * a record (magic, type, flags, length, crc, ids, payload, padding) is
 * BAD at that record.
 */


#define SF_QREC_MAGIC          0x31514653        /* "SFQ1" little-endian */
#define SF_QREC_VERSION        '1'               /* magic's last byte */
#define SF_QREC_HEADER_SIZE    32
#define SF_QREC_ALIGN          8
#define SF_QREC_MAX_PAYLOAD    (1024 * 1024)
#define SF_QREC_MAX_SIZE       (SF_QREC_HEADER_SIZE + SF_QREC_MAX_PAYLOAD)

#define SF_QREC_JOB            1     /* a new job */
#define SF_QREC_STATE          2     /* a job's state */
#define SF_QREC_FORGET         3     /* reserved, never written */
#define SF_QREC_INDEX          4     /* a sent-orders index entry */

/* "journal-" + 16 hex digits + ".sfq", without the NUL */
#define SF_QREC_SEGMENT_NAME_LEN  28


typedef struct {
    uint16_t              type;
    uint64_t              job_id;
    uint64_t              time_ms;
    const unsigned char  *payload;
    size_t                len;
} sf_qrec_t;


typedef enum {
    SF_QREC_OK = 0,
    SF_QREC_SHORT,       /* the buffer ends inside the record, or a zero
                            magic marks the end of the data */
    SF_QREC_BAD,         /* magic, type, flags, length, crc or padding
                            wrong */
    SF_QREC_STOPPED      /* sf_qrec_scan(): the callback asked to stop */
} sf_qrec_rc_t;


/* non-zero stops the scan */
typedef int (*sf_qrec_scan_pt)(const sf_qrec_t *r, void *data);


/*
 * Encoded size of a record with payload_len payload bytes, padding
 * included: SF_QREC_HEADER_SIZE + payload_len rounded up to a multiple
 * of 8.  0 if payload_len > SF_QREC_MAX_PAYLOAD.
 */
size_t sf_qrec_size(size_t payload_len);

/*
 * Writes the record r to out and returns its size, sf_qrec_size(r->len);
 * 0 (nothing written) if r->type is not one of the three types,
 * r->len > SF_QREC_MAX_PAYLOAD, r->payload is NULL with r->len > 0, or
 * out_size is too small.  The payload may already sit at
 * out + SF_QREC_HEADER_SIZE (build the JSON in place, then encode): it
 * is moved, not copied, so any overlap is fine.
 */
size_t sf_qrec_encode(const sf_qrec_t *r, unsigned char *out,
    size_t out_size);

/*
 * Decodes the record at the start of buf[0 .. len - 1].  Checks, in this
 * order, each as soon as its bytes are present:
 *
 *   len is 0 (or buf NULL)                             SHORT
 *   the available bytes of the magic are all zero      SHORT, *consumed 0
 *   magic (or the part of it present) differs          BAD
 *   type not 1..4, flags not 0,
 *   length > SF_QREC_MAX_PAYLOAD                       BAD
 *   the header or the record is cut                    SHORT
 *   crc differs, a padding byte is not zero            BAD
 *
 * OK: *r is filled (r->payload points into buf) and *consumed is the
 * record size.  SHORT: *consumed is what the record needs in all (its
 * size when the length field was present, else SF_QREC_HEADER_SIZE),
 * 0 for the zero magic; a streaming reader reads until it has that many
 * bytes.  BAD: *consumed is 0.  *r is zeroed unless OK.  consumed may be
 * NULL.
 */
sf_qrec_rc_t sf_qrec_decode(const unsigned char *buf, size_t len,
    sf_qrec_t *r, size_t *consumed);

/*
 * Decodes the records of buf[0 .. len - 1] in order and calls cb (if not
 * NULL) for each.  *good_end is the end of the last record decoded (and
 * passed to cb); it is always a multiple of 8 and at most len.
 *
 *   OK        the whole buffer is records (an empty buffer included)
 *   SHORT     decoding stopped at good_end with SHORT (see above)
 *   BAD       decoding stopped at good_end with BAD
 *   STOPPED   cb returned non-zero for the record that ends at good_end
 */
sf_qrec_rc_t sf_qrec_scan(const unsigned char *buf, size_t len,
    sf_qrec_scan_pt cb, void *data, size_t *good_end);

/*
 * Recovery that does not stop at the first damaged record.
 *
 * sf_qrec_resync() returns the first offset at or after from (rounded up
 * to a multiple of 8, the record alignment) where a whole valid record
 * starts (sf_qrec_decode() OK), or len if there is none.  A false match
 * inside a damaged record's payload is not possible for the module's
 * records: their payloads are JSON text, which has no NUL byte, and every
 * header has some (flags, the high byte of the type).
 *
 * sf_qrec_scan_resync() scans like sf_qrec_scan(), but on a record that
 * does not decode it looks for the next valid one (sf_qrec_resync()) and
 * goes on from there.  Each damaged stretch followed by a valid record is
 * a gap: corruption of data that was written and synced (a torn write
 * can only be the last thing in a file); gap (if not NULL) is called with
 * its offset and length, in file order.  What follows the last valid
 * record, if it does not decode, is the tail (a torn write in the last
 * segment; lost data in any other file).  st (if not NULL) gets the
 * totals.  Returns STOPPED if cb asked to stop, else OK, whatever was
 * skipped: the caller judges st.
 */

typedef struct {
    size_t                records;   /* valid records passed to cb */
    size_t                good_end;  /* end of the last valid record */
    size_t                gaps;      /* damaged stretches followed by a
                                        valid record */
    size_t                skipped;   /* their bytes in all */
    size_t                first_gap; /* offset of the first one */
    size_t                tail;      /* bytes after good_end that are not
                                        a record (torn or lost) */
    sf_qrec_rc_t          tail_rc;   /* OK (no tail), SHORT or BAD */
    uint64_t              max_job_id;    /* of every valid record */
} sf_qrec_stats_t;

typedef void (*sf_qrec_gap_pt)(size_t off, size_t len, void *data);

size_t sf_qrec_resync(const unsigned char *buf, size_t len, size_t from);
sf_qrec_rc_t sf_qrec_scan_resync(const unsigned char *buf, size_t len,
    sf_qrec_scan_pt cb, sf_qrec_gap_pt gap, void *data,
    sf_qrec_stats_t *st);

/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78): the SSE4.2
 * instruction where the CPU has it, else software slice-by-8 (also
 * callable as sf_qrec_crc32c_soft(), for the tests).  Start with crc 0
 * and feed the result back to continue:
 * sf_qrec_crc32c(sf_qrec_crc32c(0, a, n), b, m) is the CRC of a then b.
 * sf_qrec_crc32c(0, "123456789", 9) == 0xe3069283.
 */
uint32_t sf_qrec_crc32c(uint32_t crc, const unsigned char *p, size_t len);
uint32_t sf_qrec_crc32c_soft(uint32_t crc, const unsigned char *p,
    size_t len);

/* "ok", "short", "bad", "stopped"; never NULL */
const char *sf_qrec_strerror(sf_qrec_rc_t rc);

/*
 * Segment file names.  sf_qrec_segment_name() writes
 * "journal-%016llx.sfq" (lowercase) and a NUL; out_size must be at least
 * SF_QREC_SEGMENT_NAME_LEN + 1; 0 ok, -1 otherwise.
 * sf_qrec_segment_parse() accepts exactly that form (so temporary files,
 * uppercase digits and anything else are not segments); 0 ok and *seq
 * set, -1 otherwise.
 */
int sf_qrec_segment_name(uint64_t seq, char *out, size_t out_size);
int sf_qrec_segment_parse(const char *name, size_t len, uint64_t *seq);


/*
 * Record payloads: one compact JSON object with short keys, written in
 * this order (sf_qpay_encode(), directly: the same bytes jansson's
 * json_dumps() wrote; j and r are copied as they are when already in
 * jansson's compact form, so a key that is twice in them stays
 * twice).  Integers are JSON integers (64-bit);
 * strings are UTF-8 (jansson refuses anything else, so a string that is
 * not UTF-8 makes the record unwritable, never garbled).
 *
 *   JOB    k kind (1 order, 2 cancel, 3 update), s storefront, o PrintNow
 *          order id, c created (ms since the epoch), j the job object
 *   STATE  v version (per job, grows), st state (SF_QSTATE_*), a
 *          attempts, n next attempt (ms), ms a create may have been sent
 *          (0/1), e last error (only if not empty), r results object
 *          (only if any)
 *   INDEX  pb (0 the order half, 1 the postback half), v version, s
 *          storefront, p PrintNow order id; then for pb 1: rk rank of
 *          the last event, fp fingerprint of the last postback; for pb 0:
 *          src sourceOrderId, sf SiteFlow _id, st (0 queued, 1 sent, 2
 *          cancelled), u last PrintNow update (ms), t sent (ms).  The
 *          entry with s and p empty is the index's horizon: t the highest
 *          numeric order id forgotten, u 1 if another id was forgotten
 *
 * sf_qpay_decode() is lenient as the module always was: a member that is
 * missing or of another type leaves its field 0 (empty), unknown members
 * are ignored (a newer writer may add some); only a payload that is not
 * a JSON object fails.  j and r are given back as compact JSON text
 * (re-encoded); a JOB without an object or array j has job.data NULL.
 */

typedef struct {
    const char           *data;      /* not NUL-terminated */
    size_t                len;
} sf_qstr_t;

typedef struct {
    int                   type;      /* SF_QREC_JOB, _STATE or _INDEX */

    uint64_t              kind;      /* JOB */
    sf_qstr_t             storefront;    /* JOB, INDEX */
    sf_qstr_t             order_id;      /* JOB, INDEX */
    uint64_t              created_ms;
    sf_qstr_t             job;       /* JSON text */

    uint64_t              version;   /* STATE, INDEX */
    uint64_t              state;     /* STATE, INDEX */
    uint64_t              attempts;
    uint64_t              next_ms;
    uint64_t              maybe_sent;
    sf_qstr_t             error;
    sf_qstr_t             results;   /* JSON text; len 0: none */

    uint64_t              postback;  /* INDEX */
    int64_t               rank;
    uint64_t              fingerprint;
    sf_qstr_t             source_id;
    sf_qstr_t             siteflow_id;
    uint64_t              updated_ms;
    uint64_t              sent_ms;

    /* owned by a decoded payload: sf_qpay_free() */
    json_t               *root;
    char                 *job_text;
    char                 *results_text;
} sf_qpay_t;


/*
 * The payload of p as compact JSON (malloc()ed, free() it, *len its
 * length if len is not NULL), or NULL: an unknown type, job or results
 * text that is not JSON, a string that is not UTF-8, no memory.
 */
char *sf_qpay_encode(const sf_qpay_t *p, size_t *len);

/*
 * Reads buf[0 .. len - 1] as the payload of a record of the type: 0 and
 * *p filled (its strings point into what sf_qpay_free() releases), or -1
 * if it is not a JSON object (*p is zeroed but for type).
 */
int sf_qpay_decode(int type, const unsigned char *buf, size_t len,
    sf_qpay_t *p);

void sf_qpay_free(sf_qpay_t *p);


/* job states */
#define SF_QSTATE_PENDING       0
#define SF_QSTATE_RETRYING      1
#define SF_QSTATE_DONE          2
#define SF_QSTATE_FAILED        3      /* needs a person */
#define SF_QSTATE_SKIPPED       4      /* nothing to send; reason in
                                          last_error */


/* "pending", "retrying", "done", "failed", "skipped"; "unknown" for
   anything else, never NULL */
const char *sf_qstate_name(int state);

/* the SF_QSTATE_* of a name above (exact, case-sensitive), or -1 */
int sf_qstate_parse(const char *name, size_t len);


#endif /* _SF_QREC_H_INCLUDED_ */
