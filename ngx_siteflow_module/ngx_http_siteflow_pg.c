
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_siteflow_pg.h"


/*
 * libpq inside nginx's event loop.
 *
 * Every connection of the pool goes through these states:
 *
 *   DOWN        no PGconn; the backoff timer starts the next attempt;
 *   CONNECTING  PQconnectPoll() steps, each when the socket is ready the
 *               way libpq asked; the timer is the connect timeout;
 *   SETUP       the setup SQL runs (still under the connect timeout);
 *   IDLE        ready for a statement;
 *   BUSY        one statement runs.
 *
 * The socket of PQsocket() is wrapped in an ngx_connection_t whose events
 * are registered level triggered, as libpq reads and writes only what one
 * call asks for.  libpq owns the descriptor: the wrapper is given back with
 * ngx_free_connection() and the descriptor closed by PQfinish() or by
 * libpq itself.  While connecting, libpq may close its socket and open
 * another one (the next host of a list, a retry without SSL), possibly
 * under the same number: so the events are deleted before each
 * PQconnectPoll() and registered again, on a fresh wrapper, for the socket
 * it leaves.  Once connected the socket does not change; when libpq drops
 * it (end of file, an error), PQsocket() no longer matches the wrapper and
 * the kernel has already forgotten the registration.
 *
 * Statements wait in one FIFO per worker.  A statement is started by a
 * posted event of the next loop turn, never within the call that queued
 * it, and taken by the first idle connection.  When every connection is
 * DOWN (failed and waiting for its backoff), waiting statements fail at
 * once with the last reason, so the callers can answer 503 quickly;
 * while an attempt is under way they wait for it.
 *
 * A timer that never fires in practice ("hold") is non-cancelable while
 * statements wait or run, so a graceful shutdown lets them finish (within
 * worker_shutdown_timeout), and cancelable otherwise, so an idle worker
 * exits at once.
 *
 * libpq's OpenSSL code runs in this thread: every call that may run it is
 * followed by clearing the OpenSSL error queue, which nginx's own SSL
 * connections expect empty (see ngx_http_siteflow_curl.c).
 */


#define NGX_HTTP_SITEFLOW_PG_DOWN        0
#define NGX_HTTP_SITEFLOW_PG_CONNECTING  1
#define NGX_HTTP_SITEFLOW_PG_SETUP       2
#define NGX_HTTP_SITEFLOW_PG_IDLE        3
#define NGX_HTTP_SITEFLOW_PG_BUSY        4

#define NGX_HTTP_SITEFLOW_PG_BACKOFF_MIN  100
#define NGX_HTTP_SITEFLOW_PG_BACKOFF_MAX  5000
#define NGX_HTTP_SITEFLOW_PG_TIMEOUT      5000
#define NGX_HTTP_SITEFLOW_PG_HOLD         3600000

/* a reason kept for the logs and the callers: one line, cut */
#define NGX_HTTP_SITEFLOW_PG_LINE         256


typedef struct {
    PGconn                        *conn;
    ngx_connection_t              *c;         /* PQsocket(), or NULL */
    ngx_http_siteflow_pg_query_t  *query;     /* BUSY: the statement */
    PGresult                      *res;       /* BUSY: the last result */

    ngx_event_t                    timer;     /* connect timeout, backoff */
    ngx_connection_t               dummy;     /* timer's data, fd -1 */

    ngx_uint_t                     state;
    ngx_uint_t                     number;    /* in the pool, for logs */
    ngx_msec_t                     backoff;   /* before the next attempt */
    PostgresPollingStatusType      poll;      /* CONNECTING: what to await */

    size_t                         reason_len;
    u_char                         reason[NGX_HTTP_SITEFLOW_PG_LINE];

    unsigned                       flushing:1;   /* PQflush() said 1 */
    unsigned                       setup_failed:1;
    unsigned                       setup_lock:1; /* ... on another's lock */
} ngx_http_siteflow_pg_conn_t;


struct ngx_http_siteflow_pg_query_s {
    ngx_queue_t                    queue;     /* in the FIFO */
    ngx_http_siteflow_pg_conn_t   *pc;        /* running there, or NULL */
    const char                    *sql;
    const char                   **values;    /* copies, after the struct */
    ngx_http_siteflow_pg_pt        handler;
    void                          *data;
    int                            nparams;
    unsigned                       canceled:1;
    unsigned                       prepared:1;   /* sql is a name */
};


typedef struct {
    ngx_http_siteflow_pg_conn_t   *conns;
    ngx_uint_t                     nconns;

    ngx_queue_t                    waiting;   /* the FIFO */
    ngx_uint_t                     nwaiting;
    ngx_uint_t                     running;   /* statements on connections */

    char                          *conninfo;  /* own copy, wiped at exit */
    size_t                         conninfo_len;
    ngx_msec_t                     connect_timeout;
    ngx_http_siteflow_pg_setup_pt  setup;
    ngx_log_t                     *log;

    ngx_event_t                    dispatch;  /* posted for the next turn */
    ngx_event_t                    hold;      /* graceful shutdown waits */
    ngx_connection_t               dummy;     /* their data, fd -1 */

    size_t                         reason_len;   /* the last failure */
    u_char                         reason[NGX_HTTP_SITEFLOW_PG_LINE];

    u_char                         err[NGX_HTTP_SITEFLOW_PG_LINE + 32];

    unsigned                       active:1;
    unsigned                       invalid:1;    /* the URI is not valid */
    unsigned                       logged:1;     /* reason said once */
} ngx_http_siteflow_pg_t;


