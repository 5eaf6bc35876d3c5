
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
#include "ngx_http_siteflow_queue_pg_sql.h"
#include "ngx_http_siteflow_curl.h"
#include "ngx_http_siteflow_pg.h"
#include "sf_job.h"
#include "sf_qrec.h"
#include "sf_breaker.h"


/*
 * The job queue on PostgreSQL ("siteflow_queue", docs/fleet.md).
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


#define NGX_HTTP_SITEFLOW_PG_POLL        100       /* ms between claims */
#define NGX_HTTP_SITEFLOW_PG_BATCH       8         /* jobs a claim */
#define NGX_HTTP_SITEFLOW_PG_PRUNE_EVERY 60000     /* ms */
#define NGX_HTTP_SITEFLOW_PG_STATS_EVERY 1000      /* ms */
#define NGX_HTTP_SITEFLOW_PG_STATS_IDLE  60000     /* ms */
#define NGX_HTTP_SITEFLOW_PG_ERROR_MAX   1024


typedef struct {
    ngx_queue_t                        queue;     /* the process's */
    ngx_pool_t                        *pool;
    ngx_str_t                          storefront;
    ngx_str_t                          key;       /* order id or source */
    ngx_uint_t                         by_source;
    ngx_uint_t                         found;
    ngx_uint_t                         loaded;
    ngx_uint_t                         pending[4];  /* by kind */
    ngx_http_siteflow_index_t          idx;
    ngx_http_siteflow_pg_query_t      *query;
    ngx_http_siteflow_lookup_pt        handler;
    void                              *data;
} ngx_http_siteflow_pgq_lookup_t;


typedef struct {
    ngx_http_siteflow_enqueue_pt       handler;
    void                              *data;
    uint64_t                           id;
} ngx_http_siteflow_pgq_enqueue_t;


typedef struct {
    ngx_pool_t                        *pool;
    ngx_array_t                       *out;
    ngx_http_siteflow_lookup_pt        handler;
    void                              *data;
} ngx_http_siteflow_pgq_list_t;


typedef struct {
    ngx_http_siteflow_run_t           *run;
    ngx_http_siteflow_outcome_t        out;
    ngx_http_siteflow_index_t          idx;
    ngx_http_siteflow_pg_query_t      *query;
    ngx_event_t                        retry;
    char                              *results;
} ngx_http_siteflow_pgq_finish_t;


typedef struct {
    ngx_str_t                          storefront;
    ngx_uint_t                         state;
    uint64_t                           count;
    uint64_t                           oldest;
} ngx_http_siteflow_pgq_count_t;


typedef struct {
    ngx_queue_t                        lookups;
    ngx_str_t                          edge;       /* lease owner */
    ngx_uint_t                         concurrency;

    /* worker 0: the consumer */
    ngx_uint_t                         consumer;
    ngx_uint_t                         runs;
    ngx_queue_t                        inflight;
    ngx_event_t                        claim;
    ngx_event_t                        renew;
    ngx_event_t                        prune;
    ngx_http_siteflow_pg_query_t      *claiming;
    ngx_http_siteflow_pg_query_t      *renewing;
    ngx_http_siteflow_pg_query_t      *pruning;
    uint64_t                           pruned_max;
    ngx_uint_t                         pruned_other;
    sf_breakers_t                      breakers;    /* this edge's */

    /* every worker: the metrics' snapshot */
    ngx_event_t                        stats;
    ngx_http_siteflow_pg_query_t      *counting;
    ngx_msec_t                         stats_read;
    ngx_pool_t                        *stats_pool;
    ngx_array_t                       *counts;     /* pgq_count_t */
    ngx_uint_t                         index_orders;
    uint64_t                           index_forgotten;

    ngx_connection_t                   dummy;
} ngx_http_siteflow_pgq_t;


static void ngx_http_siteflow_pgq_event(ngx_event_t *ev,
    ngx_event_handler_pt handler);
