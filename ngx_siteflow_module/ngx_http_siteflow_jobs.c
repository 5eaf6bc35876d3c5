
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_order.h"
#include "ngx_http_siteflow_jobs.h"
#include "ngx_http_siteflow_log.h"
#include "ngx_http_siteflow_storefronts.h"
#include "sf_job.h"
#include "sf_json.h"
#include "sf_json_tree.h"
#include "sf_path.h"
#include "sf_qrec.h"
#include "sf_ring.h"
#include "sf_transform.h"


/*
 * What the jobs do, one HTTP call at a time, in the worker that claimed
 * the job (worker 0, or any of siteflow_queue_workers).
 *
 * order:  fetch the order from PrintNow (unless the job carries it) ->
 *         decide (trigger status, already sent) -> transform ->
 *         look up by sourceOrderId if a create may already be out ->
 *         validate -> create -> record the SiteFlow id in the index
 * cancel: PUT {api}/order/{siteflow id}/cancel
 * update: the PrintNow PATCH calls the postback handler prepared, in
 *         order; the number done is kept in the results, so a retry
 *         resumes after the last one that succeeded
 *
 * Every outcome goes through sf_job_classify(): 2xx done, 4xx failed
 * (the answer kept for the operator), the rest retried with backoff; an
 * ambiguous create (the request went out, no clear answer) is retried
 * with a look-up first.
 */


#define NGX_HTTP_SITEFLOW_STEP_FETCH      0
#define NGX_HTTP_SITEFLOW_STEP_LOOKUP     1
#define NGX_HTTP_SITEFLOW_STEP_VALIDATE   2
#define NGX_HTTP_SITEFLOW_STEP_CREATE     3
#define NGX_HTTP_SITEFLOW_STEP_CANCEL     4
#define NGX_HTTP_SITEFLOW_STEP_UPDATE     5


/* for the debug log, by step */

static const char  *ngx_http_siteflow_step_names[] = {
    "fetch", "lookup", "validate", "create", "cancel", "update"
};


/* the call out, kept for the Site Flow Log until its answer */

typedef struct {
    const char                    *method;
    ngx_str_t                      path;
    ngx_str_t                      body;
    ngx_uint_t                     upstream;     /* as in _call() */
} ngx_http_siteflow_call_t;


typedef struct {
    ngx_http_siteflow_call_t       call_out;
    json_t                        *order;        /* PrintNow's */
    json_t                        *siteflow;     /* the SiteFlow order */
    char                          *body;         /* its JSON text */
    ngx_str_t                      source_id;
    ngx_uint_t                     call;         /* update: next call */
} ngx_http_siteflow_work_t;


static void ngx_http_siteflow_order_next(ngx_http_siteflow_run_t *run);
static ngx_int_t ngx_http_siteflow_maybe_sent_id(
    ngx_http_siteflow_run_t *run);
static void ngx_http_siteflow_order_decide(ngx_http_siteflow_run_t *run);
static void ngx_http_siteflow_order_transform(ngx_http_siteflow_run_t *run);
static void ngx_http_siteflow_cancel_start(ngx_http_siteflow_run_t *run);
static void ngx_http_siteflow_update_next(ngx_http_siteflow_run_t *run);
static ngx_int_t ngx_http_siteflow_call(ngx_http_siteflow_run_t *run,
    ngx_uint_t step, ngx_uint_t siteflow, const char *method,
    ngx_str_t *path, ngx_str_t *body);
static void ngx_http_siteflow_call_done(ngx_http_siteflow_xfer_t *x);
static void ngx_http_siteflow_ready_handler(ngx_event_t *ev);
static void ngx_http_siteflow_work_cleanup(void *data);
static void ngx_http_siteflow_call_next(ngx_http_siteflow_xfer_t *x);
static void ngx_http_siteflow_call_log(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x);
static sf_job_outcome_t ngx_http_siteflow_call_outcome(
    ngx_http_siteflow_run_t *run, ngx_http_siteflow_xfer_t *x);
static void ngx_http_siteflow_call_not_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x, sf_job_outcome_t outcome, u_char *text);
static void ngx_http_siteflow_step_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x);
static void ngx_http_siteflow_fetch_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x);
static void ngx_http_siteflow_fetch_unreadable(ngx_http_siteflow_run_t *run,
    json_error_t *err);
static void ngx_http_siteflow_end(ngx_http_siteflow_run_t *run,
    ngx_int_t state, const char *fmt, ...);
static void ngx_http_siteflow_end_index(ngx_http_siteflow_run_t *run,
    ngx_int_t state, ngx_http_siteflow_index_t *idx, const char *fmt, ...);
static void ngx_http_siteflow_end_maybe_sent(ngx_http_siteflow_run_t *run,
    const char *fmt, ...);
static void ngx_http_siteflow_end_va(ngx_http_siteflow_run_t *run,
    ngx_int_t state, ngx_http_siteflow_index_t *idx, ngx_uint_t maybe_sent,
    const char *fmt, va_list args);
static ngx_int_t ngx_http_siteflow_siteflow_id(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x, ngx_str_t *id);
static void ngx_http_siteflow_record_sent(ngx_http_siteflow_run_t *run,
    ngx_str_t *siteflow_id, const char *how);
static u_char *ngx_http_siteflow_answer_text(ngx_http_siteflow_xfer_t *x,
    u_char *buf, size_t size);
static ngx_int_t ngx_http_siteflow_path(ngx_http_siteflow_run_t *run,
    ngx_str_t *out, const char *prefix, ngx_str_t *id, const char *what,
    const char *suffix);
static ngx_int_t ngx_http_siteflow_json_str(json_t *v, ngx_str_t *s,
    ngx_pool_t *pool);


