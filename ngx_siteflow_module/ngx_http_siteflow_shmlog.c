
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
 * The replay cache is an rbtree keyed by the first 16 bytes of the
 * verified signature (HMAC-SHA256 of the nonce under the partner's key:
 * a replayed request always maps to the same entry, and nobody without a
 * partner key can choose entries), plus an LRU queue in insertion order.
 * Nodes have a fixed size, so the cache is bounded by a number of entries
 * ("siteflow_nonce_cache", by default a quarter of the zone).  When it is
 * full, the oldest entry is evicted even if its TTL has not run out; this
 * is counted and logged.
 */


#define NGX_HTTP_SITEFLOW_SHM_MAGIC   0x57464c53   /* "SLFW" */
#define NGX_HTTP_SITEFLOW_SHM_LAYOUT  1


typedef struct {
    uint32_t                       magic;
    uint32_t                       layout;

    ngx_rbtree_t                   nonce_rbtree;
    ngx_rbtree_node_t              nonce_sentinel;
    ngx_queue_t                    nonce_lru;
    ngx_uint_t                     nonce_count;
    ngx_uint_t                     nonce_max;

    ngx_atomic_t                   counters[NGX_HTTP_SITEFLOW_CNT_MAX];
} ngx_http_siteflow_shm_t;


typedef struct {
    u_char                         color;
    u_char                         dummy[3];
    ngx_queue_t                    queue;
    ngx_msec_t                     expires;
    u_char                         digest[NGX_HTTP_SITEFLOW_DIGEST_LEN];
} ngx_http_siteflow_nonce_node_t;


typedef struct {
    /* the first two fields must stay first: reload reads them */
    ngx_http_siteflow_shm_t       *sh;
    ngx_slab_pool_t               *shpool;

    ngx_uint_t                     nonce_max;
} ngx_http_siteflow_zone_ctx_t;


static ngx_int_t ngx_http_siteflow_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_siteflow_nonce_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_siteflow_nonce_node_t *ngx_http_siteflow_nonce_lookup(
    ngx_http_siteflow_shm_t *sh, ngx_rbtree_key_t key, u_char *digest);
static void ngx_http_siteflow_nonce_free(ngx_http_siteflow_zone_ctx_t *ctx,
    ngx_http_siteflow_nonce_node_t *nn);
static ngx_uint_t ngx_http_siteflow_nonce_evict_oldest(
    ngx_http_siteflow_zone_ctx_t *ctx, ngx_msec_t now);
static size_t ngx_http_siteflow_nonce_node_size(void);


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


char *
ngx_http_siteflow_shm_check(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf)
{
    size_t                         node, size;
    ngx_uint_t                     fit;
    ngx_http_siteflow_zone_ctx_t  *ctx;

    ctx = smcf->shm_zone->data;
    size = smcf->shm_zone->shm.size;
    node = ngx_http_siteflow_nonce_node_size();

    /* at most three quarters of the zone: the log ring needs the rest */

    fit = size / 4 * 3 / node;

    if (smcf->nonce_cache == 0) {
        ctx->nonce_max = size / 4 / node;

    } else if (smcf->nonce_cache > fit) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"siteflow_nonce_cache\" of %ui entries does not "
                           "fit in siteflow zone \"%V\" of %uz bytes "
                           "(%uz bytes an entry, at most %ui entries)",
                           smcf->nonce_cache, &smcf->shm_zone->shm.name,
                           size, node, fit);
        return NGX_CONF_ERROR;

    } else {
        ctx->nonce_max = smcf->nonce_cache;
    }

    return NGX_CONF_OK;
}


static size_t
ngx_http_siteflow_nonce_node_size(void)
{
    size_t  n, s;

    n = offsetof(ngx_rbtree_node_t, color)
        + sizeof(ngx_http_siteflow_nonce_node_t);

    /* slab rounds small allocations up to a power of two */

    for (s = 8; s < n; s <<= 1) { /* void */ }

    return s;
}


