
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * The shipment validation of sf_ship.c as it was at commit 0903028 (one
 * jansson tree per body), kept as the reference that the current
 * implementation (a scanner and checks on the text) must match exactly:
 * result, problem count and message, for every input.  Included by
 * t/unit/test_sf_ship.c and t/fuzz/fuzz_sf_ship.c; test code only.
 */


#ifndef _REF_SHIP_H_INCLUDED_
#define _REF_SHIP_H_INCLUDED_


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "sf_ship.h"
#include "sf_json.h"


static sf_ship_rc_t ref_ship_validate(const char *body, size_t len,
    char *msg, size_t msg_size, unsigned *nproblems);
static size_t ref_ship_order_number(const char *body, size_t len, char *out,
    size_t size);


#define REF_SHIP_PATH_LEN      128
#define REF_SHIP_PROBLEM_LEN   192
#define REF_SHIP_TEXT_LEN      512

#define REF_SHIP_MORE          "; ..."
#define REF_SHIP_ELLIPSIS      "..."


#if defined(__GNUC__) || defined(__clang__)
#define REF_SHIP_PRINTF(f, a)  __attribute__ ((format (printf, f, a)))
#else
#define REF_SHIP_PRINTF(f, a)
#endif


typedef struct {
    char            *buf;
    size_t           size;
    size_t           len;
    size_t           mark;     /* end of the last problem "; ..." fits after */
    unsigned         count;
    unsigned         full;     /* nothing more is appended */
} ref_ship_ctx_t;


static sf_ship_rc_t ref_ship_message(char *msg, size_t msg_size,
    unsigned *nproblems, sf_ship_rc_t rc, const char *text);
static sf_ship_rc_t ref_ship_bad_json(char *msg, size_t msg_size,
    unsigned *nproblems, json_error_t *err);
static int ref_ship_blank(const char *p, size_t len);
static json_t *ref_ship_get(json_t *obj, const char *key);
static void ref_ship_path(char *buf, const char *prefix, const char *key);
static void ref_ship_problem(ref_ship_ctx_t *ctx, const char *fmt, ...)
    REF_SHIP_PRINTF(2, 3);
static json_t *ref_ship_check_text(ref_ship_ctx_t *ctx, json_t *obj,
    const char *prefix, const char *key);
static void ref_ship_check_enum(ref_ship_ctx_t *ctx, json_t *obj,
    const char *prefix, const char *key, const char *const *values,
    const char *list);
static void ref_ship_check_output(ref_ship_ctx_t *ctx, json_t *root);
static void ref_ship_check_order_number(ref_ship_ctx_t *ctx, json_t *root);
static void ref_ship_check_address(ref_ship_ctx_t *ctx, json_t *root,
    const char *key);
static int ref_ship_country_code(const char *p, size_t len);
static void ref_ship_check_packages(ref_ship_ctx_t *ctx, json_t *root);
static void ref_ship_check_items(ref_ship_ctx_t *ctx, json_t *pkg,
    const char *prefix);


static const char *const  ref_ship_formats[] = { "pdf", "png", "zpl", NULL };
static const char *const  ref_ship_orientations[] = {
    "portrait", "landscape", NULL
};
static const char *const  ref_ship_lengths[] = { "mm", "inch", NULL };
static const char *const  ref_ship_weights[] = { "g", "oz", NULL };
static const char *const  ref_ship_item_types[] = {
    "production", "stock", NULL
};

static const char *const  ref_ship_address_keys[] = {
    "name", "address1", "town", "postcode", "isoCountry", NULL
};


