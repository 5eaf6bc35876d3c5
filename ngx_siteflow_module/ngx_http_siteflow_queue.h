
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_QUEUE_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_QUEUE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"


/*
 * The durable job queue ("siteflow_spool"): the one interface the
 * handlers (hook, postback, admin) and the job runner (jobs.c) use.  Its
 * backend today is the spool (journal files in the spool directory, the
 * job table and the sent-orders index in a shared memory zone of their
 * own, a consumer in worker 0 or in the first siteflow_queue_workers
 * workers): ngx_http_siteflow_queue*.c.  A second
 * backend implements the same functions; ngx_http_siteflow_queue.c is
 * the thin dispatch to it.  See docs/internals/delivery.md, "Layout".
 *
 * Calls go down only: the consumer hands a claimed job to the runner
 * registered with ngx_http_siteflow_queue_runner(), and the runner gives
 * the outcome back with ngx_http_siteflow_queue_done().
 */


#define NGX_HTTP_SITEFLOW_JOB_ORDER     1   /* PrintNow order -> SiteFlow */
#define NGX_HTTP_SITEFLOW_JOB_CANCEL    2   /* cancel a SiteFlow order */
#define NGX_HTTP_SITEFLOW_JOB_UPDATE    3   /* SiteFlow event -> PrintNow */

/* the longest PrintNow order id the hook and the admin take */
#define NGX_HTTP_SITEFLOW_ORDER_ID_MAX  128


/* called once the job is durable (rc NGX_OK, id set) or not (NGX_ERROR);
   NGX_BUSY: a postback whose order took another postback since it was
   judged (the PostgreSQL queue), nothing written: judge it again */
typedef void (*ngx_http_siteflow_enqueue_pt)(void *data, ngx_int_t rc,
    uint64_t id);


typedef struct {
    ngx_int_t                      state;        /* SF_QSTATE_*, -1 any */
    ngx_str_t                      storefront;   /* "" any */
    ngx_str_t                      order_id;     /* "" any */
    ngx_uint_t                     limit;        /* 0 no limit */
} ngx_http_siteflow_queue_filter_t;


char *ngx_http_siteflow_spool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_siteflow_queue_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_siteflow_queue_init_process(ngx_cycle_t *cycle);
void ngx_http_siteflow_queue_exit_process(ngx_cycle_t *cycle);

/*
 * kind NGX_HTTP_SITEFLOW_JOB_*; order_id is the PrintNow order id; the job
 * object (owned by the caller) is stored as it is
 */
ngx_int_t ngx_http_siteflow_queue_enqueue(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, json_t *job,
    ngx_http_siteflow_enqueue_pt handler, void *data);

/* a job as the listing copies it (strings in the caller's pool) */
typedef struct {
    uint64_t                       id;
    ngx_uint_t                     kind;         /* NGX_HTTP_SITEFLOW_JOB_* */
    ngx_str_t                      storefront;
    ngx_str_t                      order_id;
    ngx_uint_t                     state;        /* SF_QSTATE_* */
    ngx_uint_t                     attempts;
    uint64_t                       next_ms;
    ngx_str_t                      error;        /* last_error */
    uint64_t                       created_ms;
} ngx_http_siteflow_queue_item_t;

/* list: the jobs that match f, newest first, into out (an array of
   ngx_http_siteflow_queue_item_t initialized here); NGX_DECLINED without
   a spool */
ngx_int_t ngx_http_siteflow_queue_list(ngx_pool_t *pool,
    ngx_http_siteflow_queue_filter_t *f, ngx_array_t *out);

/* reschedule a failed job now: NGX_OK (handler is called once it is
   durable), NGX_DECLINED no such job, NGX_BUSY the job has not failed,
   NGX_ABORT no spool, NGX_ERROR the spool cannot take it now; on
   PostgreSQL the handler may get NGX_DECLINED and NGX_BUSY too */
ngx_int_t ngx_http_siteflow_queue_retry(uint64_t id,
    ngx_http_siteflow_enqueue_pt handler, void *data);

/* jobs by SF_QSTATE_* (5 slots); NGX_DECLINED without a spool */
ngx_int_t ngx_http_siteflow_queue_stats(ngx_uint_t counts[5]);

