
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_SHMLOG_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_SHMLOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "sf_ring.h"


#define NGX_HTTP_SITEFLOW_SWITCH_MAX       32   /* run-time log switches */
#define NGX_HTTP_SITEFLOW_SWITCH_NAME      128  /* longest storefront name */

#define NGX_HTTP_SITEFLOW_SWITCH_UNSET     -1
#define NGX_HTTP_SITEFLOW_SWITCH_OFF       0
#define NGX_HTTP_SITEFLOW_SWITCH_ON        1

#define NGX_HTTP_SITEFLOW_UPSTREAMS        2    /* 0 SiteFlow, 1 PrintNow */
#define NGX_HTTP_SITEFLOW_LATENCY_BUCKETS  11   /* finite bounds, +Inf */


typedef enum {
    NGX_HTTP_SITEFLOW_NONCE_FRESH = 0,
    NGX_HTTP_SITEFLOW_NONCE_FRESH_EVICTED,  /* stored, an unexpired one went */
    NGX_HTTP_SITEFLOW_NONCE_REPLAY,
    NGX_HTTP_SITEFLOW_NONCE_ERROR
} ngx_http_siteflow_nonce_rc_e;


char *ngx_http_siteflow_shm_zone_init_conf(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf);
char *ngx_http_siteflow_shm_check(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf);
size_t ngx_http_siteflow_nonce_entry_size(void);

#define NGX_HTTP_SITEFLOW_DIGEST_LEN  16

ngx_http_siteflow_nonce_rc_e ngx_http_siteflow_nonce_check(
    ngx_shm_zone_t *shm_zone, u_char *digest, ngx_msec_t ttl);
void ngx_http_siteflow_count(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_counter_e counter);


typedef struct {
    size_t                         size;         /* data area of the ring */
    size_t                         used;
    size_t                         entries;
    uint64_t                       overwritten;
    size_t                         zone_size;
    size_t                         zone_free;    /* free slab pages */
} ngx_http_siteflow_ring_stats_t;


extern const ngx_msec_t  ngx_http_siteflow_latency_bounds[
    NGX_HTTP_SITEFLOW_LATENCY_BUCKETS];

void ngx_http_siteflow_counters(ngx_shm_zone_t *shm_zone,
    ngx_atomic_uint_t *out);
void ngx_http_siteflow_latency_add(ngx_shm_zone_t *shm_zone,
    ngx_uint_t upstream, ngx_msec_t ms);
void ngx_http_siteflow_latency_get(ngx_shm_zone_t *shm_zone,
    ngx_uint_t upstream, ngx_atomic_uint_t *counts, ngx_atomic_uint_t *sum);
ngx_int_t ngx_http_siteflow_log_switch(ngx_shm_zone_t *shm_zone,
    ngx_str_t *storefront);
ngx_int_t ngx_http_siteflow_log_switch_set(ngx_shm_zone_t *shm_zone,
    ngx_str_t *storefront, ngx_int_t value);
ngx_int_t ngx_http_siteflow_ring_append(ngx_shm_zone_t *shm_zone,
    sf_ring_entry_t *e);
ngx_int_t ngx_http_siteflow_ring_snapshot(ngx_shm_zone_t *shm_zone,
    ngx_pool_t *pool, ngx_str_t *snap);
ngx_uint_t ngx_http_siteflow_ring_clear(ngx_shm_zone_t *shm_zone,
    ngx_str_t *storefront);
void ngx_http_siteflow_ring_stats(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_ring_stats_t *st);


#endif /* _NGX_HTTP_SITEFLOW_SHMLOG_H_INCLUDED_ */
