
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_hmac.h"
#include "ngx_http_siteflow_shmlog.h"
#include "ngx_http_siteflow_variables.h"
#include "ngx_http_siteflow_queue.h"
#include "sf_sig.h"


static ngx_int_t ngx_http_siteflow_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_siteflow_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_siteflow_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_siteflow_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_siteflow_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_siteflow_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
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
static char *ngx_http_siteflow_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_siteflow_not_implemented(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void ngx_http_siteflow_partner_cleanup(void *data);
static char *ngx_http_siteflow_check_url(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *url);


static ngx_conf_enum_t  ngx_http_siteflow_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
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
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_siteflow_loc_conf_t, sig_log_level),
      &ngx_http_siteflow_log_levels },

    /*
     * The directives below are part of the contract (SPEC section 3) and
     * are parsed and checked now, but their behaviour lands with the
     * delivery engine, the order and postback flows and the admin API.
     * Until then they fail "nginx -t" instead of being silently ignored.
     */

    { ngx_string("siteflow_spool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_log"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, log),
      NULL },

    { ngx_string("siteflow_storefront"),
      NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_siteflow_srv_conf_t, storefront),
      NULL },

    { ngx_string("siteflow_api"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE12,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_destination"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE2,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_order_trigger"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_mapping"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_printnow_api"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_printnow_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE2,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_printnow_hook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_postback"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_token"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_siteflow_not_implemented,
      0,
      0,
      NULL },

    { ngx_string("siteflow_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_siteflow_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
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
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
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

    if (smcf->requires_guard) {
        if (ngx_http_siteflow_hmac_init(cf) != NGX_OK) {
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

    if (smcf->shm_zone != NULL) {
        return ngx_http_siteflow_shm_check(cf, smcf);
    }

    return NGX_CONF_OK;
}


/* TEMPORARY (admin branch): the storefront and log fields only */

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
     */

    sscf->log = NGX_CONF_UNSET;

    return sscf;
}


static char *
ngx_http_siteflow_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_siteflow_srv_conf_t *prev = parent;
    ngx_http_siteflow_srv_conf_t *conf = child;

    ngx_http_core_srv_conf_t  *cscf;

    ngx_conf_merge_value(conf->log, prev->log, 1);

    if (conf->storefront.data == NULL) {

        /* the first server_name, as the core module merged it */

        cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

        conf->storefront = cscf->server_name;

        if (conf->storefront.len == 0) {
            ngx_str_set(&conf->storefront, "default");
        }
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

    if (!conf->verify_signature) {
        return NGX_CONF_OK;
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


static char *
ngx_http_siteflow_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_loc_conf_t  *slcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->handler != NGX_HTTP_SITEFLOW_H_NONE) {
        return "is duplicate";
    }

    slcf->handler = NGX_HTTP_SITEFLOW_H_ADMIN;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = ngx_http_siteflow_admin_handler;

    /* "/admin" is redirected to "/admin/" for a location "/admin/" */

    clcf->auto_redirect = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_siteflow_not_implemented(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty value in \"%V\"", &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strcmp(cmd->name.data, "siteflow_api") == 0) {

        if (ngx_strcmp(value[1].data, "auto") != 0
            && ngx_http_siteflow_check_url(cf, cmd, &value[1])
               != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        if (cf->args->nelts == 3
            && ngx_strcmp(value[2].data, "scheme=oneflow") != 0
            && ngx_strcmp(value[2].data, "scheme=printos") != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\", "
                               "expected \"scheme=oneflow\" or "
                               "\"scheme=printos\"", &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }

    } else if (ngx_strcmp(cmd->name.data, "siteflow_printnow_api") == 0) {

        if (ngx_http_siteflow_check_url(cf, cmd, &value[1]) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

    } else if (ngx_strcmp(cmd->name.data, "siteflow_order_trigger") == 0) {

        for (i = 1; i < cf->args->nelts; i++) {
            if (cf->args->nelts > 2
                && ngx_strcmp(value[i].data, "manual") == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"manual\" cannot be combined with "
                                   "statuses in \"%V\"", &cmd->name);
                return NGX_CONF_ERROR;
            }
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is not implemented yet in this version of "
                       "ngx_http_siteflow_module (" NGX_HTTP_SITEFLOW_VERSION
                       ")", &cmd->name);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_siteflow_check_url(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *url)
{
    size_t   n;
    u_char  *host;

    if (url->len > 7 && ngx_strncasecmp(url->data, (u_char *) "http://", 7)
                        == 0)
    {
        n = 7;

    } else if (url->len > 8
               && ngx_strncasecmp(url->data, (u_char *) "https://", 8) == 0)
    {
        n = 8;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\", expected "
                           "\"https://host[/path]\" or \"http://...\"",
                           url, &cmd->name);
        return NGX_CONF_ERROR;
    }

    host = url->data + n;

    if (*host == '/' || *host == ':' || *host == '?') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no host in URL \"%V\" in \"%V\"",
                           url, &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
