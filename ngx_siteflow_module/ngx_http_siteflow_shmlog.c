
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_shmlog.h"


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
 */


#define NGX_HTTP_SITEFLOW_SHM_MAGIC   0x57464c53   /* "SLFW" */
#define NGX_HTTP_SITEFLOW_SHM_LAYOUT  2

#define NGX_HTTP_SITEFLOW_NIL         0xffffffff


typedef struct {
    u_char                         digest[NGX_HTTP_SITEFLOW_DIGEST_LEN];
    ngx_msec_t                     expires;
    uint32_t                       next;        /* chain in its bucket */
    uint32_t                       used;
} ngx_http_siteflow_nonce_t;


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
} ngx_http_siteflow_shm_t;


typedef struct {
    /* the first two fields must stay first: reload reads them */
    ngx_http_siteflow_shm_t       *sh;
    ngx_slab_pool_t               *shpool;

    ngx_uint_t                     nonce_max;
} ngx_http_siteflow_zone_ctx_t;


static ngx_int_t ngx_http_siteflow_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static size_t ngx_http_siteflow_nonce_buckets(ngx_uint_t max);
static uint32_t ngx_http_siteflow_nonce_bucket(ngx_http_siteflow_shm_t *sh,
    u_char *digest);
static void ngx_http_siteflow_nonce_unlink(ngx_http_siteflow_shm_t *sh,
    uint32_t n);


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
    ngx_uint_t                     fit;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ctx = smcf->shm_zone->data;
    size = smcf->shm_zone->shm.size;
    entry = ngx_http_siteflow_nonce_entry_size();

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
    uint32_t                       b, n;
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

    n = sh->nonce_head;
    e = &sh->nonces[n];

    if (e->used) {
        evicted = ((ngx_msec_int_t) (e->expires - now) > 0);
        ngx_http_siteflow_nonce_unlink(sh, n);
    }

    ngx_memcpy(e->digest, digest, NGX_HTTP_SITEFLOW_DIGEST_LEN);
    e->expires = now + ttl;
    e->used = 1;
    e->next = sh->buckets[b];
    sh->buckets[b] = n;

    sh->nonce_count++;
    sh->nonce_head = (n + 1 == sh->nonce_max) ? 0 : n + 1;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (evicted) {
        (void) ngx_atomic_fetch_add(
                  &sh->counters[NGX_HTTP_SITEFLOW_CNT_NONCE_EVICTED], 1);
        return NGX_HTTP_SITEFLOW_NONCE_FRESH_EVICTED;
    }

    return NGX_HTTP_SITEFLOW_NONCE_FRESH;
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
