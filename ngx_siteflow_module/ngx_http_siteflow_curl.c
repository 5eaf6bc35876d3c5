
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <curl/curl.h>
#include <openssl/err.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_curl.h"
#include "sf_json.h"
#include "sf_sig.h"


/*
 * libcurl inside nginx's event loop.
 *
 * One CURLM per worker.  Every socket libcurl opens is wrapped in an
 * ngx_connection_t whose read and write events are registered level
 * triggered, exactly as libcurl asks (CURLMOPT_SOCKETFUNCTION); libcurl's
 * single timeout is one nginx timer (CURLMOPT_TIMERFUNCTION).  Events and
 * the timer call curl_multi_socket_action() and then drain the finished
 * transfers, whose owners are called last, once the multi handle no longer
 * references them.  Name resolution must be asynchronous: without
 * AsynchDNS, transfers are refused rather than blocking the worker.
 *
 * The timer is cancelable while nothing is in flight, so an idle worker
 * exits at once on reload, and non-cancelable while transfers run, so they
 * may finish within worker_shutdown_timeout.
 *
 * libcurl's OpenSSL backend runs in this thread and may leave errors in
 * its OpenSSL error queue: a refused certificate, SSL_shutdown() of a
 * connection whose handshake failed.  nginx's own SSL connections in the
 * same worker expect the queue empty, and otherwise log "ignoring stale
 * global SSL error" alerts for a client that did nothing wrong.  So every
 * call into libcurl that can run OpenSSL code (initialisation, socket
 * actions, reading finished transfers, removing, freeing) is followed by
 * ngx_http_siteflow_curl_clear_ssl().  libcurl reports its own failures
 * through the error buffer, not the queue.
 */


typedef struct {
    CURLM                     *multi;
    ngx_event_t                timer;
    ngx_connection_t           dummy;     /* timer's data, fd -1 */
    ngx_log_t                 *log;
    ngx_uint_t                 running;
    ngx_queue_t                xfers;     /* in flight */
    ngx_queue_t                socks;     /* wrapped sockets, via c->queue */
    unsigned                   async_dns:1;
} ngx_http_siteflow_curl_t;


static size_t ngx_http_siteflow_curl_read(char *buf, size_t size, size_t n,
    void *data);
static int ngx_http_siteflow_curl_seek(void *data, curl_off_t offset,
    int origin);
