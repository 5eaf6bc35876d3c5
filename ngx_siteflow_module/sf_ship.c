
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
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sf_ship.h"
#include "sf_json.h"


#define SF_SHIP_PROBLEM_LEN   192
#define SF_SHIP_TEXT_LEN      512

/* containers whose end the scanner records (the rest are walked over) */
#define SF_SHIP_BOXES         256

/* objects whose checked members the scanner records as it reads them */
#define SF_SHIP_RECORDS       64
#define SF_SHIP_MAX_NAMES     9

/* keys of the open objects that the scanner remembers for duplicates */
#define SF_SHIP_SCAN_KEYS     256
#define SF_SHIP_SCAN_OBJKEYS  64

/* numbers the scanner is sure jansson reads without an overflow error */
#define SF_SHIP_SCAN_INT_DIGITS   18
#define SF_SHIP_SCAN_REAL_DIGITS  40
#define SF_SHIP_SCAN_REAL_EXP     250

#define SF_SHIP_MORE          "; ..."
#define SF_SHIP_ELLIPSIS      "..."


#if defined(__GNUC__) || defined(__clang__)
#define SF_SHIP_PRINTF(f, a)  __attribute__ ((format (printf, f, a)))
#else
#define SF_SHIP_PRINTF(f, a)
#endif


typedef unsigned char  sf_ship_u8_t;


typedef struct {
    char            *buf;
    size_t           size;
    size_t           len;
    size_t           mark;     /* end of the last problem "; ..." fits after */
    unsigned         count;
    unsigned         full;     /* nothing more is appended */
} sf_ship_ctx_t;


typedef struct {
    const sf_ship_u8_t  *p;
    size_t               len;
} sf_ship_key_t;


typedef struct {
    size_t               len;
    const char          *data;
} sf_ship_name_t;

#define sf_ship_name(s)  { sizeof(s) - 1, s }
#define sf_ship_null_name  { 0, NULL }


/* where a container ends, recorded by the scanner to jump over it later */

typedef struct {
    const sf_ship_u8_t  *start;    /* its '{' or '[' */
    const sf_ship_u8_t  *end;      /* after its '}' or ']'; NULL: unknown */
    int                  record;   /* its members in doc->records, or -1 */
} sf_ship_box_t;


/* the values of the members names[] of an object, as sf_ship_members() */

typedef struct {
    const sf_ship_name_t  *names;
    const sf_ship_u8_t    *values[SF_SHIP_MAX_NAMES];
} sf_ship_record_t;


/* the text being walked */

typedef struct {
    const sf_ship_u8_t  *end;
    sf_ship_box_t       *boxes;    /* in document order */
    unsigned             nboxes;
    sf_ship_record_t    *records;  /* NULL: none are recorded */
    unsigned             nrecords;
} sf_ship_doc_t;


typedef struct {
    const sf_ship_u8_t  *p;
    const sf_ship_u8_t  *end;
    unsigned             depth;
    unsigned             nkeys;
    unsigned             dups;     /* duplicate keys make it unsure */
    sf_ship_doc_t       *doc;      /* containers are recorded here */
    sf_ship_key_t        keys[SF_SHIP_SCAN_KEYS];
} sf_ship_scan_t;


/* the members of an address object, in the order they are checked */

enum {
    SF_SHIP_A_NAME = 0,
    SF_SHIP_A_ADDRESS1,
    SF_SHIP_A_TOWN,
    SF_SHIP_A_POSTCODE,
    SF_SHIP_A_ISO_COUNTRY,
    SF_SHIP_A_N
};

enum {
    SF_SHIP_R_OUTPUT = 0,
    SF_SHIP_R_SHIPMENT_ID,
    SF_SHIP_R_WEIGHT_UNIT,
    SF_SHIP_R_DIMENSION_UNIT,
    SF_SHIP_R_SHIP_TO,
    SF_SHIP_R_ORDER_NUMBER,
    SF_SHIP_R_RETURN,
    SF_SHIP_R_SHIPPER,
    SF_SHIP_R_PACKAGES,
    SF_SHIP_R_N
};


static int sf_ship_scan(const char *body, size_t len, unsigned dups,
    sf_ship_doc_t *doc);
static int sf_ship_scan_value(sf_ship_scan_t *s,
    const sf_ship_name_t *names, const sf_ship_name_t *elem);
