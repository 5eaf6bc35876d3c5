
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
#include "ngx_http_siteflow_curl.h"
#include "sf_job.h"
#include "sf_json_tree.h"
#include "sf_qrec.h"
#include "sf_breaker.h"


/*
 * The consumer of the PostgreSQL queue, in worker 0 of every edge: it
 * claims due jobs with FOR UPDATE SKIP LOCKED under a lease (only the
 * first unfinished job of an order, none that waits for one of this
 * edge's breakers), runs them with the same runner as the spool, and
 * writes the outcome (and the order's part of the index entry) only if
 * it still holds the lease.  It renews the leases of the jobs it runs; a
 * job whose edge died is claimed by another edge when its lease runs
 * out, with "a create may be out" set, so the order is looked up by
 * sourceOrderId before anything is created again.  It also prunes the
 * sent-orders index (index_retention).
 */


#define NGX_HTTP_SITEFLOW_PG_POLL        100       /* ms between claims */
#define NGX_HTTP_SITEFLOW_PG_BATCH       8         /* jobs a claim */
#define NGX_HTTP_SITEFLOW_PG_PRUNE_EVERY 60000     /* ms */
#define NGX_HTTP_SITEFLOW_PG_ERROR_MAX   1024


typedef struct {
    ngx_http_siteflow_run_t           *run;
    ngx_http_siteflow_outcome_t        out;
    ngx_http_siteflow_index_t          idx;
    ngx_http_siteflow_pg_query_t      *query;
    ngx_event_t                        retry;
    char                              *results;
} ngx_http_siteflow_pgq_finish_t;


typedef struct {
    ngx_http_siteflow_pgq_conf_t      *conf;
    ngx_str_t                          edge;       /* lease owner */
    ngx_uint_t                         concurrency;
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
    uint64_t                           renewing_ms; /* sent at */
    uint64_t                           renewed_ms;  /* the last renewal
                                                       that was sent then */
} ngx_http_siteflow_pgq_t;


static void ngx_http_siteflow_pgq_claim_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pgq_claimed(void *data, PGresult *res,
    ngx_str_t *err);
static ngx_http_siteflow_run_t *ngx_http_siteflow_pgq_run(PGresult *res,
    int row);
static ngx_http_siteflow_run_t *ngx_http_siteflow_pgq_running(uint64_t id);
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


static ngx_http_siteflow_pgq_t      ngx_http_siteflow_pgq_state;
static ngx_http_siteflow_runner_pt  ngx_http_siteflow_pgq_runner;


/* worker 0 of every edge: the consumer */

