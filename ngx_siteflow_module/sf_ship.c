
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Ship API shipment request validation ("siteflow_shipment_validate on").
 *
 * Source: the SiteFlow "Ship API Request" page (reference seed 003): the
 * example body and its key table, where "*" marks a mandatory value.  The
 * JSON keys are spelled as in the example body ("isoCountry", although the
 * table writes "ISOCountry"/"ISOcountry"); keys are case-sensitive.
 *
 * Whole body (SF_SHIP_BAD_JSON, exactly one message):
 *
 *   - empty or JSON-whitespace only:     "empty request body"
 *   - more than SF_SHIP_MAX_DEPTH nested objects/arrays (found by a scan
 *     of the raw bytes before parsing, so jansson never builds a deep
 *     tree):   "invalid JSON at line L, column C: nesting too deep
 *              (more than 32 levels)"
 *   - not JSON (jansson, duplicate keys rejected so that we and the
 *     upstream cannot see different values for one key):
 *              "invalid JSON at line L, column C: <jansson error text>"
 *   - top level is not an object:        "request body must be a JSON object"
 *
 * Fields (SF_SHIP_INVALID, every problem reported, in this order).  A JSON
 * null counts as absent.  "Empty" means zero length or only ASCII
 * whitespace.  Enumerated values are compared exactly (case-sensitive, as
 * the page lists them).  <a> stands for shipTo, return and shipper:
 *
 *   output                  optional; "output must be an object"
 *   output.format           optional; "output.format must be a string",
 *                           "output.format must be one of pdf, png, zpl"
 *   output.orientation      optional; "... must be a string",
 *                           "output.orientation must be one of portrait,
 *                           landscape"
 *   output.dimensions       optional; "output.dimensions must be an object"
 *   output.dimensions.unit  optional; "... must be a string",
 *                           "output.dimensions.unit must be one of mm, inch"
 *   shipmentId              "shipmentId is required",
 *                           "shipmentId must be a string",
 *                           "shipmentId must not be empty"
 *   weightUnit              optional; "... must be a string",
 *                           "weightUnit must be one of g, oz"
 *   dimensionUnit           optional; "... must be a string",
 *                           "dimensionUnit must be one of mm, inch"
 *   shipTo                  "shipTo is required", "shipTo must be an object"
 *   orderNumber             "orderNumber is required",
 *                           "orderNumber must be a string or a number",
 *                           "orderNumber must not be empty"
 *   return, shipper         as shipTo
 *   <a>.name, <a>.address1, <a>.town, <a>.postcode, <a>.isoCountry
 *                           (all marked "*" for each of the three
 *                           addresses): "<a>.<key> is required",
 *                           "<a>.<key> must be a string",
 *                           "<a>.<key> must not be empty"
 *   <a>.isoCountry          "the short alphabetic or numeric codes", i.e.
 *                           ISO 3166-1 alpha-2, alpha-3 (letters of either
 *                           case) or numeric (3 digits), nothing around:
 *                           "<a>.isoCountry must be an ISO 3166-1 country
 *                           code (2 or 3 letters, or 3 digits)"
 *   packages                "packages is required",
 *                           "packages must be a non-empty array";
 *                           over SF_SHIP_MAX_PACKAGES entries:
 *                           "packages: too many packages (N, limit 1000)"
 *                           and only the first 1000 are checked
 *   packages[i]             "packages[i] must be an object"
 *   packages[i].items       "packages[i].items is required",
 *                           "packages[i].items must be a non-empty array";
 *                           over SF_SHIP_MAX_ITEMS entries:
 *                           "packages[i].items: too many items
 *                           (N, limit 1000)", first 1000 checked
 *   packages[i].items[j]    "packages[i].items[j] must be an object"
 *   ....items[j].count      optional; "... must be a positive integer"
 *                           (a JSON integer > 0; 1.0 is not accepted)
 *   ....items[j].type       optional; "... must be a string",
 *                           "... must be one of production, stock"
 *
 * Everything else (timezone, currency, carrier, phone, email, package
 * weights and dimensions, ...) is not checked, and unknown keys are
 * allowed: SiteFlow may add fields, and a guard must not block dispatch
 * over values the shipping service may well accept.
 *
 * Messages never quote request values, only fixed key names and indexes;
 * the only request-derived text is jansson's error text, from which
 * control characters and invalid UTF-8 are replaced by '?'.
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "sf_ship.h"
#include "sf_json.h"


