
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * PrintNow order -> SiteFlow order (sf_transform.h has the contract).
 *
 * Two passes: first everything that decides the outcome is checked
 * (order id, sourceOrderId, which items are mapped, their ids and
 * quantities, the shipping address, the carrier), then the SiteFlow
 * order is built, rendering the mapping's pre-compiled templates; a
 * template without a value for a sku or a path still makes the order
 * invalid there, and the partial tree is freed.
 */


#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sf_json.h"
#include "sf_mapping.h"
#include "sf_transform.h"
#include "sf_transform_int.h"


#define SF_TR_LOCAL      16      /* mapped items kept on the stack */
#define SF_TR_SORT_MIN   32      /* duplicate ids: sort from this many */
#define SF_TR_SKIP_LIST  8       /* product ids listed in a skip reason */

#define SF_TR_SPACE(c)   ((c) == ' ' || (c) == '\t' || (c) == '\n'          \
                          || (c) == '\r')


static void sf_tr_init(sf_tr_ctx_t *ctx, const sf_mapping_t *m,
    const json_t *order, char *reason, size_t reason_size);
static int sf_tr_result(sf_tr_ctx_t *ctx, int rc);
static const char *sf_tr_path(char *buf, const sf_tr_where_t *w,
    const char *key);
static int sf_tr_id(sf_tr_ctx_t *ctx, const json_t *obj, const char *key,
    const sf_tr_where_t *w, sf_tr_str_t *out);
static int sf_tr_source(sf_tr_ctx_t *ctx);
static int sf_tr_lookup(sf_tr_ctx_t *ctx, const json_t *item, size_t index,
    sf_tr_item_t *rec);
static void sf_tr_skip(sf_tr_ctx_t *ctx, const json_t *items);
static int sf_tr_check_item(sf_tr_ctx_t *ctx, sf_tr_item_t *rec);
static int sf_tr_id_cmp(const void *a, const void *b);
static int sf_tr_duplicates(sf_tr_ctx_t *ctx, sf_tr_item_t *recs,
    size_t n);
static int sf_tr_render(sf_tr_ctx_t *ctx, const sf_tpl_t *tpl,
    int required, size_t *len);
static int sf_tr_item_json(sf_tr_ctx_t *ctx, sf_tr_item_t *rec,
    json_t *items);
static int sf_tr_component(sf_tr_ctx_t *ctx, const sf_map_component_t *c,
    json_t *components);
static int sf_tr_value(void *data, const sf_tpl_seg_t *seg,
    const char **value, size_t *len);
static int sf_tr_option(sf_tr_ctx_t *ctx, const sf_tpl_seg_t *seg,
    const char **value, size_t *len);
static const char *sf_tr_placeholder(char *buf, const sf_tpl_seg_t *seg);


static const sf_tr_where_t  sf_tr_order_w = { NULL, SF_TR_NONE, NULL, 0 };


/* placeholder names, in sf_tpl_var_t order */
static const char *const  sf_tr_vars[] = {
    "", "order_id", "integration_id", "item_id", "product_id", "sku",
    "quantity", "option:", "option_integration_id:", "tracking_number",
    "tracking_url", "carrier", "ship_date", "status", "comment",
    "ship_first_name", "ship_last_name", "ship_company", "ship_address_label",
    "customer_first_name", "customer_last_name"
};


