
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * The transform's shipping half (sf_transform.h has the contract): the
 * customer and shipping_address objects, orderData.customerName and
 * email, shipTo (its name by the mapping's ship_to.name, else the
 * built-in rule), the carrier, and orderData.shipments[0].
 */


#include <stddef.h>
#include <string.h>

#include <jansson.h>

#include "sf_mapping.h"
#include "sf_transform.h"
#include "sf_transform_int.h"


static int sf_tr_copy(sf_tr_ctx_t *ctx, json_t *dst, const char *dkey,
    const char *key, int required);
static int sf_tr_name(sf_tr_ctx_t *ctx, const char **p, size_t *len);
static int sf_tr_name_value(void *data, const sf_tpl_seg_t *seg,
    const char **value, size_t *len);


static const sf_tr_where_t  sf_tr_order_w = { NULL, SF_TR_NONE, NULL, 0 };
static const sf_tr_where_t  sf_tr_customer_w = {
    "customer", SF_TR_NONE, NULL, 0
};
static const sf_tr_where_t  sf_tr_address_w = {
    "shipping_address", SF_TR_NONE, NULL, 0
};


/* customer and shipping_address objects, and orderData.email */

int
sf_tr_contact(sf_tr_ctx_t *ctx)
{
    int            rc;
    size_t         len;
    const char    *p;
    const json_t  *c, *a;

    c = sf_tr_get(ctx->order, "customer");

    if (c != NULL && !json_is_object(c)) {
        return sf_tr_reason(ctx, "customer must be an object");
    }

    a = sf_tr_get(ctx->order, "shipping_address");

    if (a == NULL) {
        return sf_tr_reason(ctx, "shipping_address is missing");
    }

    if (!json_is_object(a)) {
        return sf_tr_reason(ctx, "shipping_address must be an object");
    }

    ctx->customer = c;
    ctx->address = a;

    rc = sf_tr_text(ctx, c, "email", &sf_tr_customer_w, &p, &len);

    if (rc == SF_TR_ABSENT || rc == SF_TR_BLANK) {
        rc = sf_tr_text(ctx, a, "email", &sf_tr_address_w, &p, &len);
    }

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc == SF_TR_OK) {
        ctx->email = p;
        ctx->email_len = len;
    }

    return SF_TR_OK;
}


int
sf_tr_carrier(sf_tr_ctx_t *ctx)
{
    int          rc;
    char         q[SF_TR_QUOTE_LEN];
    size_t       len;
    const char  *p;

    if (!ctx->m->has_carriers) {
        return SF_TR_OK;
    }

    rc = sf_tr_text(ctx, ctx->order, "shipping_service", &sf_tr_order_w, &p,
                    &len);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc != SF_TR_OK) {
        p = NULL;
        len = 0;
    }

    ctx->carrier = sf_mapping_carrier(ctx->m, p, len);

    if (ctx->carrier != NULL) {
        return SF_TR_OK;
    }

    if (p == NULL) {
        return sf_tr_reason(ctx, "shipping_service is missing and the "
                            "mapping has no \"*\" carrier");
    }

    return sf_tr_reason(ctx, "shipping_service \"%s\" has no carrier in the "
                        "mapping (and no \"*\")", sf_tr_quote(q, p, len));
}


/* shipping_address.<key> -> dst.<dkey> */

static int
sf_tr_copy(sf_tr_ctx_t *ctx, json_t *dst, const char *dkey, const char *key,
    int required)
{
    int          rc;
    size_t       len;
    const char  *p;

    rc = sf_tr_text(ctx, ctx->address, key, &sf_tr_address_w, &p, &len);

    if (rc == SF_TR_OK) {
        return sf_tr_set_text(dst, dkey, p, len) == 0 ? SF_TR_OK
                                                      : SF_TR_NOMEM;
    }

    if (rc == SF_TR_BAD || !required) {
        return (rc == SF_TR_BAD) ? SF_TR_BAD : SF_TR_OK;
    }

    return sf_tr_reason(ctx, "shipping_address.%s is %s", key,
                        (rc == SF_TR_ABSENT) ? "missing" : "empty");
}


