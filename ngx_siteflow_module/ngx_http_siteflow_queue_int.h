
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_QUEUE_INT_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_QUEUE_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"


/*
 * Between the queue (ngx_http_siteflow_queue.c: storage, consumer) and
 * the job runners (ngx_http_siteflow_jobs.c: what a job does) and the
 * handlers (ngx_http_siteflow_hook.c).
 */


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
    uint32_t                       fingerprint;   /* of the last postback */
    uint64_t                       updated_ms;    /* our last PrintNow
                                                     update */
    uint64_t                       sent_ms;
} ngx_http_siteflow_index_t;


/* one running job, owned by the consumer (worker 0) */
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
    unsigned                       probe:1;       /* breaker's probe */

    ngx_http_siteflow_srv_conf_t  *sscf;
    ngx_http_siteflow_xfer_t      *xfer;
    ngx_queue_t                    ready;         /* answered, to go on */
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


/* runner (jobs.c) */
void ngx_http_siteflow_job_start(ngx_http_siteflow_run_t *run);
void ngx_http_siteflow_job_abort(ngx_http_siteflow_run_t *run);

/* queue.c, for the runner: ends the run; run is freed */
void ngx_http_siteflow_queue_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out);

/* queue.c: an upstream of the run's storefront answered (ok) or not */
void ngx_http_siteflow_breaker_report(ngx_http_siteflow_run_t *run,
    ngx_uint_t ok);

/* queue.c, for the handlers and runners */
ngx_int_t ngx_http_siteflow_index_get(ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_index_t *idx);
ngx_int_t ngx_http_siteflow_index_put(ngx_http_siteflow_index_t *idx,
    ngx_http_siteflow_enqueue_pt handler, void *data);
ngx_int_t ngx_http_siteflow_queue_enqueue_indexed(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, json_t *job,
    ngx_http_siteflow_index_t *idx, ngx_http_siteflow_enqueue_pt handler,
    void *data);
/* the index forgot this order id (index_retention): look it up first */
ngx_uint_t ngx_http_siteflow_index_forgot(ngx_str_t *order_id);
/* an unfinished job of this kind for this order exists */
ngx_int_t ngx_http_siteflow_queue_pending(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id);
ngx_http_siteflow_srv_conf_t *ngx_http_siteflow_storefront(ngx_str_t *name);
const char *ngx_http_siteflow_kind_name(ngx_uint_t kind);
uint64_t ngx_http_siteflow_now_ms(void);
/* a JSON body (a newline is added); the rc to finalize the request with */
ngx_int_t ngx_http_siteflow_send_json(ngx_http_request_t *r,
    ngx_uint_t status, char *json);


#endif /* _NGX_HTTP_SITEFLOW_QUEUE_INT_H_INCLUDED_ */
