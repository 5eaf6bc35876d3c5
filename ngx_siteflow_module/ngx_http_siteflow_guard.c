
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_guard.h"
#include "ngx_http_siteflow_shmlog.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_log.h"
#include "sf_ring.h"
#include "sf_sig.h"
#include "sf_ship.h"

#include <openssl/rand.h>


/*
 * The SiteFlow Ship API guard ("siteflow_verify_signature on").
 *
 * Access phase: X-SiteFlow-Nonce and X-SiteFlow-Signature are checked
 * against the configured partners, the nonce is recorded in the shared
 * replay cache, and, with "siteflow_shipment_validate on", the body is read
 * (the mirror module's way) and validated before the content handler sees
 * it.  Rejections answer in SiteFlow's {"status":{"code":"error",...}}
 * shape.
 *
 * Header and body filters: every response of a guarded location is signed
 * with a fresh nonce, and statuses SiteFlow does not understand (anything
 * but 200, 201, 400 and 401) become 400 with a SiteFlow error body.
 *
 * Log phase: every checked request, and every answer of a guarded
 * location that came before the check (nginx's 413 for a body over
 * client_max_body_size), goes to the Site Flow Log (direction "in"):
 * method, URI, the status sent, the duration, the request body and the
 * response body as sent, each capped; never the X-SiteFlow-* headers.
 * The body filter keeps the first bytes of the response for it.
 */


#define NGX_HTTP_SITEFLOW_RESPONSE_NONCE_BYTES  48
#define NGX_HTTP_SITEFLOW_SHIP_MSG_LEN          2048
#define NGX_HTTP_SITEFLOW_RAND_BATCH            32


/* the request ctx and, after it, what the Site Flow Log needs */
typedef struct {
    ngx_http_siteflow_ctx_t        ctx;         /* must be first */
    u_char                        *response;    /* the first bytes sent */
    size_t                         response_len;
    ngx_str_t                      order_id;    /* found by the validation */
    off_t                          body_len;    /* of the body validated */
    unsigned                       logging:2;   /* 0 unknown, 1 on, 2 off */
    unsigned                       logged:1;
    unsigned                       order_known:1;
} ngx_http_siteflow_guard_ctx_t;


static ngx_int_t ngx_http_siteflow_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_verify(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf, ngx_http_siteflow_ctx_t *ctx);
static ngx_int_t ngx_http_siteflow_find_header(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
static void ngx_http_siteflow_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_check_shipment_request(
    ngx_http_request_t *r, ngx_http_siteflow_ctx_t *ctx);
static ngx_int_t ngx_http_siteflow_read_body(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf, ngx_str_t *body);
static ngx_int_t ngx_http_siteflow_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *message);
static ngx_int_t ngx_http_siteflow_error_body(ngx_http_request_t *r,
    ngx_str_t *message, ngx_str_t *body);
static ngx_http_siteflow_ctx_t *ngx_http_siteflow_ctx(ngx_http_request_t *r,
    ngx_uint_t create);
static void ngx_http_siteflow_ctx_cleanup(void *data);
static ngx_int_t ngx_http_siteflow_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_siteflow_map_status(ngx_http_request_t *r,
    ngx_http_siteflow_ctx_t *ctx);
static ngx_int_t ngx_http_siteflow_replace_response(ngx_http_request_t *r,
    ngx_http_siteflow_ctx_t *ctx, ngx_uint_t status, ngx_str_t *msg);
static ngx_int_t ngx_http_siteflow_sign_response(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf, ngx_http_siteflow_ctx_t *ctx);


static ngx_int_t ngx_http_siteflow_response_nonce(u_char *out);
static ngx_int_t ngx_http_siteflow_guard_logging(ngx_http_request_t *r,
    ngx_http_siteflow_guard_ctx_t *g);
static void ngx_http_siteflow_guard_capture(ngx_http_request_t *r,
    ngx_http_siteflow_guard_ctx_t *g, ngx_chain_t *in);
static ngx_int_t ngx_http_siteflow_guard_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_guard_log_body(ngx_http_request_t *r,
    ngx_str_t *body);
static void ngx_http_siteflow_guard_order_id(ngx_http_request_t *r,
    ngx_str_t *body, ngx_str_t *order_id);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_str_t  ngx_http_siteflow_nonce_header =
    ngx_string("X-SiteFlow-Nonce");
static ngx_str_t  ngx_http_siteflow_signature_header =
    ngx_string("X-SiteFlow-Signature");
