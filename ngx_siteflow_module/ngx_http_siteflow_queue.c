
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_queue_spool.h"
#include "ngx_http_siteflow_storefronts.h"
#include "sf_breaker.h"
#include "sf_order.h"
#if (NGX_SITEFLOW_PG)
#include "ngx_http_siteflow_queue_pg.h"
#define ngx_http_siteflow_pg_on()  (ngx_http_siteflow_pgq != NULL)
#else
#define ngx_http_siteflow_pg_on()  0
#endif


/*
 * The durable job queue: the interface (ngx_http_siteflow_queue.h) of
 * its spool backend.  See docs/internals/delivery.md for the design;
 * in short:
 *
 * - The spool directory holds journal segments "journal-<seq>.sfq" and
 *   snapshots "snapshot-<seq>.sfq" (everything live in segments <= seq).
 *   Records are sf_qrec records: JOB (a new job), STATE (a job's new
 *   state, with a per-job version), INDEX (a sent-orders index entry).
 *
 * - All workers append to the one active segment (O_APPEND, the write()
 *   under a shared mutex so that a short write can be cut off again), in
 *   batches: the records of one event loop iteration are written with one
 *   write() and made durable with one fdatasync() on nginx's thread pool
 *   (group commit).  Only then are they applied to the job table in
 *   shared memory and the requests that wait for them answered.
 *
 * - The job table, the per-order chains and the sent-orders index live in
 *   a shared memory zone of their own ("siteflow_spool" size=).  It is
 *   rebuilt from the spool when nginx starts (and kept across reloads).
 *
 * - Worker 0 is the only consumer: it claims due jobs (oldest first, only
 *   the first unfinished job of an order), runs them through libcurl, and
 *   writes their outcome.  A job claimed by a process that died is
 *   released by the next consumer's sweep.
 *
 * - The consumer compacts the spool: when the active segment grows past
 *   NGX_HTTP_SITEFLOW_SEGMENT_MAX it starts a new one and writes a
 *   snapshot of everything live, after which older files are removed.
 */


static ngx_int_t ngx_http_siteflow_list_job(ngx_http_siteflow_job_t *job,
    void *data);
static ngx_int_t ngx_http_siteflow_oldest_job(ngx_http_siteflow_job_t *job,
    void *data);
static void ngx_http_siteflow_queue_unreserve(
    ngx_http_siteflow_index_t *idx);
static ngx_int_t ngx_http_siteflow_queue_copy(ngx_pool_t *pool,
    ngx_str_t *dst, ngx_str_t *src);


/* process start and exit */

/* nginx -t, start, reload (init module): the spool can be written */

ngx_int_t
ngx_http_siteflow_queue_init_module(ngx_cycle_t *cycle)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_siteflow_module);

    if (smcf == NULL || smcf->queue == NULL) {
        return NGX_OK;
    }

    return ngx_http_siteflow_journal_check(cycle, smcf->queue);
}


ngx_int_t
ngx_http_siteflow_queue_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      n, concurrency;
    ngx_core_conf_t                *ccf;
    ngx_http_siteflow_main_conf_t  *smcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_siteflow_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

#if (NGX_SITEFLOW_PG)
    if (smcf->pg_queue != NULL) {
        return ngx_http_siteflow_pgq_init_process(cycle, smcf->pg_queue,
                                                  smcf->concurrency);
    }
#endif

    if (smcf->queue == NULL) {
        return NGX_OK;
    }

    ngx_http_siteflow_journal_init_process(cycle, smcf->queue);

    /*
     * siteflow_queue_workers: workers 0 .. n-1 deliver, never more of
     * them than jobs may run at once; siteflow_queue_concurrency is
     * shared out between them
     */

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    n = (ngx_process == NGX_PROCESS_SINGLE) ? 1 : ccf->worker_processes;

    if (smcf->queue_workers && smcf->queue_workers < n) {
        n = smcf->queue_workers;
    }

    if (smcf->concurrency < n) {
        n = smcf->concurrency;
    }

    if (ngx_worker >= n) {
        return NGX_OK;
    }

    concurrency = smcf->concurrency / n
                  + (ngx_worker < smcf->concurrency % n ? 1 : 0);

    if (n > 1) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "siteflow: worker %ui of %ui delivers jobs, at most "
                      "%ui at once", ngx_worker, n, concurrency);
    }

    return ngx_http_siteflow_consumer_init_process(cycle, concurrency,
                                                   ngx_worker == 0);
}


