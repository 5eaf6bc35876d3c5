
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
#include "sf_job.h"
#include "sf_json_tree.h"
#include "sf_breaker.h"


/*
 * The consumer, in each delivering worker (workers 0 .. n-1 with
 * siteflow_queue_workers n, worker 0 alone by default): it claims due
 * jobs, hands each to the runner registered with
 * ngx_http_siteflow_queue_runner() and writes the outcome the runner gives
 * back (ngx_http_siteflow_queue_done()).
 *
 * A claim is made under the zone's mutex and marks the job running with
 * this pid, so a job runs in one process at a time; only the head of an
 * order's chain is ever due, so the jobs of an order run one after the
 * other whichever workers take them.  The storefronts' breakers are in
 * the zone too (sh->brk), so that a storefront whose upstream fails is
 * probed by one job at a time across all the workers; a probe whose
 * process died ends at the next sweep.
 *
 * Worker 0 leads: the sweep of jobs claimed by dead processes, index
 * pruning and compaction are its alone.
 */


typedef struct {
    ngx_queue_t                    queue;
    ngx_http_siteflow_run_t       *run;
    ngx_http_siteflow_outcome_t    out;
    ngx_str_t                      error;
    ngx_http_siteflow_index_t      idx;
    ngx_event_t                    retry;
} ngx_http_siteflow_finish_t;

#define NGX_HTTP_SITEFLOW_SCAN_MAX     1000

/* the consumer's state (in each delivering worker) */

typedef struct {
    ngx_uint_t                     on;           /* this is a consumer */
    ngx_uint_t                     lead;         /* worker 0 */
    ngx_uint_t                     concurrency;  /* runs at most */
    ngx_event_t                    event;
    ngx_uint_t                     runs;         /* jobs running */
    ngx_queue_t                    inflight;     /* their runs */
    ngx_msec_t                     last_sweep;
    ngx_atomic_uint_t              seen_generation;
    ngx_queue_t                   *prune_cur;    /* index pruning cursor */
    uint64_t                       unreadable;   /* the last job whose
                                                    text could not be read */
    ngx_http_siteflow_runner_pt    runner;       /* starts a job */
} ngx_http_siteflow_consumer_t;


static void ngx_http_siteflow_finished(void *data, ngx_int_t rc,
    uint64_t id);
static ngx_http_siteflow_run_t *ngx_http_siteflow_claim(uint64_t now,
    uint64_t *next);
static void ngx_http_siteflow_sweep(void);
static void ngx_http_siteflow_unclaim(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_finish_write(ngx_http_siteflow_finish_t *f);
static void ngx_http_siteflow_finish_retry(ngx_event_t *ev);
static void ngx_http_siteflow_finish_cleanup(void *data);
static void ngx_http_siteflow_run_free(ngx_http_siteflow_run_t *run);
static void ngx_http_siteflow_breaker_publish(u_char *name, size_t len);
static void ngx_http_siteflow_probe_end(ngx_http_siteflow_run_t *run);
static int ngx_http_siteflow_pid_gone(uint64_t owner, void *data);
static void ngx_http_siteflow_consumer_wake(void);
static void ngx_http_siteflow_consumer_prune(void);
static void ngx_http_siteflow_consumer_handler(ngx_event_t *ev);


static ngx_http_siteflow_consumer_t  ngx_http_siteflow_consumer;


/* the runner (ngx_http_siteflow_jobs.c) registers itself */

void
ngx_http_siteflow_consumer_runner(ngx_http_siteflow_runner_pt runner)
{
    ngx_http_siteflow_consumer.runner = runner;
}


ngx_int_t
ngx_http_siteflow_consumer_init_process(ngx_cycle_t *cycle,
    ngx_uint_t concurrency, ngx_uint_t lead)
{
    if (ngx_http_siteflow_consumer.runner == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "siteflow: no job runner registered");
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_curl_init_process(cycle, concurrency)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_siteflow_consumer.on = 1;
    ngx_http_siteflow_consumer.lead = lead;
    ngx_http_siteflow_consumer.concurrency = concurrency;
    ngx_queue_init(&ngx_http_siteflow_consumer.inflight);
    ngx_http_siteflow_journal_on_applied(ngx_http_siteflow_consumer_wake);

    ngx_http_siteflow_queue_event(&ngx_http_siteflow_consumer.event,
                                  ngx_http_siteflow_consumer_handler,
                                  cycle->log);
    ngx_http_siteflow_consumer.event.cancelable = 1;

    /* jobs left running by a process that is gone are released first */
    ngx_http_siteflow_consumer.last_sweep = 0;

    ngx_add_timer(&ngx_http_siteflow_consumer.event, 1);

    return NGX_OK;
}


void
ngx_http_siteflow_consumer_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t              *q;
    ngx_http_siteflow_run_t  *run;

    if (!ngx_http_siteflow_consumer.on) {
        return;
    }

    ngx_http_siteflow_consumer.on = 0;

    /*
     * Runs still in flight (nginx stopping fast, or a single process
     * quitting) are dropped here, their transfers first: their jobs stay
     * claimed by this pid in the zone and on disk as they were, and are
     * released by the sweep of the next consumer or rebuilt at start.
     * An outcome already written but not yet applied is versioned and
     * is applied at the next start.
     */

    while (!ngx_queue_empty(&ngx_http_siteflow_consumer.inflight)) {
        q = ngx_queue_head(&ngx_http_siteflow_consumer.inflight);
        run = ngx_queue_data(q, ngx_http_siteflow_run_t, inflight);

        /* its probe, if any, ends: another worker may take the next */
        ngx_http_siteflow_probe_end(run);

        ngx_http_siteflow_consumer.runs--;
        ngx_http_siteflow_run_free(run);
    }

    ngx_http_siteflow_curl_exit_process(cycle);
}


