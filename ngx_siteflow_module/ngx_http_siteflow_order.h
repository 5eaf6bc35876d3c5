
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_ORDER_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_ORDER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "sf_order.h"


/*
 * The facts of sf_order_decide() that the hook and the order job share:
 * the sent-orders index entry and the storefront's configuration.
 */

static ngx_inline void
ngx_http_siteflow_order_facts(sf_order_facts_t *f, sf_order_stage_t stage,
    ngx_http_siteflow_srv_conf_t *sscf, ngx_http_siteflow_index_t *idx)
{
    f->stage = stage;

    switch (idx->state) {

    case NGX_HTTP_SITEFLOW_IDX_SENT:
        f->index = SF_ORDER_SENT;
        break;

    case NGX_HTTP_SITEFLOW_IDX_CANCELLED:
        f->index = SF_ORDER_CANCELLED;
        break;

    default:
        f->index = SF_ORDER_NOT_SENT;
    }

    f->siteflow_id = (const char *) idx->siteflow_id.data;
    f->siteflow_id_len = idx->siteflow_id.len;
    f->updated_ms = idx->updated_ms;
    f->now_ms = ngx_http_siteflow_now_ms();
    f->echo_window = sscf->echo_window;

    if (sscf->trigger) {
        f->triggers = sscf->trigger->elts;
        f->ntriggers = sscf->trigger->nelts;
    }
}


#endif /* _NGX_HTTP_SITEFLOW_ORDER_H_INCLUDED_ */