void
ngx_http_siteflow_job_start(ngx_http_siteflow_run_t *run)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_siteflow_work_t  *w;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, run->log, 0,
                   "siteflow job: %uL %s job of order \"%V\" (%V) starts",
                   run->id, ngx_http_siteflow_kind_name(run->kind),
                   &run->order_id, &run->storefront);

    run->sscf = ngx_http_siteflow_storefront(&run->storefront);

    if (run->sscf == NULL) {
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "storefront \"%V\" is no longer configured",
                              &run->storefront);
        return;
    }

    w = ngx_pcalloc(run->pool, sizeof(ngx_http_siteflow_work_t));
    if (w == NULL) {
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
        return;
    }

    cln = ngx_pool_cleanup_add(run->pool, 0);
    if (cln == NULL) {
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
        return;
    }

    /* what the work holds goes with the run, also when it is dropped */

    cln->handler = ngx_http_siteflow_work_cleanup;
    cln->data = w;

    run->data = w;

    switch (run->kind) {

    case NGX_HTTP_SITEFLOW_JOB_ORDER:
        w->order = json_object_get(run->job, "order");

        if (json_is_object(w->order)) {
            json_incref(w->order);
            ngx_http_siteflow_order_decide(run);
            return;
        }

        w->order = NULL;

        run->step = NGX_HTTP_SITEFLOW_STEP_FETCH;
        ngx_http_siteflow_order_next(run);
        return;

    case NGX_HTTP_SITEFLOW_JOB_CANCEL:
        ngx_http_siteflow_cancel_start(run);
        return;

    case NGX_HTTP_SITEFLOW_JOB_UPDATE:
        w->call = (ngx_uint_t) json_integer_value(
                                  json_object_get(run->results, "calls_done"));
        ngx_http_siteflow_update_next(run);
        return;

    default:
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED, "unknown job kind %ui",
                              run->kind);
        return;
    }
}


/* the order job's HTTP steps */

static void
ngx_http_siteflow_order_next(ngx_http_siteflow_run_t *run)
{
    ngx_str_t                      path, body;
    ngx_http_siteflow_work_t      *w;
    ngx_http_siteflow_srv_conf_t  *sscf;

    w = run->data;
    sscf = run->sscf;

    switch (run->step) {

    case NGX_HTTP_SITEFLOW_STEP_FETCH:
        if (ngx_http_siteflow_path(run, &path, "/api/v2/order/",
                                   &run->order_id, "the PrintNow order id",
                                   "")
            != NGX_OK)
        {
            return;
        }

        (void) ngx_http_siteflow_call(run, run->step, 0, "GET", &path, NULL);
        return;

    case NGX_HTTP_SITEFLOW_STEP_LOOKUP:
        if (ngx_http_siteflow_path(run, &path, "/order/bysourceid/",
                                   &w->source_id, "the sourceOrderId", "")
            != NGX_OK)
        {
            return;
        }

        (void) ngx_http_siteflow_call(run, run->step, 1, "GET", &path, NULL);
        return;

    case NGX_HTTP_SITEFLOW_STEP_VALIDATE:
        ngx_str_set(&path, "/order/validate");
        body.data = (u_char *) w->body;
        body.len = ngx_strlen(w->body);

        (void) ngx_http_siteflow_call(run, run->step, 1, "POST", &path,
                                      &body);
        return;

    case NGX_HTTP_SITEFLOW_STEP_CREATE:
        ngx_str_set(&path, "/order");
        body.data = (u_char *) w->body;
        body.len = ngx_strlen(w->body);

        (void) ngx_http_siteflow_call(run, run->step, 2, "POST", &path,
                                      &body);
        return;
    }

    (void) sscf;

    ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
}


/* with the PrintNow order in hand: send it or not, and what */

/*
 * a create of this job may already be out (an ambiguous answer, or a
 * restart): the order is looked up by its sourceOrderId, the one recorded
 * or, if none was, the one the mapping gives now
 */

static ngx_int_t
ngx_http_siteflow_maybe_sent_id(ngx_http_siteflow_run_t *run)
{
    json_t                    *src;
    ngx_int_t                  rc;
    ngx_http_siteflow_work_t  *w;
    char                       sid[SF_TRANSFORM_SOURCE_ID_MAX + 1];

    w = run->data;

    src = json_object_get(run->results, "sourceOrderId");

    if (json_is_string(src)) {
        rc = ngx_http_siteflow_json_str(src, &w->source_id, run->pool);

    } else if (sf_transform_source_order_id(run->sscf->mapping, w->order, sid,
                                            sizeof(sid))
               == SF_TRANSFORM_OK)
    {
        w->source_id.len = ngx_strlen(sid);
        w->source_id.data = ngx_pnalloc(run->pool, w->source_id.len + 1);

        if (w->source_id.data) {
            ngx_memcpy(w->source_id.data, sid, w->source_id.len + 1);
        }

        rc = w->source_id.data ? NGX_OK : NGX_ERROR;

    } else {
        rc = NGX_DECLINED;
    }

    if (rc == NGX_OK && w->source_id.len) {
        return NGX_OK;
    }

    ngx_str_null(&w->source_id);

    return NGX_DECLINED;
}


