
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

#include "sf_ship_int.h"
#include "sf_json.h"


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




static sf_ship_rc_t sf_ship_parse(const char *body, size_t len, char *msg,
    size_t msg_size, unsigned *nproblems);
static sf_ship_rc_t sf_ship_message(char *msg, size_t msg_size,
    unsigned *nproblems, sf_ship_rc_t rc, const char *text);
static sf_ship_rc_t sf_ship_bad_json(char *msg, size_t msg_size,
    unsigned *nproblems, json_error_t *err);
static void sf_ship_problem(sf_ship_ctx_t *ctx, const char *fmt, ...)
    SF_SHIP_PRINTF(2, 3);
static int sf_ship_check_text(sf_ship_ctx_t *ctx, const sf_ship_u8_t *v,
    sf_ship_doc_t *doc, const char *prefix, const char *key);
static int sf_ship_enum(const sf_ship_u8_t *v, sf_ship_doc_t *doc,
    const char *const *values);
static void sf_ship_check_enum(sf_ship_ctx_t *ctx, const sf_ship_u8_t *v,
    sf_ship_doc_t *doc, const char *path, const char *const *values,
    const char *list);
static void sf_ship_check_output(sf_ship_ctx_t *ctx,
    const sf_ship_u8_t *output, sf_ship_doc_t *doc);
static void sf_ship_check_order_number(sf_ship_ctx_t *ctx,
    const sf_ship_u8_t *v, sf_ship_doc_t *doc);
static void sf_ship_check_address(sf_ship_ctx_t *ctx,
    const sf_ship_u8_t *addr, sf_ship_doc_t *doc, const char *key);
static int sf_ship_country_code(const sf_ship_u8_t *p, size_t len);
static void sf_ship_check_packages(sf_ship_ctx_t *ctx,
    const sf_ship_u8_t *packages, sf_ship_doc_t *doc);
static void sf_ship_check_items(sf_ship_ctx_t *ctx, const sf_ship_u8_t *pkg,
    sf_ship_doc_t *doc, size_t i);
static size_t sf_ship_order_value(const sf_ship_u8_t *p,
    sf_ship_doc_t *doc, char *out, size_t size);
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

const sf_ship_name_t  sf_ship_root_keys[] = {
    sf_ship_name("output"),
    sf_ship_name("shipmentId"),
    sf_ship_name("weightUnit"),
    sf_ship_name("dimensionUnit"),
    sf_ship_name("shipTo"),
    sf_ship_name("orderNumber"),
    sf_ship_name("return"),
    sf_ship_name("shipper"),
    sf_ship_name("packages"),
    sf_ship_null_name
};

const sf_ship_name_t  sf_ship_address_keys[] = {
    sf_ship_name("name"),
    sf_ship_name("address1"),
    sf_ship_name("town"),
    sf_ship_name("postcode"),
    sf_ship_name("isoCountry"),
    sf_ship_null_name
};

const sf_ship_name_t  sf_ship_output_keys[] = {
    sf_ship_name("format"),
    sf_ship_name("orientation"),
    sf_ship_name("dimensions"),
    sf_ship_null_name
};

const sf_ship_name_t  sf_ship_unit_keys[] = {
    sf_ship_name("unit"),
    sf_ship_null_name
};

const sf_ship_name_t  sf_ship_items_keys[] = {
    sf_ship_name("items"),
    sf_ship_null_name
};

const sf_ship_name_t  sf_ship_item_keys[] = {
    sf_ship_name("count"),
    sf_ship_name("type"),
    sf_ship_null_name
};

const sf_ship_name_t  sf_ship_order_keys[] = {
    sf_ship_name("orderNumber"),
    sf_ship_null_name
};


/*
 * The body is read once by a strict scanner (sf_ship_scan()) that accepts
 * only JSON that jansson accepts with JSON_REJECT_DUPLICATES, an object
 * no deeper than SF_SHIP_MAX_DEPTH, and builds nothing.  Anything it is
 * not sure of (invalid JSON, escaped keys, duplicate keys, unusual
 * numbers, many keys, ...) goes the way it always went: the depth check,
 * then jansson, for the very same messages.  Either way the fields are
 * then checked on the text itself.
 */

