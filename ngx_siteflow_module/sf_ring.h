
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_RING_H_INCLUDED_
#define _SF_RING_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * The Site Flow Log: a ring of call records over a byte region (the
 * log part of siteflow_zone), shaped like ngx_http_lua_log_ringbuf.
 * Pure C, libc only, never nginx headers; no allocation, no global
 * state.  Every function is a memory operation on the region or on a
 * caller buffer, so the glue holds the zone mutex only around
 * sf_ring_append(), sf_ring_clear(), sf_ring_snapshot() and the
 * counters, and walks a snapshot with no lock held.
 *
 * The region holds offsets only, never pointers: it can be mapped at any
 * address, and a byte copy of it is the same ring.  Integers are in host
 * byte order (the region never leaves the host).  The region must be
 * 8-byte aligned (a slab allocation is); snapshots need not be.
 *
 * Region layout:
 *
 *    0                  ring header, SF_RING_HEADER_SIZE (128) bytes
 *    128                data area, SF_RING_DATA_SIZE(size) bytes: records
 *                       and at most one padding block
 *
 * Ring header (struct sf_ring_s, all fields u64 except the first two):
 *
 *    offset  size  field
 *      0      4    magic        "SFRG" (0x47524653 read as u32)
 *      4      4    version      SF_RING_VERSION
 *      8      8    size         bytes of the region as formatted
 *     16      8    data_size    bytes of the data area, a multiple of 8
 *     24      8    head         offset of the oldest record or padding
 *     32      8    tail         offset where the next record goes
 *     40      8    used         bytes of records and padding in the ring
 *     48      8    records      records in the ring, deleted ones too
 *     56      8    deleted      of those, the ones marked deleted
 *     64      8    next_id      id of the next record (ids start at 1)
 *     72      8    overwritten  records dropped to make room (not
 *                               counting ones already deleted)
 *     80     48    reserved     zero
 *
 * The used bytes start at head and run forward, wrapping from the end
 * of the data area to offset 0, up to tail.  A record (all offsets from
 * its start, the whole record a multiple of 8 bytes):
 *
 *    offset  size  field
 *      0      4    magic        "SFL1" (0x314c4653 read as u32)
 *      4      4    size         bytes of the whole record
 *      8      8    id
 *     16      8    time_ms      ms since the epoch, from the caller
 *     24      4    duration_ms
 *     28      2    status       HTTP status (0: no response)
 *     30      2    flags        SF_RING_DELETED, SF_RING_TRUNCATED ...
 *     32      1    direction    SF_RING_IN or SF_RING_OUT
 *     33      7    reserved     zero
 *     40     24    lengths      six u32: storefront, method, url,
 *                               order_id, request, response
 *     64      n    the six strings, in that order, not NUL-terminated
 *      .   0..7    zero bytes
 *   size-4    4    size again   (the trailer: the walk goes backwards)
 *
 * so SF_RING_RECORD_SIZE(n) = 64 + n + 4 rounded up to a multiple of 8,
 * where n is the sum of the six string lengths: 72 bytes of overhead
 * for an entry with no strings, 68 to 75 in general.  A record never
 * wraps: when it does not fit between tail and the end of the data
 * area, the rest of the area becomes a padding block ("SFLP", its size
 * at offset 4 and in its last 4 bytes; an 8-byte block has one size
 * field that is both) and the record goes at offset 0.  Making room
 * drops the oldest records (and the padding) until the record fits.
 *
 * Sizing (records per MiB of data area, typical string totals):
 *
 *    strings  record   per MiB     e.g.
 *      200      272     3855       url 120, no bodies (GET)
 *      700      768     1365       url 120, 300 + 250 byte bodies
 *     2200     2272      461       url 120, 1.5 KiB + 500 byte bodies
 *     8300     8368      125       url 120, 8 KiB request body
 *
 * Bounds: storefront and order_id at most 256 bytes, method 16, url
 * 2048 (SF_RING_MAX_*); a record at most SF_RING_MAX_RECORD(data_size),
 * a quarter of the data area.  Longer fields are cut, response body
 * first, then request body, url, order_id, storefront and method, each
 * cut moved back to a UTF-8 character boundary (never into the middle
 * of a character; the bytes are not validated otherwise), and the
 * record gets SF_RING_TRUNCATED and the field's SF_RING_TRUNC_* flag.
 */


#define SF_RING_MAGIC            0x47524653      /* "SFRG" */
#define SF_RING_VERSION          1
#define SF_RING_REC_MAGIC        0x314c4653      /* "SFL1" */
#define SF_RING_PAD_MAGIC        0x504c4653      /* "SFLP" */

#define SF_RING_HEADER_SIZE      128
#define SF_RING_REC_HEADER_SIZE  64
#define SF_RING_TRAILER_SIZE     4
#define SF_RING_MIN_SIZE         4096

#define SF_RING_MAX_STOREFRONT   256
#define SF_RING_MAX_METHOD       16
#define SF_RING_MAX_URL          2048
#define SF_RING_MAX_ORDER_ID     256

/* bytes of a record whose six strings total n bytes */
#define SF_RING_RECORD_SIZE(n)                                               \
    (((size_t) (n) + SF_RING_REC_HEADER_SIZE + SF_RING_TRAILER_SIZE + 7)     \
     & ~(size_t) 7)

/* bytes of the data area of a region of size bytes (size >= 128) */
#define SF_RING_DATA_SIZE(size)                                              \
    (((size_t) (size) - SF_RING_HEADER_SIZE) & ~(size_t) 7)

/* the largest record in a data area of d bytes */
#define SF_RING_MAX_RECORD(d)                                                \
    ((((size_t) (d) / 4) & ~(size_t) 7) > 0x7ffffff8                         \
     ? (size_t) 0x7ffffff8 : (((size_t) (d) / 4) & ~(size_t) 7))