static const char *ngx_http_siteflow_pgq_setup(void);
static void ngx_http_siteflow_pgq_enqueued(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_lookup_done(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_lookup_cleanup(void *data);
static void ngx_http_siteflow_pgq_index_row(PGresult *res, int row,
    int col, ngx_str_t *storefront, ngx_pool_t *pool,
    ngx_http_siteflow_index_t *idx);
static ngx_int_t ngx_http_siteflow_pgq_str(PGresult *res, int row, int col,
    ngx_pool_t *pool, ngx_str_t *s);
static uint64_t ngx_http_siteflow_pgq_u64(PGresult *res, int row, int col);
static ngx_int_t ngx_http_siteflow_pgq_copy(ngx_pool_t *pool, ngx_str_t *s);
static void ngx_http_siteflow_pgq_listed(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_retried(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_claim_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pgq_claimed(void *data, PGresult *res,
    ngx_str_t *err);
static ngx_http_siteflow_run_t *ngx_http_siteflow_pgq_run(PGresult *res,
    int row);
static ngx_http_siteflow_run_t *ngx_http_siteflow_pgq_running(uint64_t id);
static void ngx_http_siteflow_pgq_wake(void);
static u_char *ngx_http_siteflow_pgq_waiting(ngx_pool_t *pool, u_char **kinds,
    uint64_t now);
static void ngx_http_siteflow_pgq_release(ngx_pool_t *pool,
    ngx_array_t *ids);
static void ngx_http_siteflow_pgq_released(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_finish_write(
    ngx_http_siteflow_pgq_finish_t *f);
static void ngx_http_siteflow_pgq_finished(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_finish_retry(ngx_event_t *ev);
static void ngx_http_siteflow_pgq_finish_cleanup(void *data);
static void ngx_http_siteflow_pgq_run_free(ngx_http_siteflow_run_t *run);
static void ngx_http_siteflow_pgq_renew_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pgq_renewed(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_prune_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pgq_pruned(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_stats_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pgq_counted(void *data, PGresult *res,
    ngx_str_t *err);
static void ngx_http_siteflow_pgq_stats_read(void);


ngx_http_siteflow_pgq_conf_t  *ngx_http_siteflow_pgq;

static ngx_http_siteflow_pgq_t  ngx_http_siteflow_pgq_state;

static ngx_http_siteflow_runner_pt  ngx_http_siteflow_pgq_runner;


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

    ngx_queue_init(&st->lookups);
    ngx_queue_init(&st->inflight);
    st->concurrency = concurrency;
    st->dummy.fd = (ngx_socket_t) -1;

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

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    if (ngx_http_siteflow_pgq_runner == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "siteflow: no job runner registered");
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_curl_init_process(cycle, concurrency, 0)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    st->consumer = 1;

    ngx_http_siteflow_pgq_event(&st->claim,
                                ngx_http_siteflow_pgq_claim_handler);
    ngx_http_siteflow_pgq_event(&st->renew,
                                ngx_http_siteflow_pgq_renew_handler);
    ngx_http_siteflow_pgq_event(&st->prune,
                                ngx_http_siteflow_pgq_prune_handler);

    st->claim.cancelable = 1;
    st->renew.cancelable = 1;
    st->prune.cancelable = 1;

    ngx_add_timer(&st->claim, 1);
    ngx_add_timer(&st->renew, pc->lease / 3);
    ngx_add_timer(&st->prune, 1000);

    return NGX_OK;
}


void
ngx_http_siteflow_pgq_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t              *q;
    ngx_http_siteflow_run_t  *run;
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (st->consumer) {
        st->consumer = 0;

        /*
         * runs in flight are dropped: their leases run out and another
         * edge (or this one's next worker 0) takes them over, with "a
         * create may be out" set
         */

        while (!ngx_queue_empty(&st->inflight)) {
            q = ngx_queue_head(&st->inflight);
            run = ngx_queue_data(q, ngx_http_siteflow_run_t, inflight);

            st->runs--;
            ngx_http_siteflow_pgq_run_free(run);
        }

        ngx_http_siteflow_curl_exit_process(cycle);
    }

    ngx_http_siteflow_pg_exit_process(cycle);

    if (st->stats_pool != NULL) {
        ngx_destroy_pool(st->stats_pool);
        st->stats_pool = NULL;
        st->counts = NULL;
    }

    ngx_http_siteflow_pgq = NULL;
}


static void
ngx_http_siteflow_pgq_event(ngx_event_t *ev, ngx_event_handler_pt handler)
{
    ev->handler = handler;
    ev->data = &ngx_http_siteflow_pgq_state.dummy;
    ev->log = ngx_cycle->log;
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


/* enqueue: one statement, answered once it is committed */

ngx_int_t
ngx_http_siteflow_pgq_enqueue(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *text, ngx_http_siteflow_index_t *idx,
    ngx_http_siteflow_enqueue_pt handler, void *data)
{
    int                               len[7];
    u_char                            kbuf[NGX_INT_T_LEN + 1];
    u_char                            rbuf[NGX_INT_T_LEN + 1];
    u_char                            fbuf[NGX_INT64_LEN + 1];
    const char                       *v[7];
    ngx_http_siteflow_pgq_enqueue_t  *e;

    e = ngx_alloc(sizeof(ngx_http_siteflow_pgq_enqueue_t), ngx_cycle->log);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->handler = handler;
    e->data = data;
    e->id = 0;

    ngx_sprintf(kbuf, "%ui%Z", kind);
    ngx_sprintf(rbuf, "%i%Z", idx ? idx->rank : 0);
    ngx_sprintf(fbuf, "%uD%Z", idx ? idx->fingerprint : 0);

    v[0] = (const char *) kbuf;
    len[0] = ngx_strlen(kbuf);
    v[1] = (const char *) storefront->data;
    len[1] = storefront->len;
    v[2] = (const char *) order_id->data;
    len[2] = order_id->len;
    v[3] = (const char *) text->data;
    len[3] = text->len;
    v[4] = idx ? "1" : "0";
    len[4] = 1;
    v[5] = (const char *) rbuf;
    len[5] = ngx_strlen(rbuf);
    v[6] = (const char *) fbuf;
    len[6] = ngx_strlen(fbuf);

    if (ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_ENQUEUE, 7, v, len,
                                   ngx_http_siteflow_pgq_enqueued, e)
        == NULL)
    {
        ngx_free(e);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_siteflow_pgq_enqueued(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_enqueue_t  *e = data;

    uint64_t                       id;
    ngx_http_siteflow_enqueue_pt   handler;

    handler = e->handler;
    data = e->data;
    ngx_free(e);

    if (res == NULL || PQntuples(res) != 1) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: a job could not be queued in PostgreSQL: "
                      "%V", err ? err : &ngx_http_siteflow_pgq_state.edge);
        if (res) {
            PQclear(res);
        }

        handler(data, NGX_ERROR, 0);
        return;
    }

    id = ngx_http_siteflow_pgq_u64(res, 0, 0);
    PQclear(res);

    ngx_http_siteflow_pgq_wake();

    handler(data, NGX_OK, id);
}


/* what the hook and the runner read about an order, fetched first */

ngx_int_t
ngx_http_siteflow_pgq_lookup(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_lookup_pt handler, void *data)
{
    int                              len[2];
    const char                      *v[2];
    ngx_pool_cleanup_t              *cln;
    ngx_http_siteflow_pgq_lookup_t  *lk;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_http_siteflow_pgq_lookup_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    lk = cln->data;
    ngx_memzero(lk, sizeof(ngx_http_siteflow_pgq_lookup_t));

    lk->pool = pool;
    lk->storefront = *storefront;
    lk->by_source = (order_id == NULL);
    lk->key = order_id ? *order_id : *source_id;
    lk->handler = handler;
    lk->data = data;

    ngx_queue_insert_head(&ngx_http_siteflow_pgq_state.lookups, &lk->queue);

    cln->handler = ngx_http_siteflow_pgq_lookup_cleanup;

    v[0] = (const char *) storefront->data;
    len[0] = storefront->len;
    v[1] = (const char *) lk->key.data;
    len[1] = lk->key.len;

    lk->query = ngx_http_siteflow_pg_query(lk->by_source
                                           ? NGX_HTTP_SITEFLOW_PG_LOOKUP_SOURCE
                                           : NGX_HTTP_SITEFLOW_PG_LOOKUP_ORDER,
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
                      err ? err : &ngx_http_siteflow_pgq_state.edge);
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

    lk->loaded = 1;

    PQclear(res);

    lk->handler(lk->data, NGX_OK);
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


/* the index entry's columns from col on: order id, source id, SiteFlow
   id, state, rank, fingerprint, updated, sent */

static void
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

    idx->fingerprint = (uint32_t) ngx_http_siteflow_pgq_u64(res, row,
                                                            col + 5);
    idx->updated_ms = ngx_http_siteflow_pgq_u64(res, row, col + 6);
    idx->sent_ms = ngx_http_siteflow_pgq_u64(res, row, col + 7);
}


static ngx_int_t
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


static uint64_t
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


ngx_int_t
ngx_http_siteflow_pgq_index_get(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_pool_t *pool, ngx_http_siteflow_index_t *idx)
{
    ngx_str_t                       *key;
    ngx_queue_t                     *q, *lookups;
    ngx_http_siteflow_pgq_lookup_t  *lk;

    lookups = &ngx_http_siteflow_pgq_state.lookups;
    key = order_id ? order_id : source_id;

    for (q = ngx_queue_head(lookups);
         q != ngx_queue_sentinel(lookups);
         q = ngx_queue_next(q))
    {
        lk = ngx_queue_data(q, ngx_http_siteflow_pgq_lookup_t, queue);

        if (!lk->loaded
            || lk->storefront.len != storefront->len
            || ngx_strncmp(lk->storefront.data, storefront->data,
                           storefront->len) != 0)
        {
            continue;
        }

        if (lk->by_source == (order_id == NULL)
            && lk->key.len == key->len
            && ngx_strncmp(lk->key.data, key->data, key->len) == 0)
        {
            goto found;
        }

        if (order_id && lk->found
            && lk->idx.order_id.len == order_id->len
            && ngx_strncmp(lk->idx.order_id.data, order_id->data,
                           order_id->len) == 0)
        {
            goto found;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "siteflow: order \"%V\" was not read first", key);

    return NGX_DECLINED;

found:

    if (!lk->found) {
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


static ngx_int_t
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
    ngx_queue_t                     *q, *lookups;
    ngx_http_siteflow_pgq_lookup_t  *lk;

    if (kind > NGX_HTTP_SITEFLOW_JOB_CANCEL) {
        return 0;
    }

    lookups = &ngx_http_siteflow_pgq_state.lookups;

    for (q = ngx_queue_head(lookups);
         q != ngx_queue_sentinel(lookups);
         q = ngx_queue_next(q))
    {
        lk = ngx_queue_data(q, ngx_http_siteflow_pgq_lookup_t, queue);

        if (!lk->loaded
            || lk->storefront.len != storefront->len
            || ngx_strncmp(lk->storefront.data, storefront->data,
                           storefront->len) != 0)
        {
            continue;
        }

        if ((!lk->by_source
             && lk->key.len == order_id->len
             && ngx_strncmp(lk->key.data, order_id->data, order_id->len)
                == 0)
            || (lk->found
                && lk->idx.order_id.len == order_id->len
                && ngx_strncmp(lk->idx.order_id.data, order_id->data,
                               order_id->len)
                   == 0))
        {
            return lk->pending[kind];
        }
    }

    return 0;
}


ngx_uint_t
ngx_http_siteflow_pgq_forgot(ngx_str_t *order_id)
{
    return ngx_http_siteflow_index_forgot_by(order_id,
                                   ngx_http_siteflow_pgq_state.pruned_max,
                                   ngx_http_siteflow_pgq_state.pruned_other);
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

    if (ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_LIST, 4, v, len,
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
    ngx_http_siteflow_pgq_enqueue_t  *e;

    e = ngx_alloc(sizeof(ngx_http_siteflow_pgq_enqueue_t), ngx_cycle->log);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->handler = handler;
    e->data = data;
    e->id = id;

    ngx_sprintf(buf, "%uL%Z", id);

    v[0] = (const char *) buf;
    len[0] = ngx_strlen(buf);

    if (ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_RETRY, 1, v, len,
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
    ngx_http_siteflow_pgq_enqueue_t  *e = data;

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


/* the consumer (worker 0 of every edge) */

void
ngx_http_siteflow_pgq_runner_set(ngx_http_siteflow_runner_pt runner)
{
    ngx_http_siteflow_pgq_runner = runner;
}


static void
ngx_http_siteflow_pgq_wake(void)
{
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (!st->consumer || st->claiming != NULL) {
        return;
    }

    if (st->claim.timer_set) {
        ngx_del_timer(&st->claim);
    }

    if (!st->claim.posted) {
        ngx_post_event(&st->claim, &ngx_posted_events);
    }
}


static void
ngx_http_siteflow_pgq_claim_handler(ngx_event_t *ev)
{
    int                       len[5];
    u_char                   *names, *kinds;
    u_char                    lbuf[NGX_INT_T_LEN + 1];
    u_char                    nbuf[NGX_INT_T_LEN + 1];
    ngx_uint_t                n;
    ngx_pool_t               *pool;
    const char               *v[5];
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (ngx_exiting || ngx_quit || ngx_terminate || !st->consumer) {
        return;     /* runs in flight finish; nothing new starts */
    }

    if (st->claiming != NULL) {
        return;
    }

    if (st->runs >= st->concurrency) {
        ngx_add_timer(ev, NGX_HTTP_SITEFLOW_PG_POLL);
        return;
    }

    n = ngx_min(st->concurrency - st->runs, NGX_HTTP_SITEFLOW_PG_BATCH);

    ngx_sprintf(lbuf, "%M%Z", ngx_http_siteflow_pgq->lease);
    ngx_sprintf(nbuf, "%ui%Z", n);

    v[0] = (const char *) st->edge.data;
    len[0] = st->edge.len;
    v[1] = (const char *) lbuf;
    len[1] = ngx_strlen(lbuf);
    v[2] = (const char *) nbuf;
    len[2] = ngx_strlen(nbuf);

    /* the jobs that wait for an open breaker are not claimed */

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        ngx_add_timer(ev, NGX_HTTP_SITEFLOW_PG_POLL);
        return;
    }

    names = ngx_http_siteflow_pgq_waiting(pool, &kinds,
                                          ngx_http_siteflow_now_ms());
    if (names == NULL) {
        ngx_destroy_pool(pool);
        ngx_add_timer(ev, NGX_HTTP_SITEFLOW_PG_POLL);
        return;
    }

    v[3] = (const char *) names;
    len[3] = ngx_strlen(names);
    v[4] = (const char *) kinds;
    len[4] = ngx_strlen(kinds);

    st->claiming = ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_CLAIM, 5,
                                              v, len,
                                              ngx_http_siteflow_pgq_claimed,
                                              (void *) (uintptr_t) n);
    ngx_destroy_pool(pool);

    if (st->claiming == NULL) {
        ngx_add_timer(ev, NGX_HTTP_SITEFLOW_PG_POLL);
    }
}


/*
 * The (storefront, kind) pairs whose jobs wait for one of this edge's
 * open breakers (a probe is out, or its backoff is not over), as two
 * array literals: {"shop1","shop1"} and {1,2}.  A breaker whose probe is
 * due lets its jobs be claimed: the first is the probe, the others are
 * given back (ngx_http_siteflow_pgq_claimed()).
 */

static u_char *
ngx_http_siteflow_pgq_waiting(ngx_pool_t *pool, u_char **kinds,
    uint64_t now)
{
    u_char                   *p, *q, *names;
    size_t                    size;
    ngx_str_t                 name;
    ngx_uint_t                i, j, kind, up, n;
    sf_breaker_t             *b;
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    size = 3;

    for (i = 0; i < st->breakers.n; i++) {
        size += 3 * (2 * st->breakers.b[i].len + 3);
    }

    names = ngx_pnalloc(pool, size);
    *kinds = ngx_pnalloc(pool, 3 + 3 * 2 * st->breakers.n + 1);

    if (names == NULL || *kinds == NULL) {
        return NULL;
    }

    p = names;
    q = *kinds;
    *p++ = '{';
    *q++ = '{';
    n = 0;

    for (i = 0; i < st->breakers.n; i++) {
        b = &st->breakers.b[i];

        if (b->failures == 0 || (!b->probing && now >= b->until)) {
            continue;
        }

        name.data = (u_char *) b->name;
        name.len = b->len;

        for (kind = NGX_HTTP_SITEFLOW_JOB_ORDER;
             kind <= NGX_HTTP_SITEFLOW_JOB_UPDATE;
             kind++)
        {
            up = ngx_http_siteflow_job_upstreams(kind, &name);

            if (!(up & b->up)) {
                continue;
            }

            if (n++) {
                *p++ = ',';
                *q++ = ',';
            }

            *p++ = '"';

            for (j = 0; j < b->len; j++) {
                if (b->name[j] == '"' || b->name[j] == '\\') {
                    *p++ = '\\';
                }

                *p++ = b->name[j];
            }

            *p++ = '"';
            *q++ = (u_char) ('0' + kind);
        }
    }

    *p++ = '}';
    *p = '\0';
    *q++ = '}';
    *q = '\0';

    return names;
}


static void
ngx_http_siteflow_pgq_claimed(void *data, PGresult *res, ngx_str_t *err)
{
    int                       i, n;
    uint64_t                  id, now;
    unsigned                  probe;
    ngx_str_t                 name;
    ngx_uint_t                asked, kind;
    ngx_pool_t               *pool;
    ngx_array_t               release;
    ngx_http_siteflow_run_t  *run;
    ngx_http_siteflow_pgq_t  *st;
    uint64_t                 *idp;

    st = &ngx_http_siteflow_pgq_state;
    st->claiming = NULL;
    asked = (ngx_uint_t) (uintptr_t) data;
    pool = NULL;
    ngx_memzero(&release, sizeof(ngx_array_t));

    if (res == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: cannot claim jobs in PostgreSQL: %V", err);
        n = 0;
        goto next;
    }

    n = PQntuples(res);

    if (n > 0) {
        st->pruned_max = ngx_http_siteflow_pgq_u64(res, 0, 17);
        st->pruned_other = ngx_http_siteflow_pgq_u64(res, 0, 18) != 0;
    }

    now = ngx_http_siteflow_now_ms();

    for (i = 0; i < n; i++) {

        id = ngx_http_siteflow_pgq_u64(res, i, 0);

        if (ngx_http_siteflow_pgq_running(id) != NULL) {
            /* claimed again while its run goes on here: it finishes it */
            continue;
        }

        /* an open breaker lets one probe go; the others are given back */

        probe = 0;

        if (st->breakers.open) {
            kind = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, i, 1);
            name.data = (u_char *) PQgetvalue(res, i, 2);
            name.len = PQgetlength(res, i, 2);

            if (!sf_breaker_allows(&st->breakers, (char *) name.data,
                                   name.len,
                                   ngx_http_siteflow_job_upstreams(kind,
                                                                   &name),
                                   now, &probe))
            {
                if (pool == NULL) {
                    pool = ngx_create_pool(512, ngx_cycle->log);
                    if (pool == NULL
                        || ngx_array_init(&release, pool, 8,
                                          sizeof(uint64_t))
                           != NGX_OK)
                    {
                        /* their leases run out */
                        continue;
                    }
                }

                idp = ngx_array_push(&release);
                if (idp != NULL) {
                    *idp = id;
                }

                continue;
            }
        }

        run = ngx_http_siteflow_pgq_run(res, i);

        if (run == NULL) {
            /* its lease runs out and it is claimed again */
            sf_breaker_probe_end(&st->breakers, PQgetvalue(res, i, 2),
                                 PQgetlength(res, i, 2), &probe);
            continue;
        }

        run->probe = probe;

        st->runs++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "siteflow: job %uL (%s) starts",
                       run->id, ngx_http_siteflow_kind_name(run->kind));

        ngx_http_siteflow_pgq_runner(run);
    }

    PQclear(res);

    if (pool != NULL) {
        ngx_http_siteflow_pgq_release(pool, &release);
        ngx_destroy_pool(pool);
    }

next:

    if (!st->consumer) {
        return;
    }

    if (n > 0 && (ngx_uint_t) n == asked && st->runs < st->concurrency) {
        /* more after nginx has looked at its other connections */
        if (!st->claim.posted && !st->claim.timer_set) {
            ngx_post_event(&st->claim, &ngx_posted_next_events);
        }

        return;
    }

    if (!st->claim.timer_set && !st->claim.posted) {
        ngx_add_timer(&st->claim, res ? NGX_HTTP_SITEFLOW_PG_POLL : 1000);
    }
}


static ngx_http_siteflow_run_t *
ngx_http_siteflow_pgq_running(uint64_t id)
{
    ngx_queue_t              *q;
    ngx_http_siteflow_run_t  *run;

    for (q = ngx_queue_head(&ngx_http_siteflow_pgq_state.inflight);
         q != ngx_queue_sentinel(&ngx_http_siteflow_pgq_state.inflight);
         q = ngx_queue_next(q))
    {
        run = ngx_queue_data(q, ngx_http_siteflow_run_t, inflight);

        if (run->id == id) {
            return run;
        }
    }

    return NULL;
}


/* jobs claimed while their breaker waits: their leases given back */

static void
ngx_http_siteflow_pgq_release(ngx_pool_t *pool, ngx_array_t *ids)
{
    int          len[2];
    u_char      *p, *list;
    uint64_t    *id;
    ngx_uint_t   i;
    const char  *v[2];

    if (ids->nelts == 0) {
        return;
    }

    list = ngx_pnalloc(pool, ids->nelts * (NGX_INT64_LEN + 1) + 3);
    if (list == NULL) {
        return;
    }

    id = ids->elts;
    p = list;
    *p++ = '{';

    for (i = 0; i < ids->nelts; i++) {
        p = ngx_sprintf(p, i ? ",%uL" : "%uL", id[i]);
    }

    *p++ = '}';
    *p = '\0';

    v[0] = (const char *) ngx_http_siteflow_pgq_state.edge.data;
    len[0] = ngx_http_siteflow_pgq_state.edge.len;
    v[1] = (const char *) list;
    len[1] = p - list;

    /* not given back: the leases run out */

    (void) ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_RELEASE, 2, v, len,
                                      ngx_http_siteflow_pgq_released, NULL);
}


static void
ngx_http_siteflow_pgq_released(void *data, PGresult *res, ngx_str_t *err)
{
    if (res == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "siteflow: jobs waiting for a breaker could not be "
                      "given back (%V); their leases run out", err);
        return;
    }

    PQclear(res);
}


/* a run from a claimed row, with its order's index entry read */

static ngx_http_siteflow_run_t *
ngx_http_siteflow_pgq_run(PGresult *res, int row)
{
    json_error_t                     err;
    ngx_pool_t                      *pool;
    ngx_pool_cleanup_t              *cln;
    ngx_http_siteflow_run_t         *run;
    ngx_http_siteflow_pgq_lookup_t  *lk;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    run = ngx_pcalloc(pool, sizeof(ngx_http_siteflow_run_t));
    if (run == NULL) {
        goto failed;
    }

    run->pool = pool;
    run->log = ngx_cycle->log;
    run->id = ngx_http_siteflow_pgq_u64(res, row, 0);
    run->kind = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, row, 1);
    run->attempts = (ngx_uint_t) ngx_http_siteflow_pgq_u64(res, row, 5);
    run->created_ms = ngx_http_siteflow_pgq_u64(res, row, 6);
    run->maybe_sent = ngx_http_siteflow_pgq_u64(res, row, 7) != 0;

    if (ngx_http_siteflow_pgq_str(res, row, 2, pool, &run->storefront)
           != NGX_OK
        || ngx_http_siteflow_pgq_str(res, row, 3, pool, &run->order_id)
           != NGX_OK)
    {
        goto failed;
    }

    /* the order's index entry, for index_get() while the run lives */

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_http_siteflow_pgq_lookup_t));
    if (cln == NULL) {
        goto failed;
    }

    lk = cln->data;
    ngx_memzero(lk, sizeof(ngx_http_siteflow_pgq_lookup_t));

    lk->pool = pool;
    lk->storefront = run->storefront;
    lk->key = run->order_id;
    lk->loaded = 1;
    lk->found = !PQgetisnull(res, row, 9);

    if (lk->found) {
        ngx_http_siteflow_pgq_index_row(res, row, 9, &run->storefront, pool,
                                        &lk->idx);
    }

    ngx_queue_insert_head(&ngx_http_siteflow_pgq_state.lookups, &lk->queue);
    cln->handler = ngx_http_siteflow_pgq_lookup_cleanup;

    run->job = json_loadb(PQgetvalue(res, row, 4),
                          PQgetlength(res, row, 4), 0, &err);

    if (PQgetlength(res, row, 8)) {
        run->results = json_loadb(PQgetvalue(res, row, 8),
                                  PQgetlength(res, row, 8), 0, &err);
    }

    if (run->results == NULL) {
        run->results = json_object();
    }

    if (run->job == NULL || run->results == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "siteflow: job %uL in PostgreSQL cannot be read",
                      run->id);
        json_decref(run->job);
        json_decref(run->results);
        goto failed;
    }

    ngx_queue_insert_tail(&ngx_http_siteflow_pgq_state.inflight,
                          &run->inflight);

    return run;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


/* the runner is done with a job: its outcome is written if the lease
   is still this edge's */

void
ngx_http_siteflow_pgq_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_siteflow_pgq_finish_t  *f;

    f = ngx_pcalloc(run->pool, sizeof(ngx_http_siteflow_pgq_finish_t));
    if (f == NULL) {
        ngx_log_error(NGX_LOG_ALERT, run->log, 0,
                      "siteflow: out of memory finishing job %uL", run->id);
        return;
    }

    f->run = run;
    f->out = *out;

    if (run->probe) {
        /* the probe ended without an answer either way */
        unsigned  probe = run->probe;

        sf_breaker_probe_end(&ngx_http_siteflow_pgq_state.breakers,
                             (char *) run->storefront.data,
                             run->storefront.len, &probe);
        run->probe = 0;
    }

    if (f->out.error.len > NGX_HTTP_SITEFLOW_PG_ERROR_MAX) {
        f->out.error.len = NGX_HTTP_SITEFLOW_PG_ERROR_MAX;
    }

    if (f->out.error.len) {
        f->out.error.data = ngx_pstrdup(run->pool, &f->out.error);
        if (f->out.error.data == NULL) {
            f->out.error.len = 0;
        }
    }

    if (out->index) {
        f->idx = *out->index;
        f->out.index = &f->idx;
    }

    f->results = json_dumps(run->results, JSON_COMPACT);

    ngx_http_siteflow_pgq_event(&f->retry,
                                ngx_http_siteflow_pgq_finish_retry);
    f->retry.data = f;

    cln = ngx_pool_cleanup_add(run->pool, 0);
    if (cln) {
        cln->handler = ngx_http_siteflow_pgq_finish_cleanup;
        cln->data = f;
    }

    if (run->xfer) {
        ngx_http_siteflow_xfer_destroy(run->xfer);
        run->xfer = NULL;
    }

    ngx_http_siteflow_pgq_finish_write(f);
}


static void
ngx_http_siteflow_pgq_finish_write(ngx_http_siteflow_pgq_finish_t *f)
{
    int                              len[16];
    u_char                           b[8][NGX_INT64_LEN + 1];
    int64_t                          delay;
    uint64_t                         now;
    ngx_uint_t                       i, state;
    const char                      *v[16];
    ngx_http_siteflow_run_t         *run;
    ngx_http_siteflow_index_t       *idx;
    ngx_http_siteflow_main_conf_t   *smcf;

    run = f->run;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    now = ngx_http_siteflow_now_ms();
    state = f->out.state;
    delay = -1;

    if (state == SF_QSTATE_RETRYING) {
        if (smcf->give_up
            && sf_job_give_up(run->created_ms, now, smcf->give_up))
        {
            state = SF_QSTATE_FAILED;

        } else {
            delay = (int64_t) sf_job_backoff_ms(run->attempts + 1,
                                                smcf->retry_base,
                                                smcf->retry_max,
                                                (uint32_t) ngx_random());
        }
    }

    idx = f->out.index;

    ngx_sprintf(b[0], "%uL%Z", run->id);
    ngx_sprintf(b[1], "%ui%Z", state);
    ngx_sprintf(b[2], "%ui%Z", run->attempts + 1);
    ngx_sprintf(b[3], "%L%Z", delay);
    ngx_sprintf(b[4], "%ui%Z", idx ? idx->state : 0);
    ngx_sprintf(b[5], "%uL%Z", idx ? idx->updated_ms : 0);
    ngx_sprintf(b[6], "%uL%Z", idx ? idx->sent_ms : 0);

    v[0] = (const char *) b[0];
    v[1] = (const char *) ngx_http_siteflow_pgq_state.edge.data;
    len[1] = ngx_http_siteflow_pgq_state.edge.len;
    v[2] = (const char *) b[1];
    v[3] = (const char *) b[2];
    v[4] = (const char *) b[3];
    v[5] = f->out.error.len ? (const char *) f->out.error.data : "";
    len[5] = f->out.error.len;
    v[6] = f->out.maybe_sent ? "true" : "false";
    v[7] = f->results ? f->results : "{}";
    v[8] = idx ? "1" : "0";
    v[9] = idx ? (const char *) idx->storefront.data : "";
    len[9] = idx ? idx->storefront.len : 0;
    v[10] = idx ? (const char *) idx->order_id.data : "";
    len[10] = idx ? idx->order_id.len : 0;
    v[11] = (idx && idx->source_id.len) ? (const char *) idx->source_id.data
                                        : "";
    len[11] = idx ? idx->source_id.len : 0;
    v[12] = (idx && idx->siteflow_id.len)
            ? (const char *) idx->siteflow_id.data : "";
    len[12] = idx ? idx->siteflow_id.len : 0;
    v[13] = (const char *) b[4];
    v[14] = (const char *) b[5];
    v[15] = (const char *) b[6];

    for (i = 0; i < 16; i++) {
        if (i != 1 && i != 5 && (i < 9 || i > 12)) {
            len[i] = ngx_strlen(v[i]);
        }
    }

    f->query = ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_DONE, 16, v,
                                          len,
                                          ngx_http_siteflow_pgq_finished, f);
    if (f->query == NULL) {
        ngx_add_timer(&f->retry, 1000);
    }
}


