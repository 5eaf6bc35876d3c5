
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_admin.h"
#include "sf_path.h"


/*
 * The admin calls that change the queue: "queue/{id}/retry" and
 * "send/{printnow_order_id}".  Each answers the request itself once the
 * spool has the change (NGX_DONE), or returns a status.
 */


typedef struct {
    ngx_http_request_t            *request;
    uint64_t                       id;
} ngx_http_siteflow_retry_ctx_t;


typedef struct {
    ngx_http_request_t            *request;
    ngx_str_t                      order_id;
} ngx_http_siteflow_send_ctx_t;


static void ngx_http_siteflow_admin_retried(void *data, ngx_int_t rc,
    uint64_t id);
static void ngx_http_siteflow_send_queued(void *data, ngx_int_t rc,
    uint64_t id);
static void ngx_http_siteflow_send_looked_up(void *data, ngx_int_t rc);
static ngx_int_t ngx_http_siteflow_send_decide(ngx_http_request_t *r,
    ngx_str_t *printnow_order_id, ngx_uint_t force);


/* admin "queue/{id}/retry": a failed job is pending again */

ngx_int_t
ngx_http_siteflow_admin_retry(ngx_http_request_t *r, uint64_t id)
{
    ngx_int_t                       rc;
    ngx_http_siteflow_retry_ctx_t  *ctx;

    ctx = ngx_palloc(r->pool, sizeof(ngx_http_siteflow_retry_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->id = id;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_siteflow_queue_retry(id, ngx_http_siteflow_admin_retried,
                                       ctx);

    switch (rc) {

    case NGX_OK:
        r->main->count++;
        return NGX_DONE;

    case NGX_ABORT:
        return NGX_HTTP_SERVICE_UNAVAILABLE;

    case NGX_DECLINED:
        return ngx_http_siteflow_send_json(r, NGX_HTTP_NOT_FOUND,
                                           "{\"error\":\"no such job\"}");

    case NGX_BUSY:
        return ngx_http_siteflow_send_json(r, NGX_HTTP_CONFLICT,
                                           "{\"error\":\"only a failed job "
                                           "can be retried\"}");

    default:
        return ngx_http_siteflow_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "{\"error\":\"the queue cannot "
                                           "take the change now\"}");
    }
}


static void
ngx_http_siteflow_admin_retried(void *data, ngx_int_t rc, uint64_t id)
{
    ngx_http_siteflow_retry_ctx_t  *ctx = data;

    u_char  buf[64];

    if (rc == NGX_DECLINED) {
        ngx_http_finalize_request(ctx->request,
            ngx_http_siteflow_send_json(ctx->request, NGX_HTTP_NOT_FOUND,
                                        "{\"error\":\"no such job\"}"));
        return;
    }

    if (rc == NGX_BUSY) {
        ngx_http_finalize_request(ctx->request,
            ngx_http_siteflow_send_json(ctx->request, NGX_HTTP_CONFLICT,
                                        "{\"error\":\"only a failed job "
                                        "can be retried\"}"));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(ctx->request,
            ngx_http_siteflow_send_json(ctx->request,
                                        NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "{\"error\":\"the queue could not "
                                        "write the change\"}"));
        return;
    }

    ngx_sprintf(buf, "{\"job\":\"%uL\",\"state\":\"pending\"}%Z",
                ctx->id);

    ngx_http_finalize_request(ctx->request,
        ngx_http_siteflow_send_json(ctx->request, NGX_HTTP_ACCEPTED,
                                    (char *) buf));
}


/* admin "send/{printnow_order_id}": fetch, transform, validate, create */

static void
ngx_http_siteflow_send_queued(void *data, ngx_int_t rc, uint64_t id)
{
    ngx_http_request_t  *r = data;

    u_char  buf[64];

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r,
            ngx_http_siteflow_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "{\"error\":\"the queue could not "
                                        "write the job; nothing was "
                                        "accepted, try again\"}"));
        return;
    }

    ngx_sprintf(buf, "{\"job\":\"%uL\"}%Z", id);

    ngx_http_finalize_request(r,
        ngx_http_siteflow_send_json(r, NGX_HTTP_ACCEPTED, (char *) buf));
}


