
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Rendering what a loaded mapping holds (sf_mapping.h): the template
 * renderer shared with sf_transform.c, and the printnow body overrides.
 * Loading, validating and compiling the templates is sf_mapping.c's.
 * Pure C: libc and jansson only; nothing here writes to the mapping.
 */


#include <stddef.h>
#include <string.h>

#include <jansson.h>

#include "sf_mapping.h"


/* sf_tpl_append() modes */
#define SF_TPL_RAW      0
#define SF_TPL_ENCODE   1        /* all but RFC 3986 unreserved */
#define SF_TPL_LIGHT    2        /* only bytes never valid in a URL */


static int sf_map_pn_value(void *data, const sf_tpl_seg_t *seg,
    const char **value, size_t *len);
static int sf_tpl_append(char *buf, size_t size, size_t *n, const char *p,
    size_t len, int mode);


int
sf_mapping_printnow_body(const sf_mapping_t *m, sf_pn_call_t call,
    const sf_pn_vars_t *vars, json_t **body)
{
    int                    rc;
    char                   buf[SF_MAPPING_MAX_RENDER + 1];
    size_t                 len;
    json_t                *obj, *v;
    unsigned               i;
    sf_map_field_t        *f;
    const sf_tpl_seg_t    *absent;

    *body = NULL;

    if ((unsigned) call >= SF_PN_COUNT || !m->has_printnow[call]) {
        return 0;
    }

    obj = json_object();
    if (obj == NULL) {
        return -1;
    }

    for (i = 0; i < m->nprintnow[call]; i++) {
        f = &m->printnow[call][i];

        switch (f->type) {

        case SF_VAL_TEMPLATE:
            rc = sf_tpl_render(&f->tpl, sf_map_pn_value, (void *) vars, buf,
                               sizeof(buf), &len, &absent);

            if (rc == SF_TPL_ABSENT) {
                continue;
            }

            if (rc != SF_TPL_OK) {
                goto failed;
            }

            v = json_stringn(buf, len);
            break;

        default:
            v = sf_map_field_scalar(f);
            break;
        }

        if (json_object_set_new(obj, f->key, v) != 0) {
            goto failed;
        }
    }

    *body = obj;

    return 0;

failed:

    json_decref(obj);

    return -1;
}


int
sf_tpl_render(const sf_tpl_t *tpl, sf_tpl_value_pt get, void *data,
    char *buf, size_t size, size_t *len, const sf_tpl_seg_t **absent)
{
    int                  rc, mode;
    size_t               n, vlen;
    unsigned             i;
    const char          *v;
    const sf_tpl_seg_t  *seg;

    n = 0;
    *len = 0;

    if (size == 0) {
        return SF_TPL_TOO_LONG;
    }

    buf[0] = '\0';

    for (i = 0; i < tpl->nsegs; i++) {
        seg = &tpl->segs[i];

        if (seg->var == SF_TPL_LITERAL) {
            v = seg->text;
            vlen = seg->len;
            mode = SF_TPL_RAW;

        } else {
            rc = get(data, seg, &v, &vlen);

            if (rc == SF_TPL_ABSENT) {
                *absent = seg;
                return SF_TPL_ABSENT;
            }

            if (rc != SF_TPL_OK) {
                return SF_TPL_FAIL;
            }

            if (!tpl->url) {
                mode = SF_TPL_RAW;

            } else {
                mode = (i == 0) ? SF_TPL_LIGHT : SF_TPL_ENCODE;
            }
        }

        if (sf_tpl_append(buf, size, &n, v, vlen, mode) != 0) {
            buf[0] = '\0';
            return SF_TPL_TOO_LONG;
        }
    }

    buf[n] = '\0';
    *len = n;

    return SF_TPL_OK;
}


/* appends p[0 .. len - 1], encoded per mode; -1 if it does not fit */

static int
sf_tpl_append(char *buf, size_t size, size_t *n, const char *p, size_t len,
    int mode)
{
    size_t          i, k;
    unsigned char   c;
    static const char  hex[] = "0123456789ABCDEF";

    k = *n;

    if (mode == SF_TPL_RAW) {
        if (len >= size - k) {
            return -1;
        }

        memcpy(buf + k, p, len);
        *n = k + len;

        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) p[i];

        if (mode == SF_TPL_ENCODE) {
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                || (c >= '0' && c <= '9')
                || c == '-' || c == '.' || c == '_' || c == '~')
            {
                goto plain;
            }

        } else if (c > 0x20 && c < 0x7f && strchr("\"<>\\^`{|}", c) == NULL)
        {
            goto plain;
        }

        if (size - k <= 3) {
            return -1;
        }

        buf[k++] = '%';
        buf[k++] = hex[c >> 4];
        buf[k++] = hex[c & 0x0f];

        continue;

    plain:

        if (size - k <= 1) {
            return -1;
        }

        buf[k++] = (char) c;
    }

    *n = k;

    return 0;
}


/*
 * A printnow placeholder's value.  NULL or "" is a value the postback did
 * not give (sf_postback_t holds "" for an absent field): the field whose
 * template uses it is left out, never sent as "" or with a hole in it.
 */

static int
sf_map_pn_value(void *data, const sf_tpl_seg_t *seg, const char **value,
    size_t *len)
{
    const char          *v;
    const sf_pn_vars_t  *vars;

    vars = data;

    if (vars == NULL) {
        return SF_TPL_ABSENT;
    }

    switch (seg->var) {
    case SF_TPL_TRACKING_NUMBER:
        v = vars->tracking_number;
        break;
    case SF_TPL_TRACKING_URL:
        v = vars->tracking_url;
        break;
    case SF_TPL_CARRIER:
        v = vars->carrier;
        break;
    case SF_TPL_SHIP_DATE:
        v = vars->ship_date;
        break;
    case SF_TPL_STATUS:
        v = vars->status;
        break;
    case SF_TPL_COMMENT:
        v = vars->comment;
        break;
    case SF_TPL_ORDER_ID:
        v = vars->order_id;
        break;
    case SF_TPL_ITEM_ID:
        v = vars->item_id;
        break;
    default:
        v = NULL;
        break;
    }

    if (v == NULL || v[0] == '\0') {
        return SF_TPL_ABSENT;
    }

    *value = v;
    *len = strlen(v);

    return SF_TPL_OK;
}