static int sf_ship_scan_container(sf_ship_scan_t *s,
    const sf_ship_name_t *names, const sf_ship_name_t *elem);
static void sf_ship_child(const sf_ship_name_t *names, size_t k,
    const sf_ship_name_t **obj, const sf_ship_name_t **elem);
static sf_ship_box_t *sf_ship_box(const sf_ship_u8_t *p, sf_ship_doc_t *doc);
static int sf_ship_scan_string(sf_ship_scan_t *s, unsigned *escaped);
static int sf_ship_scan_number(sf_ship_scan_t *s);
static int sf_ship_hex4(const sf_ship_u8_t *p);
static sf_ship_rc_t sf_ship_parse(const char *body, size_t len, char *msg,
    size_t msg_size, unsigned *nproblems);
static sf_ship_rc_t sf_ship_message(char *msg, size_t msg_size,
    unsigned *nproblems, sf_ship_rc_t rc, const char *text);
static sf_ship_rc_t sf_ship_bad_json(char *msg, size_t msg_size,
    unsigned *nproblems, json_error_t *err);
static inline const sf_ship_u8_t *sf_ship_ws(const sf_ship_u8_t *p,
    const sf_ship_u8_t *end);
static const sf_ship_u8_t *sf_ship_skip_string(const sf_ship_u8_t *p,
    const sf_ship_u8_t *end);
static const sf_ship_u8_t *sf_ship_skip(const sf_ship_u8_t *p,
    sf_ship_doc_t *doc);
static void sf_ship_members(const sf_ship_u8_t *obj, sf_ship_doc_t *doc,
    const sf_ship_name_t *names, const sf_ship_u8_t **values);
static int sf_ship_key_is(const sf_ship_u8_t *key, size_t len,
    const sf_ship_name_t *name);
static const sf_ship_u8_t *sf_ship_first(const sf_ship_u8_t *array,
    sf_ship_doc_t *doc);
static const sf_ship_u8_t *sf_ship_next(const sf_ship_u8_t *p,
    sf_ship_doc_t *doc);
static size_t sf_ship_unescape(const sf_ship_u8_t *p, size_t len,
    sf_ship_u8_t *out, size_t size);
static int sf_ship_blank(const sf_ship_u8_t *p, size_t len);
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

static const sf_ship_name_t  sf_ship_root_keys[] = {
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

static const sf_ship_name_t  sf_ship_address_keys[] = {
    sf_ship_name("name"),
    sf_ship_name("address1"),
    sf_ship_name("town"),
    sf_ship_name("postcode"),
    sf_ship_name("isoCountry"),
    sf_ship_null_name
};

static const sf_ship_name_t  sf_ship_output_keys[] = {
    sf_ship_name("format"),
    sf_ship_name("orientation"),
    sf_ship_name("dimensions"),
    sf_ship_null_name
};

static const sf_ship_name_t  sf_ship_unit_keys[] = {
    sf_ship_name("unit"),
    sf_ship_null_name
};

static const sf_ship_name_t  sf_ship_items_keys[] = {
    sf_ship_name("items"),
    sf_ship_null_name
};

static const sf_ship_name_t  sf_ship_item_keys[] = {
    sf_ship_name("count"),
    sf_ship_name("type"),
    sf_ship_null_name
};

static const sf_ship_name_t  sf_ship_order_keys[] = {
    sf_ship_name("orderNumber"),
    sf_ship_null_name
};


/*
 * String bytes the scanner passes without a second look: printable ASCII
 * and DEL, but not '"' and '\\'.  Control characters end the fast path;
 * bytes from 0x80 are checked as UTF-8.
 */

static const sf_ship_u8_t  sf_ship_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,        /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1         /* 0x70 */
};


/* JSON whitespace */

static const sf_ship_u8_t  sf_ship_space[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0         /* 0x20 */
};


/* the bytes a string of valid JSON is walked over to: '"' and '\\' */

