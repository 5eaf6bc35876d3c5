
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
#include "sf_qrec.h"
#include "sf_order.h"


/*
 * The job queue on PostgreSQL ("siteflow_queue", docs/fleet.md): the
 * interface of the backend (ngx_http_siteflow_queue_pg_int.h says which
 * file does what).
 *
 * - Every worker of every edge enqueues: one INSERT (with the postback's
 *   part of the index entry in the same statement), answered to the
 *   hook only once it is committed.
 *
 * - Worker 0 of every edge consumes: it claims due jobs with FOR UPDATE
 *   SKIP LOCKED under a lease (only the first unfinished job of an
 *   order), runs them with the same runner as the spool, and writes the
 *   outcome (and the order's part of the index entry) only if it still
 *   holds the lease.  It renews the leases of the jobs it runs; a job
 *   whose edge died is claimed by another edge when its lease runs out,
 *   with "a create may be out" set, so the order is looked up by
 *   sourceOrderId before anything is created again.
 *
 * - What the hook and the runner read about an order (index_get(),
 *   pending()) is fetched first (ngx_http_siteflow_pgq_lookup(), or the
 *   claim itself) and kept for as long as the request's or the run's
 *   pool lives.
 *
 * - The admin listing is a query; the metrics' job counts are a
 *   snapshot refreshed each second while somebody reads them.
 */


#define NGX_HTTP_SITEFLOW_PG_STATS_EVERY 1000      /* ms */
#define NGX_HTTP_SITEFLOW_PG_BATCH_MAX   256       /* jobs a statement */
#define NGX_HTTP_SITEFLOW_PG_STATS_IDLE  60000     /* ms */


/* a job to enqueue, in the batch of its event loop turn */

typedef struct {
    ngx_queue_t                        queue;
    ngx_http_siteflow_enqueue_pt       handler;
    void                              *data;
    ngx_uint_t                         kind;
    ngx_uint_t                         has_idx;
    ngx_int_t                          rank;
    uint64_t                           fingerprint;
    ngx_int_t                          seen_rank;
    uint64_t                           seen_fingerprint;
    ngx_str_t                          storefront;   /* copies, after */
    ngx_str_t                          order_id;
    ngx_str_t                          text;
} ngx_http_siteflow_pgq_enqueue_t;


typedef struct {
    ngx_queue_t                        items;
    ngx_uint_t                         n;
} ngx_http_siteflow_pgq_batch_t;


/* the admin's retry */

typedef struct {
    ngx_http_siteflow_enqueue_pt       handler;
    void                              *data;
    uint64_t                           id;
} ngx_http_siteflow_pgq_retry_t;


typedef struct {
    ngx_pool_t                        *pool;
    ngx_array_t                       *out;
    ngx_http_siteflow_lookup_pt        handler;
    void                              *data;
} ngx_http_siteflow_pgq_list_t;


typedef struct {
    ngx_str_t                          storefront;
    ngx_uint_t                         state;
    uint64_t                           count;
    uint64_t                           oldest;
} ngx_http_siteflow_pgq_count_t;


/* every worker: this edge's name, and the metrics' snapshot */

typedef struct {
    ngx_str_t                          edge;
    ngx_queue_t                        pending;    /* pgq_enqueue_t */
    ngx_uint_t                         npending;
    ngx_event_t                        flush;
    ngx_event_t                        stats;
    ngx_http_siteflow_pg_query_t      *counting;
    ngx_msec_t                         stats_read;
    ngx_pool_t                        *stats_pool;
    ngx_array_t                       *counts;     /* pgq_count_t */
    ngx_uint_t                         index_orders;
    uint64_t                           index_forgotten;
} ngx_http_siteflow_pgq_t;


static const char *ngx_http_siteflow_pgq_setup(void);
static void ngx_http_siteflow_pgq_flush(ngx_event_t *ev);
static u_char *ngx_http_siteflow_pgq_array(ngx_http_siteflow_pgq_batch_t *b,
    ngx_uint_t field, size_t *len);