static void
ngx_http_siteflow_pgq_finished(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_finish_t  *f = data;

    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;
    f->query = NULL;

    if (res == NULL) {
        /* the outcome is kept here until PostgreSQL takes it */
        ngx_log_error(NGX_LOG_ERR, f->run->log, 0,
                      "siteflow: the outcome of job %uL cannot be written "
                      "to PostgreSQL now (%V); trying again",
                      f->run->id, err);
        ngx_add_timer(&f->retry, 1000);
        return;
    }

    if (PQntuples(res) == 1 && ngx_http_siteflow_pgq_u64(res, 0, 0) == 0) {
        ngx_log_error(NGX_LOG_WARN, f->run->log, 0,
                      "siteflow: job %uL: its lease ran out and another "
                      "edge took it over; this edge's outcome is dropped",
                      f->run->id);
    }

    PQclear(res);

    st->runs--;
    ngx_http_siteflow_pgq_run_free(f->run);

    ngx_http_siteflow_pgq_wake();
}


static void
ngx_http_siteflow_pgq_finish_retry(ngx_event_t *ev)
{
    ngx_http_siteflow_pgq_finish_write(ev->data);
}


static void
ngx_http_siteflow_pgq_finish_cleanup(void *data)
{
    ngx_http_siteflow_pgq_finish_t  *f = data;

    if (f->retry.timer_set) {
        ngx_del_timer(&f->retry);
    }

    if (f->query != NULL) {
        ngx_http_siteflow_pg_cancel(f->query);
        f->query = NULL;
    }

    free(f->results);
    f->results = NULL;
}