static const sf_ship_u8_t  sf_ship_stop[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0         /* 0x50 */
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
 * Returns 1 if body[0 .. len - 1] is, for sure, JSON that jansson reads
 * without an error (with JSON_REJECT_DUPLICATES if dups is set) and an
 * object at most SF_SHIP_MAX_DEPTH deep; 0 if it is not or if the scanner
 * cannot tell.  It is stricter than jansson, never looser: a string
 * without NUL (\u0000) or surrogate escapes, valid UTF-8; keys without
 * escapes when dups is set, at most SF_SHIP_SCAN_OBJKEYS of them per
 * object; integers of up to 18 digits; reals of up to 40 digits and an
 * exponent up to 250.  It records where the first SF_SHIP_BOXES
 * containers end in doc, also when it gives up (those it has not seen the
 * end of are left unknown).
 */

static int
sf_ship_scan(const char *body, size_t len, unsigned dups, sf_ship_doc_t *doc)
{
    sf_ship_scan_t  s;

    doc->end = (const sf_ship_u8_t *) body + len;
    doc->nboxes = 0;
    doc->nrecords = 0;

    s.doc = doc;
    s.end = doc->end;
    s.p = sf_ship_ws((const sf_ship_u8_t *) body, s.end);
    s.depth = 0;
    s.nkeys = 0;
    s.dups = dups;

    if (s.p == s.end || *s.p != '{') {
        return 0;
    }

    if (!sf_ship_scan_container(&s, sf_ship_root_keys, NULL)) {
        return 0;
    }

    return sf_ship_ws(s.p, s.end) == s.end;
}


static int
sf_ship_scan_value(sf_ship_scan_t *s, const sf_ship_name_t *names,
    const sf_ship_name_t *elem)
{
    size_t               n;
    unsigned             escaped;
    const char          *word;
    const sf_ship_u8_t  *p;

    p = s->p;

    switch (*p) {

    case '{':
    case '[':
        return sf_ship_scan_container(s, names, elem);

    case '"':
        return sf_ship_scan_string(s, &escaped);

    case 't':
        word = "true";
        n = 4;
        break;

    case 'f':
        word = "false";
        n = 5;
        break;

    case 'n':
        word = "null";
        n = 4;
        break;

    default:
        return sf_ship_scan_number(s);
    }

    if ((size_t) (s->end - p) < n || memcmp(p, word, n) != 0) {
        return 0;
    }

    s->p = p + n;

    return 1;
}


/*
 * s->p is at '{' or '['; the caller checks what follows the value.  An
 * object is read with the names whose values the checks look up in it
 * (NULL: none), an array with those of its elements.
 */

static int
sf_ship_scan_container(sf_ship_scan_t *s, const sf_ship_name_t *names,
    const sf_ship_name_t *elem)
{
    size_t                  klen, k;
    uint64_t                seen, bit, lens;
    unsigned                i, base, escaped;
    sf_ship_u8_t            close;
    sf_ship_box_t          *box;
    sf_ship_record_t       *rec;
    const sf_ship_u8_t     *p, *key;
    const sf_ship_name_t   *child, *child_elem;

    if (++s->depth > SF_SHIP_MAX_DEPTH) {
        return 0;
    }

    box = NULL;
    rec = NULL;
    close = (*s->p == '{') ? '}' : ']';

    if (s->doc->nboxes < SF_SHIP_BOXES) {
        box = &s->doc->boxes[s->doc->nboxes++];
        box->start = s->p;
        box->end = NULL;
        box->record = -1;

        if (close == '}' && names != NULL && s->doc->records != NULL
            && s->doc->nrecords < SF_SHIP_RECORDS)
        {
            box->record = s->doc->nrecords;
            rec = &s->doc->records[s->doc->nrecords++];
            rec->names = names;

            for (k = 0; names[k].data != NULL; k++) {
                rec->values[k] = NULL;
            }
        }
    }

    base = s->nkeys;
    seen = 0;
    child = elem;
    child_elem = NULL;

    /* the lengths of the names looked for, to pass most keys at once */

    lens = 0;

    if (names != NULL && s->dups) {
        for (k = 0; names[k].data != NULL; k++) {
            lens |= (uint64_t) 1 << (names[k].len & 63);
        }
    }

    p = sf_ship_ws(s->p + 1, s->end);

    if (p < s->end && *p == close) {
        s->p = p + 1;
        s->depth--;

        if (box != NULL) {
            box->end = s->p;
        }

        return 1;
    }

    for ( ;; ) {

        if (p == s->end) {
            return 0;
        }

        if (close == '}') {

            if (*p != '"') {
                return 0;
            }

            s->p = p;

            if (!sf_ship_scan_string(s, &escaped)) {
                return 0;
            }

            if (s->dups) {

                /* an escaped key may equal another one: jansson decides */

                if (escaped) {
                    return 0;
                }

                key = p + 1;
                klen = s->p - key - 1;

                /* compared with the keys before only if a hash bit says so */

                bit = (uint64_t) 1 << ((klen + key[0] + (klen ? key[klen - 1]
                                                            : 0) * 3) & 63);

                for (i = (seen & bit) ? base : s->nkeys; i < s->nkeys; i++) {
                    if (s->keys[i].len == klen && s->keys[i].p[0] == key[0]
                        && memcmp(s->keys[i].p, key, klen) == 0)
                    {
                        return 0;
                    }
                }

                seen |= bit;

                if (s->nkeys == SF_SHIP_SCAN_KEYS
                    || s->nkeys - base == SF_SHIP_SCAN_OBJKEYS)
                {
                    return 0;
                }

                s->keys[s->nkeys].p = key;
                s->keys[s->nkeys].len = klen;
                s->nkeys++;
            }

            /* a member the checks look up: where its value is */

            k = SF_SHIP_MAX_NAMES;
            klen = s->p - p - 2;

            if ((lens & ((uint64_t) 1 << (klen & 63))) != 0) {
                key = p + 1;

                for (k = 0; names[k].data != NULL; k++) {
                    if (names[k].len == klen && names[k].data[0] == key[0]
                        && memcmp(names[k].data, key, klen) == 0)
                    {
                        break;
                    }
                }
            }

            child = NULL;
            child_elem = NULL;

            p = sf_ship_ws(s->p, s->end);

            if (p == s->end || *p != ':') {
                return 0;
            }

            p = sf_ship_ws(p + 1, s->end);

            if (p == s->end) {
                return 0;
            }

            if (k < SF_SHIP_MAX_NAMES && names[k].data != NULL) {
                if (rec != NULL) {
                    rec->values[k] = (*p == 'n') ? NULL : p;
                }

                sf_ship_child(names, k, &child, &child_elem);
            }
        }

        s->p = p;

        if (!sf_ship_scan_value(s, child, child_elem)) {
            return 0;
        }

        p = sf_ship_ws(s->p, s->end);

        if (p == s->end) {
            return 0;
        }

        if (*p == ',') {
            p = sf_ship_ws(p + 1, s->end);
            continue;
        }

        if (*p != close) {
            return 0;
        }

        break;
    }

    s->p = p + 1;
    s->nkeys = base;
    s->depth--;

    if (box != NULL) {
        box->end = s->p;
    }

    return 1;
}


/*
 * What the checks look up in the value of member names[k]: the names of
 * its members if it is an object, of its elements' if it is an array.
 */

static void
sf_ship_child(const sf_ship_name_t *names, size_t k,
    const sf_ship_name_t **obj, const sf_ship_name_t **elem)
{
    *obj = NULL;
    *elem = NULL;

    if (names == sf_ship_root_keys) {

        switch (k) {

        case SF_SHIP_R_OUTPUT:
            *obj = sf_ship_output_keys;
            break;

        case SF_SHIP_R_SHIP_TO:
        case SF_SHIP_R_RETURN:
        case SF_SHIP_R_SHIPPER:
            *obj = sf_ship_address_keys;
            break;

        case SF_SHIP_R_PACKAGES:
            *elem = sf_ship_items_keys;
            break;
        }

    } else if (names == sf_ship_output_keys && k == 2) {
        *obj = sf_ship_unit_keys;

    } else if (names == sf_ship_items_keys && k == 0) {
        *elem = sf_ship_item_keys;
    }
}


/* s->p is at the opening '"' */

static int
sf_ship_scan_string(sf_ship_scan_t *s, unsigned *escaped)
{
    int                  cp;
    size_t               n;
    const sf_ship_u8_t  *p, *end;
#if defined(__SSE2__)
    int                  mask;
    __m128i              v, quote, backslash, space;

    quote = _mm_set1_epi8('"');
    backslash = _mm_set1_epi8('\\');
    space = _mm_set1_epi8(' ');
#endif

    *escaped = 0;

    p = s->p + 1;
    end = s->end;

    for ( ;; ) {

#if defined(__SSE2__)

        /*
         * sixteen bytes a turn: a '"', a '\\', or a byte below 0x20 or
         * from 0x80 (negative as a signed char) ends the plain run
         */

        while (end - p >= 16) {
            v = _mm_loadu_si128((const __m128i *) p);
            mask = _mm_movemask_epi8(
                       _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                 _mm_cmpeq_epi8(v, backslash)),
                                    _mm_cmplt_epi8(v, space)));

            if (mask != 0) {
                p += __builtin_ctz((unsigned) mask);
                goto special;
            }

            p += 16;
        }

#endif

        /* four bytes a turn: most strings are short plain ASCII */

        while (end - p >= 4) {
            if (!sf_ship_plain[p[0]]) {
                goto special;
            }

            if (!sf_ship_plain[p[1]]) {
                p += 1;
                goto special;
            }

            if (!sf_ship_plain[p[2]]) {
                p += 2;
                goto special;
            }

            if (!sf_ship_plain[p[3]]) {
                p += 3;
                goto special;
            }

            p += 4;
        }

        while (p < end && sf_ship_plain[*p]) {
            p++;
        }

        if (p == end) {
            return 0;
        }

    special:

        if (*p == '"') {
            s->p = p + 1;
            return 1;
        }

        if (*p == '\\') {
            *escaped = 1;

            if (end - p < 2) {
                return 0;
            }

            switch (p[1]) {

            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                continue;

            case 'u':
                if (end - p < 6) {
                    return 0;
                }

                cp = sf_ship_hex4(p + 2);

                /* NUL is refused by jansson, surrogates left to it */

                if (cp <= 0 || (cp >= 0xd800 && cp <= 0xdfff)) {
                    return 0;
                }

                p += 6;
                continue;

            default:
                return 0;
            }
        }

        if (*p < 0x80) {
            /* a control character */
            return 0;
        }

        n = sf_json_utf8(p, end - p, NULL);

        if (n == 0) {
            return 0;
        }

        p += n;
    }
}