int
sf_transform_order(const sf_mapping_t *m, const json_t *printnow_order,
    const char *destination, json_t **siteflow_order, char *reason,
    size_t reason_size)
{
    int            rc;
    char           q[SF_TR_QUOTE_LEN];
    size_t         n, i, j, nmapped;
    json_t        *root, *obj, *order_data, *items, *ship_to;
    sf_tr_ctx_t    ctx;
    const json_t  *jitems;
    sf_tr_item_t  *recs, local[SF_TR_LOCAL];

    *siteflow_order = NULL;

    root = NULL;
    ship_to = NULL;
    recs = local;

    sf_tr_init(&ctx, m, printnow_order, reason, reason_size);

    rc = sf_tr_source(&ctx);
    if (rc != SF_TR_OK) {
        goto failed;
    }

    /* what PrintNow has deleted or archived is not printed */

    if (json_is_true(sf_tr_get(printnow_order, "is_deleted"))) {
        (void) sf_tr_reason(&ctx, "order %s is deleted in PrintNow "
                            "(is_deleted: true)",
                            sf_tr_quote(q, ctx.order_id.p,
                                        ctx.order_id.len));
        return SF_TRANSFORM_SKIP;
    }

    if (json_is_true(sf_tr_get(printnow_order, "is_archived"))) {
        (void) sf_tr_reason(&ctx, "order %s is archived in PrintNow "
                            "(is_archived: true)",
                            sf_tr_quote(q, ctx.order_id.p,
                                        ctx.order_id.len));
        return SF_TRANSFORM_SKIP;
    }

    jitems = sf_tr_get(printnow_order, "items");

    if (jitems != NULL && !json_is_array(jitems)) {
        rc = sf_tr_reason(&ctx, "items must be an array");
        goto failed;
    }

    n = json_array_size(jitems);

    if (n == 0) {
        (void) sf_tr_reason(&ctx, "order %s has no items",
                            sf_tr_quote(q, ctx.order_id.p,
                                        ctx.order_id.len));
        return SF_TRANSFORM_SKIP;
    }

    if (n > SF_TRANSFORM_MAX_ITEMS) {
        rc = sf_tr_reason(&ctx, "items: too many items (%zu, limit %d)",
                          n, SF_TRANSFORM_MAX_ITEMS);
        goto failed;
    }

    /* which items are mapped */

    nmapped = 0;

    for (i = 0; i < n; i++) {

        if (nmapped == SF_TR_LOCAL && recs == local) {
            recs = malloc(n * sizeof(sf_tr_item_t));
            if (recs == NULL) {
                recs = local;
                rc = SF_TR_NOMEM;
                goto failed;
            }

            memcpy(recs, local, sizeof(local));

            /* integers were written into the records themselves */

            for (j = 0; j < SF_TR_LOCAL; j++) {
                if (local[j].product_id.p == local[j].product_id.buf) {
                    recs[j].product_id.p = recs[j].product_id.buf;
                }
            }
        }

        rc = sf_tr_lookup(&ctx, json_array_get(jitems, i), i,
                          &recs[nmapped]);
        if (rc != SF_TR_OK) {
            goto failed;
        }

        if (recs[nmapped].product != NULL) {
            nmapped++;
        }
    }

    if (nmapped == 0) {
        sf_tr_skip(&ctx, jitems);

        if (recs != local) {
            free(recs);
        }

        return SF_TRANSFORM_SKIP;
    }

    /* everything that decides the outcome */

    for (i = 0; i < nmapped; i++) {
        rc = sf_tr_check_item(&ctx, &recs[i]);
        if (rc != SF_TR_OK) {
            goto failed;
        }
    }

    rc = sf_tr_duplicates(&ctx, recs, nmapped);
    if (rc != SF_TR_OK) {
        goto failed;
    }

    rc = sf_tr_contact(&ctx);
    if (rc != SF_TR_OK) {
        goto failed;
    }

    ship_to = json_object();
    if (ship_to == NULL) {
        rc = SF_TR_NOMEM;
        goto failed;
    }

    rc = sf_tr_ship_to(&ctx, ship_to);
    if (rc != SF_TR_OK) {
        goto failed;
    }

    rc = sf_tr_carrier(&ctx);
    if (rc != SF_TR_OK) {
        goto failed;
    }

    if (destination == NULL || destination[0] == '\0') {
        destination = m->destination;
    }

    if (destination == NULL) {
        json_decref(ship_to);

        if (recs != local) {
            free(recs);
        }

        (void) sf_tr_reason(&ctx, "no SiteFlow destination name: set "
                            "\"destination\" in the mapping");
        return SF_TRANSFORM_ERROR;
    }

    /* build */

    rc = SF_TR_NOMEM;

    root = json_object();
    if (root == NULL) {
        goto failed;
    }

    obj = json_object();

    if (json_object_set_new_nocheck(root, "destination", obj) != 0
        || json_object_set_new_nocheck(obj, "name", json_string(destination))
           != 0)
    {
        goto failed;
    }

    order_data = json_object();

    if (json_object_set_new_nocheck(root, "orderData", order_data) != 0
        || sf_tr_set_text(order_data, "sourceOrderId", ctx.source_id,
                          ctx.source_id_len)
           != 0)
    {
        goto failed;
    }

    rc = sf_tr_customer(&ctx, order_data, ship_to);
    if (rc != SF_TR_OK) {
        goto failed;
    }

    rc = SF_TR_NOMEM;

    items = json_array();

    if (json_object_set_new_nocheck(order_data, "items", items) != 0) {
        goto failed;
    }

    for (i = 0; i < nmapped; i++) {
        rc = sf_tr_item_json(&ctx, &recs[i], items);
        if (rc != SF_TR_OK) {
            goto failed;
        }
    }

    rc = sf_tr_shipment(&ctx, order_data, ship_to);
    ship_to = NULL;

    if (rc != SF_TR_OK) {
        goto failed;
    }

    rc = SF_TR_NOMEM;

    obj = json_object();

    if (json_object_set_new_nocheck(order_data, "extraData", obj) != 0
        || sf_tr_set_text(obj, "printnowOrderId", ctx.order_id.p,
                          ctx.order_id.len)
           != 0)
    {
        goto failed;
    }

    if (recs != local) {
        free(recs);
    }

    *siteflow_order = root;

    return SF_TRANSFORM_OK;

failed:

    json_decref(ship_to);
    json_decref(root);

    if (recs != local) {
        free(recs);
    }

    return sf_tr_result(&ctx, rc);
}


int
sf_transform_source_order_id(const sf_mapping_t *m, const json_t *order,
    char *out, size_t out_size)
{
    int          rc;
    sf_tr_ctx_t  ctx;

    if (out_size > 0) {
        out[0] = '\0';
    }

    sf_tr_init(&ctx, m, order, NULL, 0);

    rc = sf_tr_source(&ctx);

    if (rc != SF_TR_OK) {
        return sf_tr_result(&ctx, rc);
    }

    if (ctx.source_id_len >= out_size) {
        return SF_TRANSFORM_ERROR;
    }

    memcpy(out, ctx.source_id, ctx.source_id_len + 1);

    return SF_TRANSFORM_OK;
}


