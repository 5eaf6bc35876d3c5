
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_admin.h"
#include "ngx_http_siteflow_guard.h"
#include "ngx_http_siteflow_queue.h"
#if (NGX_SITEFLOW_PG)
#include "ngx_http_siteflow_queue_pg.h"
#define ngx_http_siteflow_queue_url  ngx_http_siteflow_pgq_directive
#endif
#include "ngx_http_siteflow_hook.h"
#include "ngx_http_siteflow_jobs.h"
#include "ngx_http_siteflow_shmlog.h"
#include "ngx_http_siteflow_storefronts.h"
#include "ngx_http_siteflow_variables.h"
#include "sf_order.h"
#include "sf_sig.h"


static ngx_int_t ngx_http_siteflow_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_siteflow_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_siteflow_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_siteflow_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_siteflow_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_siteflow_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_siteflow_check_storefront(ngx_conf_t *cf,
    ngx_http_siteflow_srv_conf_t *conf);
static void *ngx_http_siteflow_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_siteflow_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_siteflow_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_nonce_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_partner(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_verify_signature(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_siteflow_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_siteflow_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_siteflow_check_storefront(ngx_conf_t *cf,
    ngx_http_siteflow_srv_conf_t *conf);
static char *ngx_http_siteflow_set_string(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_storefront_block(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_siteflow_positive_msec(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_siteflow_check_bounds(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_siteflow_log_level(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_positive_size(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_siteflow_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_order_trigger(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_siteflow_mapping(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_siteflow_mapping_cleanup(void *data);
static char *ngx_http_siteflow_trusted_certificate(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_siteflow_handler_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
#if !(NGX_SITEFLOW_PG)
static char *ngx_http_siteflow_queue_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
#endif
static char *ngx_http_siteflow_retry_backoff(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_siteflow_give_up(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_queue_workers(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_siteflow_resolve_api(ngx_conf_t *cf,
    ngx_http_siteflow_srv_conf_t *conf);
static ngx_int_t ngx_http_siteflow_init_process(ngx_cycle_t *cycle);
static void ngx_http_siteflow_exit_process(ngx_cycle_t *cycle);
static void ngx_http_siteflow_partner_cleanup(void *data);


static ngx_conf_enum_t  ngx_http_siteflow_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


/* nginx's own ngx_conf_check_num_bounds() names no directive */

static ngx_conf_num_bounds_t  ngx_http_siteflow_concurrency_bounds = {
    ngx_http_siteflow_check_bounds, 1, 10000
};


static ngx_conf_num_bounds_t  ngx_http_siteflow_log_body_bounds = {
    ngx_http_siteflow_check_bounds, 0, 1024 * 1024
};


static ngx_conf_post_t  ngx_http_siteflow_positive_msec_post = {
    ngx_http_siteflow_positive_msec
};


static ngx_conf_post_t  ngx_http_siteflow_positive_size_post = {
    ngx_http_siteflow_positive_size
};


static ngx_command_t  ngx_http_siteflow_commands[] = {

    { ngx_string("siteflow_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_nonce_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_nonce_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_partner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_siteflow_partner,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_verify_signature"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_siteflow_verify_signature,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_siteflow_loc_conf_t, verify_signature),
      NULL },

    { ngx_string("siteflow_nonce_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_siteflow_loc_conf_t, nonce_ttl),
      NULL },

    { ngx_string("siteflow_shipment_validate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_siteflow_loc_conf_t, shipment_validate),
      NULL },

    { ngx_string("siteflow_shipment_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_siteflow_loc_conf_t, shipment_body_max),
      NULL },

    { ngx_string("siteflow_signature_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_log_level,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_siteflow_loc_conf_t, sig_log_level),
      &ngx_http_siteflow_log_levels },

    { ngx_string("siteflow_spool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_siteflow_spool,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_queue"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_siteflow_queue_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_retry_backoff"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_siteflow_retry_backoff,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_give_up"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_give_up,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_queue_concurrency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_siteflow_main_conf_t, concurrency),
      &ngx_http_siteflow_concurrency_bounds },

    { ngx_string("siteflow_queue_workers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_queue_workers,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_log"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, log),
      NULL },

    { ngx_string("siteflow_log_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, log_body_max),
      &ngx_http_siteflow_log_body_bounds },

    { ngx_string("siteflow_storefront"),
      NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_storefront_block,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, storefront),
      NULL },

    { ngx_string("siteflow_api"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE123,
      ngx_http_siteflow_api,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_destination"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_set_string,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, destination),
      NULL },

    { ngx_string("siteflow_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE2,
      ngx_http_siteflow_credentials,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, token),
      NULL },

    { ngx_string("siteflow_order_trigger"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      ngx_http_siteflow_order_trigger,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_mapping"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_mapping,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("siteflow_printnow_api"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_url,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, printnow_url),
      NULL },

    { ngx_string("siteflow_printnow_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE2,
      ngx_http_siteflow_credentials,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, printnow_token),
      NULL },

    { ngx_string("siteflow_printnow_fetch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, printnow_fetch),
      NULL },

    { ngx_string("siteflow_cancel_on_delete"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, cancel_on_delete),
      NULL },

    { ngx_string("siteflow_ship_per_item"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, ship_per_item),
      NULL },

    { ngx_string("siteflow_echo_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, echo_window),
      NULL },

    { ngx_string("siteflow_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, xfer.timeout),
      &ngx_http_siteflow_positive_msec_post },

    { ngx_string("siteflow_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, xfer.connect_timeout),
      &ngx_http_siteflow_positive_msec_post },

    { ngx_string("siteflow_max_response"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, xfer.max_response),
      &ngx_http_siteflow_positive_size_post },

    { ngx_string("siteflow_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, xfer.ssl_verify),
      NULL },

    { ngx_string("siteflow_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_trusted_certificate,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, xfer.ca_file),
      NULL },

    { ngx_string("siteflow_printnow_hook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_siteflow_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_SITEFLOW_H_HOOK,
      NULL },

    { ngx_string("siteflow_postback"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_siteflow_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_SITEFLOW_H_POSTBACK,
      NULL },

    { ngx_string("siteflow_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_siteflow_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_SITEFLOW_H_ADMIN,
      NULL },

    { ngx_string("siteflow_token"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_siteflow_loc_conf_t, token),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_siteflow_module_ctx = {
    ngx_http_siteflow_preconfiguration,    /* preconfiguration */
    ngx_http_siteflow_postconfiguration,   /* postconfiguration */

    ngx_http_siteflow_create_main_conf,    /* create main configuration */
    ngx_http_siteflow_init_main_conf,      /* init main configuration */

    ngx_http_siteflow_create_srv_conf,     /* create server configuration */
    ngx_http_siteflow_merge_srv_conf,      /* merge server configuration */

    ngx_http_siteflow_create_loc_conf,     /* create location configuration */
    ngx_http_siteflow_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_siteflow_module = {
    NGX_MODULE_V1,
    &ngx_http_siteflow_module_ctx,         /* module context */
    ngx_http_siteflow_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_siteflow_queue_init_module,   /* init module */
    ngx_http_siteflow_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_siteflow_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_siteflow_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_siteflow_add_variables(cf);
}


static ngx_int_t
ngx_http_siteflow_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_siteflow_module);

    if (ngx_http_siteflow_admin_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (smcf->requires_guard) {
        if (ngx_http_siteflow_guard_init(cf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (smcf->requires_spool) {
        if (ngx_http_siteflow_hook_init(cf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void *
ngx_http_siteflow_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_siteflow_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     smcf->shm_zone = NULL;
     *     smcf->requires_guard = 0;
     */

    smcf->nonce_cache = NGX_CONF_UNSET_UINT;
    smcf->retry_base = NGX_CONF_UNSET_MSEC;
    smcf->retry_max = NGX_CONF_UNSET_MSEC;
    smcf->give_up = NGX_CONF_UNSET_MSEC;
    smcf->concurrency = NGX_CONF_UNSET_UINT;
    smcf->queue_workers = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&smcf->storefronts, cf->pool, 4,
                       sizeof(ngx_http_siteflow_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return smcf;
}


static char *
ngx_http_siteflow_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    if (smcf->nonce_cache != NGX_CONF_UNSET_UINT && smcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"siteflow_nonce_cache\" requires "
                           "\"siteflow_zone\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(smcf->nonce_cache, 0);

    if (smcf->retry_base == NGX_CONF_UNSET_MSEC) {
        smcf->retry_base = 1000;
        smcf->retry_max = 300000;
    }

    ngx_conf_init_msec_value(smcf->give_up, 0);
    ngx_conf_init_uint_value(smcf->concurrency, 32);
    ngx_conf_init_uint_value(smcf->queue_workers, 1);

    if (smcf->requires_spool && smcf->queue == NULL
        && smcf->pg_queue == NULL)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "a \"siteflow_printnow_hook\", \"siteflow_postback\" "
                      "or \"siteflow_admin\" location requires "
                      "\"siteflow_spool\" (or \"siteflow_queue\") in the "
                      "http block, in %V:%ui",
                      smcf->requires_file, smcf->requires_line);
        return NGX_CONF_ERROR;
    }

    if (smcf->admin_file != NULL && smcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "a \"siteflow_admin\" location requires "
                      "\"siteflow_zone\" in the http block (the Site Flow "
                      "Log and the counters it serves live there), "
                      "in %V:%ui", smcf->admin_file, smcf->admin_line);
        return NGX_CONF_ERROR;
    }

    if (smcf->shm_zone != NULL) {
        return ngx_http_siteflow_shm_check(cf, smcf);
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_siteflow_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_siteflow_loc_conf_t  *slcf;

    slcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_siteflow_loc_conf_t));
    if (slcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     slcf->partners = NULL;
     */

    slcf->nonce_ttl = NGX_CONF_UNSET_MSEC;
    slcf->verify_signature = NGX_CONF_UNSET;
    slcf->shipment_validate = NGX_CONF_UNSET;
    slcf->sig_log_level = NGX_CONF_UNSET_UINT;
    slcf->shipment_body_max = NGX_CONF_UNSET_SIZE;

    return slcf;
}


static char *
ngx_http_siteflow_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_siteflow_loc_conf_t *prev = parent;
    ngx_http_siteflow_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_siteflow_main_conf_t  *smcf;

    if (conf->partners == NULL) {
        conf->partners = prev->partners;
    }

    if (conf->verify_file == NULL) {
        conf->verify_file = prev->verify_file;
        conf->verify_line = prev->verify_line;
    }

    ngx_conf_merge_msec_value(conf->nonce_ttl, prev->nonce_ttl, 900000);
    ngx_conf_merge_value(conf->verify_signature, prev->verify_signature, 0);
    ngx_conf_merge_value(conf->shipment_validate, prev->shipment_validate, 0);
    ngx_conf_merge_uint_value(conf->sig_log_level, prev->sig_log_level,
                              NGX_LOG_ERR);
    ngx_conf_merge_size_value(conf->shipment_body_max,
                              prev->shipment_body_max, 1024 * 1024);

    if (conf->token.data == NULL) {
        conf->token = prev->token;
    }

    if (conf->handler == NGX_HTTP_SITEFLOW_H_HOOK
        || conf->handler == NGX_HTTP_SITEFLOW_H_POSTBACK)
    {
        /*
         * the hook and the postback enforce client_max_body_size
         * themselves, so that a body too large is refused in JSON
         */

        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        conf->body_max = clcf->client_max_body_size;
        clcf->client_max_body_size = 0;
    }

    if ((conf->handler == NGX_HTTP_SITEFLOW_H_HOOK
         || conf->handler == NGX_HTTP_SITEFLOW_H_POSTBACK)
        && conf->token.data == NULL)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" requires \"siteflow_token\" in %V:%ui",
                      conf->handler == NGX_HTTP_SITEFLOW_H_HOOK
                      ? "siteflow_printnow_hook" : "siteflow_postback",
                      conf->handler_file, conf->handler_line);
        return NGX_CONF_ERROR;
    }

    if (!conf->verify_signature) {
        return NGX_CONF_OK;
    }

    if (conf->handler != NGX_HTTP_SITEFLOW_H_NONE) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"siteflow_verify_signature\" cannot be used in a "
                      "\"siteflow_printnow_hook\", \"siteflow_postback\" "
                      "or \"siteflow_admin\" location in %V:%ui",
                      conf->verify_file, conf->verify_line);
        return NGX_CONF_ERROR;
    }

    /*
     * merge runs at the end of the http block: name the line of the
     * "siteflow_verify_signature" directive, not the closing brace
     */

    if (conf->partners == NULL || conf->partners->nelts == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"siteflow_verify_signature\" requires at least "
                      "one \"siteflow_partner\" in %V:%ui",
                      conf->verify_file, conf->verify_line);
        return NGX_CONF_ERROR;
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_siteflow_module);

    if (smcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"siteflow_verify_signature\" requires "
                      "\"siteflow_zone\" for its nonce replay cache "
                      "in %V:%ui", conf->verify_file, conf->verify_line);
        return NGX_CONF_ERROR;
    }

    if (conf->nonce_ttl == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"siteflow_nonce_ttl\" must be greater than 0 "
                      "where \"siteflow_verify_signature\" is on "
                      "in %V:%ui", conf->verify_file, conf->verify_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    u_char     *p;
    ssize_t     size;
    ngx_str_t  *value, name, s;

    if (smcf->shm_zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strlchr(value[1].data, value[1].data + value[1].len,
                               ':');
    if (p == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\" in \"%V\", "
                           "expected name:size", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty zone name in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"%V\"",
                           &s, &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, \"%V\" needs at "
                           "least %uz bytes", &name, &cmd->name,
                           8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    smcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_siteflow_module);
    if (smcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (smcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" is already bound",
                           &cmd->name, &name);
        return NGX_CONF_ERROR;
    }

    return ngx_http_siteflow_shm_zone_init_conf(cf, smcf);
}


static char *
ngx_http_siteflow_nonce_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (smcf->nonce_cache != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "auto") == 0) {
        smcf->nonce_cache = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n < 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\", expected "
                           "\"auto\" or a number of entries of at least 16",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    smcf->nonce_cache = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_partner(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_loc_conf_t  *slcf = conf;

    const u_char                  *partner, *sig;
    size_t                         partner_len, sig_len;
    ngx_str_t                     *value, hdr;
    ngx_uint_t                     i;
    ngx_pool_cleanup_t            *cln;
    ngx_http_siteflow_partner_t   *p;

    value = cf->args->elts;

    /* the id must survive the header syntax check "id:signature" */

    hdr.len = value[1].len + sizeof(":x") - 1;
    hdr.data = ngx_pnalloc(cf->pool, hdr.len);
    if (hdr.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(hdr.data, "%V:x", &value[1]);

    if (value[1].len == 0
        || sf_sig_split(hdr.data, hdr.len, &partner, &partner_len,
                        &sig, &sig_len)
           != SF_SIG_OK
        || partner_len != value[1].len)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid partner id \"%V\" in \"%V\", expected "
                           "up to %d characters of A-Z, a-z, 0-9, \".\", "
                           "\"_\" and \"-\"",
                           &value[1], &cmd->name, SF_SIG_PARTNER_MAX);
        return NGX_CONF_ERROR;
    }

    if (value[2].len < 16) {
        /* never echo the key itself */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the key of partner \"%V\" in \"%V\" is too "
                           "short (%uz characters), SiteFlow partner keys "
                           "are at least 16 characters",
                           &value[1], &cmd->name, value[2].len);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[2].len; i++) {
        if (value[2].data[i] <= 0x20 || value[2].data[i] >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the key of partner \"%V\" in \"%V\" "
                               "contains a character that is not "
                               "printable ASCII", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (slcf->partners == NULL) {
        slcf->partners = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_http_siteflow_partner_t));
        if (slcf->partners == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    p = slcf->partners->elts;

    for (i = 0; i < slcf->partners->nelts; i++) {
        if (p[i].id.len == value[1].len
            && ngx_strncmp(p[i].id.data, value[1].data, value[1].len) == 0
            && p[i].key.len == value[2].len
            && ngx_strncmp(p[i].key.data, value[2].data, value[2].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "partner \"%V\" is given the same key twice "
                               "in \"%V\"", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    p = ngx_array_push(slcf->partners);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    p->id = value[1];
    p->key = value[2];

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    p->hmac = sf_sig_key_new(value[2].data, value[2].len);
    if (p->hmac == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "could not prepare the HMAC key of partner "
                           "\"%V\" in \"%V\"", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_siteflow_partner_cleanup;
    cln->data = p->hmac;

    return NGX_CONF_OK;
}


static void
ngx_http_siteflow_partner_cleanup(void *data)
{
    sf_sig_key_free(data);
}


static char *
ngx_http_siteflow_verify_signature(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_siteflow_loc_conf_t  *slcf = conf;

    char                           *rv;
    ngx_http_siteflow_main_conf_t  *smcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    slcf->verify_file = &cf->conf_file->file.name;
    slcf->verify_line = cf->conf_file->line;

    if (slcf->verify_signature) {
        smcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_siteflow_module);
        smcf->requires_guard = 1;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_siteflow_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_siteflow_srv_conf_t));
    if (sscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     sscf->storefront = { 0, NULL };
     *     sscf->api_url = { 0, NULL };
     *     sscf->token = { 0, NULL };
     *     sscf->destination = { 0, NULL };
     *     sscf->trigger = NULL;
     *     sscf->mapping = NULL;
     *     sscf->printnow_url = { 0, NULL };
     *     sscf->xfer.ca_file = { 0, NULL };
     *     sscf->uses = 0;
     */

    sscf->log = NGX_CONF_UNSET;
    sscf->log_body_max = NGX_CONF_UNSET_SIZE;
    sscf->api_scheme = NGX_CONF_UNSET;
    sscf->api_hash = NGX_CONF_UNSET;
    sscf->printnow_fetch = NGX_CONF_UNSET;
    sscf->cancel_on_delete = NGX_CONF_UNSET;
    sscf->ship_per_item = NGX_CONF_UNSET;
    sscf->echo_window = NGX_CONF_UNSET_MSEC;
    sscf->xfer.timeout = NGX_CONF_UNSET_MSEC;
    sscf->xfer.connect_timeout = NGX_CONF_UNSET_MSEC;
    sscf->xfer.max_response = NGX_CONF_UNSET_SIZE;
    sscf->xfer.ssl_verify = NGX_CONF_UNSET;

    return sscf;
}


static char *
ngx_http_siteflow_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_siteflow_srv_conf_t *prev = parent;
    ngx_http_siteflow_srv_conf_t *conf = child;

    ngx_http_core_srv_conf_t        *cscf;
    ngx_http_siteflow_main_conf_t   *smcf;

    ngx_conf_merge_value(conf->log, prev->log, 1);
    ngx_conf_merge_size_value(conf->log_body_max, prev->log_body_max,
                              16 * 1024);

    if (conf->api_url.data == NULL) {
        conf->api_url = prev->api_url;
        conf->api_scheme = prev->api_scheme;
        conf->api_hash = prev->api_hash;
    }

    if (conf->token.data == NULL) {
        conf->token = prev->token;
        conf->secret = prev->secret;
        conf->token_file = prev->token_file;
        conf->token_line = prev->token_line;
    }

    ngx_conf_merge_str_value(conf->destination, prev->destination, "");

    if (conf->trigger == NULL) {
        conf->trigger = prev->trigger;
    }

    if (conf->mapping == NULL) {
        conf->mapping = prev->mapping;
        conf->mapping_file = prev->mapping_file;
    }

    ngx_conf_merge_str_value(conf->printnow_url, prev->printnow_url,
                             "https://api.printnow.com");

    if (conf->printnow_token.data == NULL) {
        conf->printnow_token = prev->printnow_token;
        conf->printnow_key = prev->printnow_key;
    }

    ngx_conf_merge_value(conf->printnow_fetch, prev->printnow_fetch, 1);
    /* SPEC §6: a deleted order "is cancelled if it was sent" */
    ngx_conf_merge_value(conf->cancel_on_delete, prev->cancel_on_delete, 1);
    ngx_conf_merge_value(conf->ship_per_item, prev->ship_per_item, 0);
    ngx_conf_merge_msec_value(conf->echo_window, prev->echo_window, 60000);
    ngx_conf_merge_msec_value(conf->xfer.timeout, prev->xfer.timeout, 30000);
    ngx_conf_merge_msec_value(conf->xfer.connect_timeout,
                              prev->xfer.connect_timeout, 10000);
    ngx_conf_merge_size_value(conf->xfer.max_response,
                              prev->xfer.max_response, 1024 * 1024);
    ngx_conf_merge_value(conf->xfer.ssl_verify, prev->xfer.ssl_verify, 1);
    ngx_conf_merge_str_value(conf->xfer.ca_file, prev->xfer.ca_file, "");

    if (conf->storefront.data == NULL) {
        cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

        if (cscf != NULL && cscf->server_name.len) {
            conf->storefront = cscf->server_name;

        } else {
            ngx_str_set(&conf->storefront, "default");
        }
    }

    if (conf->uses == 0) {
        return NGX_CONF_OK;
    }

    /* a server{} with a hook, postback or admin location: a storefront */

    if (ngx_http_siteflow_check_storefront(cf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_siteflow_module);

    return ngx_http_siteflow_storefront_add(cf, smcf, conf);
}


/*
 * A storefront (a server{} with a hook, postback or admin location) has
 * what its locations need: checked at "nginx -t", each error naming the
 * directive and where the first such location is.
 */

static char *
ngx_http_siteflow_check_storefront(ngx_conf_t *cf,
    ngx_http_siteflow_srv_conf_t *conf)
{
    ngx_str_t  *name;

    name = conf->uses_file;

    if (conf->storefront.len > NGX_HTTP_SITEFLOW_SWITCH_NAME) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "storefront name \"%V\" (the first \"server_name\") "
                      "is %uz bytes long, at most %d are allowed (the admin "
                      "log switch keeps names of up to %d bytes); name the "
                      "storefront with \"siteflow_storefront\" in %V:%ui",
                      &conf->storefront, conf->storefront.len,
                      NGX_HTTP_SITEFLOW_SWITCH_NAME,
                      NGX_HTTP_SITEFLOW_SWITCH_NAME, name, conf->uses_line);
        return NGX_CONF_ERROR;
    }

    if (conf->uses & (NGX_HTTP_SITEFLOW_H_HOOK|NGX_HTTP_SITEFLOW_H_POSTBACK)) {

        if (conf->mapping == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "storefront \"%V\" has a PrintNow hook or a "
                          "SiteFlow postback location but no "
                          "\"siteflow_mapping\" in %V:%ui",
                          &conf->storefront, name, conf->uses_line);
            return NGX_CONF_ERROR;
        }

        if (conf->printnow_token.data == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "storefront \"%V\" has a PrintNow hook or a "
                          "SiteFlow postback location but no "
                          "\"siteflow_printnow_credentials\" in %V:%ui",
                          &conf->storefront, name, conf->uses_line);
            return NGX_CONF_ERROR;
        }
    }

    /*
     * whatever its locations: the jobs of a storefront with only an admin
     * location ("send/{id}", siteflow_order_trigger manual) call PrintNow
     * with this server's configuration too
     */

    if (conf->printnow_token.data != NULL) {

        if (ngx_http_siteflow_printnow_authorization(cf->pool,
                &conf->printnow_token, &conf->printnow_key,
                &conf->printnow.authorization)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        conf->printnow.base = conf->printnow_url;

        while (conf->printnow.base.len
               && conf->printnow.base.data[conf->printnow.base.len - 1]
                  == '/')
        {
            conf->printnow.base.len--;
        }
    }

    if (conf->uses & NGX_HTTP_SITEFLOW_H_HOOK) {

        if (conf->token.data == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "storefront \"%V\" has a PrintNow hook location "
                          "but no \"siteflow_credentials\" in %V:%ui",
                          &conf->storefront, name, conf->uses_line);
            return NGX_CONF_ERROR;
        }

        if (conf->destination.len == 0
            && conf->mapping->destination == NULL)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "storefront \"%V\" has a PrintNow hook location "
                          "but no \"siteflow_destination\" (nor a "
                          "\"destination\" in its mapping file) in %V:%ui",
                          &conf->storefront, name, conf->uses_line);
            return NGX_CONF_ERROR;
        }
    }

    if (conf->token.data != NULL
        && ngx_http_siteflow_resolve_api(cf, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * siteflow_api: "auto" picks the scheme from the token's shape (protocols
 * section 1c) and the vendor's endpoints; a URL is used for everything
 */

static char *
ngx_http_siteflow_resolve_api(ngx_conf_t *cf,
    ngx_http_siteflow_srv_conf_t *conf)
{
    sf_scheme_t  scheme;

    if (conf->api_scheme != NGX_CONF_UNSET) {
        scheme = (sf_scheme_t) conf->api_scheme;

    } else {
        scheme = sf_sig_detect_scheme((const char *) conf->token.data,
                                      conf->token.len);
    }

    if (scheme == SF_SCHEME_UNKNOWN) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "cannot tell from the token of \"siteflow_credentials\""
                      " in %V:%ui whether it is a OneFlow or an HP PrintOS "
                      "account; add \"scheme=oneflow\" or "
                      "\"scheme=printos\" to \"siteflow_api\" (storefront "
                      "\"%V\", whose first handler is in %V:%ui)",
                      conf->token_file, conf->token_line, &conf->storefront,
                      conf->uses_file, conf->uses_line);
        return NGX_CONF_ERROR;
    }

    conf->api.scheme = scheme;
    conf->api.hash = (conf->api_hash != NGX_CONF_UNSET)
                     ? (sf_hash_t) conf->api_hash
                     : sf_sig_default_hash(scheme);
    conf->api.token = conf->token;
    conf->api.secret = conf->secret;

    conf->api_create = conf->api;

    if (conf->api_url.len) {
        conf->api.base = conf->api_url;

        while (conf->api.base.len
               && conf->api.base.data[conf->api.base.len - 1] == '/')
        {
            conf->api.base.len--;
        }

        conf->api_create.base = conf->api.base;

    } else if (scheme == SF_SCHEME_PRINTOS) {
        ngx_str_set(&conf->api.base, "https://printos.api.hp.com/siteflow/api");
        conf->api_create.base = conf->api.base;

    } else {
        ngx_str_set(&conf->api.base, "https://pro-api.oneflowcloud.com/api");
        ngx_str_set(&conf->api_create.base, "https://orders.oneflow.io/api");
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_set_string(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t  *field, *value;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty value in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    *field = value[1];

    return NGX_CONF_OK;
}


/* a shared secret a sender puts in its URL: long enough not to guess */

static char *
ngx_http_siteflow_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char       *rv;
    ngx_str_t  *token;

    rv = ngx_http_siteflow_set_string(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    token = (ngx_str_t *) (p + cmd->offset);

    if (token->len < NGX_HTTP_SITEFLOW_TOKEN_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the token of \"%V\" is %uz characters long, at "
                           "least %d are required (one that short can be "
                           "guessed; \"openssl rand -hex 32\" makes one)",
                           &cmd->name, token->len,
                           NGX_HTTP_SITEFLOW_TOKEN_MIN);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the name must fit the admin's run-time log switch (and a job record) */

static char *
ngx_http_siteflow_storefront_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    char       *rv;
    ngx_str_t  *name;

    rv = ngx_http_siteflow_set_string(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    name = (ngx_str_t *) (p + cmd->offset);

    if (name->len > NGX_HTTP_SITEFLOW_SWITCH_NAME) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "storefront name \"%V\" in \"%V\" is %uz bytes "
                           "long, at most %d are allowed (the admin log "
                           "switch keeps names of up to %d bytes)",
                           name, &cmd->name, name->len,
                           NGX_HTTP_SITEFLOW_SWITCH_NAME,
                           NGX_HTTP_SITEFLOW_SWITCH_NAME);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* post handlers: nginx names the directive, the file and the line */

static char *
ngx_http_siteflow_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be greater than 0 (0 would wait forever)";
    }

    return NGX_CONF_OK;
}


/*
 * A returned string is logged by nginx as "\"directive\" directive ..."
 * with the file and line: the operator sees which directive is wrong.
 */

static char *
ngx_http_siteflow_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    u_char  *p, *msg;
    size_t   len;

    if (*np >= bounds->low && (bounds->high == -1 || *np <= bounds->high)) {
        return NGX_CONF_OK;
    }

    len = sizeof("must be between  and , not ") + 3 * NGX_INT_T_LEN;

    msg = ngx_pnalloc(cf->pool, len);
    if (msg == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_snprintf(msg, len - 1, "must be between %i and %i, not %i",
                     bounds->low, bounds->high, *np);
    *p = '\0';

    return (char *) msg;
}


/* ngx_conf_set_enum_slot() with the directive and the choices named */

static char *
ngx_http_siteflow_log_level(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len != 0; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcasecmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" has an unknown level \"%V\": use info, "
                       "notice, warn or error", &cmd->name, &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_siteflow_positive_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *size = data;

    if (*size == 0) {
        return "must be greater than 0 (0 would refuse every answer)";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char  *rv;

    rv = ngx_http_siteflow_set_string(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_http_siteflow_check_url(cf, cmd,
                                       (ngx_str_t *) (p + cmd->offset));
}


static char *
ngx_http_siteflow_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_srv_conf_t  *sscf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (sscf->api_url.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 4 && ngx_strcmp(value[1].data, "auto") == 0) {
        ngx_str_set(&sscf->api_url, "");

    } else if (ngx_http_siteflow_check_url(cf, cmd, &value[1])
               != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;

    } else {
        sscf->api_url = value[1];
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len > 7
            && ngx_strncmp(value[i].data, "scheme=", 7) == 0
            && sscf->api_scheme == NGX_CONF_UNSET)
        {
            if (ngx_strcmp(value[i].data + 7, "oneflow") == 0) {
                sscf->api_scheme = SF_SCHEME_ONEFLOW;
                continue;
            }

            if (ngx_strcmp(value[i].data + 7, "printos") == 0) {
                sscf->api_scheme = SF_SCHEME_PRINTOS;
                continue;
            }
        }

        if (value[i].len > 10
            && ngx_strncmp(value[i].data, "algorithm=", 10) == 0
            && sscf->api_hash == NGX_CONF_UNSET)
        {
            sscf->api_hash = sf_sig_hash_parse((char *) value[i].data + 10,
                                               value[i].len - 10);
            if (sscf->api_hash != 0) {
                continue;
            }
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\", expected "
                           "\"scheme=oneflow\", \"scheme=printos\", "
                           "\"algorithm=sha256\" or \"algorithm=sha1\" "
                           "(each at most once)", &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* two strings at cmd->offset: token, then secret (or key) */

static char *
ngx_http_siteflow_credentials(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                     *field, *value;
    ngx_uint_t                     i, k;
    ngx_http_siteflow_srv_conf_t  *sscf;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < 3; i++) {
        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty value in \"%V\"", &cmd->name);
            return NGX_CONF_ERROR;
        }

        for (k = 0; k < value[i].len; k++) {
            if (value[i].data[k] <= 0x20 || value[i].data[k] >= 0x7f) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "the %s of \"%V\" contains a character "
                                   "that is not printable ASCII",
                                   i == 1 ? "token" : "secret", &cmd->name);
                return NGX_CONF_ERROR;
            }
        }
    }

    field[0] = value[1];
    field[1] = value[2];

    if (cmd->offset == offsetof(ngx_http_siteflow_srv_conf_t, token)) {
        sscf = conf;
        sscf->token_file = &cf->conf_file->file.name;
        sscf->token_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_order_trigger(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_siteflow_srv_conf_t  *sscf = conf;

    ngx_str_t       *value;
    ngx_uint_t       i;
    sf_order_str_t  *s;

    if (sscf->trigger != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    sscf->trigger = ngx_array_create(cf->pool, cf->args->nelts,
                                     sizeof(sf_order_str_t));
    if (sscf->trigger == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty value in \"%V\"", &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_strcmp(value[i].data, "manual") == 0) {
            if (cf->args->nelts > 2) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"manual\" cannot be combined with "
                                   "statuses in \"%V\"", &cmd->name);
                return NGX_CONF_ERROR;
            }

            /* an empty array: manual */
            return NGX_CONF_OK;
        }

        s = ngx_array_push(sscf->trigger);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        s->len = value[i].len;
        s->data = value[i].data;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_mapping(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_srv_conf_t  *sscf = conf;

    char                 err[SF_MAPPING_ERR_SIZE];
    ngx_str_t           *value, file;
    ngx_pool_cleanup_t  *cln;

    if (sscf->mapping != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty value in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    err[0] = '\0';

    sscf->mapping = sf_mapping_load((const char *) file.data, err,
                                    sizeof(err));
    if (sscf->mapping == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid mapping file in \"%V\": %s",
                           &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_siteflow_mapping_cleanup;
    cln->data = sscf->mapping;

    sscf->mapping_file = file;

    return NGX_CONF_OK;
}


static void
ngx_http_siteflow_mapping_cleanup(void *data)
{
    sf_mapping_free(data);
}


static char *
ngx_http_siteflow_trusted_certificate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    char       *rv;
    ngx_str_t  *field;

    rv = ngx_http_siteflow_set_string(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    field = (ngx_str_t *) (p + cmd->offset);

    if (ngx_conf_full_name(cf->cycle, field, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (access((char *) field->data, R_OK) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read \"%V\" of \"%V\"", field,
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_handler_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_siteflow_loc_conf_t  *slcf = conf;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_siteflow_srv_conf_t   *sscf;
    ngx_http_siteflow_main_conf_t  *smcf;

    if (slcf->handler != NGX_HTTP_SITEFLOW_H_NONE) {
        return "is duplicate";
    }

    slcf->handler = cmd->offset;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    switch (cmd->offset) {
    case NGX_HTTP_SITEFLOW_H_HOOK:
        clcf->handler = ngx_http_siteflow_hook_handler;
        break;
    case NGX_HTTP_SITEFLOW_H_POSTBACK:
        clcf->handler = ngx_http_siteflow_postback_handler;
        break;
    default: /* NGX_HTTP_SITEFLOW_H_ADMIN */
        clcf->handler = ngx_http_siteflow_admin_handler;

        /* "/admin" is redirected to "/admin/" for a location "/admin/" */
        clcf->auto_redirect = 1;
        break;
    }

    slcf->handler_file = &cf->conf_file->file.name;
    slcf->handler_line = cf->conf_file->line;

    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_siteflow_module);

    if (sscf->uses == 0) {
        sscf->uses_file = &cf->conf_file->file.name;
        sscf->uses_line = cf->conf_file->line;
    }

    sscf->uses |= cmd->offset;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_siteflow_module);

    if (cmd->offset == NGX_HTTP_SITEFLOW_H_ADMIN && smcf->admin_file == NULL)
    {
        smcf->admin_file = &cf->conf_file->file.name;
        smcf->admin_line = cf->conf_file->line;
    }

    if (!smcf->requires_spool) {
        smcf->requires_spool = 1;
        smcf->requires_file = &cf->conf_file->file.name;
        smcf->requires_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}



#if !(NGX_SITEFLOW_PG)

/*
 * "siteflow_queue URL [pool=N] [lease=time] [index_retention=time]": the
 * job queue on PostgreSQL (SPEC §3, docs/fleet.md).  This build has no
 * PostgreSQL backend (config found no libpq), so the directive is read
 * only to fail "nginx -t" with what to do instead of "unknown
 * directive".  The URL is never echoed: it may hold a password.
 */

static char *
ngx_http_siteflow_queue_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char      *eq;
    ngx_str_t   *value, name;
    ngx_uint_t   i;

    value = cf->args->elts;

    if (!(value[1].len > sizeof("postgresql://") - 1
          && ngx_strncasecmp(value[1].data, (u_char *) "postgresql://",
                             sizeof("postgresql://") - 1) == 0)
        && !(value[1].len > sizeof("postgres://") - 1
             && ngx_strncasecmp(value[1].data, (u_char *) "postgres://",
                                sizeof("postgres://") - 1) == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL in \"%V\", expected a PostgreSQL "
                           "connection URI (postgresql://user@host:port/db)",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        name.data = value[i].data;
        name.len = eq ? (size_t) (eq - value[i].data) : 0;

        if (!((name.len == 4 && ngx_strncmp(name.data, "pool", 4) == 0)
              || (name.len == 5 && ngx_strncmp(name.data, "lease", 5) == 0)
              || (name.len == 15
                  && ngx_strncmp(name.data, "index_retention", 15) == 0))
            || eq + 1 == value[i].data + value[i].len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\"",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": this ngx_http_siteflow_module was built "
                       "without PostgreSQL support (build it with libpq-dev "
                       "installed); use \"siteflow_spool\"", &cmd->name);

    return NGX_CONF_ERROR;
}

#endif


/*
 * siteflow_queue_workers number | all: how many of the workers deliver
 * the spool's jobs (ngx_http_siteflow_queue_init_process())
 */

static char *
ngx_http_siteflow_queue_workers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (smcf->queue_workers != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    if (smcf->pg_queue != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           NGX_HTTP_SITEFLOW_WORKERS_ON_PG);
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (value[1].len == 3
        && ngx_strncmp(value[1].data, "all", 3) == 0)
    {
        smcf->queue_workers = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n < 1 || n > NGX_MAX_PROCESSES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"siteflow_queue_workers\" \"%V\", "
                           "expected a number from 1 to %d or \"all\"",
                           &value[1], NGX_MAX_PROCESSES);
        return NGX_CONF_ERROR;
    }

    smcf->queue_workers = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_retry_backoff(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    ngx_str_t   *value;
    ngx_msec_t   base, max;

    if (smcf->retry_base != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    base = ngx_parse_time(&value[1], 0);
    max = ngx_parse_time(&value[2], 0);

    if (base == (ngx_msec_t) NGX_ERROR || max == (ngx_msec_t) NGX_ERROR
        || base == 0 || max < base)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" \"%V %V\", expected two times, "
                           "the first not zero and not above the second",
                           &cmd->name, &value[1], &value[2]);
        return NGX_CONF_ERROR;
    }

    smcf->retry_base = base;
    smcf->retry_max = max;

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_give_up(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    ngx_str_t   *value;
    ngx_msec_t   t;

    if (smcf->give_up != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        smcf->give_up = 0;
        return NGX_CONF_OK;
    }

    t = ngx_parse_time(&value[1], 0);

    if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" \"%V\", expected \"off\" or "
                           "a time", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    smcf->give_up = t;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_siteflow_init_process(ngx_cycle_t *cycle)
{
    /* the consumer hands claimed jobs to the runner */
    ngx_http_siteflow_queue_runner(ngx_http_siteflow_job_start);

    return ngx_http_siteflow_queue_init_process(cycle);
}


static void
ngx_http_siteflow_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_siteflow_queue_exit_process(cycle);
}


ngx_int_t
ngx_http_siteflow_send_json(ngx_http_request_t *r, ngx_uint_t status,
    char *json)
{
    size_t        len;
    ngx_buf_t    *b;
    ngx_int_t     rc;
    ngx_chain_t   out;

    len = ngx_strlen(json);

    r->headers_out.status = status;
    r->headers_out.content_length_n = len + 1;

    if (status == 422) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, json, len);
    *b->last++ = '\n';
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}