void
ngx_http_siteflow_queue_exit_process(ngx_cycle_t *cycle)
{
#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        ngx_http_siteflow_pgq_exit_process(cycle);
        return;
    }
#endif

    if (ngx_http_siteflow_qc == NULL) {
        return;
    }

    ngx_http_siteflow_journal_exit_process(cycle);
    ngx_http_siteflow_consumer_exit_process(cycle);
    ngx_http_siteflow_journal_close();
}


ngx_int_t
ngx_http_siteflow_index_get(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_pool_t *pool, ngx_http_siteflow_index_t *idx)
{
    u_char                          *p;
    ngx_str_t                        key;
    ngx_http_siteflow_idx_t         *e;
    ngx_http_siteflow_queue_conf_t  *qc;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_index_get(storefront, order_id,
                                               source_id, pool, idx);
    }
#endif

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_siteflow_key(pool, storefront,
                              order_id ? order_id : source_id, &key)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    e = ngx_http_siteflow_idx_find(order_id ? &qc->sh->by_order
                                            : &qc->sh->by_source,
                                   &key, order_id ? 0 : 1);

    if (e == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_memzero(idx, sizeof(ngx_http_siteflow_index_t));

    idx->storefront = *storefront;
    idx->state = e->state;

    /* a postback accepted but not yet durable counts already */

    if (ngx_http_siteflow_idx_reserved(e, ngx_http_siteflow_now_ms())) {
        idx->rank = e->pb_rank;
        idx->fingerprint = e->pb_fingerprint;
        idx->pb_seen = e->pb_version;

    } else {
        idx->rank = e->rank;
        idx->fingerprint = e->fingerprint;
        idx->pb_seen = e->version_postback;
    }

    idx->updated_ms = e->updated_ms;
    idx->sent_ms = e->sent_ms;

    p = ngx_pnalloc(pool, e->order_key.len + e->source_key.len
                          + e->siteflow_id.len + 1);
    if (p == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NGX_ERROR;
    }

    idx->order_id.data = p + storefront->len + 1;
    idx->order_id.len = e->order_key.len - storefront->len - 1;
    p = ngx_cpymem(p, e->order_key.data, e->order_key.len);

    if (e->has_source) {
        idx->source_id.data = p + storefront->len + 1;
        idx->source_id.len = e->source_key.len - storefront->len - 1;
        p = ngx_cpymem(p, e->source_key.data, e->source_key.len);
    }

    idx->siteflow_id.data = p;
    idx->siteflow_id.len = e->siteflow_id.len;
    ngx_memcpy(p, e->siteflow_id.data, e->siteflow_id.len);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_enqueue(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id, json_t *job, ngx_http_siteflow_enqueue_pt handler,
    void *data)
{
    return ngx_http_siteflow_queue_enqueue_indexed(kind, storefront,
                                                   order_id, job, NULL,
                                                   handler, data);
}


ngx_int_t
ngx_http_siteflow_queue_enqueue_indexed(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, json_t *job,
    ngx_http_siteflow_index_t *idx, ngx_http_siteflow_enqueue_pt handler,
    void *data)
{
    char                            *text;
    ngx_int_t                        rc;
    ngx_str_t                        s;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL && !ngx_http_siteflow_pg_on()) {
        return NGX_ERROR;
    }

    text = json_dumps(job, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    s.data = (u_char *) text;
    s.len = ngx_strlen(text);

    rc = ngx_http_siteflow_queue_enqueue_text(kind, storefront, order_id, &s,
                                              idx, handler, data);
    free(text);

    return rc;
}


/*
 * A postback's new rank and fingerprint in idx (read by index_get()) are
 * taken in the index now, if no other postback of the order was taken
 * since idx was read (NGX_BUSY: read and judge again).  The version for
 * its record is left in idx->pb_seen for enqueue_indexed().  The
 * PostgreSQL queue takes nothing here (NGX_OK).
 */

ngx_int_t
ngx_http_siteflow_queue_reserve(ngx_http_siteflow_index_t *idx,
    ngx_pool_t *pool)
{
    uint32_t                         seen;
    uint64_t                         now;
    ngx_int_t                        rc;
    ngx_str_t                        key;
    ngx_http_siteflow_idx_t         *e;
    ngx_http_siteflow_queue_conf_t  *qc;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return NGX_OK;
    }
#endif

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_key(pool, &idx->storefront, &idx->order_id, &key)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    now = ngx_http_siteflow_now_ms();
    rc = NGX_BUSY;

    ngx_shmtx_lock(&qc->shpool->mutex);

    e = ngx_http_siteflow_idx_find(&qc->sh->by_order, &key, 0);

    if (e) {
        seen = ngx_http_siteflow_idx_reserved(e, now) ? e->pb_version
                                                      : e->version_postback;

        /*
         * a new number even after a reservation that ended unapplied
         * (the batch failed): a postback judged by that one's state must
         * not find its number again on another's
         */

        if (seen == idx->pb_seen) {
            e->pb_version = ngx_max(e->version_postback, e->pb_version) + 1;
            e->pb_rank = (int32_t) idx->rank;
            e->pb_fingerprint = idx->fingerprint;
            e->pb_pid = ngx_pid;
            e->pb_ms = now;

            idx->pb_seen = e->pb_version;
            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_siteflow_queue_pending(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id)
{
    u_char                          *p;
    uint32_t                         hash;
    ngx_str_t                        key;
    ngx_int_t                        rc;
    ngx_queue_t                     *q;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_order_t       *order;
    ngx_http_siteflow_queue_conf_t  *qc;
    u_char                           buf[512];

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_pending(kind, storefront, order_id);
    }
#endif

    qc = ngx_http_siteflow_qc;

    if (qc == NULL || storefront->len + 1 + order_id->len > sizeof(buf)) {
        return 0;
    }

    p = ngx_cpymem(buf, storefront->data, storefront->len);
    *p++ = '\0';
    p = ngx_cpymem(p, order_id->data, order_id->len);

    key.data = buf;
    key.len = p - buf;
    hash = ngx_crc32_short(key.data, key.len);

    rc = 0;

    ngx_shmtx_lock(&qc->shpool->mutex);

    order = ngx_http_siteflow_order_find(qc->sh, &key, hash);

    if (order) {
        for (q = ngx_queue_head(&order->jobs);
             q != ngx_queue_sentinel(&order->jobs);
             q = ngx_queue_next(q))
        {
            job = ngx_queue_data(q, ngx_http_siteflow_job_t, link);

            if (job->kind == kind) {
                rc = 1;
                break;
            }
        }
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return rc;
}


ngx_uint_t
ngx_http_siteflow_job_upstreams(ngx_uint_t kind, ngx_str_t *storefront)
{
    ngx_http_siteflow_srv_conf_t  *sscf;

    switch (kind) {

    case NGX_HTTP_SITEFLOW_JOB_UPDATE:
        return SF_BREAKER_PRINTNOW;

    case NGX_HTTP_SITEFLOW_JOB_ORDER:
        sscf = ngx_http_siteflow_storefront(storefront);

        if (sscf == NULL || sscf->printnow_fetch) {
            return SF_BREAKER_SITEFLOW | SF_BREAKER_PRINTNOW;
        }

        return SF_BREAKER_SITEFLOW;

    default:
        return SF_BREAKER_SITEFLOW;
    }
}


/*
 * The jobs that match, newest first, copied into the pool with the zone
 * locked; the caller builds its answer from the copies after the lock is
 * released.
 */

typedef ngx_int_t (*ngx_http_siteflow_job_pt)(ngx_http_siteflow_job_t *job,
    void *data);

typedef struct {
    ngx_pool_t                        *pool;
    ngx_array_t                       *out;
    ngx_http_siteflow_queue_filter_t  *filter;
    ngx_uint_t                         newest_first;
    ngx_http_siteflow_job_pt           handler;
} ngx_http_siteflow_walk_t;


static ngx_int_t ngx_http_siteflow_queue_walk(ngx_http_siteflow_walk_t *w,
    ngx_uint_t n, size_t size);


ngx_int_t
ngx_http_siteflow_queue_list(ngx_pool_t *pool,
    ngx_http_siteflow_queue_filter_t *f, ngx_array_t *out)
{
    ngx_http_siteflow_walk_t  w;

    w.pool = pool;
    w.out = out;
    w.filter = f;
    w.newest_first = 1;
    w.handler = ngx_http_siteflow_list_job;

    return ngx_http_siteflow_queue_walk(&w, f->limit ? f->limit : 64,
                                        sizeof(ngx_http_siteflow_queue_item_t));
}


static ngx_int_t
ngx_http_siteflow_list_job(ngx_http_siteflow_job_t *job, void *data)
{
    ngx_http_siteflow_walk_t  *w = data;

    ngx_http_siteflow_queue_item_t    *it;
    ngx_http_siteflow_queue_filter_t  *f;

    f = w->filter;

    if (f->state >= 0 && job->state != f->state) {
        return NGX_OK;
    }

    if (f->storefront.len
        && (f->storefront.len != job->storefront.len
            || ngx_strncmp(f->storefront.data, job->storefront.data,
                           job->storefront.len) != 0))
    {
        return NGX_OK;
    }

    if (f->order_id.len
        && (f->order_id.len != job->order_id.len
            || ngx_strncmp(f->order_id.data, job->order_id.data,
                           job->order_id.len) != 0))
    {
        return NGX_OK;
    }

    if (f->limit && w->out->nelts >= f->limit) {
        return NGX_DONE;
    }

    it = ngx_array_push(w->out);
    if (it == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_queue_copy(w->pool, &it->storefront,
                                     &job->storefront)
           != NGX_OK
        || ngx_http_siteflow_queue_copy(w->pool, &it->order_id,
                                        &job->order_id)
           != NGX_OK
        || ngx_http_siteflow_queue_copy(w->pool, &it->error, &job->error)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    it->id = job->id;
    it->kind = job->kind;
    it->state = job->state;
    it->attempts = job->attempts;
    it->next_ms = job->next_ms;
    it->created_ms = job->created_ms;

    return NGX_OK;
}


/*
 * Initializes w->out (n elements of size to start with) and calls
 * w->handler for every job, oldest or newest first, with the zone locked:
 * NGX_OK goes on, NGX_DONE stops, NGX_ERROR fails.  NGX_DECLINED without
 * a spool.
 */

static ngx_int_t
ngx_http_siteflow_queue_walk(ngx_http_siteflow_walk_t *w, ngx_uint_t n,
    size_t size)
{
    ngx_int_t                        rc;
    ngx_queue_t                     *q, *all;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_array_init(w->out, w->pool, n, size) != NGX_OK) {
        return NGX_ERROR;
    }

    all = &qc->sh->all;
    rc = NGX_OK;

    ngx_shmtx_lock(&qc->shpool->mutex);

    q = w->newest_first ? ngx_queue_last(all) : ngx_queue_head(all);

    while (q != ngx_queue_sentinel(all) && rc == NGX_OK) {
        rc = w->handler(ngx_queue_data(q, ngx_http_siteflow_job_t, all), w);
        q = w->newest_first ? ngx_queue_prev(q) : ngx_queue_next(q);
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* a copy, NUL-terminated */

static ngx_int_t
ngx_http_siteflow_queue_copy(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *src)
{
    dst->len = src->len;
    dst->data = ngx_pnalloc(pool, src->len + 1);

    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);
    dst->data[src->len] = '\0';

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_stats(ngx_uint_t counts[5])
{
    ngx_http_siteflow_queue_conf_t  *qc;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_stats(counts);
    }
#endif

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);
    ngx_memcpy(counts, qc->sh->counts, 5 * sizeof(ngx_uint_t));
    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_oldest(ngx_pool_t *pool, ngx_array_t *out)
{
    ngx_http_siteflow_walk_t  w;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_oldest(pool, out);
    }
#endif

    w.pool = pool;
    w.out = out;
    w.filter = NULL;
    w.newest_first = 0;
    w.handler = ngx_http_siteflow_oldest_job;

    return ngx_http_siteflow_queue_walk(&w, 8,
                                      sizeof(ngx_http_siteflow_queue_oldest_t));
}


static ngx_int_t
ngx_http_siteflow_oldest_job(ngx_http_siteflow_job_t *job, void *data)
{
    ngx_http_siteflow_walk_t  *w = data;

    ngx_uint_t                         i;
    ngx_http_siteflow_queue_oldest_t  *o;

    if (job->state != SF_QSTATE_PENDING
        && job->state != SF_QSTATE_RETRYING
        && job->state != SF_QSTATE_FAILED)
    {
        return NGX_OK;
    }

    o = w->out->elts;

    for (i = 0; i < w->out->nelts; i++) {
        if (o[i].state == job->state
            && o[i].storefront.len == job->storefront.len
            && ngx_memcmp(o[i].storefront.data, job->storefront.data,
                          job->storefront.len) == 0)
        {
            if (job->created_ms < o[i].created_ms) {
                o[i].created_ms = job->created_ms;
            }

            return NGX_OK;
        }
    }

    o = ngx_array_push(w->out);
    if (o == NULL) {
        return NGX_ERROR;
    }

    o->state = job->state;
    o->created_ms = job->created_ms;

    return ngx_http_siteflow_queue_copy(w->pool, &o->storefront,
                                        &job->storefront);
}


ngx_int_t
ngx_http_siteflow_queue_breakers(ngx_pool_t *pool, ngx_array_t *out)
{
    u_char                             *name;
    ngx_uint_t                          i, n;
    ngx_http_siteflow_queue_sh_t       *sh;
    ngx_http_siteflow_queue_conf_t     *qc;
    ngx_http_siteflow_queue_breaker_t  *b;

    if (ngx_http_siteflow_pg_on()) {
        /* on PostgreSQL the breakers are worker 0's of each edge: not
           published */
        return ngx_array_init(out, pool, 1,
                              sizeof(ngx_http_siteflow_queue_breaker_t));
    }

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    sh = qc->sh;

    if (ngx_array_init(out, pool, NGX_HTTP_SITEFLOW_SH_BREAKERS,
                       sizeof(ngx_http_siteflow_queue_breaker_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    n = sh->nbreakers;

    for (i = 0; i < n; i++) {
        b = ngx_array_push(out);        /* room for all: no realloc */
        name = ngx_pnalloc(pool, sh->breakers[i].len + 1);

        if (b == NULL || name == NULL) {
            ngx_shmtx_unlock(&qc->shpool->mutex);
            return NGX_ERROR;
        }

        ngx_memcpy(name, sh->breakers[i].name, sh->breakers[i].len);
        name[sh->breakers[i].len] = '\0';

        b->storefront.data = name;
        b->storefront.len = sh->breakers[i].len;
        b->failures = sh->breakers[i].failures;
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_zone(size_t *size, size_t *free)
{
    ngx_http_siteflow_queue_conf_t  *qc;

    if (ngx_http_siteflow_pg_on()) {
        *size = 0;
        *free = 0;
        return NGX_OK;
    }

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    *size = qc->size;

    ngx_shmtx_lock(&qc->shpool->mutex);
    *free = qc->shpool->pfree << ngx_pagesize_shift;
    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_str_t *
ngx_http_siteflow_queue_dir(ngx_http_siteflow_queue_conf_t *qc)
{
    return &qc->path->name;
}


void
ngx_http_siteflow_queue_damage(ngx_uint_t *places, uint64_t *bytes)
{
    *places = 0;
    *bytes = 0;

    if (ngx_http_siteflow_qc != NULL) {
        *places = ngx_http_siteflow_qc->sh->damaged;
        *bytes = ngx_http_siteflow_qc->sh->damaged_bytes;
    }
}


void
ngx_http_siteflow_queue_index(ngx_uint_t *orders, uint64_t *forgotten)
{
    ngx_http_siteflow_queue_conf_t  *qc;

    *orders = 0;
    *forgotten = 0;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        ngx_http_siteflow_pgq_index(orders, forgotten);
        return;
    }
#endif

    qc = ngx_http_siteflow_qc;

    if (qc != NULL) {
        ngx_shmtx_lock(&qc->shpool->mutex);
        *orders = qc->sh->nindex;
        *forgotten = qc->sh->npruned;
        ngx_shmtx_unlock(&qc->shpool->mutex);
    }
}


/* a failed job back to pending (the admin's retry) */

ngx_int_t
ngx_http_siteflow_queue_retry(uint64_t id,
    ngx_http_siteflow_enqueue_pt handler, void *data)
{
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_queue_conf_t  *qc;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_retry(id, handler, data);
    }
#endif

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_ABORT;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    job = ngx_http_siteflow_job_find(qc->sh, id);

    if (job == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NGX_DECLINED;
    }

    if (job->state != SF_QSTATE_FAILED) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NGX_BUSY;
    }

    (void) ngx_http_siteflow_state_op(job, &op);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    op.state = SF_QSTATE_PENDING;
    op.next_ms = 0;
    op.handler = handler;
    op.data = data;

    return ngx_http_siteflow_append(&op);
}


/* not in the index: was it forgotten (look it up) or never sent? */

ngx_uint_t
ngx_http_siteflow_index_forgot(ngx_str_t *order_id)
{
    ngx_http_siteflow_queue_sh_t  *sh;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_forgot(order_id);
    }
#endif

    if (ngx_http_siteflow_qc == NULL) {
        return 0;
    }

    sh = ngx_http_siteflow_qc->sh;

    return sf_order_forgotten((const char *) order_id->data, order_id->len,
                              sh->pruned_max, sh->pruned_other ? 1 : 0);
}


/*
 * the job as compact JSON text (the hook writes it without a jansson
 * tree); kept by the spool as it is
 */

ngx_int_t
ngx_http_siteflow_queue_enqueue_text(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *text, ngx_http_siteflow_index_t *idx,
    ngx_http_siteflow_enqueue_pt handler, void *data)
{
    ngx_int_t                        rc;
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_queue_conf_t  *qc;

#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_enqueue(kind, storefront, order_id, text,
                                             idx, handler, data);
    }
#endif

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));

    op.type = SF_QREC_JOB;
    op.id = ngx_atomic_fetch_add((ngx_atomic_t *) &qc->sh->next_id, 1);
    op.kind = kind;
    op.storefront = *storefront;
    op.order_id = *order_id;
    op.payload = *text;
    op.created_ms = ngx_http_siteflow_now_ms();
    op.handler = handler;
    op.data = data;

    /* room in the table is taken now: a full zone refuses the job */

    ngx_shmtx_lock(&qc->shpool->mutex);
    op.job = ngx_http_siteflow_job_new(qc->shpool, &op);
    ngx_shmtx_unlock(&qc->shpool->mutex);

    if (op.job == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: the \"siteflow_spool\" zone is full "
                      "(%uz bytes); a job of order \"%V\" was refused",
                      qc->size, order_id);

        ngx_http_siteflow_queue_unreserve(idx);
        return NGX_DECLINED;
    }

    rc = ngx_http_siteflow_append(&op);

    if (rc != NGX_OK) {
        ngx_shmtx_lock(&qc->shpool->mutex);
        ngx_slab_free_locked(qc->shpool, op.job);
        ngx_shmtx_unlock(&qc->shpool->mutex);

        ngx_http_siteflow_queue_unreserve(idx);
        return rc;
    }

    if (idx == NULL) {
        return NGX_OK;
    }

    /*
     * the postback's part of the index after its job, in the same batch:
     * if it cannot be appended (out of memory), the job still goes, and
     * only the next postback's duplicate check misses this one
     */

    ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));

    op.type = SF_QREC_INDEX;
    op.postback = 1;
    op.idx = *idx;
    op.version = idx->pb_seen;      /* the number queue_reserve() took */

    if (ngx_http_siteflow_append(&op) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "siteflow: the index entry of order \"%V\" could not "
                      "be written with its postback's job", order_id);
        ngx_http_siteflow_queue_unreserve(idx);
    }

    return NGX_OK;
}


