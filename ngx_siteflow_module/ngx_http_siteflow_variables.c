
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_guard.h"
#include "ngx_http_siteflow_variables.h"
#include "sf_admin.h"


static ngx_int_t ngx_http_siteflow_partner_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_siteflow_signature_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_siteflow_redacted_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_siteflow_redact(ngx_pool_t *pool, ngx_str_t *in,
    ngx_str_t *out);


static ngx_http_variable_t  ngx_http_siteflow_vars[] = {

    { ngx_string("siteflow_partner_id"), NULL,
      ngx_http_siteflow_partner_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("siteflow_signature"), NULL,
      ngx_http_siteflow_signature_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* $request without the token: for log_format */

    { ngx_string("siteflow_request_redacted"), NULL,
      ngx_http_siteflow_redacted_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* $request_uri without the token */

    { ngx_string("siteflow_request_uri_redacted"), NULL,
      ngx_http_siteflow_redacted_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_siteflow_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_siteflow_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_partner_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_siteflow_ctx_t  *ctx;

    ctx = ngx_http_siteflow_get_ctx(r->main);

    if (ctx == NULL || !ctx->verified) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->partner_id.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->partner_id.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_signature_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char               *name;
    ngx_http_siteflow_ctx_t  *ctx;

    ctx = ngx_http_siteflow_get_ctx(r->main);

    if (ctx == NULL || !ctx->checked) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = ngx_http_siteflow_sig_result_name(ctx->sig_result);

    v->len = ngx_strlen(name);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) name;

    return NGX_OK;
}


static ngx_int_t
ngx_http_siteflow_redacted_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  line, uri, *s;

    if (ngx_http_siteflow_redact_request(r, &line, &uri) != NGX_OK) {
        return NGX_ERROR;
    }

    s = data ? &uri : &line;

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_redact_request(ngx_http_request_t *r, ngx_str_t *line,
    ngx_str_t *uri)
{
    u_char     *p, *start, *end, *last;
    ngx_str_t   redacted;

    *line = r->request_line;
    *uri = r->unparsed_uri;

    if (ngx_http_siteflow_redact(r->pool, &r->unparsed_uri, &redacted)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (redacted.data == r->unparsed_uri.data) {
        return NGX_OK;
    }

    *uri = redacted;

    /*
     * the URI is a part of the request line (the same bytes over HTTP/1,
     * a copy over HTTP/2): replace it there
     */

    start = NULL;

    if (r->unparsed_uri.data >= r->request_line.data
        && r->unparsed_uri.data + r->unparsed_uri.len
           <= r->request_line.data + r->request_line.len)
    {
        start = r->unparsed_uri.data;

    } else if (r->request_line.len >= r->unparsed_uri.len) {
        last = r->request_line.data + r->request_line.len
               - r->unparsed_uri.len;

        for (p = r->request_line.data; p <= last; p++) {
            if (ngx_strncmp(p, r->unparsed_uri.data, r->unparsed_uri.len)
                == 0)
            {
                start = p;
                break;
            }
        }
    }

    if (start == NULL) {
        return ngx_http_siteflow_redact(r->pool, &r->request_line, line);
    }

    end = start + r->unparsed_uri.len;

    line->len = r->request_line.len - r->unparsed_uri.len + redacted.len;
    line->data = ngx_pnalloc(r->pool, line->len);
    if (line->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(line->data, r->request_line.data,
                   start - r->request_line.data);
    p = ngx_cpymem(p, redacted.data, redacted.len);
    ngx_memcpy(p, end, r->request_line.data + r->request_line.len - end);

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_hide_token(ngx_http_request_t *r)
{
    ngx_str_t  line, uri;

    if (ngx_http_siteflow_redact_request(r, &line, &uri) != NGX_OK) {
        return NGX_ERROR;
    }

    r->request_line = line;
    r->unparsed_uri = uri;

    return NGX_OK;
}


/* out is in itself when nothing was redacted */

static ngx_int_t
ngx_http_siteflow_redact(ngx_pool_t *pool, ngx_str_t *in, ngx_str_t *out)
{
    size_t   size;
    u_char  *buf;

    *out = *in;

    if (in->len == 0 || ngx_strlchr(in->data, in->data + in->len, '?')
                        == NULL)
    {
        return NGX_OK;
    }

    size = SF_ADMIN_REDACT_SIZE(in->len);

    buf = ngx_pnalloc(pool, size);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    size = sf_admin_redact_url((const char *) in->data, in->len,
                               (char *) buf, size);

    if (size == in->len && ngx_memcmp(buf, in->data, size) == 0) {
        return NGX_OK;
    }

    out->data = buf;
    out->len = size;

    return NGX_OK;
}