static int
sf_ship_scan_number(sf_ship_scan_t *s)
{
    size_t               digits;
    unsigned             real, negative, exp;
    const sf_ship_u8_t  *p, *start, *end;

    p = s->p;
    end = s->end;

    if (*p == '-') {
        p++;
    }

    start = p;

    if (p < end && *p == '0') {
        p++;

    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return 0;
    }

    digits = p - start;
    real = 0;

    if (p < end && *p == '.') {
        start = ++p;

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == start) {
            return 0;
        }

        digits += p - start;
        real = 1;
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        negative = 0;

        if (p < end && (*p == '+' || *p == '-')) {
            negative = (*p == '-');
            p++;
        }

        start = p;
        exp = 0;

        while (p < end && *p >= '0' && *p <= '9') {
            if (exp < 100000) {
                exp = exp * 10 + (*p - '0');
            }

            p++;
        }

        if (p == start) {
            return 0;
        }

        if (!negative && exp > SF_SHIP_SCAN_REAL_EXP) {
            return 0;
        }

        real = 1;
    }

    if (digits > (real ? SF_SHIP_SCAN_REAL_DIGITS : SF_SHIP_SCAN_INT_DIGITS))
    {
        return 0;
    }

    s->p = p;

    return 1;
}


/* the value of 4 hex digits, -1 if they are not */

