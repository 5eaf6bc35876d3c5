
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_shmlog.h"
#include "ngx_http_siteflow_log.h"
#include "sf_admin.h"
#include "sf_json.h"
#include "sf_ring.h"


/*
 * The "siteflow_zone" shared memory: a header with a magic and a layout
 * version (an incompatible module refuses to reuse a zone on reload), the
 * counters exported as metrics, and the Ship API nonce replay cache.
 *
 * The replay cache is a ring of fixed-size entries in insertion order plus
 * a hash index of chains through the ring, both allocated once when the
 * zone is created.  An entry holds the first 16 bytes of the verified
 * signature (HMAC-SHA256 of the nonce under the partner's key: a replayed
 * request always maps to the same entry, and nobody without a partner key
 * can choose entries) and its expiry time.  A look-up reads one bucket and
 * usually one entry, whatever the size of the cache: a tree would chase a
 * pointer per level through megabytes of cold memory on every request.
 *
 * The ring holds "siteflow_nonce_cache" entries (by default what fits in a
 * quarter of the zone).  A new nonce takes the oldest slot; if that entry
 * has not expired yet it is evicted anyway, which is counted and logged.
 *
 * The Site Flow Log (sf_ring.h) takes what is left of the zone after the
 * header and the nonce cache, allocated last in one piece.  The header also
 * holds the run-time logging switches (storefront name -> on/off, set from
 * the admin console, NGX_HTTP_SITEFLOW_SWITCH_MAX of them) and the upstream
 * latency histograms.  Counters and histograms are atomics; the ring and
 * the switches are changed under the zone mutex, which is held only to
 * copy bytes.
 */


#define NGX_HTTP_SITEFLOW_SHM_MAGIC   0x57464c53   /* "SLFW" */
#define NGX_HTTP_SITEFLOW_SHM_LAYOUT  3

#define NGX_HTTP_SITEFLOW_NIL         0xffffffff


typedef struct {
    u_char                         digest[NGX_HTTP_SITEFLOW_DIGEST_LEN];
    ngx_msec_t                     expires;
    uint32_t                       next;        /* chain in its bucket */
    uint32_t                       used;
} ngx_http_siteflow_nonce_t;


typedef struct {
    u_char                         name[NGX_HTTP_SITEFLOW_SWITCH_NAME];
    uint32_t                       len;
    uint32_t                       on;
} ngx_http_siteflow_switch_t;


typedef struct {
    uint32_t                       magic;
    uint32_t                       layout;

    ngx_http_siteflow_nonce_t     *nonces;      /* the ring */
    uint32_t                      *buckets;
    uint32_t                       nonce_max;
    uint32_t                       nonce_mask;  /* buckets - 1 */
    uint32_t                       nonce_head;  /* next slot to write */
    uint32_t                       nonce_count;

    ngx_atomic_t                   counters[NGX_HTTP_SITEFLOW_CNT_MAX];

    sf_ring_t                     *ring;        /* the Site Flow Log */
    size_t                         ring_size;

    ngx_atomic_t                   nswitches;
    ngx_http_siteflow_switch_t     switches[NGX_HTTP_SITEFLOW_SWITCH_MAX];

    ngx_atomic_t                   latency[NGX_HTTP_SITEFLOW_UPSTREAMS]
                                          [NGX_HTTP_SITEFLOW_LATENCY_BUCKETS
                                           + 1];
    ngx_atomic_t                   latency_sum[NGX_HTTP_SITEFLOW_UPSTREAMS];
} ngx_http_siteflow_shm_t;


typedef struct {
    /* the first two fields must stay first: reload reads them */
    ngx_http_siteflow_shm_t       *sh;
    ngx_slab_pool_t               *shpool;

    ngx_uint_t                     nonce_max;
    ngx_str_t                      nonce_file;  /* in the spool, or "" */
    ngx_cycle_t                   *cycle;
} ngx_http_siteflow_zone_ctx_t;


/*
 * The replay cache survives a restart: "nonces.sfn" in the spool
 * (siteflow_spool) mirrors the cache's ring of slots, 24 bytes a slot (the
 * 16 bytes of the entry and its expiry as wall-clock ms, little-endian).
 * Every nonce stored is written over its slot with one small pwrite(),
 * not synced, so the file never grows beyond the ring (nonce_max slots);
 * when the zone is made (start, not reload) the unexpired entries are
 * loaded and the file is rewritten as the new ring.
 */

#define NGX_HTTP_SITEFLOW_NONCE_REC   (NGX_HTTP_SITEFLOW_DIGEST_LEN + 8)