static void
sf_tr_init(sf_tr_ctx_t *ctx, const sf_mapping_t *m, const json_t *order,
    char *reason, size_t reason_size)
{
    ctx->m = m;
    ctx->order = order;
    ctx->reason = reason;
    ctx->reason_size = reason_size;
    ctx->order_id.p = NULL;
    ctx->order_id.len = 0;
    ctx->integration_id.p = NULL;
    ctx->integration_id.len = 0;
    ctx->item = NULL;
    ctx->sku = NULL;
    ctx->sku_len = 0;
    ctx->customer = NULL;
    ctx->address = NULL;
    ctx->email = NULL;
    ctx->email_len = 0;
    ctx->carrier = NULL;
    ctx->source_id[0] = '\0';
    ctx->source_id_len = 0;

    if (reason_size > 0) {
        reason[0] = '\0';
    }
}


static int
sf_tr_result(sf_tr_ctx_t *ctx, int rc)
{
    if (rc == SF_TR_NOMEM) {
        (void) sf_tr_reason(ctx, "out of memory");
        return SF_TRANSFORM_ERROR;
    }

    return SF_TRANSFORM_INVALID;
}


/* formats the reason, cut at a UTF-8 character boundary */

int
sf_tr_reason(sf_tr_ctx_t *ctx, const char *fmt, ...)
{
    int            n;
    size_t         len, i, need;
    va_list        args;
    unsigned char  c;

    if (ctx->reason_size == 0) {
        return SF_TR_BAD;
    }

    va_start(args, fmt);
    n = vsnprintf(ctx->reason, ctx->reason_size, fmt, args);
    va_end(args);

    if (n < 0) {
        ctx->reason[0] = '\0';
        return SF_TR_BAD;
    }

    if ((size_t) n < ctx->reason_size) {
        return SF_TR_BAD;
    }

    /* cut: drop a last character that is not all there */

    len = ctx->reason_size - 1;
    i = len;

    while (i > 0 && ((unsigned char) ctx->reason[i - 1] & 0xc0) == 0x80) {
        i--;
    }

    if (i > 0) {
        c = (unsigned char) ctx->reason[i - 1];
        need = (c < 0x80) ? 1 : (c < 0xe0) ? 2 : (c < 0xf0) ? 3 : 4;

        if (len - (i - 1) < need) {
            len = i - 1;
        }
    }

    ctx->reason[len] = '\0';

    return SF_TR_BAD;
}


/* "items[2].options[0].value"; buf holds SF_TR_PATH_LEN bytes */

static const char *
sf_tr_path(char *buf, const sf_tr_where_t *w, const char *key)
{
    int     n;
    size_t  len;

    len = 0;

    if (w->obj != NULL) {
        if (w->index != SF_TR_NONE) {
            n = snprintf(buf, SF_TR_PATH_LEN, "%s[%zu].", w->obj, w->index);

        } else {
            n = snprintf(buf, SF_TR_PATH_LEN, "%s.", w->obj);
        }

        len = (n > 0 && n < SF_TR_PATH_LEN) ? (size_t) n : 0;

        if (w->sub != NULL) {
            n = snprintf(buf + len, SF_TR_PATH_LEN - len, "%s[%zu].",
                         w->sub, w->sub_index);
            len += (n > 0 && (size_t) n < SF_TR_PATH_LEN - len) ? (size_t) n
                                                                : 0;
        }
    }

    (void) snprintf(buf + len, SF_TR_PATH_LEN - len, "%s", key);

    return buf;
}


/*
 * An order value for a reason (valid UTF-8, as jansson gives): at most
 * SF_TR_QUOTE_MAX bytes, cut at a character boundary and followed by
 * "...", '"' and '\' escaped, control characters as '?'.  buf holds
 * SF_TR_QUOTE_LEN bytes.
 */

const char *
sf_tr_quote(char *buf, const char *s, size_t len)
{
    size_t         i, n, end;
    unsigned char  c;

    end = len;

    if (end > SF_TR_QUOTE_MAX) {
        end = SF_TR_QUOTE_MAX;

        while (end > 0 && ((unsigned char) s[end] & 0xc0) == 0x80) {
            end--;
        }
    }

    n = 0;

    for (i = 0; i < end; i++) {
        c = (unsigned char) s[i];

        if (c < 0x20 || c == 0x7f) {
            buf[n++] = '?';
            continue;
        }

        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
        }

        buf[n++] = (char) c;
    }

    if (end < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }

    buf[n] = '\0';

    return buf;
}


/* a member; JSON null is the same as missing */

json_t *
sf_tr_get(const json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v != NULL && json_is_null(v)) {
        return NULL;
    }

    return v;
}


int
sf_tr_blank(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!SF_TR_SPACE(s[i])) {
            return 0;
        }
    }

    return 1;
}


/* *p, *len without the blanks (as sf_tr_blank counts them) around it */

void
sf_tr_trim(const char **p, size_t *len)
{
    size_t       n;
    const char  *s;

    s = *p;
    n = *len;

    while (n > 0 && SF_TR_SPACE(s[0])) {
        s++;
        n--;
    }

    while (n > 0 && SF_TR_SPACE(s[n - 1])) {
        n--;
    }

    *p = s;
    *len = n;
}


/* a string member: SF_TR_OK, SF_TR_ABSENT, SF_TR_BLANK or SF_TR_BAD */