static ngx_str_t  ngx_http_siteflow_json_type =
    ngx_string("application/json");


static const char  *ngx_http_siteflow_sig_results[] = {
    "ok",
    "missing",
    "malformed",
    "unknown_partner",
    "mismatch",
    "replay"
};


ngx_int_t
ngx_http_siteflow_guard_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_siteflow_access_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_siteflow_guard_log;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_siteflow_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_siteflow_body_filter;

    return NGX_OK;
}


const char *
ngx_http_siteflow_sig_result_name(ngx_uint_t result)
{
    if (result >= NGX_HTTP_SITEFLOW_SIG_MAX) {
        return "unknown";
    }

    return ngx_http_siteflow_sig_results[result];
}


static ngx_int_t
ngx_http_siteflow_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_http_siteflow_ctx_t        *ctx;
    ngx_http_siteflow_loc_conf_t   *slcf;
    ngx_http_siteflow_main_conf_t  *smcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_siteflow_module);

    if (!slcf->verify_signature || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_siteflow_ctx(r, 0);

    if (ctx != NULL && ctx->checked) {

        /* re-entered after the request body was read */

        if (!ctx->done) {
            return NGX_AGAIN;
        }

        if (ctx->error.len) {
            return ngx_http_siteflow_send_error(r, ctx->status, &ctx->error);
        }

        return ctx->status;
    }

    ctx = ngx_http_siteflow_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_siteflow_module);

    rc = ngx_http_siteflow_verify(r, slcf, ctx);

    ctx->checked = 1;

    ngx_http_siteflow_count(smcf->shm_zone,
                            NGX_HTTP_SITEFLOW_CNT_SIG + ctx->sig_result);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(slcf->sig_log_level, r->connection->log, 0,
                      "siteflow: Ship API request refused: %V",
                      &ctx->error);

        return ngx_http_siteflow_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                            &ctx->error);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "siteflow hmac: verified partner \"%V\"",
                   &ctx->partner_id);

    /*
     * success declines rather than grants: under "satisfy any" a valid
     * signature must not stand in for allow/deny or auth_request, and
     * under "satisfy all" the other access checks still run
     */

    if (!slcf->shipment_validate) {
        ctx->done = 1;
        ctx->status = NGX_DECLINED;
        return NGX_DECLINED;
    }

    rc = ngx_http_siteflow_check_shipment_request(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->done = 1;
        ngx_http_siteflow_count(smcf->shm_zone,
                                NGX_HTTP_SITEFLOW_CNT_SHIP_INVALID);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "siteflow: shipment request refused: %V", &ctx->error);
        return ngx_http_siteflow_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            &ctx->error);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_siteflow_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_siteflow_verify(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf, ngx_http_siteflow_ctx_t *ctx)
{
    u_char                          mac[SF_SIG_HMAC256_LEN];
    size_t                          partner_len, sig_len;
    ngx_int_t                       rc;
    ngx_str_t                       nonce, signature;
    ngx_uint_t                      i, known, matched;
    sf_sig_rc_t                     src;
    const u_char                   *partner, *sig;
    ngx_http_siteflow_partner_t    *p;
    ngx_http_siteflow_main_conf_t  *smcf;

    ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_MISSING;

    /* answered with the first partner unless the caller is known */

    ctx->signer = slcf->partners->elts;

    rc = ngx_http_siteflow_find_header(r, &ngx_http_siteflow_nonce_header,
                                       &nonce);
    if (rc == NGX_DECLINED) {
        ngx_str_set(&ctx->error, "missing X-SiteFlow-Nonce header");
        return NGX_DECLINED;
    }

    if (rc == NGX_BUSY) {
        ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_MALFORMED;
        ngx_str_set(&ctx->error, "more than one X-SiteFlow-Nonce header");
        return NGX_DECLINED;
    }

    rc = ngx_http_siteflow_find_header(r,
                                       &ngx_http_siteflow_signature_header,
                                       &signature);
    if (rc == NGX_DECLINED) {
        ngx_str_set(&ctx->error, "missing X-SiteFlow-Signature header");
        return NGX_DECLINED;
    }

    if (rc == NGX_BUSY) {
        ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_MALFORMED;
        ngx_str_set(&ctx->error, "more than one X-SiteFlow-Signature header");
        return NGX_DECLINED;
    }

    ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_MALFORMED;

    src = sf_sig_nonce_check(nonce.data, nonce.len);
    if (src != SF_SIG_OK) {
        if (src == SF_SIG_MISSING) {
            ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_MISSING;
            ngx_str_set(&ctx->error, "empty X-SiteFlow-Nonce header");

        } else {
            ngx_str_set(&ctx->error, "malformed X-SiteFlow-Nonce header");
        }

        return NGX_DECLINED;
    }

    src = sf_sig_split(signature.data, signature.len, &partner, &partner_len,
                       &sig, &sig_len);
    if (src != SF_SIG_OK) {
        if (src == SF_SIG_MISSING) {
            ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_MISSING;
            ngx_str_set(&ctx->error, "empty X-SiteFlow-Signature header");

        } else {
            ngx_str_set(&ctx->error, "malformed X-SiteFlow-Signature "
                        "header, expected \"partnerId:signature\"");
        }

        return NGX_DECLINED;
    }

    /*
     * try every key of the partner (key rotation) and do not stop at the
     * first match, so the time taken does not tell which key matched
     */

    p = slcf->partners->elts;
    known = 0;
    matched = 0;

    for (i = 0; i < slcf->partners->nelts; i++) {

        if (p[i].id.len != partner_len
            || ngx_strncmp(p[i].id.data, partner, partner_len) != 0)
        {
            continue;
        }

        if (!known) {
            known = 1;

            /* a refusal is still answered with this partner's key */
            ctx->signer = &p[i];
        }

        src = sf_sig_key_ship_verify(p[i].hmac, nonce.data, nonce.len,
                                     sig, sig_len, matched ? NULL : mac);

        if (src == SF_SIG_OK && !matched) {
            matched = 1;
            ctx->signer = &p[i];
            ctx->partner_id = p[i].id;

        } else if (src == SF_SIG_MALFORMED) {
            ngx_str_set(&ctx->error, "malformed X-SiteFlow-Signature "
                        "header, expected a base64 HMAC-SHA256");
            return NGX_DECLINED;

        } else if (src == SF_SIG_ERROR) {
            return NGX_ERROR;
        }
    }

    if (!known) {
        ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_UNKNOWN_PARTNER;

        /* the partner id passed the charset check: safe to quote */

        ctx->error.data = ngx_pnalloc(r->pool,
                                      sizeof("unknown partner \"\"") - 1
                                      + partner_len);
        if (ctx->error.data == NULL) {
            return NGX_ERROR;
        }

        ctx->error.len = ngx_sprintf(ctx->error.data, "unknown partner \"%*s\"",
                                     partner_len, partner)
                         - ctx->error.data;

        return NGX_DECLINED;
    }

    if (!matched) {
        ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_MISMATCH;
        ngx_str_set(&ctx->error, "signature does not match");
        return NGX_DECLINED;
    }

    /* only a verified nonce enters the replay cache */

    smcf = ngx_http_get_module_main_conf(r, ngx_http_siteflow_module);

    switch (ngx_http_siteflow_nonce_check(smcf->shm_zone, mac,
                                          slcf->nonce_ttl))
    {
    case NGX_HTTP_SITEFLOW_NONCE_FRESH:
        break;

    case NGX_HTTP_SITEFLOW_NONCE_FRESH_EVICTED:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "siteflow: nonce replay cache is full, the oldest "
                      "unexpired nonce was evicted; consider a larger "
                      "\"siteflow_nonce_cache\" or \"siteflow_zone\"");
        break;

    case NGX_HTTP_SITEFLOW_NONCE_REPLAY:
        ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_REPLAY;
        ngx_str_set(&ctx->error, "nonce already used");
        ctx->partner_id.len = 0;
        return NGX_DECLINED;

    default: /* NGX_HTTP_SITEFLOW_NONCE_ERROR */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "siteflow: could not record the nonce in the replay "
                      "cache");
        return NGX_ERROR;
    }

    ctx->sig_result = NGX_HTTP_SITEFLOW_SIG_OK;
    ctx->verified = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_find_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_uint_t        i, found;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    found = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || h[i].key.len != name->len
            || ngx_strncasecmp(h[i].key.data, name->data, name->len) != 0)
        {
            continue;
        }

        if (found) {
            return NGX_BUSY;
        }

        found = 1;
        *value = h[i].value;
    }

    return found ? NGX_OK : NGX_DECLINED;
}