static sf_ship_rc_t
ref_ship_validate(const char *body, size_t len, char *msg, size_t msg_size,
    unsigned *nproblems)
{
    char           text[REF_SHIP_TEXT_LEN];
    size_t         i, line, column;
    json_t        *root;
    json_error_t   err;
    ref_ship_ctx_t  ctx;

    if (msg_size > 0) {
        msg[0] = '\0';
    }

    if (nproblems != NULL) {
        *nproblems = 0;
    }

    if (body == NULL && len > 0) {
        return ref_ship_message(msg, msg_size, nproblems, SF_SHIP_ERROR,
                               "internal error: no request body buffer");
    }

    for (i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t'
            && body[i] != '\n' && body[i] != '\r')
        {
            break;
        }
    }

    if (i == len) {
        return ref_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON,
                               "empty request body");
    }

    if (sf_json_too_deep((const unsigned char *) body, len,
                         SF_SHIP_MAX_DEPTH, &line, &column))
    {
        (void) snprintf(text, sizeof(text),
                        "invalid JSON at line %zu, column %zu: "
                        "nesting too deep (more than %d levels)",
                        line, column, SF_SHIP_MAX_DEPTH);

        return ref_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON,
                               text);
    }

    root = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                      &err);

    if (root == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            return ref_ship_message(msg, msg_size, nproblems, SF_SHIP_ERROR,
                                   "internal error: out of memory");
        }

        return ref_ship_bad_json(msg, msg_size, nproblems, &err);
    }

    if (!json_is_object(root)) {
        json_decref(root);

        return ref_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON,
                               "request body must be a JSON object");
    }

    ctx.buf = msg;
    ctx.size = msg_size;
    ctx.len = 0;
    ctx.mark = 0;
    ctx.count = 0;
    ctx.full = (msg_size == 0);

    ref_ship_check_output(&ctx, root);

    (void) ref_ship_check_text(&ctx, root, "", "shipmentId");

    ref_ship_check_enum(&ctx, root, "", "weightUnit", ref_ship_weights,
                       "g, oz");
    ref_ship_check_enum(&ctx, root, "", "dimensionUnit", ref_ship_lengths,
                       "mm, inch");

    ref_ship_check_address(&ctx, root, "shipTo");
    ref_ship_check_order_number(&ctx, root);
    ref_ship_check_address(&ctx, root, "return");
    ref_ship_check_address(&ctx, root, "shipper");

    ref_ship_check_packages(&ctx, root);

    json_decref(root);

    if (nproblems != NULL) {
        *nproblems = ctx.count;
    }

    return (ctx.count == 0) ? SF_SHIP_OK : SF_SHIP_INVALID;
}


static sf_ship_rc_t
ref_ship_message(char *msg, size_t msg_size, unsigned *nproblems,
    sf_ship_rc_t rc, const char *text)
{
    sf_json_copy_cut(msg, msg_size, text, strlen(text));

    if (nproblems != NULL) {
        *nproblems = (rc == SF_SHIP_BAD_JSON) ? 1 : 0;
    }

    return rc;
}


static sf_ship_rc_t
ref_ship_bad_json(char *msg, size_t msg_size, unsigned *nproblems,
    json_error_t *err)
{
    int            rc;
    char           text[REF_SHIP_TEXT_LEN];
    size_t         n, i, k, skip, max;
    const char    *reason;
    unsigned char  c;

    if (err->line >= 0 && err->column >= 0) {
        rc = snprintf(text, sizeof(text),
                      "invalid JSON at line %d, column %d: ",
                      err->line, err->column);

    } else {
        rc = snprintf(text, sizeof(text), "invalid JSON: ");
    }

    n = (rc > 0 && (size_t) rc < sizeof(text)) ? (size_t) rc : 0;

    if (json_error_code(err) == json_error_null_character) {
        reason = "NUL character (\\u0000) in a string";

    } else if (err->text[0] != '\0') {
        reason = err->text;

    } else {
        reason = "unknown error";
    }

    /* copy the reason: valid UTF-8 kept, control bytes and bad UTF-8 -> '?' */

    max = strnlen(reason, sizeof(err->text));

    for (i = 0; i < max && n < sizeof(text) - 1; /* void */ ) {
        c = (unsigned char) reason[i];

        if (c < 0x20 || c == 0x7f) {
            text[n++] = '?';
            i++;
            continue;
        }

        k = sf_json_utf8((const unsigned char *) reason + i, max - i, &skip);

        if (k == 0) {
            text[n++] = '?';
            i += skip;
            continue;
        }

        if (n + k > sizeof(text) - 1) {
            break;
        }

        memcpy(text + n, reason + i, k);
        n += k;
        i += k;
    }

    text[n] = '\0';

    return ref_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON, text);
}


