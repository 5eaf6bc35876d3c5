
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_QREC_H_INCLUDED_
#define _SF_QREC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <jansson.h>


/*
 * The durable job spool: record codec, recovery scan and job payloads.
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
 *      0      4    magic    "SFQ1" (0x31514653)
 *      4      2    type     SF_QREC_JOB, SF_QREC_STATE, SF_QREC_FORGET or
 *                           SF_QREC_INDEX
 *      6      2    flags    0
 *      8      4    length   payload bytes, at most SF_QREC_MAX_PAYLOAD
 *     12      4    crc      CRC-32C of bytes 0..11, 16..31 and the payload
 *     16      8    job_id
 *     24      8    time_ms  wall clock (ms since the epoch) when written
 *     32    length payload  JSON text; the module writes its own short
 *                           keys (ngx_http_siteflow_queue.c: JOB
 *                           k/s/o/c/j, STATE v/st/a/n/ms/e/r, INDEX
 *                           pb/v/s/p/...); sf_qjob_encode() and
 *                           sf_qstate_encode() below are a richer,
 *                           validated form kept for other backends
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
#define SF_QREC_HEADER_SIZE    32
#define SF_QREC_ALIGN          8
#define SF_QREC_MAX_PAYLOAD    (1024 * 1024)
#define SF_QREC_MAX_SIZE       (SF_QREC_HEADER_SIZE + SF_QREC_MAX_PAYLOAD)

#define SF_QREC_JOB            1     /* a new job, payload sf_qjob_encode() */
#define SF_QREC_STATE          2     /* a job's state, sf_qstate_encode() */
#define SF_QREC_FORGET         3     /* job finished and compacted away */
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
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), software
 * slice-by-8.  Start with crc 0 and feed the result back to continue:
 * sf_qrec_crc32c(sf_qrec_crc32c(0, a, n), b, m) is the CRC of a then b.
 * sf_qrec_crc32c(0, "123456789", 9) == 0xe3069283.
 */
uint32_t sf_qrec_crc32c(uint32_t crc, const unsigned char *p, size_t len);

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
 * Job payloads: compact JSON built and parsed with jansson.
 *
 * SF_QREC_JOB payload (all four keys required):
 *
 *   {"kind":"order.create","storefront":"shop","order_key":"1042",
 *    "steps":[{...},{...}]}
 *
 *   kind        string, 1..31 bytes of [A-Za-z0-9._-]
 *   storefront  string, 0..127 bytes of UTF-8 without NUL
 *   order_key   string, 0..255 bytes of UTF-8 without NUL; jobs with the
 *               same (storefront, order_key) are delivered in order
 *   steps       array of 0..SF_QJOB_MAX_STEPS objects, opaque here
 *
 * SF_QREC_STATE payload:
 *
 *   {"state":"retrying","attempts":2,"step":1,
 *    "next_attempt_ms":1700000000000,"last_error":"HTTP 503",
 *    "started":true,"results":[...]}
 *
 *   state            required; "pending", "retrying", "done", "failed" or
 *                    "skipped" (exactly, lowercase)
 *   attempts         required; integer 0..UINT_MAX
 *   step             required; integer 0..SF_QJOB_MAX_STEPS (the index
 *                    of the step to perform next; the step count when
 *                    all are done)
 *   next_attempt_ms  required; integer 0..2^63-1
 *   last_error       optional, written only when not empty; string of
 *                    0..SF_QSTATE_ERROR_LEN - 1 bytes, UTF-8, no NUL
 *   started          optional, written only when true; boolean: the
 *                    request of "step" may have been sent when this
 *                    record was written (the glue writes it before a
 *                    non-idempotent request, so that recovery resolves
 *                    the step as ambiguous instead of sending it again)
 *   results          optional, written only when not NULL; an array of
 *                    0..SF_QJOB_MAX_STEPS values (any JSON), opaque here;
 *                    null reads as absent
 *
 * Both decoders: the payload is at most SF_QREC_MAX_PAYLOAD bytes, one
 * JSON object, no duplicate key anywhere, at most SF_QJOB_MAX_DEPTH
 * nested objects/arrays (the top object is level 1; checked on the raw
 * bytes before jansson builds anything); the listed keys must have the
 * listed types and bounds, a JSON null counts as absent; unknown keys
 * are ignored (a newer writer may add some; copy payload bytes, not
 * re-encoded structs, when compacting).  The encoders check the same
 * bounds, so whatever they write decodes.
 */

