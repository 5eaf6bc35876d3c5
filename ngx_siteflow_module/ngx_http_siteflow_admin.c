
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_shmlog.h"
#include "ngx_http_siteflow_log.h"
#include "ngx_http_siteflow_guard.h"
#include "ngx_http_siteflow_admin.h"
#include "sf_admin.h"
#include "sf_json.h"
#include "sf_qrec.h"
#include "sf_ring.h"


/*
 * The admin API and console ("siteflow_admin"), SPEC section 4, relative
 * to the location prefix:
 *
 *     GET, HEAD   ""                  the console page
 *     GET, HEAD   log                 ?limit= ?order_id= ?since= ?storefront=
 *     DELETE      log                 this storefront's entries, 204
 *     GET, PUT    log/enabled         the run-time logging switch
 *     GET, HEAD   queue               ?state= ?order_id= ?storefront= ?limit=
 *     POST        queue/{id}/retry
 *     POST        send/{order_id}     ?force=1
 *     GET, HEAD   metrics             Prometheus text format 0.0.4
 *
 * Every answer but the console and the metrics is JSON made with jansson;
 * every error is {"error":"..."}.  The log is read from a snapshot copied
 * under the zone mutex and rendered with no lock held.
 *
 * Against other web sites in an operator's browser: every call must name
 * this server in Host (a server_name of the server block, or a literal IP
 * address), so a page that rebinds its own DNS name to the admin's
 * address is refused; state-changing calls must carry the header
 * "X-SiteFlow-Admin", which a browser sends cross-origin only after a
 * CORS preflight that is never granted, and, with Origin, come from the
 * console's own origin.
 */


#define NGX_HTTP_SITEFLOW_ADMIN_LIMIT       100
#define NGX_HTTP_SITEFLOW_ADMIN_LIMIT_MAX   10000
#define NGX_HTTP_SITEFLOW_ADMIN_BODY_MAX    1024
#define NGX_HTTP_SITEFLOW_METRICS_SIZE      16384
#define NGX_HTTP_SITEFLOW_ADMIN_NO_HEADER   428


typedef struct {
    ngx_http_request_t            *r;
    json_t                        *entries;
    ngx_int_t                      rc;
} ngx_http_siteflow_admin_walk_t;


/* GET queue: the answer being built while the listing is read */
typedef struct {
    ngx_http_request_t            *request;
    json_t                        *root;       /* owned by the request */
    json_t                        *jobs;
    ngx_array_t                    items;
} ngx_http_siteflow_admin_list_t;


static ngx_int_t ngx_http_siteflow_admin_allowed(ngx_http_request_t *r,
    sf_admin_route_e route);
