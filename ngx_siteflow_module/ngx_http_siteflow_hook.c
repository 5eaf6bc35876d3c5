
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_order.h"
#include "ngx_http_siteflow_hook.h"
#include "ngx_http_siteflow_log.h"
#include "ngx_http_siteflow_variables.h"
#include "sf_hook_id.h"
#include "sf_json.h"
#include "sf_mapping.h"
#include "sf_order.h"
#include "sf_path.h"
#include "sf_postback.h"
#include "sf_qrec.h"
#include "sf_ring.h"


/*
 * The PrintNow hook and the SiteFlow postback locations.  Both check the
 * token, read the JSON body, decide, and answer 2xx only once the job
 * they queue is durable (the request waits for the spool's group
 * commit).  Nothing is queued for a request that is refused.
 */




/*
 * the module's request ctx: the guard's filters read its first member
 * (zeroed here: not checked, nothing to sign or replace)
 */

typedef struct {
    ngx_http_siteflow_ctx_t        base;         /* must be first */
    ngx_http_request_t            *request;
    ngx_uint_t                     kind;
    ngx_uint_t                     postback;
    ngx_str_t                      order_id;
    ngx_str_t                      body;
    off_t                          received;
    ngx_uint_t                     judged;       /* times a postback was
                                                    judged again
                                                    (postback_busy()) */
    unsigned                       replied:1;
    unsigned                       looked_up:1;  /* the order was read
                                                    from the queue */
    unsigned                       reading:1;    /* in the handler's
                                                    read_client_request_body
                                                    call */
} ngx_http_siteflow_hook_ctx_t;


/* the order of a hook: a jansson tree, or compact JSON text */

typedef struct {
    json_t                        *order;        /* NULL: text */
    ngx_str_t                      text;
    ngx_uint_t                     archived;
    ngx_str_t                      status;       /* data NULL: none */
} ngx_http_siteflow_hook_order_t;


static ngx_int_t ngx_http_siteflow_intake(ngx_http_request_t *r,
    ngx_uint_t postback, ngx_http_client_body_handler_pt handler);
