
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_TRANSFORM_INT_H_INCLUDED_
#define _SF_TRANSFORM_INT_H_INCLUDED_


#include <stddef.h>

#include <jansson.h>

#include "sf_mapping.h"
#include "sf_transform.h"


/*
 * Shared by the two halves of the transform, and by nothing else:
 * sf_transform.c (the order, its items and their templates) and
 * sf_transform_ship.c (customer, shipping address, shipTo and its name,
 * carrier, the shipment).  Pure C, no nginx headers.
 */


#define SF_TR_OK         0
#define SF_TR_ABSENT     1       /* missing or null */
#define SF_TR_BLANK      2       /* "" or only spaces */
#define SF_TR_BAD       -1       /* invalid order, reason set */
#define SF_TR_NOMEM     -2

#define SF_TR_NONE       ((size_t) -1)
#define SF_TR_QUOTE_MAX  64      /* bytes of a value quoted in a reason */
#define SF_TR_QUOTE_LEN  (2 * SF_TR_QUOTE_MAX + 4)
#define SF_TR_PATH_LEN   128

/* ctx->buf: two joined strings, or a rendered template with its NUL */
#define SF_TR_BUF_LEN                                                        \
    ((2 * SF_TRANSFORM_MAX_STRING + 3 > SF_MAPPING_MAX_RENDER + 1)           \
     ? 2 * SF_TRANSFORM_MAX_STRING + 3 : SF_MAPPING_MAX_RENDER + 1)


#if defined(__GNUC__) || defined(__clang__)
#define SF_TR_PRINTF(f, a)  __attribute__ ((format (printf, f, a)))
#else
#define SF_TR_PRINTF(f, a)
#endif


typedef struct {
    const char              *p;        /* NULL: no value */
    size_t                   len;
    char                     buf[24];  /* an integer in decimal */
} sf_tr_str_t;


/* where a value is, for reasons: "items[2].options[0]." + key */
typedef struct {
    const char              *obj;      /* NULL: the order itself */
    size_t                   index;    /* SF_TR_NONE: not an array */
    const char              *sub;
    size_t                   sub_index;
} sf_tr_where_t;


typedef struct {
    const json_t            *item;
    const json_t            *options;  /* array or NULL */
    const sf_map_product_t  *product;
    size_t                   index;
    json_int_t               quantity;
    sf_tr_str_t              id;
    sf_tr_str_t              product_id;
    sf_tr_str_t              qty;
} sf_tr_item_t;


typedef struct {
    const sf_mapping_t      *m;
    const json_t            *order;
    char                    *reason;
    size_t                   reason_size;

    sf_tr_str_t              order_id;
    sf_tr_str_t              integration_id;

    sf_tr_item_t            *item;     /* the item being rendered */
    const char              *sku;      /* its rendered sku */
    size_t                   sku_len;

    const json_t            *customer; /* object or NULL */
    const json_t            *address;  /* shipping_address */
    const char              *email;    /* orderData.email, or NULL */
    size_t                   email_len;
    const char              *carrier;  /* alias, or NULL */

    char                     source_id[SF_TRANSFORM_SOURCE_ID_MAX + 1];
    size_t                   source_id_len;

    char                     scratch[32];
    char                     buf[SF_TR_BUF_LEN];
} sf_tr_ctx_t;


/* sf_transform.c */

int sf_tr_reason(sf_tr_ctx_t *ctx, const char *fmt, ...) SF_TR_PRINTF(2, 3);
const char *sf_tr_quote(char *buf, const char *s, size_t len);
json_t *sf_tr_get(const json_t *obj, const char *key);
int sf_tr_blank(const char *s, size_t len);
void sf_tr_trim(const char **p, size_t *len);
int sf_tr_text(sf_tr_ctx_t *ctx, const json_t *obj, const char *key,
    const sf_tr_where_t *w, const char **p, size_t *len);
int sf_tr_join(sf_tr_ctx_t *ctx, const json_t *obj, const char *first,
    const char *second, const char *sep, const sf_tr_where_t *w,
    const char **p, size_t *len);
int sf_tr_set_text(json_t *obj, const char *key, const char *p, size_t len);


/* sf_transform_ship.c */

int sf_tr_contact(sf_tr_ctx_t *ctx);
int sf_tr_carrier(sf_tr_ctx_t *ctx);
int sf_tr_ship_to(sf_tr_ctx_t *ctx, json_t *obj);
int sf_tr_customer(sf_tr_ctx_t *ctx, json_t *order_data,
    const json_t *ship_to);
int sf_tr_shipment(sf_tr_ctx_t *ctx, json_t *order_data, json_t *ship_to);


#endif /* _SF_TRANSFORM_INT_H_INCLUDED_ */