#define SF_SHIP_PATH_LEN      128
#define SF_SHIP_PROBLEM_LEN   192
#define SF_SHIP_TEXT_LEN      512

#define SF_SHIP_MORE          "; ..."
#define SF_SHIP_ELLIPSIS      "..."


#if defined(__GNUC__) || defined(__clang__)
#define SF_SHIP_PRINTF(f, a)  __attribute__ ((format (printf, f, a)))
#else
#define SF_SHIP_PRINTF(f, a)
#endif


typedef struct {
    char            *buf;
    size_t           size;
    size_t           len;
    size_t           mark;     /* end of the last problem "; ..." fits after */
    unsigned         count;
    unsigned         full;     /* nothing more is appended */
} sf_ship_ctx_t;


static sf_ship_rc_t sf_ship_message(char *msg, size_t msg_size,
    unsigned *nproblems, sf_ship_rc_t rc, const char *text);
static sf_ship_rc_t sf_ship_bad_json(char *msg, size_t msg_size,
    unsigned *nproblems, json_error_t *err);
static int sf_ship_blank(const char *p, size_t len);
static json_t *sf_ship_get(json_t *obj, const char *key);
static void sf_ship_path(char *buf, const char *prefix, const char *key);
static void sf_ship_problem(sf_ship_ctx_t *ctx, const char *fmt, ...)
    SF_SHIP_PRINTF(2, 3);
static json_t *sf_ship_check_text(sf_ship_ctx_t *ctx, json_t *obj,
    const char *prefix, const char *key);
static void sf_ship_check_enum(sf_ship_ctx_t *ctx, json_t *obj,
    const char *prefix, const char *key, const char *const *values,
    const char *list);
static void sf_ship_check_output(sf_ship_ctx_t *ctx, json_t *root);
static void sf_ship_check_order_number(sf_ship_ctx_t *ctx, json_t *root);
static void sf_ship_check_address(sf_ship_ctx_t *ctx, json_t *root,
    const char *key);
static int sf_ship_country_code(const char *p, size_t len);
static void sf_ship_check_packages(sf_ship_ctx_t *ctx, json_t *root);
static void sf_ship_check_items(sf_ship_ctx_t *ctx, json_t *pkg,
    const char *prefix);
static size_t sf_ship_escape(const char *in, size_t len, char *out,
    size_t out_size);


static const char *const  sf_ship_formats[] = { "pdf", "png", "zpl", NULL };
static const char *const  sf_ship_orientations[] = {
    "portrait", "landscape", NULL
};
static const char *const  sf_ship_lengths[] = { "mm", "inch", NULL };
static const char *const  sf_ship_weights[] = { "g", "oz", NULL };
static const char *const  sf_ship_item_types[] = {
    "production", "stock", NULL
};

static const char *const  sf_ship_address_keys[] = {
    "name", "address1", "town", "postcode", "isoCountry", NULL
};


sf_ship_rc_t
sf_ship_validate(const char *body, size_t len, char *msg, size_t msg_size,
    unsigned *nproblems)
{
    char           text[SF_SHIP_TEXT_LEN];
    size_t         i, line, column;
    json_t        *root;
    json_error_t   err;
    sf_ship_ctx_t  ctx;

    if (msg_size > 0) {
        msg[0] = '\0';
    }

    if (nproblems != NULL) {
        *nproblems = 0;
    }

    if (body == NULL && len > 0) {
        return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_ERROR,
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
        return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON,
                               "empty request body");
    }

    if (sf_json_too_deep((const unsigned char *) body, len,
                         SF_SHIP_MAX_DEPTH, &line, &column))
    {
        (void) snprintf(text, sizeof(text),
                        "invalid JSON at line %zu, column %zu: "
                        "nesting too deep (more than %d levels)",
                        line, column, SF_SHIP_MAX_DEPTH);

        return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON,
                               text);
    }

    root = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                      &err);

    if (root == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_ERROR,
                                   "internal error: out of memory");
        }

        return sf_ship_bad_json(msg, msg_size, nproblems, &err);
    }

    if (!json_is_object(root)) {
        json_decref(root);

        return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON,
                               "request body must be a JSON object");
    }

    ctx.buf = msg;
    ctx.size = msg_size;
    ctx.len = 0;
    ctx.mark = 0;
    ctx.count = 0;
    ctx.full = (msg_size == 0);

    sf_ship_check_output(&ctx, root);

    (void) sf_ship_check_text(&ctx, root, "", "shipmentId");

    sf_ship_check_enum(&ctx, root, "", "weightUnit", sf_ship_weights,
                       "g, oz");
    sf_ship_check_enum(&ctx, root, "", "dimensionUnit", sf_ship_lengths,
                       "mm, inch");

    sf_ship_check_address(&ctx, root, "shipTo");
    sf_ship_check_order_number(&ctx, root);
    sf_ship_check_address(&ctx, root, "return");
    sf_ship_check_address(&ctx, root, "shipper");

    sf_ship_check_packages(&ctx, root);

    json_decref(root);

    if (nproblems != NULL) {
        *nproblems = ctx.count;
    }

    return (ctx.count == 0) ? SF_SHIP_OK : SF_SHIP_INVALID;
}