static ngx_int_t ngx_http_siteflow_check_token(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf);
static ngx_int_t ngx_http_siteflow_body_type(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_body(ngx_http_request_t *r,
    ngx_str_t *body);
static void ngx_http_siteflow_hook_body(ngx_http_request_t *r);
static void ngx_http_siteflow_postback_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_hook_decide(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, json_t *root);
static ngx_int_t ngx_http_siteflow_hook_event(ngx_http_request_t *r,
    json_t *v, ngx_str_t *event, sf_order_deleted_t *deleted);
static ngx_int_t ngx_http_siteflow_hook_text(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx);
static ngx_int_t ngx_http_siteflow_hook_order(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_str_t *event,
    ngx_http_siteflow_hook_order_t *o, sf_order_deleted_t deleted);
static ngx_int_t ngx_http_siteflow_hook_send(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_str_t *event, ngx_str_t *order);
static ngx_int_t ngx_http_siteflow_hook_enqueue(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, json_t *job);
static ngx_int_t ngx_http_siteflow_postback_decide(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx);
static ngx_int_t ngx_http_siteflow_postback_busy(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx);
static uint32_t ngx_http_siteflow_postback_fingerprint(sf_postback_t *pb);
static ngx_int_t ngx_http_siteflow_postback_enqueue(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, sf_postback_t *pb,
    char (*items)[SF_PB_ITEM_ID_LEN], ngx_uint_t per_item,
    ngx_http_siteflow_index_t *idx);
static ngx_int_t ngx_http_siteflow_enqueued(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_siteflow_postback_call(json_t *calls,
    ngx_str_t *order_id, const char *suffix, const char *item_id,
    json_t *body);
static ngx_int_t ngx_http_siteflow_postback_shipped(ngx_http_request_t *r,
    sf_postback_t *pb, char (*items)[SF_PB_ITEM_ID_LEN], ngx_uint_t per_item,
    ngx_str_t *order_id, json_t *calls);
static ngx_int_t ngx_http_siteflow_postback_status(ngx_http_request_t *r,
    sf_postback_t *pb, ngx_str_t *order_id, json_t *calls);
static ngx_int_t ngx_http_siteflow_postback_vars(ngx_http_request_t *r,
    ngx_str_t *order_id, sf_pn_vars_t *vars);
static void ngx_http_siteflow_queued(void *data, ngx_int_t rc, uint64_t id);
static ngx_int_t ngx_http_siteflow_look_up(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_str_t *order_id,
    ngx_str_t *source_id);
static void ngx_http_siteflow_looked_up(void *data, ngx_int_t rc);
static ngx_int_t ngx_http_siteflow_lookup_failed(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx);
static ngx_int_t ngx_http_siteflow_too_large(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx);
static ngx_int_t ngx_http_siteflow_reply(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_uint_t status, const char *key,
    const char *fmt, ...);
static ngx_int_t ngx_http_siteflow_order_id(json_t *v, ngx_pool_t *pool,
    ngx_str_t *id);
static ngx_int_t ngx_http_siteflow_pn_path(u_char *buf, size_t size,
    ngx_str_t *order_id, const char *what, const char *item_id);
static ngx_int_t ngx_http_siteflow_arg(ngx_http_request_t *r, char *name,
    size_t len, ngx_str_t *value);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;

static ngx_str_t  ngx_http_siteflow_allow_post = ngx_string("POST");
static ngx_str_t  ngx_http_siteflow_allow_post_put = ngx_string("POST, PUT");
static ngx_str_t  ngx_http_siteflow_use_post_put = ngx_string("POST or PUT");


/* the PrintNow webhook */

ngx_int_t
ngx_http_siteflow_hook_handler(ngx_http_request_t *r)
{
    return ngx_http_siteflow_intake(r, 0, ngx_http_siteflow_hook_body);
}


/*
 * What the hook and the postback share: the method, the token, the body's
 * type and size, then reading the body; every refusal is answered here
 * (in JSON), the body handler decides the rest
 */

static ngx_int_t
ngx_http_siteflow_intake(ngx_http_request_t *r, ngx_uint_t postback,
    ngx_http_client_body_handler_pt handler)
{
    ngx_int_t                      rc;
    ngx_uint_t                     rejected;
    ngx_table_elt_t               *h;
    ngx_http_siteflow_hook_ctx_t  *ctx;
    ngx_http_siteflow_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_siteflow_module);

    /*
     * the token stays out of every line nginx writes about this request
     * from now on: the error log's request: "..." context of this
     * module's lines, and $request, $request_uri in access_log (for the
     * lines before this handler: $siteflow_request_redacted)
     */

    if (ngx_http_siteflow_hide_token(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_siteflow_hook_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->postback = postback;
    ctx->kind = postback ? NGX_HTTP_SITEFLOW_JOB_UPDATE
                         : NGX_HTTP_SITEFLOW_JOB_ORDER;
    ngx_http_set_ctx(r, ctx, ngx_http_siteflow_module);

    rejected = postback ? NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED
                        : NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED;

    if (!(r->method & (postback ? (NGX_HTTP_POST|NGX_HTTP_PUT)
                                : NGX_HTTP_POST)))
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        h->value = postback ? ngx_http_siteflow_allow_post_put
                            : ngx_http_siteflow_allow_post;

        ngx_http_siteflow_counter(rejected);

        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_NOT_ALLOWED, "error",
                                       "method %V is not allowed here, "
                                       "use %V", &r->method_name,
                                       postback
                                       ? &ngx_http_siteflow_use_post_put
                                       : &ngx_http_siteflow_allow_post);
    }

    rc = ngx_http_siteflow_check_token(r, slcf);
    if (rc != NGX_OK || ctx->replied) {
        ngx_http_siteflow_counter(rejected);
        return rc;
    }

    rc = ngx_http_siteflow_body_type(r);
    if (rc != NGX_OK || ctx->replied) {
        ngx_http_siteflow_counter(rejected);
        return rc;
    }

    r->request_body_in_single_buf = 1;

    ctx->reading = 1;
    rc = ngx_http_read_client_request_body(r, handler);
    ctx->reading = 0;

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_http_siteflow_counter(rejected);
        return ngx_http_siteflow_too_large(r, ctx);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_siteflow_hook_body(ngx_http_request_t *r)
{
    json_t                        *root;
    ngx_int_t                      rc;
    json_error_t                   err;
    ngx_http_siteflow_hook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);

    if (ngx_http_siteflow_body(r, &ctx->body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* read without building the order's tree, if the body allows */

    rc = ngx_http_siteflow_hook_text(r, ctx);

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* one JSON policy on every endpoint: a key twice is refused */

    root = json_loadb((const char *) ctx->body.data, ctx->body.len,
                      JSON_REJECT_DUPLICATES, &err);

    if (root == NULL) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        ngx_http_finalize_request(r,
            ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                    "invalid JSON at line %d, column %d: %s",
                                    err.line, err.column, err.text));
        return;
    }

    rc = ngx_http_siteflow_hook_decide(r, ctx, root);

    json_decref(root);

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_siteflow_hook_decide(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, json_t *root)
{
    json_t                          *order, *v;
    ngx_str_t                        event;
    const char                      *field, *prefix;
    ngx_int_t                        rc;
    sf_order_deleted_t               deleted;
    ngx_http_siteflow_hook_order_t   o;

    if (!json_is_object(root)) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                       "the body is not a JSON object");
    }

    /* the event: the body's, or ?event= (one target URL per event) */

    v = json_object_get(root, "event");

    rc = ngx_http_siteflow_hook_event(r, v, &event, &deleted);

    if (rc == NGX_ERROR) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                       "\"event\": the event is not a "
                                       "string");
    }

    if (rc != NGX_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_OK, "skipped",
                                       "event \"%V\" is not an order event",
                                       &event);
    }

    /* the order: a v2 order object, or an envelope */

    order = json_object_get(root, "order");

    if (!json_is_object(order)) {
        order = json_object_get(root, "data");
    }

    if (!json_is_object(order)) {
        order = root;
    }

    /* the id, and the name of the field it came from for a refusal */

    v = sf_hook_id(root, &prefix, &field);

    rc = ngx_http_siteflow_order_id(v, r->pool, &ctx->order_id);

    if (rc == NGX_ABORT) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                       "\"%s%s\": the order id %s",
                                       prefix, field,
                                       sf_path_rc_text(SF_PATH_DOT));
    }

    if (rc != NGX_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                       rc == NGX_DECLINED
                                       ? "no order id in the body (\"id\", "
                                         "\"order_id\", \"order.id\" or "
                                         "\"data.id\")"
                                       : "\"%s%s\": the order id is not a "
                                         "string or number of 1 to 128 "
                                         "printable characters",
                                       prefix, field);
    }

    /*
     * An order PrintNow marks deleted is never created in SiteFlow: its
     * hook is handled as an order_deleted event (docs/printnow.md)
     */

    if (deleted == SF_ORDER_LIVE
        && json_is_true(json_object_get(order, "is_deleted")))
    {
        deleted = SF_ORDER_DELETED_FLAG;
    }

    ngx_memzero(&o, sizeof(ngx_http_siteflow_hook_order_t));

    o.order = order;
    o.archived = json_is_true(json_object_get(order, "is_archived"));

    v = json_object_get(order, "status");

    if (json_is_string(v)) {
        o.status.data = (u_char *) json_string_value(v);
        o.status.len = json_string_length(v);
    }

    return ngx_http_siteflow_hook_order(r, ctx, &event, &o, deleted);
}


/*
 * What the hook answers for each decision on an order: a job to queue
 * (answered 202 with its id once it is durable, ngx_http_siteflow_queued)
 * or an answer now.  At the hook an order is never looked up.
 */

typedef struct {
    ngx_uint_t                     kind;         /* a job to queue, or 0 */
    ngx_http_siteflow_counter_e    counter;
    ngx_uint_t                     status;
    const char                    *key;
} ngx_http_siteflow_hook_answer_t;


static ngx_http_siteflow_hook_answer_t
    ngx_http_siteflow_hook_answers[SF_ORDER_DECISIONS] =
{
    /* SEND */
    { NGX_HTTP_SITEFLOW_JOB_ORDER, NGX_HTTP_SITEFLOW_CNT_HOOK_ACCEPTED,
      NGX_HTTP_ACCEPTED, "job" },
    /* FETCH */
    { NGX_HTTP_SITEFLOW_JOB_ORDER, NGX_HTTP_SITEFLOW_CNT_HOOK_ACCEPTED,
      NGX_HTTP_ACCEPTED, "job" },
    /* CANCEL */
    { NGX_HTTP_SITEFLOW_JOB_CANCEL, NGX_HTTP_SITEFLOW_CNT_HOOK_ACCEPTED,
      NGX_HTTP_ACCEPTED, "job" },
    /* LOOKUP: not at the hook */
    { 0, NGX_HTTP_SITEFLOW_CNT_MAX, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL },
    /* SKIP_SENT */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_ECHO */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_CANCELLED */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_QUEUED */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_DELETED */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_ARCHIVED */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_MANUAL */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_NO_STATUS */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
    /* SKIP_STATUS */
    { 0, NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED, NGX_HTTP_OK, "skipped" },
};