static void
ngx_http_siteflow_order_decide(ngx_http_siteflow_run_t *run)
{
    char                           why[1024];
    size_t                         len;
    json_t                        *v;
    sf_order_facts_t               f;
    sf_order_decision_t            d;
    ngx_http_siteflow_work_t      *w;
    ngx_http_siteflow_index_t      idx;
    ngx_http_siteflow_srv_conf_t  *sscf;

    w = run->data;
    sscf = run->sscf;

    ngx_memzero(&f, sizeof(sf_order_facts_t));

    f.force = json_is_true(json_object_get(run->job, "force"));
    f.manual = json_is_true(json_object_get(run->job, "manual"));

    /* the duplicate guard reads the index; an admin send may force */

    if (f.force
        || ngx_http_siteflow_index_get(&run->storefront, &run->order_id, NULL,
                                       run->pool, &idx)
           != NGX_OK)
    {
        idx.state = NGX_HTTP_SITEFLOW_IDX_QUEUED;
        idx.updated_ms = 0;
        ngx_str_null(&idx.siteflow_id);
    }

    ngx_http_siteflow_order_facts(&f, SF_ORDER_AT_JOB, sscf, &idx);

    /*
     * not in the index, but the index forgot orders like it
     * (index_retention): SiteFlow is the truth, look it up first
     */

    if (!f.force && !run->maybe_sent && f.index == SF_ORDER_NOT_SENT
        && ngx_http_siteflow_index_forgot(&run->order_id))
    {
        run->maybe_sent = 1;
    }

    if (run->maybe_sent && w->source_id.len == 0) {
        f.lookup = (ngx_http_siteflow_maybe_sent_id(run) == NGX_OK);
    }

    v = json_object_get(w->order, "status");

    if (json_is_string(v)) {
        f.status = json_string_value(v);
        f.status_len = json_string_length(v);
    }

    d = sf_order_decide(&f, why, sizeof(why), &len);

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, run->log, 0,
                   "siteflow job: %uL order \"%V\" %s: %*s",
                   run->id, &run->order_id, sf_order_decision_name(d),
                   len, why);

    switch (d) {

    case SF_ORDER_SEND:
        break;

    case SF_ORDER_LOOKUP:
        run->step = NGX_HTTP_SITEFLOW_STEP_LOOKUP;
        ngx_http_siteflow_order_next(run);
        return;

    default:
        ngx_http_siteflow_end(run, SF_QSTATE_SKIPPED, "%*s", len, why);
        return;
    }

    ngx_http_siteflow_order_transform(run);
}


/* the PrintNow order becomes the SiteFlow order, then it is sent */

static void
ngx_http_siteflow_order_transform(ngx_http_siteflow_run_t *run)
{
    int                            rc;
    char                           reason[SF_TRANSFORM_REASON_SIZE];
    char                           dest[256];
    json_t                        *src;
    ngx_http_siteflow_work_t      *w;
    ngx_http_siteflow_srv_conf_t  *sscf;

    w = run->data;
    sscf = run->sscf;

    if (sscf->destination.len) {
        ngx_cpystrn((u_char *) dest, sscf->destination.data,
                    ngx_min(sscf->destination.len + 1, sizeof(dest)));

    } else {
        dest[0] = '\0';
    }

    reason[0] = '\0';

    rc = sf_transform_order(sscf->mapping, w->order,
                            dest[0] ? dest : NULL, &w->siteflow,
                            reason, sizeof(reason));

    switch (rc) {

    case SF_TRANSFORM_OK:
        break;

    case SF_TRANSFORM_SKIP:
        ngx_http_siteflow_end(run, SF_QSTATE_SKIPPED, "%s", reason);
        return;

    case SF_TRANSFORM_INVALID:
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "the PrintNow order cannot be sent: %s",
                              reason);
        return;

    default:
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING,
                              "the transform failed: %s", reason);
        return;
    }

    src = json_object_get(json_object_get(w->siteflow, "orderData"),
                          "sourceOrderId");

    if (ngx_http_siteflow_json_str(src, &w->source_id, run->pool) != NGX_OK
        || w->source_id.len == 0)
    {
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "the SiteFlow order has no sourceOrderId");
        return;
    }

    w->body = sf_json_dump(w->siteflow);

    if (w->body == NULL) {
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
        return;
    }

    (void) json_object_set_new(run->results, "sourceOrderId",
                               json_stringn((char *) w->source_id.data,
                                            w->source_id.len));

    run->step = run->maybe_sent ? NGX_HTTP_SITEFLOW_STEP_LOOKUP
                                : NGX_HTTP_SITEFLOW_STEP_VALIDATE;

    ngx_http_siteflow_order_next(run);
}


static void
ngx_http_siteflow_cancel_start(ngx_http_siteflow_run_t *run)
{
    ngx_str_t                  path, body;
    ngx_http_siteflow_index_t  idx;

    if (ngx_http_siteflow_index_get(&run->storefront, &run->order_id, NULL,
                                    run->pool, &idx)
        != NGX_OK
        || idx.state == NGX_HTTP_SITEFLOW_IDX_QUEUED)
    {
        ngx_http_siteflow_end(run, SF_QSTATE_SKIPPED,
                              "the order was never sent to SiteFlow");
        return;
    }

    if (idx.state == NGX_HTTP_SITEFLOW_IDX_CANCELLED) {
        ngx_http_siteflow_end(run, SF_QSTATE_SKIPPED,
                              "the order is already cancelled in SiteFlow");
        return;
    }

    if (idx.siteflow_id.len == 0) {
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "SiteFlow gave no id when the order was "
                              "created, so it cannot be cancelled here; "
                              "cancel it in SiteFlow");
        return;
    }

    if (ngx_http_siteflow_path(run, &path, "/order/", &idx.siteflow_id,
                               "SiteFlow's order id", "/cancel")
        != NGX_OK)
    {
        return;
    }

    ngx_str_set(&body, "");

    run->step = NGX_HTTP_SITEFLOW_STEP_CANCEL;

    (void) ngx_http_siteflow_call(run, run->step, 1, "PUT", &path, &body);
}


