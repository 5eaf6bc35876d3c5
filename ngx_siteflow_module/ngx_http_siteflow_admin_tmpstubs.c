
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * TEMPORARY: stand-ins for the queue functions the admin API calls, so
 * the admin branch links before the delivery engine lands.  Delete this
 * file (and its line in "config") when ngx_http_siteflow_queue.c is
 * merged.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"


/* TEMPORARY: no jobs */

ngx_int_t
ngx_http_siteflow_queue_list(json_t *jobs,
    ngx_http_siteflow_queue_filter_t *f)
{
    return NGX_OK;
}


/* TEMPORARY: zero jobs in every state */

ngx_int_t
ngx_http_siteflow_queue_stats(ngx_uint_t counts[5])
{
    ngx_memzero(counts, 5 * sizeof(ngx_uint_t));

    return NGX_OK;
}


/* TEMPORARY: the queue is not there yet (503 JSON from the caller) */

ngx_int_t
ngx_http_siteflow_admin_retry(ngx_http_request_t *r, uint64_t id)
{
    return NGX_HTTP_SERVICE_UNAVAILABLE;
}


/* TEMPORARY: the queue is not there yet (503 JSON from the caller) */

ngx_int_t
ngx_http_siteflow_admin_send(ngx_http_request_t *r,
    ngx_str_t *printnow_order_id, ngx_uint_t force)
{
    return NGX_HTTP_SERVICE_UNAVAILABLE;
}