static ngx_fd_t    ngx_http_siteflow_nonce_fd = NGX_INVALID_FILE;
static ngx_uint_t  ngx_http_siteflow_nonce_failed;


static ngx_int_t ngx_http_siteflow_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static size_t ngx_http_siteflow_nonce_buckets(ngx_uint_t max);
static uint32_t ngx_http_siteflow_nonce_bucket(ngx_http_siteflow_shm_t *sh,
    u_char *digest);
static void ngx_http_siteflow_nonce_unlink(ngx_http_siteflow_shm_t *sh,
    uint32_t n);
static ngx_int_t ngx_http_siteflow_ring_alloc(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_zone_ctx_t *ctx);
static ngx_http_siteflow_shm_t *ngx_http_siteflow_shm(
    ngx_shm_zone_t *shm_zone);
static void ngx_http_siteflow_nonce_store(ngx_http_siteflow_shm_t *sh,
    u_char *digest, ngx_msec_t expires);
static void ngx_http_siteflow_nonce_write(ngx_http_siteflow_zone_ctx_t *ctx,
    uint32_t slot, u_char *digest, ngx_msec_t ttl);
static void ngx_http_siteflow_nonce_record(u_char *rec, u_char *digest,
    uint64_t expires);
static ngx_int_t ngx_http_siteflow_nonce_load(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_zone_ctx_t *ctx);


const ngx_msec_t  ngx_http_siteflow_latency_bounds[
    NGX_HTTP_SITEFLOW_LATENCY_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};


char *
ngx_http_siteflow_shm_zone_init_conf(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf)
{
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_siteflow_zone_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    smcf->shm_zone->init = ngx_http_siteflow_shm_init_zone;
    smcf->shm_zone->data = ctx;

    return NGX_CONF_OK;
}


/*
 * Bytes of zone an entry costs: the entry and its share of the buckets
 * (between 2 and 4 buckets an entry after rounding to a power of two).
 */

size_t
ngx_http_siteflow_nonce_entry_size(void)
{
    return sizeof(ngx_http_siteflow_nonce_t) + 4 * sizeof(uint32_t);
}


char *
ngx_http_siteflow_shm_check(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf)
{
    size_t                         entry, size;
    ngx_str_t                     *dir;
    ngx_uint_t                     fit;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ctx = smcf->shm_zone->data;
    size = smcf->shm_zone->shm.size;
    entry = ngx_http_siteflow_nonce_entry_size();

    ctx->cycle = cf->cycle;

    if (smcf->queue) {
        dir = ngx_http_siteflow_queue_dir(smcf->queue);

        ctx->nonce_file.len = dir->len + sizeof("/nonces.sfn") - 1;
        ctx->nonce_file.data = ngx_pnalloc(cf->pool,
                                           ctx->nonce_file.len + 1);
        if (ctx->nonce_file.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(ctx->nonce_file.data, "%V/nonces.sfn%Z", dir);
    }

    /* at most three quarters of the zone: the log ring needs the rest */

    fit = size / 4 * 3 / entry;

    if (smcf->nonce_cache == 0) {
        ctx->nonce_max = size / 4 / entry;

    } else if (smcf->nonce_cache > fit) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"siteflow_nonce_cache\" of %ui entries does not "
                           "fit in siteflow zone \"%V\" of %uz bytes "
                           "(%uz bytes an entry, at most %ui entries)",
                           smcf->nonce_cache, &smcf->shm_zone->shm.name,
                           size, entry, fit);
        return NGX_CONF_ERROR;

    } else {
        ctx->nonce_max = smcf->nonce_cache;
    }

    if (ctx->nonce_max < 16) {
        ctx->nonce_max = 16;
    }

    return NGX_CONF_OK;
}


static size_t
ngx_http_siteflow_nonce_buckets(ngx_uint_t max)
{
    size_t  n;

    /* a power of two, at least twice the entries: chains stay short */

    for (n = 16; n < 2 * max; n <<= 1) { /* void */ }

    return n;
}