static void ngx_http_siteflow_pg_check(void);
static ngx_uint_t ngx_http_siteflow_pg_has_password(void);
static void ngx_http_siteflow_pg_connect(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_poll(ngx_http_siteflow_pg_conn_t *pc,
    ngx_event_t *ev);
static void ngx_http_siteflow_pg_connected(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_up(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_send(ngx_http_siteflow_pg_conn_t *pc,
    ngx_http_siteflow_pg_query_t *q);
static ngx_int_t ngx_http_siteflow_pg_flush(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_io(ngx_http_siteflow_pg_conn_t *pc,
    ngx_event_t *ev);
static ngx_int_t ngx_http_siteflow_pg_read(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_done(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_idle(ngx_http_siteflow_pg_conn_t *pc);
static ngx_uint_t ngx_http_siteflow_pg_lock_error(const PGresult *res);
static void ngx_http_siteflow_pg_fail(ngx_http_siteflow_pg_conn_t *pc,
    ngx_uint_t setup, u_char *reason, size_t len);
static void ngx_http_siteflow_pg_lost(ngx_http_siteflow_pg_conn_t *pc,
    ngx_str_t *err);
static void ngx_http_siteflow_pg_close(ngx_http_siteflow_pg_conn_t *pc);
static ngx_int_t ngx_http_siteflow_pg_wrap(ngx_http_siteflow_pg_conn_t *pc);
static ngx_int_t ngx_http_siteflow_pg_watch(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_unwrap(ngx_http_siteflow_pg_conn_t *pc);
static void ngx_http_siteflow_pg_event(ngx_event_t *ev);
static void ngx_http_siteflow_pg_timer(ngx_event_t *ev);
static void ngx_http_siteflow_pg_dispatch_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pg_hold_handler(ngx_event_t *ev);
static void ngx_http_siteflow_pg_dispatch(void);
static void ngx_http_siteflow_pg_complete(ngx_http_siteflow_pg_query_t *q,
    PGresult *res, ngx_str_t *err);
static void ngx_http_siteflow_pg_notice(void *arg, const PGresult *res);
static void ngx_http_siteflow_pg_note_fatal(ngx_http_siteflow_pg_conn_t *pc,
    const PGresult *res);
static size_t ngx_http_siteflow_pg_line(u_char *buf, size_t size,
    const char *msg);
static size_t ngx_http_siteflow_pg_conn_error(
    ngx_http_siteflow_pg_conn_t *pc, u_char *buf, size_t size);
static ngx_uint_t ngx_http_siteflow_pg_ssl_pending(
    ngx_http_siteflow_pg_conn_t *pc);


static ngx_http_siteflow_pg_t  ngx_http_siteflow_pg;

static ngx_str_t  ngx_http_siteflow_pg_lost_err =
    ngx_string("connection to PostgreSQL lost; "
               "the statement's outcome is unknown");

static ngx_str_t  ngx_http_siteflow_pg_exiting_err = ngx_string("exiting");

static ngx_str_t  ngx_http_siteflow_pg_watch_err =
    ngx_string("cannot watch the socket");

static ngx_str_t  ngx_http_siteflow_pg_copy_err =
    ngx_string("COPY is not supported");


#if (NGX_OPENSSL)
#define ngx_http_siteflow_pg_clear_ssl()  ERR_clear_error()
#else
#define ngx_http_siteflow_pg_clear_ssl()
#endif

#define ngx_http_siteflow_pg_hold_update(pg)                                 \
    (pg)->hold.cancelable = ((pg)->nwaiting == 0 && (pg)->running == 0)


ngx_int_t
ngx_http_siteflow_pg_init_process(ngx_cycle_t *cycle,
    ngx_http_siteflow_pg_conf_t *conf)
{
    ngx_uint_t                    i;
    ngx_http_siteflow_pg_t       *pg;
    ngx_http_siteflow_pg_conn_t  *pc;

    pg = &ngx_http_siteflow_pg;

    if (pg->active) {
        return NGX_OK;
    }

    ngx_memzero(pg, sizeof(ngx_http_siteflow_pg_t));

    pg->log = conf->log ? conf->log : cycle->log;
    pg->nconns = conf->pool ? conf->pool : 1;
    pg->setup = conf->setup;
    pg->connect_timeout = conf->connect_timeout ? conf->connect_timeout
                                                : NGX_HTTP_SITEFLOW_PG_TIMEOUT;

    pg->conninfo_len = conf->conninfo.len;
    pg->conninfo = ngx_alloc(pg->conninfo_len + 1, pg->log);
    if (pg->conninfo == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(pg->conninfo, conf->conninfo.data, pg->conninfo_len);
    pg->conninfo[pg->conninfo_len] = '\0';

    pg->conns = ngx_calloc(pg->nconns * sizeof(ngx_http_siteflow_pg_conn_t),
                           pg->log);
    if (pg->conns == NULL) {
        ngx_explicit_memzero(pg->conninfo, pg->conninfo_len);
        ngx_free(pg->conninfo);
        pg->conninfo = NULL;
        return NGX_ERROR;
    }

    ngx_queue_init(&pg->waiting);

    pg->dummy.fd = (ngx_socket_t) -1;
    pg->dummy.log = pg->log;

    pg->dispatch.handler = ngx_http_siteflow_pg_dispatch_handler;
    pg->dispatch.data = &pg->dummy;
    pg->dispatch.log = pg->log;

    pg->hold.handler = ngx_http_siteflow_pg_hold_handler;
    pg->hold.data = &pg->dummy;
    pg->hold.log = pg->log;
    pg->hold.cancelable = 1;

    ngx_add_timer(&pg->hold, NGX_HTTP_SITEFLOW_PG_HOLD);

    pg->active = 1;

    ngx_http_siteflow_pg_check();

    for (i = 0; i < pg->nconns; i++) {
        pc = &pg->conns[i];

        pc->number = i;
        pc->backoff = NGX_HTTP_SITEFLOW_PG_BACKOFF_MIN;

        pc->dummy.fd = (ngx_socket_t) -1;
        pc->dummy.data = pc;
        pc->dummy.log = pg->log;

        pc->timer.handler = ngx_http_siteflow_pg_timer;
        pc->timer.data = &pc->dummy;
        pc->timer.log = pg->log;
        pc->timer.cancelable = 1;

        if (!pg->invalid) {
            ngx_http_siteflow_pg_connect(pc);
        }
    }

    return NGX_OK;
}


void
ngx_http_siteflow_pg_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_queue_t                   *head;
    ngx_http_siteflow_pg_t        *pg;
    ngx_http_siteflow_pg_conn_t   *pc;
    ngx_http_siteflow_pg_query_t  *q;

    pg = &ngx_http_siteflow_pg;

    if (!pg->active) {
        return;
    }

    /* from here on nothing is queued, and no connection is started */

    pg->active = 0;

    while (!ngx_queue_empty(&pg->waiting)) {
        head = ngx_queue_head(&pg->waiting);
        q = ngx_queue_data(head, ngx_http_siteflow_pg_query_t, queue);

        ngx_queue_remove(head);
        pg->nwaiting--;

        ngx_http_siteflow_pg_complete(q, NULL,
                                      &ngx_http_siteflow_pg_exiting_err);
    }

    for (i = 0; i < pg->nconns; i++) {
        pc = &pg->conns[i];

        q = pc->query;

        if (q != NULL) {
            pc->query = NULL;
            q->pc = NULL;
            pg->running--;

            ngx_http_siteflow_pg_complete(q, NULL,
                                          &ngx_http_siteflow_pg_exiting_err);
        }

        ngx_http_siteflow_pg_close(pc);

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }
    }

    if (pg->dispatch.posted) {
        ngx_delete_posted_event(&pg->dispatch);
    }

    if (pg->hold.timer_set) {
        ngx_del_timer(&pg->hold);
    }

    ngx_free(pg->conns);
    pg->conns = NULL;
    pg->nconns = 0;

    ngx_explicit_memzero(pg->conninfo, pg->conninfo_len);
    ngx_free(pg->conninfo);
    pg->conninfo = NULL;
}


ngx_http_siteflow_pg_query_t *
ngx_http_siteflow_pg_query(const char *sql, int nparams,
    const char *const *values, const int *lengths,
    ngx_http_siteflow_pg_pt handler, void *data)
{
    int                            i;
    u_char                        *p;
    size_t                         size, len;
    ngx_http_siteflow_pg_t        *pg;
    ngx_http_siteflow_pg_query_t  *q;

    pg = &ngx_http_siteflow_pg;

    if (!pg->active || nparams < 0 || nparams > 65535) {
        return NULL;
    }

    if (values == NULL) {
        nparams = 0;
    }

    size = sizeof(ngx_http_siteflow_pg_query_t) + nparams * sizeof(char *);

    for (i = 0; i < nparams; i++) {
        if (values[i] != NULL) {
            len = (lengths != NULL && lengths[i] >= 0)
                  ? (size_t) lengths[i] : ngx_strlen(values[i]);
            size += len + 1;
        }
    }

    q = ngx_alloc(size, pg->log);
    if (q == NULL) {
        return NULL;
    }

    q->pc = NULL;
    q->sql = sql;
    q->values = (const char **) (q + 1);
    q->handler = handler;
    q->data = data;
    q->nparams = nparams;
    q->canceled = 0;
    q->prepared = 0;

    /* text parameters: NUL-terminated copies */

    p = (u_char *) &q->values[nparams];

    for (i = 0; i < nparams; i++) {
        if (values[i] == NULL) {
            q->values[i] = NULL;
            continue;
        }

        len = (lengths != NULL && lengths[i] >= 0)
                  ? (size_t) lengths[i] : ngx_strlen(values[i]);

        q->values[i] = (const char *) p;
        p = ngx_cpymem(p, values[i], len);
        *p++ = '\0';
    }

    ngx_queue_insert_tail(&pg->waiting, &q->queue);
    pg->nwaiting++;

    ngx_http_siteflow_pg_hold_update(pg);

    if (!pg->dispatch.posted) {
        ngx_post_event(&pg->dispatch, &ngx_posted_next_events);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "siteflow pg: queued %p, waiting:%ui", q, pg->nwaiting);

    return q;
}


ngx_http_siteflow_pg_query_t *
ngx_http_siteflow_pg_prepared(const char *name, int nparams,
    const char *const *values, const int *lengths,
    ngx_http_siteflow_pg_pt handler, void *data)
{
    ngx_http_siteflow_pg_query_t  *q;

    q = ngx_http_siteflow_pg_query(name, nparams, values, lengths, handler,
                                   data);

    if (q != NULL) {
        q->prepared = 1;        /* it is sent at the next turn at earliest */
    }

    return q;
}


void
ngx_http_siteflow_pg_cancel(ngx_http_siteflow_pg_query_t *q)
{
    ngx_http_siteflow_pg_t  *pg;

    if (q == NULL) {
        return;
    }

    pg = &ngx_http_siteflow_pg;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "siteflow pg: cancel %p%s", q,
                   q->pc ? " (running)" : "");

    if (q->pc != NULL) {
        /* freed when its result arrives, which is thrown away */
        q->canceled = 1;
        return;
    }

    ngx_queue_remove(&q->queue);
    pg->nwaiting--;

    ngx_free(q);

    ngx_http_siteflow_pg_hold_update(pg);
}


ngx_uint_t
ngx_http_siteflow_pg_ready(void)
{
    ngx_uint_t               i, n;
    ngx_http_siteflow_pg_t  *pg;

    pg = &ngx_http_siteflow_pg;

    n = 0;

    for (i = 0; i < pg->nconns; i++) {
        if (pg->conns[i].state == NGX_HTTP_SITEFLOW_PG_IDLE
            || pg->conns[i].state == NGX_HTTP_SITEFLOW_PG_BUSY)
        {
            n++;
        }
    }

    return n;
}


ngx_uint_t
ngx_http_siteflow_pg_waiting(void)
{
    return ngx_http_siteflow_pg.nwaiting;
}


/*
 * The URI is checked once: an invalid one is never tried (statements fail
 * at once with the reason).  libpq's message about an invalid URI may
 * quote a part of it, so it is withheld when the URI carries a password.
 * A host given by name is resolved by libpq with getaddrinfo(), which
 * blocks the worker: that is worth a warning.
 */

static void
ngx_http_siteflow_pg_check(void)
{
    char                    *err, *h, *end;
    u_char                   addr[sizeof(struct in6_addr)];
    size_t                   len;
    ngx_uint_t               named;
    PQconninfoOption        *opts, *o;
    ngx_http_siteflow_pg_t  *pg;
    char                     host[NGX_SOCKADDR_STRLEN];

    pg = &ngx_http_siteflow_pg;

    err = NULL;

    opts = PQconninfoParse(pg->conninfo, &err);

    if (opts == NULL) {
        if (err == NULL) {
            /* out of memory: the attempts will tell */
            return;
        }

        pg->invalid = 1;

        if (ngx_http_siteflow_pg_has_password()) {
            pg->reason_len = ngx_sprintf(pg->reason,
                                 "invalid connection URI (details withheld: "
                                 "the URI has a password)")
                             - pg->reason;

        } else {
            len = ngx_http_siteflow_pg_line(pg->err, sizeof(pg->err), err);

            pg->reason_len = ngx_snprintf(pg->reason, sizeof(pg->reason),
                                          "invalid connection URI: %*s",
                                          len, pg->err)
                             - pg->reason;
        }

        PQfreemem(err);

        ngx_log_error(NGX_LOG_ALERT, pg->log, 0,
                      "siteflow: PostgreSQL: %*s",
                      pg->reason_len, pg->reason);
        return;
    }

    h = NULL;
    named = 1;

    for (o = opts; o->keyword != NULL; o++) {
        if (ngx_strcmp(o->keyword, "host") == 0) {
            h = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0
                   && o->val != NULL && o->val[0] != '\0')
        {
            named = 0;
        }
    }

    while (named && h != NULL && *h != '\0') {
        end = strchr(h, ',');
        len = end ? (size_t) (end - h) : ngx_strlen(h);

        /* a path or an abstract name is a Unix-domain socket */

        if (len != 0 && len < sizeof(host) && h[0] != '/' && h[0] != '@') {
            ngx_memcpy(host, h, len);
            host[len] = '\0';

            if (inet_pton(AF_INET, host, addr) != 1
                && inet_pton(AF_INET6, host, addr) != 1)
            {
                ngx_log_error(NGX_LOG_WARN, pg->log, 0,
                              "siteflow: PostgreSQL host \"%s\" is a name, "
                              "which libpq resolves synchronously, blocking "
                              "the worker; use an IP address or \"hostaddr\"",
                              host);
            }
        }

        h = end ? end + 1 : NULL;
    }

    PQconninfoFree(opts);
}


/* "user:password@" in a URI, or a "password" parameter */

static ngx_uint_t
ngx_http_siteflow_pg_has_password(void)
{
    char                    *p, *at, *colon;
    ngx_http_siteflow_pg_t  *pg;

    pg = &ngx_http_siteflow_pg;

    if (ngx_strstr(pg->conninfo, "password") != NULL) {
        return 1;
    }

    p = ngx_strstr(pg->conninfo, "://");
    if (p == NULL) {
        return 0;
    }

    at = NULL;
    colon = NULL;

    for (p += 3; *p != '\0' && *p != '/' && *p != '?'; p++) {
        if (*p == '@') {
            at = p;

        } else if (*p == ':' && at == NULL && colon == NULL) {
            colon = p;
        }
    }

    return (at != NULL && colon != NULL && colon < at);
}


static void
ngx_http_siteflow_pg_connect(ngx_http_siteflow_pg_conn_t *pc)
{
    size_t                   len;
    ngx_http_siteflow_pg_t  *pg;
    const char              *values[3];
    u_char                   buf[NGX_HTTP_SITEFLOW_PG_LINE];

    static const char *const  keywords[] = {
        "dbname", "fallback_application_name", NULL
    };

    pg = &ngx_http_siteflow_pg;

    /* the URI is expanded from "dbname"; its parameters win */

    values[0] = pg->conninfo;
    values[1] = "nginx siteflow";
    values[2] = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "siteflow pg: #%ui connecting", pc->number);

    pc->conn = PQconnectStartParams(keywords, values, 1);

    ngx_http_siteflow_pg_clear_ssl();

    if (pc->conn == NULL) {
        ngx_http_siteflow_pg_fail(pc, 0, (u_char *) "out of memory",
                                  sizeof("out of memory") - 1);
        return;
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD) {
        len = ngx_http_siteflow_pg_conn_error(pc, buf, sizeof(buf));
        ngx_http_siteflow_pg_fail(pc, 0, buf, len);
        return;
    }

    (void) PQsetNoticeReceiver(pc->conn, ngx_http_siteflow_pg_notice, pc);

    pc->state = NGX_HTTP_SITEFLOW_PG_CONNECTING;

    /* as if PQconnectPoll() had asked for writing: libpq's rule */

    pc->poll = PGRES_POLLING_WRITING;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    ngx_add_timer(&pc->timer, pg->connect_timeout);

    if (ngx_http_siteflow_pg_wrap(pc) != NGX_OK
        || ngx_http_siteflow_pg_watch(pc) != NGX_OK)
    {
        ngx_http_siteflow_pg_fail(pc, 0, ngx_http_siteflow_pg_watch_err.data,
                                  ngx_http_siteflow_pg_watch_err.len);
    }
}


static void
ngx_http_siteflow_pg_poll(ngx_http_siteflow_pg_conn_t *pc, ngx_event_t *ev)
{
    size_t                     len;
    ngx_uint_t                 n;
    PostgresPollingStatusType  rc;
    u_char                     buf[NGX_HTTP_SITEFLOW_PG_LINE];

    /*
     * only the readiness libpq asked for: a PQconnectPoll() too early,
     * while connect() is in progress, would take it for done
     */

    if ((ev->write != 0) != (pc->poll == PGRES_POLLING_WRITING)) {
        return;
    }

    /* the socket may be closed or replaced in PQconnectPoll() */

    ngx_http_siteflow_pg_unwrap(pc);

    for (n = 0; /* void */; n++) {
        rc = PQconnectPoll(pc->conn);

        ngx_http_siteflow_pg_clear_ssl();

        /* bytes already decrypted by OpenSSL do not wake epoll */

        if (rc != PGRES_POLLING_READING || n == 16
            || !ngx_http_siteflow_pg_ssl_pending(pc))
        {
            break;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->timer.log, 0,
                   "siteflow pg: #%ui poll:%d", pc->number, (int) rc);

    switch (rc) {

    case PGRES_POLLING_OK:
        ngx_http_siteflow_pg_connected(pc);
        return;

    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        pc->poll = rc;

        if (ngx_http_siteflow_pg_wrap(pc) == NGX_OK
            && ngx_http_siteflow_pg_watch(pc) == NGX_OK)
        {
            return;
        }

        ngx_http_siteflow_pg_fail(pc, 0, ngx_http_siteflow_pg_watch_err.data,
                                  ngx_http_siteflow_pg_watch_err.len);
        return;

    default: /* PGRES_POLLING_FAILED */
        len = ngx_http_siteflow_pg_conn_error(pc, buf, sizeof(buf));
        ngx_http_siteflow_pg_fail(pc, 0, buf, len);
        return;
    }
}


static void
ngx_http_siteflow_pg_connected(ngx_http_siteflow_pg_conn_t *pc)
{
    size_t                   len;
    const char              *sql;
    ngx_http_siteflow_pg_t  *pg;
    u_char                   buf[NGX_HTTP_SITEFLOW_PG_LINE];

    pg = &ngx_http_siteflow_pg;

    if (PQsetnonblocking(pc->conn, 1) != 0) {
        len = ngx_http_siteflow_pg_conn_error(pc, buf, sizeof(buf));
        ngx_http_siteflow_pg_fail(pc, 0, buf, len);
        return;
    }

    if (ngx_http_siteflow_pg_wrap(pc) != NGX_OK) {
        ngx_http_siteflow_pg_fail(pc, 0, ngx_http_siteflow_pg_watch_err.data,
                                  ngx_http_siteflow_pg_watch_err.len);
        return;
    }

    sql = pg->setup ? pg->setup() : NULL;

    if (sql == NULL) {
        ngx_http_siteflow_pg_up(pc);
        return;
    }

    pc->state = NGX_HTTP_SITEFLOW_PG_SETUP;
    pc->setup_failed = 0;
    pc->setup_lock = 0;

    if (!PQsendQuery(pc->conn, sql)) {
        ngx_http_siteflow_pg_clear_ssl();
        goto failed;
    }

    ngx_http_siteflow_pg_clear_ssl();

    if (ngx_http_siteflow_pg_flush(pc) == NGX_OK
        && ngx_http_siteflow_pg_watch(pc) == NGX_OK)
    {
        return;
    }

failed:

    len = ngx_http_siteflow_pg_conn_error(pc, buf, sizeof(buf));
    ngx_http_siteflow_pg_fail(pc, 0, buf, len);
}


static void
ngx_http_siteflow_pg_up(ngx_http_siteflow_pg_conn_t *pc)
{
    int                      version;
    char                    *host, *port;
    ngx_http_siteflow_pg_t  *pg;

    pg = &ngx_http_siteflow_pg;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->state = NGX_HTTP_SITEFLOW_PG_IDLE;

    if (ngx_http_siteflow_pg_watch(pc) != NGX_OK) {
        ngx_http_siteflow_pg_fail(pc, 0, ngx_http_siteflow_pg_watch_err.data,
                                  ngx_http_siteflow_pg_watch_err.len);
        return;
    }

    pc->backoff = NGX_HTTP_SITEFLOW_PG_BACKOFF_MIN;
    pc->reason_len = 0;

    pg->logged = 0;

    host = PQhost(pc->conn);
    port = PQport(pc->conn);

    version = PQserverVersion(pc->conn);

    ngx_log_error(NGX_LOG_NOTICE, pg->log, 0,
                  "siteflow: connected to PostgreSQL %d.%d at %s%s%s "
                  "(connection #%ui)",
                  version / 10000, version % 10000,
                  host ? host : "", port ? ":" : "", port ? port : "",
                  pc->number);
}


static void
ngx_http_siteflow_pg_send(ngx_http_siteflow_pg_conn_t *pc,
    ngx_http_siteflow_pg_query_t *q)
{
    size_t                   len;
    ngx_str_t                err;
    ngx_http_siteflow_pg_t  *pg;

    pg = &ngx_http_siteflow_pg;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "siteflow pg: #%ui runs %p", pc->number, q);

    q->pc = pc;
    pc->query = q;
    pc->state = NGX_HTTP_SITEFLOW_PG_BUSY;
    pg->running++;

    /* text parameters, text results */

    if (!(q->prepared
          ? PQsendQueryPrepared(pc->conn, q->sql, q->nparams, q->values,
                                NULL, NULL, 0)
          : PQsendQueryParams(pc->conn, q->sql, q->nparams, NULL, q->values,
                              NULL, NULL, 0)))
    {
        ngx_http_siteflow_pg_clear_ssl();

        pc->query = NULL;
        q->pc = NULL;
        pg->running--;

        if (PQstatus(pc->conn) == CONNECTION_OK) {

            /* refused by libpq itself: nothing was sent */

            pc->state = NGX_HTTP_SITEFLOW_PG_IDLE;

            len = ngx_http_siteflow_pg_conn_error(pc, pg->err,
                                                  sizeof(pg->err));
            err.len = len;
            err.data = pg->err;

            ngx_http_siteflow_pg_complete(q, NULL, &err);
            return;
        }

        /*
         * the connection was found broken before the statement went out
         * (a Sync never sent is never committed): it waits for another
         */

        ngx_queue_insert_head(&pg->waiting, &q->queue);
        pg->nwaiting++;

        ngx_http_siteflow_pg_lost(pc, NULL);
        return;
    }

    ngx_http_siteflow_pg_clear_ssl();

    if (ngx_http_siteflow_pg_flush(pc) != NGX_OK
        || ngx_http_siteflow_pg_watch(pc) != NGX_OK)
    {
        ngx_http_siteflow_pg_lost(pc, &ngx_http_siteflow_pg_lost_err);
    }
}


static ngx_int_t
ngx_http_siteflow_pg_flush(ngx_http_siteflow_pg_conn_t *pc)
{
    int  rc;

    rc = PQflush(pc->conn);

    ngx_http_siteflow_pg_clear_ssl();

    if (rc < 0) {
        return NGX_ERROR;
    }

    pc->flushing = (rc == 1);

    return NGX_OK;
}


/* SETUP and BUSY: sending the statement, then reading its results */

static void
ngx_http_siteflow_pg_io(ngx_http_siteflow_pg_conn_t *pc, ngx_event_t *ev)
{
    size_t     len;
    ngx_int_t  rc;
    u_char     buf[NGX_HTTP_SITEFLOW_PG_LINE];

    if (pc->flushing) {

        /* libpq's rule: input is consumed while the output waits */

        if (!ev->write) {
            rc = PQconsumeInput(pc->conn);

            ngx_http_siteflow_pg_clear_ssl();

            if (!rc) {
                goto failed;
            }
        }

        if (ngx_http_siteflow_pg_flush(pc) != NGX_OK) {
            goto failed;
        }

        if (pc->flushing) {
            return;
        }

        if (ngx_http_siteflow_pg_watch(pc) != NGX_OK) {
            goto failed;
        }
    }

    rc = ngx_http_siteflow_pg_read(pc);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc == NGX_OK) {
        ngx_http_siteflow_pg_done(pc);
        return;
    }

    if (rc == NGX_DECLINED) {

        /* COPY: libpq would wait for data that never comes */

        ngx_log_error(NGX_LOG_ALERT, pc->timer.log, 0,
                      "siteflow: a COPY statement was sent to PostgreSQL, "
                      "which is not supported; connection #%ui closed",
                      pc->number);

        if (pc->state == NGX_HTTP_SITEFLOW_PG_SETUP) {
            ngx_http_siteflow_pg_fail(pc, 1, ngx_http_siteflow_pg_copy_err.data,
                                      ngx_http_siteflow_pg_copy_err.len);
            return;
        }

        ngx_http_siteflow_pg_lost(pc, &ngx_http_siteflow_pg_copy_err);
        return;
    }

failed:

    if (pc->state == NGX_HTTP_SITEFLOW_PG_SETUP) {
        if (pc->reason_len) {
            len = pc->reason_len;
            ngx_memcpy(buf, pc->reason, len);

        } else {
            len = ngx_http_siteflow_pg_conn_error(pc, buf, sizeof(buf));
        }

        ngx_http_siteflow_pg_fail(pc, 0, buf, len);
        return;
    }

    ngx_http_siteflow_pg_lost(pc, &ngx_http_siteflow_pg_lost_err);
}


/*
 * NGX_AGAIN: more input is needed; NGX_OK: every result is in (PQgetResult()
 * returned NULL); NGX_ERROR: the connection broke; NGX_DECLINED: a COPY.
 */

static ngx_int_t
ngx_http_siteflow_pg_read(ngx_http_siteflow_pg_conn_t *pc)
{
    int             rc;
    PGresult       *res;
    ExecStatusType  status;

    rc = PQconsumeInput(pc->conn);

    ngx_http_siteflow_pg_clear_ssl();

    if (!rc) {
        return NGX_ERROR;
    }

    for ( ;; ) {

        if (PQisBusy(pc->conn)) {

            if (!ngx_http_siteflow_pg_ssl_pending(pc)) {
                return NGX_AGAIN;
            }

            rc = PQconsumeInput(pc->conn);

            ngx_http_siteflow_pg_clear_ssl();

            if (!rc) {
                return NGX_ERROR;
            }

            continue;
        }

        res = PQgetResult(pc->conn);

        if (res == NULL) {
            return (PQstatus(pc->conn) == CONNECTION_OK) ? NGX_OK : NGX_ERROR;
        }

        status = PQresultStatus(res);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->timer.log, 0,
                       "siteflow pg: #%ui result:%s", pc->number,
                       PQresStatus(status));

        switch (status) {

        case PGRES_COPY_IN:
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:
            PQclear(res);
            return NGX_DECLINED;

        case PGRES_FATAL_ERROR:
            ngx_http_siteflow_pg_note_fatal(pc, res);
            break;

        default:
            break;
        }

        if (pc->state == NGX_HTTP_SITEFLOW_PG_SETUP) {

            if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK
                && status != PGRES_EMPTY_QUERY && !pc->setup_failed)
            {
                pc->setup_failed = 1;
                pc->setup_lock = ngx_http_siteflow_pg_lock_error(res);
                pc->reason_len = ngx_http_siteflow_pg_line(pc->reason,
                                                sizeof(pc->reason),
                                                PQresultErrorMessage(res));
            }

            PQclear(res);
            continue;
        }

        /* one statement, one result: the last one counts */

        if (pc->res != NULL) {
            PQclear(pc->res);
        }

        pc->res = res;
    }
}


static void
ngx_http_siteflow_pg_done(ngx_http_siteflow_pg_conn_t *pc)
{
    size_t                         len;
    PGresult                      *res;
    ngx_str_t                      err;
    ExecStatusType                 status;
    ngx_http_siteflow_pg_t        *pg;
    ngx_http_siteflow_pg_query_t  *q;

    pg = &ngx_http_siteflow_pg;

    if (pc->state == NGX_HTTP_SITEFLOW_PG_SETUP) {

        if (pc->setup_failed) {
            ngx_http_siteflow_pg_fail(pc, 1, pc->reason, pc->reason_len);
            return;
        }

        ngx_http_siteflow_pg_up(pc);
        return;
    }

    q = pc->query;
    res = pc->res;

    pc->query = NULL;
    pc->res = NULL;
    pc->state = NGX_HTTP_SITEFLOW_PG_IDLE;

    if (q == NULL) {
        /* cannot happen */
        if (res != NULL) {
            PQclear(res);
        }

        return;
    }

    q->pc = NULL;
    pg->running--;

    if (res == NULL) {
        ngx_str_set(&err, "no result");
        ngx_http_siteflow_pg_complete(q, NULL, &err);
        return;
    }

    status = PQresultStatus(res);

    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        ngx_http_siteflow_pg_complete(q, res, NULL);
        return;
    }

    len = ngx_http_siteflow_pg_line(pg->err, sizeof(pg->err),
                                    PQresultErrorMessage(res));
    if (len == 0) {
        len = ngx_http_siteflow_pg_line(pg->err, sizeof(pg->err),
                                        PQresStatus(status));
    }

    PQclear(res);

    err.len = len;
    err.data = pg->err;

    ngx_http_siteflow_pg_complete(q, NULL, &err);
}