sf_ship_rc_t
sf_ship_validate(const char *body, size_t len, char *msg, size_t msg_size,
    unsigned *nproblems)
{
    return sf_ship_validate_order(body, len, msg, msg_size, nproblems, NULL,
                                  0, NULL);
}


sf_ship_rc_t
sf_ship_validate_order(const char *body, size_t len, char *msg,
    size_t msg_size, unsigned *nproblems, char *order, size_t order_size,
    size_t *order_len)
{
    size_t               i;
    sf_ship_rc_t         rc;
    sf_ship_ctx_t        ctx;
    sf_ship_doc_t        doc;
    sf_ship_box_t        boxes[SF_SHIP_BOXES];
    sf_ship_record_t     records[SF_SHIP_RECORDS];
    const sf_ship_u8_t  *root, *v[SF_SHIP_R_N];

    if (msg_size > 0) {
        msg[0] = '\0';
    }

    if (nproblems != NULL) {
        *nproblems = 0;
    }

    if (order_len != NULL) {
        *order_len = 0;
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

    doc.boxes = boxes;
    doc.records = records;

    if (!sf_ship_scan(body, len, 1, &doc)) {
        rc = sf_ship_parse(body, len, msg, msg_size, nproblems);

        if (rc != SF_SHIP_OK) {
            return rc;
        }
    }

    /* valid JSON, an object: body[i] is its '{' */

    root = (const sf_ship_u8_t *) body + i;

    ctx.buf = msg;
    ctx.size = msg_size;
    ctx.len = 0;
    ctx.mark = 0;
    ctx.count = 0;
    ctx.full = (msg_size == 0);

    sf_ship_members(root, &doc, sf_ship_root_keys, v);

    sf_ship_check_output(&ctx, v[SF_SHIP_R_OUTPUT], &doc);

    (void) sf_ship_check_text(&ctx, v[SF_SHIP_R_SHIPMENT_ID], &doc, "",
                              "shipmentId");

    sf_ship_check_enum(&ctx, v[SF_SHIP_R_WEIGHT_UNIT], &doc, "weightUnit",
                       sf_ship_weights, "g, oz");
    sf_ship_check_enum(&ctx, v[SF_SHIP_R_DIMENSION_UNIT], &doc,
                       "dimensionUnit", sf_ship_lengths, "mm, inch");

    sf_ship_check_address(&ctx, v[SF_SHIP_R_SHIP_TO], &doc, "shipTo");
    sf_ship_check_order_number(&ctx, v[SF_SHIP_R_ORDER_NUMBER], &doc);
    sf_ship_check_address(&ctx, v[SF_SHIP_R_RETURN], &doc, "return");
    sf_ship_check_address(&ctx, v[SF_SHIP_R_SHIPPER], &doc, "shipper");

    sf_ship_check_packages(&ctx, v[SF_SHIP_R_PACKAGES], &doc);

    if (order_len != NULL) {
        *order_len = sf_ship_order_value(v[SF_SHIP_R_ORDER_NUMBER], &doc,
                                         order, order_size);
    }

    if (nproblems != NULL) {
        *nproblems = ctx.count;
    }

    return (ctx.count == 0) ? SF_SHIP_OK : SF_SHIP_INVALID;
}


size_t
sf_ship_order_number(const char *body, size_t len, char *out, size_t size)
{
    json_t              *root;
    unsigned             object;
    sf_ship_doc_t        doc;
    sf_ship_box_t        boxes[SF_SHIP_BOXES];
    const sf_ship_u8_t  *p, *v[1];

    if (body == NULL || len == 0 || size == 0) {
        return 0;
    }

    doc.boxes = boxes;
    doc.records = NULL;

    if (!sf_ship_scan(body, len, 0, &doc)) {

        /* as the Site Flow Log always read it: jansson, duplicates kept */

        if (sf_json_too_deep((const sf_ship_u8_t *) body, len,
                             SF_SHIP_MAX_DEPTH, NULL, NULL))
        {
            return 0;
        }

        root = json_loadb(body, len, 0, NULL);
        if (root == NULL) {
            return 0;
        }

        object = json_is_object(root);
        json_decref(root);

        if (!object) {
            return 0;
        }
    }

    p = sf_ship_ws((const sf_ship_u8_t *) body, doc.end);

    /* the last "orderNumber" wins, as in jansson without duplicate checks */

    sf_ship_members(p, &doc, sf_ship_order_keys, v);

    return sf_ship_order_value(v[0], &doc, out, size);
}


/*
 * The order number in the value at p (NULL: absent): a string unescaped,
 * an integer as jansson's "%lld" would write it; cut at size bytes.
 */

static size_t
sf_ship_order_value(const sf_ship_u8_t *p, sf_ship_doc_t *doc, char *out,
    size_t size)
{
    size_t               n;
    const sf_ship_u8_t  *q;

    if (p == NULL || size == 0) {
        return 0;
    }

    if (*p == '"') {
        q = sf_ship_skip_string(p, doc->end);
        n = sf_ship_unescape(p + 1, q - p - 2, (sf_ship_u8_t *) out, size);

        return (n < size) ? n : size;
    }

    if (*p != '-' && (*p < '0' || *p > '9')) {
        return 0;
    }

    for (q = p; q < doc->end; q++) {
        if (*q == '.' || *q == 'e' || *q == 'E') {
            return 0;
        }

        if (*q != '-' && (*q < '0' || *q > '9')) {
            break;
        }
    }

    /* "-0" is 0 */

    if (q - p == 2 && p[0] == '-' && p[1] == '0') {
        p++;
    }

    n = (size_t) (q - p);
    n = (n < size) ? n : size;

    memcpy(out, p, n);

    return n;
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


/*
 * The way for bodies the scanner is not sure of: the depth check on the
 * raw bytes, then jansson with duplicate keys rejected.  Returns
 * SF_SHIP_OK if the body is a JSON object (the tree is not kept), else
 * the result and message for the body as a whole.
 */

static sf_ship_rc_t
sf_ship_parse(const char *body, size_t len, char *msg, size_t msg_size,
    unsigned *nproblems)
{
    char           text[SF_SHIP_TEXT_LEN];
    size_t         line, column;
    json_t        *root;
    unsigned       object;
    json_error_t   err;

    if (sf_json_too_deep((const sf_ship_u8_t *) body, len,
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

    object = json_is_object(root);
    json_decref(root);

    if (!object) {
        return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON,
                               "request body must be a JSON object");
    }

    return SF_SHIP_OK;
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
    char         text[SF_SHIP_TEXT_LEN];
    size_t       n, max;
    const char  *reason;

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
    n += sf_json_clean(text + n, sizeof(text) - 1 - n, reason, max,
                       SF_JSON_CLEAN_QMARK | SF_JSON_CLEAN_CONTROL);

    text[n] = '\0';

    return sf_ship_message(msg, msg_size, nproblems, SF_SHIP_BAD_JSON, text);
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


/*
 * A mandatory non-empty string, named prefix.key (or key); returns 1 if
 * it is one, 0 after a problem.  The name is only formatted for a problem.
 */

static int
sf_ship_check_text(sf_ship_ctx_t *ctx, const sf_ship_u8_t *v,
    sf_ship_doc_t *doc, const char *prefix, const char *key)
{
    const char  *dot;

    dot = (prefix[0] != '\0') ? "." : "";

    if (v == NULL) {
        sf_ship_problem(ctx, "%s%s%s is required", prefix, dot, key);
        return 0;
    }

    if (*v != '"') {
        sf_ship_problem(ctx, "%s%s%s must be a string", prefix, dot, key);
        return 0;
    }

    if (sf_ship_blank(v + 1, sf_ship_skip_string(v, doc->end) - v - 2)) {
        sf_ship_problem(ctx, "%s%s%s must not be empty", prefix, dot, key);
        return 0;
    }

    return 1;
}


/*
 * An optional string out of a fixed, case-sensitive set: 0 if it is
 * absent or in the set, 1 if it is not a string, 2 if not in the set.
 */

static int
sf_ship_enum(const sf_ship_u8_t *v, sf_ship_doc_t *doc,
    const char *const *values)
{
    size_t        len;
    sf_ship_u8_t  buf[16];

    if (v == NULL) {
        return 0;
    }

    if (*v != '"') {
        return 1;
    }

    len = sf_ship_unescape(v + 1, sf_ship_skip_string(v, doc->end) - v - 2,
                           buf, sizeof(buf));

    for ( /* void */ ; *values != NULL; values++) {
        if (strlen(*values) == len && memcmp(*values, buf, len) == 0) {
            return 0;
        }
    }

    return 2;
}


static void
sf_ship_check_enum(sf_ship_ctx_t *ctx, const sf_ship_u8_t *v,
    sf_ship_doc_t *doc, const char *path, const char *const *values,
    const char *list)
{
    switch (sf_ship_enum(v, doc, values)) {

    case 1:
        sf_ship_problem(ctx, "%s must be a string", path);
        break;

    case 2:
        sf_ship_problem(ctx, "%s must be one of %s", path, list);
        break;
    }
}


static void
sf_ship_check_output(sf_ship_ctx_t *ctx, const sf_ship_u8_t *output,
    sf_ship_doc_t *doc)
{
    const sf_ship_u8_t  *v[3], *unit[1];

    if (output == NULL) {
        return;
    }

    if (*output != '{') {
        sf_ship_problem(ctx, "output must be an object");
        return;
    }

    sf_ship_members(output, doc, sf_ship_output_keys, v);

    sf_ship_check_enum(ctx, v[0], doc, "output.format", sf_ship_formats,
                       "pdf, png, zpl");
    sf_ship_check_enum(ctx, v[1], doc, "output.orientation",
                       sf_ship_orientations, "portrait, landscape");

    if (v[2] == NULL) {
        return;
    }

    if (*v[2] != '{') {
        sf_ship_problem(ctx, "output.dimensions must be an object");
        return;
    }

    sf_ship_members(v[2], doc, sf_ship_unit_keys, unit);

    sf_ship_check_enum(ctx, unit[0], doc, "output.dimensions.unit",
                       sf_ship_lengths, "mm, inch");
}


static void
sf_ship_check_order_number(sf_ship_ctx_t *ctx, const sf_ship_u8_t *v,
    sf_ship_doc_t *doc)
{
    if (v == NULL) {
        sf_ship_problem(ctx, "orderNumber is required");
        return;
    }

    if (*v == '-' || (*v >= '0' && *v <= '9')) {
        return;
    }

    if (*v != '"') {
        sf_ship_problem(ctx, "orderNumber must be a string or a number");
        return;
    }

    if (sf_ship_blank(v + 1, sf_ship_skip_string(v, doc->end) - v - 2)) {
        sf_ship_problem(ctx, "orderNumber must not be empty");
    }
}


static void
sf_ship_check_address(sf_ship_ctx_t *ctx, const sf_ship_u8_t *addr,
    sf_ship_doc_t *doc, const char *key)
{
    size_t               k;
    const sf_ship_u8_t  *v[SF_SHIP_A_N], *iso;

    if (addr == NULL) {
        sf_ship_problem(ctx, "%s is required", key);
        return;
    }

    if (*addr != '{') {
        sf_ship_problem(ctx, "%s must be an object", key);
        return;
    }

    sf_ship_members(addr, doc, sf_ship_address_keys, v);

    for (k = 0; k < SF_SHIP_A_N; k++) {
        if (!sf_ship_check_text(ctx, v[k], doc, key,
                                sf_ship_address_keys[k].data)
            || k != SF_SHIP_A_ISO_COUNTRY)
        {
            continue;
        }

        iso = v[k];

        if (!sf_ship_country_code(iso + 1, sf_ship_skip_string(iso, doc->end)
                                           - iso - 2))
        {
            sf_ship_problem(ctx, "%s.isoCountry must be an ISO 3166-1 "
                            "country code (2 or 3 letters, or 3 digits)",
                            key);
        }
    }
}


/* p[0 .. len - 1]: the raw contents of a JSON string */

static int
sf_ship_country_code(const sf_ship_u8_t *p, size_t len)
{
    size_t        i, alpha, digit;
    sf_ship_u8_t  buf[4];

    len = sf_ship_unescape(p, len, buf, sizeof(buf));

    if (len < 2 || len > 3) {
        return 0;
    }

    alpha = 0;
    digit = 0;

    for (i = 0; i < len; i++) {
        if ((buf[i] >= 'A' && buf[i] <= 'Z')
            || (buf[i] >= 'a' && buf[i] <= 'z'))
        {
            alpha++;

        } else if (buf[i] >= '0' && buf[i] <= '9') {
            digit++;
        }
    }

    return alpha == len || (digit == 3 && len == 3);
}


static void
sf_ship_check_packages(sf_ship_ctx_t *ctx, const sf_ship_u8_t *packages,
    sf_ship_doc_t *doc)
{
    size_t               i, n;
    const sf_ship_u8_t  *pkg;

    if (packages == NULL) {
        sf_ship_problem(ctx, "packages is required");
        return;
    }

    pkg = (*packages == '[') ? sf_ship_first(packages, doc) : NULL;

    if (pkg == NULL) {
        sf_ship_problem(ctx, "packages must be a non-empty array");
        return;
    }

    for (n = 1; (pkg = sf_ship_next(pkg, doc)) != NULL; n++) {
        /* void */
    }

    if (n > SF_SHIP_MAX_PACKAGES) {
        sf_ship_problem(ctx, "packages: too many packages (%zu, limit %d)",
                        n, SF_SHIP_MAX_PACKAGES);
        n = SF_SHIP_MAX_PACKAGES;
    }

    pkg = sf_ship_first(packages, doc);

    for (i = 0; i < n && pkg != NULL; i++, pkg = sf_ship_next(pkg, doc)) {

        if (*pkg != '{') {
            sf_ship_problem(ctx, "packages[%zu] must be an object", i);
            continue;
        }

        sf_ship_check_items(ctx, pkg, doc, i);
    }
}


static void
sf_ship_check_items(sf_ship_ctx_t *ctx, const sf_ship_u8_t *pkg,
    sf_ship_doc_t *doc, size_t i)
{
    size_t               j, n;
    const sf_ship_u8_t  *items[1], *item, *v[2], *count;

    sf_ship_members(pkg, doc, sf_ship_items_keys, items);

    if (items[0] == NULL) {
        sf_ship_problem(ctx, "packages[%zu].items is required", i);
        return;
    }

    item = (*items[0] == '[') ? sf_ship_first(items[0], doc) : NULL;

    if (item == NULL) {
        sf_ship_problem(ctx, "packages[%zu].items must be a non-empty array",
                        i);
        return;
    }

    for (n = 1; (item = sf_ship_next(item, doc)) != NULL; n++) {
        /* void */
    }

    if (n > SF_SHIP_MAX_ITEMS) {
        sf_ship_problem(ctx, "packages[%zu].items: too many items "
                        "(%zu, limit %d)", i, n, SF_SHIP_MAX_ITEMS);
        n = SF_SHIP_MAX_ITEMS;
    }

    item = sf_ship_first(items[0], doc);

    for (j = 0; j < n && item != NULL; j++, item = sf_ship_next(item, doc)) {

        if (*item != '{') {
            sf_ship_problem(ctx, "packages[%zu].items[%zu] must be an object",
                            i, j);
            continue;
        }

        sf_ship_members(item, doc, sf_ship_item_keys, v);

        /* a positive JSON integer: no fraction or exponent, not 0 or -0 */

        count = v[0];

        if (count != NULL) {
            if (*count < '1' || *count > '9') {
                count = NULL;

            } else {
                while (count < doc->end && *count >= '0' && *count <= '9') {
                    count++;
                }

                if (count < doc->end
                    && (*count == '.' || *count == 'e' || *count == 'E'))
                {
                    count = NULL;
                }
            }

            if (count == NULL) {
                sf_ship_problem(ctx, "packages[%zu].items[%zu].count must "
                                "be a positive integer", i, j);
            }
        }

        switch (sf_ship_enum(v[1], doc, sf_ship_item_types)) {

        case 1:
            sf_ship_problem(ctx, "packages[%zu].items[%zu].type must be a "
                            "string", i, j);
            break;

        case 2:
            sf_ship_problem(ctx, "packages[%zu].items[%zu].type must be one "
                            "of production, stock", i, j);
            break;
        }
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