static ngx_int_t
ngx_http_siteflow_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_siteflow_zone_ctx_t  *octx = data;

    size_t                         len, nb;
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        if (ctx->sh->magic != NGX_HTTP_SITEFLOW_SHM_MAGIC
            || ctx->sh->layout != NGX_HTTP_SITEFLOW_SHM_LAYOUT)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "siteflow zone \"%V\" was created by an "
                          "incompatible version of the module (layout %uD, "
                          "this module uses %d), restart nginx instead of "
                          "reloading it",
                          &shm_zone->shm.name, ctx->sh->layout,
                          NGX_HTTP_SITEFLOW_SHM_LAYOUT);
            return NGX_ERROR;
        }

        if (ctx->nonce_max != ctx->sh->nonce_max) {
            ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                          "siteflow zone \"%V\" keeps its nonce cache of "
                          "%uD entries until nginx is restarted",
                          &shm_zone->shm.name, ctx->sh->nonce_max);
        }

        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(ctx->shpool, sizeof(ngx_http_siteflow_shm_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    nb = ngx_http_siteflow_nonce_buckets(ctx->nonce_max);

    sh->nonces = ngx_slab_calloc(ctx->shpool,
                                 ctx->nonce_max
                                 * sizeof(ngx_http_siteflow_nonce_t));
    sh->buckets = ngx_slab_alloc(ctx->shpool, nb * sizeof(uint32_t));

    if (sh->nonces == NULL || sh->buckets == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "siteflow zone \"%V\" is too small for a nonce cache "
                      "of %ui entries", &shm_zone->shm.name,
                      ctx->nonce_max);
        return NGX_ERROR;
    }

    ngx_memset(sh->buckets, 0xff, nb * sizeof(uint32_t));

    sh->magic = NGX_HTTP_SITEFLOW_SHM_MAGIC;
    sh->layout = NGX_HTTP_SITEFLOW_SHM_LAYOUT;
    sh->nonce_max = (uint32_t) ctx->nonce_max;
    sh->nonce_mask = (uint32_t) (nb - 1);

    ctx->sh = sh;
    ctx->shpool->data = sh;

    len = sizeof(" in siteflow zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in siteflow zone \"%V\"%Z",
                &shm_zone->shm.name);

    if (ngx_http_siteflow_ring_alloc(shm_zone, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_siteflow_nonce_load(shm_zone, ctx);
}


/*
 * The log ring takes all the pages left after everything else: nothing
 * is allocated from the zone after this.  The ring overwrites its own
 * oldest records, so the zone never runs out of memory because of the log.
 */

static ngx_int_t
ngx_http_siteflow_ring_alloc(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_zone_ctx_t *ctx)
{
    void                     *region;
    size_t                    size;
    ngx_uint_t                pages;
    ngx_http_siteflow_shm_t  *sh;

    sh = ctx->sh;
    pages = ctx->shpool->pfree;
    region = NULL;
    size = 0;

    ctx->shpool->log_nomem = 0;

    while (pages > 0) {
        size = pages << ngx_pagesize_shift;

        if (size < SF_RING_MIN_SIZE) {
            break;
        }

        region = ngx_slab_alloc(ctx->shpool, size);
        if (region != NULL) {
            break;
        }

        pages--;
    }

    ctx->shpool->log_nomem = 1;

    if (region == NULL || sf_ring_init(region, size) == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "siteflow zone \"%V\" is too small for the log ring "
                      "after a nonce cache of %ui entries, use a larger "
                      "zone or a smaller \"siteflow_nonce_cache\"",
                      &shm_zone->shm.name, ctx->nonce_max);
        return NGX_ERROR;
    }

    sh->ring = region;
    sh->ring_size = size;

    return NGX_OK;
}


static uint32_t
ngx_http_siteflow_nonce_bucket(ngx_http_siteflow_shm_t *sh, u_char *digest)
{
    uint32_t  h;

    /* the digest is an HMAC output: its bytes are already uniform */

    ngx_memcpy(&h, digest, sizeof(uint32_t));

    return h & sh->nonce_mask;
}


static void
ngx_http_siteflow_nonce_unlink(ngx_http_siteflow_shm_t *sh, uint32_t n)
{
    uint32_t                    *p;
    ngx_http_siteflow_nonce_t   *e;

    e = &sh->nonces[n];

    for (p = &sh->buckets[ngx_http_siteflow_nonce_bucket(sh, e->digest)];
         *p != NGX_HTTP_SITEFLOW_NIL;
         p = &sh->nonces[*p].next)
    {
        if (*p == n) {
            *p = e->next;
            break;
        }
    }

    e->used = 0;
    e->next = NGX_HTTP_SITEFLOW_NIL;
    sh->nonce_count--;
}


ngx_http_siteflow_nonce_rc_e
ngx_http_siteflow_nonce_check(ngx_shm_zone_t *shm_zone, u_char *digest,
    ngx_msec_t ttl)
{
    uint32_t                       b, n, slot;
    ngx_uint_t                     evicted;
    ngx_msec_t                     now;
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_nonce_t     *e;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ctx = shm_zone->data;
    sh = ctx->sh;

    now = ngx_current_msec;
    evicted = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    b = ngx_http_siteflow_nonce_bucket(sh, digest);

    for (n = sh->buckets[b]; n != NGX_HTTP_SITEFLOW_NIL; n = e->next) {
        e = &sh->nonces[n];

        if (ngx_memcmp(e->digest, digest, NGX_HTTP_SITEFLOW_DIGEST_LEN)
            != 0)
        {
            continue;
        }

        if ((ngx_msec_int_t) (e->expires - now) > 0) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_HTTP_SITEFLOW_NONCE_REPLAY;
        }

        /* seen before, but long enough ago: it is stored anew below */

        ngx_http_siteflow_nonce_unlink(sh, n);
        break;
    }

    slot = sh->nonce_head;
    e = &sh->nonces[slot];

    evicted = e->used && (ngx_msec_int_t) (e->expires - now) > 0;

    ngx_http_siteflow_nonce_store(sh, digest, now + ttl);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_siteflow_nonce_write(ctx, slot, digest, ttl);

    if (evicted) {
        (void) ngx_atomic_fetch_add(
                  &sh->counters[NGX_HTTP_SITEFLOW_CNT_NONCE_EVICTED], 1);
        return NGX_HTTP_SITEFLOW_NONCE_FRESH_EVICTED;
    }

    return NGX_HTTP_SITEFLOW_NONCE_FRESH;
}


