
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_hmac.h"
#include "ngx_http_siteflow_variables.h"


static ngx_int_t ngx_http_siteflow_partner_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_siteflow_signature_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_siteflow_vars[] = {

    { ngx_string("siteflow_partner_id"), NULL,
      ngx_http_siteflow_partner_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("siteflow_signature"), NULL,
      ngx_http_siteflow_signature_variable, 0,
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