static ngx_int_t
ngx_http_siteflow_hook_order(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_str_t *event,
    ngx_http_siteflow_hook_order_t *o, sf_order_deleted_t deleted)
{
    json_t                           *job;
    size_t                            len;
    ngx_int_t                         rc;
    sf_order_facts_t                  f;
    sf_order_decision_t               d;
    ngx_http_siteflow_index_t         idx;
    ngx_http_siteflow_srv_conf_t     *sscf;
    ngx_http_siteflow_hook_answer_t  *a;
    char                              reason[1023];

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    if (!ctx->looked_up) {
        rc = ngx_http_siteflow_look_up(r, ctx, &ctx->order_id, NULL);
        if (rc != NGX_OK) {
            return rc;      /* waits for the queue, or answered */
        }
    }

    if (ngx_http_siteflow_index_get(&sscf->storefront, &ctx->order_id, NULL,
                                    r->pool, &idx)
        != NGX_OK)
    {
        idx.state = NGX_HTTP_SITEFLOW_IDX_QUEUED;
        idx.updated_ms = 0;
        ngx_str_null(&idx.siteflow_id);
    }

    ngx_memzero(&f, sizeof(sf_order_facts_t));

    ngx_http_siteflow_order_facts(&f, SF_ORDER_AT_HOOK, sscf, &idx);

    f.deleted = deleted;
    f.archived = o->archived;
    f.fetch = sscf->printnow_fetch ? 1 : 0;
    f.cancel_on_delete = sscf->cancel_on_delete ? 1 : 0;

    /* the queue is asked only when the answer depends on it */

    if (f.index == SF_ORDER_NOT_SENT) {
        f.pending_order = ngx_http_siteflow_queue_pending(
                              NGX_HTTP_SITEFLOW_JOB_ORDER, &sscf->storefront,
                              &ctx->order_id) ? 1 : 0;
    }

    if (deleted != SF_ORDER_LIVE && f.cancel_on_delete) {
        f.pending_cancel = ngx_http_siteflow_queue_pending(
                               NGX_HTTP_SITEFLOW_JOB_CANCEL,
                               &sscf->storefront, &ctx->order_id) ? 1 : 0;
    }

    if (o->status.data != NULL) {
        f.status = (const char *) o->status.data;
        f.status_len = o->status.len;
    }

    d = sf_order_decide(&f, reason, sizeof(reason), &len);
    a = &ngx_http_siteflow_hook_answers[d];

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "siteflow hook: order \"%V\" %s: %*s",
                   &ctx->order_id, sf_order_decision_name(d), len, reason);

    if (a->kind == 0) {
        if (a->key == NULL) {
            return a->status;
        }

        ngx_http_siteflow_counter(a->counter);
        return ngx_http_siteflow_reply(r, ctx, a->status, a->key, "%*s",
                                       len, reason);
    }

    ctx->kind = a->kind;

    switch (d) {

    case SF_ORDER_CANCEL:
        job = json_pack("{s:s, s:s#}", "event", "order_deleted",
                        "order_id", ctx->order_id.data,
                        (int) ctx->order_id.len);
        break;

    case SF_ORDER_FETCH:
        job = json_pack("{s:s#, s:s#}", "event", event->data,
                        (int) event->len, "order_id", ctx->order_id.data,
                        (int) ctx->order_id.len);
        break;

    default: /* SF_ORDER_SEND */
        if (o->order == NULL) {
            return ngx_http_siteflow_hook_send(r, ctx, event, &o->text);
        }

        job = json_pack("{s:s#, s:s#, s:O}", "event", event->data,
                        (int) event->len, "order_id", ctx->order_id.data,
                        (int) ctx->order_id.len, "order", o->order);
        break;
    }

    return ngx_http_siteflow_hook_enqueue(r, ctx, job);
}


/*
 * The hook read as text: a body that sf_json_strict() vouches for (jansson
 * would read it with JSON_REJECT_DUPLICATES) is decided from its members,
 * the few values it needs read by jansson one by one, and the order
 * stored as the body's text without whitespace: no tree of the order is
 * built and dumped again.  NGX_DECLINED: anything else, to
 * ngx_http_siteflow_hook_decide() on jansson's tree, which answers the
 * same way for what both read.
 */

#define NGX_HTTP_SITEFLOW_HOOK_MEMBERS  64