int
sf_tr_text(sf_tr_ctx_t *ctx, const json_t *obj, const char *key,
    const sf_tr_where_t *w, const char **p, size_t *len)
{
    char     path[SF_TR_PATH_LEN];
    size_t   n;
    json_t  *v;

    *p = NULL;
    *len = 0;

    v = sf_tr_get(obj, key);

    if (v == NULL) {
        return SF_TR_ABSENT;
    }

    if (!json_is_string(v)) {
        return sf_tr_reason(ctx, "%s must be a string",
                            sf_tr_path(path, w, key));
    }

    n = json_string_length(v);

    if (n > SF_TRANSFORM_MAX_STRING) {
        return sf_tr_reason(ctx, "%s is too long (%zu bytes, limit %d)",
                            sf_tr_path(path, w, key), n,
                            SF_TRANSFORM_MAX_STRING);
    }

    *p = json_string_value(v);
    *len = n;

    return sf_tr_blank(*p, n) ? SF_TR_BLANK : SF_TR_OK;
}


/* an id: a non-negative integer or a string (sf_transform.h) */

static int
sf_tr_id(sf_tr_ctx_t *ctx, const json_t *obj, const char *key,
    const sf_tr_where_t *w, sf_tr_str_t *out)
{
    char         path[SF_TR_PATH_LEN];
    size_t       len, i;
    json_t      *v;
    json_int_t   k;
    const char  *s;

    out->p = NULL;
    out->len = 0;

    v = sf_tr_get(obj, key);

    if (v == NULL) {
        return SF_TR_ABSENT;
    }

    if (json_is_integer(v)) {
        k = json_integer_value(v);

        if (k < 0) {
            goto bad;
        }

        out->p = out->buf;
        out->len = sf_json_int(out->buf, (long long) k);

        return SF_TR_OK;
    }

    if (!json_is_string(v)) {
        goto bad;
    }

    s = json_string_value(v);
    len = json_string_length(v);

    if (sf_tr_blank(s, len)) {
        return SF_TR_BLANK;
    }

    if (len > SF_TRANSFORM_MAX_ID) {
        return sf_tr_reason(ctx, "%s is too long (%zu bytes, limit %d)",
                            sf_tr_path(path, w, key), len,
                            SF_TRANSFORM_MAX_ID);
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return sf_tr_reason(ctx, "%s must not contain control "
                                "characters", sf_tr_path(path, w, key));
        }
    }

    out->p = s;
    out->len = len;

    return SF_TR_OK;

bad:

    return sf_tr_reason(ctx, "%s must be a non-negative integer or a string",
                        sf_tr_path(path, w, key));
}


/*
 * first + sep + second, or either alone, each trimmed (" Ann " and " Lee"
 * give "Ann Lee"); joined in ctx->buf
 */

int
sf_tr_join(sf_tr_ctx_t *ctx, const json_t *obj, const char *first,
    const char *second, const char *sep, const sf_tr_where_t *w,
    const char **p, size_t *len)
{
    int          rc1, rc2;
    size_t       l1, l2, ls;
    const char  *p1, *p2;

    rc1 = sf_tr_text(ctx, obj, first, w, &p1, &l1);
    if (rc1 == SF_TR_BAD) {
        return SF_TR_BAD;
    }

    rc2 = sf_tr_text(ctx, obj, second, w, &p2, &l2);
    if (rc2 == SF_TR_BAD) {
        return SF_TR_BAD;
    }

    if (rc1 != SF_TR_OK && rc2 != SF_TR_OK) {
        return SF_TR_ABSENT;
    }

    sf_tr_trim(&p1, &l1);
    sf_tr_trim(&p2, &l2);

    if (rc2 != SF_TR_OK) {
        *p = p1;
        *len = l1;
        return SF_TR_OK;
    }

    if (rc1 != SF_TR_OK) {
        *p = p2;
        *len = l2;
        return SF_TR_OK;
    }

    /* each is at most SF_TRANSFORM_MAX_STRING bytes: ctx->buf holds both */

    ls = strlen(sep);

    memcpy(ctx->buf, p1, l1);
    memcpy(ctx->buf + l1, sep, ls);
    memcpy(ctx->buf + l1 + ls, p2, l2);

    *p = ctx->buf;
    *len = l1 + ls + l2;

    return SF_TR_OK;
}


/* the order id and the sourceOrderId */

static int
sf_tr_source(sf_tr_ctx_t *ctx)
{
    int                  rc;
    char                 q[SF_TR_QUOTE_LEN + 32];
    size_t               i, len;
    const sf_tpl_seg_t  *absent;

    if (!json_is_object(ctx->order)) {
        return sf_tr_reason(ctx, "the order must be a JSON object");
    }

    rc = sf_tr_id(ctx, ctx->order, "id", &sf_tr_order_w, &ctx->order_id);

    if (rc == SF_TR_ABSENT) {
        return sf_tr_reason(ctx, "id is missing");
    }

    if (rc == SF_TR_BLANK) {
        return sf_tr_reason(ctx, "id is empty");
    }

    if (rc != SF_TR_OK) {
        return rc;
    }

    rc = sf_tpl_render(&ctx->m->source_order_id, sf_tr_value, ctx,
                       ctx->source_id, sizeof(ctx->source_id), &len,
                       &absent);

    switch (rc) {

    case SF_TPL_OK:
        break;

    case SF_TPL_ABSENT:
        return sf_tr_reason(ctx, "no value for %s (needed by "
                            "source_order_id)", sf_tr_placeholder(q, absent));

    case SF_TPL_TOO_LONG:
        return sf_tr_reason(ctx, "sourceOrderId is too long (limit %d "
                            "bytes)", SF_TRANSFORM_SOURCE_ID_MAX);

    default:
        return SF_TR_BAD;
    }

    if (sf_tr_blank(ctx->source_id, len)) {
        return sf_tr_reason(ctx, "sourceOrderId is empty");
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) ctx->source_id[i] < 0x20
            || ctx->source_id[i] == 0x7f)
        {
            return sf_tr_reason(ctx, "sourceOrderId must not contain "
                                "control characters");
        }
    }

    ctx->source_id_len = len;

    return SF_TR_OK;
}