static int ngx_http_siteflow_curl_socket(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_siteflow_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_siteflow_curl_event(ngx_event_t *ev);
static void ngx_http_siteflow_curl_timeout(ngx_event_t *ev);
static void ngx_http_siteflow_curl_drain(ngx_http_siteflow_curl_t *ctx);
static void ngx_http_siteflow_curl_detach(ngx_http_siteflow_curl_t *ctx,
    ngx_connection_t *c);
static void ngx_http_siteflow_curl_update_timer(
    ngx_http_siteflow_curl_t *ctx);
static int ngx_http_siteflow_curl_close(void *clientp, curl_socket_t fd);
static size_t ngx_http_siteflow_curl_write(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static sf_net_error_t ngx_http_siteflow_curl_net(CURLcode code,
    ngx_http_siteflow_xfer_t *x);
static void ngx_http_siteflow_xfer_cleanup(void *data);
static void ngx_http_siteflow_curl_log_tls(CURL *easy,
    ngx_http_siteflow_xfer_t *x);
static void ngx_http_siteflow_curl_warn_verify(ngx_cycle_t *cycle);
#if (NGX_DEBUG)
static int ngx_http_siteflow_curl_debug(CURL *easy, curl_infotype type,
    char *data, size_t size, void *userp);
#endif


static ngx_http_siteflow_curl_t  *ngx_http_siteflow_curl_ctx;

/*
 * Easy handles of finished transfers, reset, for the next ones: a handle
 * is a few kilobytes that libcurl allocates and clears, and frees with its
 * buffers; curl_easy_reset() keeps them.  Only while the multi handle
 * lives (the delivering worker), and freed in exit_process.
 */

#define NGX_HTTP_SITEFLOW_CURL_SPARE  32

static CURL       *ngx_http_siteflow_curl_spare[NGX_HTTP_SITEFLOW_CURL_SPARE];
static ngx_uint_t  ngx_http_siteflow_curl_nspare;


#define ngx_http_siteflow_curl_clear_ssl()  ERR_clear_error()


ngx_int_t
ngx_http_siteflow_curl_init_process(ngx_cycle_t *cycle,
    ngx_uint_t concurrency)
{
    curl_version_info_data    *info;
    ngx_http_siteflow_curl_t  *ctx;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_http_siteflow_curl_clear_ssl();
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "siteflow: curl_global_init() failed");
        return NGX_ERROR;
    }

    ngx_http_siteflow_curl_clear_ssl();

    /* the delivering worker builds and drops a tree per call */

    sf_json_alloc_install();

    ctx = ngx_pcalloc(cycle->pool, sizeof(ngx_http_siteflow_curl_t));
    if (ctx == NULL) {
        curl_global_cleanup();
        return NGX_ERROR;
    }

    info = curl_version_info(CURLVERSION_NOW);

    if (info->features & CURL_VERSION_ASYNCHDNS) {
        ctx->async_dns = 1;

    } else {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "siteflow: libcurl %s resolves names synchronously, "
                      "which would block nginx; deliveries are refused "
                      "until libcurl is built with AsynchDNS (c-ares or "
                      "the threaded resolver)", info->version);
    }

    ctx->multi = curl_multi_init();
    if (ctx->multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "siteflow: curl_multi_init() failed");
        curl_global_cleanup();
        ngx_http_siteflow_curl_clear_ssl();
        return NGX_ERROR;
    }

    ctx->log = cycle->log;

    ngx_queue_init(&ctx->xfers);
    ngx_queue_init(&ctx->socks);

    ctx->dummy.fd = (ngx_socket_t) -1;
    ctx->dummy.log = cycle->log;

    ctx->timer.handler = ngx_http_siteflow_curl_timeout;
    ctx->timer.data = &ctx->dummy;
    ctx->timer.log = cycle->log;
    ctx->timer.cancelable = 1;

    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_siteflow_curl_socket);
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETDATA, ctx);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_siteflow_curl_timer);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERDATA, ctx);

    /*
     * The queue runs at most "concurrency" jobs, each making one call at a
     * time: that caps the connections in use.  libcurl may keep twice as
     * many open, so that a job with the fetch finds an idle connection to
     * PrintNow and one to SiteFlow: with one cap for both, each validate
     * closed an idle PrintNow connection to open one to SiteFlow, and each
     * fetch the reverse, a connect (and a TLS handshake) for every other
     * call under load.  libcurl's own cache size is 4 connections per
     * transfer in flight at the moment one ends: after a burst it closed
     * the idle connections of the burst, and the next one opened them
     * again.
     */

    if (concurrency) {
        curl_multi_setopt(ctx->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          (long) (2 * concurrency));
        curl_multi_setopt(ctx->multi, CURLMOPT_MAXCONNECTS,
                          (long) (2 * concurrency));
    }

    ngx_http_siteflow_curl_ctx = ctx;

    ngx_http_siteflow_curl_warn_verify(cycle);

    return NGX_OK;
}


void
ngx_http_siteflow_curl_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t               *q;
    ngx_connection_t          *c;
    ngx_http_siteflow_xfer_t  *x;
    ngx_http_siteflow_curl_t  *ctx;

    ctx = ngx_http_siteflow_curl_ctx;

    if (ctx == NULL) {
        return;
    }

    /* the owners keep their jobs on disk: they are retried after restart */

    while (!ngx_queue_empty(&ctx->xfers)) {
        q = ngx_queue_head(&ctx->xfers);
        x = ngx_queue_data(q, ngx_http_siteflow_xfer_t, queue);

        ngx_http_siteflow_xfer_cancel(x);

        x->net = SF_NET_OTHER;
        x->handler(x);
    }

    curl_multi_cleanup(ctx->multi);
    ctx->multi = NULL;

    while (ngx_http_siteflow_curl_nspare) {
        curl_easy_cleanup(
           ngx_http_siteflow_curl_spare[--ngx_http_siteflow_curl_nspare]);
    }

    ngx_http_siteflow_curl_clear_ssl();

    /* libcurl announced every socket's removal; free what it did not */

    while (!ngx_queue_empty(&ctx->socks)) {
        q = ngx_queue_head(&ctx->socks);
        c = ngx_queue_data(q, ngx_connection_t, queue);
        ngx_http_siteflow_curl_detach(ctx, c);
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_http_siteflow_curl_ctx = NULL;

    curl_global_cleanup();
    ngx_http_siteflow_curl_clear_ssl();

    /* jansson's blocks kept for reuse (trees freed later go to free()) */

    sf_json_alloc_release();
    sf_sig_release();
}