/* for the metrics (NGX_DECLINED without a spool) */

typedef struct {
    ngx_str_t                      storefront;
    ngx_uint_t                     state;        /* SF_QSTATE_* */
    uint64_t                       created_ms;
} ngx_http_siteflow_queue_oldest_t;

typedef struct {
    ngx_str_t                      storefront;
    ngx_uint_t                     failures;     /* in a row; 0: closed */
} ngx_http_siteflow_queue_breaker_t;

/* the oldest pending, retrying and failed job of each storefront */
ngx_int_t ngx_http_siteflow_queue_oldest(ngx_pool_t *pool, ngx_array_t *out);

/* the breakers of the storefronts whose upstream failed, as the
   consumers last published them */
ngx_int_t ngx_http_siteflow_queue_breakers(ngx_pool_t *pool,
    ngx_array_t *out);

/* the size of the "siteflow_spool" zone, and its free bytes */
ngx_int_t ngx_http_siteflow_queue_zone(size_t *size, size_t *free);

/* the spool directory (configuration time and later) */
ngx_str_t *ngx_http_siteflow_queue_dir(ngx_http_siteflow_queue_conf_t *qc);

/* damaged stretches and their bytes skipped when nginx started */
void ngx_http_siteflow_queue_damage(ngx_uint_t *places, uint64_t *bytes);

/* the orders in the sent-orders index, and how many it forgot
   (index_retention) since nginx started */
void ngx_http_siteflow_queue_index(ngx_uint_t *orders, uint64_t *forgotten);

/* the sent-orders index entry, as the handlers and runners see it */
#define NGX_HTTP_SITEFLOW_IDX_QUEUED     0   /* a create is queued */
#define NGX_HTTP_SITEFLOW_IDX_SENT       1   /* created in SiteFlow */
#define NGX_HTTP_SITEFLOW_IDX_CANCELLED  2

typedef struct {
    ngx_str_t                      storefront;
    ngx_str_t                      order_id;      /* PrintNow's */
    ngx_str_t                      source_id;     /* sourceOrderId */
    ngx_str_t                      siteflow_id;   /* SiteFlow _id */
    ngx_uint_t                     state;         /* NGX_HTTP_SITEFLOW_IDX_* */
    ngx_int_t                      rank;          /* of the last event */
    uint64_t                       fingerprint;   /* of the last postback
                                                     (low 32 bits), of the
                                                     shipment's before it
                                                     (high 32 bits) */
    uint32_t                       pb_seen;       /* the postback half's
                                                     version, for
                                                     queue_reserve() */
    ngx_int_t                      seen_rank;     /* what a postback */
    uint64_t                       seen_fingerprint;  /* was judged by */
    uint64_t                       updated_ms;    /* our last PrintNow
                                                     update */
    uint64_t                       sent_ms;
} ngx_http_siteflow_index_t;


/* one running job, owned by the consumer of the worker that claimed it */
typedef struct ngx_http_siteflow_run_s  ngx_http_siteflow_run_t;

struct ngx_http_siteflow_run_s {
    ngx_pool_t                    *pool;
    ngx_log_t                     *log;
    uint64_t                       id;
    ngx_uint_t                     kind;
    ngx_str_t                      storefront;
    ngx_str_t                      order_id;
    json_t                        *job;           /* the job's object */
    json_t                        *results;       /* step results, owned */
    ngx_uint_t                     attempts;      /* before this one */
    uint64_t                       created_ms;
    unsigned                       maybe_sent:1;  /* a create may be out */
    uint64_t                       leased_ms;     /* claimed at (the
                                                     PostgreSQL queue) */
    unsigned                       probe:2;       /* the breakers it
                                                     probes: 1 SiteFlow,
                                                     2 PrintNow */

    ngx_http_siteflow_srv_conf_t  *sscf;
    ngx_http_siteflow_xfer_t      *xfer;
    ngx_queue_t                    ready;         /* answered, to go on */
    ngx_queue_t                    inflight;      /* the consumer's runs */
    ngx_uint_t                     step;
    void                          *data;          /* the runner's */
};


