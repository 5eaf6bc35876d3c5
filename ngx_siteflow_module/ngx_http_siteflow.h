
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "sf_sig.h"
#include "sf_mapping.h"
#include "ngx_http_siteflow_curl.h"
#include "ngx_http_siteflow_upstream.h"


#define NGX_HTTP_SITEFLOW_VERSION  "0.3.0"

/* the shortest siteflow_token accepted */
#define NGX_HTTP_SITEFLOW_TOKEN_MIN  16


/* results of the Ship API signature check, counted per result */
typedef enum {
    NGX_HTTP_SITEFLOW_SIG_OK = 0,
    NGX_HTTP_SITEFLOW_SIG_MISSING,
    NGX_HTTP_SITEFLOW_SIG_MALFORMED,
    NGX_HTTP_SITEFLOW_SIG_UNKNOWN_PARTNER,
    NGX_HTTP_SITEFLOW_SIG_MISMATCH,
    NGX_HTTP_SITEFLOW_SIG_REPLAY,
    NGX_HTTP_SITEFLOW_SIG_MAX
} ngx_http_siteflow_sig_result_e;


/* the "siteflow_zone" counters, exported by the admin "metrics" endpoint */
typedef enum {
    NGX_HTTP_SITEFLOW_CNT_SIG = 0,      /* + result, SIG_MAX slots */
    NGX_HTTP_SITEFLOW_CNT_SHIP_INVALID = NGX_HTTP_SITEFLOW_SIG_MAX,
    NGX_HTTP_SITEFLOW_CNT_SHIP_MAPPED,
    NGX_HTTP_SITEFLOW_CNT_NONCE_EVICTED,
    NGX_HTTP_SITEFLOW_CNT_HOOK_ACCEPTED,      /* 202: a job was queued */
    NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED,       /* 200 skipped */
    NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED,      /* 4xx */
    NGX_HTTP_SITEFLOW_CNT_POSTBACK_ACCEPTED,  /* 200: a job was queued */
    NGX_HTTP_SITEFLOW_CNT_POSTBACK_DUPLICATE, /* 200, nothing to do */
    NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED,  /* 4xx */
    NGX_HTTP_SITEFLOW_CNT_SPOOL_UNAVAILABLE,  /* 503: not durable */
    NGX_HTTP_SITEFLOW_CNT_DELIVERY_DONE,      /* one HTTP step, by outcome */
    NGX_HTTP_SITEFLOW_CNT_DELIVERY_RETRY,
    NGX_HTTP_SITEFLOW_CNT_DELIVERY_FAILED,
    NGX_HTTP_SITEFLOW_CNT_DELIVERY_AMBIGUOUS,
    NGX_HTTP_SITEFLOW_CNT_MAX
} ngx_http_siteflow_counter_e;


typedef struct {
    ngx_str_t                      id;
    ngx_str_t                      key;
    sf_sig_key_t                  *hmac;     /* prepared once per key */
} ngx_http_siteflow_partner_t;


typedef struct ngx_http_siteflow_queue_conf_s  ngx_http_siteflow_queue_conf_t;
typedef struct ngx_http_siteflow_pgq_conf_s    ngx_http_siteflow_pgq_conf_t;


typedef struct {
    ngx_shm_zone_t                *shm_zone;
    ngx_uint_t                     nonce_cache;     /* 0: auto */
    ngx_flag_t                     requires_guard;

    ngx_http_siteflow_queue_conf_t *queue;         /* siteflow_spool */
    ngx_http_siteflow_pgq_conf_t   *pg_queue;      /* siteflow_queue */
    ngx_array_t                    storefronts;    /* srv conf pointers */
    ngx_flag_t                     requires_spool; /* hook/postback/admin */
    ngx_str_t                     *requires_file;
    ngx_uint_t                     requires_line;
    ngx_str_t                     *admin_file;    /* the first admin */
    ngx_uint_t                     admin_line;

    ngx_msec_t                     retry_base;
    ngx_msec_t                     retry_max;
    ngx_msec_t                     give_up;       /* 0: never */
    ngx_uint_t                     concurrency;
    ngx_uint_t                     queue_workers; /* 0: all */
} ngx_http_siteflow_main_conf_t;