static void
ngx_http_siteflow_pgq_run_free(ngx_http_siteflow_run_t *run)
{
    ngx_queue_remove(&run->inflight);

    if (run->xfer) {
        ngx_http_siteflow_xfer_destroy(run->xfer);
        run->xfer = NULL;
    }

    json_decref(run->job);
    json_decref(run->results);

    ngx_destroy_pool(run->pool);
}


/* a call of a run was answered or not: this edge's breaker */

void
ngx_http_siteflow_pgq_breaker(ngx_http_siteflow_run_t *run,
    ngx_uint_t siteflow, ngx_uint_t ok)
{
    unsigned                        up, probe;
    uint64_t                        backoff;
    sf_breaker_t                   *b;
    sf_breakers_t                  *br;
    sf_breaker_change_t             change;
    ngx_http_siteflow_main_conf_t  *smcf;

    br = &ngx_http_siteflow_pgq_state.breakers;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    up = siteflow ? SF_BREAKER_SITEFLOW : SF_BREAKER_PRINTNOW;
    probe = run->probe;

    backoff = ok ? 0
              : sf_job_backoff_ms(sf_breaker_next_failures(br,
                                      (char *) run->storefront.data,
                                      run->storefront.len, up),
                                  smcf->retry_base, smcf->retry_max,
                                  (uint32_t) ngx_random());

    change = sf_breaker_report(br, (char *) run->storefront.data,
                               run->storefront.len, up, ok, &probe,
                               ngx_http_siteflow_now_ms(), backoff, &b);
    run->probe = probe;

    if (change == SF_BREAKER_CLOSED) {
        ngx_log_error(NGX_LOG_NOTICE, run->log, 0,
                      "siteflow: %s answers storefront \"%V\" again; "
                      "its queue resumes on this edge",
                      siteflow ? "SiteFlow" : "PrintNow",
                      &run->storefront);
        ngx_http_siteflow_pgq_wake();
    }
}