static void
ngx_http_siteflow_update_next(ngx_http_siteflow_run_t *run)
{
    char                      *text;
    json_t                    *calls, *call, *v;
    ngx_str_t                  path, body, method;
    ngx_http_siteflow_work_t  *w;
    ngx_http_siteflow_index_t  idx;

    w = run->data;

    calls = json_object_get(run->job, "calls");

    if (!json_is_array(calls)) {
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "the job has no PrintNow calls");
        return;
    }

    if (w->call >= json_array_size(calls)) {

        /* remembered, so that PrintNow's order_updated echo is known */

        if (ngx_http_siteflow_index_get(&run->storefront, &run->order_id,
                                        NULL, run->pool, &idx)
            == NGX_OK)
        {
            idx.updated_ms = ngx_http_siteflow_now_ms();
            ngx_http_siteflow_end_index(run, SF_QSTATE_DONE, &idx, "");
            return;
        }

        ngx_http_siteflow_end(run, SF_QSTATE_DONE, "");
        return;
    }

    call = json_array_get(calls, w->call);

    if (ngx_http_siteflow_json_str(json_object_get(call, "method"), &method,
                                   run->pool)
        != NGX_OK
        || ngx_http_siteflow_json_str(json_object_get(call, "path"), &path,
                                      run->pool)
           != NGX_OK)
    {
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "a PrintNow call of the job is malformed");
        return;
    }

    v = json_object_get(call, "body");
    text = v ? json_dumps(v, JSON_COMPACT) : NULL;

    body.len = text ? ngx_strlen(text) : 0;
    body.data = ngx_pnalloc(run->pool, body.len + 1);

    if (body.data == NULL) {
        free(text);
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
        return;
    }

    ngx_memcpy(body.data, text, body.len);
    free(text);

    run->step = NGX_HTTP_SITEFLOW_STEP_UPDATE;

    (void) ngx_http_siteflow_call(run, run->step, 0,
                                  (const char *) method.data, &path, &body);
}


/*
 * one HTTP call of a job; siteflow: 0 PrintNow, 1 SiteFlow, 2 SiteFlow's
 * create endpoint
 */

static ngx_int_t
ngx_http_siteflow_call(ngx_http_siteflow_run_t *run, ngx_uint_t step,
    ngx_uint_t siteflow, const char *method, ngx_str_t *path,
    ngx_str_t *body)
{
    ngx_int_t                      rc;
    ngx_str_t                      empty;
    ngx_http_siteflow_work_t      *w;
    ngx_http_siteflow_xfer_t      *x;
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = run->sscf;

    if (step == NGX_HTTP_SITEFLOW_STEP_CREATE
        && !ngx_http_siteflow_queue_may_create(run))
    {
        ngx_log_error(NGX_LOG_WARN, run->log, 0,
                      "siteflow: job %uL of order \"%V\": the create was "
                      "not sent, the job's lease could not be renewed; it "
                      "is tried again", run->id, &run->order_id);

        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING,
                              "the create was not sent: the job's lease "
                              "may go to another edge (the queue's "
                              "database did not renew it)");
        return NGX_ERROR;
    }

    x = ngx_http_siteflow_xfer_create(run->log, &sscf->xfer);
    if (x == NULL) {
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
        return NGX_ERROR;
    }

    if (body == NULL) {
        ngx_str_set(&empty, "");
        body = &empty;
    }

    if (siteflow) {
        rc = ngx_http_siteflow_upstream_siteflow(x,
                 siteflow == 2 ? &sscf->api_create : &sscf->api,
                 method, path, body);

    } else {
        rc = ngx_http_siteflow_upstream_printnow(x, &sscf->printnow, method,
                                                 path, body);
    }

    if (rc != NGX_OK) {
        ngx_http_siteflow_xfer_destroy(x);
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "cannot build the request %s %V", method, path);
        return NGX_ERROR;
    }

    x->handler = ngx_http_siteflow_call_done;
    x->data = run;

    if (step == NGX_HTTP_SITEFLOW_STEP_CREATE) {
        ngx_http_siteflow_xfer_fresh(x);
    }

    /* kept for the log: the method, the URL, the request body */

    w = run->data;

    w->call_out.method = method;
    w->call_out.path = *path;
    w->call_out.body = *body;
    w->call_out.upstream = siteflow;

    run->xfer = x;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, run->log, 0,
                   "siteflow job: %uL %s: %s %V",
                   run->id, ngx_http_siteflow_step_names[step], method, path);

    rc = ngx_http_siteflow_xfer_start(x);

    if (rc != NGX_OK) {
        run->xfer = NULL;
        ngx_http_siteflow_xfer_destroy(x);
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING,
                              rc == NGX_DECLINED
                              ? "deliveries are stopped: the worker is "
                                "exiting or libcurl lacks AsynchDNS"
                              : "the transfer could not start");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * An answer is not acted on at once: when many transfers end together
 * (an outage ends, a slow upstream answers 500 of them), going on with
 * each at once would hold the event loop for all of them.  Answers wait
 * in a queue and at most NGX_HTTP_SITEFLOW_READY_BATCH are taken per
 * event loop iteration, the rest after nginx has looked at its other
 * connections (ngx_posted_next_events).
 */

#define NGX_HTTP_SITEFLOW_READY_BATCH  4

static ngx_queue_t       ngx_http_siteflow_ready;
static ngx_event_t       ngx_http_siteflow_ready_event;
static ngx_connection_t  ngx_http_siteflow_ready_conn;


static void
ngx_http_siteflow_call_done(ngx_http_siteflow_xfer_t *x)
{
    ngx_http_siteflow_run_t *run = x->data;

    if (ngx_http_siteflow_ready_event.handler == NULL) {
        ngx_queue_init(&ngx_http_siteflow_ready);
        ngx_http_siteflow_ready_conn.fd = (ngx_socket_t) -1;
        ngx_http_siteflow_ready_event.handler = ngx_http_siteflow_ready_handler;
        ngx_http_siteflow_ready_event.data = &ngx_http_siteflow_ready_conn;
        ngx_http_siteflow_ready_event.log = ngx_cycle->log;
    }

    ngx_queue_insert_tail(&ngx_http_siteflow_ready, &run->ready);

    if (!ngx_http_siteflow_ready_event.posted) {
        ngx_post_event(&ngx_http_siteflow_ready_event, &ngx_posted_events);
    }
}