/* a reservation (queue_reserve()) whose record is not written after all */

static void
ngx_http_siteflow_queue_unreserve(ngx_http_siteflow_index_t *idx)
{
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (idx == NULL || idx->pb_seen == 0 || qc == NULL) {
        return;
    }

    ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));

    op.idx = *idx;
    op.version = idx->pb_seen;

    ngx_shmtx_lock(&qc->shpool->mutex);
    ngx_http_siteflow_idx_release(qc->sh, &op);
    ngx_shmtx_unlock(&qc->shpool->mutex);
}


/* what index_get() and pending() answer about an order, read first */

ngx_int_t
ngx_http_siteflow_queue_lookup(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_lookup_pt handler, void *data)
{
#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_lookup(storefront, order_id, source_id,
                                            pool, handler, data);
    }
#endif

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_list_async(ngx_pool_t *pool,
    ngx_http_siteflow_queue_filter_t *f, ngx_array_t *out,
    ngx_http_siteflow_lookup_pt handler, void *data)
{
#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_list(pool, f, out, handler, data);
    }
#endif

    return ngx_http_siteflow_queue_list(pool, f, out);
}


ngx_uint_t
ngx_http_siteflow_queue_may_create(ngx_http_siteflow_run_t *run)
{
#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        return ngx_http_siteflow_pgq_may_create(run);
    }
#endif

    return 1;
}


const char *
ngx_http_siteflow_queue_backend(void)
{
    return ngx_http_siteflow_pg_on() ? "postgresql" : "spool";
}


/* the runner, its outcome and its calls' answers: to the backend */

void
ngx_http_siteflow_queue_runner(ngx_http_siteflow_runner_pt runner)
{
    ngx_http_siteflow_consumer_runner(runner);

#if (NGX_SITEFLOW_PG)
    ngx_http_siteflow_pgq_runner_set(runner);
#endif
}


void
ngx_http_siteflow_queue_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out)
{
#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        ngx_http_siteflow_pgq_done(run, out);
        return;
    }
#endif

    ngx_http_siteflow_consumer_done(run, out);
}


void
ngx_http_siteflow_breaker_report(ngx_http_siteflow_run_t *run,
    ngx_uint_t siteflow, ngx_uint_t ok)
{
#if (NGX_SITEFLOW_PG)
    if (ngx_http_siteflow_pg_on()) {
        ngx_http_siteflow_pgq_breaker(run, siteflow, ok);
        return;
    }
#endif

    ngx_http_siteflow_consumer_breaker(run, siteflow, ok);
}