/*
 * A base URL as libcurl will parse it: the same parser as the transfers,
 * so what passes here is what they accept.  Returns NGX_OK with the port
 * given in the URL (-1 for none), a NGX_HTTP_SITEFLOW_URL_* code with
 * libcurl's reason, or NGX_ERROR.  Called at configuration time only.
 */

ngx_int_t
ngx_http_siteflow_curl_parse_url(ngx_pool_t *pool, ngx_str_t *url,
    ngx_int_t *port, const char **reason)
{
    char       *s, *p;
    CURLU      *h;
    ngx_int_t   rc;
    CURLUcode   uc;

    s = ngx_pnalloc(pool, url->len + 1);
    if (s == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn((u_char *) s, url->data, url->len + 1);

    h = curl_url();
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = NULL;

    uc = curl_url_set(h, CURLUPART_URL, s, 0);

    if (uc == CURLUE_OK) {
        uc = curl_url_get(h, CURLUPART_PORT, &p, 0);

        if (uc == CURLUE_NO_PORT) {
            uc = CURLUE_OK;
        }
    }

    curl_url_cleanup(h);

    *port = -1;
    *reason = curl_url_strerror(uc);

    switch (uc) {

    case CURLUE_OK:
        rc = NGX_OK;

        if (p != NULL) {
            *port = ngx_atoi((u_char *) p, ngx_strlen(p));
        }

        break;

    case CURLUE_OUT_OF_MEMORY:
        rc = NGX_ERROR;
        break;

    case CURLUE_BAD_PORT_NUMBER:
        rc = NGX_HTTP_SITEFLOW_URL_BAD_PORT;
        break;

    case CURLUE_BAD_HOSTNAME:
    case CURLUE_BAD_IPV6:
    case CURLUE_NO_HOST:
        rc = NGX_HTTP_SITEFLOW_URL_BAD_HOST;
        break;

    case CURLUE_BAD_PATH:
        rc = NGX_HTTP_SITEFLOW_URL_BAD_PATH;
        break;

    default:
        rc = NGX_HTTP_SITEFLOW_URL_BAD;
        break;
    }

    curl_free(p);

    return rc;
}


ngx_http_siteflow_xfer_t *
ngx_http_siteflow_xfer_create(ngx_log_t *log,
    ngx_http_siteflow_xfer_conf_t *conf)
{
    CURL                      *easy;
    ngx_pool_t                *pool;
    ngx_pool_cleanup_t        *cln;
    ngx_http_siteflow_xfer_t  *x;

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NULL;
    }

    x = ngx_pcalloc(pool, sizeof(ngx_http_siteflow_xfer_t));
    if (x == NULL) {
        goto failed;
    }

    x->pool = pool;
    x->log = log;
    x->max_response = conf->max_response;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        goto failed;
    }

    x->error = ngx_pcalloc(pool, CURL_ERROR_SIZE);
    if (x->error == NULL) {
        goto failed;
    }

    if (ngx_http_siteflow_curl_nspare) {
        easy = ngx_http_siteflow_curl_spare[--ngx_http_siteflow_curl_nspare];

    } else {
        easy = curl_easy_init();
        if (easy == NULL) {
            goto failed;
        }
    }

    /* from here on every exit path frees the easy handle and headers */

    x->easy = easy;
    cln->handler = ngx_http_siteflow_xfer_cleanup;
    cln->data = x;

    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->error);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) conf->connect_timeout);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) conf->timeout);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
#if (LIBCURL_VERSION_NUM >= 0x075500)
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS,
                     (long) (CURLPROTO_HTTP|CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, conf->ssl_verify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, conf->ssl_verify ? 2L : 0L);

    if (conf->ca_file.len) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, conf->ca_file.data);
    }

    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                     ngx_http_siteflow_curl_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_http_siteflow_curl_close);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA,
                     ngx_http_siteflow_curl_ctx);

#if (NGX_DEBUG)
    if (log->log_level & NGX_LOG_DEBUG_HTTP) {
        curl_easy_setopt(easy, CURLOPT_DEBUGFUNCTION,
                         ngx_http_siteflow_curl_debug);
        curl_easy_setopt(easy, CURLOPT_DEBUGDATA, x);
        curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L);
    }