/*
 * The sent-orders index forgets what is older than index_retention
 * (ngx_http_siteflow_index_prune()); the new horizon is journaled.
 */

static void
ngx_http_siteflow_consumer_prune(void)
{
    ngx_http_siteflow_op_t  op;

    if (ngx_http_siteflow_index_prune(ngx_http_siteflow_qc,
                                      &ngx_http_siteflow_consumer.prune_cur,
                                      &op)
        != NGX_OK)
    {
        return;
    }

    /*
     * if this write fails, the forgotten orders' records are still in
     * the spool until a snapshot replaces them
     */

    if (ngx_http_siteflow_append(&op) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: cannot journal what the index forgot; "
                      "the next snapshot keeps it");
    }
}


/* the consumer */

static void
ngx_http_siteflow_consumer_wake(void)
{
    if (!ngx_http_siteflow_consumer.on) {
        return;
    }

    if (ngx_http_siteflow_consumer.event.timer_set) {
        ngx_del_timer(&ngx_http_siteflow_consumer.event);
    }

    if (!ngx_http_siteflow_consumer.event.posted) {
        ngx_post_event(&ngx_http_siteflow_consumer.event, &ngx_posted_events);
    }
}


static void
ngx_http_siteflow_consumer_handler(ngx_event_t *ev)
{
    uint64_t                         now, next;
    ngx_uint_t                       n;
    ngx_msec_t                       wait;
    ngx_http_siteflow_run_t         *run;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;     /* runs in flight finish; nothing new starts */
    }

    if (ngx_http_siteflow_consumer.lead
        && (ngx_current_msec - ngx_http_siteflow_consumer.last_sweep
            >= NGX_HTTP_SITEFLOW_SWEEP
            || ngx_http_siteflow_consumer.last_sweep == 0))
    {
        ngx_http_siteflow_consumer.last_sweep = ngx_current_msec;
        ngx_http_siteflow_sweep();
        ngx_http_siteflow_consumer_prune();
        ngx_http_siteflow_compact();
    }

    ngx_http_siteflow_consumer.seen_generation =
                                       ngx_http_siteflow_qc->sh->generation;

    now = ngx_http_siteflow_now_ms();
    next = 0;

    for (n = 0;
         ngx_http_siteflow_consumer.runs
         < ngx_http_siteflow_consumer.concurrency;
         n++)
    {

        if (n == NGX_HTTP_SITEFLOW_CLAIM_BATCH) {
            /* more after nginx has looked at its other connections */
            if (!ev->posted) {
                ngx_post_event(ev, &ngx_posted_next_events);
            }

            return;
        }

        run = ngx_http_siteflow_claim(now, &next);
        if (run == NULL) {
            break;
        }

        ngx_http_siteflow_consumer.runs++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "siteflow: job %uL (%s) starts",
                       run->id, ngx_http_siteflow_kind_name(run->kind));

        ngx_http_siteflow_consumer.runner(run);
    }

    wait = NGX_HTTP_SITEFLOW_POLL;

    if (next && next > now && next - now < wait) {
        wait = (ngx_msec_t) (next - now);
    }

    if (!ev->timer_set && !ev->posted) {
        ngx_add_timer(ev, wait);
    }
}


