
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "sf_sig.h"


#define NGX_HTTP_SITEFLOW_VERSION  "0.1.0"


/* shared zone counters, exported later as metrics */
typedef enum {
    NGX_HTTP_SITEFLOW_SIG_OK = 0,
    NGX_HTTP_SITEFLOW_SIG_MISSING,
    NGX_HTTP_SITEFLOW_SIG_MALFORMED,
    NGX_HTTP_SITEFLOW_SIG_UNKNOWN_PARTNER,
    NGX_HTTP_SITEFLOW_SIG_MISMATCH,
    NGX_HTTP_SITEFLOW_SIG_REPLAY,
    NGX_HTTP_SITEFLOW_SIG_MAX
} ngx_http_siteflow_sig_result_e;


typedef enum {
    NGX_HTTP_SITEFLOW_CNT_SIG = 0,      /* + result, SIG_MAX slots */
    NGX_HTTP_SITEFLOW_CNT_SHIP_INVALID = NGX_HTTP_SITEFLOW_SIG_MAX,
    NGX_HTTP_SITEFLOW_CNT_SHIP_MAPPED,
    NGX_HTTP_SITEFLOW_CNT_NONCE_EVICTED,
    NGX_HTTP_SITEFLOW_CNT_MAX
} ngx_http_siteflow_counter_e;


typedef struct {
    ngx_str_t                      id;
    ngx_str_t                      key;
    sf_sig_key_t                  *hmac;     /* prepared once per key */
} ngx_http_siteflow_partner_t;


typedef struct {
    ngx_shm_zone_t                *shm_zone;
    ngx_uint_t                     nonce_cache;     /* 0: auto */
    ngx_flag_t                     requires_guard;
} ngx_http_siteflow_main_conf_t;


typedef struct {
    ngx_array_t                   *partners;   /* ngx_http_siteflow_partner_t */
    ngx_msec_t                     nonce_ttl;
    ngx_flag_t                     verify_signature;
    ngx_flag_t                     shipment_validate;
    ngx_uint_t                     sig_log_level;
    size_t                         shipment_body_max;

    ngx_str_t                     *verify_file;  /* for merge-time errors */
    ngx_uint_t                     verify_line;
} ngx_http_siteflow_loc_conf_t;


typedef struct {
    ngx_str_t                      partner_id;   /* verified caller */
    ngx_http_siteflow_partner_t   *signer;       /* key for the response */
    ngx_str_t                      error;        /* message to send */
    ngx_uint_t                     sig_result;
    ngx_int_t                      status;       /* access phase result */

    ngx_str_t                      mapped_body;  /* replaced upstream body */

    unsigned                       checked:1;
    unsigned                       verified:1;
    unsigned                       done:1;
    unsigned                       waiting_body:1;
    unsigned                       replace_body:1;
    unsigned                       replaced:1;
} ngx_http_siteflow_ctx_t;


extern ngx_module_t  ngx_http_siteflow_module;


#endif /* _NGX_HTTP_SITEFLOW_H_INCLUDED_ */