/* the ring's next slot takes the entry (the zone is locked) */

static void
ngx_http_siteflow_nonce_store(ngx_http_siteflow_shm_t *sh, u_char *digest,
    ngx_msec_t expires)
{
    uint32_t                    b, n;
    ngx_http_siteflow_nonce_t  *e;

    b = ngx_http_siteflow_nonce_bucket(sh, digest);

    n = sh->nonce_head;
    e = &sh->nonces[n];

    if (e->used) {
        ngx_http_siteflow_nonce_unlink(sh, n);
    }

    ngx_memcpy(e->digest, digest, NGX_HTTP_SITEFLOW_DIGEST_LEN);
    e->expires = expires;
    e->used = 1;
    e->next = sh->buckets[b];
    sh->buckets[b] = n;

    sh->nonce_count++;
    sh->nonce_head = (n + 1 == sh->nonce_max) ? 0 : n + 1;
}


/* one small pwrite() over the slot in the worker: the page cache takes it */

static void
ngx_http_siteflow_nonce_write(ngx_http_siteflow_zone_ctx_t *ctx,
    uint32_t slot, u_char *digest, ngx_msec_t ttl)
{
    ngx_time_t  *tp;
    u_char       rec[NGX_HTTP_SITEFLOW_NONCE_REC];

    if (ctx->nonce_file.len == 0) {
        return;
    }

    if (ngx_http_siteflow_nonce_fd == NGX_INVALID_FILE) {
        ngx_http_siteflow_nonce_fd = open((char *) ctx->nonce_file.data,
                                          O_WRONLY|O_CREAT|O_NONBLOCK
                                          |O_CLOEXEC, 0600);

        if (ngx_http_siteflow_nonce_fd == NGX_INVALID_FILE) {
            goto failed;
        }
    }

    tp = ngx_timeofday();

    ngx_http_siteflow_nonce_record(rec, digest,
                                   (uint64_t) tp->sec * 1000 + tp->msec + ttl);

    if (pwrite(ngx_http_siteflow_nonce_fd, rec, sizeof(rec),
               (off_t) slot * NGX_HTTP_SITEFLOW_NONCE_REC)
        == (ssize_t) sizeof(rec))
    {
        ngx_http_siteflow_nonce_failed = 0;
        return;
    }

failed:

    /* the nonce is refused for its TTL all the same, until a restart */

    if (ngx_http_siteflow_nonce_failed++ == 0) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "siteflow: cannot write the nonce to \"%V\"; "
                      "the replay cache will not survive a restart",
                      &ctx->nonce_file);
    }
}


static void
ngx_http_siteflow_nonce_record(u_char *rec, u_char *digest, uint64_t expires)
{
    ngx_uint_t  i;

    rec = ngx_cpymem(rec, digest, NGX_HTTP_SITEFLOW_DIGEST_LEN);

    for (i = 0; i < 8; i++) {
        *rec++ = (u_char) (expires >> (8 * i));
    }
}


/* at start: the unexpired nonces back in the cache, the file rewritten as
   the new ring (slot by slot, up to the last slot in use) */