/* IDLE: notices, notifications, or the end of the connection */

static void
ngx_http_siteflow_pg_idle(ngx_http_siteflow_pg_conn_t *pc)
{
    int        rc;
    PGnotify  *notify;

    do {
        rc = PQconsumeInput(pc->conn);

        ngx_http_siteflow_pg_clear_ssl();

        if (!rc) {
            ngx_http_siteflow_pg_lost(pc, NULL);
            return;
        }

        while ((notify = PQnotifies(pc->conn)) != NULL) {
            PQfreemem(notify);
        }

    } while (ngx_http_siteflow_pg_ssl_pending(pc));

    if (PQstatus(pc->conn) != CONNECTION_OK) {
        ngx_http_siteflow_pg_lost(pc, NULL);
    }
}


/*
 * A deadlock, a serialization failure, a lock wait cut by lock_timeout or
 * a statement cancelled (class 40, 55P03, 57014): the error of a moment,
 * not of the setup SQL itself.
 */

static ngx_uint_t
ngx_http_siteflow_pg_lock_error(const PGresult *res)
{
    const char  *state;

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (state == NULL) {
        return 0;
    }

    return (state[0] == '4' && state[1] == '0')
           || ngx_strcmp(state, "55P03") == 0
           || ngx_strcmp(state, "57014") == 0;
}


