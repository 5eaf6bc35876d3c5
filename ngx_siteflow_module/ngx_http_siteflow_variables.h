
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_VARIABLES_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_VARIABLES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_http_siteflow_add_variables(ngx_conf_t *cf);

/*
 * The request line and the raw URI with the values of secret-bearing query
 * arguments ("token", "access_token", "key", ...: sf_admin_redact_url())
 * replaced by "***".  NGX_OK and both set (pointing at the originals when
 * there is nothing to hide), NGX_ERROR when out of memory.
 */
ngx_int_t ngx_http_siteflow_redact_request(ngx_http_request_t *r,
    ngx_str_t *line, ngx_str_t *uri);

/*
 * The hook and the postback: from now on nginx's own lines about the
 * request (the error log's request: "..." context, $request and
 * $request_uri in access_log) show the redacted request line and URI.
 */
ngx_int_t ngx_http_siteflow_hide_token(ngx_http_request_t *r);


#endif /* _NGX_HTTP_SITEFLOW_VARIABLES_H_INCLUDED_ */