static int
ref_ship_blank(const char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        switch (p[i]) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
        case '\f':
        case '\v':
            break;

        default:
            return 0;
        }
    }

    return 1;
}


/* a member, with JSON null treated as absent */

static json_t *
ref_ship_get(json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v != NULL && json_is_null(v)) {
        return NULL;
    }

    return v;
}


/* buf must hold REF_SHIP_PATH_LEN bytes; prefixes are short and fixed */

static void
ref_ship_path(char *buf, const char *prefix, const char *key)
{
    (void) snprintf(buf, REF_SHIP_PATH_LEN, "%s%s%s",
                    prefix, (prefix[0] != '\0') ? "." : "", key);
}


/*
 * Appends one problem (ASCII text) to the message.  "mark" remembers the
 * end of the last problem after which "; ..." still fits, so that when a
 * problem does not fit the message is cut back there and ends "; ...".
 */

static void
ref_ship_problem(ref_ship_ctx_t *ctx, const char *fmt, ...)
{
    int      rc;
    char     text[REF_SHIP_PROBLEM_LEN];
    size_t   n, sep;
    va_list  args;

    if (ctx->count < (unsigned) -1) {
        ctx->count++;
    }

    if (ctx->full) {
        return;
    }

    va_start(args, fmt);
    rc = vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);

    if (rc < 0) {
        rc = 0;
        text[0] = '\0';
    }

    n = ((size_t) rc < sizeof(text)) ? (size_t) rc : sizeof(text) - 1;
    sep = (ctx->len > 0) ? 2 : 0;

    if (ctx->len + sep + n < ctx->size) {
        memcpy(ctx->buf + ctx->len, "; ", sep);
        memcpy(ctx->buf + ctx->len + sep, text, n);
        ctx->len += sep + n;
        ctx->buf[ctx->len] = '\0';

        if (ctx->len + sizeof(REF_SHIP_MORE) <= ctx->size) {
            ctx->mark = ctx->len;
        }

        return;
    }

    ctx->full = 1;

    if (ctx->mark > 0) {
        memcpy(ctx->buf + ctx->mark, REF_SHIP_MORE, sizeof(REF_SHIP_MORE));
        ctx->len = ctx->mark + sizeof(REF_SHIP_MORE) - 1;
        return;
    }

    if (ctx->size >= sizeof(REF_SHIP_ELLIPSIS)) {
        memcpy(ctx->buf, REF_SHIP_ELLIPSIS, sizeof(REF_SHIP_ELLIPSIS));
        ctx->len = sizeof(REF_SHIP_ELLIPSIS) - 1;
        return;
    }

    ctx->buf[0] = '\0';
    ctx->len = 0;
}


/* a mandatory non-empty string; returns it, or NULL after a problem */

static json_t *
ref_ship_check_text(ref_ship_ctx_t *ctx, json_t *obj, const char *prefix,
    const char *key)
{
    char     path[REF_SHIP_PATH_LEN];
    json_t  *v;

    ref_ship_path(path, prefix, key);

    v = ref_ship_get(obj, key);

    if (v == NULL) {
        ref_ship_problem(ctx, "%s is required", path);
        return NULL;
    }

    if (!json_is_string(v)) {
        ref_ship_problem(ctx, "%s must be a string", path);
        return NULL;
    }

    if (ref_ship_blank(json_string_value(v), json_string_length(v))) {
        ref_ship_problem(ctx, "%s must not be empty", path);
        return NULL;
    }

    return v;
}