/*
 * A failed attempt (CONNECTING, or SETUP when the setup SQL failed).  The
 * reason becomes the one the waiting statements get.  A connection failure
 * is logged when its reason changes, not at every attempt of every
 * connection; a failed setup SQL, a bug, every time.
 */

static void
ngx_http_siteflow_pg_fail(ngx_http_siteflow_pg_conn_t *pc, ngx_uint_t setup,
    u_char *reason, size_t len)
{
    u_char                  *p;
    ngx_http_siteflow_pg_t  *pg;
    u_char                   buf[NGX_HTTP_SITEFLOW_PG_LINE];

    pg = &ngx_http_siteflow_pg;

    p = ngx_snprintf(buf, sizeof(buf), "%s%*s",
                     setup ? "setup SQL failed: " : "", len, reason);

    if (setup && pc->setup_lock) {

        /*
         * the setup's PREPAREs hold their tables' locks until the end of
         * its transaction: another session's TRUNCATE or DDL at that
         * moment can make it a deadlock victim; nothing is wrong with
         * the module or the schema, the next attempt goes through
         */

        ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                      "siteflow: the setup SQL met another session's lock "
                      "on PostgreSQL: %*s (connection #%ui closed, next "
                      "attempt in %Mms)", len, reason, pc->number,
                      pc->backoff);

    } else if (setup) {
        ngx_log_error(NGX_LOG_ALERT, pg->log, 0,
                      "siteflow: the setup SQL failed on PostgreSQL: %*s "
                      "(connection #%ui closed, next attempt in %Mms)",
                      len, reason, pc->number, pc->backoff);

    } else if (!pg->logged || (size_t) (p - buf) != pg->reason_len
               || ngx_memcmp(buf, pg->reason, p - buf) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                      "siteflow: connecting to PostgreSQL failed: %*s "
                      "(connection #%ui, next attempt in %Mms)",
                      len, reason, pc->number, pc->backoff);

    } else {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                       "siteflow pg: #%ui connecting failed: %*s",
                       pc->number, len, reason);
    }

    pg->reason_len = p - buf;
    ngx_memcpy(pg->reason, buf, pg->reason_len);
    pg->logged = 1;

    ngx_http_siteflow_pg_close(pc);
}