/* the mapped product of an item: by product_id, else by integration_id */

static int
sf_tr_lookup(sf_tr_ctx_t *ctx, const json_t *item, size_t index,
    sf_tr_item_t *rec)
{
    int            rc;
    char           key[12 + SF_TRANSFORM_MAX_ID];
    sf_tr_str_t    iid;
    sf_tr_where_t  w;

    w.obj = "items";
    w.index = index;
    w.sub = NULL;
    w.sub_index = 0;

    rec->item = item;
    rec->index = index;
    rec->product = NULL;
    rec->options = NULL;

    if (!json_is_object(item)) {
        return sf_tr_reason(ctx, "items[%zu] must be an object", index);
    }

    rc = sf_tr_id(ctx, item, "product_id", &w, &rec->product_id);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc == SF_TR_OK) {
        rec->product = sf_mapping_product(ctx->m, rec->product_id.p,
                                          rec->product_id.len);
        if (rec->product != NULL) {
            return SF_TR_OK;
        }
    }

    rc = sf_tr_id(ctx, item, "integration_id", &w, &iid);

    if (rc == SF_TR_BAD) {
        return rc;
    }

    if (rc == SF_TR_OK) {
        memcpy(key, "integration:", 12);
        memcpy(key + 12, iid.p, iid.len);

        rec->product = sf_mapping_product(ctx->m, key, 12 + iid.len);
    }

    return SF_TR_OK;
}


/*
 * "no item of order 5001 has a mapped product (product_id 99, 98)": the
 * distinct product_ids (or "integration:<id>" for items without one, or
 * "none") of the first SF_TR_SKIP_LIST, then "...".  Every item passed
 * sf_tr_lookup(), so reading the ids again cannot fail.
 */

static void
sf_tr_skip(sf_tr_ctx_t *ctx, const json_t *items)
{
    char           q[SF_TR_QUOTE_LEN + 12];
    char           seen[SF_TR_SKIP_LIST][SF_TR_QUOTE_LEN + 12];
    char           list[SF_TR_SKIP_LIST * (SF_TR_QUOTE_LEN + 14) + 8];
    size_t         i, j, n, nseen, len;
    unsigned       more;
    const json_t  *item;
    sf_tr_str_t    id;
    sf_tr_where_t  w;

    w.obj = "items";
    w.sub = NULL;
    w.sub_index = 0;

    nseen = 0;
    more = 0;

    n = json_array_size(items);

    for (i = 0; i < n; i++) {
        item = json_array_get(items, i);
        w.index = i;

        if (sf_tr_id(ctx, item, "product_id", &w, &id) == SF_TR_OK) {
            (void) sf_tr_quote(q, id.p, id.len);

        } else if (sf_tr_id(ctx, item, "integration_id", &w, &id)
                   == SF_TR_OK)
        {
            memcpy(q, "integration:", 12);
            (void) sf_tr_quote(q + 12, id.p, id.len);

        } else {
            memcpy(q, "none", sizeof("none"));
        }

        for (j = 0; j < nseen; j++) {
            if (strcmp(seen[j], q) == 0) {
                break;
            }
        }

        if (j < nseen) {
            continue;
        }

        if (nseen == SF_TR_SKIP_LIST) {
            more = 1;
            break;
        }

        memcpy(seen[nseen++], q, strlen(q) + 1);
    }

    len = 0;
    list[0] = '\0';

    for (j = 0; j < nseen; j++) {
        len += (size_t) snprintf(list + len, sizeof(list) - len, "%s%s",
                                 (j > 0) ? ", " : "", seen[j]);
    }

    if (more) {
        (void) snprintf(list + len, sizeof(list) - len, ", ...");
    }

    (void) sf_tr_reason(ctx, "no item of order %s has a mapped product "
                        "(product_id %s)",
                        sf_tr_quote(q, ctx->order_id.p, ctx->order_id.len),
                        list);
}