ngx_int_t
ngx_http_siteflow_pgq_consumer_init(ngx_cycle_t *cycle,
    ngx_http_siteflow_pgq_conf_t *pc, ngx_uint_t concurrency,
    ngx_str_t *edge)
{
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (ngx_http_siteflow_pgq_runner == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "siteflow: no job runner registered");
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_curl_init_process(cycle, concurrency)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_queue_init(&st->inflight);
    st->conf = pc;
    st->edge = *edge;
    st->concurrency = concurrency;
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
ngx_http_siteflow_pgq_consumer_exit(ngx_cycle_t *cycle)
{
    ngx_queue_t              *q;
    ngx_http_siteflow_run_t  *run;
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    if (!st->consumer) {
        return;
    }

    st->consumer = 0;

    /*
     * runs in flight are dropped: their leases run out and another edge
     * (or this one's next worker 0) takes them over, with "a create may
     * be out" set
     */

    while (!ngx_queue_empty(&st->inflight)) {
        q = ngx_queue_head(&st->inflight);
        run = ngx_queue_data(q, ngx_http_siteflow_run_t, inflight);

        st->runs--;
        ngx_http_siteflow_pgq_run_free(run);
    }

    ngx_http_siteflow_curl_exit_process(cycle);
}


void
ngx_http_siteflow_pgq_horizon(uint64_t *pruned_max, ngx_uint_t *pruned_other)
{
    *pruned_max = ngx_http_siteflow_pgq_state.pruned_max;
    *pruned_other = ngx_http_siteflow_pgq_state.pruned_other;
}


void
ngx_http_siteflow_pgq_runner_set(ngx_http_siteflow_runner_pt runner)
{
    ngx_http_siteflow_pgq_runner = runner;
}


void
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

    ngx_sprintf(lbuf, "%M%Z", st->conf->lease);
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

    st->claiming = ngx_http_siteflow_pg_prepared("siteflow_claim", 5, v,
                                                 len,
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

                    if (pool != NULL
                        && ngx_array_init(&release, pool, 8,
                                          sizeof(uint64_t))
                           != NGX_OK)
                    {
                        ngx_destroy_pool(pool);
                        pool = NULL;
                    }

                    if (pool == NULL) {
                        /* its lease runs out */
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

    (void) ngx_http_siteflow_pg_prepared("siteflow_release", 2, v, len,
                                         ngx_http_siteflow_pgq_released,
                                         NULL);
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
    run->leased_ms = ngx_http_siteflow_now_ms();

    if (ngx_http_siteflow_pgq_str(res, row, 2, pool, &run->storefront)
           != NGX_OK
        || ngx_http_siteflow_pgq_str(res, row, 3, pool, &run->order_id)
           != NGX_OK)
    {
        goto failed;
    }

    /* the order's index entry, for index_get() while the run lives */

    lk = ngx_http_siteflow_pgq_lookup_add(pool, &run->storefront,
                                          &run->order_id, 0);
    if (lk == NULL) {
        goto failed;
    }

    ngx_http_siteflow_pgq_lookup_loaded(lk, 0);
    lk->found = !PQgetisnull(res, row, 9);

    if (lk->found) {
        ngx_http_siteflow_pgq_index_row(res, row, 9, &run->storefront, pool,
                                        &lk->idx);
    }

    run->job = sf_json_load(PQgetvalue(res, row, 4),
                            PQgetlength(res, row, 4), &err);

    if (PQgetlength(res, row, 8)) {
        run->results = sf_json_load(PQgetvalue(res, row, 8),
                                    PQgetlength(res, row, 8), &err);
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

    f->results = sf_json_dump(run->results);

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

    f->query = ngx_http_siteflow_pg_prepared("siteflow_done", 16, v, len,
                                             ngx_http_siteflow_pgq_finished,
                                             f);
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

    ngx_add_timer(ev, st->conf->lease / 3);

    if (st->runs == 0 || st->renewing != NULL) {
        return;
    }

    ngx_sprintf(lbuf, "%M%Z", st->conf->lease);

    v[0] = (const char *) st->edge.data;
    len[0] = st->edge.len;
    v[1] = (const char *) lbuf;
    len[1] = ngx_strlen(lbuf);

    st->renewing_ms = ngx_http_siteflow_now_ms();
    st->renewing = ngx_http_siteflow_pg_prepared("siteflow_renew", 2, v,
                                                 len,
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

    ngx_http_siteflow_pgq_state.renewed_ms =
                                   ngx_http_siteflow_pgq_state.renewing_ms;

    PQclear(res);
}


/*
 * A create is sent only while the run's lease surely lasts longer than
 * the call: more than half of it left, counted from the claim or the
 * last renewal that succeeded (from when it was sent).  When this edge
 * cannot reach the database, another edge may take the job over once
 * the lease runs out; a create sent after that could be sent twice.
 */

ngx_uint_t
ngx_http_siteflow_pgq_may_create(ngx_http_siteflow_run_t *run)
{
    uint64_t                  from;
    ngx_http_siteflow_pgq_t  *st;

    st = &ngx_http_siteflow_pgq_state;

    from = ngx_max(run->leased_ms, st->renewed_ms);

    return ngx_http_siteflow_now_ms() + st->conf->lease / 2
           < from + st->conf->lease;
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

    st->pruning = ngx_http_siteflow_pg_prepared("siteflow_prune", 1, v,
                                                len,
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