static ngx_int_t
ngx_http_siteflow_hook_text(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx)
{
    int                              nr, no;
    size_t                           len;
    u_char                          *text;
    json_t                          *ev, *id, *status, *v;
    ngx_str_t                        event, order;
    ngx_int_t                        rc;
    const char                      *field, *prefix;
    sf_order_deleted_t               deleted;
    sf_json_member_t                *root, *m;
    ngx_http_siteflow_hook_order_t   o;
    sf_json_member_t                 rm[NGX_HTTP_SITEFLOW_HOOK_MEMBERS];
    sf_json_member_t                 om[NGX_HTTP_SITEFLOW_HOOK_MEMBERS];

    text = ngx_pnalloc(r->pool, ctx->body.len);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!sf_json_strict(ctx->body.data, ctx->body.len, text, &len)) {
        return NGX_DECLINED;
    }

    nr = sf_json_members(text, len, rm, NGX_HTTP_SITEFLOW_HOOK_MEMBERS);

    if (nr < 0 || nr > NGX_HTTP_SITEFLOW_HOOK_MEMBERS) {
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "siteflow hook: body read as text, %uz bytes", len);

    root = rm;
    v = NULL;

    /* the order: "order" or "data" if an object, else the body */

    order.data = text;
    order.len = len;
    prefix = "";

    for (m = root; m < root + nr; m++) {
        if (m->key_len == 5 && ngx_strncmp(m->key, "order", 5) == 0
            && m->value[0] == '{')
        {
            break;
        }
    }

    if (m == root + nr) {
        for (m = root; m < root + nr; m++) {
            if (m->key_len == 4 && ngx_strncmp(m->key, "data", 4) == 0
                && m->value[0] == '{')
            {
                break;
            }
        }
    }

    if (m < root + nr) {
        order.data = (u_char *) m->value;
        order.len = m->value_len;
        prefix = (m->key_len == 5) ? "order." : "data.";

        no = sf_json_members(order.data, order.len, om,
                             NGX_HTTP_SITEFLOW_HOOK_MEMBERS);

        if (no < 0 || no > NGX_HTTP_SITEFLOW_HOOK_MEMBERS) {
            return NGX_DECLINED;
        }

    } else {
        ngx_memcpy(om, rm, nr * sizeof(sf_json_member_t));
        no = nr;
    }

    /* the values, each read by jansson */

    ev = sf_hook_member(root, nr, "event");
    status = sf_hook_member(om, no, "status");
    id = sf_hook_id_text(root, nr, om, no, NGX_HTTP_SITEFLOW_HOOK_MEMBERS,
                         &prefix, &field);

    if (field == NULL) {
        rc = NGX_DECLINED;
        goto done;
    }

    rc = ngx_http_siteflow_hook_event(r, ev, &event, &deleted);

    if (rc == NGX_ERROR) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        rc = ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                     "\"event\": the event is not a "
                                     "string");
        goto done;
    }

    if (rc != NGX_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED);
        rc = ngx_http_siteflow_reply(r, ctx, NGX_HTTP_OK, "skipped",
                                     "event \"%V\" is not an order event",
                                     &event);
        goto done;
    }

    rc = ngx_http_siteflow_order_id(id, r->pool, &ctx->order_id);

    if (rc == NGX_ABORT) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        rc = ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                     "\"%s%s\": the order id %s",
                                     prefix, field,
                                     sf_path_rc_text(SF_PATH_DOT));
        goto done;
    }

    if (rc != NGX_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);
        rc = ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                     rc == NGX_DECLINED
                                     ? "no order id in the body (\"id\", "
                                       "\"order_id\", \"order.id\" or "
                                       "\"data.id\")"
                                     : "\"%s%s\": the order id is not a "
                                       "string or number of 1 to 128 "
                                       "printable characters",
                                     prefix, field);
        goto done;
    }

    v = sf_hook_member(om, no, "is_deleted");

    if (deleted == SF_ORDER_LIVE && json_is_true(v)) {
        deleted = SF_ORDER_DELETED_FLAG;
    }

    json_decref(v);

    ngx_memzero(&o, sizeof(ngx_http_siteflow_hook_order_t));

    o.text = order;

    v = sf_hook_member(om, no, "is_archived");
    o.archived = json_is_true(v);
    json_decref(v);

    if (json_is_string(status)) {
        o.status.data = (u_char *) json_string_value(status);
        o.status.len = json_string_length(status);
    }

    rc = ngx_http_siteflow_hook_order(r, ctx, &event, &o, deleted);

done:

    json_decref(ev);
    json_decref(id);
    json_decref(status);

    return rc;
}


/*
 * The event: the body's, or ?event= (one target URL per event), else
 * "order_updated"; an "event" of null counts as none.  NGX_ERROR for an
 * "event" that is neither a string nor null (answered 400, nothing
 * queued), NGX_DECLINED for an event that is not about an order's content
 * (answered 200 "skipped").
 */