#endif

    return x;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


ngx_int_t
ngx_http_siteflow_xfer_start(ngx_http_siteflow_xfer_t *x)
{
    CURLMcode                  rc;
    ngx_http_siteflow_curl_t  *ctx;

    ctx = ngx_http_siteflow_curl_ctx;

    if (ctx == NULL || !ctx->async_dns || ngx_exiting || ngx_terminate) {
        return NGX_DECLINED;
    }

    rc = curl_multi_add_handle(ctx->multi, x->easy);

    ngx_http_siteflow_curl_clear_ssl();

    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, x->log, 0,
                      "siteflow: curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(rc));
        return NGX_ERROR;
    }

    x->started = ngx_current_msec;
    x->running = 1;

    ngx_queue_insert_tail(&ctx->xfers, &x->queue);
    ctx->running++;

    ngx_http_siteflow_curl_update_timer(ctx);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, x->log, 0,
                   "siteflow curl: start %p, in flight:%ui", x, ctx->running);

    return NGX_OK;
}


void
ngx_http_siteflow_xfer_cancel(ngx_http_siteflow_xfer_t *x)
{
    ngx_http_siteflow_curl_t  *ctx;

    ctx = ngx_http_siteflow_curl_ctx;

    if (!x->running || ctx == NULL) {
        return;
    }

    /* may announce CURL_POLL_REMOVE for the transfer's socket */

    curl_multi_remove_handle(ctx->multi, x->easy);

    ngx_http_siteflow_curl_clear_ssl();

    x->running = 0;
    ngx_queue_remove(&x->queue);
    ctx->running--;

    ngx_http_siteflow_curl_update_timer(ctx);
}


/*
 * A request that must not be sent twice (an order create) may go on a
 * kept-alive connection, but libcurl must never send it again by itself:
 * when a reused connection turns out to be closed before any answer,
 * libcurl silently sends the request again on a new one, which for a
 * create would be a second order.
 *
 * libcurl calls the pre-request callback (7.80.0) before each sending of
 * a request, once the connection is there: the first call lets the
 * create go out, headers and body in one write; a second call is
 * libcurl's own retry and is refused.  The transfer then ends with
 * CURLE_ABORTED_BY_CALLBACK, which counts as an error after the request
 * was sent (ambiguous: looked up before any new create).
 *
 * Older libcurl: the body is given through a read callback that cannot
 * rewind once any of it went out: a second sending fails with
 * CURLE_SEND_FAIL_REWIND, handled the same way (headers and body then go
 * in two writes).
 */

#if (LIBCURL_VERSION_NUM >= 0x075000)

static int
ngx_http_siteflow_curl_prereq(void *data, char *conn_primary_ip,
    char *conn_local_ip, int conn_primary_port, int conn_local_port)
{
    ngx_http_siteflow_xfer_t  *x = data;

    if (x->attempts++ == 0) {
        return CURL_PREREQFUNC_OK;
    }

    ngx_log_error(NGX_LOG_INFO, x->log, 0,
                  "siteflow: a create is not sent again on a new connection "
                  "after the one it went out on closed");

    return CURL_PREREQFUNC_ABORT;
}

#endif


void
ngx_http_siteflow_xfer_fresh(ngx_http_siteflow_xfer_t *x)
{
    CURL  *easy = x->easy;

    if (x->body == NULL) {
        (void) curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
        return;
    }

    x->body_read = 0;
    x->attempts = 0;

#if (LIBCURL_VERSION_NUM >= 0x075000)

    if (curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION,
                         ngx_http_siteflow_curl_prereq)
        == CURLE_OK
        && curl_easy_setopt(easy, CURLOPT_PREREQDATA, x) == CURLE_OK)
    {
        return;
    }

    (void) curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, NULL);

#endif

    /*
     * libcurl takes an upload buffer (64 KB unless told) for each such
     * transfer and frees it when the transfer ends: the smallest it takes
     * holds an order, and in a burst of creates the heap stays small
     */

    (void) curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);

    if (curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) x->body_len)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_READFUNCTION,
                            ngx_http_siteflow_curl_read)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_READDATA, x) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION,
                            ngx_http_siteflow_curl_seek)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_SEEKDATA, x) != CURLE_OK)
    {
        /* cannot be sure: the old way, a new connection */
        (void) curl_easy_setopt(easy, CURLOPT_POSTFIELDS, x->body);
        (void) curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
    }
}