/* an optional string out of a fixed, case-sensitive set */

static void
ref_ship_check_enum(ref_ship_ctx_t *ctx, json_t *obj, const char *prefix,
    const char *key, const char *const *values, const char *list)
{
    char         path[REF_SHIP_PATH_LEN];
    size_t       len;
    json_t      *v;
    const char  *s;

    v = ref_ship_get(obj, key);

    if (v == NULL) {
        return;
    }

    ref_ship_path(path, prefix, key);

    if (!json_is_string(v)) {
        ref_ship_problem(ctx, "%s must be a string", path);
        return;
    }

    s = json_string_value(v);
    len = json_string_length(v);

    for ( /* void */ ; *values != NULL; values++) {
        if (strlen(*values) == len && memcmp(*values, s, len) == 0) {
            return;
        }
    }

    ref_ship_problem(ctx, "%s must be one of %s", path, list);
}


static void
ref_ship_check_output(ref_ship_ctx_t *ctx, json_t *root)
{
    json_t  *output, *dimensions;

    output = ref_ship_get(root, "output");

    if (output == NULL) {
        return;
    }

    if (!json_is_object(output)) {
        ref_ship_problem(ctx, "output must be an object");
        return;
    }

    ref_ship_check_enum(ctx, output, "output", "format", ref_ship_formats,
                       "pdf, png, zpl");
    ref_ship_check_enum(ctx, output, "output", "orientation",
                       ref_ship_orientations, "portrait, landscape");

    dimensions = ref_ship_get(output, "dimensions");

    if (dimensions == NULL) {
        return;
    }

    if (!json_is_object(dimensions)) {
        ref_ship_problem(ctx, "output.dimensions must be an object");
        return;
    }

    ref_ship_check_enum(ctx, dimensions, "output.dimensions", "unit",
                       ref_ship_lengths, "mm, inch");
}


static void
ref_ship_check_order_number(ref_ship_ctx_t *ctx, json_t *root)
{
    json_t  *v;

    v = ref_ship_get(root, "orderNumber");

    if (v == NULL) {
        ref_ship_problem(ctx, "orderNumber is required");
        return;
    }

    if (json_is_number(v)) {
        return;
    }

    if (!json_is_string(v)) {
        ref_ship_problem(ctx, "orderNumber must be a string or a number");
        return;
    }

    if (ref_ship_blank(json_string_value(v), json_string_length(v))) {
        ref_ship_problem(ctx, "orderNumber must not be empty");
    }
}


static void
ref_ship_check_address(ref_ship_ctx_t *ctx, json_t *root, const char *key)
{
    json_t             *addr, *v;
    const char *const  *k;

    addr = ref_ship_get(root, key);

    if (addr == NULL) {
        ref_ship_problem(ctx, "%s is required", key);
        return;
    }

    if (!json_is_object(addr)) {
        ref_ship_problem(ctx, "%s must be an object", key);
        return;
    }

    for (k = ref_ship_address_keys; *k != NULL; k++) {
        v = ref_ship_check_text(ctx, addr, key, *k);

        if (v != NULL && strcmp(*k, "isoCountry") == 0
            && !ref_ship_country_code(json_string_value(v),
                                     json_string_length(v)))
        {
            ref_ship_problem(ctx, "%s.isoCountry must be an ISO 3166-1 "
                            "country code (2 or 3 letters, or 3 digits)",
                            key);
        }
    }
}