size_t
sf_ship_json_escape(const char *in, size_t len, char *out, size_t out_size)
{
    if (out_size == 0) {
        return 0;
    }

    return sf_ship_escape(in, len, out, out_size);
}


size_t
sf_ship_json_escaped_len(const char *in, size_t len)
{
    return sf_ship_escape(in, len, NULL, 0);
}


static sf_ship_rc_t
sf_ship_message(char *msg, size_t msg_size, unsigned *nproblems,
    sf_ship_rc_t rc, const char *text)
{
    sf_json_copy_cut(msg, msg_size, text, strlen(text));

    if (nproblems != NULL) {
        *nproblems = (rc == SF_SHIP_BAD_JSON) ? 1 : 0;
    }

    return rc;
}


static sf_ship_rc_t
sf_ship_bad_json(char *msg, size_t msg_size, unsigned *nproblems,
    json_error_t *err)
{
    int            rc;
    char           text[SF_SHIP_TEXT_LEN];
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

    return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON, text);
}


static int
sf_ship_blank(const char *p, size_t len)
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
sf_ship_get(json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v != NULL && json_is_null(v)) {
        return NULL;
    }

    return v;
}


/* buf must hold SF_SHIP_PATH_LEN bytes; prefixes are short and fixed */

static void
sf_ship_path(char *buf, const char *prefix, const char *key)
{
    (void) snprintf(buf, SF_SHIP_PATH_LEN, "%s%s%s",
                    prefix, (prefix[0] != '\0') ? "." : "", key);
}


/*
 * Appends one problem (ASCII text) to the message.  "mark" remembers the
 * end of the last problem after which "; ..." still fits, so that when a
 * problem does not fit the message is cut back there and ends "; ...".
 */

static void
sf_ship_problem(sf_ship_ctx_t *ctx, const char *fmt, ...)
{
    int      rc;
    char     text[SF_SHIP_PROBLEM_LEN];
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

        if (ctx->len + sizeof(SF_SHIP_MORE) <= ctx->size) {
            ctx->mark = ctx->len;
        }

        return;
    }

    ctx->full = 1;

    if (ctx->mark > 0) {
        memcpy(ctx->buf + ctx->mark, SF_SHIP_MORE, sizeof(SF_SHIP_MORE));
        ctx->len = ctx->mark + sizeof(SF_SHIP_MORE) - 1;
        return;
    }

    if (ctx->size >= sizeof(SF_SHIP_ELLIPSIS)) {
        memcpy(ctx->buf, SF_SHIP_ELLIPSIS, sizeof(SF_SHIP_ELLIPSIS));
        ctx->len = sizeof(SF_SHIP_ELLIPSIS) - 1;
        return;
    }

    ctx->buf[0] = '\0';
    ctx->len = 0;
}


/* a mandatory non-empty string; returns it, or NULL after a problem */