/*
 * An established connection (IDLE or BUSY) broke.  err: what the running
 * statement's owner is told; NULL when the statement, if any, was not sent
 * and has been put back in the FIFO.
 */

static void
ngx_http_siteflow_pg_lost(ngx_http_siteflow_pg_conn_t *pc, ngx_str_t *err)
{
    size_t                         len;
    ngx_http_siteflow_pg_t        *pg;
    ngx_http_siteflow_pg_query_t  *q;

    pg = &ngx_http_siteflow_pg;

    /* a FATAL message of the server says more than "closed unexpectedly" */

    if (pc->reason_len) {
        len = pc->reason_len;
        ngx_memcpy(pg->reason, pc->reason, len);

    } else {
        len = ngx_http_siteflow_pg_conn_error(pc, pg->reason,
                                              sizeof(pg->reason));
    }

    pg->reason_len = len;
    pg->logged = 0;

    ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                  "siteflow: connection to PostgreSQL lost: %*s "
                  "(connection #%ui%s)", len, pg->reason, pc->number,
                  pc->query ? ", a statement was running" : "");

    q = pc->query;

    if (q != NULL) {
        pc->query = NULL;
        q->pc = NULL;
        pg->running--;
    }

    ngx_http_siteflow_pg_close(pc);

    if (q != NULL) {
        ngx_http_siteflow_pg_complete(q, NULL,
                                      err ? err
                                          : &ngx_http_siteflow_pg_lost_err);
    }
}