#define SF_QJOB_KIND_LEN        32      /* with the NUL */
#define SF_QJOB_STOREFRONT_LEN  128
#define SF_QJOB_ORDER_KEY_LEN   256
#define SF_QJOB_MAX_STEPS       64
#define SF_QJOB_MAX_DEPTH       16
#define SF_QSTATE_ERROR_LEN     512


typedef enum {
    SF_QJSON_OK = 0,
    SF_QJSON_INVALID,        /* a bound or a type is wrong, not JSON */
    SF_QJSON_TOO_LARGE,      /* encode: out_size or SF_QREC_MAX_PAYLOAD
                                exceeded, *len is the size needed */
    SF_QJSON_ERROR           /* jansson allocation failure */
} sf_qjson_rc_t;


/* job states; a zeroed sf_qstate_t is pending */
#define SF_QSTATE_PENDING       0
#define SF_QSTATE_RETRYING      1
#define SF_QSTATE_DONE          2
#define SF_QSTATE_FAILED        3      /* needs a person */
#define SF_QSTATE_SKIPPED       4      /* nothing to send; reason in
                                          last_error */


/* the durable description of a job */
typedef struct {
    char        kind[SF_QJOB_KIND_LEN];           /* "order.create" */
    char        storefront[SF_QJOB_STOREFRONT_LEN];
    char        order_key[SF_QJOB_ORDER_KEY_LEN];
    json_t     *steps;     /* array of step objects, caller owns */
} sf_qjob_t;


/* the state of a job */
typedef struct {
    int         state;                /* SF_QSTATE_* */
    unsigned    attempts;
    unsigned    step;                 /* index of the step to perform next */
    int         started;              /* request of "step" may be out */
    uint64_t    next_attempt_ms;
    char        last_error[SF_QSTATE_ERROR_LEN];  /* NUL-terminated */
    json_t     *results;   /* per-step results, caller owns; may be NULL */
} sf_qstate_t;


/*
 * Writes the compact JSON of j to out (not NUL-terminated) and its length
 * to *len.  INVALID if a string is not NUL-terminated within its array,
 * is out of bounds, or steps is not a valid steps array; TOO_LARGE (with
 * *len set to the size needed) if out_size or SF_QREC_MAX_PAYLOAD is too
 * small; *len is 0 for the other failures.
 */
sf_qjson_rc_t sf_qjob_encode(const sf_qjob_t *j, char *out, size_t out_size,
    size_t *len);

/*
 * Parses p[0 .. len - 1] into *j.  On OK, j->steps is a new reference
 * that the caller json_decref()s; on failure *j is zeroed (steps NULL).
 */
sf_qjson_rc_t sf_qjob_decode(const unsigned char *p, size_t len,
    sf_qjob_t *j);

/*
 * As sf_qjob_encode().  last_error is written as sf_qstate_set_error()
 * would store it (invalid UTF-8 replaced, so an odd error text never
 * makes a state unwritable); INVALID for an unknown state, a step above
 * SF_QJOB_MAX_STEPS, next_attempt_ms above 2^63-1, or results that is
 * not an array of at most SF_QJOB_MAX_STEPS values within the depth.
 */
sf_qjson_rc_t sf_qstate_encode(const sf_qstate_t *s, char *out,
    size_t out_size, size_t *len);

/* as sf_qjob_decode(); s->results is a new reference or NULL */
sf_qjson_rc_t sf_qstate_decode(const unsigned char *p, size_t len,
    sf_qstate_t *s);

/*
 * Stores msg[0 .. len - 1] in s->last_error, NUL-terminated: each byte
 * that does not start a well-formed UTF-8 character (RFC 3629: no
 * overlongs, surrogates or values above U+10FFFF) and each NUL becomes
 * '?'; if the result is longer than SF_QSTATE_ERROR_LEN - 1 bytes it is
 * cut at a character boundary and ends with "..." (at most
 * SF_QSTATE_ERROR_LEN - 1 bytes in all).  msg may be NULL if len is 0.
 */
void sf_qstate_set_error(sf_qstate_t *s, const char *msg, size_t len);

/* "pending", "retrying", "done", "failed", "skipped"; "unknown" for
   anything else, never NULL */
const char *sf_qstate_name(int state);

/* the SF_QSTATE_* of a name above (exact, case-sensitive), or -1 */
int sf_qstate_parse(const char *name, size_t len);

/* "ok", "invalid", "too large", "error"; never NULL */
const char *sf_qjson_strerror(sf_qjson_rc_t rc);


#endif /* _SF_QREC_H_INCLUDED_ */