static int
sf_tr_check_item(sf_tr_ctx_t *ctx, sf_tr_item_t *rec)
{
    int            rc;
    size_t         i, len;
    json_t        *v;
    json_int_t     k;
    const char    *s;
    sf_tr_where_t  w;

    w.obj = "items";
    w.index = rec->index;
    w.sub = NULL;
    w.sub_index = 0;

    rc = sf_tr_id(ctx, rec->item, "id", &w, &rec->id);

    if (rc == SF_TR_ABSENT) {
        return sf_tr_reason(ctx, "items[%zu].id is missing", rec->index);
    }

    if (rc == SF_TR_BLANK) {
        return sf_tr_reason(ctx, "items[%zu].id is empty", rec->index);
    }

    if (rc != SF_TR_OK) {
        return rc;
    }

    v = sf_tr_get(rec->item, "quantity");

    if (v == NULL) {
        return sf_tr_reason(ctx, "items[%zu].quantity is missing",
                            rec->index);
    }

    k = 0;

    if (json_is_integer(v)) {
        k = json_integer_value(v);

    } else if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);

        /* decimal digits only; k stops growing once past the limit */

        for (i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') {
                k = 0;
                break;
            }

            if (k <= SF_TRANSFORM_MAX_QUANTITY) {
                k = k * 10 + (s[i] - '0');
            }
        }
    }

    if (k < 1) {
        return sf_tr_reason(ctx, "items[%zu].quantity must be a positive "
                            "integer", rec->index);
    }

    if (k > SF_TRANSFORM_MAX_QUANTITY) {
        return sf_tr_reason(ctx, "items[%zu].quantity is too large "
                            "(limit %d)", rec->index,
                            SF_TRANSFORM_MAX_QUANTITY);
    }

    rec->quantity = k;

    rec->qty.p = rec->qty.buf;
    rec->qty.len = sf_json_int(rec->qty.buf, (long long) k);

    v = sf_tr_get(rec->item, "options");

    if (v == NULL) {
        rec->options = NULL;
        return SF_TR_OK;
    }

    if (!json_is_array(v)) {
        return sf_tr_reason(ctx, "items[%zu].options must be an array",
                            rec->index);
    }

    if (json_array_size(v) > SF_TRANSFORM_MAX_OPTIONS) {
        return sf_tr_reason(ctx, "items[%zu].options: too many options "
                            "(%zu, limit %d)", rec->index,
                            json_array_size(v), SF_TRANSFORM_MAX_OPTIONS);
    }

    rec->options = v;

    return SF_TR_OK;
}


static int
sf_tr_id_cmp(const void *a, const void *b)
{
    int                  rc;
    const sf_tr_item_t  *x, *y;

    x = *(const sf_tr_item_t *const *) a;
    y = *(const sf_tr_item_t *const *) b;

    rc = memcmp(x->id.p, y->id.p, (x->id.len < y->id.len) ? x->id.len
                                                          : y->id.len);
    if (rc != 0) {
        return rc;
    }

    if (x->id.len != y->id.len) {
        return (x->id.len < y->id.len) ? -1 : 1;
    }

    return (x->index < y->index) ? -1 : (x->index > y->index);
}


/* SiteFlow wants sourceItemId unique within the order */

static int
sf_tr_duplicates(sf_tr_ctx_t *ctx, sf_tr_item_t *recs, size_t n)
{
    size_t          i, j;
    sf_tr_item_t  **sorted;

    if (n < SF_TR_SORT_MIN) {
        for (i = 1; i < n; i++) {
            for (j = 0; j < i; j++) {
                if (recs[i].id.len == recs[j].id.len
                    && memcmp(recs[i].id.p, recs[j].id.p, recs[i].id.len)
                       == 0)
                {
                    return sf_tr_reason(ctx, "items[%zu].id duplicates "
                                        "items[%zu].id", recs[i].index,
                                        recs[j].index);
                }
            }
        }

        return SF_TR_OK;
    }

    sorted = malloc(n * sizeof(sf_tr_item_t *));
    if (sorted == NULL) {
        return SF_TR_NOMEM;
    }

    for (i = 0; i < n; i++) {
        sorted[i] = &recs[i];
    }

    qsort(sorted, n, sizeof(sf_tr_item_t *), sf_tr_id_cmp);

    for (i = 1; i < n; i++) {
        if (sorted[i]->id.len == sorted[i - 1]->id.len
            && memcmp(sorted[i]->id.p, sorted[i - 1]->id.p,
                      sorted[i]->id.len)
               == 0)
        {
            j = sorted[i - 1]->index;
            i = sorted[i]->index;
            free(sorted);

            return sf_tr_reason(ctx, "items[%zu].id duplicates items[%zu].id",
                                i, j);
        }
    }

    free(sorted);

    return SF_TR_OK;
}


int
sf_tr_set_text(json_t *obj, const char *key, const char *p, size_t len)
{
    return json_object_set_new_nocheck(obj, key, json_stringn(p, len));
}


/* renders into ctx->buf; a template of the current item */

static int
sf_tr_render(sf_tr_ctx_t *ctx, const sf_tpl_t *tpl, int required,
    size_t *len)
{
    char                 q[SF_TR_QUOTE_LEN + 32];
    const sf_tpl_seg_t  *absent;

    switch (sf_tpl_render(tpl, sf_tr_value, ctx, ctx->buf,
                          SF_MAPPING_MAX_RENDER + 1, len, &absent))
    {

    case SF_TPL_OK:
        return SF_TR_OK;

    case SF_TPL_ABSENT:
        if (!required) {
            return SF_TR_ABSENT;
        }

        return sf_tr_reason(ctx, "items[%zu]: no value for %s (needed by "
                            "%s)", ctx->item->index,
                            sf_tr_placeholder(q, absent), tpl->where);

    case SF_TPL_TOO_LONG:
        return sf_tr_reason(ctx, "items[%zu]: %s gives more than %d bytes",
                            ctx->item->index, tpl->where,
                            SF_MAPPING_MAX_RENDER);

    default:
        return SF_TR_BAD;
    }
}