static ngx_int_t
ngx_http_siteflow_hook_event(ngx_http_request_t *r, json_t *v,
    ngx_str_t *event, sf_order_deleted_t *deleted)
{
    ngx_str_t  arg;

    *deleted = SF_ORDER_LIVE;

    if (v != NULL && !json_is_string(v) && !json_is_null(v)) {
        ngx_str_null(event);
        return NGX_ERROR;
    }

    if (json_is_string(v)) {
        event->data = (u_char *) json_string_value(v);
        event->len = json_string_length(v);

    } else if (ngx_http_siteflow_arg(r, "event", 5, &arg) == NGX_OK) {
        *event = arg;

    } else {
        ngx_str_set(event, "order_updated");
    }

    if (event->len != 13) {
        return NGX_DECLINED;
    }

    if (ngx_strncmp(event->data, "order_deleted", 13) == 0) {
        *deleted = SF_ORDER_DELETED_EVENT;
        return NGX_OK;
    }

    if (ngx_strncmp(event->data, "order_created", 13) == 0
        || ngx_strncmp(event->data, "order_updated", 13) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * the order job of an order read as text:
 * {"event":...,"order_id":...,"order":{...}}, what json_pack() and
 * json_dumps() wrote for the tree
 */

static ngx_int_t
ngx_http_siteflow_hook_send(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_str_t *event, ngx_str_t *order)
{
    u_char                        *p;
    ngx_str_t                      job;
    ngx_int_t                      rc;
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    job.data = ngx_pnalloc(r->pool,
                           sizeof("{\"event\":,\"order_id\":,\"order\":}")
                           + sf_json_escaped_max(event->len)
                           + sf_json_escaped_max(ctx->order_id.len)
                           + order->len);
    if (job.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(job.data, "{\"event\":", sizeof("{\"event\":") - 1);
    p += sf_json_escape((char *) p, (char *) event->data, event->len);
    p = ngx_cpymem(p, ",\"order_id\":", sizeof(",\"order_id\":") - 1);
    p += sf_json_escape((char *) p, (char *) ctx->order_id.data,
                        ctx->order_id.len);
    p = ngx_cpymem(p, ",\"order\":", sizeof(",\"order\":") - 1);
    p = ngx_cpymem(p, order->data, order->len);
    *p++ = '}';

    job.len = p - job.data;

    rc = ngx_http_siteflow_queue_enqueue_text(ctx->kind, &sscf->storefront,
                                              &ctx->order_id, &job, NULL,
                                              ngx_http_siteflow_queued, ctx);

    return ngx_http_siteflow_enqueued(r, ctx, rc);
}


static ngx_int_t
ngx_http_siteflow_hook_enqueue(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, json_t *job)
{
    ngx_int_t                      rc;
    ngx_http_siteflow_srv_conf_t  *sscf;

    if (job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    rc = ngx_http_siteflow_queue_enqueue(ctx->kind, &sscf->storefront,
                                         &ctx->order_id, job,
                                         ngx_http_siteflow_queued, ctx);
    json_decref(job);

    return ngx_http_siteflow_enqueued(r, ctx, rc);
}


/* the spool has written the job, or failed to */

/* the update job of a postback: its PrintNow calls, queued with the index */

static ngx_int_t
ngx_http_siteflow_postback_enqueue(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, sf_postback_t *pb,
    char (*items)[SF_PB_ITEM_ID_LEN], ngx_uint_t per_item,
    ngx_http_siteflow_index_t *idx)
{
    json_t                        *job, *calls;
    ngx_int_t                      rc;
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    /* the PrintNow calls */

    calls = json_array();
    if (calls == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = (pb->event == SF_EV_SHIPPED)
         ? ngx_http_siteflow_postback_shipped(r, pb, items, per_item,
                                              &idx->order_id, calls)
         : ngx_http_siteflow_postback_status(r, pb, &idx->order_id, calls);

    if (rc == NGX_DECLINED) {
        json_decref(calls);
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_POSTBACK_DUPLICATE);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_OK, "skipped",
                                       "no PrintNow status is mapped "
                                       "for \"%s\" in the mapping's "
                                       "\"statuses\"", pb->event_name);
    }

    if (rc != NGX_OK) {
        json_decref(calls);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    job = json_pack("{s:s, s:s, s:o}", "event", pb->event_name,
                    "source_order_id", pb->source_order_id, "calls", calls);
    if (job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* judged by the index as read: unless another postback came since */

    rc = ngx_http_siteflow_queue_reserve(idx, r->pool);

    if (rc != NGX_OK) {
        json_decref(job);
        return (rc == NGX_BUSY) ? NGX_BUSY : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_siteflow_queue_enqueue_indexed(NGX_HTTP_SITEFLOW_JOB_UPDATE,
                                                 &sscf->storefront,
                                                 &idx->order_id, job, idx,
                                                 ngx_http_siteflow_queued,
                                                 ctx);
    json_decref(job);

    return ngx_http_siteflow_enqueued(r, ctx, rc);
}


/* the same postback again: its event, shipment, tracking and message */

static uint32_t
ngx_http_siteflow_postback_fingerprint(sf_postback_t *pb)
{
    uint32_t  fp;

    fp = ngx_crc32_short((u_char *) pb->event_name,
                         ngx_strlen(pb->event_name));
    ngx_crc32_update(&fp, (u_char *) &pb->shipment_index,
                     sizeof(pb->shipment_index));
    ngx_crc32_update(&fp, (u_char *) pb->tracking_number,
                     ngx_strlen(pb->tracking_number));
    ngx_crc32_update(&fp, (u_char *) pb->message, ngx_strlen(pb->message));

    /*
     * 31 bits: two of them make the index's 64-bit fingerprint, which
     * PostgreSQL keeps in a (signed) bigint; 0 is "none"
     */

    fp &= 0x7fffffff;

    return fp ? fp : 1;
}


/*
 * the answer once a job was handed to the queue: the request waits for
 * the job to be durable (ngx_http_siteflow_queued), or 503
 */

static ngx_int_t
ngx_http_siteflow_enqueued(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_int_t rc)
{
    if (rc != NGX_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_SPOOL_UNAVAILABLE);
        return ngx_http_siteflow_reply(r, ctx,
                                       NGX_HTTP_SERVICE_UNAVAILABLE, "error",
                                       rc == NGX_DECLINED
                                       ? "the spool is full (see "
                                         "\"siteflow_spool\" size=); "
                                         "nothing was accepted, try again "
                                         "later"
                                       : "the job could not be queued; "
                                         "nothing was accepted, try again");
    }

    r->main->count++;

    return NGX_DONE;
}


/* one PrintNow PATCH call of an update job, appended to calls */

static ngx_int_t
ngx_http_siteflow_postback_call(json_t *calls, ngx_str_t *order_id,
    const char *suffix, const char *item_id, json_t *body)
{
    json_t  *call;
    u_char   path[1024];

    if (body == NULL
        || ngx_http_siteflow_pn_path(path, sizeof(path), order_id, suffix,
                                     item_id)
           != NGX_OK)
    {
        json_decref(body);
        return NGX_ERROR;
    }

    call = json_pack("{s:s, s:s, s:o}", "method", "PATCH",
                     "path", (char *) path, "body", body);

    if (call == NULL || json_array_append_new(calls, call) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "shipped": one PATCH .../shipped, or one per item with
 * siteflow_ship_per_item; the mapping's body, or the tracking fields
 */

static ngx_int_t
ngx_http_siteflow_postback_shipped(ngx_http_request_t *r, sf_postback_t *pb,
    char (*items)[SF_PB_ITEM_ID_LEN], ngx_uint_t per_item,
    ngx_str_t *order_id, json_t *calls)
{
    json_t                        *body;
    ngx_uint_t                     i;
    sf_pn_vars_t                   vars;
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    if (ngx_http_siteflow_postback_vars(r, order_id, &vars) != NGX_OK) {
        return NGX_ERROR;
    }

    vars.tracking_number = pb->tracking_number;
    vars.tracking_url = pb->tracking_url;
    vars.carrier = pb->carrier;
    vars.ship_date = pb->ship_date;

    for (i = 0; i < (per_item ? pb->nitems : 1); i++) {

        vars.item_id = per_item ? items[i] : NULL;

        body = NULL;

        if (sf_mapping_printnow_body(sscf->mapping,
                                     per_item ? SF_PN_SHIPPED_ITEM
                                              : SF_PN_SHIPPED,
                                     &vars, &body)
            != 0)
        {
            return NGX_ERROR;
        }

        if (body == NULL) {
            body = json_object();

            if (pb->tracking_number[0]) {
                json_object_set_new(body, "tracking_number",
                                    json_string(pb->tracking_number));
            }

            if (pb->tracking_url[0]) {
                json_object_set_new(body, "tracking_url",
                                    json_string(pb->tracking_url));
            }

            if (pb->carrier[0]) {
                json_object_set_new(body, "carrier",
                                    json_string(pb->carrier));
            }

            if (pb->ship_date[0]) {
                json_object_set_new(body, "ship_date",
                                    json_string(pb->ship_date));
            }

            json_object_set_new(body, "notify_customer", json_true());
        }

        if (ngx_http_siteflow_postback_call(calls, order_id, "/shipped",
                                            vars.item_id, body)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * any other event: PATCH .../status with the status the mapping gives
 * for it and a comment; NGX_DECLINED if the mapping gives none
 */

static ngx_int_t
ngx_http_siteflow_postback_status(ngx_http_request_t *r, sf_postback_t *pb,
    ngx_str_t *order_id, json_t *calls)
{
    u_char                        *p;
    json_t                        *body;
    const char                    *status;
    sf_pn_vars_t                   vars;
    sf_mapping_event_t             mev;
    ngx_http_siteflow_srv_conf_t  *sscf;
    char                           comment[SF_PB_MESSAGE_LEN + 64];

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    mev = (sf_mapping_event_t) sf_mapping_event(pb->event_name,
                                                ngx_strlen(pb->event_name));
    status = ((int) mev >= 0) ? sf_mapping_status(sscf->mapping, mev) : NULL;

    if (status == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_siteflow_postback_vars(r, order_id, &vars) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pb->message[0]) {
        p = (u_char *) ngx_snprintf((u_char *) comment, sizeof(comment) - 1,
                                    "SiteFlow: %s: %s", pb->event_name,
                                    pb->message);

    } else {
        p = (u_char *) ngx_snprintf((u_char *) comment, sizeof(comment) - 1,
                                    "SiteFlow: %s", pb->event_name);
    }

    *p = '\0';

    vars.status = status;
    vars.comment = comment;

    body = NULL;

    if (sf_mapping_printnow_body(sscf->mapping, SF_PN_STATUS, &vars, &body)
        != 0)
    {
        return NGX_ERROR;
    }

    if (body == NULL) {
        body = json_pack("{s:s, s:s}", "status", status, "comment", comment);
    }

    return ngx_http_siteflow_postback_call(calls, order_id, "/status", NULL,
                                           body);
}


/* the template variables of a PrintNow body: the order id, NUL-ended */

static ngx_int_t
ngx_http_siteflow_postback_vars(ngx_http_request_t *r, ngx_str_t *order_id,
    sf_pn_vars_t *vars)
{
    u_char  *p;

    ngx_memzero(vars, sizeof(sf_pn_vars_t));

    p = ngx_pnalloc(r->pool, order_id->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(p, order_id->data, order_id->len) = '\0';
    vars->order_id = (const char *) p;

    return NGX_OK;
}


static void
ngx_http_siteflow_queued(void *data, ngx_int_t rc, uint64_t id)
{
    ngx_http_siteflow_hook_ctx_t  *ctx = data;

    ngx_http_request_t  *r;

    r = ctx->request;

    /*
     * the PostgreSQL queue: another postback of the order was committed
     * since this one was judged, nothing of it was written; it is judged
     * again by what the order has now (read again)
     */

    if (rc == NGX_BUSY && ctx->postback) {
        ngx_http_finalize_request(r, ngx_http_siteflow_postback_busy(r, ctx));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_SPOOL_UNAVAILABLE);
        ngx_http_finalize_request(r,
            ngx_http_siteflow_reply(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "error",
                                    "the %s could not write the job "
                                    "(see the error log); nothing was "
                                    "accepted, try again",
                                    ngx_strcmp(
                                        ngx_http_siteflow_queue_backend(),
                                        "spool") == 0
                                    ? "spool" : "queue's database"));
        return;
    }

    ngx_http_siteflow_counter(ctx->postback
                              ? NGX_HTTP_SITEFLOW_CNT_POSTBACK_ACCEPTED
                              : NGX_HTTP_SITEFLOW_CNT_HOOK_ACCEPTED);

    ngx_http_finalize_request(r,
        ngx_http_siteflow_reply(r, ctx,
                                ctx->postback ? NGX_HTTP_OK
                                              : NGX_HTTP_ACCEPTED,
                                "job", "%uL", id));
}


/*
 * The order is read from the queue first: at once from the spool; from
 * PostgreSQL the request waits, and the body is decided again once it
 * is read (nothing was answered, counted or queued before this point).
 */

static ngx_int_t
ngx_http_siteflow_look_up(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_str_t *order_id,
    ngx_str_t *source_id)
{
    ngx_int_t                      rc;
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    rc = ngx_http_siteflow_queue_lookup(&sscf->storefront, order_id,
                                        source_id, r->pool,
                                        ngx_http_siteflow_looked_up, ctx);

    if (rc == NGX_OK) {
        ctx->looked_up = 1;
        return NGX_OK;
    }

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_siteflow_lookup_failed(r, ctx);
}


static void
ngx_http_siteflow_looked_up(void *data, ngx_int_t rc)
{
    ngx_http_siteflow_hook_ctx_t  *ctx = data;

    ngx_http_request_t  *r;

    r = ctx->request;

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, ngx_http_siteflow_lookup_failed(r, ctx));
        return;
    }

    ctx->looked_up = 1;

    if (ctx->postback) {
        ngx_http_siteflow_postback_body(r);

    } else {
        ngx_http_siteflow_hook_body(r);
    }
}


static ngx_int_t
ngx_http_siteflow_lookup_failed(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx)
{
    ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_SPOOL_UNAVAILABLE);

    return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "error",
                                   "the queue's database cannot be read now; "
                                   "nothing was accepted, try again");
}


/* the SiteFlow postback */

ngx_int_t
ngx_http_siteflow_postback_handler(ngx_http_request_t *r)
{
    return ngx_http_siteflow_intake(r, 1, ngx_http_siteflow_postback_body);
}


static void
ngx_http_siteflow_postback_body(ngx_http_request_t *r)
{
    ngx_http_siteflow_hook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);

    if (ngx_http_siteflow_body(r, &ctx->body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_siteflow_postback_decide(r, ctx));
}


static ngx_int_t
ngx_http_siteflow_postback_decide(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx)
{
    char                           err[256];
    uint32_t                       fp;
    uint64_t                       shipped;
    ngx_int_t                      rc;
    ngx_str_t                      source;
    ngx_uint_t                     i, per_item;
    sf_pb_rc_t                     prc;
    sf_postback_t                  pb;
    sf_path_rc_t                   sprc;
    ngx_http_siteflow_index_t      idx;
    ngx_http_siteflow_srv_conf_t  *sscf;
    char                         (*items)[SF_PB_ITEM_ID_LEN];

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    items = ngx_palloc(r->pool, SF_PB_MAX_ITEMS * SF_PB_ITEM_ID_LEN);
    if (items == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    prc = sf_postback_parse((const char *) ctx->body.data, ctx->body.len,
                            &pb, items, SF_PB_MAX_ITEMS, err, sizeof(err));

    if (prc != SF_PB_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "siteflow: postback refused: %s", err);

        return ngx_http_siteflow_reply(r, ctx,
                                       prc == SF_PB_UNKNOWN_EVENT
                                       ? 422
                                       : NGX_HTTP_BAD_REQUEST,
                                       "error", "%s", err);
    }

    source.data = (u_char *) pb.source_order_id;
    source.len = ngx_strlen(pb.source_order_id);

    if (!ctx->looked_up) {
        rc = ngx_http_siteflow_look_up(r, ctx, NULL, &source);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (ngx_http_siteflow_index_get(&sscf->storefront, NULL, &source,
                                    r->pool, &idx)
        != NGX_OK)
    {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "siteflow: postback \"%s\" for unknown sourceOrderId "
                      "\"%V\" of storefront \"%V\"", pb.event_name, &source,
                      &sscf->storefront);

        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_NOT_FOUND, "error",
                                       "unknown sourceOrderId \"%V\": no "
                                       "order of this storefront was sent "
                                       "to SiteFlow with it", &source);
    }

    ctx->order_id = idx.order_id;

    /* the same postback again, or one that would move the order back */

    fp = ngx_http_siteflow_postback_fingerprint(&pb);

    /*
     * the last postback again, or a shipment's sent again after the next
     * shipment's (shipmentIndex 0, 1, then 0 again: SiteFlow resending
     * an earlier one): the index keeps the last postback's fingerprint and
     * the shipment's before it
     */

    if (((uint32_t) idx.fingerprint == fp && idx.rank == (ngx_int_t) pb.event)
        || (pb.event == SF_EV_SHIPPED && (idx.fingerprint >> 32) == fp))
    {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_POSTBACK_DUPLICATE);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_OK, "skipped",
                                       "duplicate of an earlier \"%s\" "
                                       "postback", pb.event_name);
    }

    if (!sf_postback_supersedes(pb.event, (sf_event_t) idx.rank)) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_POSTBACK_DUPLICATE);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_OK, "skipped",
                                       "the order is already past \"%s\" "
                                       "(its last event was \"%s\")",
                                       pb.event_name,
                                       sf_postback_event_name(
                                           (sf_event_t) idx.rank));
    }

    /*
     * every id goes into a PrintNow URL path as one segment: one that
     * cannot be is refused here, before anything is queued
     */

    sprc = sf_path_segment_check((const char *) idx.order_id.data,
                                 idx.order_id.len);

    if (sprc != SF_PATH_OK) {
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED);
        return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST, "error",
                                       "the PrintNow order id of "
                                       "\"sourceOrderId\" %s",
                                       sf_path_rc_text(sprc));
    }

    per_item = (pb.event == SF_EV_SHIPPED && sscf->ship_per_item
                && pb.nitems > 0);

    for (i = 0; per_item && i < pb.nitems; i++) {
        sprc = sf_path_segment_check(items[i], ngx_strlen(items[i]));

        if (sprc != SF_PATH_OK) {
            ngx_http_siteflow_counter(
                                  NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED);
            return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "error", "\"sourceItemId\" "
                                           "%s", sf_path_rc_text(sprc));
        }
    }

    idx.seen_rank = idx.rank;
    idx.seen_fingerprint = idx.fingerprint;

    shipped = (idx.rank == SF_EV_SHIPPED) ? (uint32_t) idx.fingerprint
                                          : idx.fingerprint >> 32;

    idx.rank = pb.event;
    idx.fingerprint = (shipped << 32) | fp;

    rc = ngx_http_siteflow_postback_enqueue(r, ctx, &pb, items, per_item,
                                            &idx);

    return (rc == NGX_BUSY) ? ngx_http_siteflow_postback_busy(r, ctx) : rc;
}


