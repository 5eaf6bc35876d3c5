
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_SHMLOG_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_SHMLOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_siteflow.h"


typedef enum {
    NGX_HTTP_SITEFLOW_NONCE_FRESH = 0,
    NGX_HTTP_SITEFLOW_NONCE_FRESH_EVICTED,  /* stored, an unexpired one went */
    NGX_HTTP_SITEFLOW_NONCE_REPLAY,
    NGX_HTTP_SITEFLOW_NONCE_ERROR
} ngx_http_siteflow_nonce_rc_e;


char *ngx_http_siteflow_shm_zone_init_conf(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf);
char *ngx_http_siteflow_shm_check(ngx_conf_t *cf,
    ngx_http_siteflow_main_conf_t *smcf);
size_t ngx_http_siteflow_nonce_entry_size(void);

#define NGX_HTTP_SITEFLOW_DIGEST_LEN  16

ngx_http_siteflow_nonce_rc_e ngx_http_siteflow_nonce_check(
    ngx_shm_zone_t *shm_zone, u_char *digest, ngx_msec_t ttl);
void ngx_http_siteflow_count(ngx_shm_zone_t *shm_zone,
    ngx_http_siteflow_counter_e counter);


#endif /* _NGX_HTTP_SITEFLOW_SHMLOG_H_INCLUDED_ */