void
ngx_http_siteflow_consumer_breaker(ngx_http_siteflow_run_t *run,
    ngx_uint_t siteflow, ngx_uint_t ok)
{
    unsigned                        up, probe;
    uint64_t                        backoff;
    sf_breaker_t                   *b;
    sf_breakers_t                  *brk;
    sf_breaker_change_t             change;
    ngx_http_siteflow_main_conf_t  *smcf;

    if (!ngx_http_siteflow_consumer.on) {
        return;
    }

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    up = siteflow ? SF_BREAKER_SITEFLOW : SF_BREAKER_PRINTNOW;
    probe = run->probe;
    brk = &ngx_http_siteflow_qc->sh->brk;

    if (ok && probe == 0 && brk->open == 0) {
        /*
         * the common case: nothing open, nothing to change (read without
         * the lock: a breaker another worker opens at this moment stays
         * open until its probe is answered)
         */
        return;
    }

    ngx_shmtx_lock(&ngx_http_siteflow_qc->shpool->mutex);

    backoff = ok ? 0
              : sf_job_backoff_ms(sf_breaker_next_failures(
                                      brk, (char *) run->storefront.data,
                                      run->storefront.len, up),
                                  smcf->retry_base, smcf->retry_max,
                                  (uint32_t) ngx_random());

    change = sf_breaker_report(brk, (char *) run->storefront.data,
                               run->storefront.len, up, ok, &probe,
                               ngx_http_siteflow_now_ms(), backoff, &b);

    ngx_shmtx_unlock(&ngx_http_siteflow_qc->shpool->mutex);

    run->probe = probe;

    if (change == SF_BREAKER_SAME) {
        return;
    }

    if (change == SF_BREAKER_CLOSED) {
        ngx_log_error(NGX_LOG_NOTICE, run->log, 0,
                      "siteflow: %s answers storefront \"%V\" again; "
                      "its queue resumes",
                      siteflow ? "SiteFlow" : "PrintNow",
                      &run->storefront);
    }

    ngx_http_siteflow_breaker_publish(run->storefront.data,
                                      run->storefront.len);
}


/* the storefront's gauge for the metrics, which any worker may serve */

static void
ngx_http_siteflow_breaker_publish(u_char *name, size_t len)
{
    ngx_uint_t                     i, failures;
    ngx_http_siteflow_queue_sh_t  *sh;

    sh = ngx_http_siteflow_qc->sh;

    ngx_shmtx_lock(&ngx_http_siteflow_qc->shpool->mutex);

    /* open while any of its upstreams' breakers is */

    failures = sf_breaker_failures(&sh->brk, (char *) name, len);

    if (len > NGX_HTTP_SITEFLOW_NAME_LEN) {
        len = NGX_HTTP_SITEFLOW_NAME_LEN;
    }

    for (i = 0; i < sh->nbreakers; i++) {
        if (sh->breakers[i].len == len
            && ngx_memcmp(sh->breakers[i].name, name, len) == 0)
        {
            break;
        }
    }

    if (i == sh->nbreakers && i < NGX_HTTP_SITEFLOW_SH_BREAKERS) {
        ngx_memcpy(sh->breakers[i].name, name, len);
        sh->breakers[i].len = len;
        sh->nbreakers++;
    }

    if (i < sh->nbreakers) {
        sh->breakers[i].failures = failures;
    }

    ngx_shmtx_unlock(&ngx_http_siteflow_qc->shpool->mutex);
}