static void
ngx_http_siteflow_body_handler(ngx_http_request_t *r)
{
    char                            msg[NGX_HTTP_SITEFLOW_SHIP_MSG_LEN];
    char                            order[SF_RING_MAX_ORDER_ID];
    size_t                          order_len;
    unsigned                        n;
    ngx_int_t                       rc;
    ngx_str_t                       body;
    sf_ship_rc_t                    src;
    ngx_http_siteflow_ctx_t        *ctx;
    ngx_http_siteflow_loc_conf_t   *slcf;
    ngx_http_siteflow_guard_ctx_t  *g;
    ngx_http_siteflow_main_conf_t  *smcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_siteflow_module);

    ctx->done = 1;
    ctx->status = NGX_DECLINED;

    rc = ngx_http_siteflow_read_body(r, slcf, &body);

    if (rc == NGX_ERROR) {
        ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto next;
    }

    if (rc == NGX_DECLINED) {
        ctx->status = NGX_HTTP_BAD_REQUEST;
        ngx_str_set(&ctx->error, "shipment request is larger than "
                    "\"siteflow_shipment_body_max\"");
        smcf = ngx_http_get_module_main_conf(r, ngx_http_siteflow_module);
        ngx_http_siteflow_count(smcf->shm_zone,
                                NGX_HTTP_SITEFLOW_CNT_SHIP_INVALID);
        goto next;
    }

    n = 0;
    src = sf_ship_validate_order((char *) body.data, body.len, msg,
                                 sizeof(msg), &n, order, sizeof(order),
                                 &order_len);

    if (src == SF_SHIP_OK || src == SF_SHIP_INVALID) {

        /* the log entry's order id, without reading the body again */

        g = (ngx_http_siteflow_guard_ctx_t *) ctx;
        g->body_len = body.len;
        g->order_known = 1;

        if (order_len > 0) {
            g->order_id.data = ngx_pnalloc(r->pool, order_len);

            if (g->order_id.data != NULL) {
                ngx_memcpy(g->order_id.data, order, order_len);
                g->order_id.len = order_len;

            } else {
                g->order_known = 0;
            }
        }
    }

    if (src == SF_SHIP_OK) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "siteflow hmac: shipment request is valid");
        goto next;
    }

    if (src == SF_SHIP_ERROR) {
        ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto next;
    }

    ctx->status = NGX_HTTP_BAD_REQUEST;
    ctx->error.len = ngx_strlen(msg);
    ctx->error.data = ngx_pnalloc(r->pool, ctx->error.len);

    if (ctx->error.data == NULL) {
        ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        ctx->error.len = 0;
        goto next;
    }

    ngx_memcpy(ctx->error.data, msg, ctx->error.len);

    smcf = ngx_http_get_module_main_conf(r, ngx_http_siteflow_module);
    ngx_http_siteflow_count(smcf->shm_zone,
                            NGX_HTTP_SITEFLOW_CNT_SHIP_INVALID);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "siteflow: shipment request refused, %ud problem(s): %V",
                  n, &ctx->error);