static ngx_int_t ngx_http_siteflow_admin_same_origin(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_admin_host(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_siteflow_admin_find_header(
    ngx_http_request_t *r, const char *name, size_t len);
static ngx_int_t ngx_http_siteflow_admin_console(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_admin_log(ngx_http_request_t *r);
static int ngx_http_siteflow_admin_log_entry(const sf_ring_entry_t *e,
    void *data);
static ngx_int_t ngx_http_siteflow_admin_log_clear(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_admin_log_enabled(ngx_http_request_t *r);
static void ngx_http_siteflow_admin_switch_body(ngx_http_request_t *r);
static void ngx_http_siteflow_metrics_counters(sf_prom_t *p,
    ngx_atomic_uint_t *c);
static void ngx_http_siteflow_metrics_queue(sf_prom_t *p, ngx_uint_t *jobs,
    ngx_array_t *oldest, ngx_array_t *breakers, size_t zsize, size_t zfree);
static void ngx_http_siteflow_metrics_latency(sf_prom_t *p,
    ngx_shm_zone_t *shm_zone);
static void ngx_http_siteflow_metrics_log(sf_prom_t *p,
    ngx_http_siteflow_ring_stats_t *st);
static ngx_int_t ngx_http_siteflow_admin_dispatch(ngx_http_request_t *r,
    sf_admin_route_e route, uint64_t id, const char *arg, size_t arg_len);
static ngx_int_t ngx_http_siteflow_admin_switch_set(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_admin_switch_put(ngx_http_request_t *r,
    ngx_shm_zone_t *shm_zone, ngx_http_siteflow_srv_conf_t *sscf);
static ngx_int_t ngx_http_siteflow_admin_queue(ngx_http_request_t *r);
static void ngx_http_siteflow_admin_listed(void *data, ngx_int_t rc);
static ngx_int_t ngx_http_siteflow_admin_list_answer(
    ngx_http_siteflow_admin_list_t *lc, ngx_int_t rc);
static ngx_int_t ngx_http_siteflow_admin_jobs(json_t *jobs,
    ngx_array_t *items);
static json_t *ngx_http_siteflow_admin_time(uint64_t ms);
static ngx_int_t ngx_http_siteflow_admin_delegated(ngx_http_request_t *r,
    ngx_int_t rc, uint64_t id);
static ngx_int_t ngx_http_siteflow_admin_metrics(ngx_http_request_t *r);
static ngx_int_t ngx_http_siteflow_admin_arg(ngx_http_request_t *r,
    char *name, ngx_str_t *value);
static ngx_int_t ngx_http_siteflow_admin_limit(ngx_http_request_t *r,
    ngx_uint_t *limit);
static json_t *ngx_http_siteflow_admin_string(ngx_http_request_t *r,
    const char *p, size_t len, ngx_uint_t truncated);
static ngx_int_t ngx_http_siteflow_admin_own(ngx_http_request_t *r,
    json_t *j);
static void ngx_http_siteflow_admin_json_cleanup(void *data);
static ngx_int_t ngx_http_siteflow_admin_header(ngx_http_request_t *r,
    char *key, char *value);
static ngx_int_t ngx_http_siteflow_admin_output(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, u_char *body, size_t len);


static ngx_str_t  ngx_http_siteflow_admin_json_type =
    ngx_string("application/json");
static ngx_str_t  ngx_http_siteflow_admin_html_type =
    ngx_string("text/html; charset=utf-8");
static ngx_str_t  ngx_http_siteflow_admin_prom_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");


/* per route: the methods allowed and the Allow header */

static struct {
    ngx_uint_t                     methods;
    char                          *allow;
} ngx_http_siteflow_admin_methods[] = {
    { 0, NULL },                                              /* NOT_FOUND */
    { NGX_HTTP_GET|NGX_HTTP_HEAD, "GET, HEAD" },              /* CONSOLE */
    { NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE,
      "GET, HEAD, DELETE" },                                  /* LOG */
    { NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_PUT, "GET, HEAD, PUT" },
    { NGX_HTTP_GET|NGX_HTTP_HEAD, "GET, HEAD" },              /* QUEUE */
    { NGX_HTTP_POST, "POST" },                                /* RETRY */
    { NGX_HTTP_POST, "POST" },                                /* SEND */
    { NGX_HTTP_GET|NGX_HTTP_HEAD, "GET, HEAD" },              /* METRICS */
    { 0, NULL }                                               /* BAD_ID */
};


ngx_int_t
ngx_http_siteflow_admin_handler(ngx_http_request_t *r)
{
    size_t                     arg_len;
    uint64_t                   id;
    ngx_int_t                  rc;
    ngx_str_t                  path;
    const char                *arg;
    sf_admin_route_e           route;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    path = r->uri;

    if (!clcf->regex && !clcf->exact_match && path.len >= clcf->name.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;

    } else if (clcf->exact_match) {
        ngx_str_null(&path);
    }

    id = 0;
    arg = NULL;
    arg_len = 0;

    route = sf_admin_route((const char *) path.data, path.len, &id, &arg,
                           &arg_len);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "siteflow admin: \"%V\" route:%d", &path, (int) route);

    rc = ngx_http_siteflow_admin_host(r);

    if (rc == NGX_DECLINED) {
        (void) ngx_http_discard_request_body(r);

        return ngx_http_siteflow_admin_error(r, NGX_HTTP_FORBIDDEN,
                                             "the Host header names neither "
                                             "a server_name of this server "
                                             "nor an IP address (DNS "
                                             "rebinding protection)");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (route == SF_ADMIN_NOT_FOUND) {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_NOT_FOUND,
                                             "unknown admin call");
    }

    if (route == SF_ADMIN_BAD_ID) {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid job or order id");
    }

    rc = ngx_http_siteflow_admin_allowed(r, route);

    if (rc == NGX_HTTP_NOT_ALLOWED) {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_NOT_ALLOWED,
                                             "method not allowed");
    }

    if (rc == NGX_HTTP_SITEFLOW_ADMIN_NO_HEADER) {
        (void) ngx_http_discard_request_body(r);

        return ngx_http_siteflow_admin_error(r, NGX_HTTP_FORBIDDEN,
                                             "a POST, PUT or DELETE needs "
                                             "the header \"X-SiteFlow-Admin:"
                                             " 1\" (cross-site request "
                                             "protection)");
    }

    if (rc == NGX_HTTP_FORBIDDEN) {
        (void) ngx_http_discard_request_body(r);

        return ngx_http_siteflow_admin_error(r, NGX_HTTP_FORBIDDEN,
                                             "cross-origin request refused");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_siteflow_admin_dispatch(r, route, id, arg, arg_len);
}


/* a request that passed the checks, to its call */

static ngx_int_t
ngx_http_siteflow_admin_dispatch(ngx_http_request_t *r,
    sf_admin_route_e route, uint64_t id, const char *arg, size_t arg_len)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   oid, force;

    switch (route) {

    case SF_ADMIN_CONSOLE:
        return ngx_http_siteflow_admin_console(r);

    case SF_ADMIN_LOG:
        if (r->method == NGX_HTTP_DELETE) {
            return ngx_http_siteflow_admin_log_clear(r);
        }

        return ngx_http_siteflow_admin_log(r);

    case SF_ADMIN_LOG_ENABLED:
        return ngx_http_siteflow_admin_log_enabled(r);

    case SF_ADMIN_QUEUE:
        return ngx_http_siteflow_admin_queue(r);

    case SF_ADMIN_QUEUE_RETRY:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "siteflow admin: retry job %uL", id);

        rc = ngx_http_siteflow_admin_retry(r, id);

        return ngx_http_siteflow_admin_delegated(r, rc, id);

    case SF_ADMIN_SEND:
        oid.data = (u_char *) arg;
        oid.len = arg_len;

        p = NULL;

        if (ngx_http_siteflow_admin_arg(r, "force", &force) == NGX_OK) {
            p = force.data;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "siteflow admin: send order \"%V\" force:%d", &oid,
                       (int) (p != NULL));

        rc = ngx_http_siteflow_admin_send(r, &oid,
                                          p != NULL
                                          && (ngx_strcmp(p, "1") == 0
                                              || ngx_strcmp(p, "true") == 0));

        return ngx_http_siteflow_admin_delegated(r, rc, 0);

    default: /* SF_ADMIN_METRICS */
        return ngx_http_siteflow_admin_metrics(r);
    }
}


/*
 * NGX_OK, NGX_HTTP_NOT_ALLOWED (Allow is set), NGX_HTTP_FORBIDDEN (another
 * origin), NGX_HTTP_SITEFLOW_ADMIN_NO_HEADER (no X-SiteFlow-Admin)
 */

static ngx_int_t
ngx_http_siteflow_admin_allowed(ngx_http_request_t *r, sf_admin_route_e route)
{
    ngx_table_elt_t  *h;

    if (r->method & ngx_http_siteflow_admin_methods[route].methods) {

        if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
            return NGX_OK;
        }

        /*
         * a custom header: a browser sends it cross-origin only after a
         * CORS preflight (OPTIONS), which this API never grants
         */

        h = ngx_http_siteflow_admin_find_header(r, "X-SiteFlow-Admin",
                                                sizeof("X-SiteFlow-Admin")
                                                - 1);

        if (h == NULL || h->value.len == 0) {
            return NGX_HTTP_SITEFLOW_ADMIN_NO_HEADER;
        }

        if (ngx_http_siteflow_admin_same_origin(r) != NGX_OK) {
            return NGX_HTTP_FORBIDDEN;
        }

        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) ngx_http_siteflow_admin_methods[route].allow;
    h->value.len = ngx_strlen(h->value.data);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_HTTP_NOT_ALLOWED;
}


/*
 * A browser sends Origin with a cross-site POST, PUT or DELETE: such a
 * request must name this host, so another site cannot make an operator's
 * browser (with its basic auth credentials) retry, send or clear.  Clients
 * that send no Origin (curl, scripts) pass.
 */

static ngx_int_t
ngx_http_siteflow_admin_same_origin(ngx_http_request_t *r)
{
    u_char           *p, *last;
    ngx_str_t         origin, host;
    ngx_table_elt_t  *h;

    ngx_str_null(&origin);

    h = ngx_http_siteflow_admin_find_header(r, "Origin",
                                            sizeof("Origin") - 1);
    if (h != NULL) {
        origin = h->value;
    }

    if (origin.len == 0) {
        return NGX_OK;
    }

    if (r->headers_in.host == NULL) {
        return NGX_DECLINED;
    }

    host = r->headers_in.host->value;

    p = ngx_strlcasestrn(origin.data, origin.data + origin.len,
                         (u_char *) "://", 3 - 1);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    p += 3;
    last = origin.data + origin.len;

    if ((size_t) (last - p) == host.len
        && ngx_strncasecmp(p, host.data, host.len) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * DNS rebinding: a page of another site whose name now resolves to this
 * server sends its own name in Host.  NGX_OK when Host is a server_name of
 * this server block (exact, wildcard or regex, as nginx matches them) or a
 * literal IPv4 or [IPv6] address, or when there is no Host (HTTP/1.0, not
 * a browser); NGX_DECLINED otherwise.
 */

static ngx_int_t
ngx_http_siteflow_admin_host(ngx_http_request_t *r)
{
    size_t                     n;
    u_char                    *name;
    ngx_str_t                  host;
    ngx_uint_t                 i;
    ngx_http_server_name_t        *sn;
    ngx_http_siteflow_srv_conf_t  *sscf;
#if (NGX_HAVE_INET6)
    u_char                     addr6[16];
#endif

    /* validated by nginx: lower case, without the port or a final dot */

    host = r->headers_in.server;

    if (host.len == 0) {
        return NGX_OK;
    }

    if (ngx_inet_addr(host.data, host.len) != INADDR_NONE) {
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)
    if (host.len > 2 && host.data[0] == '['
        && host.data[host.len - 1] == ']'
        && ngx_inet6_addr(host.data + 1, host.len - 2, addr6) == NGX_OK)
    {
        return NGX_OK;
    }
#endif

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    if (sscf->admin_names == NULL) {
        return NGX_DECLINED;
    }

    sn = sscf->admin_names->elts;

    for (i = 0; i < sscf->admin_names->nelts; i++) {

#if (NGX_PCRE)
        if (sn[i].regex != NULL) {
            if (ngx_regex_exec(sn[i].regex->regex, &host, NULL, 0) >= 0) {
                return NGX_OK;
            }

            continue;
        }
#endif

        n = sn[i].name.len;

        if (n == 0) {
            continue;
        }

        if (n == host.len
            && ngx_strncasecmp(sn[i].name.data, host.data, n) == 0)
        {
            return NGX_OK;
        }

        name = sn[i].name.data;

        /* ".example.com": example.com and every name under it */

        if (name[0] == '.') {
            if ((host.len == n - 1
                 && ngx_strncasecmp(name + 1, host.data, n - 1) == 0)
                || (host.len > n
                    && ngx_strncasecmp(name, host.data + host.len - n, n)
                       == 0))
            {
                return NGX_OK;
            }

            continue;
        }

        /* "*.example.com": every name under example.com */

        if (name[0] == '*') {
            if (host.len > n - 1
                && ngx_strncasecmp(name + 1, host.data + host.len - (n - 1),
                                   n - 1)
                   == 0)
            {
                return NGX_OK;
            }

            continue;
        }

        /* "www.example.*" */

        if (name[n - 1] == '*' && host.len > n - 1
            && ngx_strncasecmp(name, host.data, n - 1) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_siteflow_admin_init(ngx_conf_t *cf)
{
    ngx_uint_t                      s, i;
    ngx_http_server_name_t         *sn, *copy;
    ngx_http_core_srv_conf_t      **cscfp;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_siteflow_srv_conf_t   *sscf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {

        sscf = cscfp[s]->ctx->srv_conf[ngx_http_siteflow_module.ctx_index];

        sscf->admin_names = ngx_array_create(cf->pool,
                                        cscfp[s]->server_names.nelts + 1,
                                        sizeof(ngx_http_server_name_t));
        if (sscf->admin_names == NULL) {
            return NGX_ERROR;
        }

        sn = cscfp[s]->server_names.elts;

        for (i = 0; i < cscfp[s]->server_names.nelts; i++) {
            copy = ngx_array_push(sscf->admin_names);
            if (copy == NULL) {
                return NGX_ERROR;
            }

            *copy = sn[i];

            copy->name.data = ngx_pstrdup(cf->pool, &sn[i].name);
            if (copy->name.data == NULL && sn[i].name.len) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_siteflow_admin_find_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_int_t
ngx_http_siteflow_admin_console(ngx_http_request_t *r)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_siteflow_admin_header(r, "Content-Security-Policy",
                                       "default-src 'none'; "
                                       "style-src 'unsafe-inline'; "
                                       "script-src 'unsafe-inline'; "
                                       "connect-src 'self'; "
                                       "img-src data:; "
                                       "frame-ancestors 'none'")
        != NGX_OK
        || ngx_http_siteflow_admin_header(r, "X-Content-Type-Options",
                                          "nosniff")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_siteflow_admin_output(r, NGX_HTTP_OK,
                                          &ngx_http_siteflow_admin_html_type,
                                          (u_char *)
                                          ngx_http_siteflow_console_html,
                                          ngx_http_siteflow_console_html_len);
}


static ngx_int_t
ngx_http_siteflow_admin_log(ngx_http_request_t *r)
{
    uint64_t                         ms;
    ngx_int_t                        rc;
    ngx_str_t                        snap, order_id, since, storefront;
    ngx_uint_t                       limit;
    json_t                          *root;
    ngx_shm_zone_t                  *shm_zone;
    sf_ring_filter_t                 f;
    ngx_http_siteflow_admin_walk_t   w;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&f, sizeof(sf_ring_filter_t));

    if (ngx_http_siteflow_admin_limit(r, &limit) != NGX_OK) {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid \"limit\", expected "
                                             "1 to 10000");
    }

    f.limit = limit;

    rc = ngx_http_siteflow_admin_arg(r, "order_id", &order_id);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        f.order_id = (const char *) order_id.data;
        f.order_id_len = order_id.len;
    }

    rc = ngx_http_siteflow_admin_arg(r, "storefront", &storefront);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        f.storefront = (const char *) storefront.data;
        f.storefront_len = storefront.len;
    }

    rc = ngx_http_siteflow_admin_arg(r, "since", &since);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        if (sf_admin_parse_since((const char *) since.data, since.len, &ms)
            != 0)
        {
            return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                 "invalid \"since\", "
                                                 "expected milliseconds "
                                                 "since the epoch or an "
                                                 "ISO-8601 time");
        }

        f.since_ms = ms;
    }

    shm_zone = ngx_http_siteflow_log_zone();

    if (shm_zone == NULL) {
        return ngx_http_siteflow_admin_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "the log needs \"siteflow_zone\"");
    }

    rc = ngx_http_siteflow_ring_snapshot(shm_zone, r->pool, &snap);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    root = json_object();
    if (ngx_http_siteflow_admin_own(r, root) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w.r = r;
    w.rc = NGX_OK;
    w.entries = json_array();

    if (json_object_set_new(root, "entries", w.entries) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* no lock: the walk reads the copy */

    (void) sf_ring_walk(snap.data, snap.len, &f,
                        ngx_http_siteflow_admin_log_entry, &w);

    if (w.rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_siteflow_admin_json(r, NGX_HTTP_OK, json_incref(root));
}


static int
ngx_http_siteflow_admin_log_entry(const sf_ring_entry_t *e, void *data)
{
    ngx_http_siteflow_admin_walk_t  *w = data;

    char    time[SF_ADMIN_TIME_LEN + 1];
    json_t  *o;

    sf_admin_format_time(e->time_ms, time);

    o = json_object();
    if (o == NULL || json_array_append_new(w->entries, o) != 0) {
        w->rc = NGX_ERROR;
        return 1;
    }

    if (json_object_set_new(o, "id", json_integer((json_int_t) e->id))
        || json_object_set_new(o, "time", json_string(time))
        || json_object_set_new(o, "storefront",
                               ngx_http_siteflow_admin_string(w->r,
                                   e->storefront, e->storefront_len, 0))
        || json_object_set_new(o, "direction",
                               json_string(e->direction == SF_RING_OUT
                                           ? "out" : "in"))
        || json_object_set_new(o, "method",
                               ngx_http_siteflow_admin_string(w->r,
                                   e->method, e->method_len, 0))
        || json_object_set_new(o, "url",
                               ngx_http_siteflow_admin_string(w->r,
                                   e->url, e->url_len,
                                   e->flags & SF_RING_TRUNC_URL))
        || json_object_set_new(o, "status",
                               e->status ? json_integer(e->status)
                                         : json_null())
        || json_object_set_new(o, "duration_ms",
                               json_integer(e->duration_ms))
        || json_object_set_new(o, "order_id",
                               e->order_id_len
                               ? ngx_http_siteflow_admin_string(w->r,
                                     e->order_id, e->order_id_len, 0)
                               : json_null())
        || json_object_set_new(o, "request",
                               e->request_len
                               ? ngx_http_siteflow_admin_string(w->r,
                                     e->request, e->request_len,
                                     e->flags & SF_RING_TRUNC_REQUEST)
                               : json_null())
        || json_object_set_new(o, "response",
                               e->response_len
                               ? ngx_http_siteflow_admin_string(w->r,
                                     e->response, e->response_len,
                                     e->flags & SF_RING_TRUNC_RESPONSE)
                               : json_null()))
    {
        w->rc = NGX_ERROR;
        return 1;
    }

    return 0;
}


static ngx_int_t
ngx_http_siteflow_admin_log_clear(ngx_http_request_t *r)
{
    ngx_uint_t                     n;
    ngx_shm_zone_t                *shm_zone;
    ngx_http_siteflow_srv_conf_t  *sscf;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    shm_zone = ngx_http_siteflow_log_zone();

    if (shm_zone == NULL) {
        return ngx_http_siteflow_admin_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "the log needs \"siteflow_zone\"");
    }

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);

    n = ngx_http_siteflow_ring_clear(shm_zone, &sscf->storefront);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "siteflow: log of storefront \"%V\" cleared, %ui entries",
                  &sscf->storefront, n);

    return ngx_http_siteflow_admin_output(r, NGX_HTTP_NO_CONTENT, NULL, NULL,
                                          0);
}


static ngx_int_t
ngx_http_siteflow_admin_log_enabled(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_PUT) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_siteflow_admin_switch_set(r);
    }

    if (r->headers_in.content_length_n > NGX_HTTP_SITEFLOW_ADMIN_BODY_MAX) {
        return ngx_http_siteflow_admin_error(r,
                                             NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                             "request body too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                         ngx_http_siteflow_admin_switch_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_siteflow_admin_switch_body(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_siteflow_admin_switch_set(r));
}


/*
 * GET: the switch of this server's storefront.  PUT {"enabled": true,
 * false or null}: null removes the run-time switch ("siteflow_log"
 * applies again).  Both answer {"storefront","enabled","configured",
 * "override"}.
 */

/*
 * PUT log/enabled: {"enabled": true, false or null}; NGX_DECLINED once
 * the switch is set (the answer is its state), else the refusal
 */

static ngx_int_t
ngx_http_siteflow_admin_switch_put(ngx_http_request_t *r,
    ngx_shm_zone_t *shm_zone, ngx_http_siteflow_srv_conf_t *sscf)
{
    u_char        *p;
    size_t         len;
    ngx_int_t      value;
    ngx_buf_t     *b;
    json_t        *root, *enabled;
    json_error_t   err;
    u_char         msg[256];

    p = NULL;
    len = 0;

    if (r->request_body != NULL && r->request_body->bufs != NULL) {
        b = r->request_body->bufs->buf;

        if (r->request_body->bufs->next != NULL || b->in_file
            || (size_t) (b->last - b->pos)
               > NGX_HTTP_SITEFLOW_ADMIN_BODY_MAX)
        {
            return ngx_http_siteflow_admin_error(r,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "request body too large");
        }

        p = b->pos;
        len = b->last - b->pos;
    }

    /* one JSON policy on every endpoint: a key twice is refused */

    root = (len != 0) ? json_loadb((char *) p, len,
                                   JSON_REJECT_DUPLICATES, &err)
                      : NULL;

    if (root == NULL && len != 0
        && json_error_code(&err) == json_error_duplicate_key)
    {
        ngx_snprintf(msg, sizeof(msg) - 1, "invalid JSON at line %d, "
                     "column %d: %s; expected {\"enabled\": true, "
                     "false or null}%Z", err.line, err.column, err.text);

        return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                             (char *) msg);
    }

    if (root == NULL) {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                             "expected a JSON body "
                                             "{\"enabled\": true, false "
                                             "or null}");
    }

    if (ngx_http_siteflow_admin_own(r, root) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    enabled = json_is_object(root) ? json_object_get(root, "enabled")
                                   : NULL;

    if (enabled == NULL
        || !(json_is_boolean(enabled) || json_is_null(enabled)))
    {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                             "expected a JSON body "
                                             "{\"enabled\": true, false "
                                             "or null}");
    }

    value = json_is_null(enabled) ? NGX_HTTP_SITEFLOW_SWITCH_UNSET
            : json_is_true(enabled) ? NGX_HTTP_SITEFLOW_SWITCH_ON
            : NGX_HTTP_SITEFLOW_SWITCH_OFF;

    if (ngx_http_siteflow_log_switch_set(shm_zone, &sscf->storefront,
                                         value)
        != NGX_OK)
    {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_CONFLICT,
                                             "no room for this "
                                             "storefront's run-time "
                                             "switch (at most 32 "
                                             "storefronts, names of at "
                                             "most 128 bytes)");
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "siteflow: logging of storefront \"%V\" switched %s "
                  "at run time", &sscf->storefront,
                  value == NGX_HTTP_SITEFLOW_SWITCH_UNSET
                  ? "back to the configuration"
                  : (value == NGX_HTTP_SITEFLOW_SWITCH_ON ? "on" : "off"));

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_siteflow_admin_switch_set(ngx_http_request_t *r)
{
    json_t                        *root;
    ngx_int_t                      sw, rc;
    ngx_shm_zone_t                *shm_zone;
    ngx_http_siteflow_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_siteflow_module);
    shm_zone = ngx_http_siteflow_log_zone();

    if (shm_zone == NULL) {
        return ngx_http_siteflow_admin_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "the log needs \"siteflow_zone\"");
    }

    if (r->method == NGX_HTTP_PUT) {
        rc = ngx_http_siteflow_admin_switch_put(r, shm_zone, sscf);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    sw = ngx_http_siteflow_log_switch(shm_zone, &sscf->storefront);

    root = json_object();
    if (ngx_http_siteflow_admin_own(r, root) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_object_set_new(root, "storefront",
                            ngx_http_siteflow_admin_string(r,
                                (const char *) sscf->storefront.data,
                                sscf->storefront.len, 0))
        || json_object_set_new(root, "enabled",
                               json_boolean(
                                   ngx_http_siteflow_log_enabled(sscf)))
        || json_object_set_new(root, "configured", json_boolean(sscf->log))
        || json_object_set_new(root, "override",
                               sw == NGX_HTTP_SITEFLOW_SWITCH_UNSET
                               ? json_null()
                               : json_boolean(
                                     sw == NGX_HTTP_SITEFLOW_SWITCH_ON)))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_siteflow_admin_json(r, NGX_HTTP_OK, json_incref(root));
}