static void
ngx_http_siteflow_ready_handler(ngx_event_t *ev)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_http_siteflow_run_t  *run;

    for (n = 0; n < NGX_HTTP_SITEFLOW_READY_BATCH; n++) {

        if (ngx_queue_empty(&ngx_http_siteflow_ready)) {
            return;
        }

        q = ngx_queue_head(&ngx_http_siteflow_ready);
        ngx_queue_remove(q);

        run = ngx_queue_data(q, ngx_http_siteflow_run_t, ready);

        ngx_http_siteflow_call_next(run->xfer);
    }

    if (!ngx_queue_empty(&ngx_http_siteflow_ready) && !ev->posted) {
        ngx_post_event(ev, &ngx_posted_next_events);
    }
}


static void
ngx_http_siteflow_call_next(ngx_http_siteflow_xfer_t *x)
{
    ngx_http_siteflow_run_t *run = x->data;

    sf_job_outcome_t  outcome;
    u_char            text[512];

    ngx_http_siteflow_call_log(run, x);

    outcome = ngx_http_siteflow_call_outcome(run, x);

    (void) ngx_http_siteflow_answer_text(x, text, sizeof(text));

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, run->log, 0,
                   "siteflow job: %uL %s answered: %s, %s: %s",
                   run->id, ngx_http_siteflow_step_names[run->step],
                   sf_net_error_name(x->net), sf_job_outcome_name(outcome),
                   text);

    if (outcome != SF_JOB_DONE) {
        ngx_http_siteflow_call_not_done(run, x, outcome, text);
        return;
    }

    ngx_http_siteflow_step_done(run, x);
}


/* the Site Flow Log: request and response, never the headers */

static void
ngx_http_siteflow_call_log(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x)
{
    u_char                         *p;
    ngx_str_t                      *base;
    ngx_http_siteflow_call_t       *call;
    ngx_http_siteflow_work_t       *w;
    ngx_http_siteflow_log_entry_t   e;
    u_char                          text[512];
    u_char                          url[2048];

    w = run->data;
    call = &w->call_out;

    switch (call->upstream) {
    case 0:
        base = &run->sscf->printnow.base;
        break;
    case 2:
        base = &run->sscf->api_create.base;
        break;
    default:
        base = &run->sscf->api.base;
        break;
    }

    ngx_memzero(&e, sizeof(ngx_http_siteflow_log_entry_t));

    e.direction = SF_RING_OUT;
    e.method.data = (u_char *) call->method;
    e.method.len = call->method ? ngx_strlen(call->method) : 0;

    p = ngx_snprintf(url, sizeof(url), "%V%V", base, &call->path);
    e.url.data = url;
    e.url.len = p - url;

    e.status = x->status;
    e.duration = x->duration;
    e.order_id = run->order_id;
    e.request = call->body;

    if (x->net == SF_NET_OK) {
        e.response.data = x->response;
        e.response.len = x->response_len;

    } else {
        p = ngx_snprintf(text, sizeof(text), "(no answer: %s%s%s)",
                         sf_net_error_name(x->net),
                         x->net == SF_NET_TLS && x->error[0] ? ": " : "",
                         x->net == SF_NET_TLS ? x->error : (u_char *) "");
        e.response.data = text;
        e.response.len = p - text;
    }

    ngx_http_siteflow_log_write(run->sscf, &e);

    /* the histograms: 0 SiteFlow, 1 PrintNow */

    ngx_http_siteflow_observe_latency(call->upstream ? 0 : 1, x->duration);
}


/*
 * The outcome of a call (sf_job_classify), counted; an answer that is not
 * a server error closes the breaker
 */

static sf_job_outcome_t
ngx_http_siteflow_call_outcome(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x)
{
    sf_job_outcome_t           outcome;
    ngx_http_siteflow_work_t  *w;

    outcome = sf_job_classify(x->status, x->net, x->sent);

    switch (outcome) {
    case SF_JOB_DONE:
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_DELIVERY_DONE);
        break;
    case SF_JOB_FAIL:
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_DELIVERY_FAILED);
        break;
    case SF_JOB_AMBIGUOUS:
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_DELIVERY_AMBIGUOUS);
        break;
    default:
        ngx_http_siteflow_counter(NGX_HTTP_SITEFLOW_CNT_DELIVERY_RETRY);
        break;
    }

    w = run->data;

    ngx_http_siteflow_breaker_report(run, w->call_out.upstream != 0,
        x->net == SF_NET_OK && x->status < 500 && x->status != 429);

    /*
     * a 2xx whose answer is over siteflow_max_response: the call worked,
     * its answer cannot be read; a create is resolved by the look-up, a
     * fetch or a look-up is tried again (raising siteflow_max_response
     * and reloading lets it through), the others did what they had to
     */

    if (x->net == SF_NET_TOO_LARGE && x->status >= 200 && x->status <= 299) {
        switch (run->step) {
        case NGX_HTTP_SITEFLOW_STEP_CREATE:
            return SF_JOB_AMBIGUOUS;
        case NGX_HTTP_SITEFLOW_STEP_FETCH:
        case NGX_HTTP_SITEFLOW_STEP_LOOKUP:
            return SF_JOB_RETRY;
        default:
            return SF_JOB_DONE;
        }
    }

    /* a look-up's 404 is an answer: the order is not there */

    if (run->step == NGX_HTTP_SITEFLOW_STEP_LOOKUP
        && x->net == SF_NET_OK && x->status == 404)
    {
        return SF_JOB_DONE;
    }

    return outcome;
}


/* a call to retry, to resolve by the look-up, or refused */

