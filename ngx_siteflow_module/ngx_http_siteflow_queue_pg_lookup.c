
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_queue_pg.h"
#include "ngx_http_siteflow_queue_pg_int.h"
#include "ngx_http_siteflow_queue_pg_sql.h"
#include "ngx_http_siteflow_pg.h"


/*
 * What the hook, the postback, the admin and the runner read about an
 * order before they decide: each look-up lives in the pool of its
 * request or run, and index_get() and pending() answer from the newest
 * one that matches.
 */


static void ngx_http_siteflow_pgq_lookup_cleanup(void *data);
static ngx_http_siteflow_pgq_lookup_t *ngx_http_siteflow_pgq_lookup_find(
    ngx_str_t *storefront, ngx_str_t *order_id, ngx_str_t *source_id,
    ngx_uint_t pending);


static ngx_queue_t       ngx_http_siteflow_pgq_lookups;
static ngx_connection_t  ngx_http_siteflow_pgq_dummy;


void
ngx_http_siteflow_pgq_lookups_init(void)
{
    ngx_queue_init(&ngx_http_siteflow_pgq_lookups);
    ngx_http_siteflow_pgq_dummy.fd = (ngx_socket_t) -1;
}


void
ngx_http_siteflow_pgq_event(ngx_event_t *ev, ngx_event_handler_pt handler)
{
    ev->handler = handler;
    ev->data = &ngx_http_siteflow_pgq_dummy;
    ev->log = ngx_cycle->log;
}


/* a look-up registered in pool, removed when the pool goes */

ngx_http_siteflow_pgq_lookup_t *
ngx_http_siteflow_pgq_lookup_add(ngx_pool_t *pool, ngx_str_t *storefront,
    ngx_str_t *key, ngx_uint_t by_source)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_siteflow_pgq_lookup_t  *lk;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_http_siteflow_pgq_lookup_t));
    if (cln == NULL) {
        return NULL;
    }

    lk = cln->data;
    ngx_memzero(lk, sizeof(ngx_http_siteflow_pgq_lookup_t));

    lk->pool = pool;
    lk->storefront = *storefront;
    lk->key = *key;
    lk->by_source = by_source;

    /* the caller's key may be on its stack (a postback's sourceOrderId) */

    if (ngx_http_siteflow_pgq_copy(pool, &lk->key) != NGX_OK) {
        return NULL;
    }

    ngx_queue_insert_head(&ngx_http_siteflow_pgq_lookups, &lk->queue);

    cln->handler = ngx_http_siteflow_pgq_lookup_cleanup;

    return lk;
}


static void
ngx_http_siteflow_pgq_lookup_cleanup(void *data)
{
    ngx_http_siteflow_pgq_lookup_t  *lk = data;

    if (lk->query != NULL) {
        ngx_http_siteflow_pg_cancel(lk->query);
        lk->query = NULL;
    }

    ngx_queue_remove(&lk->queue);
}


void
ngx_http_siteflow_pgq_index_row(PGresult *res, int row, int col,
    ngx_str_t *storefront, ngx_pool_t *pool, ngx_http_siteflow_index_t *idx)
{
    ngx_memzero(idx, sizeof(ngx_http_siteflow_index_t));

    idx->storefront = *storefront;

    (void) ngx_http_siteflow_pgq_str(res, row, col, pool, &idx->order_id);
    (void) ngx_http_siteflow_pgq_str(res, row, col + 1, pool,
                                     &idx->source_id);
    (void) ngx_http_siteflow_pgq_str(res, row, col + 2, pool,
                                     &idx->siteflow_id);

    idx->state = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, row, col + 3);
    idx->rank = (ngx_int_t) ngx_atoi((u_char *) PQgetvalue(res, row, col + 4),
                                     PQgetlength(res, row, col + 4));
    if (idx->rank == NGX_ERROR) {
        idx->rank = 0;
    }

    idx->fingerprint = ngx_http_siteflow_pgq_u64(res, row, col + 5);
    idx->updated_ms = ngx_http_siteflow_pgq_u64(res, row, col + 6);
    idx->sent_ms = ngx_http_siteflow_pgq_u64(res, row, col + 7);
}


