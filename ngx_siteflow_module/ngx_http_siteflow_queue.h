
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
 * The durable job queue ("siteflow_spool"): journal files in the spool
 * directory, the job table and the sent-orders index in a shared memory
 * zone of their own, one consumer (worker 0) delivering through libcurl.
 * See docs/internals/delivery.md.
 */


#define NGX_HTTP_SITEFLOW_JOB_ORDER     1   /* PrintNow order -> SiteFlow */
#define NGX_HTTP_SITEFLOW_JOB_CANCEL    2   /* cancel a SiteFlow order */
#define NGX_HTTP_SITEFLOW_JOB_UPDATE    3   /* SiteFlow event -> PrintNow */


/* called once the job is durable (rc NGX_OK, id set) or not (NGX_ERROR) */
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
ngx_int_t ngx_http_siteflow_queue_init_process(ngx_cycle_t *cycle);
void ngx_http_siteflow_queue_exit_process(ngx_cycle_t *cycle);

/*
 * kind NGX_HTTP_SITEFLOW_JOB_*; order_id is the PrintNow order id; the job
 * object (owned by the caller) is stored as it is
 */
ngx_int_t ngx_http_siteflow_queue_enqueue(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, json_t *job,
    ngx_http_siteflow_enqueue_pt handler, void *data);

/* appends {"id","kind","storefront","order_id","state","attempts",
   "next_attempt","last_error","created"} objects, newest first */
ngx_int_t ngx_http_siteflow_queue_list(json_t *jobs,
    ngx_http_siteflow_queue_filter_t *f);

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

/* the breakers of the storefronts whose upstream failed, as worker 0
   last published them */
ngx_int_t ngx_http_siteflow_queue_breakers(ngx_pool_t *pool,
    ngx_array_t *out);

/* the size of the "siteflow_spool" zone, and its free bytes */
ngx_int_t ngx_http_siteflow_queue_zone(size_t *size, size_t *free);

/* the spool directory (configuration time and later) */
ngx_str_t *ngx_http_siteflow_queue_dir(ngx_http_siteflow_queue_conf_t *qc);

/* damaged stretches and their bytes skipped when nginx started */
void ngx_http_siteflow_queue_damage(ngx_uint_t *places, uint64_t *bytes);

/*
 * admin calls that take over the request: they read or discard the body,
 * answer it themselves (JSON) and return NGX_DONE, or return an HTTP
 * status for the caller to send
 */
ngx_int_t ngx_http_siteflow_admin_retry(ngx_http_request_t *r, uint64_t id);
ngx_int_t ngx_http_siteflow_admin_send(ngx_http_request_t *r,
    ngx_str_t *printnow_order_id, ngx_uint_t force);


/* the Site Flow Log (ngx_http_siteflow_log.c) */
typedef struct {
    ngx_uint_t                     direction;    /* SF_RING_IN / _OUT */
    ngx_str_t                      method;
    ngx_str_t                      url;          /* token= is redacted */
    ngx_uint_t                     status;       /* 0: no answer */
    ngx_msec_t                     duration;
    ngx_str_t                      order_id;
    ngx_str_t                      request;      /* bodies, capped */
    ngx_str_t                      response;
} ngx_http_siteflow_log_entry_t;

void ngx_http_siteflow_log_write(ngx_http_siteflow_srv_conf_t *sscf,
    ngx_http_siteflow_log_entry_t *e);

/* upstream latency histogram; upstream 0 SiteFlow, 1 PrintNow */
void ngx_http_siteflow_observe_latency(ngx_uint_t upstream, ngx_msec_t ms);
/* counter in the zone of the current cycle (no-op without a zone) */
void ngx_http_siteflow_counter(ngx_http_siteflow_counter_e counter);

/* content handlers of the hook and postback (ngx_http_siteflow_hook.c) */
ngx_int_t ngx_http_siteflow_hook_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_siteflow_hook_init(ngx_conf_t *cf);
ngx_int_t ngx_http_siteflow_postback_handler(ngx_http_request_t *r);

/* content handler of "siteflow_admin" (ngx_http_siteflow_admin.c) */
ngx_int_t ngx_http_siteflow_admin_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_SITEFLOW_QUEUE_H_INCLUDED_ */