static void
ngx_http_siteflow_call_not_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x, sf_job_outcome_t outcome, u_char *text)
{
    const char  *what;

    run->xfer = NULL;

    if (outcome == SF_JOB_RETRY
        || (outcome == SF_JOB_AMBIGUOUS
            && run->step != NGX_HTTP_SITEFLOW_STEP_CREATE))
    {
        ngx_http_siteflow_xfer_destroy(x);
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "%s", text);
        return;
    }

    if (outcome == SF_JOB_AMBIGUOUS) {
        /* the create may have happened: look it up before sending again */
        ngx_http_siteflow_xfer_destroy(x);
        ngx_http_siteflow_end_maybe_sent(run,
                                         "the create may have reached "
                                         "SiteFlow (%s); the order is "
                                         "looked up before it is sent "
                                         "again", text);
        return;
    }

    /* SF_JOB_FAIL */

    switch (run->step) {
    case NGX_HTTP_SITEFLOW_STEP_FETCH:
        what = "the order fetch from PrintNow failed";
        break;
    case NGX_HTTP_SITEFLOW_STEP_VALIDATE:
        what = "SiteFlow validation failed, nothing was created";
        break;
    case NGX_HTTP_SITEFLOW_STEP_CREATE:
        what = "SiteFlow refused the order";
        break;
    case NGX_HTTP_SITEFLOW_STEP_CANCEL:
        what = "SiteFlow refused the cancel";
        break;
    default:
        what = "the call was refused";
        break;
    }

    ngx_http_siteflow_end(run, SF_QSTATE_FAILED, "%s: %s", what, text);

    ngx_http_siteflow_xfer_destroy(x);
}


/* a call done: the job's next step */

static void
ngx_http_siteflow_step_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x)
{
    ngx_str_t                  id;
    ngx_http_siteflow_work_t  *w;
    ngx_http_siteflow_index_t  idx;

    w = run->data;

    switch (run->step) {

    case NGX_HTTP_SITEFLOW_STEP_FETCH:
        ngx_http_siteflow_fetch_done(run, x);
        return;

    case NGX_HTTP_SITEFLOW_STEP_LOOKUP:
        if (x->status != 404
            && ngx_http_siteflow_siteflow_id(run, x, &id) == NGX_OK
            && id.len)
        {
            run->xfer = NULL;
            ngx_http_siteflow_xfer_destroy(x);
            ngx_http_siteflow_record_sent(run, &id, "found by the look-up");
            return;
        }

        run->xfer = NULL;
        ngx_http_siteflow_xfer_destroy(x);

        /* not in SiteFlow: nothing was created; decide as for a new job */

        run->maybe_sent = 0;

        if (w->body == NULL) {
            ngx_http_siteflow_order_decide(run);
            return;
        }

        run->step = NGX_HTTP_SITEFLOW_STEP_VALIDATE;
        ngx_http_siteflow_order_next(run);
        return;

    case NGX_HTTP_SITEFLOW_STEP_VALIDATE:
        run->xfer = NULL;
        ngx_http_siteflow_xfer_destroy(x);

        run->step = NGX_HTTP_SITEFLOW_STEP_CREATE;
        ngx_http_siteflow_order_next(run);
        return;

    case NGX_HTTP_SITEFLOW_STEP_CREATE:
        if (ngx_http_siteflow_siteflow_id(run, x, &id) != NGX_OK) {
            ngx_str_set(&id, "");
        }

        run->xfer = NULL;
        ngx_http_siteflow_xfer_destroy(x);

        ngx_http_siteflow_record_sent(run, &id, "created");
        return;

    case NGX_HTTP_SITEFLOW_STEP_CANCEL:
        run->xfer = NULL;
        ngx_http_siteflow_xfer_destroy(x);

        if (ngx_http_siteflow_index_get(&run->storefront, &run->order_id,
                                        NULL, run->pool, &idx)
            == NGX_OK)
        {
            idx.state = NGX_HTTP_SITEFLOW_IDX_CANCELLED;
            ngx_http_siteflow_end_index(run, SF_QSTATE_DONE, &idx, "");
            return;
        }

        ngx_http_siteflow_end(run, SF_QSTATE_DONE, "");
        return;

    default: /* NGX_HTTP_SITEFLOW_STEP_UPDATE */
        run->xfer = NULL;
        ngx_http_siteflow_xfer_destroy(x);

        w->call++;
        (void) json_object_set_new(run->results, "calls_done",
                                   json_integer(w->call));

        ngx_http_siteflow_update_next(run);
        return;
    }
}


/* the PrintNow order fetched: an envelope {"order": {...}} or {"data": ...} */

static void
ngx_http_siteflow_fetch_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x)
{
    json_t                    *rv, *id;
    ngx_str_t                  got;
    json_error_t               err;
    ngx_http_siteflow_work_t  *w;

    w = run->data;
    ngx_str_null(&got);

    rv = sf_json_load((const char *) x->response, x->response_len, &err);

    run->xfer = NULL;
    ngx_http_siteflow_xfer_destroy(x);

    if (rv == NULL) {
        ngx_http_siteflow_fetch_unreadable(run, &err);
        return;
    }

    if (json_is_object(rv) && json_object_get(rv, "id") == NULL) {
        w->order = json_object_get(rv, "order");

        if (!json_is_object(w->order)) {
            w->order = json_object_get(rv, "data");
        }

        if (json_is_object(w->order)) {
            json_incref(w->order);
            json_decref(rv);
            rv = w->order;
        }
    }

    if (!json_is_object(rv)) {
        json_decref(rv);
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "PrintNow answered the order fetch with JSON "
                              "that is not an order object");
        return;
    }

    /*
     * the order's own id makes its sourceOrderId, and the index and the
     * duplicate guard know the order by the id it was fetched by: another
     * order (or another spelling of the id) would be created under a name
     * no guard knows
     */

    id = json_object_get(rv, "id");

    if (id != NULL && !json_is_null(id)
        && (ngx_http_siteflow_json_str(id, &got, run->pool) != NGX_OK
            || got.len != run->order_id.len
            || ngx_strncmp(got.data, run->order_id.data, got.len) != 0))
    {
        json_decref(rv);

        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "PrintNow answered the fetch of order \"%V\" "
                              "with an order whose id is %s%V%s: it is not "
                              "sent", &run->order_id,
                              got.len ? "\"" : "not a string or an integer",
                              &got, got.len ? "\"" : "");
        return;
    }

    w->order = rv;
    ngx_http_siteflow_order_decide(run);
}