ngx_int_t
ngx_http_siteflow_admin_send(ngx_http_request_t *r,
    ngx_str_t *printnow_order_id, ngx_uint_t force)
{
    ngx_int_t                      rc;
    ngx_http_siteflow_send_ctx_t  *sctx;
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (printnow_order_id->len == 0
        || printnow_order_id->len > NGX_HTTP_SITEFLOW_ORDER_ID_MAX)
    {
        return ngx_http_siteflow_send_json(r, NGX_HTTP_BAD_REQUEST,
                                           "{\"error\":\"the order id must "
                                           "have 1 to 128 characters\"}");
    }

    if (sf_path_segment_check((const char *) printnow_order_id->data,
                              printnow_order_id->len)
        != SF_PATH_OK)
    {
        return ngx_http_siteflow_send_json(r, NGX_HTTP_BAD_REQUEST,
                                           "{\"error\":\"the order id of "
                                           "send/{order_id} is \\\".\\\" "
                                           "or \\\"..\\\", which is not "
                                           "an id\"}");
    }

    if (sscf->mapping == NULL || sscf->api.base.len == 0
        || sscf->printnow.authorization.len == 0)
    {
        return ngx_http_siteflow_send_json(r, NGX_HTTP_CONFLICT,
                                           "{\"error\":\"this server has no "
                                           "siteflow_credentials, "
                                           "siteflow_printnow_credentials "
                                           "and siteflow_mapping to send "
                                           "orders with\"}");
    }

    /* what a hook location is refused without at "nginx -t" */

    if (sscf->destination.len == 0 && sscf->mapping->destination == NULL) {
        return ngx_http_siteflow_send_json(r, NGX_HTTP_CONFLICT,
                                           "{\"error\":\"this server has no "
                                           "siteflow_destination (nor a "
                                           "destination in its mapping "
                                           "file) to send orders to\"}");
    }

    if (force) {
        return ngx_http_siteflow_send_decide(r, printnow_order_id, force);
    }

    /* the sent-orders index is read first (from PostgreSQL: waited for) */

    sctx = ngx_palloc(r->pool, sizeof(ngx_http_siteflow_send_ctx_t));
    if (sctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sctx->request = r;
    sctx->order_id = *printnow_order_id;

    rc = ngx_http_siteflow_queue_lookup(&sscf->storefront, printnow_order_id,
                                        NULL, r->pool,
                                        ngx_http_siteflow_send_looked_up,
                                        sctx);
    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    if (rc != NGX_OK) {
        return ngx_http_siteflow_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "{\"error\":\"the queue's "
                                           "database cannot be read now; "
                                           "try again\"}");
    }

    return ngx_http_siteflow_send_decide(r, printnow_order_id, force);
}


static void
ngx_http_siteflow_send_looked_up(void *data, ngx_int_t rc)
{
    ngx_http_siteflow_send_ctx_t  *sctx = data;

    ngx_http_request_t  *r;

    r = sctx->request;

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r,
            ngx_http_siteflow_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "{\"error\":\"the queue's database "
                                        "cannot be read now; try "
                                        "again\"}"));
        return;
    }

    ngx_http_finalize_request(r,
        ngx_http_siteflow_send_decide(r, &sctx->order_id, 0));
}


static ngx_int_t
ngx_http_siteflow_send_decide(ngx_http_request_t *r,
    ngx_str_t *printnow_order_id, ngx_uint_t force)
{
    json_t                        *job;
    ngx_int_t                      rc;
    ngx_http_siteflow_index_t      idx;
    ngx_http_siteflow_srv_conf_t  *sscf;
    u_char                         buf[512];

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    if (!force
        && ngx_http_siteflow_index_get(&sscf->storefront, printnow_order_id,
                                       NULL, r->pool, &idx)
           == NGX_OK
        && idx.state != NGX_HTTP_SITEFLOW_IDX_QUEUED)
    {
        json_t  *o;
        char    *text;

        ngx_snprintf(buf, sizeof(buf), "the order was already sent to "
                     "SiteFlow as \"%V\"; add ?force=1 to send it again%Z",
                     &idx.siteflow_id);

        o = json_pack("{s:s}", "error", (char *) buf);
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);

        if (text == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_cpystrn(buf, (u_char *) text, sizeof(buf));
        free(text);

        return ngx_http_siteflow_send_json(r, NGX_HTTP_CONFLICT,
                                           (char *) buf);
    }

    job = json_pack("{s:s, s:s#, s:b, s:b}", "event", "manual_send",
                    "order_id", printnow_order_id->data,
                    (int) printnow_order_id->len,
                    "manual", 1, "force", force ? 1 : 0);
    if (job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_siteflow_queue_enqueue(NGX_HTTP_SITEFLOW_JOB_ORDER,
                                         &sscf->storefront,
                                         printnow_order_id, job,
                                         ngx_http_siteflow_send_queued, r);
    json_decref(job);

    if (rc != NGX_OK) {
        return ngx_http_siteflow_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "{\"error\":\"the job could not "
                                           "be queued; try again\"}");
    }

    r->main->count++;

    return NGX_DONE;
}