/* direction */
#define SF_RING_IN               0     /* a call to us: hook, postback, ship */
#define SF_RING_OUT              1     /* our call to SiteFlow or PrintNow */

/* flags */
#define SF_RING_DELETED          0x0001   /* cleared, invisible to walks */
#define SF_RING_TRUNCATED        0x0002   /* some field was cut */
#define SF_RING_TRUNC_STOREFRONT 0x0004
#define SF_RING_TRUNC_METHOD     0x0008
#define SF_RING_TRUNC_URL        0x0010
#define SF_RING_TRUNC_ORDER_ID   0x0020
#define SF_RING_TRUNC_REQUEST    0x0040
#define SF_RING_TRUNC_RESPONSE   0x0080
#define SF_RING_TRUNC_ANY        0x00fe   /* what a caller may pass in */


typedef struct sf_ring_s  sf_ring_t;

struct sf_ring_s {
    uint32_t      magic;
    uint32_t      version;
    uint64_t      size;
    uint64_t      data_size;
    uint64_t      head;
    uint64_t      tail;
    uint64_t      used;
    uint64_t      records;
    uint64_t      deleted;
    uint64_t      next_id;
    uint64_t      overwritten;
    uint64_t      reserved[6];
};


/*
 * One call.  For sf_ring_append() the caller fills everything but id;
 * flags may carry SF_RING_TRUNC_* bits for cuts the caller made itself
 * (a body capped at the configured size).  A walk passes entries whose
 * strings point into the snapshot.  A string pointer may be NULL only
 * if its length is 0.
 */
typedef struct {
    uint64_t      id;
    uint64_t      time_ms;
    uint32_t      duration_ms;
    uint16_t      status;
    uint16_t      flags;
    uint8_t       direction;

    const char   *storefront;
    size_t        storefront_len;
    const char   *method;
    size_t        method_len;
    const char   *url;
    size_t        url_len;
    const char   *order_id;
    size_t        order_id_len;
    const char   *request;
    size_t        request_len;
    const char   *response;
    size_t        response_len;
} sf_ring_entry_t;


/*
 * Walk filter; a zeroed filter passes everything.  limit 0 is no limit;
 * order_id and storefront NULL match any, otherwise exact bytes (the
 * stored value, so as cut to SF_RING_MAX_*); since_ms keeps entries with
 * time_ms >= since_ms.
 */
typedef struct {
    size_t        limit;
    const char   *order_id;
    size_t        order_id_len;
    uint64_t      since_ms;
    const char   *storefront;
    size_t        storefront_len;
} sf_ring_filter_t;


/* non-zero stops the walk (the entry counts as visited) */
typedef int (*sf_ring_visit_pt)(const sf_ring_entry_t *e, void *data);


/*
 * Formats region[0 .. size - 1] as an empty ring.  NULL if region is
 * NULL or not 8-byte aligned, or size < SF_RING_MIN_SIZE.
 */
sf_ring_t *sf_ring_init(void *region, size_t size);

/*
 * Checks that region[0 .. size - 1] holds a ring of this format: magic,
 * version, size equal to the formatted size, at least SF_RING_MIN_SIZE,
 * and consistent head, tail and used.  The ring or NULL (the glue then
 * formats the zone afresh; records are not checked here, the walk
 * checks each as it goes).  A snapshot is a ring too and attaches with
 * its length when that is at least SF_RING_MIN_SIZE.
 */
sf_ring_t *sf_ring_attach(void *region, size_t size);

/*
 * Appends e as the newest record, dropping the oldest ones as needed,
 * with the next id (stored in *id if id is not NULL).  Fields are cut
 * as described above.  0, or -1 (nothing changed) if ring or e is NULL
 * or a string is NULL with a non-zero length.
 */
int sf_ring_append(sf_ring_t *ring, const sf_ring_entry_t *e, uint64_t *id);

/*
 * Writes a snapshot of the ring to out: a ring of its own (header and
 * the used bytes, unwrapped, oldest first, as a full ring whose data
 * area is exactly those bytes).  Returns the snapshot size,
 * SF_RING_HEADER_SIZE + sf_ring_used(ring), and writes nothing if that
 * is more than out_size (or out is NULL): like snprintf(), compare the
 * result with out_size.  The region size is always enough.  0 if ring
 * is NULL.
 */
size_t sf_ring_snapshot(const sf_ring_t *ring, void *out, size_t out_size);

/*
 * Calls cb (if not NULL) for each entry that passes f (NULL: all),
 * newest first, skipping deleted ones, until the limit, a non-zero
 * return of cb or the oldest record.  snapshot[0 .. len - 1] is a
 * snapshot or a ring region (read only, any alignment).  Returns the
 * number of entries visited; 0 for a buffer that is not a ring.  A
 * damaged record ends the walk there.
 */
size_t sf_ring_walk(const void *snapshot, size_t len,
    const sf_ring_filter_t *f, sf_ring_visit_pt cb, void *data);

/*
 * Marks the entries of storefront (exact bytes, as stored) deleted in
 * place, all entries if storefront is NULL.  Returns how many were
 * marked (already deleted ones are not counted again).
 */
size_t sf_ring_clear(sf_ring_t *ring, const char *storefront, size_t len);

/* bytes of records and padding in the data area */
size_t sf_ring_used(const sf_ring_t *ring);

/* entries a walk without a filter visits: records not deleted */
size_t sf_ring_count(const sf_ring_t *ring);

/* records dropped to make room since the ring was formatted */
uint64_t sf_ring_overwritten(const sf_ring_t *ring);


#endif /* _SF_RING_H_INCLUDED_ */