next:

#if (nginx_version >= 1021001)
    r->preserve_body = 1;
#endif

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * SiteFlow POSTs JSON: with validation on, another method or a content
 * type that cannot carry JSON is refused (as 400, the only client error
 * status SiteFlow shows to its dispatch operator) before the body is read.
 */

static ngx_int_t
ngx_http_siteflow_check_shipment_request(ngx_http_request_t *r,
    ngx_http_siteflow_ctx_t *ctx)
{
    u_char     *p, *last;
    size_t      len;
    ngx_str_t   type;

    if (!(r->method & NGX_HTTP_POST)) {
        ngx_str_set(&ctx->error, "shipment requests must be POSTed "
                    "(HTTP 405)");
        return NGX_DECLINED;
    }

    if (r->headers_in.content_type == NULL
        || r->headers_in.content_type->value.len == 0)
    {
        return NGX_OK;
    }

    type = r->headers_in.content_type->value;

    last = ngx_strlchr(type.data, type.data + type.len, ';');
    if (last == NULL) {
        last = type.data + type.len;
    }

    while (last > type.data && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    len = last - type.data;

    if ((len == sizeof("application/json") - 1
         && ngx_strncasecmp(type.data, (u_char *) "application/json", len)
            == 0)
        || (len > sizeof("+json") - 1
            && ngx_strncasecmp(last - 5, (u_char *) "+json", 5) == 0
            && ngx_strlchr(type.data, last - 5, '/') != NULL)
        || (len == sizeof("text/plain") - 1
            && ngx_strncasecmp(type.data, (u_char *) "text/plain", len)
               == 0))
    {
        return NGX_OK;
    }

    len = ngx_min(len, 64);

    ctx->error.data = ngx_pnalloc(r->pool, len * 6 + 80);
    if (ctx->error.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(ctx->error.data, "unsupported content type \"",
                   sizeof("unsupported content type \"") - 1);

    /* the message is escaped again as JSON: keep only printable ASCII */

    for ( /* void */ ; len; len--) {
        *p++ = (*type.data >= 0x20 && *type.data < 0x7f) ? *type.data : '?';
        type.data++;
    }

    p = ngx_cpymem(p, "\", expected application/json (HTTP 415)",
                   sizeof("\", expected application/json (HTTP 415)") - 1);

    ctx->error.len = p - ctx->error.data;

    return NGX_DECLINED;
}


/*
 * The body as one piece of memory without consuming the buffers, so the
 * content handler (proxy_pass) still sends it byte for byte.  A body that
 * went to a temporary file is read back; it is bounded by
 * "siteflow_shipment_body_max".
 */

static ngx_int_t
ngx_http_siteflow_read_body(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf, ngx_str_t *body)
{
    off_t         len;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;

        return (body->len > slcf->shipment_body_max) ? NGX_DECLINED : NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) slcf->shipment_body_max) {
        return NGX_DECLINED;
    }

    body->data = ngx_pnalloc(r->pool, (size_t) len + 1);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_CRIT, r->connection->log, ngx_errno,
                              "siteflow: reading the request body from "
                              "\"%V\" failed", &b->file->name);
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    body->len = p - body->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *message)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_str_t     body;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_siteflow_error_body(r, message, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_siteflow_json_type;
    r->headers_out.content_type_len = ngx_http_siteflow_json_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = body.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return NGX_DONE;
    }

    b->pos = body.data;
    b->last = body.data + body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));

    return NGX_DONE;
}