int
sf_tr_ship_to(sf_tr_ctx_t *ctx, json_t *obj)
{
    int          rc;
    char         iso[4];
    size_t       len, i;
    const char  *p;

    /*
     * The mapping's ship_to.name when it gives a name; else the person,
     * else the company, else the customer.  The address's own "name" is
     * its address-book label ("Default", "Home"): never on a parcel
     * unless ship_to.name asks for it.
     */

    rc = sf_tr_name(ctx, &p, &len);

    if (rc == SF_TR_ABSENT) {
        rc = sf_tr_join(ctx, ctx->address, "first_name", "last_name", " ",
                        &sf_tr_address_w, &p, &len);
    }

    if (rc == SF_TR_ABSENT || rc == SF_TR_BLANK) {
        rc = sf_tr_text(ctx, ctx->address, "company", &sf_tr_address_w, &p,
                        &len);
    }

    if (rc == SF_TR_ABSENT || rc == SF_TR_BLANK) {
        rc = sf_tr_join(ctx, ctx->customer, "first_name", "last_name", " ",
                        &sf_tr_customer_w, &p, &len);
    }

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc != SF_TR_OK) {
        return sf_tr_reason(ctx, "no name to ship to: shipping_address has "
                            "no first_name, last_name or company, and the "
                            "customer no first_name or last_name");
    }

    if (sf_tr_set_text(obj, "name", p, len) != 0) {
        return SF_TR_NOMEM;
    }

    if ((rc = sf_tr_copy(ctx, obj, "companyName", "company", 0)) != SF_TR_OK
        || (rc = sf_tr_copy(ctx, obj, "address1", "line_1", 1)) != SF_TR_OK
        || (rc = sf_tr_copy(ctx, obj, "address2", "line_2", 0)) != SF_TR_OK)
    {
        return rc;
    }

    rc = sf_tr_join(ctx, ctx->address, "line_3", "line_4", ", ",
                    &sf_tr_address_w, &p, &len);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc == SF_TR_OK && sf_tr_set_text(obj, "address3", p, len) != 0) {
        return SF_TR_NOMEM;
    }

    if ((rc = sf_tr_copy(ctx, obj, "town", "city", 1)) != SF_TR_OK
        || (rc = sf_tr_copy(ctx, obj, "state", "state", 0)) != SF_TR_OK
        || (rc = sf_tr_copy(ctx, obj, "postcode", "postal_code", 1))
           != SF_TR_OK)
    {
        return rc;
    }

    rc = sf_tr_text(ctx, ctx->address, "country_code", &sf_tr_address_w, &p,
                    &len);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc != SF_TR_OK) {
        return sf_tr_reason(ctx, "shipping_address.country_code is %s",
                            (rc == SF_TR_ABSENT) ? "missing" : "empty");
    }

    if (len != 2 && len != 3) {
        goto bad_country;
    }

    for (i = 0; i < len; i++) {
        if (p[i] >= 'a' && p[i] <= 'z') {
            iso[i] = (char) (p[i] - 'a' + 'A');

        } else if (p[i] >= 'A' && p[i] <= 'Z') {
            iso[i] = p[i];

        } else {
            goto bad_country;
        }
    }

    if (sf_tr_set_text(obj, "isoCountry", iso, len) != 0) {
        return SF_TR_NOMEM;
    }

    rc = sf_tr_text(ctx, ctx->address, "phone", &sf_tr_address_w, &p, &len);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc != SF_TR_OK && ctx->m->default_phone != NULL) {
        p = ctx->m->default_phone;
        len = strlen(p);
        rc = SF_TR_OK;
    }

    if (rc == SF_TR_OK && sf_tr_set_text(obj, "phone", p, len) != 0) {
        return SF_TR_NOMEM;
    }

    rc = sf_tr_text(ctx, ctx->address, "email", &sf_tr_address_w, &p, &len);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc != SF_TR_OK && ctx->email != NULL) {
        p = ctx->email;
        len = ctx->email_len;
        rc = SF_TR_OK;
    }

    if (rc == SF_TR_OK && sf_tr_set_text(obj, "email", p, len) != 0) {
        return SF_TR_NOMEM;
    }

    return SF_TR_OK;

bad_country:

    return sf_tr_reason(ctx, "shipping_address.country_code must be an "
                        "ISO 3166-1 country code (2 or 3 letters)");
}


/*
 * shipTo.name by the mapping's ship_to.name, rendered into ctx->buf:
 * SF_TR_OK, SF_TR_ABSENT (no template, a placeholder without a value or
 * a blank result: the built-in rule applies) or SF_TR_BAD.
 */