/* to DOWN, with the next attempt after the backoff */

static void
ngx_http_siteflow_pg_close(ngx_http_siteflow_pg_conn_t *pc)
{
    ngx_http_siteflow_pg_t  *pg;

    pg = &ngx_http_siteflow_pg;

    if (pc->res != NULL) {
        PQclear(pc->res);
        pc->res = NULL;
    }

    ngx_http_siteflow_pg_unwrap(pc);

    if (pc->conn != NULL) {
        PQfinish(pc->conn);
        pc->conn = NULL;

        ngx_http_siteflow_pg_clear_ssl();
    }

    pc->state = NGX_HTTP_SITEFLOW_PG_DOWN;
    pc->flushing = 0;
    pc->setup_failed = 0;
    pc->setup_lock = 0;
    pc->reason_len = 0;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (!pg->active || pg->invalid) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "siteflow pg: #%ui down, next attempt in %Mms",
                   pc->number, pc->backoff);

    ngx_add_timer(&pc->timer, pc->backoff);

    pc->backoff = ngx_min(2 * pc->backoff, NGX_HTTP_SITEFLOW_PG_BACKOFF_MAX);
}


static ngx_int_t
ngx_http_siteflow_pg_wrap(ngx_http_siteflow_pg_conn_t *pc)
{
    int                      s;
    ngx_connection_t        *c;
    ngx_http_siteflow_pg_t  *pg;

    pg = &ngx_http_siteflow_pg;

    s = PQsocket(pc->conn);

    if (pc->c != NULL) {
        if (pc->c->fd == (ngx_socket_t) s) {
            return NGX_OK;
        }

        ngx_http_siteflow_pg_unwrap(pc);
    }

    if (s == -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection((ngx_socket_t) s, pg->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->log = pg->log;
    c->read->log = pg->log;
    c->write->log = pg->log;
    c->read->handler = ngx_http_siteflow_pg_event;
    c->write->handler = ngx_http_siteflow_pg_event;

    pc->c = c;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "siteflow pg: #%ui fd:%d", pc->number, s);

    return NGX_OK;
}


/*
 * Level triggered (NGX_LEVEL_EVENT is 0): libpq reads and writes only what
 * one call asks for.  CONNECTING waits for what PQconnectPoll() said;
 * afterwards reading is always watched (the server may close an idle
 * connection) and writing while PQflush() has more to send.
 */

static ngx_int_t
ngx_http_siteflow_pg_watch(ngx_http_siteflow_pg_conn_t *pc)
{
    ngx_uint_t    rd, wr;
    ngx_event_t  *rev, *wev;

    if (pc->c == NULL) {
        return NGX_ERROR;
    }

    if (pc->state == NGX_HTTP_SITEFLOW_PG_CONNECTING) {
        rd = (pc->poll == PGRES_POLLING_READING);
        wr = !rd;

    } else {
        rd = 1;
        wr = pc->flushing;
    }

    rev = pc->c->read;
    wev = pc->c->write;

    if (rd) {
        if (!rev->active
            && ngx_add_event(rev, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (rev->active) {
        if (ngx_del_event(rev, NGX_READ_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (wr) {
        if (!wev->active
            && ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (wev->active) {
        if (ngx_del_event(wev, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* gives the wrapper back; the descriptor stays libpq's */

static void
ngx_http_siteflow_pg_unwrap(ngx_http_siteflow_pg_conn_t *pc)
{
    ngx_uint_t         flags;
    ngx_connection_t  *c;

    c = pc->c;

    if (c == NULL) {
        return;
    }

    /*
     * a descriptor libpq still has open is deleted from epoll; one it has
     * closed already left it by itself (and its number may be another
     * file's by now)
     */

    if (pc->conn != NULL && PQsocket(pc->conn) == (int) c->fd) {
        flags = 0;

    } else {
        flags = NGX_CLOSE_EVENT;
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
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

    /* ngx_free_connection() reads c->fd (the files[] slot) */

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    pc->c = NULL;
}


static void
ngx_http_siteflow_pg_event(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_siteflow_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "siteflow pg: #%ui %s event, state:%ui", pc->number,
                   ev->write ? "write" : "read", pc->state);

    switch (pc->state) {

    case NGX_HTTP_SITEFLOW_PG_CONNECTING:
        ngx_http_siteflow_pg_poll(pc, ev);
        break;

    case NGX_HTTP_SITEFLOW_PG_SETUP:
    case NGX_HTTP_SITEFLOW_PG_BUSY:
        ngx_http_siteflow_pg_io(pc, ev);
        break;

    case NGX_HTTP_SITEFLOW_PG_IDLE:
        if (!ev->write) {
            ngx_http_siteflow_pg_idle(pc);
        }
        break;

    default:
        /* DOWN: the wrapper is already given back */
        break;
    }

    ngx_http_siteflow_pg_dispatch();
}


/* DOWN: the backoff is over; CONNECTING, SETUP: the connect timeout */

static void
ngx_http_siteflow_pg_timer(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_siteflow_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    switch (pc->state) {

    case NGX_HTTP_SITEFLOW_PG_DOWN:
        ngx_http_siteflow_pg_connect(pc);
        break;

    case NGX_HTTP_SITEFLOW_PG_CONNECTING:
    case NGX_HTTP_SITEFLOW_PG_SETUP:
        ngx_http_siteflow_pg_fail(pc, 0, (u_char *) "timeout expired",
                                  sizeof("timeout expired") - 1);
        break;

    default:
        break;
    }

    ngx_http_siteflow_pg_dispatch();
}


static void
ngx_http_siteflow_pg_dispatch_handler(ngx_event_t *ev)
{
    ngx_http_siteflow_pg_dispatch();
}


static void
ngx_http_siteflow_pg_hold_handler(ngx_event_t *ev)
{
    if (ngx_http_siteflow_pg.active) {
        ngx_add_timer(ev, NGX_HTTP_SITEFLOW_PG_HOLD);
    }
}


/*
 * The head of the FIFO goes to an idle connection; with none idle, it
 * waits while a connection is busy or an attempt is under way, and fails
 * at once when every connection is DOWN.  Only the statements queued
 * before the call fail in it: one that a failed statement's handler
 * queues again is seen on the next loop turn, not in a loop here.
 */

static void
ngx_http_siteflow_pg_dispatch(void)
{
    ngx_str_t                      err;
    ngx_uint_t                     i, n, alive;
    ngx_queue_t                   *head;
    ngx_http_siteflow_pg_t        *pg;
    ngx_http_siteflow_pg_conn_t   *pc, *idle;
    ngx_http_siteflow_pg_query_t  *q;

    pg = &ngx_http_siteflow_pg;

    if (!pg->active) {
        return;
    }

    n = pg->nwaiting;

    while (!ngx_queue_empty(&pg->waiting)) {

        idle = NULL;
        alive = 0;

        for (i = 0; i < pg->nconns; i++) {
            pc = &pg->conns[i];

            if (pc->state == NGX_HTTP_SITEFLOW_PG_IDLE) {
                idle = pc;
                break;
            }

            if (pc->state != NGX_HTTP_SITEFLOW_PG_DOWN) {
                alive = 1;
            }
        }

        if (idle == NULL && (alive || n == 0)) {
            break;
        }

        head = ngx_queue_head(&pg->waiting);
        q = ngx_queue_data(head, ngx_http_siteflow_pg_query_t, queue);

        ngx_queue_remove(head);
        pg->nwaiting--;

        if (idle != NULL) {
            ngx_http_siteflow_pg_send(idle, q);
            continue;
        }

        if (pg->reason_len == 0) {
            pg->reason_len = sizeof("no connection") - 1;
            ngx_memcpy(pg->reason, "no connection", pg->reason_len);
        }

        err.data = pg->err;
        err.len = ngx_snprintf(pg->err, sizeof(pg->err),
                               "PostgreSQL unavailable: %*s",
                               pg->reason_len, pg->reason)
                  - pg->err;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                       "siteflow pg: %p failed at once", q);

        n--;

        ngx_http_siteflow_pg_complete(q, NULL, &err);
    }

    if (n == 0 && !ngx_queue_empty(&pg->waiting) && !pg->dispatch.posted) {
        ngx_post_event(&pg->dispatch, &ngx_posted_next_events);
    }

    ngx_http_siteflow_pg_hold_update(pg);
}


/* the query is freed before its handler runs */

static void
ngx_http_siteflow_pg_complete(ngx_http_siteflow_pg_query_t *q, PGresult *res,
    ngx_str_t *err)
{
    void                     *data;
    ngx_uint_t                canceled;
    ngx_http_siteflow_pg_pt   handler;

    handler = q->handler;
    data = q->data;
    canceled = q->canceled;

    ngx_free(q);

    ngx_http_siteflow_pg_hold_update(&ngx_http_siteflow_pg);

    if (canceled) {
        if (res != NULL) {
            PQclear(res);
        }

        return;
    }

    handler(data, res, err);
}


/*
 * libpq prints notices on stderr by default.  WARNING and above go to the
 * log; a FATAL one (the server ending the connection, for instance on
 * shutdown) is kept as the reason of the loss that follows.
 */

static void
ngx_http_siteflow_pg_notice(void *arg, const PGresult *res)
{
    ngx_http_siteflow_pg_conn_t *pc = arg;

    char    *sev;
    size_t   len;
    u_char   buf[NGX_HTTP_SITEFLOW_PG_LINE];

    sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev == NULL) {
        sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
    }

    if (sev != NULL
        && (ngx_strcmp(sev, "FATAL") == 0 || ngx_strcmp(sev, "PANIC") == 0))
    {
        ngx_http_siteflow_pg_note_fatal(pc, res);
        return;
    }

    len = ngx_http_siteflow_pg_line(buf, sizeof(buf),
                                    PQresultErrorMessage(res));

    if (sev != NULL
        && (ngx_strcmp(sev, "WARNING") == 0 || ngx_strcmp(sev, "ERROR") == 0))
    {
        ngx_log_error(NGX_LOG_WARN, ngx_http_siteflow_pg.log, 0,
                      "siteflow: PostgreSQL said: %*s", len, buf);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_http_siteflow_pg.log, 0,
                   "siteflow pg: #%ui notice: %*s", pc->number, len, buf);
}


static void
ngx_http_siteflow_pg_note_fatal(ngx_http_siteflow_pg_conn_t *pc,
    const PGresult *res)
{
    char  *sev;

    sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

    if (sev == NULL
        || (ngx_strcmp(sev, "FATAL") != 0 && ngx_strcmp(sev, "PANIC") != 0))
    {
        return;
    }

    pc->reason_len = ngx_http_siteflow_pg_line(pc->reason, sizeof(pc->reason),
                                               PQresultErrorMessage(res));
}


/* the first line of a libpq message, without surrounding blanks */

static size_t
ngx_http_siteflow_pg_line(u_char *buf, size_t size, const char *msg)
{
    size_t       len;
    const char  *p, *last;

    if (msg == NULL) {
        return 0;
    }

    while (*msg == ' ' || *msg == '\t') {
        msg++;
    }

    for (p = msg; *p != '\0' && *p != '\n' && *p != '\r'; p++) {
        /* void */
    }

    last = p;

    while (last > msg && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    len = ngx_min((size_t) (last - msg), size);

    ngx_memcpy(buf, msg, len);

    return len;
}


static size_t
ngx_http_siteflow_pg_conn_error(ngx_http_siteflow_pg_conn_t *pc, u_char *buf,
    size_t size)
{
    size_t  len;

    len = 0;

    if (pc->conn != NULL) {
        len = ngx_http_siteflow_pg_line(buf, size, PQerrorMessage(pc->conn));
    }

    if (len == 0) {
        len = ngx_min(sizeof("unknown error") - 1, size);
        ngx_memcpy(buf, "unknown error", len);
    }

    return len;
}


/*
 * OpenSSL may hold bytes it has already read from the socket and
 * decrypted: epoll does not report them, libpq has to be called again
 */

static ngx_uint_t
ngx_http_siteflow_pg_ssl_pending(ngx_http_siteflow_pg_conn_t *pc)
{
#if (NGX_OPENSSL)
    SSL  *ssl;

    if (pc->conn == NULL || !PQsslInUse(pc->conn)) {
        return 0;
    }

    ssl = PQsslStruct(pc->conn, "OpenSSL");

    return (ssl != NULL && SSL_pending(ssl) > 0);
#else
    return 0;
#endif
}