/*
 * Another postback of the order was taken between the reading of the
 * order and the queueing of this one (at the same moment, in this or
 * another worker or edge): nothing of this one was written.  It is judged
 * again by what the order has now, read again: at once from the spool
 * (its reservation, queue_reserve()), once PostgreSQL answers from there
 * (the enqueue's check, queued()).  At most 16 times, then 503.
 */

static ngx_int_t
ngx_http_siteflow_postback_busy(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx)
{
    if (++ctx->judged < 16) {
        ctx->looked_up = 0;
        return ngx_http_siteflow_postback_decide(r, ctx);
    }

    ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_SPOOL_UNAVAILABLE);

    return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "error", "other postbacks of the order "
                                   "are being taken; nothing was accepted, "
                                   "try again");
}


/* client_max_body_size of the hook and postback, for chunked bodies */

static ngx_int_t
ngx_http_siteflow_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                   *cl;
    ngx_http_siteflow_hook_ctx_t  *ctx;
    ngx_http_siteflow_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_siteflow_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);

    if (ctx != NULL && slcf->body_max
        && (slcf->handler == NGX_HTTP_SITEFLOW_H_HOOK
            || slcf->handler == NGX_HTTP_SITEFLOW_H_POSTBACK))
    {
        for (cl = in; cl; cl = cl->next) {
            ctx->received += ngx_buf_size(cl->buf);
        }

        if (ctx->received > slcf->body_max) {
            if (ctx->replied) {
                return NGX_ERROR;
            }

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "client intended to send too large chunked "
                          "body: %O+ bytes", ctx->received);

            r->lingering_close = 1;

            if (ctx->reading) {
                /* the content handler answers in JSON */
                return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
            }

            /*
             * A piece that came in a later event: nginx's body handler
             * would finalize the request with its HTML 413.  The JSON
             * answer is finalized here instead, as nginx would have done,
             * and NGX_ERROR (below NGX_HTTP_SPECIAL_RESPONSE) makes that
             * handler return without a second one; what the client still
             * sends is read and dropped by the lingering close.
             */

            ngx_http_siteflow_counter(ctx->postback
                                      ? NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED
                                      : NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED);

            ngx_http_finalize_request(r, ngx_http_siteflow_too_large(r, ctx));
            return NGX_ERROR;
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


ngx_int_t
ngx_http_siteflow_hook_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_siteflow_request_body_filter;

    return NGX_OK;
}


