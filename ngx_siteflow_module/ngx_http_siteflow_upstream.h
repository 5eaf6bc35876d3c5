
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_UPSTREAM_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_UPSTREAM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow_curl.h"
#include "sf_sig.h"


/* where and how to call SiteFlow (OneFlow or HP PrintOS) */
typedef struct {
    ngx_str_t                        base;      /* ".../api", no final / */
    sf_scheme_t                      scheme;
    sf_hash_t                        hash;
    ngx_str_t                        token;
    ngx_str_t                        secret;
} ngx_http_siteflow_api_t;


/* where and how to call the PrintNow Enterprise API */
typedef struct {
    ngx_str_t                        base;      /* "https://api..." */
    ngx_str_t                        authorization;  /* "Basic ..." */
} ngx_http_siteflow_printnow_t;


ngx_int_t ngx_http_siteflow_upstream_siteflow(ngx_http_siteflow_xfer_t *x,
    ngx_http_siteflow_api_t *api, const char *method, ngx_str_t *path,
    ngx_str_t *body);
ngx_int_t ngx_http_siteflow_upstream_printnow(ngx_http_siteflow_xfer_t *x,
    ngx_http_siteflow_printnow_t *pn, const char *method, ngx_str_t *path,
    ngx_str_t *body);
ngx_int_t ngx_http_siteflow_printnow_authorization(ngx_pool_t *pool,
    ngx_str_t *token, ngx_str_t *key, ngx_str_t *out);
/* a base URL of siteflow_api or siteflow_printnow_api, at nginx -t */
char *ngx_http_siteflow_check_url(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *url);


#endif /* _NGX_HTTP_SITEFLOW_UPSTREAM_H_INCLUDED_ */