static size_t
ngx_http_siteflow_curl_read(char *buf, size_t size, size_t n, void *data)
{
    ngx_http_siteflow_xfer_t  *x = data;

    size_t  len;

    len = ngx_min(size * n, x->body_len - x->body_read);

    ngx_memcpy(buf, x->body + x->body_read, len);
    x->body_read += len;

    return len;
}


/* the body is never sent twice: see ngx_http_siteflow_xfer_fresh() */

static int
ngx_http_siteflow_curl_seek(void *data, curl_off_t offset, int origin)
{
    ngx_http_siteflow_xfer_t  *x = data;

    if (offset == 0 && origin == SEEK_SET && x->body_read == 0) {
        return CURL_SEEKFUNC_OK;
    }

    return CURL_SEEKFUNC_CANTSEEK;
}


void
ngx_http_siteflow_xfer_destroy(ngx_http_siteflow_xfer_t *x)
{
    ngx_http_siteflow_xfer_cancel(x);
    ngx_destroy_pool(x->pool);
}


static void
ngx_http_siteflow_xfer_cleanup(void *data)
{
    ngx_http_siteflow_xfer_t  *x = data;

    if (x->easy != NULL) {

        /* never one that is still in the multi handle */

        if (!x->running && ngx_http_siteflow_curl_ctx != NULL
            && ngx_http_siteflow_curl_ctx->multi != NULL
            && ngx_http_siteflow_curl_nspare < NGX_HTTP_SITEFLOW_CURL_SPARE)
        {
            curl_easy_reset(x->easy);
            ngx_http_siteflow_curl_spare[ngx_http_siteflow_curl_nspare++] =
                                                                     x->easy;
        } else {
            curl_easy_cleanup(x->easy);
        }

        x->easy = NULL;

        ngx_http_siteflow_curl_clear_ssl();
    }

    if (x->headers != NULL) {
        curl_slist_free_all(x->headers);
        x->headers = NULL;
    }
}


