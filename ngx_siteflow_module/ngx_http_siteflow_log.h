
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_LOG_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_LOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"


/* the Site Flow Log writer, in ngx_http_siteflow_shmlog.c */
/* "siteflow_log_body_max" of the request's server */
size_t ngx_http_siteflow_log_body_max(ngx_http_request_t *r);


/* the Site Flow Log (written in ngx_http_siteflow_shmlog.c) */
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


ngx_shm_zone_t *ngx_http_siteflow_log_zone(void);
ngx_int_t ngx_http_siteflow_log_enabled(ngx_http_siteflow_srv_conf_t *sscf);


#endif /* _NGX_HTTP_SITEFLOW_LOG_H_INCLUDED_ */