/*
 * a 2xx answer to the order fetch that is not JSON (an HTML page of a
 * proxy, a cut body: it may go away, retried), or JSON this module cannot
 * hold (\u0000 in a string, an integer beyond 64 bits, nested too deep):
 * the same bytes come every time, a person must look (failed)
 */

static void
ngx_http_siteflow_fetch_unreadable(ngx_http_siteflow_run_t *run,
    json_error_t *err)
{
    ngx_int_t  state;

    switch (json_error_code(err)) {

    case json_error_out_of_memory:
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
        return;

    case json_error_null_character:
    case json_error_null_byte_in_key:
    case json_error_numeric_overflow:
    case json_error_stack_overflow:
        state = SF_QSTATE_FAILED;
        break;

    default:
        state = SF_QSTATE_RETRYING;
        break;
    }

    ngx_http_siteflow_end(run, state,
                          "PrintNow answered the order fetch with %s: %s "
                          "(line %d, column %d)",
                          state == SF_QSTATE_FAILED
                          ? "JSON this module cannot read"
                          : "something that is not JSON",
                          err->text, err->line, err->column);
}


static void
ngx_http_siteflow_record_sent(ngx_http_siteflow_run_t *run,
    ngx_str_t *siteflow_id, const char *how)
{
    ngx_http_siteflow_work_t   *w;
    ngx_http_siteflow_index_t   idx;

    w = run->data;

    ngx_memzero(&idx, sizeof(ngx_http_siteflow_index_t));

    idx.storefront = run->storefront;
    idx.order_id = run->order_id;
    idx.source_id = w->source_id;
    idx.siteflow_id = *siteflow_id;
    idx.state = NGX_HTTP_SITEFLOW_IDX_SENT;
    idx.sent_ms = ngx_http_siteflow_now_ms();

    (void) json_object_set_new(run->results, "siteflow_id",
                               json_stringn((char *) siteflow_id->data,
                                            siteflow_id->len));

    ngx_log_error(NGX_LOG_INFO, run->log, 0,
                  "siteflow: order \"%V\" of storefront \"%V\" %s in "
                  "SiteFlow as \"%V\" (job %uL)", &run->order_id,
                  &run->storefront, how, siteflow_id, run->id);

    ngx_http_siteflow_end_index(run, SF_QSTATE_DONE, &idx, "");
}


/* "_id" of an answer: {"_id"}, {"order": {"_id"}} or [{"_id"}] */

static ngx_int_t
ngx_http_siteflow_siteflow_id(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_xfer_t *x, ngx_str_t *id)
{
    json_t        *root, *v;
    json_error_t   err;
    ngx_int_t      rc;

    root = sf_json_load((const char *) x->response, x->response_len, &err);

    if (json_is_array(root)) {
        v = json_array_get(root, 0);

    } else if (json_is_object(json_object_get(root, "order"))) {
        v = json_object_get(root, "order");

    } else {
        v = root;
    }

    rc = ngx_http_siteflow_json_str(json_object_get(v, "_id"), id, run->pool);

    json_decref(root);

    return rc;
}


/* a short text of an answer for last_error */

static u_char *
ngx_http_siteflow_answer_text(ngx_http_siteflow_xfer_t *x, u_char *buf,
    size_t size)
{
    u_char        *p, *last;
    json_t        *root, *e, *m, *vs, *v;
    size_t         i;
    json_error_t   err;

    last = buf + size - 1;

    switch (x->net) {
    case SF_NET_OK:
        break;
    case SF_NET_CONNECT:
        p = ngx_slprintf(buf, last, "connection failed");
        goto done;
    case SF_NET_DNS:
        p = ngx_slprintf(buf, last, "the host name did not resolve");
        goto done;
    case SF_NET_TIMEOUT:
        p = ngx_slprintf(buf, last, "timed out%s",
                         x->sent ? " after the request was sent" : "");
        goto done;
    case SF_NET_RESET:
        p = ngx_slprintf(buf, last, "the connection was closed or reset%s",
                         x->sent ? " after the request was sent" : "");
        goto done;
    case SF_NET_TOO_LARGE:
        p = ngx_slprintf(buf, last, "the answer was larger than "
                         "siteflow_max_response (%uz bytes)",
                         x->max_response);
        goto done;
    case SF_NET_TLS:
        p = ngx_slprintf(buf, last, "TLS handshake or certificate "
                         "verification failed%s%s",
                         x->error[0] ? ": " : "", x->error);
        goto done;
    default:
        p = ngx_slprintf(buf, last, "the transfer failed (curl error %d)",
                         x->curl_code);
        goto done;
    }

    p = ngx_slprintf(buf, last, "HTTP %ui", x->status);

    root = sf_json_load((const char *) x->response, x->response_len, &err);

    e = json_object_get(root, "error");
    m = json_is_object(e) ? json_object_get(e, "message")
                          : json_object_get(root, "message");

    if (json_is_string(m)) {
        p = ngx_slprintf(p, last, ": %s", json_string_value(m));

    } else if (json_is_string(e)) {
        p = ngx_slprintf(p, last, ": %s", json_string_value(e));

    } else if (root == NULL && x->response_len) {
        p = ngx_slprintf(p, last, ": %*s",
                         ngx_min(x->response_len, (size_t) 200),
                         x->response);
    }

    vs = json_is_object(e) ? json_object_get(e, "validations") : NULL;

    json_array_foreach(vs, i, v) {
        p = ngx_slprintf(p, last, "; %s: %s",
                         json_string_value(json_object_get(v, "path"))
                         ? json_string_value(json_object_get(v, "path"))
                         : "",
                         json_string_value(json_object_get(v, "message"))
                         ? json_string_value(json_object_get(v, "message"))
                         : "");
    }

    json_decref(root);

done:

    *p = '\0';

    return p;
}