/* {"status":{"code":"error","message":"..."}} */

static ngx_int_t
ngx_http_siteflow_error_body(ngx_http_request_t *r, ngx_str_t *message,
    ngx_str_t *body)
{
    size_t   len, cap;
    u_char  *p;

    static u_char  head[] = "{\"status\":{\"code\":\"error\",\"message\":\"";
    static u_char  tail[] = "\"}}\n";

    /* escaping may grow a byte to \u00XX or U+FFFD */

    cap = message->len * 6 + 1;
    len = sizeof(head) - 1 + cap + sizeof(tail) - 1;

    body->data = ngx_pnalloc(r->pool, len);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(body->data, head, sizeof(head) - 1);
    p += sf_ship_json_escape((const char *) message->data, message->len,
                             (char *) p, cap);
    p = ngx_cpymem(p, tail, sizeof(tail) - 1);

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * The request ctx, created on first use.  An internal redirect (try_files,
 * error_page, index) clears module ctxs, so the ctx is also kept in a pool
 * cleanup and found there again, the realip module's way: a request that
 * was verified stays verified (its nonce is in the replay cache now) and
 * its response is still signed.
 */

static ngx_http_siteflow_ctx_t *
ngx_http_siteflow_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_siteflow_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_siteflow_module);

    if (ctx != NULL) {
        return ctx;
    }

    if (r->internal || r->filter_finalize) {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_siteflow_ctx_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_siteflow_module);
                return ctx;
            }
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool,
                               sizeof(ngx_http_siteflow_guard_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_siteflow_guard_ctx_t));
    ctx->guard = 1;

    cln->handler = ngx_http_siteflow_ctx_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_siteflow_module);

    return ctx;
}


ngx_http_siteflow_ctx_t *
ngx_http_siteflow_get_ctx(ngx_http_request_t *r)
{
    return ngx_http_siteflow_ctx(r, 0);
}


static void
ngx_http_siteflow_ctx_cleanup(void *data)
{
    ngx_http_siteflow_ctx_t  *ctx = data;

    /* also the marker that finds the ctx after an internal redirect */

    ctx->signer = NULL;
}


