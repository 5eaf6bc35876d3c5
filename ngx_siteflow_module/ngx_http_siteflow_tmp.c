
/*
 * TEMPORARY (removed when the admin branch is merged): no-op definitions
 * of the Site Flow Log, metrics and admin functions so that the delivery
 * engine links before ngx_http_siteflow_log.c and _admin.c land.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"


void
ngx_http_siteflow_log_write(ngx_http_siteflow_srv_conf_t *sscf,
    ngx_http_siteflow_log_entry_t *e)
{
}


void
ngx_http_siteflow_observe_latency(ngx_uint_t upstream, ngx_msec_t ms)
{
}


void
ngx_http_siteflow_counter(ngx_http_siteflow_counter_e counter)
{
}


ngx_int_t
ngx_http_siteflow_admin_handler(ngx_http_request_t *r)
{
    return NGX_HTTP_NOT_FOUND;
}