static json_t *
sf_ship_check_text(sf_ship_ctx_t *ctx, json_t *obj, const char *prefix,
    const char *key)
{
    char     path[SF_SHIP_PATH_LEN];
    json_t  *v;

    sf_ship_path(path, prefix, key);

    v = sf_ship_get(obj, key);

    if (v == NULL) {
        sf_ship_problem(ctx, "%s is required", path);
        return NULL;
    }

    if (!json_is_string(v)) {
        sf_ship_problem(ctx, "%s must be a string", path);
        return NULL;
    }

    if (sf_ship_blank(json_string_value(v), json_string_length(v))) {
        sf_ship_problem(ctx, "%s must not be empty", path);
        return NULL;
    }

    return v;
}


/* an optional string out of a fixed, case-sensitive set */

static void
sf_ship_check_enum(sf_ship_ctx_t *ctx, json_t *obj, const char *prefix,
    const char *key, const char *const *values, const char *list)
{
    char         path[SF_SHIP_PATH_LEN];
    size_t       len;
    json_t      *v;
    const char  *s;

    v = sf_ship_get(obj, key);

    if (v == NULL) {
        return;
    }

    sf_ship_path(path, prefix, key);

    if (!json_is_string(v)) {
        sf_ship_problem(ctx, "%s must be a string", path);
        return;
    }

    s = json_string_value(v);
    len = json_string_length(v);

    for ( /* void */ ; *values != NULL; values++) {
        if (strlen(*values) == len && memcmp(*values, s, len) == 0) {
            return;
        }
    }

    sf_ship_problem(ctx, "%s must be one of %s", path, list);
}


static void
sf_ship_check_output(sf_ship_ctx_t *ctx, json_t *root)
{
    json_t  *output, *dimensions;

    output = sf_ship_get(root, "output");

    if (output == NULL) {
        return;
    }

    if (!json_is_object(output)) {
        sf_ship_problem(ctx, "output must be an object");
        return;
    }

    sf_ship_check_enum(ctx, output, "output", "format", sf_ship_formats,
                       "pdf, png, zpl");
    sf_ship_check_enum(ctx, output, "output", "orientation",
                       sf_ship_orientations, "portrait, landscape");

    dimensions = sf_ship_get(output, "dimensions");

    if (dimensions == NULL) {
        return;
    }

    if (!json_is_object(dimensions)) {
        sf_ship_problem(ctx, "output.dimensions must be an object");
        return;
    }

    sf_ship_check_enum(ctx, dimensions, "output.dimensions", "unit",
                       sf_ship_lengths, "mm, inch");
}


static void
sf_ship_check_order_number(sf_ship_ctx_t *ctx, json_t *root)
{
    json_t  *v;

    v = sf_ship_get(root, "orderNumber");

    if (v == NULL) {
        sf_ship_problem(ctx, "orderNumber is required");
        return;
    }

    if (json_is_number(v)) {
        return;
    }

    if (!json_is_string(v)) {
        sf_ship_problem(ctx, "orderNumber must be a string or a number");
        return;
    }

    if (sf_ship_blank(json_string_value(v), json_string_length(v))) {
        sf_ship_problem(ctx, "orderNumber must not be empty");
    }
}


static void
sf_ship_check_address(sf_ship_ctx_t *ctx, json_t *root, const char *key)
{
    json_t             *addr, *v;
    const char *const  *k;

    addr = sf_ship_get(root, key);

    if (addr == NULL) {
        sf_ship_problem(ctx, "%s is required", key);
        return;
    }

    if (!json_is_object(addr)) {
        sf_ship_problem(ctx, "%s must be an object", key);
        return;
    }

    for (k = sf_ship_address_keys; *k != NULL; k++) {
        v = sf_ship_check_text(ctx, addr, key, *k);

        if (v != NULL && strcmp(*k, "isoCountry") == 0
            && !sf_ship_country_code(json_string_value(v),
                                     json_string_length(v)))
        {
            sf_ship_problem(ctx, "%s.isoCountry must be an ISO 3166-1 "
                            "country code (2 or 3 letters, or 3 digits)",
                            key);
        }
    }
}