/* siteflow_queue_workers with siteflow_queue, in either order */
#define NGX_HTTP_SITEFLOW_WORKERS_ON_PG                                    \
    "\"siteflow_queue_workers\" applies to \"siteflow_spool\"; with "     \
    "\"siteflow_queue\" worker 0 of each edge delivers (docs/fleet.md)"


/* per server{} (a storefront); set at http{} level too and merged */
typedef struct {
    ngx_str_t                      storefront;
    ngx_flag_t                     log;
    size_t                         log_body_max;

    ngx_str_t                      api_url;      /* "" = auto */
    ngx_int_t                      api_scheme;   /* sf_scheme_t, unset */
    ngx_int_t                      api_hash;     /* sf_hash_t, unset */
    ngx_str_t                      token;        /* siteflow_credentials */
    ngx_str_t                      secret;
    ngx_str_t                     *token_file;   /* where it is set */
    ngx_uint_t                     token_line;
    ngx_http_siteflow_api_t        api;          /* validate, look up */
    ngx_http_siteflow_api_t        api_create;   /* create */
    ngx_str_t                      destination;
    ngx_array_t                   *trigger;      /* sf_order_str_t */
    sf_mapping_t                  *mapping;
    ngx_str_t                      mapping_file;
    ngx_str_t                      printnow_url;
    ngx_str_t                      printnow_token;
    ngx_str_t                      printnow_key;
    ngx_http_siteflow_printnow_t   printnow;
    ngx_flag_t                     printnow_fetch;
    ngx_flag_t                     cancel_on_delete;
    ngx_flag_t                     ship_per_item;
    ngx_msec_t                     echo_window;

    ngx_http_siteflow_xfer_conf_t  xfer;         /* timeouts, TLS */

    ngx_uint_t                     uses;         /* NGX_HTTP_SITEFLOW_H_*
                                                    bits */
    ngx_str_t                     *uses_file;
    ngx_uint_t                     uses_line;

    ngx_array_t                   *admin_names;  /* the server{}'s
                                                    server_names, copied at
                                                    postconfiguration */
} ngx_http_siteflow_srv_conf_t;


typedef struct {
    ngx_array_t                   *partners;   /* ngx_http_siteflow_partner_t */
    ngx_msec_t                     nonce_ttl;
    ngx_flag_t                     verify_signature;
    ngx_flag_t                     shipment_validate;
    ngx_uint_t                     sig_log_level;
    size_t                         shipment_body_max;

    ngx_str_t                      token;        /* siteflow_token */
    ngx_uint_t                     handler;      /* NGX_HTTP_SITEFLOW_H_* */
    ngx_str_t                     *handler_file;
    ngx_uint_t                     handler_line;
    off_t                          body_max;     /* client_max_body_size */

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
    unsigned                       guard:1;      /* a guard's ctx
                                                    (guard.c), not a
                                                    hook's */
    unsigned                       early:1;      /* a guarded location
                                                    answered before its
                                                    guard ran (413):
                                                    logged too */
    unsigned                       verified:1;
    unsigned                       done:1;
    unsigned                       waiting_body:1;
    unsigned                       replace_body:1;
    unsigned                       replaced:1;
} ngx_http_siteflow_ctx_t;


#define NGX_HTTP_SITEFLOW_H_NONE      0
#define NGX_HTTP_SITEFLOW_H_HOOK      1
#define NGX_HTTP_SITEFLOW_H_POSTBACK  2
#define NGX_HTTP_SITEFLOW_H_ADMIN     4


extern ngx_module_t  ngx_http_siteflow_module;


/* a JSON body (a newline is added); the rc to finalize the request with
   (ngx_http_siteflow_module.c) */
ngx_int_t ngx_http_siteflow_send_json(ngx_http_request_t *r,
    ngx_uint_t status, char *json);


#endif /* _NGX_HTTP_SITEFLOW_H_INCLUDED_ */