static int
sf_ship_hex4(const sf_ship_u8_t *p)
{
    int           v, i;
    sf_ship_u8_t  c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');

        } else if (c >= 'a' && c <= 'f') {
            v = v * 16 + (c - 'a' + 10);

        } else if (c >= 'A' && c <= 'F') {
            v = v * 16 + (c - 'A' + 10);

        } else {
            return -1;
        }
    }

    return v;
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


/*
 * Walking the text of a document known to be valid JSON (the scanner or
 * jansson said so).  A value is a pointer to its first byte; NULL stands
 * for an absent member or a JSON null.  The bounds are still checked.
 */

static inline const sf_ship_u8_t *
sf_ship_ws(const sf_ship_u8_t *p, const sf_ship_u8_t *end)
{
    while (p < end && sf_ship_space[*p]) {
        p++;
    }

    return p;
}


/* p is at the opening '"'; returns the byte after the closing one */

static const sf_ship_u8_t *
sf_ship_skip_string(const sf_ship_u8_t *p, const sf_ship_u8_t *end)
{
    p++;

    for ( ;; ) {

        while (end - p >= 4) {
            if (sf_ship_stop[p[0]]) {
                break;
            }

            if (sf_ship_stop[p[1]]) {
                p += 1;
                break;
            }

            if (sf_ship_stop[p[2]]) {
                p += 2;
                break;
            }

            if (sf_ship_stop[p[3]]) {
                p += 3;
                break;
            }

            p += 4;
        }

        while (p < end && !sf_ship_stop[*p]) {
            p++;
        }

        if (p >= end) {
            return end;
        }

        if (*p == '"') {
            return p + 1;
        }

        p += 2;                               /* an escape */
    }
}