static ngx_int_t
ngx_http_siteflow_header_filter(ngx_http_request_t *r)
{
    ngx_http_siteflow_ctx_t       *ctx;
    ngx_http_siteflow_loc_conf_t  *slcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_siteflow_module);

    /*
     * a request checked by a guard stays guarded after an internal
     * redirect (error_page, try_files) to a location without the guard
     */

    ctx = ngx_http_siteflow_ctx(r, slcf->verify_signature);

    if (!slcf->verify_signature && (ctx == NULL || !ctx->checked)) {
        return ngx_http_next_header_filter(r);
    }

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    /*
     * refused before the access phase (client_max_body_size's 413, a
     * "return" in the location): SiteFlow's call is logged all the same
     */

    if (!ctx->checked && ctx->guard) {
        ctx->early = 1;
    }

    if (ngx_http_siteflow_map_status(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_sign_response(r, slcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/*
 * SiteFlow understands 200, 201, 400 and 401 only: anything else becomes
 * a 400 whose SiteFlow error message names what happened.  A success the
 * guard never checked (a "return" or "rewrite" in the guarded location
 * answers before the access phase) is refused instead of being signed.
 */

static ngx_int_t
ngx_http_siteflow_map_status(ngx_http_request_t *r,
    ngx_http_siteflow_ctx_t *ctx)
{
    u_char                         *p;
    ngx_str_t                       msg;
    ngx_uint_t                      status;
    ngx_http_siteflow_main_conf_t  *smcf;
    u_char                          buf[160];

    status = r->headers_out.status;

    if (!ctx->checked && status < NGX_HTTP_BAD_REQUEST) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "siteflow: a guarded location answered %ui before "
                      "the signature check (\"return\" or \"rewrite\" in "
                      "it?), refused with 401", status);

        ngx_str_set(&msg, "request was not verified");

        return ngx_http_siteflow_replace_response(r, ctx,
                                                  NGX_HTTP_UNAUTHORIZED,
                                                  &msg);
    }

    switch (status) {
    case NGX_HTTP_OK:
    case NGX_HTTP_CREATED:
    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_UNAUTHORIZED:
        return NGX_OK;
    }

    if (status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        p = ngx_sprintf(buf, "request body too large (HTTP %ui)", status);

    } else if (r->upstream == NULL) {
        p = ngx_sprintf(buf, "request refused with HTTP %ui", status);

    } else if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        p = ngx_sprintf(buf, "shipping service failed or is unavailable "
                        "(HTTP %ui)", status);

    } else {
        p = ngx_sprintf(buf, "shipping service answered HTTP %ui", status);
    }

    msg.data = buf;
    msg.len = p - buf;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "siteflow: Ship API response %ui answered as 400: %V",
                  status, &msg);

    smcf = ngx_http_get_module_main_conf(r, ngx_http_siteflow_module);
    ngx_http_siteflow_count(smcf->shm_zone, NGX_HTTP_SITEFLOW_CNT_SHIP_MAPPED);

    return ngx_http_siteflow_replace_response(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              &msg);
}


/* the response becomes a SiteFlow error; the body filter swaps the body */

