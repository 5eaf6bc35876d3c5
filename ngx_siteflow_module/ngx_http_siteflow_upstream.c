
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <curl/curl.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_curl.h"
#include "ngx_http_siteflow_upstream.h"
#include "sf_path.h"
#include "sf_sig.h"


/*
 * Requests to SiteFlow and PrintNow, built on a transfer of
 * ngx_http_siteflow_curl.c.  SiteFlow requests are signed with the scheme
 * of the credentials (protocols section 1): OneFlow "x-oneflow-*" over
 * "METHOD path timestamp", HP PrintOS "x-hp-hmac-*" over
 * "METHOD pathtimestamp" without the /siteflow prefix.  PrintNow uses HTTP
 * Basic.  Secrets only ever reach the header list, which the transfer's
 * pool frees; they are never logged.
 */


#define NGX_HTTP_SITEFLOW_URL_MAX  4096


static ngx_int_t ngx_http_siteflow_upstream_request(
    ngx_http_siteflow_xfer_t *x, const char *method, ngx_str_t *base,
    ngx_str_t *path, ngx_str_t *body, u_char *url);
static ngx_int_t ngx_http_siteflow_upstream_header(
    ngx_http_siteflow_xfer_t *x, const char *fmt, ...);


ngx_int_t
ngx_http_siteflow_upstream_siteflow(ngx_http_siteflow_xfer_t *x,
    ngx_http_siteflow_api_t *api, const char *method, ngx_str_t *path,
    ngx_str_t *body)
{
    int         n;
    char        sig[SF_SIG_HEX_MAX + 1];
    char        ts[SF_SIG_TIMESTAMP_LEN + 1];
    u_char     *url, *signed_path;
    ngx_time_t *tp;
    const char *algo;

    url = ngx_pnalloc(x->pool, NGX_HTTP_SITEFLOW_URL_MAX);
    signed_path = ngx_pnalloc(x->pool, NGX_HTTP_SITEFLOW_URL_MAX);

    if (url == NULL || signed_path == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_upstream_request(x, method, &api->base, path, body,
                                           url)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = sf_sig_signed_path(api->scheme, (const char *) url,
                           ngx_strlen(url), (char *) signed_path,
                           NGX_HTTP_SITEFLOW_URL_MAX);
    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, x->log, 0,
                      "siteflow: cannot sign a request to \"%s\"", url);
        return NGX_ERROR;
    }

    tp = ngx_timeofday();

    if (sf_sig_timestamp((long long) tp->sec * 1000 + tp->msec, ts,
                         sizeof(ts))
        < 0)
    {
        return NGX_ERROR;
    }

    if (sf_sig_request(api->scheme, api->hash, method,
                       (const char *) signed_path, ts, api->secret.data,
                       api->secret.len, sig, sizeof(sig))
        < 0)
    {
        return NGX_ERROR;
    }

    algo = sf_sig_algorithm_header(api->scheme, api->hash);

    if (api->scheme == SF_SCHEME_PRINTOS) {
        if (ngx_http_siteflow_upstream_header(x,
                "x-hp-hmac-authentication: %V:%s", &api->token, sig)
            != NGX_OK
            || ngx_http_siteflow_upstream_header(x, "x-hp-hmac-date: %s", ts)
               != NGX_OK
            || (algo != NULL
                && ngx_http_siteflow_upstream_header(x,
                       "x-hp-hmac-algorithm: %s", algo)
                   != NGX_OK))
        {
            return NGX_ERROR;
        }

    } else {
        /* no algorithm header means SHA1 to the old OneFlow endpoints */

        if (ngx_http_siteflow_upstream_header(x,
                "x-oneflow-authorization: %V:%s", &api->token, sig)
            != NGX_OK
            || ngx_http_siteflow_upstream_header(x, "x-oneflow-date: %s", ts)
               != NGX_OK
            || (algo != NULL
                && ngx_http_siteflow_upstream_header(x,
                       "x-oneflow-algorithm: %s", algo)
                   != NGX_OK))
        {
            return NGX_ERROR;
        }
    }

    ngx_explicit_memzero(sig, sizeof(sig));

    return curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers)
           == CURLE_OK ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_siteflow_upstream_printnow(ngx_http_siteflow_xfer_t *x,
    ngx_http_siteflow_printnow_t *pn, const char *method, ngx_str_t *path,
    ngx_str_t *body)
{
    u_char  *url;

    url = ngx_pnalloc(x->pool, NGX_HTTP_SITEFLOW_URL_MAX);
    if (url == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_upstream_request(x, method, &pn->base, path, body,
                                           url)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_siteflow_upstream_header(x, "Authorization: %V",
                                          &pn->authorization)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers)
           == CURLE_OK ? NGX_OK : NGX_ERROR;
}


/* "Basic base64(token:key)", computed once at configuration time */

