
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_storefronts.h"
#include "sf_order.h"


/*
 * The storefronts of the configuration, by name.  Jobs, log entries and
 * the sent-orders index carry only the storefront's name, and a job is
 * delivered with the settings of the server{} that name finds.  Two
 * server{} blocks may share a name (one for the hooks, one on an
 * internal port for the admin location, say) only when a job would be
 * delivered the same way from either: otherwise "nginx -t" says which
 * setting differs, rather than one server's orders silently going out
 * with the other's account, mapping or destination.  Jobs find their
 * storefront by name with ngx_http_siteflow_storefront().
 */


static const char *ngx_http_siteflow_storefront_differs(
    ngx_http_siteflow_srv_conf_t *a, ngx_http_siteflow_srv_conf_t *b);
static ngx_int_t ngx_http_siteflow_same_str(ngx_str_t *a, ngx_str_t *b);
static ngx_int_t ngx_http_siteflow_same_trigger(ngx_array_t *a,
    ngx_array_t *b);


char *
ngx_http_siteflow_storefront_add(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf, ngx_http_siteflow_srv_conf_t *conf)
{
    const char                     *what;
    ngx_uint_t                      i;
    ngx_http_siteflow_srv_conf_t  **sp, *other;

    sp = smcf->storefronts.elts;

    for (i = 0; i < smcf->storefronts.nelts; i++) {
        other = sp[i];

        if (!ngx_http_siteflow_same_str(&other->storefront,
                                        &conf->storefront))
        {
            continue;
        }

        what = ngx_http_siteflow_storefront_differs(other, conf);

        if (what == NULL) {
            /* either server{} delivers the same: one entry is enough */
            return NGX_CONF_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "storefront \"%V\" is used by the server{} of %V:%ui "
                      "and by the server{} of %V:%ui with a different "
                      "\"%s\"; jobs carry only the storefront's name, so "
                      "give each server{} its own \"siteflow_storefront\" "
                      "or the same settings (in http{}, say)",
                      &conf->storefront, other->uses_file, other->uses_line,
                      conf->uses_file, conf->uses_line, what);
        return NGX_CONF_ERROR;
    }

    sp = ngx_array_push(&smcf->storefronts);
    if (sp == NULL) {
        return NGX_CONF_ERROR;
    }

    *sp = conf;

    return NGX_CONF_OK;
}


ngx_http_siteflow_srv_conf_t *
ngx_http_siteflow_storefront(ngx_str_t *name)
{
    ngx_uint_t                       i;
    ngx_http_siteflow_srv_conf_t   **sp;
    ngx_http_siteflow_main_conf_t   *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);
    if (smcf == NULL) {
        return NULL;
    }

    sp = smcf->storefronts.elts;

    for (i = 0; i < smcf->storefronts.nelts; i++) {
        if (ngx_http_siteflow_same_str(&sp[i]->storefront, name)) {
            return sp[i];
        }
    }

    return NULL;
}


/* the directive of the first setting a job would use differently, or NULL */

static const char *
ngx_http_siteflow_storefront_differs(ngx_http_siteflow_srv_conf_t *a,
    ngx_http_siteflow_srv_conf_t *b)
{
    if (!ngx_http_siteflow_same_str(&a->token, &b->token)
        || !ngx_http_siteflow_same_str(&a->secret, &b->secret))
    {
        return "siteflow_credentials";
    }

    if (!ngx_http_siteflow_same_str(&a->api.base, &b->api.base)
        || !ngx_http_siteflow_same_str(&a->api_create.base,
                                       &b->api_create.base)
        || a->api.scheme != b->api.scheme
        || a->api.hash != b->api.hash)
    {
        return "siteflow_api";
    }

    if (!ngx_http_siteflow_same_str(&a->destination, &b->destination)) {
        return "siteflow_destination";
    }

    if ((a->mapping == NULL) != (b->mapping == NULL)
        || (a->mapping != b->mapping
            && !ngx_http_siteflow_same_str(&a->mapping_file,
                                           &b->mapping_file)))
    {
        return "siteflow_mapping";
    }

    if (!ngx_http_siteflow_same_trigger(a->trigger, b->trigger)) {
        return "siteflow_order_trigger";
    }

    if (!ngx_http_siteflow_same_str(&a->printnow.base, &b->printnow.base)) {
        return "siteflow_printnow_api";
    }

    if (!ngx_http_siteflow_same_str(&a->printnow_token, &b->printnow_token)
        || !ngx_http_siteflow_same_str(&a->printnow_key, &b->printnow_key))
    {
        return "siteflow_printnow_credentials";
    }

    if (a->printnow_fetch != b->printnow_fetch) {
        return "siteflow_printnow_fetch";
    }

    if (a->cancel_on_delete != b->cancel_on_delete) {
        return "siteflow_cancel_on_delete";
    }

    if (a->ship_per_item != b->ship_per_item) {
        return "siteflow_ship_per_item";
    }

    if (a->echo_window != b->echo_window) {
        return "siteflow_echo_window";
    }

    if (a->xfer.timeout != b->xfer.timeout) {
        return "siteflow_timeout";
    }

    if (a->xfer.connect_timeout != b->xfer.connect_timeout) {
        return "siteflow_connect_timeout";
    }

    if (a->xfer.max_response != b->xfer.max_response) {
        return "siteflow_max_response";
    }

    if (a->xfer.ssl_verify != b->xfer.ssl_verify) {
        return "siteflow_ssl_verify";
    }

    if (!ngx_http_siteflow_same_str(&a->xfer.ca_file, &b->xfer.ca_file)) {
        return "siteflow_ssl_trusted_certificate";
    }

    return NULL;
}


static ngx_int_t
ngx_http_siteflow_same_str(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}


static ngx_int_t
ngx_http_siteflow_same_trigger(ngx_array_t *a, ngx_array_t *b)
{
    ngx_uint_t       i, n, m;
    sf_order_str_t  *x, *y;

    if (a == b) {
        return 1;
    }

    n = (a == NULL) ? 0 : a->nelts;
    m = (b == NULL) ? 0 : b->nelts;

    if (n != m) {
        return 0;
    }

    if (n == 0) {
        return 1;
    }

    x = a->elts;
    y = b->elts;

    for (i = 0; i < n; i++) {
        if (x[i].len != y[i].len
            || ngx_memcmp(x[i].data, y[i].data, x[i].len) != 0)
        {
            return 0;
        }
    }

    return 1;
}