static ngx_int_t
ngx_http_siteflow_admin_queue(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_str_t                         state;
    json_t                           *root, *jobs;
    ngx_http_siteflow_admin_list_t   *lc;
    ngx_http_siteflow_queue_filter_t  f;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&f, sizeof(ngx_http_siteflow_queue_filter_t));

    f.state = -1;

    if (ngx_http_siteflow_admin_limit(r, &f.limit) != NGX_OK) {
        return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid \"limit\", expected "
                                             "1 to 10000");
    }

    rc = ngx_http_siteflow_admin_arg(r, "state", &state);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        f.state = sf_qstate_parse((const char *) state.data, state.len);

        if (f.state == -1) {
            return ngx_http_siteflow_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                 "invalid \"state\", "
                                                 "expected pending, "
                                                 "retrying, done, failed "
                                                 "or skipped");
        }
    }

    if (ngx_http_siteflow_admin_arg(r, "order_id", &f.order_id)
        == NGX_ERROR
        || ngx_http_siteflow_admin_arg(r, "storefront", &f.storefront)
           == NGX_ERROR)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    root = json_object();
    if (ngx_http_siteflow_admin_own(r, root) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    jobs = json_array();

    if (json_object_set_new(root, "jobs", jobs) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lc = ngx_palloc(r->pool, sizeof(ngx_http_siteflow_admin_list_t));
    if (lc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lc->request = r;
    lc->root = root;
    lc->jobs = jobs;

    rc = ngx_http_siteflow_queue_list_async(r->pool, &f, &lc->items,
                                            ngx_http_siteflow_admin_listed,
                                            lc);
    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_siteflow_admin_list_answer(lc, rc);
}


/* the listing read from PostgreSQL */

static void
ngx_http_siteflow_admin_listed(void *data, ngx_int_t rc)
{
    ngx_http_siteflow_admin_list_t  *lc = data;

    ngx_http_finalize_request(lc->request,
                              ngx_http_siteflow_admin_list_answer(lc, rc));
}


static ngx_int_t
ngx_http_siteflow_admin_list_answer(ngx_http_siteflow_admin_list_t *lc,
    ngx_int_t rc)
{
    ngx_http_request_t  *r;

    r = lc->request;

    if (rc == NGX_DECLINED) {
        return ngx_http_siteflow_admin_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "no \"siteflow_spool\" is "
                                             "configured");
    }

    if (rc != NGX_OK) {
        return ngx_http_siteflow_admin_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "the queue cannot be read now");
    }

    if (ngx_http_siteflow_admin_jobs(lc->jobs, &lc->items) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_siteflow_admin_json(r, NGX_HTTP_OK,
                                        json_incref(lc->root));
}

/* the listed jobs as {"id","kind","storefront","order_id","state",
   "attempts","next_attempt","last_error","created"} objects */

static ngx_int_t
ngx_http_siteflow_admin_jobs(json_t *jobs, ngx_array_t *items)
{
    u_char                          *err, idbuf[NGX_INT64_LEN + 1];
    json_t                          *o;
    ngx_uint_t                       i;
    ngx_http_siteflow_queue_item_t  *it;

    it = items->elts;

    for (i = 0; i < items->nelts; i++) {

        ngx_sprintf(idbuf, "%uL%Z", it[i].id);

        err = it[i].error.len ? it[i].error.data : (u_char *) "";

        o = json_pack("{s:s, s:s, s:s#, s:s#, s:s, s:i, s:o, s:s#, s:o}",
                      "id", (char *) idbuf,
                      "kind", ngx_http_siteflow_kind_name(it[i].kind),
                      "storefront", it[i].storefront.data,
                      (int) it[i].storefront.len,
                      "order_id", it[i].order_id.data,
                      (int) it[i].order_id.len,
                      "state", sf_qstate_name(it[i].state),
                      "attempts", (json_int_t) it[i].attempts,
                      "next_attempt",
                      (it[i].state == SF_QSTATE_PENDING
                       || it[i].state == SF_QSTATE_RETRYING)
                      ? ngx_http_siteflow_admin_time(it[i].next_ms)
                      : json_null(),
                      "last_error", (char *) err, (int) it[i].error.len,
                      "created",
                      ngx_http_siteflow_admin_time(it[i].created_ms));

        if (o == NULL || json_array_append_new(jobs, o) != 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static json_t *
ngx_http_siteflow_admin_time(uint64_t ms)
{
    u_char     buf[32];
    ngx_tm_t   tm;

    if (ms == 0) {
        return json_null();
    }

    ngx_gmtime((time_t) (ms / 1000), &tm);

    ngx_snprintf(buf, sizeof(buf), "%4d-%02d-%02dT%02d:%02d:%02d.%03dZ%Z",
                 tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                 tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                 (int) (ms % 1000));

    return json_string((char *) buf);
}



/*
 * retry and send answer the request themselves (NGX_DONE) or return a
 * status: an error gets a JSON error, a success {"job": id} or {}
 */

static ngx_int_t
ngx_http_siteflow_admin_delegated(ngx_http_request_t *r, ngx_int_t rc,
    uint64_t id)
{
    json_t      *j;
    const char  *msg;

    /*
     * the retry and send calls answer the request themselves (NGX_DONE
     * when the answer waits for the spool, or the rc of the answer sent);
     * an HTTP status is an error for us to answer
     */

    if (rc == NGX_DONE || rc == NGX_OK || rc == NGX_AGAIN
        || rc == NGX_ERROR)
    {
        return rc;
    }

    if (rc >= NGX_HTTP_OK && rc < NGX_HTTP_SPECIAL_RESPONSE) {
        j = (id != 0) ? json_pack("{sI}", "job", (json_int_t) id)
                      : json_object();

        return ngx_http_siteflow_admin_json(r, rc, j);
    }

    switch (rc) {
    case NGX_HTTP_NOT_FOUND:
        msg = "no such job or order";
        break;
    case NGX_HTTP_CONFLICT:
        msg = "the job is not in a state that allows this";
        break;
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        msg = "the delivery queue is not available";
        break;
    case NGX_HTTP_BAD_REQUEST:
        msg = "invalid request";
        break;
    default:
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        msg = "internal error";
    }

    return ngx_http_siteflow_admin_error(r, rc, msg);
}


static ngx_int_t
ngx_http_siteflow_admin_metrics(ngx_http_request_t *r)
{
    char                            *buf;
    size_t                           size, zsize, zfree;
    ngx_int_t                        rc;
    ngx_uint_t                       jobs[5];
    sf_prom_t                        p;
    ngx_array_t                      oldest, breakers;
    ngx_shm_zone_t                  *shm_zone;
    ngx_atomic_uint_t                c[NGX_HTTP_SITEFLOW_CNT_MAX];
    ngx_http_siteflow_ring_stats_t   st;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    shm_zone = ngx_http_siteflow_log_zone();

    ngx_http_siteflow_counters(shm_zone, c);
    ngx_http_siteflow_ring_stats(shm_zone, &st);

    ngx_memzero(jobs, sizeof(jobs));
    rc = ngx_http_siteflow_queue_stats(jobs);

    /* per storefront (rc == NGX_OK: there is a spool) */

    size = NGX_HTTP_SITEFLOW_METRICS_SIZE;

    if (rc == NGX_OK) {
        if (ngx_http_siteflow_queue_oldest(r->pool, &oldest) != NGX_OK
            || ngx_http_siteflow_queue_breakers(r->pool, &breakers) != NGX_OK
            || ngx_http_siteflow_queue_zone(&zsize, &zfree) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* a line takes at most 128 bytes of name and escapes: 2 * 128 */
        size += (oldest.nelts + 2 * breakers.nelts) * 512;
    }

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sf_prom_init(&p, buf, size);

    ngx_http_siteflow_metrics_counters(&p, c);

    if (rc == NGX_OK) {
        ngx_http_siteflow_metrics_queue(&p, jobs, &oldest, &breakers, zsize,
                                        zfree);
    }

    ngx_http_siteflow_metrics_latency(&p, shm_zone);
    ngx_http_siteflow_metrics_log(&p, &st);

    if (p.overflow) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "siteflow: metrics do not fit in %d bytes",
                      NGX_HTTP_SITEFLOW_METRICS_SIZE);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_siteflow_admin_output(r, NGX_HTTP_OK,
                                          &ngx_http_siteflow_admin_prom_type,
                                          (u_char *) buf, p.len);
}


/* the counters of the zone: Ship API, hooks, postbacks, deliveries */

static void
ngx_http_siteflow_metrics_counters(sf_prom_t *p, ngx_atomic_uint_t *c)
{
    ngx_uint_t  i;

    sf_prom_family(p, "siteflow_info", "gauge",
                   "The module version, always 1.");
    sf_prom_sample(p, "siteflow_info", "version",
                   NGX_HTTP_SITEFLOW_VERSION, 1);

    sf_prom_family(p, "siteflow_signature_checks_total", "counter",
                   "Ship API signature checks by result.");

    for (i = 0; i < NGX_HTTP_SITEFLOW_SIG_MAX; i++) {
        sf_prom_sample(p, "siteflow_signature_checks_total", "result",
                       ngx_http_siteflow_sig_result_name(i),
                       c[NGX_HTTP_SITEFLOW_CNT_SIG + i]);
    }

    sf_prom_family(p, "siteflow_shipment_requests_invalid_total", "counter",
                   "Ship API requests refused by shipment validation.");
    sf_prom_sample(p, "siteflow_shipment_requests_invalid_total", NULL,
                   NULL, c[NGX_HTTP_SITEFLOW_CNT_SHIP_INVALID]);

    sf_prom_family(p, "siteflow_shipment_responses_mapped_total", "counter",
                   "Ship API responses turned into 400 for SiteFlow.");
    sf_prom_sample(p, "siteflow_shipment_responses_mapped_total", NULL,
                   NULL, c[NGX_HTTP_SITEFLOW_CNT_SHIP_MAPPED]);

    sf_prom_family(p, "siteflow_nonce_evictions_total", "counter",
                   "Unexpired nonces evicted from a full replay cache.");
    sf_prom_sample(p, "siteflow_nonce_evictions_total", NULL, NULL,
                   c[NGX_HTTP_SITEFLOW_CNT_NONCE_EVICTED]);

    sf_prom_family(p, "siteflow_hooks_total", "counter",
                   "PrintNow webhooks by outcome.");
    sf_prom_sample(p, "siteflow_hooks_total", "outcome", "accepted",
                   c[NGX_HTTP_SITEFLOW_CNT_HOOK_ACCEPTED]);
    sf_prom_sample(p, "siteflow_hooks_total", "outcome", "skipped",
                   c[NGX_HTTP_SITEFLOW_CNT_HOOK_SKIPPED]);
    sf_prom_sample(p, "siteflow_hooks_total", "outcome", "rejected",
                   c[NGX_HTTP_SITEFLOW_CNT_HOOK_REJECTED]);

    sf_prom_family(p, "siteflow_postbacks_total", "counter",
                   "SiteFlow postbacks by outcome.");
    sf_prom_sample(p, "siteflow_postbacks_total", "outcome", "accepted",
                   c[NGX_HTTP_SITEFLOW_CNT_POSTBACK_ACCEPTED]);
    sf_prom_sample(p, "siteflow_postbacks_total", "outcome", "duplicate",
                   c[NGX_HTTP_SITEFLOW_CNT_POSTBACK_DUPLICATE]);
    sf_prom_sample(p, "siteflow_postbacks_total", "outcome", "rejected",
                   c[NGX_HTTP_SITEFLOW_CNT_POSTBACK_REJECTED]);

    sf_prom_family(p, "siteflow_spool_unavailable_total", "counter",
                   "Hooks and postbacks answered 503 because the spool "
                   "could not make the job durable.");
    sf_prom_sample(p, "siteflow_spool_unavailable_total", NULL, NULL,
                   c[NGX_HTTP_SITEFLOW_CNT_SPOOL_UNAVAILABLE]);

    sf_prom_family(p, "siteflow_deliveries_total", "counter",
                   "Delivery steps (HTTP calls of queued jobs) by outcome.");
    sf_prom_sample(p, "siteflow_deliveries_total", "outcome", "done",
                   c[NGX_HTTP_SITEFLOW_CNT_DELIVERY_DONE]);
    sf_prom_sample(p, "siteflow_deliveries_total", "outcome", "retry",
                   c[NGX_HTTP_SITEFLOW_CNT_DELIVERY_RETRY]);
    sf_prom_sample(p, "siteflow_deliveries_total", "outcome", "failed",
                   c[NGX_HTTP_SITEFLOW_CNT_DELIVERY_FAILED]);
    sf_prom_sample(p, "siteflow_deliveries_total", "outcome", "ambiguous",
                   c[NGX_HTTP_SITEFLOW_CNT_DELIVERY_AMBIGUOUS]);
}


/* the queue (with a spool): jobs by state, oldest, breakers, its zone */

static void
ngx_http_siteflow_metrics_queue(sf_prom_t *p, ngx_uint_t *jobs,
    ngx_array_t *oldest, ngx_array_t *breakers, size_t zsize, size_t zfree)
{
    char                                state[64];
    uint64_t                            now, damaged_bytes, forgotten;
    ngx_uint_t                          i, damaged, index_entries;
    ngx_time_t                         *tp;
    ngx_http_siteflow_queue_oldest_t   *o;
    ngx_http_siteflow_queue_breaker_t  *b;

    sf_prom_family(p, "siteflow_queue_backend_info", "gauge",
                   "The queue's backend (spool or postgresql) and this "
                   "edge's host name.");
    ngx_cpystrn((u_char *) state, ngx_cycle->hostname.data,
                ngx_min(ngx_cycle->hostname.len + 1, sizeof(state)));
    sf_prom_sample2(p, "siteflow_queue_backend_info", "backend",
                    ngx_http_siteflow_queue_backend(), "edge", state, 1);

    sf_prom_family(p, "siteflow_jobs", "gauge",
                   "Jobs in the queue by state.");

    for (i = 0; i < 5; i++) {
        ngx_cpystrn((u_char *) state,
                    (u_char *) sf_qstate_name((int) i), sizeof(state));
        sf_prom_sample(p, "siteflow_jobs", "state", state, jobs[i]);
    }

    sf_prom_family(p, "siteflow_jobs_oldest_age_seconds", "gauge",
                   "Age of the oldest pending, retrying and failed "
                   "job of each storefront (absent: no such job).");

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;    /* as created_ms */
    o = oldest->elts;

    for (i = 0; i < oldest->nelts; i++) {
        ngx_cpystrn((u_char *) state,
                    (u_char *) sf_qstate_name((int) o[i].state),
                    sizeof(state));
        sf_prom_sample2(p, "siteflow_jobs_oldest_age_seconds",
                        "storefront", (char *) o[i].storefront.data,
                        "state", state,
                        now > o[i].created_ms
                        ? (now - o[i].created_ms) / 1000 : 0);
    }

    sf_prom_family(p, "siteflow_breaker_open", "gauge",
                   "1 while deliveries of a storefront wait for its "
                   "failing upstream (one probe job at a time).");

    b = breakers->elts;

    for (i = 0; i < breakers->nelts; i++) {
        sf_prom_sample(p, "siteflow_breaker_open", "storefront",
                       (char *) b[i].storefront.data,
                       b[i].failures ? 1 : 0);
    }

    sf_prom_family(p, "siteflow_breaker_failures", "gauge",
                   "Retryable failures in a row of a storefront's "
                   "upstream calls.");

    for (i = 0; i < breakers->nelts; i++) {
        sf_prom_sample(p, "siteflow_breaker_failures", "storefront",
                       (char *) b[i].storefront.data, b[i].failures);
    }

    sf_prom_family(p, "siteflow_spool_zone_size_bytes", "gauge",
                   "Bytes of the siteflow_spool shared memory (size=), "
                   "which holds the job table and the sent-orders "
                   "index.");
    sf_prom_sample(p, "siteflow_spool_zone_size_bytes", NULL, NULL,
                   zsize);

    sf_prom_family(p, "siteflow_spool_zone_free_bytes", "gauge",
                   "Free pages of the siteflow_spool shared memory; "
                   "when none are left, hooks and postbacks get 503.");
    sf_prom_sample(p, "siteflow_spool_zone_free_bytes", NULL, NULL,
                   zfree);

    ngx_http_siteflow_queue_damage(&damaged, &damaged_bytes);

    sf_prom_family(p, "siteflow_spool_damaged_total", "counter",
                   "Damaged stretches of spool files skipped when "
                   "nginx started (the records after them were "
                   "recovered).");
    sf_prom_sample(p, "siteflow_spool_damaged_total", NULL, NULL, damaged);
    sf_prom_family(p, "siteflow_spool_damaged_bytes_total", "counter",
                   "Bytes of spool files skipped as damaged when nginx "
                   "started.");
    sf_prom_sample(p, "siteflow_spool_damaged_bytes_total", NULL, NULL,
                   damaged_bytes);

    ngx_http_siteflow_queue_index(&index_entries, &forgotten);

    sf_prom_family(p, "siteflow_index_entries", "gauge",
                   "Entries of the sent-orders index in the siteflow_spool "
                   "shared memory (orders queued or sent, and the "
                   "horizon of what it forgot).");
    sf_prom_sample(p, "siteflow_index_entries", NULL, NULL, index_entries);
    sf_prom_family(p, "siteflow_index_forgotten_total", "counter",
                   "Orders the sent-orders index forgot (index_retention) "
                   "since nginx started; a forgotten order is looked up "
                   "in SiteFlow before it is created again.");
    sf_prom_sample(p, "siteflow_index_forgotten_total", NULL, NULL,
                   forgotten);
}


/* the upstream latency histograms */

static void
ngx_http_siteflow_metrics_latency(sf_prom_t *p, ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t         i, u;
    ngx_atomic_uint_t  lat[NGX_HTTP_SITEFLOW_LATENCY_BUCKETS + 1];
    ngx_atomic_uint_t  sum;
    uint64_t           bounds[NGX_HTTP_SITEFLOW_LATENCY_BUCKETS];
    uint64_t           counts[NGX_HTTP_SITEFLOW_LATENCY_BUCKETS + 1];

    sf_prom_family(p, "siteflow_upstream_request_duration_seconds",
                   "histogram",
                   "Duration of calls to SiteFlow and PrintNow.");

    for (i = 0; i < NGX_HTTP_SITEFLOW_LATENCY_BUCKETS; i++) {
        bounds[i] = ngx_http_siteflow_latency_bounds[i];
    }

    for (u = 0; u < NGX_HTTP_SITEFLOW_UPSTREAMS; u++) {
        ngx_http_siteflow_latency_get(shm_zone, u, lat, &sum);

        for (i = 0; i <= NGX_HTTP_SITEFLOW_LATENCY_BUCKETS; i++) {
            counts[i] = lat[i];
        }

        sf_prom_histogram(p, "siteflow_upstream_request_duration_seconds",
                          "upstream", u == 0 ? "siteflow" : "printnow",
                          bounds, counts, NGX_HTTP_SITEFLOW_LATENCY_BUCKETS,
                          sum);
    }
}


/* the Site Flow Log ring and its zone */

static void
ngx_http_siteflow_metrics_log(sf_prom_t *p,
    ngx_http_siteflow_ring_stats_t *st)
{
    sf_prom_family(p, "siteflow_log_entries", "gauge",
                   "Entries in the Site Flow Log (not cleared).");
    sf_prom_sample(p, "siteflow_log_entries", NULL, NULL, st->entries);

    sf_prom_family(p, "siteflow_log_used_bytes", "gauge",
                   "Bytes of the log ring in use.");
    sf_prom_sample(p, "siteflow_log_used_bytes", NULL, NULL, st->used);

    sf_prom_family(p, "siteflow_log_size_bytes", "gauge",
                   "Bytes of the log ring.");
    sf_prom_sample(p, "siteflow_log_size_bytes", NULL, NULL, st->size);

    sf_prom_family(p, "siteflow_log_overwritten_total", "counter",
                   "Log entries dropped to make room for newer ones.");
    sf_prom_sample(p, "siteflow_log_overwritten_total", NULL, NULL,
                   st->overwritten);

    sf_prom_family(p, "siteflow_zone_free_bytes", "gauge",
                   "Free pages of the siteflow_zone shared memory.");
    sf_prom_sample(p, "siteflow_zone_free_bytes", NULL, NULL,
                   st->zone_free);
}


/* NGX_OK and the unescaped value, NGX_DECLINED if absent or empty */

static ngx_int_t
ngx_http_siteflow_admin_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   raw;

    ngx_str_null(value);

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK
        || raw.len == 0)
    {
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(r->pool, raw.len + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    dst = value->data;
    src = raw.data;

    ngx_unescape_uri(&dst, &src, raw.len, NGX_UNESCAPE_URI);

    *dst = '\0';
    value->len = dst - value->data;

    return value->len ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_siteflow_admin_limit(ngx_http_request_t *r, ngx_uint_t *limit)
{
    ngx_int_t  n;
    ngx_str_t  v;

    *limit = NGX_HTTP_SITEFLOW_ADMIN_LIMIT;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) != NGX_OK) {
        return NGX_OK;
    }

    n = ngx_atoi(v.data, v.len);

    if (n < 1 || n > NGX_HTTP_SITEFLOW_ADMIN_LIMIT_MAX) {
        return NGX_ERROR;
    }

    *limit = n;

    return NGX_OK;
}


/*
 * A JSON string of bytes that may not be UTF-8: invalid sequences become
 * U+FFFD; a field the ring cut ends with "... [truncated]".
 */

static json_t *
ngx_http_siteflow_admin_string(ngx_http_request_t *r, const char *p,
    size_t len, ngx_uint_t truncated)
{
    u_char  *s, *d;
    json_t  *j;

    static u_char  mark[] = "... [truncated]";

    if (!truncated) {
        j = json_stringn(p, len);
        if (j != NULL) {
            return j;
        }
    }

    s = ngx_pnalloc(r->pool, len * 3 + sizeof(mark));
    if (s == NULL) {
        return NULL;
    }

    d = s + sf_json_clean((char *) s, len * 3, p, len, 0);

    if (truncated) {
        d = ngx_cpymem(d, mark, sizeof(mark) - 1);
    }

    return json_stringn((char *) s, d - s);
}


/* j is json_decref()ed with the request pool */

static ngx_int_t
ngx_http_siteflow_admin_own(ngx_http_request_t *r, json_t *j)
{
    ngx_pool_cleanup_t  *cln;

    if (j == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(j);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_siteflow_admin_json_cleanup;
    cln->data = j;

    return NGX_OK;
}


static void
ngx_http_siteflow_admin_json_cleanup(void *data)
{
    json_decref(data);
}


ngx_int_t
ngx_http_siteflow_admin_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *j)
{
    u_char  *buf;
    size_t   len;

    if (ngx_http_siteflow_admin_own(r, j) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = json_dumpb(j, NULL, 0, JSON_COMPACT);
    if (len == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    buf = ngx_pnalloc(r->pool, len + 1);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_dumpb(j, (char *) buf, len, JSON_COMPACT) != len) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    buf[len] = '\n';

    return ngx_http_siteflow_admin_output(r, status,
                                          &ngx_http_siteflow_admin_json_type,
                                          buf, len + 1);
}


ngx_int_t
ngx_http_siteflow_admin_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *message)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "siteflow admin: %ui \"%s\"", status, message);

    return ngx_http_siteflow_admin_json(r, status,
                                        json_pack("{ss}", "error", message));
}


static ngx_int_t
ngx_http_siteflow_admin_header(ngx_http_request_t *r, char *key,
    char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_admin_output(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_siteflow_admin_header(r, "Cache-Control", "no-store")
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (type != NULL) {
        r->headers_out.content_type = *type;
        r->headers_out.content_type_len = type->len;
        r->headers_out.content_type_lowcase = NULL;
    }

    if (len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
