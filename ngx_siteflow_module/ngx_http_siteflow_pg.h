
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_PG_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <libpq-fe.h>


/*
 * libpq's asynchronous API on nginx's event loop, the way libcurl is
 * driven in ngx_http_siteflow_curl.c: a small pool of connections per
 * worker, each connected with PQconnectStart()/PQconnectPoll(), its
 * PQsocket() wrapped as an nginx connection, statements sent with
 * PQsendQueryParams() and their results read as the socket becomes
 * readable.  No libpq call here ever blocks the worker.
 *
 * One statement at a time per connection; statements wait in one FIFO
 * per worker for a free connection.  A statement is one implicit
 * transaction (autocommit): its handler sees the result only after the
 * COMMIT, so "answered after it is durable" holds.
 *
 * When no connection can be made, statements fail at once with a reason
 * (the callers answer 503); the pool reconnects by itself with backoff
 * (100 ms doubling to 5 s).
 */


typedef struct ngx_http_siteflow_pg_query_s  ngx_http_siteflow_pg_query_t;

/*
 * res: the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK), freed by the
 * caller with PQclear(); NULL when the statement failed or its outcome
 * is unknown (the connection broke while it ran), with err set to a
 * one-line reason (never the connection URL or the password).
 */
typedef void (*ngx_http_siteflow_pg_pt)(void *data, PGresult *res,
    ngx_str_t *err);

/*
 * called once on every new connection, before any statement is sent on
 * it; it returns the SQL to run there (one string, several statements
 * allowed, run with PQsendQuery), or NULL for none.  The connection is
 * used for statements only if that SQL succeeded; otherwise it is closed
 * with the error logged at "alert" and retried after backoff.
 */
typedef const char *(*ngx_http_siteflow_pg_setup_pt)(void);


typedef struct {
    ngx_str_t                        conninfo;   /* a libpq URI, NUL-ended */
    ngx_uint_t                       pool;       /* connections, >= 1 */
    ngx_msec_t                       connect_timeout;
    ngx_http_siteflow_pg_setup_pt    setup;
    ngx_log_t                       *log;
} ngx_http_siteflow_pg_conf_t;


/* starts connecting (a worker process, at init_process) */
ngx_int_t ngx_http_siteflow_pg_init_process(ngx_cycle_t *cycle,
    ngx_http_siteflow_pg_conf_t *conf);

/* closes every connection; statements still waiting get err "exiting" */
void ngx_http_siteflow_pg_exit_process(ngx_cycle_t *cycle);

/*
 * queue a statement: sql with $1..$n, nparams text parameters (values
 * copied; a NULL value is SQL NULL; lengths may be NULL for
 * NUL-terminated values).  The handler is called exactly once, never
 * from within this call.  NULL: out of memory (the handler is not
 * called).
 */
ngx_http_siteflow_pg_query_t *ngx_http_siteflow_pg_query(const char *sql,
    int nparams, const char *const *values, const int *lengths,
    ngx_http_siteflow_pg_pt handler, void *data);

/* the same with a statement prepared on every connection (by the setup
   SQL's PREPARE name AS ...): no parse and plan for each call */
ngx_http_siteflow_pg_query_t *ngx_http_siteflow_pg_prepared(
    const char *name, int nparams, const char *const *values,
    const int *lengths, ngx_http_siteflow_pg_pt handler, void *data);

/* the handler of q will not be called (its owner went away) */
void ngx_http_siteflow_pg_cancel(ngx_http_siteflow_pg_query_t *q);

/* connections ready for statements now, and statements waiting */
ngx_uint_t ngx_http_siteflow_pg_ready(void);
ngx_uint_t ngx_http_siteflow_pg_waiting(void);


#endif /* _NGX_HTTP_SITEFLOW_PG_H_INCLUDED_ */
