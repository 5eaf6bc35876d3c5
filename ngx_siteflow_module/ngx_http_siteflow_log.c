
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_shmlog.h"
#include "ngx_http_siteflow_log.h"
#include "sf_admin.h"
#include "sf_ring.h"


/*
 * The Site Flow Log: one record per call in either direction, in the log
 * ring of "siteflow_zone" (ngx_http_siteflow_shmlog.c, sf_ring.h).
 *
 * Callers pass bodies, never headers, so Authorization headers and
 * signatures cannot reach the log; secret-bearing query arguments ("token"
 * and the others of sf_admin_redact_url()) are replaced by "***" here.
 * Bodies are cut at siteflow_log_body_max bytes (on a character
 * boundary) and the record is marked truncated.  Everything is prepared on
 * the stack; the zone mutex is held only while sf_ring_append() copies the
 * bytes in.
 */


static ngx_str_t *ngx_http_siteflow_log_cap(ngx_str_t *body, ngx_str_t *out,
    uint16_t *flags, uint16_t flag, size_t max);


ngx_shm_zone_t *
ngx_http_siteflow_log_zone(void)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);
    if (smcf == NULL) {
        return NULL;
    }

    return smcf->shm_zone;
}


/* the run-time switch of the storefront if set, else "siteflow_log" */

ngx_int_t
ngx_http_siteflow_log_enabled(ngx_http_siteflow_srv_conf_t *sscf)
{
    ngx_int_t        sw;
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_http_siteflow_log_zone();

    if (shm_zone == NULL || sscf == NULL) {
        return 0;
    }

    sw = ngx_http_siteflow_log_switch(shm_zone, &sscf->storefront);

    if (sw == NGX_HTTP_SITEFLOW_SWITCH_UNSET) {
        return sscf->log ? 1 : 0;
    }

    return (sw == NGX_HTTP_SITEFLOW_SWITCH_ON);
}


void
ngx_http_siteflow_log_write(ngx_http_siteflow_srv_conf_t *sscf,
    ngx_http_siteflow_log_entry_t *e)
{
    u_char           url[SF_ADMIN_REDACT_SIZE(SF_RING_MAX_URL)];
    size_t           len;
    ngx_str_t        request, response;
    ngx_time_t      *tp;
    ngx_shm_zone_t  *shm_zone;
    sf_ring_entry_t  re;

    shm_zone = ngx_http_siteflow_log_zone();

    if (shm_zone == NULL || !ngx_http_siteflow_log_enabled(sscf)) {
        return;
    }

    ngx_memzero(&re, sizeof(sf_ring_entry_t));

    tp = ngx_timeofday();

    re.time_ms = (uint64_t) tp->sec * 1000 + tp->msec;
    re.duration_ms = (uint32_t) ngx_min(e->duration, 0xffffffff);
    re.status = (uint16_t) ngx_min(e->status, 999);
    re.direction = (e->direction == SF_RING_OUT) ? SF_RING_OUT : SF_RING_IN;

    re.storefront = (const char *) sscf->storefront.data;
    re.storefront_len = sscf->storefront.len;
    re.method = (const char *) e->method.data;
    re.method_len = e->method.len;
    re.order_id = (const char *) e->order_id.data;
    re.order_id_len = e->order_id.len;

    /* redact before the ring cuts the URL: a cut value is still hidden */

    len = ngx_min(e->url.len, SF_RING_MAX_URL);
    len = sf_admin_redact_url((const char *) e->url.data, len, (char *) url,
                              sizeof(url));

    if (e->url.len > SF_RING_MAX_URL) {
        re.flags |= SF_RING_TRUNC_URL;
    }

    re.url = (const char *) url;
    re.url_len = ngx_min(len, SF_RING_MAX_URL);

    ngx_http_siteflow_log_cap(&e->request, &request, &re.flags,
                              SF_RING_TRUNC_REQUEST, sscf->log_body_max);
    ngx_http_siteflow_log_cap(&e->response, &response, &re.flags,
                              SF_RING_TRUNC_RESPONSE, sscf->log_body_max);

    re.request = (const char *) request.data;
    re.request_len = request.len;
    re.response = (const char *) response.data;
    re.response_len = response.len;

    if (ngx_http_siteflow_ring_append(shm_zone, &re) != NGX_OK) {
        return;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "siteflow log: entry %uL \"%V\" %ui flags:%xd",
                   re.id, &sscf->storefront, e->status, (int) re.flags);
}


static ngx_str_t *
ngx_http_siteflow_log_cap(ngx_str_t *body, ngx_str_t *out, uint16_t *flags,
    uint16_t flag, size_t max)
{
    *out = *body;

    if (out->len > max) {
        out->len = sf_admin_utf8_cut((const char *) body->data, body->len,
                                     max);
        *flags |= flag;
    }

    return out;
}


size_t
ngx_http_siteflow_log_body_max(ngx_http_request_t *r)
{
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    return sscf->log_body_max;
}


void
ngx_http_siteflow_observe_latency(ngx_uint_t upstream, ngx_msec_t ms)
{
    ngx_http_siteflow_latency_add(ngx_http_siteflow_log_zone(), upstream, ms);
}


void
ngx_http_siteflow_counter(ngx_http_siteflow_counter_e counter)
{
    if ((ngx_uint_t) counter >= NGX_HTTP_SITEFLOW_CNT_MAX) {
        return;
    }

    ngx_http_siteflow_count(ngx_http_siteflow_log_zone(), counter);
}