static ngx_int_t
ngx_http_siteflow_breaker_allows(ngx_http_siteflow_job_t *job, uint64_t now,
    ngx_uint_t *probe)
{
    unsigned        bits;
    sf_breakers_t  *brk;

    /* under the zone's mutex (the claim's) */

    *probe = 0;
    brk = &ngx_http_siteflow_qc->sh->brk;

    if (brk->open == 0) {
        return 1;
    }

    if (!sf_breaker_allows(brk, (char *) job->storefront.data,
                           job->storefront.len,
                           ngx_http_siteflow_job_upstreams(job->kind,
                                                           &job->storefront),
                           now, &bits))
    {
        return 0;
    }

    /* the probe is this process's: if it dies, the sweep ends it */

    sf_breaker_probe_owner(brk, (char *) job->storefront.data,
                           job->storefront.len, bits, (uint64_t) ngx_pid);

    *probe = bits;

    return 1;
}


static void
ngx_http_siteflow_probe_end(ngx_http_siteflow_run_t *run)
{
    unsigned  probe;

    if (run->probe == 0) {
        return;
    }

    probe = run->probe;

    ngx_shmtx_lock(&ngx_http_siteflow_qc->shpool->mutex);
    sf_breaker_probe_end(&ngx_http_siteflow_qc->sh->brk,
                         (char *) run->storefront.data, run->storefront.len,
                         &probe);
    ngx_shmtx_unlock(&ngx_http_siteflow_qc->shpool->mutex);

    run->probe = 0;
}


static int
ngx_http_siteflow_pid_gone(uint64_t owner, void *data)
{
    ngx_pid_t  pid = (ngx_pid_t) owner;

    return pid != ngx_pid && kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH;
}


static ngx_http_siteflow_run_t *
ngx_http_siteflow_claim(uint64_t now, uint64_t *next)
{
    ngx_str_t                        payload, results, job_storefront;
    ngx_uint_t                       n, probe;
    json_error_t                     err;
    ngx_pool_t                      *pool;
    ngx_rbtree_node_t               *node;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_run_t         *run;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;

    ngx_shmtx_lock(&qc->shpool->mutex);

    /* jobs whose backoff is over join the due jobs, which go oldest first */

    while (sh->waiting.root != sh->waiting.sentinel) {
        node = ngx_rbtree_min(sh->waiting.root, sh->waiting.sentinel);

        if ((uint64_t) node->key > now) {
            *next = (uint64_t) node->key;
            break;
        }

        job = ngx_rbtree_data(node, ngx_http_siteflow_job_t, due);

        ngx_rbtree_delete(&sh->waiting, node);
        job->in_waiting = 0;

        job->due.key = (ngx_rbtree_key_t) job->id;
        ngx_rbtree_insert(&sh->due, &job->due);
        job->in_due = 1;
    }

    if (sh->due.root == sh->due.sentinel) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NULL;
    }

    /* the oldest due job whose storefront's breaker lets it go */

    node = ngx_rbtree_min(sh->due.root, sh->due.sentinel);
    probe = 0;

    for (n = 0; node; n++) {
        job = ngx_rbtree_data(node, ngx_http_siteflow_job_t, due);

        if (ngx_http_siteflow_breaker_allows(job, now, &probe)) {
            break;
        }

        if (n == NGX_HTTP_SITEFLOW_SCAN_MAX) {
            node = NULL;
            break;
        }

        node = ngx_rbtree_next(&sh->due, node);
    }

    if (node == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NULL;
    }

    job_storefront = job->storefront;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    run = ngx_pcalloc(pool, sizeof(ngx_http_siteflow_run_t));
    if (run == NULL) {
        goto failed;
    }

    run->pool = pool;
    run->log = ngx_cycle->log;
    run->id = job->id;
    run->kind = job->kind;
    run->attempts = job->attempts;
    run->created_ms = job->created_ms;
    run->maybe_sent = job->maybe_sent;
    run->probe = probe;

    run->storefront.len = job->storefront.len;
    run->storefront.data = ngx_pstrdup(pool, &job->storefront);
    run->order_id.len = job->order_id.len;
    run->order_id.data = ngx_pstrdup(pool, &job->order_id);

    /* the texts are read after the lock: a copy (the job's own may change) */

    payload.len = job->payload.len;
    payload.data = ngx_pnalloc(pool, job->payload.len + job->results.len + 1);

    if (run->storefront.data == NULL || run->order_id.data == NULL
        || payload.data == NULL)
    {
        goto failed;
    }

    ngx_memcpy(payload.data, job->payload.data, job->payload.len);

    results.len = job->results.len;
    results.data = payload.data + payload.len;
    ngx_memcpy(results.data, job->results.data, job->results.len);

    ngx_rbtree_delete(&sh->due, node);
    job->in_due = 0;
    job->running = 1;
    job->owner = ngx_pid;
    ngx_queue_insert_tail(&sh->running, &job->run_link);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    run->job = sf_json_load((const char *) payload.data, payload.len, &err);

    if (results.len) {
        run->results = sf_json_load((const char *) results.data, results.len,
                                    &err);
    }

    if (run->results == NULL) {
        run->results = json_object();
    }

    if (run->job == NULL || run->results == NULL) {
        json_decref(run->job);
        json_decref(run->results);
        run->job = NULL;
        run->results = NULL;

        if (run->id != ngx_http_siteflow_consumer.unreadable) {
            /* once per job: the claim is tried again at every look */
            ngx_http_siteflow_consumer.unreadable = run->id;

            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "siteflow: job %uL cannot be read (out of "
                          "memory?); it is left for later", run->id);
        }

        ngx_shmtx_lock(&qc->shpool->mutex);

        job = ngx_http_siteflow_job_find(sh, run->id);
        if (job && job->running && job->owner == ngx_pid) {
            ngx_http_siteflow_unclaim(sh, job);
        }

        goto failed;
    }

    ngx_queue_insert_tail(&ngx_http_siteflow_consumer.inflight,
                          &run->inflight);

    return run;