/* helpers */

static ngx_int_t
ngx_http_siteflow_check_token(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf)
{
    ngx_str_t                      token;
    ngx_table_elt_t               *h;
    ngx_http_siteflow_hook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);

    ngx_str_null(&token);

    h = r->headers_in.authorization;

    if (h != NULL && h->value.len > 7
        && ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) == 0)
    {
        token.data = h->value.data + 7;
        token.len = h->value.len - 7;

        while (token.len && token.data[0] == ' ') {
            token.data++;
            token.len--;
        }

    } else if (ngx_http_siteflow_arg(r, "token", 5, &token) != NGX_OK) {
        ngx_str_null(&token);
    }

    /* constant time over the configured token's length */

    if (token.len == slcf->token.len
        && CRYPTO_memcmp(token.data, slcf->token.data, token.len) == 0)
    {
        return NGX_OK;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_UNAUTHORIZED, "error",
                                   token.len ? "invalid token"
                                             : "a token is required (the "
                                               "\"token\" query argument or "
                                               "\"Authorization: Bearer\")");
}


/* JSON travels as application/json, text/plain or without a type */

static ngx_int_t
ngx_http_siteflow_body_type(ngx_http_request_t *r)
{
    ngx_str_t                      type;
    ngx_http_siteflow_hook_ctx_t  *ctx;
    ngx_http_siteflow_loc_conf_t  *slcf;

    /* too large: refused in JSON before a byte is read */

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_siteflow_module);

    if (slcf->body_max
        && r->headers_in.content_length_n > slcf->body_max)
    {
        ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);

        r->keepalive = 0;
        r->lingering_close = 1;

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_siteflow_too_large(r, ctx);
    }

    if (r->headers_in.content_type == NULL) {
        return NGX_OK;
    }

    type = r->headers_in.content_type->value;

    if ((type.len >= 33
         && ngx_strncasecmp(type.data,
                            (u_char *) "application/x-www-form-urlencoded",
                            33) == 0)
        || (type.len >= 10
            && ngx_strncasecmp(type.data, (u_char *) "multipart/", 10) == 0))
    {
        ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_siteflow_reply(r, ctx,
                                       NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       "error", "content type \"%V\" cannot "
                                       "carry JSON; send application/json",
                                       &type);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_body(ngx_http_request_t *r, ngx_str_t *body)
{
    size_t        len;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_set(body, "");

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *p = '\0';

    /* a body with a byte order mark (a .NET sender's) is read all the same */

    len = sf_json_bom(body->data, body->len);
    body->data += len;
    body->len -= len;

    return NGX_OK;
}


/* 413 for a body over client_max_body_size (Content-Length or chunked) */

static ngx_int_t
ngx_http_siteflow_too_large(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx)
{
    ngx_http_siteflow_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_siteflow_module);

    return ngx_http_siteflow_reply(r, ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "error", "the body is larger than "
                                   "client_max_body_size (%O bytes)",
                                   slcf->body_max);
}


