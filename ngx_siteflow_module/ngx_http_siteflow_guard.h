
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_GUARD_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_GUARD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"


ngx_int_t ngx_http_siteflow_guard_init(ngx_conf_t *cf);
const char *ngx_http_siteflow_sig_result_name(ngx_uint_t result);
ngx_http_siteflow_ctx_t *ngx_http_siteflow_get_ctx(ngx_http_request_t *r);


#endif /* _NGX_HTTP_SITEFLOW_GUARD_H_INCLUDED_ */