/* the leases of the jobs this edge runs go on */

static void
ngx_http_siteflow_pgq_renew_handler(ngx_event_t *ev)
{
    int                       len[2];
    u_char                    lbuf[NGX_INT_T_LEN + 1];
    const char               *v[2];
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (!st->consumer) {
        return;
    }

    ngx_add_timer(ev, ngx_http_siteflow_pgq->lease / 3);

    if (st->runs == 0 || st->renewing != NULL) {
        return;
    }

    ngx_sprintf(lbuf, "%M%Z", ngx_http_siteflow_pgq->lease);

    v[0] = (const char *) st->edge.data;
    len[0] = st->edge.len;
    v[1] = (const char *) lbuf;
    len[1] = ngx_strlen(lbuf);

    st->renewing = ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_RENEW, 2,
                                              v, len,
                                              ngx_http_siteflow_pgq_renewed,
                                              NULL);
}


static void
ngx_http_siteflow_pgq_renewed(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_state.renewing = NULL;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: cannot renew this edge's leases in "
                      "PostgreSQL: %V", err);
        return;
    }

    PQclear(res);
}


/* the index forgets orders past index_retention; old finished jobs go */

static void
ngx_http_siteflow_pgq_prune_handler(ngx_event_t *ev)
{
    int                       len[1];
    u_char                    buf[NGX_INT64_LEN + 1];
    const char               *v[1];
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (!st->consumer) {
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_SITEFLOW_PG_PRUNE_EVERY);

    if (st->pruning != NULL) {
        return;
    }

    ngx_sprintf(buf, "%uL%Z", (uint64_t) ngx_http_siteflow_pgq->retention);

    v[0] = (const char *) buf;
    len[0] = ngx_strlen(buf);

    st->pruning = ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_PRUNE, 1,
                                             v, len,
                                             ngx_http_siteflow_pgq_pruned,
                                             NULL);
}


static void
ngx_http_siteflow_pgq_pruned(void *data, PGresult *res, ngx_str_t *err)
{
    ngx_http_siteflow_pgq_state.pruning = NULL;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "siteflow: cannot prune the sent-orders index in "
                      "PostgreSQL: %V", err);
        return;
    }

    if (PQntuples(res) == 1 && ngx_http_siteflow_pgq_u64(res, 0, 0) != 0) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "siteflow: the sent-orders index forgot %s orders "
                      "unused for index_retention, %s finished jobs went",
                      PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    }

    PQclear(res);
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

    st->counting = ngx_http_siteflow_pg_query(NGX_HTTP_SITEFLOW_PG_STATS, 0,
                                              NULL, NULL,
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