static int
sf_tr_item_json(sf_tr_ctx_t *ctx, sf_tr_item_t *rec, json_t *items)
{
    int                      rc;
    size_t                   len;
    json_t                  *obj, *v, *arr;
    unsigned                 i;
    const char              *p;
    sf_tr_where_t            w;
    const sf_map_product_t  *prod;

    prod = rec->product;

    ctx->item = rec;
    ctx->sku = NULL;
    ctx->sku_len = 0;

    obj = json_object();

    if (json_array_append_new(items, obj) != 0
        || sf_tr_set_text(obj, "sourceItemId", rec->id.p, rec->id.len) != 0)
    {
        return SF_TR_NOMEM;
    }

    rc = sf_tr_render(ctx, &prod->sku, 1, &len);
    if (rc != SF_TR_OK) {
        return rc;
    }

    if (sf_tr_blank(ctx->buf, len)) {
        return sf_tr_reason(ctx, "items[%zu]: %s gives an empty sku",
                            rec->index, prod->sku.where);
    }

    v = json_stringn(ctx->buf, len);

    if (json_object_set_new_nocheck(obj, "sku", v) != 0) {
        return SF_TR_NOMEM;
    }

    ctx->sku = json_string_value(v);
    ctx->sku_len = len;

    if (json_object_set_new_nocheck(obj, "quantity",
                                    json_integer(rec->quantity))
        != 0)
    {
        return SF_TR_NOMEM;
    }

    if (prod->description.segs != NULL) {
        rc = sf_tr_render(ctx, &prod->description, 0, &len);
        p = ctx->buf;

    } else {
        w.obj = "items";
        w.index = rec->index;
        w.sub = NULL;
        w.sub_index = 0;

        rc = sf_tr_text(ctx, rec->item, "name", &w, &p, &len);
    }

    if (rc == SF_TR_OK && !sf_tr_blank(p, len)) {
        if (sf_tr_set_text(obj, "description", p, len) != 0) {
            return SF_TR_NOMEM;
        }

    } else if (rc < 0) {
        return rc;
    }

    if (json_object_set_new_nocheck(obj, "shipmentIndex", json_integer(0))
        != 0)
    {
        return SF_TR_NOMEM;
    }

    arr = json_array();

    if (json_object_set_new_nocheck(obj, "components", arr) != 0) {
        return SF_TR_NOMEM;
    }

    for (i = 0; i < prod->ncomponents; i++) {
        rc = sf_tr_component(ctx, &prod->components[i], arr);
        if (rc != SF_TR_OK) {
            return rc;
        }
    }

    v = json_object();

    if (json_object_set_new_nocheck(obj, "extraData", v) != 0
        || sf_tr_set_text(v, "printnowItemId", rec->id.p, rec->id.len) != 0)
    {
        return SF_TR_NOMEM;
    }

    return SF_TR_OK;
}


static int
sf_tr_component(sf_tr_ctx_t *ctx, const sf_map_component_t *c,
    json_t *components)
{
    int                    rc;
    size_t                 len;
    json_t                *obj, *attrs, *v;
    unsigned               i;
    const sf_map_field_t  *f;

    obj = json_object();

    if (json_array_append_new(components, obj) != 0
        || json_object_set_new_nocheck(obj, "code", json_string(c->code))
           != 0)
    {
        return SF_TR_NOMEM;
    }

    rc = sf_tr_render(ctx, &c->path, 1, &len);
    if (rc != SF_TR_OK) {
        return rc;
    }

    if (!(len > 7 && strncasecmp(ctx->buf, "http://", 7) == 0)
        && !(len > 8 && strncasecmp(ctx->buf, "https://", 8) == 0))
    {
        return sf_tr_reason(ctx, "items[%zu]: %s does not give an http:// "
                            "or https:// URL", ctx->item->index,
                            c->path.where);
    }

    if (sf_tr_set_text(obj, "path", ctx->buf, len) != 0
        || json_object_set_new_nocheck(obj, "fetch", json_true()) != 0)
    {
        return SF_TR_NOMEM;
    }

    if (c->nattributes == 0) {
        return SF_TR_OK;
    }

    attrs = json_object();

    if (json_object_set_new_nocheck(obj, "attributes", attrs) != 0) {
        return SF_TR_NOMEM;
    }

    for (i = 0; i < c->nattributes; i++) {
        f = &c->attributes[i];

        switch (f->type) {

        case SF_VAL_TEMPLATE:
            rc = sf_tr_render(ctx, &f->tpl, 0, &len);

            if (rc == SF_TR_ABSENT) {
                continue;
            }

            if (rc != SF_TR_OK) {
                return rc;
            }

            v = json_stringn(ctx->buf, len);
            break;

        default:
            v = sf_map_field_scalar(f);
            break;
        }

        if (json_object_set_new_nocheck(attrs, f->key, v) != 0) {
            return SF_TR_NOMEM;
        }
    }

    if (json_object_size(attrs) == 0) {
        (void) json_object_del(obj, "attributes");
    }

    return SF_TR_OK;
}


/* placeholder values, for sf_tpl_render() */