/*
 * {"<key>": "<text>"} with the status; the exchange goes to the Site Flow
 * Log (without the token: the log redacts it from the URL)
 */

static ngx_int_t
ngx_http_siteflow_reply(ngx_http_request_t *r,
    ngx_http_siteflow_hook_ctx_t *ctx, ngx_uint_t status, const char *key,
    const char *fmt, ...)
{
    char                           *q;
    size_t                          len, klen;
    u_char                         *p;
    va_list                         args;
    ngx_int_t                       rc;
    ngx_str_t                       url;
    ngx_time_t                     *tp;
    ngx_msec_int_t                  ms;
    ngx_http_siteflow_srv_conf_t   *sscf;
    ngx_http_siteflow_log_entry_t   e;
    u_char                          raw[1024];
    char                            msg[1024];
    char                            out[sf_json_escaped_max(32)
                                        + sf_json_escaped_max(1024) + 3];

    va_start(args, fmt);
    p = ngx_vslprintf(raw, raw + sizeof(raw) - 1, fmt, args);
    va_end(args);

    /*
     * valid UTF-8 whatever the message quotes: a character the length
     * limit cut is left out, a byte that is not UTF-8 (of the URL, say)
     * becomes U+FFFD
     */

    len = sf_json_clean(msg, sizeof(msg), (char *) raw, p - raw,
                        SF_JSON_CLEAN_CUT);

    klen = ngx_strlen(key);     /* one of the module's own words */

    if (klen > 32) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* {"key":"msg"}, as jansson writes it compact */

    q = out;
    *q++ = '{';
    q += sf_json_escape(q, key, klen);
    *q++ = ':';
    q += sf_json_escape(q, msg, len);
    *q++ = '}';

    p = ngx_pnalloc(r->pool, q - out + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, out, q - out);
    p[q - out] = '\0';

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    ngx_memzero(&e, sizeof(ngx_http_siteflow_log_entry_t));

    url = r->unparsed_uri;

    e.direction = SF_RING_IN;
    e.method = r->method_name;
    e.url = url;
    e.status = status;
    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    e.duration = (ms > 0) ? (ngx_msec_t) ms : 0;
    e.order_id = ctx ? ctx->order_id : e.order_id;
    e.request = ctx ? ctx->body : e.request;
    e.response.data = p;
    e.response.len = ngx_strlen(p);

    ngx_http_siteflow_log_write(sscf, &e);

    rc = ngx_http_siteflow_send_json(r, status, (char *) p);

    if (ctx) {
        ctx->replied = 1;
    }

    return rc;
}


static ngx_int_t
ngx_http_siteflow_order_id(json_t *v, ngx_pool_t *pool, ngx_str_t *id)
{
    size_t   i;
    u_char  *p;
    u_char   buf[NGX_INT64_LEN + 1];

    if (v == NULL || json_is_null(v)) {
        return NGX_DECLINED;
    }

    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(buf, "%L", (int64_t) json_integer_value(v));

        id->len = p - buf;
        id->data = ngx_pnalloc(pool, id->len);

        if (id->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(id->data, buf, id->len);

        return NGX_OK;
    }

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    id->len = json_string_length(v);

    if (id->len == 0 || id->len > NGX_HTTP_SITEFLOW_ORDER_ID_MAX) {
        return NGX_ERROR;
    }

    p = (u_char *) json_string_value(v);

    for (i = 0; i < id->len; i++) {
        if (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == '/') {
            return NGX_ERROR;
        }
    }

    /* it goes into PrintNow URL paths as one segment */

    if (sf_path_segment_check((const char *) p, id->len) != SF_PATH_OK) {
        return NGX_ABORT;
    }

    id->data = ngx_pnalloc(pool, id->len);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(id->data, p, id->len);

    return NGX_OK;
}


/*
 * "/api/v2/order/{order_id}{what}[/{item_id}]", each id one escaped path
 * segment (checked by the caller)
 */

static ngx_int_t
ngx_http_siteflow_pn_path(u_char *buf, size_t size, ngx_str_t *order_id,
    const char *what, const char *item_id)
{
    size_t  pos;

    pos = 0;

    if (sf_path_append((char *) buf, size, &pos, "/api/v2/order/")
        != SF_PATH_OK
        || sf_path_append_segment((char *) buf, size, &pos,
                                  (const char *) order_id->data,
                                  order_id->len)
           != SF_PATH_OK
        || sf_path_append((char *) buf, size, &pos, what) != SF_PATH_OK)
    {
        return NGX_ERROR;
    }

    if (item_id != NULL
        && (sf_path_append((char *) buf, size, &pos, "/") != SF_PATH_OK
            || sf_path_append_segment((char *) buf, size, &pos, item_id,
                                      ngx_strlen(item_id))
               != SF_PATH_OK))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_arg(ngx_http_request_t *r, char *name, size_t len,
    ngx_str_t *value)
{
    u_char  *dst, *src;

    if (ngx_http_arg(r, (u_char *) name, len, value) != NGX_OK) {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, value->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    src = value->data;
    value->data = dst;

    ngx_unescape_uri(&dst, &src, value->len, NGX_UNESCAPE_URI);

    value->len = dst - value->data;

    return NGX_OK;
}