static ngx_int_t
ngx_http_siteflow_nonce_load(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_zone_ctx_t *ctx)
{
    u_char                     *buf, *p, *w;
    size_t                      size;
    ssize_t                     n;
    uint64_t                    now, expires;
    ngx_fd_t                    fd;
    ngx_uint_t                  i, kept;
    ngx_time_t                 *tp;
    ngx_file_info_t             fi;
    ngx_core_conf_t            *ccf;
    ngx_http_siteflow_nonce_t  *e;
    u_char                      tmp[NGX_MAX_PATH];

    if (ctx->nonce_file.len == 0 || ngx_test_config) {
        return NGX_OK;
    }

    if (ngx_file_info(ctx->nonce_file.data, &fi) == NGX_FILE_ERROR) {
        if (ngx_errno == NGX_ENOENT) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, ngx_errno,
                      "siteflow: cannot read \"%V\"", &ctx->nonce_file);
        return NGX_ERROR;
    }

    if (!ngx_is_file(&fi)) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "siteflow: \"%V\" is not a regular file; move it "
                      "away", &ctx->nonce_file);
        return NGX_ERROR;
    }

    size = (size_t) ngx_file_size(&fi);
    size -= size % NGX_HTTP_SITEFLOW_NONCE_REC;

    if (size == 0) {
        return NGX_OK;
    }

    buf = ngx_alloc(size, shm_zone->shm.log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    fd = open((char *) ctx->nonce_file.data, O_RDONLY|O_NONBLOCK|O_CLOEXEC);

    n = (fd == NGX_INVALID_FILE) ? -1 : ngx_read_fd(fd, buf, size);

    if (fd != NGX_INVALID_FILE) {
        (void) close(fd);
    }

    if (n != (ssize_t) size) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, ngx_errno,
                      "siteflow: cannot read \"%V\"", &ctx->nonce_file);
        ngx_free(buf);
        return NGX_ERROR;
    }

    ngx_time_update();

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    kept = 0;
    w = buf;

    for (p = buf; p < buf + size; p += NGX_HTTP_SITEFLOW_NONCE_REC) {
        expires = 0;

        for (i = 0; i < 8; i++) {
            expires |= (uint64_t) p[NGX_HTTP_SITEFLOW_DIGEST_LEN + i]
                       << (8 * i);
        }

        if (expires <= now) {
            continue;
        }

        ngx_http_siteflow_nonce_store(ctx->sh, p,
                                      ngx_current_msec
                                      + (ngx_msec_t) (expires - now));
        kept++;
    }

    /* the ring as it is now, slot by slot: the file the workers write on */

    w = buf;

    for (i = 0; i < kept && i < ctx->sh->nonce_max; i++) {
        e = &ctx->sh->nonces[i];

        expires = e->used ? now + (ngx_msec_int_t) (e->expires
                                                    - ngx_current_msec)
                          : 0;

        ngx_http_siteflow_nonce_record(w, e->digest, expires);
        w += NGX_HTTP_SITEFLOW_NONCE_REC;
    }

    /* only the unexpired ones are kept, owned by the worker user */

    ngx_snprintf(tmp, NGX_MAX_PATH, "%V.tmp%Z", &ctx->nonce_file);

    fd = open((char *) tmp, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0600);

    if (fd == NGX_INVALID_FILE
        || write(fd, buf, w - buf) != w - buf
        || fsync(fd) == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, shm_zone->shm.log, ngx_errno,
                      "siteflow: cannot rewrite \"%V\"", &ctx->nonce_file);

        if (fd != NGX_INVALID_FILE) {
            (void) close(fd);
            (void) unlink((char *) tmp);
        }

        ngx_free(buf);
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(ctx->cycle->conf_ctx,
                                           ngx_core_module);

    if (geteuid() == 0 && ccf && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && fchown(fd, ccf->user, (gid_t) -1) == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, shm_zone->shm.log, ngx_errno,
                      "siteflow: fchown() \"%s\" failed", tmp);
    }

    (void) close(fd);

    if (rename((char *) tmp, (char *) ctx->nonce_file.data) == -1) {
        ngx_log_error(NGX_LOG_ALERT, shm_zone->shm.log, ngx_errno,
                      "siteflow: rename() \"%s\" failed", tmp);
        (void) unlink((char *) tmp);
    }

    ngx_free(buf);

    ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                  "siteflow: %ui unexpired Ship API nonces loaded from "
                  "\"%V\"", kept, &ctx->nonce_file);

    return NGX_OK;
}