failed:

    /* under the lock: a probe given to this claim ends with it */

    if (probe) {
        unsigned  bits = (unsigned) probe;

        sf_breaker_probe_end(&sh->brk, (char *) job_storefront.data,
                             job_storefront.len, &bits);
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    if (pool) {
        ngx_destroy_pool(pool);
    }

    return NULL;
}


/* under the zone's mutex: a job claimed by this process or a dead one is
   due again */

static void
ngx_http_siteflow_unclaim(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_job_t *job)
{
    ngx_queue_remove(&job->run_link);
    job->running = 0;
    job->owner = 0;

    if (job->order) {
        ngx_http_siteflow_chain_sync(sh, job->order);

    } else {
        job->due.key = (ngx_rbtree_key_t) job->id;
        ngx_rbtree_insert(&sh->due, &job->due);
        job->in_due = 1;
    }
}


/* jobs claimed by a process that is gone are released */

static void
ngx_http_siteflow_sweep(void)
{
    ngx_pid_t                        pid;
    ngx_uint_t                       probes;
    ngx_queue_t                     *q, *next;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;

    /* a process killed in the middle of its write() leaves the lock */

    pid = (ngx_pid_t) sh->write_lock.lock;

    if (pid && pid != ngx_pid && kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH)
    {
        if (ngx_shmtx_force_unlock(qc->write_lock, pid)) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "siteflow: process %P died holding the spool "
                          "write lock; released", pid);
        }
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    probes = sf_breaker_probes_release(&sh->brk, ngx_http_siteflow_pid_gone,
                                       NULL);

    for (q = ngx_queue_head(&sh->running);
         q != ngx_queue_sentinel(&sh->running);
         q = next)
    {
        next = ngx_queue_next(q);
        job = ngx_queue_data(q, ngx_http_siteflow_job_t, run_link);

        if (job->owner == ngx_pid
            || kill(job->owner, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "siteflow: job %uL was being delivered by process "
                      "%P, which is gone; it is resumed", job->id,
                      job->owner);

        if (job->kind == NGX_HTTP_SITEFLOW_JOB_ORDER) {
            job->maybe_sent = 1;
        }

        ngx_http_siteflow_unclaim(sh, job);
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    if (probes) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "siteflow: %ui breaker probe(s) were run by a process "
                      "that is gone; the next job may probe", probes);
    }
}


/* the runner is done with a job: its outcome is written, then applied */