static ngx_int_t
ngx_http_siteflow_replace_response(ngx_http_request_t *r,
    ngx_http_siteflow_ctx_t *ctx, ngx_uint_t status, ngx_str_t *msg)
{
    if (ngx_http_siteflow_error_body(r, msg, &ctx->mapped_body) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.status_line.len = 0;

    r->headers_out.content_type = ngx_http_siteflow_json_type;
    r->headers_out.content_type_len = ngx_http_siteflow_json_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    if (r->headers_out.content_encoding) {
        r->headers_out.content_encoding->hash = 0;
        r->headers_out.content_encoding = NULL;
    }

    if (r->headers_out.location) {
        r->headers_out.location->hash = 0;
        r->headers_out.location = NULL;
    }

    r->headers_out.content_length_n = ctx->mapped_body.len;

    ctx->replace_body = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_sign_response(ngx_http_request_t *r,
    ngx_http_siteflow_loc_conf_t *slcf, ngx_http_siteflow_ctx_t *ctx)
{
    u_char                        *p;
    ngx_uint_t                     i;
    ngx_list_part_t               *part;
    ngx_table_elt_t               *h, *nonce, *signature;
    ngx_http_siteflow_partner_t   *partner;
    char                           sig[SF_SIG_B64_LEN + 1];

    /* the answer is signed by us alone: drop the upstream's own headers */

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if ((h[i].key.len == ngx_http_siteflow_nonce_header.len
             && ngx_strncasecmp(h[i].key.data,
                                ngx_http_siteflow_nonce_header.data,
                                h[i].key.len) == 0)
            || (h[i].key.len == ngx_http_siteflow_signature_header.len
                && ngx_strncasecmp(h[i].key.data,
                                   ngx_http_siteflow_signature_header.data,
                                   h[i].key.len) == 0))
        {
            h[i].hash = 0;
        }
    }

    partner = ctx->signer;

    if (partner == NULL) {
        /* not checked yet: the guard of this location answers */
        partner = slcf->partners->elts;
    }

    nonce = ngx_list_push(&r->headers_out.headers);
    if (nonce == NULL) {
        return NGX_ERROR;
    }

    nonce->value.len = 2 * NGX_HTTP_SITEFLOW_RESPONSE_NONCE_BYTES;
    nonce->value.data = ngx_pnalloc(r->pool, nonce->value.len);
    if (nonce->value.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_response_nonce(nonce->value.data) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "siteflow: RAND_bytes() failed for a response nonce");
        return NGX_ERROR;
    }

    nonce->hash = 1;
    nonce->key = ngx_http_siteflow_nonce_header;
#if (nginx_version >= 1023000)
    nonce->next = NULL;
#endif

    if (sf_sig_key_ship_sign(partner->hmac, nonce->value.data,
                             nonce->value.len, sig)
        != SF_SIG_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "siteflow: signing the response failed");
        return NGX_ERROR;
    }

    signature = ngx_list_push(&r->headers_out.headers);
    if (signature == NULL) {
        return NGX_ERROR;
    }

    signature->value.data = ngx_pnalloc(r->pool,
                                        partner->id.len + 1 + SF_SIG_B64_LEN);
    if (signature->value.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(signature->value.data, "%V:%s", &partner->id, sig);

    signature->value.len = p - signature->value.data;
    signature->hash = 1;
    signature->key = ngx_http_siteflow_signature_header;
#if (nginx_version >= 1023000)
    signature->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                *b;
    ngx_uint_t                last;
    ngx_chain_t              *cl, out;
    ngx_http_siteflow_ctx_t  *ctx;

    if (r != r->main || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_siteflow_ctx(r, 0);

    if (ctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (!ctx->replace_body) {
        if (ctx->checked || ctx->early) {
            ngx_http_siteflow_guard_capture(r,
                (ngx_http_siteflow_guard_ctx_t *) ctx, in);
        }

        return ngx_http_next_body_filter(r, in);
    }

    /* swallow the original body, answer ours once it has ended */

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last_buf) {
            last = 1;
        }

        b->pos = b->last;

        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }

    if (!last || ctx->replaced) {
        return NGX_OK;
    }

    ctx->replaced = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->mapped_body.data;
    b->last = ctx->mapped_body.data + ctx->mapped_body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    if (ctx->checked || ctx->early) {
        ngx_http_siteflow_guard_capture(r,
                                        (ngx_http_siteflow_guard_ctx_t *) ctx,
                                        &out);
    }

    return ngx_http_next_body_filter(r, &out);
}


static ngx_int_t
ngx_http_siteflow_guard_logging(ngx_http_request_t *r,
    ngx_http_siteflow_guard_ctx_t *g)
{
    ngx_http_siteflow_srv_conf_t  *sscf;

    if (g->logging == 0) {
        sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);
        g->logging = ngx_http_siteflow_log_enabled(sscf) ? 1 : 2;
    }

    return (g->logging == 1);
}


/*
 * Keeps the first siteflow_log_body_max + 1 bytes of the
 * response (one more than the log takes, so the log sees the cut) from
 * the memory buffers passed on; file buffers are not read.
 */

static void
ngx_http_siteflow_guard_capture(ngx_http_request_t *r,
    ngx_http_siteflow_guard_ctx_t *g, ngx_chain_t *in)
{
    size_t        n, cap;
    ngx_chain_t  *cl;

    cap = ngx_http_siteflow_log_body_max(r) + 1;

    if (g->response_len == cap || !ngx_http_siteflow_guard_logging(r, g)) {
        return;
    }

    for (cl = in; cl && g->response_len < cap; cl = cl->next) {

        if (!ngx_buf_in_memory(cl->buf) || cl->buf->pos == cl->buf->last) {
            continue;
        }

        if (g->response == NULL) {
            g->response = ngx_pnalloc(r->pool, cap);
            if (g->response == NULL) {
                return;
            }
        }

        n = ngx_min((size_t) (cl->buf->last - cl->buf->pos),
                    cap - g->response_len);

        ngx_memcpy(g->response + g->response_len, cl->buf->pos, n);
        g->response_len += n;
    }
}