static int
ngx_http_siteflow_curl_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_http_siteflow_curl_t  *ctx = userp;

    ngx_event_t       *rev, *wev;
    ngx_connection_t  *c;

    c = socketp;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->log, 0,
                   "siteflow curl: fd:%d action:%d", (int) s, what);

    if (what == CURL_POLL_REMOVE) {
        if (c != NULL) {
            ngx_http_siteflow_curl_detach(ctx, c);
            curl_multi_assign(ctx->multi, s, NULL);
        }

        return 0;
    }

    if (c == NULL) {
        c = ngx_get_connection((ngx_socket_t) s, ctx->log);
        if (c == NULL) {
            /* no free connection: a hard failure for every transfer */
            return -1;
        }

        c->data = ctx;
        c->log = ctx->log;
        c->read->log = ctx->log;
        c->write->log = ctx->log;
        c->read->handler = ngx_http_siteflow_curl_event;
        c->write->handler = ngx_http_siteflow_curl_event;

        ngx_queue_insert_tail(&ctx->socks, &c->queue);

        curl_multi_assign(ctx->multi, s, c);
    }

    rev = c->read;
    wev = c->write;

    /*
     * level triggered (NGX_LEVEL_EVENT is 0): libcurl does not promise to
     * read or write until EAGAIN
     */

    if (what & CURL_POLL_IN) {
        if (!rev->active
            && ngx_add_event(rev, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
        {
            return -1;
        }

    } else if (rev->active) {
        if (ngx_del_event(rev, NGX_READ_EVENT, 0) != NGX_OK) {
            return -1;
        }
    }

    if (what & CURL_POLL_OUT) {
        if (!wev->active
            && ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
        {
            return -1;
        }

    } else if (wev->active) {
        if (ngx_del_event(wev, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return -1;
        }
    }

    return 0;
}


static void
ngx_http_siteflow_curl_detach(ngx_http_siteflow_curl_t *ctx,
    ngx_connection_t *c)
{
    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_queue_remove(&c->queue);

    /* libcurl owns the descriptor and closes it itself */

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static int
ngx_http_siteflow_curl_close(void *clientp, curl_socket_t fd)
{
    ngx_http_siteflow_curl_t  *ctx = clientp;

    ngx_queue_t       *q;
    ngx_connection_t  *c;

    /* a safety net: normally CURL_POLL_REMOVE came first */

    if (ctx != NULL) {
        for (q = ngx_queue_head(&ctx->socks);
             q != ngx_queue_sentinel(&ctx->socks);
             q = ngx_queue_next(q))
        {
            c = ngx_queue_data(q, ngx_connection_t, queue);

            if (c->fd == (ngx_socket_t) fd) {
                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->log, 0,
                               "siteflow curl: fd:%d closed while "
                               "registered", (int) fd);
                ngx_http_siteflow_curl_detach(ctx, c);
                break;
            }
        }
    }

    if (ngx_close_socket(fd) == -1) {
        ngx_log_error(NGX_LOG_CRIT, ctx ? ctx->log : ngx_cycle->log,
                      ngx_socket_errno, ngx_close_socket_n " %d failed",
                      (int) fd);
        return 1;
    }

    return 0;
}


static int
ngx_http_siteflow_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_siteflow_curl_t  *ctx = userp;

    /* only schedule: calling back into libcurl here is forbidden */

    if (timeout_ms < 0) {
        if (ctx->timer.timer_set) {
            ngx_del_timer(&ctx->timer);
        }

        return 0;
    }

    ngx_add_timer(&ctx->timer, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_http_siteflow_curl_update_timer(ngx_http_siteflow_curl_t *ctx)
{
    /* graceful shutdown waits only for transfers that are running */

    ctx->timer.cancelable = (ctx->running == 0);
}


static void
ngx_http_siteflow_curl_event(ngx_event_t *ev)
{
    int                        mask, running;
    curl_socket_t              fd;
    ngx_connection_t          *c;
    ngx_http_siteflow_curl_t  *ctx;

    c = ev->data;
    ctx = c->data;

    mask = ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN;

    if (ev->error) {
        mask |= CURL_CSELECT_ERR;
    }

    /* libcurl may remove the socket during the call: do not touch c after */

    fd = (curl_socket_t) c->fd;

    (void) curl_multi_socket_action(ctx->multi, fd, mask, &running);

    ngx_http_siteflow_curl_clear_ssl();

    ngx_http_siteflow_curl_drain(ctx);
}


static void
ngx_http_siteflow_curl_timeout(ngx_event_t *ev)
{
    int                        running;
    ngx_connection_t          *c;
    ngx_http_siteflow_curl_t  *ctx;

    c = ev->data;
    ctx = ngx_http_siteflow_curl_ctx;

    if (ctx == NULL || &ctx->dummy != c) {
        return;
    }

    (void) curl_multi_socket_action(ctx->multi, CURL_SOCKET_TIMEOUT, 0,
                                    &running);

    ngx_http_siteflow_curl_clear_ssl();

    ngx_http_siteflow_curl_drain(ctx);
}


static void
ngx_http_siteflow_curl_drain(ngx_http_siteflow_curl_t *ctx)
{
    int                        left;
    long                       status, sent;
    CURL                      *easy;
    CURLMsg                   *msg;
    CURLcode                   code;
    ngx_http_siteflow_xfer_t  *x;

    while ((msg = curl_multi_info_read(ctx->multi, &left)) != NULL) {

        ngx_http_siteflow_curl_clear_ssl();

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        code = msg->data.result;

        x = NULL;
        (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &x);

        if (x == NULL) {
            curl_multi_remove_handle(ctx->multi, easy);
            ngx_http_siteflow_curl_clear_ssl();
            continue;
        }

        status = 0;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);

        sent = 0;
        (void) curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);

        /* the multi handle lets go of the transfer before its owner runs */

        ngx_http_siteflow_xfer_cancel(x);

        x->status = (ngx_uint_t) status;
        x->curl_code = (int) code;

        /* a body that cannot be sent again went out, at least in part */
        x->sent = (sent > 0 || code == CURLE_SEND_FAIL_REWIND
                   || x->body_read > 0 || x->attempts > 1);
        x->duration = ngx_current_msec - x->started;
        x->net = ngx_http_siteflow_curl_net(code, x);

        if (x->net == SF_NET_TLS) {
            ngx_http_siteflow_curl_log_tls(easy, x);
        }

        ngx_log_debug5(NGX_LOG_DEBUG_HTTP, x->log, 0,
                       "siteflow curl: done %p status:%ui curl:%d sent:%d "
                       "%Mms", x, x->status, x->curl_code, (int) x->sent,
                       x->duration);

        x->handler(x);
    }
}


/* libcurl's result as the job layer's network error (sf_job.h) */

static sf_net_error_t
ngx_http_siteflow_curl_net(CURLcode code, ngx_http_siteflow_xfer_t *x)
{
    switch (code) {

    case CURLE_OK:
        return SF_NET_OK;

    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return SF_NET_DNS;

    case CURLE_COULDNT_CONNECT:
        return SF_NET_CONNECT;

    case CURLE_OPERATION_TIMEDOUT:
        return SF_NET_TIMEOUT;

    case CURLE_WRITE_ERROR:
        return x->too_large ? SF_NET_TOO_LARGE : SF_NET_OTHER;

    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return SF_NET_RESET;

    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
        return SF_NET_TLS;

    default:
        return SF_NET_OTHER;
    }
}


/*
 * A refused TLS connection is a configuration matter for the operator
 * (the CA file, the upstream's certificate, the host name in the URL):
 * said at "error" level, as nginx says proxy_ssl_verify failures, with
 * libcurl's reason.  The URL is cut to its host and port, which carry no
 * secret.
 */

static void
ngx_http_siteflow_curl_log_tls(CURL *easy, ngx_http_siteflow_xfer_t *x)
{
    char    *url;
    u_char  *host, *p, *last;

    url = NULL;
    (void) curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);

    host = (u_char *) (url ? url : "");
    last = host + ngx_strlen(host);

    p = (u_char *) ngx_strstr(host, "://");
    if (p != NULL) {
        host = p + 3;
    }

    for (p = host; p < last; p++) {
        if (*p == '/' || *p == '?' || *p == '#') {
            break;
        }

        if (*p == '@') {
            host = p + 1;
        }
    }

    ngx_log_error(NGX_LOG_ERR, x->log, 0,
                  "siteflow: TLS with %*s failed: %s (curl error %d)",
                  (size_t) (p - host), host,
                  x->error[0] ? x->error : (u_char *) "no details",
                  x->curl_code);
}


/* once per worker start, for each storefront that does not verify */

static void
ngx_http_siteflow_curl_warn_verify(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_siteflow_srv_conf_t  **sf;
    ngx_http_siteflow_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_siteflow_module);
    if (smcf == NULL) {
        return;
    }

    sf = smcf->storefronts.elts;

    for (i = 0; i < smcf->storefronts.nelts; i++) {
        if (sf[i]->xfer.ssl_verify) {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "siteflow: \"siteflow_ssl_verify\" is off for "
                      "storefront \"%V\": the certificates and host names "
                      "of SiteFlow and PrintNow are not checked",
                      &sf[i]->storefront);
    }
}


