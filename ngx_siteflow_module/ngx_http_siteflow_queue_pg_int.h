
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_QUEUE_PG_INT_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_QUEUE_PG_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <libpq-fe.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_pg.h"


/*
 * Between the files of the PostgreSQL backend only, each calling only
 * those below it:
 *
 *   ngx_http_siteflow_queue_pg.c           the interface (queue_pg.h):
 *                                          directive, enqueue, look-ups,
 *                                          admin, metrics
 *   ngx_http_siteflow_queue_pg_consumer.c  claims, leases, outcomes,
 *                                          breakers, pruning (worker 0)
 *   ngx_http_siteflow_queue_pg_lookup.c    what was read of orders (for
 *                                          index_get() and pending()),
 *                                          result rows, events
 *   ngx_http_siteflow_pg.c                 libpq on the event loop
 */


/* an order as read from the database, for as long as its pool lives */

typedef struct {
    ngx_queue_t                        queue;     /* the process's */
    ngx_pool_t                        *pool;
    ngx_str_t                          storefront;
    ngx_str_t                          key;       /* order id or source */
    ngx_uint_t                         by_source;
    ngx_uint_t                         found;
    ngx_uint_t                         loaded;    /* 0, or the order in
                                                     which look-ups were
                                                     read */
    ngx_uint_t                         pending_known;
    ngx_uint_t                         pending[4];  /* by kind */
    ngx_http_siteflow_index_t          idx;
    ngx_http_siteflow_pg_query_t      *query;
    ngx_http_siteflow_lookup_pt        handler;
    void                              *data;
} ngx_http_siteflow_pgq_lookup_t;


/* ngx_http_siteflow_queue_pg_lookup.c */

void ngx_http_siteflow_pgq_lookups_init(void);
/* a look-up registered in pool (removed, its query cancelled, when the
   pool goes) */
ngx_http_siteflow_pgq_lookup_t *ngx_http_siteflow_pgq_lookup_add(
    ngx_pool_t *pool, ngx_str_t *storefront, ngx_str_t *key,
    ngx_uint_t by_source);
/* lk holds what was read (pending_known: its pending[] too) */
void ngx_http_siteflow_pgq_lookup_loaded(ngx_http_siteflow_pgq_lookup_t *lk,
    ngx_uint_t pending_known);
/* the index entry's columns from col on: order id, source id, SiteFlow
   id, state, rank, fingerprint, updated, sent */
void ngx_http_siteflow_pgq_index_row(PGresult *res, int row, int col,
    ngx_str_t *storefront, ngx_pool_t *pool,
    ngx_http_siteflow_index_t *idx);
ngx_int_t ngx_http_siteflow_pgq_str(PGresult *res, int row, int col,
    ngx_pool_t *pool, ngx_str_t *s);
uint64_t ngx_http_siteflow_pgq_u64(PGresult *res, int row, int col);
ngx_int_t ngx_http_siteflow_pgq_copy(ngx_pool_t *pool, ngx_str_t *s);
/* an event of the backend's own (timers, posted) */
void ngx_http_siteflow_pgq_event(ngx_event_t *ev,
    ngx_event_handler_pt handler);


/* ngx_http_siteflow_queue_pg_consumer.c */

ngx_int_t ngx_http_siteflow_pgq_consumer_init(ngx_cycle_t *cycle,
    ngx_http_siteflow_pgq_conf_t *pc, ngx_uint_t concurrency,
    ngx_str_t *edge);
void ngx_http_siteflow_pgq_consumer_exit(ngx_cycle_t *cycle);
/* a job may be due: claim soon */
void ngx_http_siteflow_pgq_wake(void);
/* what the index forgot, as the last claim read it */
void ngx_http_siteflow_pgq_horizon(uint64_t *pruned_max,
    ngx_uint_t *pruned_other);


#endif /* _NGX_HTTP_SITEFLOW_QUEUE_PG_INT_H_INCLUDED_ */