static int
sf_tr_value(void *data, const sf_tpl_seg_t *seg, const char **value,
    size_t *len)
{
    int                 rc;
    sf_tr_ctx_t        *ctx;
    sf_tr_item_t       *rec;
    const sf_tr_str_t  *s;

    ctx = data;
    rec = ctx->item;

    switch (seg->var) {

    case SF_TPL_ORDER_ID:
        s = &ctx->order_id;
        break;

    case SF_TPL_INTEGRATION_ID:
        rc = sf_tr_id(ctx, ctx->order, "integration_id", &sf_tr_order_w,
                      &ctx->integration_id);

        if (rc == SF_TR_BAD) {
            return SF_TPL_FAIL;
        }

        s = &ctx->integration_id;
        break;

    case SF_TPL_SKU:
        if (ctx->sku == NULL) {
            return SF_TPL_ABSENT;
        }

        *value = ctx->sku;
        *len = ctx->sku_len;

        return SF_TPL_OK;

    case SF_TPL_OPTION:
    case SF_TPL_OPTION_INTEGRATION_ID:
        if (rec == NULL) {
            return SF_TPL_ABSENT;
        }

        return sf_tr_option(ctx, seg, value, len);

    case SF_TPL_ITEM_ID:
        s = (rec != NULL) ? &rec->id : NULL;
        break;

    case SF_TPL_PRODUCT_ID:
        s = (rec != NULL) ? &rec->product_id : NULL;
        break;

    case SF_TPL_QUANTITY:
        s = (rec != NULL) ? &rec->qty : NULL;
        break;

    default:
        s = NULL;
        break;
    }

    if (s == NULL || s->p == NULL) {
        return SF_TPL_ABSENT;
    }

    *value = s->p;
    *len = s->len;

    return SF_TPL_OK;
}


/*
 * The first option of the item with that exact name; a null, blank or
 * missing value (or no such option) falls back to the mapping's
 * defaults.options for {option:...}.
 */

static int
sf_tr_option(sf_tr_ctx_t *ctx, const sf_tpl_seg_t *seg, const char **value,
    size_t *len)
{
    int            n;
    char           path[SF_TR_PATH_LEN];
    size_t         i, count;
    json_t        *o, *name, *v;
    unsigned       k;
    const char    *key;
    sf_tr_where_t  w;

    key = (seg->var == SF_TPL_OPTION) ? "value" : "value_integration_id";

    count = json_array_size(ctx->item->options);

    for (i = 0; i < count; i++) {
        o = json_array_get(ctx->item->options, i);
        name = json_object_get(o, "name");

        if (!json_is_string(name) || json_string_length(name) != seg->len
            || memcmp(json_string_value(name), seg->text, seg->len) != 0)
        {
            continue;
        }

        v = json_object_get(o, key);

        if (v == NULL || json_is_null(v)) {
            goto defaults;
        }

        switch (json_typeof(v)) {

        case JSON_STRING:
            *value = json_string_value(v);
            *len = json_string_length(v);

            if (sf_tr_blank(*value, *len)) {
                goto defaults;
            }

            if (*len <= SF_TRANSFORM_MAX_STRING) {
                return SF_TPL_OK;
            }

            break;

        case JSON_INTEGER:
            n = snprintf(ctx->scratch, sizeof(ctx->scratch),
                         "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            goto scratch;

        case JSON_REAL:
            n = snprintf(ctx->scratch, sizeof(ctx->scratch), "%.15g",
                         json_real_value(v));
            goto scratch;

        case JSON_TRUE:
            *value = "true";
            *len = 4;
            return SF_TPL_OK;

        case JSON_FALSE:
            *value = "false";
            *len = 5;
            return SF_TPL_OK;

        default:
            break;
        }

        w.obj = "items";
        w.index = ctx->item->index;
        w.sub = "options";
        w.sub_index = i;

        if (json_is_string(v)) {
            (void) sf_tr_reason(ctx, "%s is too long (%zu bytes, limit %d)",
                                sf_tr_path(path, &w, key),
                                json_string_length(v),
                                SF_TRANSFORM_MAX_STRING);

        } else {
            (void) sf_tr_reason(ctx, "%s must be a string, number or "
                                "boolean", sf_tr_path(path, &w, key));
        }

        return SF_TPL_FAIL;

    scratch:

        *value = ctx->scratch;
        *len = (n > 0 && (size_t) n < sizeof(ctx->scratch)) ? (size_t) n : 0;

        return SF_TPL_OK;
    }

defaults:

    if (seg->var != SF_TPL_OPTION) {
        return SF_TPL_ABSENT;
    }

    for (k = 0; k < ctx->m->ndefault_options; k++) {
        if (ctx->m->default_options[k].key_len == seg->len
            && memcmp(ctx->m->default_options[k].key, seg->text, seg->len)
               == 0)
        {
            *value = ctx->m->default_options[k].value;
            *len = ctx->m->default_options[k].value_len;

            return SF_TPL_OK;
        }
    }

    return SF_TPL_ABSENT;
}


/* "{option:Finish}" for a reason; buf holds SF_TR_QUOTE_LEN + 32 bytes */

static const char *
sf_tr_placeholder(char *buf, const sf_tpl_seg_t *seg)
{
    char  q[SF_TR_QUOTE_LEN];

    if (seg->var == SF_TPL_OPTION || seg->var == SF_TPL_OPTION_INTEGRATION_ID)
    {
        (void) snprintf(buf, SF_TR_QUOTE_LEN + 32, "{%s%s}",
                        sf_tr_vars[seg->var],
                        sf_tr_quote(q, seg->text, seg->len));

    } else {
        (void) snprintf(buf, SF_TR_QUOTE_LEN + 32, "{%s}",
                        sf_tr_vars[seg->var]);
    }

    return buf;
}