static ngx_int_t
ngx_http_siteflow_guard_log(ngx_http_request_t *r)
{
    ngx_time_t                     *tp;
    ngx_msec_int_t                  ms;
    ngx_http_siteflow_ctx_t        *ctx;
    ngx_http_siteflow_srv_conf_t   *sscf;
    ngx_http_siteflow_guard_ctx_t  *g;
    ngx_http_siteflow_log_entry_t   e;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_siteflow_ctx(r, 0);

    if (ctx == NULL || !(ctx->checked || ctx->early)) {
        return NGX_OK;
    }

    g = (ngx_http_siteflow_guard_ctx_t *) ctx;

    if (g->logged || !ngx_http_siteflow_guard_logging(r, g)) {
        return NGX_OK;
    }

    g->logged = 1;

    ngx_memzero(&e, sizeof(ngx_http_siteflow_log_entry_t));

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    e.direction = SF_RING_IN;
    e.method = r->method_name;
    e.url = r->unparsed_uri;
    e.status = r->headers_out.status;
    e.duration = (ngx_msec_t) ngx_max(ms, 0);
    e.response.data = g->response;
    e.response.len = g->response_len;

    if (ngx_http_siteflow_guard_log_body(r, &e.request) != NGX_OK) {
        ngx_str_null(&e.request);
    }

    if (g->order_known && e.request.len == (size_t) g->body_len
        && e.request.len <= ngx_http_siteflow_log_body_max(r))
    {
        /* the validation read this very body */
        e.order_id = g->order_id;

    } else {
        ngx_http_siteflow_guard_order_id(r, &e.request, &e.order_id);
    }

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    ngx_http_siteflow_log_write(sscf, &e);

    return NGX_OK;
}


/*
 * The "orderNumber" of a shipment request, for the log's order filter:
 * read from the text, without building a JSON tree (sf_ship.c).
 */

static void
ngx_http_siteflow_guard_order_id(ngx_http_request_t *r, ngx_str_t *body,
    ngx_str_t *order_id)
{
    ngx_str_null(order_id);

    if (body->len == 0 || body->len > ngx_http_siteflow_log_body_max(r)) {
        return;
    }

    order_id->data = ngx_pnalloc(r->pool, SF_RING_MAX_ORDER_ID);
    if (order_id->data == NULL) {
        return;
    }

    order_id->len = sf_ship_order_number((const char *) body->data,
                                         body->len,
                                         (char *) order_id->data,
                                         SF_RING_MAX_ORDER_ID);
}


/* the first siteflow_log_body_max + 1 bytes of the request body */

static ngx_int_t
ngx_http_siteflow_guard_log_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        cap, n;
    ssize_t       got;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cap = ngx_http_siteflow_log_body_max(r) + 1;

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {

        /* one buffer in memory (the usual case): no copy */

        body->data = cl->buf->pos;
        body->len = ngx_min((size_t) (cl->buf->last - cl->buf->pos), cap);

        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, cap);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl && body->len < cap; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = (size_t) ngx_min(b->file_last - b->file_pos,
                                 (off_t) (cap - body->len));

            got = ngx_read_file(b->file, p + body->len, n, b->file_pos);

            if (got != (ssize_t) n) {
                return NGX_ERROR;
            }

            body->len += n;
            continue;
        }

        n = ngx_min((size_t) (b->last - b->pos), cap - body->len);
        ngx_memcpy(p + body->len, b->pos, n);
        body->len += n;
    }

    return NGX_OK;
}


/*
 * Response nonces are drawn from RAND_bytes() in batches: one call per
 * NGX_HTTP_SITEFLOW_RAND_BATCH responses.  The batch belongs to the
 * process that drew it (a forked worker draws its own), and every nonce
 * handed out is wiped from it.
 */

static ngx_int_t
ngx_http_siteflow_response_nonce(u_char *out)
{
    u_char  *p;

    static ngx_pid_t  pid;
    static size_t     left;
    static u_char     batch[NGX_HTTP_SITEFLOW_RESPONSE_NONCE_BYTES
                            * NGX_HTTP_SITEFLOW_RAND_BATCH];

    if (left < NGX_HTTP_SITEFLOW_RESPONSE_NONCE_BYTES || pid != ngx_pid) {

        if (RAND_bytes(batch, sizeof(batch)) != 1) {
            left = 0;
            return NGX_ERROR;
        }

        left = sizeof(batch);
        pid = ngx_pid;
    }

    p = batch + sizeof(batch) - left;
    left -= NGX_HTTP_SITEFLOW_RESPONSE_NONCE_BYTES;

    ngx_hex_dump(out, p, NGX_HTTP_SITEFLOW_RESPONSE_NONCE_BYTES);
    ngx_explicit_memzero(p, NGX_HTTP_SITEFLOW_RESPONSE_NONCE_BYTES);

    return NGX_OK;
}