/* p is at the first byte of a value; returns the byte after it */

static const sf_ship_u8_t *
sf_ship_skip(const sf_ship_u8_t *p, sf_ship_doc_t *doc)
{
    unsigned        depth;
    sf_ship_box_t  *box;

    if (*p == '"') {
        return sf_ship_skip_string(p, doc->end);
    }

    if (*p == '{' || *p == '[') {

        /* a container the scanner saw the end of */

        box = sf_ship_box(p, doc);

        if (box != NULL && box->end != NULL) {
            return box->end;
        }

        depth = 0;

        while (p < doc->end) {
            switch (*p) {

            case '"':
                p = sf_ship_skip_string(p, doc->end);
                continue;

            case '{':
            case '[':
                depth++;
                break;

            case '}':
            case ']':
                if (--depth == 0) {
                    return p + 1;
                }

                break;
            }

            p++;
        }

        return doc->end;
    }

    while (p < doc->end && *p != ',' && *p != '}' && *p != ']' && *p != ' '
           && *p != '\n' && *p != '\r' && *p != '\t')
    {
        p++;
    }

    return p;
}


/* the container the scanner recorded at p, or NULL */

static sf_ship_box_t *
sf_ship_box(const sf_ship_u8_t *p, sf_ship_doc_t *doc)
{
    unsigned        lo, hi, mid;
    sf_ship_box_t  *box;

    lo = 0;
    hi = doc->nboxes;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        box = &doc->boxes[mid];

        if (box->start == p) {
            return box;
        }

        if (box->start < p) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return NULL;
}


/*
 * values[i] = the value of the member names[i] of the object at obj, or
 * NULL if it is absent or null; for a repeated key, the last one.  What
 * the scanner recorded for a whole object is taken as it is.
 */

static void
sf_ship_members(const sf_ship_u8_t *obj, sf_ship_doc_t *doc,
    const sf_ship_name_t *names, const sf_ship_u8_t **values)
{
    size_t               i, len;
    unsigned             escaped;
    sf_ship_box_t       *box;
    sf_ship_record_t    *rec;
    const sf_ship_u8_t  *p, *key, *end;

    if (doc->nrecords > 0) {
        box = sf_ship_box(obj, doc);

        if (box != NULL && box->end != NULL && box->record >= 0
            && doc->records[box->record].names == names)
        {
            rec = &doc->records[box->record];

            for (i = 0; names[i].data != NULL; i++) {
                values[i] = rec->values[i];
            }

            return;
        }
    }

    for (i = 0; names[i].data != NULL; i++) {
        values[i] = NULL;
    }

    end = doc->end;
    p = sf_ship_ws(obj + 1, end);

    while (p < end && *p == '"') {

        /* the key: most are short and without escapes */

        key = ++p;
        escaped = 0;

        while (p < end && *p != '"') {
            if (*p == '\\') {
                escaped = 1;
                p++;
            }

            p++;
        }

        len = p - key;

        p = sf_ship_ws(p + 1, end);           /* ':' */
        p = sf_ship_ws(p + 1, end);

        if (p >= end) {
            return;
        }

        for (i = 0; names[i].data != NULL; i++) {

            if (escaped ? sf_ship_key_is(key, len, &names[i])
                        : (len == names[i].len && key[0] == names[i].data[0]
                           && memcmp(key, names[i].data, len) == 0))
            {
                values[i] = (*p == 'n') ? NULL : p;
                break;
            }
        }

        p = sf_ship_ws(sf_ship_skip(p, doc), end);

        if (p >= end || *p != ',') {
            return;
        }

        p = sf_ship_ws(p + 1, end);
    }
}


/* the raw key (JSON string contents with escapes) equals the name */

static int
sf_ship_key_is(const sf_ship_u8_t *key, size_t len,
    const sf_ship_name_t *name)
{
    size_t        k;
    sf_ship_u8_t  buf[32];

    k = sf_ship_unescape(key, len, buf, sizeof(buf));

    return k == name->len && memcmp(buf, name->data, k) == 0;
}


/* the first element of an array, NULL if it is empty */