static ngx_int_t
ngx_http_siteflow_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_siteflow_zone_ctx_t  *octx = data;

    size_t                         len;
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

        ngx_shmtx_lock(&ctx->shpool->mutex);
        ctx->sh->nonce_max = ctx->nonce_max;
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_calloc(ctx->shpool, sizeof(ngx_http_siteflow_shm_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ctx->sh->magic = NGX_HTTP_SITEFLOW_SHM_MAGIC;
    ctx->sh->layout = NGX_HTTP_SITEFLOW_SHM_LAYOUT;
    ctx->sh->nonce_max = ctx->nonce_max;

    ngx_rbtree_init(&ctx->sh->nonce_rbtree, &ctx->sh->nonce_sentinel,
                    ngx_http_siteflow_nonce_insert_value);
    ngx_queue_init(&ctx->sh->nonce_lru);

    len = sizeof(" in siteflow zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in siteflow zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* the replay cache makes room itself; the log ring will too */

    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_siteflow_nonce_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_http_siteflow_nonce_node_t   *nn, *nt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            nn = (ngx_http_siteflow_nonce_node_t *) &node->color;
            nt = (ngx_http_siteflow_nonce_node_t *) &temp->color;

            p = (ngx_memcmp(nn->digest, nt->digest,
                            NGX_HTTP_SITEFLOW_DIGEST_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_siteflow_nonce_node_t *
ngx_http_siteflow_nonce_lookup(ngx_http_siteflow_shm_t *sh,
    ngx_rbtree_key_t key, u_char *digest)
{
    ngx_int_t                        rc;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_siteflow_nonce_node_t  *nn;

    node = sh->nonce_rbtree.root;
    sentinel = sh->nonce_rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        /* key == node->key */

        nn = (ngx_http_siteflow_nonce_node_t *) &node->color;

        rc = ngx_memcmp(digest, nn->digest, NGX_HTTP_SITEFLOW_DIGEST_LEN);

        if (rc == 0) {
            return nn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_siteflow_nonce_free(ngx_http_siteflow_zone_ctx_t *ctx,
    ngx_http_siteflow_nonce_node_t *nn)
{
    ngx_rbtree_node_t  *node;

    node = (ngx_rbtree_node_t *)
               ((u_char *) nn - offsetof(ngx_rbtree_node_t, color));

    ngx_queue_remove(&nn->queue);
    ngx_rbtree_delete(&ctx->sh->nonce_rbtree, node);
    ngx_slab_free_locked(ctx->shpool, node);

    ctx->sh->nonce_count--;
}


static ngx_uint_t
ngx_http_siteflow_nonce_evict_oldest(ngx_http_siteflow_zone_ctx_t *ctx,
    ngx_msec_t now)
{
    ngx_uint_t                       live;
    ngx_queue_t                     *q;
    ngx_http_siteflow_nonce_node_t  *nn;

    q = ngx_queue_last(&ctx->sh->nonce_lru);
    nn = ngx_queue_data(q, ngx_http_siteflow_nonce_node_t, queue);

    live = ((ngx_msec_int_t) (nn->expires - now) > 0);

    ngx_http_siteflow_nonce_free(ctx, nn);

    return live;
}


ngx_http_siteflow_nonce_rc_e
ngx_http_siteflow_nonce_check(ngx_shm_zone_t *shm_zone, u_char *digest,
    ngx_msec_t ttl)
{
    size_t                           n;
    ngx_uint_t                       evicted, i;
    ngx_queue_t                     *q;
    ngx_msec_t                       now;
    ngx_rbtree_key_t                 key;
    ngx_rbtree_node_t               *node;
    ngx_http_siteflow_nonce_node_t  *nn;
    ngx_http_siteflow_zone_ctx_t    *ctx;

    ctx = shm_zone->data;

    ngx_memcpy(&key, digest, sizeof(ngx_rbtree_key_t));

    now = ngx_current_msec;
    evicted = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* expire from the oldest end, a bounded number per call */

    for (i = 0; i < 8 && !ngx_queue_empty(&ctx->sh->nonce_lru); i++) {
        q = ngx_queue_last(&ctx->sh->nonce_lru);
        nn = ngx_queue_data(q, ngx_http_siteflow_nonce_node_t, queue);

        if ((ngx_msec_int_t) (nn->expires - now) > 0) {
            break;
        }

        ngx_http_siteflow_nonce_free(ctx, nn);
    }

    nn = ngx_http_siteflow_nonce_lookup(ctx->sh, key, digest);

    if (nn != NULL) {

        if ((ngx_msec_int_t) (nn->expires - now) > 0) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_HTTP_SITEFLOW_NONCE_REPLAY;
        }

        /* seen before, but long enough ago */

        nn->expires = now + ttl;
        ngx_queue_remove(&nn->queue);
        ngx_queue_insert_head(&ctx->sh->nonce_lru, &nn->queue);

        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_HTTP_SITEFLOW_NONCE_FRESH;
    }

    while (ctx->sh->nonce_count >= ctx->sh->nonce_max
           && !ngx_queue_empty(&ctx->sh->nonce_lru))
    {
        evicted += ngx_http_siteflow_nonce_evict_oldest(ctx, now);
    }

    n = offsetof(ngx_rbtree_node_t, color)
        + sizeof(ngx_http_siteflow_nonce_node_t);

    for ( ;; ) {
        node = ngx_slab_alloc_locked(ctx->shpool, n);
        if (node != NULL) {
            break;
        }

        if (ngx_queue_empty(&ctx->sh->nonce_lru)) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_HTTP_SITEFLOW_NONCE_ERROR;
        }

        evicted += ngx_http_siteflow_nonce_evict_oldest(ctx, now);
    }

    node->key = key;

    nn = (ngx_http_siteflow_nonce_node_t *) &node->color;
    nn->expires = now + ttl;
    ngx_memcpy(nn->digest, digest, NGX_HTTP_SITEFLOW_DIGEST_LEN);

    ngx_rbtree_insert(&ctx->sh->nonce_rbtree, node);
    ngx_queue_insert_head(&ctx->sh->nonce_lru, &nn->queue);
    ctx->sh->nonce_count++;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (evicted) {
        (void) ngx_atomic_fetch_add(
                  &ctx->sh->counters[NGX_HTTP_SITEFLOW_CNT_NONCE_EVICTED],
                  evicted);
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