static void
ngx_http_siteflow_end(ngx_http_siteflow_run_t *run, ngx_int_t state,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ngx_http_siteflow_end_va(run, state, NULL, 0, fmt, args);
    va_end(args);
}


static void
ngx_http_siteflow_end_index(ngx_http_siteflow_run_t *run, ngx_int_t state,
    ngx_http_siteflow_index_t *idx, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ngx_http_siteflow_end_va(run, state, idx, 0, fmt, args);
    va_end(args);
}


static void
ngx_http_siteflow_end_maybe_sent(ngx_http_siteflow_run_t *run,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ngx_http_siteflow_end_va(run, SF_QSTATE_RETRYING, NULL, 1, fmt, args);
    va_end(args);
}


static void
ngx_http_siteflow_end_va(ngx_http_siteflow_run_t *run, ngx_int_t state,
    ngx_http_siteflow_index_t *idx, ngx_uint_t maybe_sent, const char *fmt,
    va_list args)
{
    u_char                       *p;
    size_t                        len;
    ngx_uint_t                    level;
    ngx_http_siteflow_work_t     *w;
    ngx_http_siteflow_outcome_t   out;
    u_char                        raw[1024];
    char                          msg[1024];

    p = ngx_vslprintf(raw, raw + sizeof(raw), fmt, args);

    /*
     * the job's error is journalled, and records take only UTF-8: an
     * upstream's answer in another charset has its bad bytes as U+FFFD,
     * a character the length limit cut is left out
     */

    len = sf_json_clean(msg, sizeof(msg), (char *) raw, p - raw,
                        SF_JSON_CLEAN_CUT);

    w = run->data;

    ngx_memzero(&out, sizeof(ngx_http_siteflow_outcome_t));

    out.state = state;
    out.error.data = (u_char *) msg;
    out.error.len = len;
    out.index = idx;

    /* a create that may be out stays "maybe sent" until it is resolved */
    out.maybe_sent = maybe_sent
                     || (run->maybe_sent && state == SF_QSTATE_RETRYING);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, run->log, 0,
                   "siteflow job: %uL ends %s%s: \"%V\"",
                   run->id, sf_qstate_name((int) state),
                   out.maybe_sent ? ", maybe sent" : "", &out.error);

    if (state == SF_QSTATE_FAILED || state == SF_QSTATE_SKIPPED) {
        level = (state == SF_QSTATE_FAILED) ? NGX_LOG_WARN : NGX_LOG_INFO;

        ngx_log_error(level, run->log, 0,
                      "siteflow: %s job %uL of order \"%V\" (%V) %s: %V",
                      ngx_http_siteflow_kind_name(run->kind), run->id,
                      &run->order_id, &run->storefront,
                      state == SF_QSTATE_FAILED ? "failed" : "skipped",
                      &out.error);
    }

    if (w) {
        ngx_http_siteflow_work_cleanup(w);
    }

    ngx_http_siteflow_queue_done(run, &out);
}


static void
ngx_http_siteflow_work_cleanup(void *data)
{
    ngx_http_siteflow_work_t  *w = data;

    if (w->order) {
        json_decref(w->order);
        w->order = NULL;
    }

    if (w->siteflow) {
        json_decref(w->siteflow);
        w->siteflow = NULL;
    }

    if (w->body) {
        free(w->body);
        w->body = NULL;
    }
}


/*
 * prefix + the id as one escaped path segment + suffix; an id that cannot
 * be a segment (empty, "." or "..") ends the job as failed: retrying
 * would not change it
 */

static ngx_int_t
ngx_http_siteflow_path(ngx_http_siteflow_run_t *run, ngx_str_t *out,
    const char *prefix, ngx_str_t *id, const char *what, const char *suffix)
{
    size_t         n, pos;
    u_char        *p;
    sf_path_rc_t   rc;

    n = ngx_strlen(prefix) + 3 * id->len + ngx_strlen(suffix) + 1;

    p = ngx_pnalloc(run->pool, n);
    if (p == NULL) {
        ngx_http_siteflow_end(run, SF_QSTATE_RETRYING, "out of memory");
        return NGX_ERROR;
    }

    pos = 0;

    rc = sf_path_append((char *) p, n, &pos, prefix);

    if (rc == SF_PATH_OK) {
        rc = sf_path_append_segment((char *) p, n, &pos,
                                    (const char *) id->data, id->len);
    }

    if (rc == SF_PATH_OK) {
        rc = sf_path_append((char *) p, n, &pos, suffix);
    }

    if (rc != SF_PATH_OK) {
        ngx_http_siteflow_end(run, SF_QSTATE_FAILED,
                              "%s \"%V\" %s: it cannot be put in a URL "
                              "path", what, id, sf_path_rc_text(rc));
        return NGX_DECLINED;
    }

    out->data = p;
    out->len = pos;

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_json_str(json_t *v, ngx_str_t *s, ngx_pool_t *pool)
{
    u_char  buf[NGX_INT64_LEN + 1];

    if (json_is_string(v)) {
        s->len = json_string_length(v);
        s->data = ngx_pnalloc(pool, s->len + 1);

        if (s->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(s->data, json_string_value(v), s->len);
        s->data[s->len] = '\0';

        return NGX_OK;
    }

    if (json_is_integer(v)) {
        s->len = ngx_sprintf(buf, "%L", (int64_t) json_integer_value(v))
                 - buf;
        s->data = ngx_pnalloc(pool, s->len + 1);

        if (s->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(s->data, buf, s->len);
        s->data[s->len] = '\0';

        return NGX_OK;
    }

    return NGX_DECLINED;
}
