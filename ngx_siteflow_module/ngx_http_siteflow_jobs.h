
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_JOBS_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_JOBS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow_queue.h"


/* registered with ngx_http_siteflow_queue_runner() */
void ngx_http_siteflow_job_start(ngx_http_siteflow_run_t *run);


#endif /* _NGX_HTTP_SITEFLOW_JOBS_H_INCLUDED_ */