static size_t
ngx_http_siteflow_curl_write(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    ngx_http_siteflow_xfer_t  *x = userdata;

    u_char  *p;
    size_t   n, cap;

    n = size * nmemb;

    /* refusing data beyond the cap aborts the transfer (write error) */

    if (n > x->max_response - x->response_len) {
        x->too_large = 1;
        return 0;
    }

    if (x->response_len + n > x->response_cap) {
        cap = ngx_max(2 * x->response_cap, x->response_len + n);
        cap = ngx_min(ngx_max(cap, 1024), x->max_response);

        p = ngx_pnalloc(x->pool, cap);
        if (p == NULL) {
            return 0;
        }

        if (x->response_len) {
            ngx_memcpy(p, x->response, x->response_len);
        }

        x->response = p;
        x->response_cap = cap;
    }

    ngx_memcpy(x->response + x->response_len, ptr, n);
    x->response_len += n;

    return n;
}


#if (NGX_DEBUG)

static int
ngx_http_siteflow_curl_debug(CURL *easy, curl_infotype type, char *data,
    size_t size, void *userp)
{
    ngx_http_siteflow_xfer_t  *x = userp;

    /* connection chatter only: headers and data may carry secrets */

    if (type == CURLINFO_TEXT) {
        while (size && (data[size - 1] == '\n' || data[size - 1] == '\r')) {
            size--;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, x->log, 0,
                       "siteflow curl: %*s", size, data);
    }

    return 0;
}

#endif