static const sf_ship_u8_t *
sf_ship_first(const sf_ship_u8_t *array, sf_ship_doc_t *doc)
{
    const sf_ship_u8_t  *p;

    p = sf_ship_ws(array + 1, doc->end);

    return (p < doc->end && *p != ']') ? p : NULL;
}


/* the element after the one at p, NULL at the end of the array */

static const sf_ship_u8_t *
sf_ship_next(const sf_ship_u8_t *p, sf_ship_doc_t *doc)
{
    p = sf_ship_ws(sf_ship_skip(p, doc), doc->end);

    if (p >= doc->end || *p != ',') {
        return NULL;
    }

    p = sf_ship_ws(p + 1, doc->end);

    return (p < doc->end) ? p : NULL;
}


/*
 * Unescapes the contents p[0 .. len - 1] of a valid JSON string into
 * out[0 .. size - 1] as jansson does (UTF-8, surrogate pairs joined), and
 * returns the full length, which may be more than size.
 */

static size_t
sf_ship_unescape(const sf_ship_u8_t *p, size_t len, sf_ship_u8_t *out,
    size_t size)
{
    int                  cp, lo;
    size_t               n, k, j;
    sf_ship_u8_t         c, unit[4];
    const sf_ship_u8_t  *end;

    end = p + len;
    n = 0;

    while (p < end) {

        if (*p != '\\' || end - p < 2) {
            if (n < size) {
                out[n] = *p;
            }

            n++;
            p++;
            continue;
        }

        c = p[1];
        p += 2;

        switch (c) {

        case 'b':
            c = '\b';
            break;

        case 'f':
            c = '\f';
            break;

        case 'n':
            c = '\n';
            break;

        case 'r':
            c = '\r';
            break;

        case 't':
            c = '\t';
            break;

        case 'u':
            cp = (end - p >= 4) ? sf_ship_hex4(p) : -1;

            if (cp < 0) {
                cp = 0xfffd;

            } else {
                p += 4;
            }

            if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\'
                && p[1] == 'u')
            {
                lo = sf_ship_hex4(p + 2);

                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
                    p += 6;
                }
            }

            if (cp < 0x80) {
                unit[0] = (sf_ship_u8_t) cp;
                k = 1;

            } else if (cp < 0x800) {
                unit[0] = (sf_ship_u8_t) (0xc0 | (cp >> 6));
                unit[1] = (sf_ship_u8_t) (0x80 | (cp & 0x3f));
                k = 2;

            } else if (cp < 0x10000) {
                unit[0] = (sf_ship_u8_t) (0xe0 | (cp >> 12));
                unit[1] = (sf_ship_u8_t) (0x80 | ((cp >> 6) & 0x3f));
                unit[2] = (sf_ship_u8_t) (0x80 | (cp & 0x3f));
                k = 3;

            } else {
                unit[0] = (sf_ship_u8_t) (0xf0 | (cp >> 18));
                unit[1] = (sf_ship_u8_t) (0x80 | ((cp >> 12) & 0x3f));
                unit[2] = (sf_ship_u8_t) (0x80 | ((cp >> 6) & 0x3f));
                unit[3] = (sf_ship_u8_t) (0x80 | (cp & 0x3f));
                k = 4;
            }

            for (j = 0; j < k; j++, n++) {
                if (n < size) {
                    out[n] = unit[j];
                }
            }

            continue;

        default:
            /* '"', '\\', '/' */
            break;
        }

        if (n < size) {
            out[n] = c;
        }

        n++;
    }

    return n;
}


/*
 * The contents p[0 .. len - 1] of a valid JSON string are empty or only
 * ASCII whitespace (space, \t, \n, \r, \f, \v) once unescaped.
 */

static int
sf_ship_blank(const sf_ship_u8_t *p, size_t len)
{
    int                  cp;
    const sf_ship_u8_t  *end;

    end = p + len;

    while (p < end) {

        if (*p == ' ') {
            p++;
            continue;
        }

        if (*p != '\\' || end - p < 2) {
            return 0;
        }

        switch (p[1]) {

        case 't':
        case 'n':
        case 'r':
        case 'f':
            p += 2;
            continue;

        case 'u':
            cp = (end - p >= 6) ? sf_ship_hex4(p + 2) : -1;

            if (cp != ' ' && (cp < '\t' || cp > '\r')) {
                return 0;
            }

            p += 6;
            continue;

        default:
            return 0;
        }
    }

    return 1;
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