ngx_int_t
ngx_http_siteflow_pgq_str(PGresult *res, int row, int col, ngx_pool_t *pool,
    ngx_str_t *s)
{
    size_t  len;

    len = PQgetlength(res, row, col);

    s->data = ngx_pnalloc(pool, len + 1);
    if (s->data == NULL) {
        s->len = 0;
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, PQgetvalue(res, row, col), len);
    s->data[len] = '\0';
    s->len = len;

    return NGX_OK;
}


uint64_t
ngx_http_siteflow_pgq_u64(PGresult *res, int row, int col)
{
    char      *p;
    uint64_t   n;

    if (PQgetisnull(res, row, col)) {
        return 0;
    }

    n = 0;

    for (p = PQgetvalue(res, row, col); *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
    }

    return n;
}


/*
 * The newest look-up (the one read last) that answers for this order:
 * read by the same key, or (an order id asked) one whose index entry is
 * that order's.  A run's look-up (the claim's) knows no pending jobs:
 * with "pending", only a decision's own look-up answers.  Looking the
 * newest up matters: a run of the same order may be claimed while a hook
 * waits for its own read, and its look-up, older, says nothing pending.
 */

static ngx_http_siteflow_pgq_lookup_t *
ngx_http_siteflow_pgq_lookup_find(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_uint_t pending)
{
    ngx_str_t                       *key;
    ngx_queue_t                     *q, *lookups;
    ngx_http_siteflow_pgq_lookup_t  *lk, *best;

    lookups = &ngx_http_siteflow_pgq_lookups;
    key = order_id ? order_id : source_id;
    best = NULL;

    for (q = ngx_queue_head(lookups);
         q != ngx_queue_sentinel(lookups);
         q = ngx_queue_next(q))
    {
        lk = ngx_queue_data(q, ngx_http_siteflow_pgq_lookup_t, queue);

        if (lk->loaded == 0
            || (pending && !lk->pending_known)
            || (best != NULL && lk->loaded < best->loaded)
            || lk->storefront.len != storefront->len
            || ngx_strncmp(lk->storefront.data, storefront->data,
                           storefront->len) != 0)
        {
            continue;
        }

        if ((lk->by_source == (order_id == NULL)
             && lk->key.len == key->len
             && ngx_strncmp(lk->key.data, key->data, key->len) == 0)
            || (order_id != NULL && lk->found
                && lk->idx.order_id.len == order_id->len
                && ngx_strncmp(lk->idx.order_id.data, order_id->data,
                               order_id->len)
                   == 0))
        {
            best = lk;
        }
    }

    if (best == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "siteflow: order \"%V\" was not read first", key);
    }

    return best;
}


/* the look-up holds what the database said: it is the newest */

void
ngx_http_siteflow_pgq_lookup_loaded(ngx_http_siteflow_pgq_lookup_t *lk,
    ngx_uint_t pending_known)
{
    static ngx_uint_t  seq;

    lk->loaded = ++seq;
    lk->pending_known = pending_known;
}


ngx_int_t
ngx_http_siteflow_pgq_index_get(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_pool_t *pool, ngx_http_siteflow_index_t *idx)
{
    ngx_http_siteflow_pgq_lookup_t  *lk;

    lk = ngx_http_siteflow_pgq_lookup_find(storefront, order_id, source_id,
                                           0);

    if (lk == NULL || !lk->found) {
        return NGX_DECLINED;
    }

    *idx = lk->idx;

    /* the strings live in the look-up's pool; the caller's may be other */

    if (pool != lk->pool
        && (ngx_http_siteflow_pgq_copy(pool, &idx->order_id) != NGX_OK
            || ngx_http_siteflow_pgq_copy(pool, &idx->source_id) != NGX_OK
            || ngx_http_siteflow_pgq_copy(pool, &idx->siteflow_id)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_pgq_copy(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';
    s->data = p;

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_pgq_pending(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id)
{
    ngx_http_siteflow_pgq_lookup_t  *lk;

    if (kind > NGX_HTTP_SITEFLOW_JOB_CANCEL) {
        return 0;
    }

    lk = ngx_http_siteflow_pgq_lookup_find(storefront, order_id, NULL, 1);

    return lk ? lk->pending[kind] : 0;
}