ngx_int_t
ngx_http_siteflow_printnow_authorization(ngx_pool_t *pool, ngx_str_t *token,
    ngx_str_t *key, ngx_str_t *out)
{
    ngx_str_t  plain, encoded;

    plain.len = token->len + 1 + key->len;
    plain.data = ngx_pnalloc(pool, plain.len);
    if (plain.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(plain.data, "%V:%V", token, key);

    encoded.len = ngx_base64_encoded_length(plain.len);

    out->len = sizeof("Basic ") - 1 + encoded.len;
    out->data = ngx_pnalloc(pool, out->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    encoded.data = ngx_cpymem(out->data, "Basic ", sizeof("Basic ") - 1);
    ngx_encode_base64(&encoded, &plain);

    ngx_explicit_memzero(plain.data, plain.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_upstream_request(ngx_http_siteflow_xfer_t *x,
    const char *method, ngx_str_t *base, ngx_str_t *path, ngx_str_t *body,
    u_char *url)
{
    u_char  *p, *copy;

    if (base->len + path->len + 1 > NGX_HTTP_SITEFLOW_URL_MAX) {
        return NGX_ERROR;
    }

    /*
     * the path's ids are escaped segments (sf_path.c); a "." or ".."
     * segment here would be a bug or an old spooled job: never sent
     */

    if (!sf_path_is_clean((const char *) path->data, path->len)) {
        ngx_log_error(NGX_LOG_ERR, x->log, 0,
                      "siteflow: refused to send %s \"%V\": the path has "
                      "a \".\" or \"..\" segment", method, path);
        return NGX_ERROR;
    }

    p = ngx_cpymem(url, base->data, base->len);
    p = ngx_cpymem(p, path->data, path->len);
    *p = '\0';

    /* libcurl must not resolve dot segments: the path goes out as built */

    if (curl_easy_setopt(x->easy, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK
        || curl_easy_setopt(x->easy, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method)
           != CURLE_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_strcmp(method, "GET") == 0) {
        (void) curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);

    } else {
        /* POSTFIELDS is not copied by libcurl: the pool keeps it alive */

        copy = ngx_pnalloc(x->pool, body->len + 1);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(copy, body->data, body->len);
        copy[body->len] = '\0';

        x->body = copy;
        x->body_len = body->len;

        if (curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long) body->len)
            != CURLE_OK
            || curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, copy)
               != CURLE_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_siteflow_upstream_header(x,
                "Content-Type: application/json")
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* a small JSON body needs no 100-continue round trip */

    if (ngx_http_siteflow_upstream_header(x, "Accept: application/json")
        != NGX_OK
        || ngx_http_siteflow_upstream_header(x, "Expect:") != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_upstream_header(ngx_http_siteflow_xfer_t *x,
    const char *fmt, ...)
{
    u_char             *p, line[1024];
    va_list             args;
    struct curl_slist  *list;

    va_start(args, fmt);
    p = ngx_vslprintf(line, line + sizeof(line) - 1, fmt, args);
    va_end(args);

    *p = '\0';

    /* curl_slist_append() copies the line */

    list = curl_slist_append(x->headers, (const char *) line);

    ngx_explicit_memzero(line, p - line);

    if (list == NULL) {
        return NGX_ERROR;
    }

    x->headers = list;

    return NGX_OK;
}


/*
 * A base URL of siteflow_api or siteflow_printnow_api: paths such as
 * "/order/validate" are appended to it, so it has no query and no
 * fragment; credentials go in their own directives, never in the URL.
 */

char *
ngx_http_siteflow_check_url(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *url)
{
    char        *what;
    size_t       n;
    u_char      *host, *p, *last;
    ngx_int_t    rc, port;
    const char  *reason;

    if (url->len > 7 && ngx_strncasecmp(url->data, (u_char *) "http://", 7)
                        == 0)
    {
        n = 7;

    } else if (url->len > 8
               && ngx_strncasecmp(url->data, (u_char *) "https://", 8) == 0)
    {
        n = 8;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\", expected "
                           "\"https://host[/path]\" or \"http://...\"",
                           url, &cmd->name);
        return NGX_CONF_ERROR;
    }

    host = url->data + n;
    last = url->data + url->len;

    if (*host == '/' || *host == ':' || *host == '?' || *host == '#') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no host in URL \"%V\" in \"%V\"",
                           url, &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* user info ends before the path: the URL is not echoed, it has them */

    for (p = host; p < last && *p != '/' && *p != '?' && *p != '#'; p++) {

        if (*p != '@') {
            continue;
        }

        what = (ngx_strncmp(cmd->name.data, "siteflow_printnow_", 18) == 0)
               ? "siteflow_printnow_credentials" : "siteflow_credentials";

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "user name or password in the URL of \"%V\" is "
                           "not allowed (the URL is not echoed); put the "
                           "credentials in \"%s\"",
                           &cmd->name, what);
        return NGX_CONF_ERROR;
    }

    for (p = host; p < last; p++) {

        if (*p == '?') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "query (\"?...\") in URL \"%V\" in "
                               "\"%V\" is not allowed: the module "
                               "appends paths such as \"/order/validate\" "
                               "to the URL",
                               url, &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (*p == '#') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "fragment (\"#...\") in URL \"%V\" in "
                               "\"%V\" is not allowed: the module "
                               "appends paths such as \"/order/validate\" "
                               "to the URL",
                               url, &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    rc = ngx_http_siteflow_curl_parse_url(cf->temp_pool, url, &port,
                                          &reason);

    if (rc == NGX_HTTP_SITEFLOW_URL_BAD_PORT || (rc == NGX_OK && port == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid port in URL \"%V\" in \"%V\", "
                           "expected a number from 1 to 65535",
                           url, &cmd->name);
        return NGX_CONF_ERROR;
    }

    switch (rc) {

    case NGX_OK:
        return NGX_CONF_OK;

    case NGX_ERROR:
        return NGX_CONF_ERROR;

    case NGX_HTTP_SITEFLOW_URL_BAD_HOST:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid host in URL \"%V\" in \"%V\" "
                           "(libcurl: %s)", url, &cmd->name, reason);
        return NGX_CONF_ERROR;

    case NGX_HTTP_SITEFLOW_URL_BAD_PATH:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid path in URL \"%V\" in \"%V\" "
                           "(libcurl: %s; spaces and control characters "
                           "must be percent-encoded)",
                           url, &cmd->name, reason);
        return NGX_CONF_ERROR;

    default: /* NGX_HTTP_SITEFLOW_URL_BAD */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\" (libcurl: %s)",
                           url, &cmd->name, reason);
        return NGX_CONF_ERROR;
    }
}