void
ngx_http_siteflow_consumer_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_siteflow_finish_t  *f;

    f = ngx_pcalloc(run->pool, sizeof(ngx_http_siteflow_finish_t));
    if (f == NULL) {
        /* the job stays claimed by this process; a restart resumes it */
        ngx_log_error(NGX_LOG_ALERT, run->log, 0,
                      "siteflow: out of memory finishing job %uL", run->id);
        return;
    }

    f->run = run;
    f->out = *out;

    /* a probe not yet ended by an answer either way ends here */
    ngx_http_siteflow_probe_end(run);

    if (out->error.len > NGX_HTTP_SITEFLOW_ERROR_MAX) {
        f->out.error.len = NGX_HTTP_SITEFLOW_ERROR_MAX;
    }

    /* the caller's buffers are gone when a write has to be tried again */

    if (f->out.error.len) {
        f->out.error.data = ngx_pstrdup(run->pool, &f->out.error);
        if (f->out.error.data == NULL) {
            f->out.error.len = 0;
        }
    }

    if (out->index) {
        f->idx = *out->index;
        f->out.index = &f->idx;

        /* strings of the index entry live in the run's pool or longer */
    }

    f->retry.handler = ngx_http_siteflow_finish_retry;
    f->retry.data = f;
    f->retry.log = run->log;

    cln = ngx_pool_cleanup_add(run->pool, 0);
    if (cln) {
        /* a run dropped at exit may be waiting to write again */
        cln->handler = ngx_http_siteflow_finish_cleanup;
        cln->data = f;
    }

    if (run->xfer) {
        ngx_http_siteflow_xfer_destroy(run->xfer);
        run->xfer = NULL;
    }

    ngx_http_siteflow_finish_write(f);
}


static void
ngx_http_siteflow_finish_write(ngx_http_siteflow_finish_t *f)
{
    char                            *results;
    uint64_t                         now;
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_run_t         *run;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_main_conf_t   *smcf;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    run = f->run;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    ngx_shmtx_lock(&qc->shpool->mutex);

    job = ngx_http_siteflow_job_find(qc->sh, run->id);

    if (job == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        ngx_http_siteflow_consumer.runs--;
        ngx_http_siteflow_run_free(run);
        return;
    }

    (void) ngx_http_siteflow_state_op(job, &op);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    now = ngx_http_siteflow_now_ms();

    op.state = f->out.state;
    op.attempts = run->attempts + 1;
    op.error = f->out.error;
    op.maybe_sent = f->out.maybe_sent;
    op.release = 1;
    op.next_ms = 0;

    if (op.state == SF_QSTATE_RETRYING) {
        if (smcf->give_up
            && sf_job_give_up(run->created_ms, now, smcf->give_up))
        {
            op.state = SF_QSTATE_FAILED;

        } else {
            op.next_ms = now + sf_job_backoff_ms(op.attempts,
                                                 smcf->retry_base,
                                                 smcf->retry_max,
                                                 (uint32_t) ngx_random());
        }
    }

    results = sf_json_dump(run->results);

    if (results) {
        op.results.data = (u_char *) results;
        op.results.len = ngx_strlen(results);
    }

    if (f->out.index) {
        ngx_http_siteflow_op_t  iop;

        ngx_memzero(&iop, sizeof(ngx_http_siteflow_op_t));
        iop.type = SF_QREC_INDEX;
        iop.postback = 0;
        iop.idx = *f->out.index;
        iop.version = ngx_http_siteflow_idx_version(f->out.index);

        if (ngx_http_siteflow_append(&iop) != NGX_OK) {
            free(results);
            ngx_add_timer(&f->retry, 1000);
            return;
        }
    }

    op.handler = ngx_http_siteflow_finished;
    op.data = f;

    if (ngx_http_siteflow_append(&op) != NGX_OK) {
        free(results);
        ngx_add_timer(&f->retry, 1000);
        return;
    }

    free(results);
}


static void
ngx_http_siteflow_finished(void *data, ngx_int_t rc, uint64_t id)
{
    ngx_http_siteflow_finish_t  *f = data;

    if (rc != NGX_OK) {
        /* the outcome is kept here until the spool takes it */
        ngx_add_timer(&f->retry, 1000);
        return;
    }

    ngx_http_siteflow_consumer.runs--;
    ngx_http_siteflow_run_free(f->run);

    ngx_http_siteflow_consumer_wake();
}


static void
ngx_http_siteflow_finish_retry(ngx_event_t *ev)
{
    ngx_http_siteflow_finish_write(ev->data);
}


static void
ngx_http_siteflow_finish_cleanup(void *data)
{
    ngx_http_siteflow_finish_t  *f = data;

    if (f->retry.timer_set) {
        ngx_del_timer(&f->retry);
    }
}


static void
ngx_http_siteflow_run_free(ngx_http_siteflow_run_t *run)
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