static void ngx_http_siteflow_pgq_enqueued(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_fail_all(ngx_queue_t *items);
static void ngx_http_siteflow_pgq_lookup_done(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_listed(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_retried(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_stats_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pgq_counted(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_stats_read(void);


ngx_http_siteflow_pgq_conf_t  *ngx_http_siteflow_pgq;

static ngx_http_siteflow_pgq_t  ngx_http_siteflow_pgq_state;

static ngx_str_t  ngx_http_siteflow_pgq_no_row =
    ngx_string("the statement returned no row");


/* the directive: "siteflow_queue URL [pool=N] [lease=t]
   [index_retention=t]" (the URL is never echoed: it may hold a password) */

char *
ngx_http_siteflow_pgq_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    char                          *errmsg;
    ngx_int_t                      n;
    ngx_str_t                     *value, s;
    ngx_uint_t                     i;
    ngx_msec_t                     t;
    PQconninfoOption              *opts;
    ngx_http_siteflow_pgq_conf_t  *pc;

    if (smcf->pg_queue != NULL) {
        return "is duplicate";
    }

    if (smcf->queue != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"siteflow_queue\" and \"siteflow_spool\" "
                           "cannot both be set: the jobs are kept in one "
                           "of them (docs/fleet.md)");
        return NGX_CONF_ERROR;
    }

    if (smcf->queue_workers != NGX_CONF_UNSET_UINT) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           NGX_HTTP_SITEFLOW_WORKERS_ON_PG);
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (!(value[1].len > sizeof("postgresql://") - 1
          && ngx_strncasecmp(value[1].data, (u_char *) "postgresql://",
                             sizeof("postgresql://") - 1) == 0)
        && !(value[1].len > sizeof("postgres://") - 1
             && ngx_strncasecmp(value[1].data, (u_char *) "postgres://",
                                sizeof("postgres://") - 1) == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL in \"%V\", expected a PostgreSQL "
                           "connection URI (postgresql://user@host:port/db)",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* libpq's own parser, which connects to nothing */

    errmsg = NULL;
    opts = PQconninfoParse((const char *) value[1].data, &errmsg);

    if (opts == NULL) {
        if (errmsg != NULL) {
            PQfreemem(errmsg);
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid PostgreSQL connection URI in \"%V\" "
                           "(libpq cannot parse it; it is not shown here "
                           "because it may hold a password)", &cmd->name);
        return NGX_CONF_ERROR;
    }

    PQconninfoFree(opts);

    pc = ngx_pcalloc(cf->pool, sizeof(ngx_http_siteflow_pgq_conf_t));
    if (pc == NULL) {
        return NGX_CONF_ERROR;
    }

    pc->url = value[1];         /* nginx ends every argument with a NUL */
    pc->pool = 2;
    pc->lease = 30000;
    pc->retention = (ngx_msec_t) (30 * 86400000ULL);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n < 1 || n > 64) {
                goto invalid;
            }

            pc->pool = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "lease=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            t = ngx_parse_time(&s, 0);

            if (t == (ngx_msec_t) NGX_ERROR || t < 3000) {
                goto invalid;
            }

            pc->lease = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "index_retention=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;
            t = ngx_parse_time(&s, 1);

            if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
                goto invalid;
            }

            pc->retention = t * 1000;
            continue;
        }

        goto invalid;
    }

    smcf->pg_queue = pc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" (pool=1..64, "
                       "lease= at least 3s, index_retention= a time)",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/* process start and exit */

ngx_int_t
ngx_http_siteflow_pgq_init_process(ngx_cycle_t *cycle,
    ngx_http_siteflow_pgq_conf_t *pc, ngx_uint_t concurrency)
{
    u_char                       *p;
    ngx_http_siteflow_pgq_t      *st;
    ngx_http_siteflow_pg_conf_t   conf;

    st = &ngx_http_siteflow_pgq_state;

    ngx_http_siteflow_pgq = pc;

    ngx_http_siteflow_pgq_lookups_init();

    /* the lease owner: this host and process, unique while it lives */

    p = ngx_pnalloc(cycle->pool, cycle->hostname.len + 2 * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    st->edge.data = p;
    st->edge.len = ngx_sprintf(p, "%V/%P/%08xD", &cycle->hostname, ngx_pid,
                               (uint32_t) ngx_random())
                   - p;

    ngx_memzero(&conf, sizeof(ngx_http_siteflow_pg_conf_t));

    conf.conninfo = pc->url;
    conf.pool = pc->pool;
    conf.connect_timeout = 5000;
    conf.setup = ngx_http_siteflow_pgq_setup;
    conf.log = cycle->log;

    if (ngx_http_siteflow_pg_init_process(cycle, &conf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_siteflow_pgq_event(&st->stats,
                                ngx_http_siteflow_pgq_stats_handler);

    ngx_queue_init(&st->pending);
    ngx_http_siteflow_pgq_event(&st->flush, ngx_http_siteflow_pgq_flush);

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    return ngx_http_siteflow_pgq_consumer_init(cycle, pc, concurrency,
                                               &st->edge);
}


void
ngx_http_siteflow_pgq_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (st->flush.posted) {
        ngx_delete_posted_event(&st->flush);
    }

    /* jobs not sent yet: nothing was acknowledged */

    if (st->pending.next != NULL) {
        ngx_http_siteflow_pgq_fail_all(&st->pending);
        st->npending = 0;
    }

    ngx_http_siteflow_pgq_consumer_exit(cycle);
    ngx_http_siteflow_pg_exit_process(cycle);

    if (st->stats_pool != NULL) {
        ngx_destroy_pool(st->stats_pool);
        st->stats_pool = NULL;
        st->counts = NULL;
    }

    ngx_http_siteflow_pgq = NULL;
}


static const char *
ngx_http_siteflow_pgq_setup(void)
{
    return NGX_HTTP_SITEFLOW_PG_SETUP;
}


ngx_str_t *
ngx_http_siteflow_pgq_edge(void)
{
    return &ngx_http_siteflow_pgq_state.edge;
}


/*
 * enqueue: the jobs of one event loop turn go in one statement (one
 * COMMIT, as the spool's group commit); each is answered once that is
 * committed
 */

ngx_int_t
ngx_http_siteflow_pgq_enqueue(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *text, ngx_http_siteflow_index_t *idx,
    ngx_http_siteflow_enqueue_pt handler, void *data)
{
    u_char                           *p;
    ngx_http_siteflow_pgq_t          *st;
    ngx_http_siteflow_pgq_enqueue_t  *e;

    st = &ngx_http_siteflow_pgq_state;

    e = ngx_alloc(sizeof(ngx_http_siteflow_pgq_enqueue_t) + storefront->len
                  + order_id->len + text->len, ngx_cycle->log);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->handler = handler;
    e->data = data;
    e->kind = kind;
    e->has_idx = (idx != NULL);
    e->rank = idx ? idx->rank : 0;
    e->fingerprint = idx ? idx->fingerprint : 0;
    e->seen_rank = idx ? idx->seen_rank : 0;
    e->seen_fingerprint = idx ? idx->seen_fingerprint : 0;

    p = (u_char *) e + sizeof(ngx_http_siteflow_pgq_enqueue_t);

    e->storefront.data = p;
    e->storefront.len = storefront->len;
    p = ngx_cpymem(p, storefront->data, storefront->len);

    e->order_id.data = p;
    e->order_id.len = order_id->len;
    p = ngx_cpymem(p, order_id->data, order_id->len);

    e->text.data = p;
    e->text.len = text->len;
    ngx_memcpy(p, text->data, text->len);

    ngx_queue_insert_tail(&st->pending, &e->queue);
    st->npending++;

    if (!st->flush.posted) {
        ngx_post_event(&st->flush, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_siteflow_pgq_flush(ngx_event_t *ev)
{
    int                              len[9];
    size_t                           n;
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    const char                      *v[9];
    ngx_http_siteflow_pgq_t         *st;
    ngx_http_siteflow_pgq_batch_t   *b;
    ngx_http_siteflow_pg_query_t    *pq;

    st = &ngx_http_siteflow_pgq_state;

    while (!ngx_queue_empty(&st->pending)) {

        b = ngx_alloc(sizeof(ngx_http_siteflow_pgq_batch_t), ev->log);
        if (b == NULL) {
            ngx_http_siteflow_pgq_fail_all(&st->pending);
            st->npending = 0;
            return;
        }

        ngx_queue_init(&b->items);
        b->n = 0;

        while (!ngx_queue_empty(&st->pending)
               && b->n < NGX_HTTP_SITEFLOW_PG_BATCH_MAX)
        {
            q = ngx_queue_head(&st->pending);
            ngx_queue_remove(q);
            ngx_queue_insert_tail(&b->items, q);
            b->n++;
            st->npending--;
        }

        for (i = 0; i < 9; i++) {
            v[i] = (const char *) ngx_http_siteflow_pgq_array(b, i, &n);

            if (v[i] == NULL) {
                while (i--) {
                    ngx_free((void *) v[i]);
                }

                goto failed;
            }

            len[i] = (int) n;
        }

        /* the values are copied by the pool (before the call returns) */

        pq = ngx_http_siteflow_pg_prepared("siteflow_enqueue", 9, v, len,
                                           ngx_http_siteflow_pgq_enqueued, b);

        for (i = 0; i < 9; i++) {
            ngx_free((void *) v[i]);
        }

        if (pq != NULL) {
            continue;
        }

    failed:

        ngx_http_siteflow_pgq_fail_all(&b->items);
        ngx_free(b);
    }
}


/*
 * One field of the batch's jobs as a PostgreSQL array literal (text
 * elements quoted, '"' and '\' escaped): 0 kind, 1 storefront, 2 order
 * id, 3 payload, 4 has the index part, 5 rank, 6 fingerprint, 7 and 8
 * the rank and fingerprint the postback was judged by.
 */

static u_char *
ngx_http_siteflow_pgq_array(ngx_http_siteflow_pgq_batch_t *b,
    ngx_uint_t field, size_t *len)
{
    u_char                           *a, *p;
    size_t                            size, k;
    ngx_str_t                        *str;
    ngx_queue_t                      *q;
    ngx_http_siteflow_pgq_enqueue_t  *e;

    size = 3;

    for (q = ngx_queue_head(&b->items);
         q != ngx_queue_sentinel(&b->items);
         q = ngx_queue_next(q))
    {
        e = ngx_queue_data(q, ngx_http_siteflow_pgq_enqueue_t, queue);

        switch (field) {
        case 1:
            size += 2 * e->storefront.len + 3;
            break;
        case 2:
            size += 2 * e->order_id.len + 3;
            break;
        case 3:
            size += 2 * e->text.len + 3;
            break;
        default:
            size += NGX_INT64_LEN + 2;
        }
    }

    a = ngx_alloc(size, ngx_cycle->log);
    if (a == NULL) {
        return NULL;
    }

    p = a;
    *p++ = '{';

    for (q = ngx_queue_head(&b->items);
         q != ngx_queue_sentinel(&b->items);
         q = ngx_queue_next(q))
    {
        e = ngx_queue_data(q, ngx_http_siteflow_pgq_enqueue_t, queue);

        if (q != ngx_queue_head(&b->items)) {
            *p++ = ',';
        }

        switch (field) {

        case 0:
            p = ngx_sprintf(p, "%ui", e->kind);
            continue;

        case 4:
            *p++ = e->has_idx ? '1' : '0';
            continue;

        case 5:
            p = ngx_sprintf(p, "%i", e->rank);
            continue;

        case 6:
            p = ngx_sprintf(p, "%uL", e->fingerprint);
            continue;

        case 7:
            p = ngx_sprintf(p, "%i", e->seen_rank);
            continue;

        case 8:
            p = ngx_sprintf(p, "%uL", e->seen_fingerprint);
            continue;

        case 1:
            str = &e->storefront;
            break;

        case 2:
            str = &e->order_id;
            break;

        default:
            str = &e->text;
            break;
        }

        *p++ = '"';

        for (k = 0; k < str->len; k++) {
            if (str->data[k] == '"' || str->data[k] == '\\') {
                *p++ = '\\';
            }

            *p++ = str->data[k];
        }

        *p++ = '"';
    }

    *p++ = '}';
    *p = '\0';
    *len = p - a;

    return a;
}


static void
ngx_http_siteflow_pgq_enqueued(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_batch_t  *b = data;

    int                               i, busy;
    uint64_t                          id;
    ngx_queue_t                      *q;
    ngx_http_siteflow_enqueue_pt      handler;
    ngx_http_siteflow_pgq_enqueue_t  *e;

    if (res == NULL || (ngx_uint_t) PQntuples(res) != b->n) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: %ui jobs could not be queued in "
                      "PostgreSQL: %V", b->n,
                      err ? err : &ngx_http_siteflow_pgq_no_row);
        if (res) {
            PQclear(res);
        }

        ngx_http_siteflow_pgq_fail_all(&b->items);
        ngx_free(b);
        return;
    }

    /* the handlers may answer requests: the batch is taken apart first */

    for (i = 0; !ngx_queue_empty(&b->items); i++) {
        q = ngx_queue_head(&b->items);
        ngx_queue_remove(q);
        e = ngx_queue_data(q, ngx_http_siteflow_pgq_enqueue_t, queue);

        /* NULL: a postback of the order came first, judged again */

        busy = PQgetisnull(res, i, 0);
        id = busy ? 0 : ngx_http_siteflow_pgq_u64(res, i, 0);
        handler = e->handler;
        data = e->data;
        ngx_free(e);

        handler(data, busy ? NGX_BUSY : NGX_OK, id);
    }

    PQclear(res);
    ngx_free(b);

    ngx_http_siteflow_pgq_wake();
}


static void
ngx_http_siteflow_pgq_fail_all(ngx_queue_t *items)
{
    void                             *data;
    ngx_queue_t                      *q;
    ngx_http_siteflow_enqueue_pt      handler;
    ngx_http_siteflow_pgq_enqueue_t  *e;

    while (!ngx_queue_empty(items)) {
        q = ngx_queue_head(items);
        ngx_queue_remove(q);
        e = ngx_queue_data(q, ngx_http_siteflow_pgq_enqueue_t, queue);

        handler = e->handler;
        data = e->data;
        ngx_free(e);

        handler(data, NGX_ERROR, 0);
    }
}


/* what the hook, the postback and the admin read about an order first */

ngx_int_t
ngx_http_siteflow_pgq_lookup(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_lookup_pt handler, void *data)
{
    int                              len[2];
    const char                      *v[2];
    ngx_http_siteflow_pgq_lookup_t  *lk;

    lk = ngx_http_siteflow_pgq_lookup_add(pool, storefront,
                                          order_id ? order_id : source_id,
                                          order_id == NULL);
    if (lk == NULL) {
        return NGX_ERROR;
    }

    lk->handler = handler;
    lk->data = data;

    v[0] = (const char *) storefront->data;
    len[0] = storefront->len;
    v[1] = (const char *) lk->key.data;
    len[1] = lk->key.len;

    lk->query = ngx_http_siteflow_pg_prepared(lk->by_source
                                              ? "siteflow_lookup_source"
                                              : "siteflow_lookup_order",
                                              2, v, len,
                                             ngx_http_siteflow_pgq_lookup_done,
                                              lk);
    if (lk->query == NULL) {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


static void
ngx_http_siteflow_pgq_lookup_done(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_lookup_t  *lk = data;

    lk->query = NULL;

    if (res == NULL || PQntuples(res) != 1) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: cannot read order \"%V\" of storefront "
                      "\"%V\" from PostgreSQL: %V", &lk->key,
                      &lk->storefront,
                      err ? err : &ngx_http_siteflow_pgq_no_row);
        if (res) {
            PQclear(res);
        }

        lk->handler(lk->data, NGX_ERROR);
        return;
    }

    lk->found = !PQgetisnull(res, 0, 0);

    if (lk->found) {
        ngx_http_siteflow_pgq_index_row(res, 0, 0, &lk->storefront, lk->pool,
                                        &lk->idx);
        lk->pending[NGX_HTTP_SITEFLOW_JOB_ORDER] =
                                   ngx_http_siteflow_pgq_u64(res, 0, 8) != 0;
        lk->pending[NGX_HTTP_SITEFLOW_JOB_CANCEL] =
                                   ngx_http_siteflow_pgq_u64(res, 0, 9) != 0;

    } else if (!lk->by_source) {
        lk->pending[NGX_HTTP_SITEFLOW_JOB_ORDER] =
                                  ngx_http_siteflow_pgq_u64(res, 0, 10) != 0;
        lk->pending[NGX_HTTP_SITEFLOW_JOB_CANCEL] =
                                  ngx_http_siteflow_pgq_u64(res, 0, 11) != 0;
    }

    ngx_http_siteflow_pgq_lookup_loaded(lk, 1);

    PQclear(res);

    lk->handler(lk->data, NGX_OK);
}


ngx_uint_t
ngx_http_siteflow_pgq_forgot(ngx_str_t *order_id)
{
    uint64_t    pruned_max;
    ngx_uint_t  pruned_other;

    ngx_http_siteflow_pgq_horizon(&pruned_max, &pruned_other);

    return sf_order_forgotten((const char *) order_id->data, order_id->len,
                              pruned_max, pruned_other ? 1 : 0);
}


/* the admin's listing */

ngx_int_t
ngx_http_siteflow_pgq_list(ngx_pool_t *pool,
    ngx_http_siteflow_queue_filter_t *f, ngx_array_t *out,
    ngx_http_siteflow_lookup_pt handler, void *data)
{
    int                            len[4];
    u_char                         sbuf[NGX_INT_T_LEN + 1];
    u_char                         lbuf[NGX_INT_T_LEN + 1];
    const char                    *v[4];
    ngx_http_siteflow_pgq_list_t  *l;

    l = ngx_palloc(pool, sizeof(ngx_http_siteflow_pgq_list_t));
    if (l == NULL) {
        return NGX_ERROR;
    }

    l->pool = pool;
    l->out = out;
    l->handler = handler;
    l->data = data;

    if (ngx_array_init(out, pool, f->limit ? f->limit : 64,
                       sizeof(ngx_http_siteflow_queue_item_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_sprintf(sbuf, "%i%Z", f->state);
    ngx_sprintf(lbuf, "%ui%Z", f->limit ? f->limit : 10000);

    v[0] = (const char *) sbuf;
    len[0] = ngx_strlen(sbuf);
    v[1] = f->storefront.len ? (const char *) f->storefront.data : "";
    len[1] = f->storefront.len;
    v[2] = f->order_id.len ? (const char *) f->order_id.data : "";
    len[2] = f->order_id.len;
    v[3] = (const char *) lbuf;
    len[3] = ngx_strlen(lbuf);

    if (ngx_http_siteflow_pg_prepared("siteflow_list", 4, v, len,
                                      ngx_http_siteflow_pgq_listed, l)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


static void
ngx_http_siteflow_pgq_listed(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_list_t  *l = data;

    int                              i, n;
    ngx_int_t                        rc;
    ngx_http_siteflow_queue_item_t  *it;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: cannot list the jobs in PostgreSQL: %V",
                      err);
        l->handler(l->data, NGX_ERROR);
        return;
    }

    rc = NGX_OK;
    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        it = ngx_array_push(l->out);
        if (it == NULL) {
            rc = NGX_ERROR;
            break;
        }

        it->id = ngx_http_siteflow_pgq_u64(res, i, 0);
        it->kind = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, i, 1);
        it->state = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, i, 4);
        it->attempts = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, i, 5);
        it->next_ms = ngx_http_siteflow_pgq_u64(res, i, 6);
        it->created_ms = ngx_http_siteflow_pgq_u64(res, i, 8);

        if (ngx_http_siteflow_pgq_str(res, i, 2, l->pool, &it->storefront)
               != NGX_OK
            || ngx_http_siteflow_pgq_str(res, i, 3, l->pool, &it->order_id)
               != NGX_OK
            || ngx_http_siteflow_pgq_str(res, i, 7, l->pool, &it->error)
               != NGX_OK)
        {
            rc = NGX_ERROR;
            break;
        }
    }

    PQclear(res);

    l->handler(l->data, rc);
}


/* the admin's retry of a failed job */

ngx_int_t
ngx_http_siteflow_pgq_retry(uint64_t id, ngx_http_siteflow_enqueue_pt handler,
    void *data)
{
    int                               len[1];
    u_char                            buf[NGX_INT64_LEN + 1];
    const char                       *v[1];
    ngx_http_siteflow_pgq_retry_t  *e;

    e = ngx_alloc(sizeof(ngx_http_siteflow_pgq_retry_t), ngx_cycle->log);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->handler = handler;
    e->data = data;
    e->id = id;

    ngx_sprintf(buf, "%uL%Z", id);

    v[0] = (const char *) buf;
    len[0] = ngx_strlen(buf);

    if (ngx_http_siteflow_pg_prepared("siteflow_retry", 1, v, len,
                                      ngx_http_siteflow_pgq_retried, e)
        == NULL)
    {
        ngx_free(e);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_siteflow_pgq_retried(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_retry_t  *e = data;

    uint64_t                       id;
    ngx_int_t                      rc;
    ngx_http_siteflow_enqueue_pt   handler;

    handler = e->handler;
    data = e->data;
    id = e->id;
    ngx_free(e);

    if (res == NULL || PQntuples(res) != 1) {
        if (res) {
            PQclear(res);
        }

        handler(data, NGX_ERROR, id);
        return;
    }

    if (PQgetisnull(res, 0, 0)) {
        rc = NGX_DECLINED;

    } else if (ngx_http_siteflow_pgq_u64(res, 0, 1) == 0) {
        rc = NGX_BUSY;

    } else {
        rc = NGX_OK;
    }

    PQclear(res);

    if (rc == NGX_OK) {
        ngx_http_siteflow_pgq_wake();
    }

    handler(data, rc, id);
}


/* the metrics' snapshot: every second while somebody reads it */

static void
ngx_http_siteflow_pgq_stats_read(void)
{
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    st->stats_read = ngx_current_msec;

    if (!st->stats.timer_set && st->counting == NULL) {
        ngx_http_siteflow_pgq_stats_handler(&st->stats);
    }
}


static void
ngx_http_siteflow_pgq_stats_handler(ngx_event_t *ev)
{
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (ngx_exiting || ngx_quit || ngx_terminate
        || ngx_http_siteflow_pgq == NULL
        || ngx_current_msec - st->stats_read > NGX_HTTP_SITEFLOW_PG_STATS_IDLE
        || st->counting != NULL)
    {
        return;
    }

    st->counting = ngx_http_siteflow_pg_prepared("siteflow_stats", 0, NULL,
                                                 NULL,
                                                 ngx_http_siteflow_pgq_counted,
                                                 NULL);
}


static void
ngx_http_siteflow_pgq_counted(void *data, PGresult *res, ngx_str_t *err)
{
    int                             i, n;
    ngx_pool_t                     *pool;
    ngx_array_t                    *counts;
    ngx_http_siteflow_pgq_t        *st;
    ngx_http_siteflow_pgq_count_t  *c;

    st = &ngx_http_siteflow_pgq_state;
    st->counting = NULL;

    if (res == NULL) {
        goto next;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        PQclear(res);
        goto next;
    }

    n = PQntuples(res);

    counts = ngx_array_create(pool, n ? n : 1,
                              sizeof(ngx_http_siteflow_pgq_count_t));
    if (counts == NULL) {
        ngx_destroy_pool(pool);
        PQclear(res);
        goto next;
    }

    for (i = 0; i < n; i++) {

        if (PQgetvalue(res, i, 0)[0] == '-') {
            st->index_orders = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, i,
                                                                      4);
            st->index_forgotten = ngx_http_siteflow_pgq_u64(res, i, 5);
            continue;
        }

        c = ngx_array_push(counts);
        if (c == NULL
            || ngx_http_siteflow_pgq_str(res, i, 1, pool, &c->storefront)
               != NGX_OK)
        {
            break;
        }

        c->state = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, i, 0);
        c->count = ngx_http_siteflow_pgq_u64(res, i, 2);
        c->oldest = ngx_http_siteflow_pgq_u64(res, i, 3);
    }

    PQclear(res);

    if (st->stats_pool != NULL) {
        ngx_destroy_pool(st->stats_pool);
    }

    st->stats_pool = pool;
    st->counts = counts;

next:

    if (ngx_http_siteflow_pgq != NULL && !st->stats.timer_set) {
        ngx_add_timer(&st->stats, NGX_HTTP_SITEFLOW_PG_STATS_EVERY);
    }
}


ngx_int_t
ngx_http_siteflow_pgq_stats(ngx_uint_t counts[5])
{
    ngx_uint_t                      i;
    ngx_http_siteflow_pgq_t        *st;
    ngx_http_siteflow_pgq_count_t  *c;

    st = &ngx_http_siteflow_pgq_state;

    ngx_http_siteflow_pgq_stats_read();

    ngx_memzero(counts, 5 * sizeof(ngx_uint_t));

    if (st->counts == NULL) {
        return NGX_OK;
    }

    c = st->counts->elts;

    for (i = 0; i < st->counts->nelts; i++) {
        if (c[i].state < 5) {
            counts[c[i].state] += (ngx_uint_t) c[i].count;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_pgq_oldest(ngx_pool_t *pool, ngx_array_t *out)
{
    ngx_uint_t                         i;
    ngx_http_siteflow_pgq_t           *st;
    ngx_http_siteflow_pgq_count_t     *c;
    ngx_http_siteflow_queue_oldest_t  *o;

    st = &ngx_http_siteflow_pgq_state;

    if (ngx_array_init(out, pool, 8,
                       sizeof(ngx_http_siteflow_queue_oldest_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (st->counts == NULL) {
        return NGX_OK;
    }

    c = st->counts->elts;

    for (i = 0; i < st->counts->nelts; i++) {

        if (c[i].state != SF_QSTATE_PENDING
            && c[i].state != SF_QSTATE_RETRYING
            && c[i].state != SF_QSTATE_FAILED)
        {
            continue;
        }

        o = ngx_array_push(out);
        if (o == NULL) {
            return NGX_ERROR;
        }

        o->state = c[i].state;
        o->created_ms = c[i].oldest;
        o->storefront = c[i].storefront;

        if (ngx_http_siteflow_pgq_copy(pool, &o->storefront) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void
ngx_http_siteflow_pgq_index(ngx_uint_t *orders, uint64_t *forgotten)
{
    *orders = ngx_http_siteflow_pgq_state.index_orders;
    *forgotten = ngx_http_siteflow_pgq_state.index_forgotten;
}