void
ngx_http_siteflow_count(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_counter_e counter)
{
    ngx_http_siteflow_zone_ctx_t  *ctx;

    if (shm_zone == NULL) {
        return;
    }

    ctx = shm_zone->data;

    if (ctx->sh == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&ctx->sh->counters[counter], 1);
}


static ngx_http_siteflow_shm_t *
ngx_http_siteflow_shm(ngx_shm_zone_t *shm_zone)
{
    ngx_http_siteflow_zone_ctx_t  *ctx;

    if (shm_zone == NULL) {
        return NULL;
    }

    ctx = shm_zone->data;

    return ctx->sh;
}


void
ngx_http_siteflow_counters(ngx_shm_zone_t *shm_zone,
    ngx_atomic_uint_t *out)
{
    ngx_uint_t                i;
    ngx_http_siteflow_shm_t  *sh;

    sh = ngx_http_siteflow_shm(shm_zone);

    for (i = 0; i < NGX_HTTP_SITEFLOW_CNT_MAX; i++) {
        out[i] = (sh != NULL) ? sh->counters[i] : 0;
    }
}


void
ngx_http_siteflow_latency_add(ngx_shm_zone_t *shm_zone, ngx_uint_t upstream,
    ngx_msec_t ms)
{
    ngx_uint_t                i;
    ngx_http_siteflow_shm_t  *sh;

    sh = ngx_http_siteflow_shm(shm_zone);

    if (sh == NULL || upstream >= NGX_HTTP_SITEFLOW_UPSTREAMS) {
        return;
    }

    for (i = 0; i < NGX_HTTP_SITEFLOW_LATENCY_BUCKETS; i++) {
        if (ms <= ngx_http_siteflow_latency_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->latency[upstream][i], 1);
    (void) ngx_atomic_fetch_add(&sh->latency_sum[upstream], ms);
}


void
ngx_http_siteflow_latency_get(ngx_shm_zone_t *shm_zone, ngx_uint_t upstream,
    ngx_atomic_uint_t *counts, ngx_atomic_uint_t *sum)
{
    ngx_uint_t                i;
    ngx_http_siteflow_shm_t  *sh;

    sh = ngx_http_siteflow_shm(shm_zone);

    for (i = 0; i <= NGX_HTTP_SITEFLOW_LATENCY_BUCKETS; i++) {
        counts[i] = (sh != NULL) ? sh->latency[upstream][i] : 0;
    }

    *sum = (sh != NULL) ? sh->latency_sum[upstream] : 0;
}


/*
 * The run-time logging switch of a storefront: NGX_HTTP_SITEFLOW_SWITCH_ON,
 * _OFF or _UNSET (the configured "siteflow_log" applies).
 */

ngx_int_t
ngx_http_siteflow_log_switch(ngx_shm_zone_t *shm_zone, ngx_str_t *storefront)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i, n;
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    sh = ngx_http_siteflow_shm(shm_zone);

    /* no switch was ever set: no lock on the path of every call */

    if (sh == NULL || sh->nswitches == 0) {
        return NGX_HTTP_SITEFLOW_SWITCH_UNSET;
    }

    ctx = shm_zone->data;
    rc = NGX_HTTP_SITEFLOW_SWITCH_UNSET;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    n = sh->nswitches;

    for (i = 0; i < n; i++) {
        if (sh->switches[i].len == storefront->len
            && ngx_memcmp(sh->switches[i].name, storefront->data,
                          storefront->len) == 0)
        {
            rc = sh->switches[i].on ? NGX_HTTP_SITEFLOW_SWITCH_ON
                                    : NGX_HTTP_SITEFLOW_SWITCH_OFF;
            break;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/* NGX_OK, or NGX_DECLINED: name too long or the table is full */

ngx_int_t
ngx_http_siteflow_log_switch_set(ngx_shm_zone_t *shm_zone,
    ngx_str_t *storefront, ngx_int_t value)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i, n;
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_switch_t    *sw;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    sh = ngx_http_siteflow_shm(shm_zone);

    if (sh == NULL || storefront->len > NGX_HTTP_SITEFLOW_SWITCH_NAME) {
        return NGX_DECLINED;
    }

    ctx = shm_zone->data;
    rc = NGX_OK;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    n = sh->nswitches;
    sw = NULL;

    for (i = 0; i < n; i++) {
        if (sh->switches[i].len == storefront->len
            && ngx_memcmp(sh->switches[i].name, storefront->data,
                          storefront->len) == 0)
        {
            sw = &sh->switches[i];
            break;
        }
    }

    if (value == NGX_HTTP_SITEFLOW_SWITCH_UNSET) {

        /* the last entry takes the place of the removed one */

        if (sw != NULL) {
            *sw = sh->switches[n - 1];
            sh->nswitches = n - 1;
        }

    } else if (sw != NULL) {
        sw->on = (value == NGX_HTTP_SITEFLOW_SWITCH_ON);

    } else if (n == NGX_HTTP_SITEFLOW_SWITCH_MAX) {
        rc = NGX_DECLINED;

    } else {
        sw = &sh->switches[n];
        ngx_memcpy(sw->name, storefront->data, storefront->len);
        sw->len = (uint32_t) storefront->len;
        sw->on = (value == NGX_HTTP_SITEFLOW_SWITCH_ON);
        sh->nswitches = n + 1;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_siteflow_ring_append(ngx_shm_zone_t *shm_zone, sf_ring_entry_t *e)
{
    int                            rc;
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    sh = ngx_http_siteflow_shm(shm_zone);

    if (sh == NULL || sh->ring == NULL) {
        return NGX_DECLINED;
    }

    ctx = shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    rc = sf_ring_append(sh->ring, e, &e->id);
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return (rc == 0) ? NGX_OK : NGX_ERROR;
}


/*
 * A copy of the log ring in pool memory, to walk with no lock held: the
 * size is read under the lock, the buffer allocated outside it, and the
 * copy retried if the ring grew in between.
 */

ngx_int_t
ngx_http_siteflow_ring_snapshot(ngx_shm_zone_t *shm_zone, ngx_pool_t *pool,
    ngx_str_t *snap)
{
    size_t                         need, size;
    ngx_uint_t                     tries;
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ngx_str_null(snap);

    sh = ngx_http_siteflow_shm(shm_zone);

    if (sh == NULL || sh->ring == NULL) {
        return NGX_DECLINED;
    }

    ctx = shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    need = SF_RING_HEADER_SIZE + sf_ring_used(sh->ring);
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    for (tries = 0; tries < 4; tries++) {

        /* a little slack for calls logged meanwhile */

        size = ngx_min(need + 8 * 1024, sh->ring_size);

        snap->data = ngx_palloc(pool, size);
        if (snap->data == NULL) {
            return NGX_ERROR;
        }

        ngx_shmtx_lock(&ctx->shpool->mutex);
        need = sf_ring_snapshot(sh->ring, snap->data, size);
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (need <= size) {
            snap->len = need;
            return NGX_OK;
        }

        ngx_pfree(pool, snap->data);
    }

    ngx_str_null(snap);

    return NGX_ERROR;
}


/* marks the entries of storefront deleted; how many */

ngx_uint_t
ngx_http_siteflow_ring_clear(ngx_shm_zone_t *shm_zone, ngx_str_t *storefront)
{
    size_t                         n;
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    sh = ngx_http_siteflow_shm(shm_zone);

    if (sh == NULL || sh->ring == NULL) {
        return 0;
    }

    ctx = shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    n = sf_ring_clear(sh->ring, (const char *) storefront->data,
                      ngx_min(storefront->len, SF_RING_MAX_STOREFRONT));
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return n;
}


void
ngx_http_siteflow_ring_stats(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_ring_stats_t *st)
{
    ngx_http_siteflow_shm_t       *sh;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ngx_memzero(st, sizeof(ngx_http_siteflow_ring_stats_t));

    sh = ngx_http_siteflow_shm(shm_zone);

    if (sh == NULL || sh->ring == NULL) {
        return;
    }

    ctx = shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    st->size = sh->ring->data_size;
    st->used = sf_ring_used(sh->ring);
    st->entries = sf_ring_count(sh->ring);
    st->overwritten = sf_ring_overwritten(sh->ring);
    st->zone_size = shm_zone->shm.size;
    st->zone_free = ctx->shpool->pfree << ngx_pagesize_shift;

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * The Site Flow Log: one record per call in either direction, in the log
 * ring of "siteflow_zone" (the ring above, sf_ring.h).
 *
 * Callers pass bodies, never headers, so Authorization headers and
 * signatures cannot reach the log; secret-bearing query arguments ("token"
 * and the others of sf_admin_redact_url()) are replaced by "***" here.
 * Bodies are cut at siteflow_log_body_max bytes (on a character
 * boundary) and the record is marked truncated.  Everything is prepared on
 * the stack; the zone mutex is held only while sf_ring_append() copies the
 * bytes in.
 */


static ngx_str_t *ngx_http_siteflow_log_cap(ngx_str_t *body, ngx_str_t *out,
    uint16_t *flags, uint16_t flag, size_t max);


ngx_shm_zone_t *
ngx_http_siteflow_log_zone(void)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);
    if (smcf == NULL) {
        return NULL;
    }

    return smcf->shm_zone;
}


/* the run-time switch of the storefront if set, else "siteflow_log" */

ngx_int_t
ngx_http_siteflow_log_enabled(ngx_http_siteflow_srv_conf_t *sscf)
{
    ngx_int_t        sw;
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_http_siteflow_log_zone();

    if (shm_zone == NULL || sscf == NULL) {
        return 0;
    }

    sw = ngx_http_siteflow_log_switch(shm_zone, &sscf->storefront);

    if (sw == NGX_HTTP_SITEFLOW_SWITCH_UNSET) {
        return sscf->log ? 1 : 0;
    }

    return (sw == NGX_HTTP_SITEFLOW_SWITCH_ON);
}


void
ngx_http_siteflow_log_write(ngx_http_siteflow_srv_conf_t *sscf,
    ngx_http_siteflow_log_entry_t *e)
{
    u_char           url[SF_ADMIN_REDACT_SIZE(SF_RING_MAX_URL)];
    size_t           len;
    ngx_str_t        request, response;
    ngx_time_t      *tp;
    ngx_shm_zone_t  *shm_zone;
    sf_ring_entry_t  re;

    shm_zone = ngx_http_siteflow_log_zone();

    if (shm_zone == NULL || !ngx_http_siteflow_log_enabled(sscf)) {
        return;
    }

    ngx_memzero(&re, sizeof(sf_ring_entry_t));

    tp = ngx_timeofday();

    re.time_ms = (uint64_t) tp->sec * 1000 + tp->msec;
    re.duration_ms = (uint32_t) ngx_min(e->duration, 0xffffffff);
    re.status = (uint16_t) ngx_min(e->status, 999);
    re.direction = (e->direction == SF_RING_OUT) ? SF_RING_OUT : SF_RING_IN;

    re.storefront = (const char *) sscf->storefront.data;
    re.storefront_len = sscf->storefront.len;
    re.method = (const char *) e->method.data;
    re.method_len = e->method.len;
    re.order_id = (const char *) e->order_id.data;
    re.order_id_len = e->order_id.len;

    /* redact before the ring cuts the URL: a cut value is still hidden */

    len = ngx_min(e->url.len, SF_RING_MAX_URL);
    len = sf_admin_redact_url((const char *) e->url.data, len, (char *) url,
                              sizeof(url));

    if (e->url.len > SF_RING_MAX_URL) {
        re.flags |= SF_RING_TRUNC_URL;
    }

    re.url = (const char *) url;
    re.url_len = ngx_min(len, SF_RING_MAX_URL);

    ngx_http_siteflow_log_cap(&e->request, &request, &re.flags,
                              SF_RING_TRUNC_REQUEST, sscf->log_body_max);
    ngx_http_siteflow_log_cap(&e->response, &response, &re.flags,
                              SF_RING_TRUNC_RESPONSE, sscf->log_body_max);

    re.request = (const char *) request.data;
    re.request_len = request.len;
    re.response = (const char *) response.data;
    re.response_len = response.len;

    if (ngx_http_siteflow_ring_append(shm_zone, &re) != NGX_OK) {
        return;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "siteflow log: entry %uL \"%V\" %ui flags:%xd",
                   re.id, &sscf->storefront, e->status, (int) re.flags);
}


static ngx_str_t *
ngx_http_siteflow_log_cap(ngx_str_t *body, ngx_str_t *out, uint16_t *flags,
    uint16_t flag, size_t max)
{
    *out = *body;

    if (out->len > max) {
        out->len = sf_json_utf8_cut((const char *) body->data, body->len,
                                     max);
        *flags |= flag;
    }

    return out;
}


size_t
ngx_http_siteflow_log_body_max(ngx_http_request_t *r)
{
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    return sscf->log_body_max;
}


void
ngx_http_siteflow_observe_latency(ngx_uint_t upstream, ngx_msec_t ms)
{
    ngx_http_siteflow_latency_add(ngx_http_siteflow_log_zone(), upstream, ms);
}


void
ngx_http_siteflow_counter(ngx_http_siteflow_counter_e counter)
{
    if ((ngx_uint_t) counter >= NGX_HTTP_SITEFLOW_CNT_MAX) {
        return;
    }

    ngx_http_siteflow_count(ngx_http_siteflow_log_zone(), counter);
}