static int
ref_ship_country_code(const char *p, size_t len)
{
    size_t  i, alpha, digit;

    if (len < 2 || len > 3) {
        return 0;
    }

    alpha = 0;
    digit = 0;

    for (i = 0; i < len; i++) {
        if ((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')) {
            alpha++;

        } else if (p[i] >= '0' && p[i] <= '9') {
            digit++;
        }
    }

    return alpha == len || (digit == 3 && len == 3);
}


static void
ref_ship_check_packages(ref_ship_ctx_t *ctx, json_t *root)
{
    char     prefix[32];
    size_t   i, n;
    json_t  *packages, *pkg;

    packages = ref_ship_get(root, "packages");

    if (packages == NULL) {
        ref_ship_problem(ctx, "packages is required");
        return;
    }

    if (!json_is_array(packages) || json_array_size(packages) == 0) {
        ref_ship_problem(ctx, "packages must be a non-empty array");
        return;
    }

    n = json_array_size(packages);

    if (n > SF_SHIP_MAX_PACKAGES) {
        ref_ship_problem(ctx, "packages: too many packages (%zu, limit %d)",
                        n, SF_SHIP_MAX_PACKAGES);
        n = SF_SHIP_MAX_PACKAGES;
    }

    for (i = 0; i < n; i++) {
        pkg = json_array_get(packages, i);

        if (!json_is_object(pkg)) {
            ref_ship_problem(ctx, "packages[%zu] must be an object", i);
            continue;
        }

        (void) snprintf(prefix, sizeof(prefix), "packages[%zu]", i);

        ref_ship_check_items(ctx, pkg, prefix);
    }
}


static void
ref_ship_check_items(ref_ship_ctx_t *ctx, json_t *pkg, const char *prefix)
{
    char       path[REF_SHIP_PATH_LEN], ipath[REF_SHIP_PATH_LEN + 32];
    size_t     i, n;
    json_t    *items, *item, *count;

    ref_ship_path(path, prefix, "items");

    items = ref_ship_get(pkg, "items");

    if (items == NULL) {
        ref_ship_problem(ctx, "%s is required", path);
        return;
    }

    if (!json_is_array(items) || json_array_size(items) == 0) {
        ref_ship_problem(ctx, "%s must be a non-empty array", path);
        return;
    }

    n = json_array_size(items);

    if (n > SF_SHIP_MAX_ITEMS) {
        ref_ship_problem(ctx, "%s: too many items (%zu, limit %d)",
                        path, n, SF_SHIP_MAX_ITEMS);
        n = SF_SHIP_MAX_ITEMS;
    }

    for (i = 0; i < n; i++) {
        item = json_array_get(items, i);

        (void) snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);

        if (!json_is_object(item)) {
            ref_ship_problem(ctx, "%s must be an object", ipath);
            continue;
        }

        count = ref_ship_get(item, "count");

        if (count != NULL
            && (!json_is_integer(count) || json_integer_value(count) <= 0))
        {
            ref_ship_problem(ctx, "%s.count must be a positive integer",
                            ipath);
        }

        ref_ship_check_enum(ctx, item, ipath, "type", ref_ship_item_types,
                           "production, stock");
    }
}


/*
 * The order id of the Site Flow Log entry of a Ship API request as
 * ngx_http_siteflow_hmac.c (now _guard.c) found it at commit 0903028 (a jansson tree,
 * duplicate keys allowed).
 */

static size_t
ref_ship_order_number(const char *body, size_t len, char *out, size_t size)
{
    int          n;
    char         num[32];
    size_t       k;
    json_t      *root, *v;

    if (len == 0
        || sf_json_too_deep((const unsigned char *) body, len, 32, NULL,
                            NULL))
    {
        return 0;
    }

    root = json_loadb(body, len, 0, NULL);
    if (root == NULL) {
        return 0;
    }

    v = json_is_object(root) ? json_object_get(root, "orderNumber") : NULL;
    k = 0;

    if (json_is_string(v)) {
        k = json_string_length(v);
        k = (k < size) ? k : size;
        memcpy(out, json_string_value(v), k);

    } else if (json_is_integer(v)) {
        n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        k = (n > 0) ? (size_t) n : 0;
        k = (k < size) ? k : size;
        memcpy(out, num, k);
    }

    json_decref(root);

    return k;
}


#endif /* _REF_SHIP_H_INCLUDED_ */