static int
sf_tr_name(sf_tr_ctx_t *ctx, const char **p, size_t *len)
{
    const sf_tpl_seg_t  *absent;

    if (ctx->m->ship_to_name.nsegs == 0) {
        return SF_TR_ABSENT;
    }

    switch (sf_tpl_render(&ctx->m->ship_to_name, sf_tr_name_value, ctx,
                          ctx->buf, SF_MAPPING_MAX_RENDER + 1, len, &absent))
    {

    case SF_TPL_OK:
        *p = ctx->buf;
        return sf_tr_blank(ctx->buf, *len) ? SF_TR_ABSENT : SF_TR_OK;

    case SF_TPL_ABSENT:
        return SF_TR_ABSENT;

    case SF_TPL_TOO_LONG:
        return sf_tr_reason(ctx, "the mapping's ship_to.name gives more "
                            "than %d bytes", SF_MAPPING_MAX_RENDER);

    default:
        return SF_TR_BAD;
    }
}


static int
sf_tr_name_value(void *data, const sf_tpl_seg_t *seg, const char **value,
    size_t *len)
{
    int                   rc;
    const char           *key;
    const json_t         *obj;
    sf_tr_ctx_t          *ctx;
    const sf_tr_where_t  *w;

    ctx = data;
    obj = ctx->address;
    w = &sf_tr_address_w;

    switch (seg->var) {

    case SF_TPL_SHIP_FIRST_NAME:
        key = "first_name";
        break;

    case SF_TPL_SHIP_LAST_NAME:
        key = "last_name";
        break;

    case SF_TPL_SHIP_COMPANY:
        key = "company";
        break;

    case SF_TPL_SHIP_ADDRESS_LABEL:
        key = "name";
        break;

    case SF_TPL_CUSTOMER_FIRST_NAME:
        key = "first_name";
        obj = ctx->customer;
        w = &sf_tr_customer_w;
        break;

    case SF_TPL_CUSTOMER_LAST_NAME:
        key = "last_name";
        obj = ctx->customer;
        w = &sf_tr_customer_w;
        break;

    default:
        return SF_TPL_ABSENT;
    }

    rc = sf_tr_text(ctx, obj, key, w, value, len);

    if (rc == SF_TR_BAD) {
        return SF_TPL_FAIL;
    }

    if (rc != SF_TR_OK) {
        return SF_TPL_ABSENT;
    }

    /* a name part as the built-in rule takes it: without blanks around */

    sf_tr_trim(value, len);

    return SF_TPL_OK;
}


/* orderData.customerName and email */

int
sf_tr_customer(sf_tr_ctx_t *ctx, json_t *order_data, const json_t *ship_to)
{
    int          rc;
    size_t       len;
    json_t      *v;
    const char  *p;

    rc = sf_tr_join(ctx, ctx->customer, "first_name", "last_name", " ",
                    &sf_tr_customer_w, &p, &len);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc != SF_TR_OK) {
        v = json_object_get(ship_to, "name");
        p = json_string_value(v);
        len = json_string_length(v);
    }

    if (sf_tr_set_text(order_data, "customerName", p, len) != 0) {
        return SF_TR_NOMEM;
    }

    if (ctx->email != NULL
        && sf_tr_set_text(order_data, "email", ctx->email, ctx->email_len)
           != 0)
    {
        return SF_TR_NOMEM;
    }

    return SF_TR_OK;
}


/* orderData.shipments[0]; takes ship_to over in every case */

int
sf_tr_shipment(sf_tr_ctx_t *ctx, json_t *order_data, json_t *ship_to)
{
    json_t               *s, *arr, *obj;
    unsigned              i;
    const sf_map_pair_t  *pair;

    arr = json_array();

    if (json_object_set_new_nocheck(order_data, "shipments", arr) != 0) {
        json_decref(ship_to);
        return SF_TR_NOMEM;
    }

    s = json_object();

    if (json_array_append_new(arr, s) != 0
        || json_object_set_new_nocheck(s, "shipmentIndex", json_integer(0))
           != 0)
    {
        json_decref(ship_to);
        return SF_TR_NOMEM;
    }

    if (json_object_set_new_nocheck(s, "shipTo", ship_to) != 0) {
        return SF_TR_NOMEM;
    }

    if (ctx->m->nreturn_address > 0) {
        obj = json_object();

        if (json_object_set_new_nocheck(s, "returnAddress", obj) != 0) {
            return SF_TR_NOMEM;
        }

        for (i = 0; i < ctx->m->nreturn_address; i++) {
            pair = &ctx->m->return_address[i];

            if (sf_tr_set_text(obj, pair->key, pair->value, pair->value_len)
                != 0)
            {
                return SF_TR_NOMEM;
            }
        }
    }

    if (ctx->carrier != NULL) {
        obj = json_object();

        if (json_object_set_new_nocheck(s, "carrier", obj) != 0
            || json_object_set_new_nocheck(obj, "alias",
                                           json_string(ctx->carrier))
               != 0)
        {
            return SF_TR_NOMEM;
        }
    }

    return SF_TR_OK;
}
