
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_HOOK_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_HOOK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* content handlers of the hook and postback (ngx_http_siteflow_hook.c) */
ngx_int_t ngx_http_siteflow_hook_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_siteflow_hook_init(ngx_conf_t *cf);
ngx_int_t ngx_http_siteflow_postback_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_SITEFLOW_HOOK_H_INCLUDED_ */
