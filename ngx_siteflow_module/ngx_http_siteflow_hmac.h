
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_HMAC_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_HMAC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_http_siteflow_hmac_init(ngx_conf_t *cf);
const char *ngx_http_siteflow_sig_result_name(ngx_uint_t result);


#endif /* _NGX_HTTP_SITEFLOW_HMAC_H_INCLUDED_ */