/* what a run ends with */
typedef struct {
    ngx_int_t                      state;        /* SF_QSTATE_* */
    ngx_str_t                      error;        /* last_error */
    ngx_uint_t                     maybe_sent;
    ngx_http_siteflow_index_t     *index;        /* to store, or NULL */
} ngx_http_siteflow_outcome_t;


/* the runner: starts a claimed job; it ends with queue_done() */
typedef void (*ngx_http_siteflow_runner_pt)(ngx_http_siteflow_run_t *run);

/* registers the runner (before the worker processes start) */
void ngx_http_siteflow_queue_runner(ngx_http_siteflow_runner_pt runner);

/* complete: ends the run with its outcome (written, then applied); run
   is freed */
void ngx_http_siteflow_queue_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out);

/* SiteFlow (siteflow 1) or PrintNow (0) answered a call of the run's
   storefront (ok) or not: that upstream's breaker (reschedules the
   storefront's other jobs that need it) */
void ngx_http_siteflow_breaker_report(ngx_http_siteflow_run_t *run,
    ngx_uint_t siteflow, ngx_uint_t ok);

/* the run still surely owns its job for the time of a create call (the
   PostgreSQL queue's lease; always with the spool) */
ngx_uint_t ngx_http_siteflow_queue_may_create(ngx_http_siteflow_run_t *run);

/* the sent-orders index */
ngx_int_t ngx_http_siteflow_index_get(ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_index_t *idx);
/* enqueue, and store idx (if not NULL) in the same batch */
ngx_int_t ngx_http_siteflow_queue_enqueue_indexed(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, json_t *job,
    ngx_http_siteflow_index_t *idx, ngx_http_siteflow_enqueue_pt handler,
    void *data);
/* a postback's rank and fingerprint in idx taken in the index before its
   job is durable (NGX_BUSY: another postback of the order came first,
   read the index and judge again) */
ngx_int_t ngx_http_siteflow_queue_reserve(ngx_http_siteflow_index_t *idx,
    ngx_pool_t *pool);
/* the same with the job as compact JSON text (idx as _indexed()) */
ngx_int_t ngx_http_siteflow_queue_enqueue_text(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, ngx_str_t *text,
    ngx_http_siteflow_index_t *idx, ngx_http_siteflow_enqueue_pt handler,
    void *data);
/* the index forgot this order id (index_retention): look it up first */
ngx_uint_t ngx_http_siteflow_index_forgot(ngx_str_t *order_id);
/*
 * What index_get() and pending() answer about an order (by order_id, or
 * by source_id when order_id is NULL) is read from the backend first:
 * NGX_OK, they answer now (the spool, in shared memory); NGX_AGAIN, the
 * handler is called once they can (rc NGX_OK, for as long as pool
 * lives) or cannot (NGX_ERROR: the backend is unreachable).
 */
typedef void (*ngx_http_siteflow_lookup_pt)(void *data, ngx_int_t rc);

ngx_int_t ngx_http_siteflow_queue_lookup(ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_lookup_pt handler, void *data);
/* list() that may have to wait: NGX_AGAIN, the handler is called with
   what list() would have returned */
ngx_int_t ngx_http_siteflow_queue_list_async(ngx_pool_t *pool,
    ngx_http_siteflow_queue_filter_t *f, ngx_array_t *out,
    ngx_http_siteflow_lookup_pt handler, void *data);
/* "spool" or "postgresql", and this edge's name (hostname) */
const char *ngx_http_siteflow_queue_backend(void);
/* an unfinished job of this kind for this order exists */
ngx_int_t ngx_http_siteflow_queue_pending(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id);

/* the upstreams a job of this kind calls (SF_BREAKER_* bits of
   sf_breaker.h): an order's fetch calls PrintNow when the storefront
   fetches orders (a job's text is not read to know whether it came
   whole in its hook) */
ngx_uint_t ngx_http_siteflow_job_upstreams(ngx_uint_t kind,
    ngx_str_t *storefront);
const char *ngx_http_siteflow_kind_name(ngx_uint_t kind);
uint64_t ngx_http_siteflow_now_ms(void);


#endif /* _NGX_HTTP_SITEFLOW_QUEUE_H_INCLUDED_ */
