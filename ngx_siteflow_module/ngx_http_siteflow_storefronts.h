
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_STOREFRONTS_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_STOREFRONTS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"


/*
 * Adds a storefront (a server{} with a hook, postback or admin location)
 * to smcf->storefronts at configuration time.  A second server{} of the
 * same name is refused unless its jobs would be delivered the same way.
 */
char *ngx_http_siteflow_storefront_add(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf, ngx_http_siteflow_srv_conf_t *conf);

/* the storefront of this name in the running configuration, or NULL */
ngx_http_siteflow_srv_conf_t *ngx_http_siteflow_storefront(ngx_str_t *name);


#endif /* _NGX_HTTP_SITEFLOW_STOREFRONTS_H_INCLUDED_ */
