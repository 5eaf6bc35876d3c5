
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_CURL_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_CURL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "sf_job.h"


/*
 * libcurl's multi interface driven by nginx's event loop, one multi handle
 * per worker.  Only this file and ngx_http_siteflow_upstream.c include
 * curl/curl.h: the easy handle and its header list are opaque here.
 */


typedef struct ngx_http_siteflow_xfer_s  ngx_http_siteflow_xfer_t;

typedef void (*ngx_http_siteflow_xfer_done_pt)(ngx_http_siteflow_xfer_t *x);


/* what libcurl's URL parser finds wrong in a base URL ("nginx -t") */

#define NGX_HTTP_SITEFLOW_URL_BAD_PORT  1
#define NGX_HTTP_SITEFLOW_URL_BAD_HOST  2
#define NGX_HTTP_SITEFLOW_URL_BAD_PATH  3
#define NGX_HTTP_SITEFLOW_URL_BAD       4


typedef struct {
    ngx_msec_t                       connect_timeout;
    ngx_msec_t                       timeout;
    size_t                           max_response;
    ngx_str_t                        ca_file;       /* "" system default */
    ngx_flag_t                       ssl_verify;
} ngx_http_siteflow_xfer_conf_t;


struct ngx_http_siteflow_xfer_s {
    void                            *easy;      /* CURL * */
    void                            *headers;   /* struct curl_slist * */

    ngx_pool_t                      *pool;      /* the transfer's own */
    ngx_log_t                       *log;

    u_char                          *response;  /* body, capped */
    size_t                           response_len;
    size_t                           response_cap;
    size_t                           max_response;

    ngx_uint_t                       status;    /* HTTP status, 0 if none */
    sf_net_error_t                   net;       /* SF_NET_OK: an answer */
    int                              curl_code;
    u_char                          *error;     /* libcurl's reason, or "" */
    ngx_msec_t                       started;
    ngx_msec_t                       duration;

    ngx_http_siteflow_xfer_done_pt   handler;
    void                            *data;      /* the owner's */

    ngx_queue_t                      queue;     /* in flight */

    u_char                          *body;      /* a POST's, in the pool */
    size_t                           body_len;
    size_t                           body_read;
    ngx_uint_t                       attempts;  /* sendings of a create */

    unsigned                         sent:1;    /* request went out */
    unsigned                         running:1;
    unsigned                         too_large:1;
};


ngx_int_t ngx_http_siteflow_curl_init_process(ngx_cycle_t *cycle,
    ngx_uint_t concurrency);
void ngx_http_siteflow_curl_exit_process(ngx_cycle_t *cycle);

ngx_int_t ngx_http_siteflow_curl_parse_url(ngx_pool_t *pool, ngx_str_t *url,
    ngx_int_t *port, const char **reason);

ngx_http_siteflow_xfer_t *ngx_http_siteflow_xfer_create(ngx_log_t *log,
    ngx_http_siteflow_xfer_conf_t *conf);
ngx_int_t ngx_http_siteflow_xfer_start(ngx_http_siteflow_xfer_t *x);
void ngx_http_siteflow_xfer_cancel(ngx_http_siteflow_xfer_t *x);
void ngx_http_siteflow_xfer_fresh(ngx_http_siteflow_xfer_t *x);
void ngx_http_siteflow_xfer_destroy(ngx_http_siteflow_xfer_t *x);


#endif /* _NGX_HTTP_SITEFLOW_CURL_H_INCLUDED_ */
