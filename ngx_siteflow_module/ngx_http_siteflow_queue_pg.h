
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_QUEUE_PG_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_QUEUE_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"


/*
 * The PostgreSQL backend of the queue ("siteflow_queue"): the job table,
 * the sent-orders index and the leases in one database that several
 * nginx edges share (docs/fleet.md).  Only ngx_http_siteflow_queue.c
 * (the dispatch) and the directive in ngx_http_siteflow_module.c call
 * these; each has the meaning of the queue.h function of the same name.
 */


struct ngx_http_siteflow_pgq_conf_s {
    ngx_str_t                      url;          /* NUL-terminated */
    ngx_uint_t                     pool;         /* connections a worker */
    ngx_msec_t                     lease;
    ngx_msec_t                     retention;    /* index_retention= */
};


/* the backend of this process's cycle, or NULL (the spool) */
extern ngx_http_siteflow_pgq_conf_t  *ngx_http_siteflow_pgq;


char *ngx_http_siteflow_pgq_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_siteflow_pgq_init_process(ngx_cycle_t *cycle,
    ngx_http_siteflow_pgq_conf_t *pc, ngx_uint_t concurrency);
void ngx_http_siteflow_pgq_exit_process(ngx_cycle_t *cycle);

ngx_int_t ngx_http_siteflow_pgq_enqueue(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, ngx_str_t *text,
    ngx_http_siteflow_index_t *idx, ngx_http_siteflow_enqueue_pt handler,
    void *data);
ngx_int_t ngx_http_siteflow_pgq_lookup(ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_lookup_pt handler, void *data);
ngx_int_t ngx_http_siteflow_pgq_index_get(ngx_str_t *storefront,
    ngx_str_t *order_id, ngx_str_t *source_id, ngx_pool_t *pool,
    ngx_http_siteflow_index_t *idx);
ngx_int_t ngx_http_siteflow_pgq_pending(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id);
ngx_uint_t ngx_http_siteflow_pgq_forgot(ngx_str_t *order_id);
ngx_int_t ngx_http_siteflow_pgq_list(ngx_pool_t *pool,
    ngx_http_siteflow_queue_filter_t *f, ngx_array_t *out,
    ngx_http_siteflow_lookup_pt handler, void *data);
ngx_int_t ngx_http_siteflow_pgq_retry(uint64_t id,
    ngx_http_siteflow_enqueue_pt handler, void *data);
ngx_int_t ngx_http_siteflow_pgq_stats(ngx_uint_t counts[5]);
ngx_int_t ngx_http_siteflow_pgq_oldest(ngx_pool_t *pool, ngx_array_t *out);
void ngx_http_siteflow_pgq_index(ngx_uint_t *orders, uint64_t *forgotten);
void ngx_http_siteflow_pgq_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out);
void ngx_http_siteflow_pgq_breaker(ngx_http_siteflow_run_t *run,
    ngx_uint_t siteflow, ngx_uint_t ok);
ngx_uint_t ngx_http_siteflow_pgq_may_create(ngx_http_siteflow_run_t *run);
ngx_str_t *ngx_http_siteflow_pgq_edge(void);
void ngx_http_siteflow_pgq_runner_set(ngx_http_siteflow_runner_pt runner);


#endif /* _NGX_HTTP_SITEFLOW_QUEUE_PG_H_INCLUDED_ */