static int
sf_ship_country_code(const char *p, size_t len)
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
sf_ship_check_packages(sf_ship_ctx_t *ctx, json_t *root)
{
    char     prefix[32];
    size_t   i, n;
    json_t  *packages, *pkg;

    packages = sf_ship_get(root, "packages");

    if (packages == NULL) {
        sf_ship_problem(ctx, "packages is required");
        return;
    }

    if (!json_is_array(packages) || json_array_size(packages) == 0) {
        sf_ship_problem(ctx, "packages must be a non-empty array");
        return;
    }

    n = json_array_size(packages);

    if (n > SF_SHIP_MAX_PACKAGES) {
        sf_ship_problem(ctx, "packages: too many packages (%zu, limit %d)",
                        n, SF_SHIP_MAX_PACKAGES);
        n = SF_SHIP_MAX_PACKAGES;
    }

    for (i = 0; i < n; i++) {
        pkg = json_array_get(packages, i);

        if (!json_is_object(pkg)) {
            sf_ship_problem(ctx, "packages[%zu] must be an object", i);
            continue;
        }

        (void) snprintf(prefix, sizeof(prefix), "packages[%zu]", i);

        sf_ship_check_items(ctx, pkg, prefix);
    }
}


static void
sf_ship_check_items(sf_ship_ctx_t *ctx, json_t *pkg, const char *prefix)
{
    char       path[SF_SHIP_PATH_LEN], ipath[SF_SHIP_PATH_LEN + 32];
    size_t     i, n;
    json_t    *items, *item, *count;

    sf_ship_path(path, prefix, "items");

    items = sf_ship_get(pkg, "items");

    if (items == NULL) {
        sf_ship_problem(ctx, "%s is required", path);
        return;
    }

    if (!json_is_array(items) || json_array_size(items) == 0) {
        sf_ship_problem(ctx, "%s must be a non-empty array", path);
        return;
    }

    n = json_array_size(items);

    if (n > SF_SHIP_MAX_ITEMS) {
        sf_ship_problem(ctx, "%s: too many items (%zu, limit %d)",
                        path, n, SF_SHIP_MAX_ITEMS);
        n = SF_SHIP_MAX_ITEMS;
    }

    for (i = 0; i < n; i++) {
        item = json_array_get(items, i);

        (void) snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);

        if (!json_is_object(item)) {
            sf_ship_problem(ctx, "%s must be an object", ipath);
            continue;
        }

        count = sf_ship_get(item, "count");

        if (count != NULL
            && (!json_is_integer(count) || json_integer_value(count) <= 0))
        {
            sf_ship_problem(ctx, "%s.count must be a positive integer",
                            ipath);
        }

        sf_ship_check_enum(ctx, item, ipath, "type", sf_ship_item_types,
                           "production, stock");
    }
}


/* out == NULL: only count */

static size_t
sf_ship_escape(const char *in, size_t len, char *out, size_t out_size)
{
    char                  unit[8];
    size_t                i, k, n, skip;
    unsigned char         c;
    const unsigned char  *p;
    static const char     hex[] = "0123456789abcdef";

    p = (const unsigned char *) in;
    n = 0;

    for (i = 0; i < len; i += skip) {
        c = p[i];
        skip = 1;

        switch (c) {

        case '"':
        case '\\':
            unit[0] = '\\';
            unit[1] = (char) c;
            k = 2;
            break;

        case '\b':
            memcpy(unit, "\\b", 2);
            k = 2;
            break;

        case '\f':
            memcpy(unit, "\\f", 2);
            k = 2;
            break;

        case '\n':
            memcpy(unit, "\\n", 2);
            k = 2;
            break;

        case '\r':
            memcpy(unit, "\\r", 2);
            k = 2;
            break;

        case '\t':
            memcpy(unit, "\\t", 2);
            k = 2;
            break;

        default:

            if (c < 0x20 || c == 0x7f) {
                memcpy(unit, "\\u00", 4);
                unit[4] = hex[c >> 4];
                unit[5] = hex[c & 0x0f];
                k = 6;
                break;
            }

            k = sf_json_utf8(p + i, len - i, &skip);

            if (k == 0) {
                /* U+FFFD REPLACEMENT CHARACTER */
                memcpy(unit, "\xef\xbf\xbd", 3);
                k = 3;

            } else {
                memcpy(unit, p + i, k);
            }

            break;
        }

        if (out != NULL) {
            if (n + k >= out_size) {
                break;
            }

            memcpy(out + n, unit, k);
        }

        n += k;
    }

    if (out != NULL) {
        out[n] = '\0';
    }

    return n;
}
