
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_LOG_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_LOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"


/* the Site Flow Log writer, in ngx_http_siteflow_shmlog.c */
/* "siteflow_log_body_max" of the request's server */
size_t ngx_http_siteflow_log_body_max(ngx_http_request_t *r);


ngx_shm_zone_t *ngx_http_siteflow_log_zone(void);
ngx_int_t ngx_http_siteflow_log_enabled(ngx_http_siteflow_srv_conf_t *sscf);


#endif /* _NGX_HTTP_SITEFLOW_LOG_H_INCLUDED_ */
