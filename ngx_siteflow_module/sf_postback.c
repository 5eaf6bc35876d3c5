
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * SiteFlow trigger postbacks ("siteflow_postback"): parse and normalise.
 *
 * Sources: SPEC section 7 (our contract), protocols.md section 2: the only
 * official body is {timestamp, sourceOrderId, status: "printready"}; the
 * documented submission-error template renders TimeStamp, OrderId
 * (from {{data.body}}), status "Order submission error" and errorsClean[];
 * everything else a template renders is up to the print company, so the
 * parser accepts the variants listed here.  docs/postbacks.md has the
 * same tables for operators.
 *
 * Values.  A JSON null, a missing key and a string that is empty or only
 * ASCII whitespace are all "absent".  Strings are trimmed of ASCII
 * whitespace and HTML-unescaped: Handlebars' {{value}} escapes & < > " '
 * ` = as &amp; &lt; &gt; &quot; &#x27; &#x60; &#x3D;, and these (plus
 * &#39;) are decoded, so that a tracking URL with a query string survives
 * a template.  Identifiers may be JSON integers too (a template without
 * quotes); they are then written in decimal.  A value that does not fit
 * its sf_postback_t buffer is SF_PB_INVALID ("is too long"), never cut,
 * except the message; control characters are SF_PB_INVALID in every value
 * except the message, where they become spaces.
 *
 * Checked in this order; the first problem is the result:
 *
 *   body empty / only whitespace           BAD_JSON "empty request body"
 *   more than SF_PB_MAX_DEPTH levels        BAD_JSON "invalid JSON at line
 *                                           L, column C: nesting too deep
 *                                           (more than 16 levels)"
 *   not JSON, duplicate keys               BAD_JSON "invalid JSON at line
 *                                           L, column C: <jansson text>"
 *   not an object                          BAD_JSON "request body must be
 *                                           a JSON object"
 *   sourceOrderId, else OrderId            INVALID "\"sourceOrderId\" is
 *                                           required"; string or integer.
 *                                           An OrderId holding JSON text
 *                                           (a string {{data.body}}) gives
 *                                           its orderData.sourceOrderId
 *                                           (or sourceOrderId); the text
 *                                           "[object Object]" (an object
 *                                           {{data.body}}) is INVALID
 *   event, else status                     INVALID "\"event\" or
 *                                           \"status\" is required";
 *                                           a string
 *   timestamp, else TimeStamp              optional string, kept as sent
 *                                           (cut to 63 bytes of whole
 *                                           characters, not refused)
 *   the event name                         UNKNOWN_EVENT "unknown event
 *                                           \"xyz\"" (see the alias table)
 *
 * Then the shipment fields, for every event.  They are looked up, key by
 * key, in up to three objects and the first one where the key is present
 * wins (precedence):
 *
 *   1. the body itself (our templates: flat keys);
 *   2. "shipment", an object;
 *   3. one entry of "shipments", an array: the entry whose shipmentIndex
 *      equals the index found in 1 or 2; when neither gives one,
 *      shipments[0] (and its shipmentIndex becomes the index).  Only the
 *      first SF_PB_MAX_SHIPMENTS entries are searched.
 *
 *   shipmentIndex     integer >= 0, or a string of 1-9 digits
 *                     ("{{shipmentIndex}}" in quotes): "... must be a
 *                     non-negative integer"
 *   trackingNumber    string or integer; at most SF_PB_TRACKING_MAX
 *                     characters of SF_PB_TRACKING_CHARS (they go into
 *                     the customer's e-mail)
 *   trackingUrl       string, an http or https URL of RFC 3986
 *                     characters (no spaces, quotes, <, >, \, ^, `, {,
 *                     |, }, nothing outside ASCII)
 *   carrier           string, or an object {code, service, alias} of
 *                     strings flattened as "code service", "code",
 *                     else "alias", else "service"; the result at most
 *                     SF_PB_CARRIER_MAX characters of SF_PB_CARRIER_CHARS
 *   shipDate          string starting with a calendar date YYYY-MM-DD
 *                     (then nothing, 'T' or ' '); when absent, ship_date
 *                     is the date that starts the timestamp, if any
 *   items             array (the first non-empty one in precedence) of
 *                     {sourceItemId, shipmentIndex}, or of strings or
 *                     integers; entries without an id are skipped, and
 *                     so are those whose shipmentIndex is another
 *                     shipment's (a template may list all the order's
 *                     items)
 *
 * A wrong type is INVALID naming the key as looked up:
 * "\"shipments[0].carrier.code\" must be a string".
 *
 * Error messages, for every event, joined with "; " in this order:
 * message (string), error (string or object), errors[] and errorsClean[]
 * (arrays of strings or objects; the first SF_PB_MAX_ERRORS entries).
 * An object becomes "name: message - At path path" like the documented
 * template (parts that are not strings or are blank are left out,
 * "Unknown error" stands for a missing message).  The result is cut
 * at a character boundary and ends with "..." when it does not fit.
 */


#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sf_postback.h"
#include "sf_json.h"


#define SF_PB_TEXT_LEN        512     /* one err message before the cut */
#define SF_PB_PATH_LEN        96      /* "shipments[999].carrier.service" */
#define SF_PB_SHOW_LEN        64      /* bytes of a value shown in err */
#define SF_PB_KEY_LEN         40      /* a normalised event name */
#define SF_PB_PREFIX_LEN      32      /* "shipments[999]." */
#define SF_PB_INDEX_DIGITS    9

#define SF_PB_ELLIPSIS        "..."

/*
 * What may reach the customer's e-mail: ASCII letters and digits plus
 * these characters, at most this many.  docs/postbacks.md has the same.
 */
#define SF_PB_TRACKING_CHARS  " -./_"
#define SF_PB_TRACKING_MAX    64
#define SF_PB_CARRIER_CHARS   " -./_()"
#define SF_PB_CARRIER_MAX     64

/* RFC 3986 reserved and unreserved characters besides letters, digits */
#define SF_PB_URL_CHARS       "-._~:/?#[]@!$&'()*+,;=%"

/* sf_pb_text() and friends */
#define SF_PB_ERROR           -1      /* err is set */
#define SF_PB_ABSENT          0
#define SF_PB_SET             1

/* sf_pb_text() flags */
#define SF_PB_INTEGER         0x01    /* a JSON integer is accepted */
#define SF_PB_CUT             0x02    /* too long: kept up to size - 1 bytes
                                         (whole characters), not refused */


#if defined(__GNUC__) || defined(__clang__)
#define SF_PB_PRINTF(f, a)    __attribute__ ((format (printf, f, a)))
#else
#define SF_PB_PRINTF(f, a)
#endif


typedef struct {
    json_t          *obj;
    const char      *prefix;      /* "", "shipment.", "shipments[N]." */
} sf_pb_src_t;


typedef struct {
    char            *buf;
    size_t           size;
    size_t           len;
    unsigned         full;
} sf_pb_buf_t;


typedef struct {
    json_t          *root;
    sf_postback_t   *pb;
    char            *err;
    size_t           err_size;
    unsigned         nsrc;
    sf_pb_src_t      src[3];
    char             prefix[SF_PB_PREFIX_LEN];
} sf_pb_ctx_t;


typedef struct {
    const char      *key;
    sf_event_t       event;
} sf_pb_alias_t;


typedef struct {
    const char      *text;
    size_t           len;
    char             c;
} sf_pb_entity_t;


static sf_pb_rc_t sf_pb_fail(sf_pb_ctx_t *ctx, sf_pb_rc_t rc,
    const char *fmt, ...) SF_PB_PRINTF(3, 4);
static sf_pb_rc_t sf_pb_bad_json(sf_pb_ctx_t *ctx, json_error_t *e);
static int sf_pb_space(unsigned char c);
static void sf_pb_trim(const char **s, size_t *n);
static json_t *sf_pb_get(json_t *obj, const char *key);
static int sf_pb_blank(json_t *v);
static size_t sf_pb_unit(const unsigned char *p, size_t n, char *unit,
    size_t *k);
static int sf_pb_text(sf_pb_ctx_t *ctx, json_t *v, const char *path,
    unsigned flags, char *out, size_t size);
static int sf_pb_member(sf_pb_ctx_t *ctx, json_t *obj, const char *prefix,
    const char *key, unsigned flags, char *out, size_t size);
static int sf_pb_find(sf_pb_ctx_t *ctx, const char *key, unsigned flags,
    char *out, size_t size, const char **prefix);
static int sf_pb_order_id(sf_pb_ctx_t *ctx);
static int sf_pb_order_id_json(sf_pb_ctx_t *ctx, json_t *v);
static json_t *sf_pb_event_value(sf_pb_ctx_t *ctx, const char **key);
static sf_event_t sf_pb_match(const char *s, size_t n);
static void sf_pb_show(char *out, size_t size, const char *s, size_t n);
static int sf_pb_index_value(json_t *v, int *idx);
static int sf_pb_index(sf_pb_ctx_t *ctx, json_t *obj, const char *prefix,
    int *idx);
static int sf_pb_sources(sf_pb_ctx_t *ctx);
static int sf_pb_tracking_number(sf_pb_ctx_t *ctx);
static int sf_pb_tracking_url(sf_pb_ctx_t *ctx);
static int sf_pb_carrier(sf_pb_ctx_t *ctx);
static int sf_pb_charset(sf_pb_ctx_t *ctx, char *value, const char *path,
    const char *extra, size_t max);
static int sf_pb_carrier_object(sf_pb_ctx_t *ctx, json_t *obj,
    const char *prefix);
static int sf_pb_date(const char *s, char *out);
static int sf_pb_ship_date(sf_pb_ctx_t *ctx);
static int sf_pb_items(sf_pb_ctx_t *ctx, char (*items)[SF_PB_ITEM_ID_LEN],
    unsigned max_items);
static int sf_pb_messages(sf_pb_ctx_t *ctx);
static int sf_pb_message_list(sf_pb_ctx_t *ctx, sf_pb_buf_t *b,
    const char *key);
static int sf_pb_message_entry(sf_pb_ctx_t *ctx, sf_pb_buf_t *b, json_t *v,
    const char *path);
static void sf_pb_append_object(sf_pb_buf_t *b, json_t *obj);
static void sf_pb_append_piece(sf_pb_buf_t *b, const char *s, size_t n);
static void sf_pb_append(sf_pb_buf_t *b, const char *s, size_t n);
static void sf_pb_append_unit(sf_pb_buf_t *b, const char *unit, size_t k);


static const char *const  sf_pb_names[] = {
    NULL,
    "received",
    "printready",
    "subbatch_scanned",
    "batch_complete",
    "complete",
    "shipped",
    "cancelled",
    "error",
    "submission_error"
};


/* index: sf_event_t */
static const int  sf_pb_ranks[] = { -1, 1, 2, 3, 4, 5, 7, 6, 1, 0 };


/*
 * Event names after normalisation: ASCII letters lowercased, ASCII
 * whitespace, '-', '_' and '.' removed ("Sub-Batch Scanned" and
 * "subbatch_scanned" are both "subbatchscanned").
 */

static const sf_pb_alias_t  sf_pb_aliases[] = {
    { "received",             SF_EV_RECEIVED },
    { "orderreceived",        SF_EV_RECEIVED },
    { "dataready",            SF_EV_RECEIVED },
    { "printready",           SF_EV_PRINTREADY },
    { "orderprintready",      SF_EV_PRINTREADY },
    { "subbatchscanned",      SF_EV_SUBBATCH_SCANNED },
    { "batchcomplete",        SF_EV_BATCH_COMPLETE },
    { "batchcompleted",       SF_EV_BATCH_COMPLETE },
    { "subbatchcompleted",    SF_EV_BATCH_COMPLETE },
    { "complete",             SF_EV_COMPLETE },
    { "completed",            SF_EV_COMPLETE },
    { "ordercomplete",        SF_EV_COMPLETE },
    { "ordercompleted",       SF_EV_COMPLETE },
    { "shipped",              SF_EV_SHIPPED },
    { "ordershipped",         SF_EV_SHIPPED },
    { "shipmentshipped",      SF_EV_SHIPPED },
    { "shipmentdispatched",   SF_EV_SHIPPED },
    { "cancelled",            SF_EV_CANCELLED },
    { "canceled",             SF_EV_CANCELLED },
    { "ordercancelled",       SF_EV_CANCELLED },
    { "ordercanceled",        SF_EV_CANCELLED },
    { "error",                SF_EV_ERROR },
    { "errored",              SF_EV_ERROR },
    { "ordererror",           SF_EV_ERROR },
    { "ordererrored",         SF_EV_ERROR },
    { "submissionerror",      SF_EV_SUBMISSION_ERROR },
    { "ordersubmissionerror", SF_EV_SUBMISSION_ERROR },
    { NULL,                   0 }
};


/* what Handlebars' escapeExpression() writes, and &#39; */

static const sf_pb_entity_t  sf_pb_entities[] = {
    { "&amp;",  5, '&' },
    { "&lt;",   4, '<' },
    { "&gt;",   4, '>' },
    { "&quot;", 6, '"' },
    { "&#x27;", 6, '\'' },
    { "&#39;",  5, '\'' },
    { "&#x60;", 6, '`' },
    { "&#x3D;", 6, '=' },
    { NULL,     0, '\0' }
};


sf_pb_rc_t
sf_postback_parse(const char *body, size_t len, sf_postback_t *pb,
    char (*items)[SF_PB_ITEM_ID_LEN], unsigned max_items, char *err,
    size_t err_size)
{
    int            rc;
    char           show[SF_PB_SHOW_LEN + 8];
    size_t         i, line, column;
    json_t        *root, *ev;
    sf_event_t     event;
    sf_pb_rc_t     res;
    const char    *key;
    sf_pb_ctx_t    ctx;
    json_error_t   e;

    memset(pb, 0, sizeof(sf_postback_t));
    pb->shipment_index = -1;
    pb->items = items;

    if (err_size > 0) {
        err[0] = '\0';
    }

    ctx.root = NULL;
    ctx.pb = pb;
    ctx.err = err;
    ctx.err_size = err_size;
    ctx.nsrc = 0;
    ctx.prefix[0] = '\0';

    for (i = 0; body != NULL && i < len; i++) {
        if (!sf_pb_space((unsigned char) body[i])) {
            break;
        }
    }

    if (body == NULL || i == len) {
        return sf_pb_fail(&ctx, SF_PB_BAD_JSON, "empty request body");
    }

    if (sf_json_too_deep((const unsigned char *) body, len,
                         SF_PB_MAX_DEPTH, &line, &column))
    {
        return sf_pb_fail(&ctx, SF_PB_BAD_JSON,
                          "invalid JSON at line %zu, column %zu: "
                          "nesting too deep (more than %d levels)",
                          line, column, SF_PB_MAX_DEPTH);
    }

    root = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                      &e);

    if (root == NULL) {
        return sf_pb_bad_json(&ctx, &e);
    }

    if (!json_is_object(root)) {
        json_decref(root);
        return sf_pb_fail(&ctx, SF_PB_BAD_JSON,
                          "request body must be a JSON object");
    }

    ctx.root = root;
    res = SF_PB_INVALID;

    if (sf_pb_order_id(&ctx) == SF_PB_ERROR) {
        goto done;
    }

    ev = sf_pb_event_value(&ctx, &key);
    if (ev == NULL) {
        goto done;
    }

    /* only logged (and its date a fallback ship date): a long one is cut */

    rc = sf_pb_member(&ctx, root, "", "timestamp", SF_PB_CUT, pb->timestamp,
                      sizeof(pb->timestamp));
    if (rc == SF_PB_ABSENT) {
        rc = sf_pb_member(&ctx, root, "", "TimeStamp", SF_PB_CUT,
                          pb->timestamp, sizeof(pb->timestamp));
    }

    if (rc == SF_PB_ERROR) {
        goto done;
    }

    event = sf_pb_match(json_string_value(ev), json_string_length(ev));

    if (event == 0) {
        sf_pb_show(show, sizeof(show), json_string_value(ev),
                   json_string_length(ev));
        res = sf_pb_fail(&ctx, SF_PB_UNKNOWN_EVENT, "unknown event \"%s\"",
                         show);
        goto done;
    }

    pb->event = event;
    (void) snprintf(pb->event_name, sizeof(pb->event_name), "%s",
                    sf_pb_names[event]);

    if (sf_pb_sources(&ctx) == SF_PB_ERROR
        || sf_pb_tracking_number(&ctx) == SF_PB_ERROR
        || sf_pb_tracking_url(&ctx) == SF_PB_ERROR
        || sf_pb_carrier(&ctx) == SF_PB_ERROR
        || sf_pb_ship_date(&ctx) == SF_PB_ERROR
        || sf_pb_items(&ctx, items, max_items) == SF_PB_ERROR
        || sf_pb_messages(&ctx) == SF_PB_ERROR)
    {
        goto done;
    }

    res = SF_PB_OK;

done:

    json_decref(root);

    return res;
}


const char *
sf_postback_event_name(sf_event_t ev)
{
    if (ev < SF_EV_RECEIVED || ev > SF_EV_SUBMISSION_ERROR) {
        return NULL;
    }

    return sf_pb_names[ev];
}


int
sf_postback_rank(sf_event_t ev)
{
    if (ev < SF_EV_RECEIVED || ev > SF_EV_SUBMISSION_ERROR) {
        return -1;
    }

    return sf_pb_ranks[ev];
}


int
sf_postback_supersedes(sf_event_t newer, sf_event_t older)
{
    if (sf_postback_rank(newer) < 0) {
        return 0;
    }

    if (sf_postback_rank(older) < 0) {
        return 1;
    }

    if (newer == SF_EV_SHIPPED) {
        return 1;
    }

    if (older == SF_EV_SHIPPED || older == SF_EV_CANCELLED) {
        return 0;
    }

    if (newer == SF_EV_ERROR) {
        return 1;
    }

    if (newer == SF_EV_SUBMISSION_ERROR) {
        return older == SF_EV_SUBMISSION_ERROR;
    }

    return sf_postback_rank(newer) > sf_postback_rank(older);
}


int
sf_postback_same(const sf_postback_t *a, const sf_postback_t *b)
{
    if (a == NULL || b == NULL) {
        return 0;
    }

    return a->event == b->event
           && a->shipment_index == b->shipment_index
           && strcmp(a->source_order_id, b->source_order_id) == 0
           && strcmp(a->tracking_number, b->tracking_number) == 0
           && strcmp(a->message, b->message) == 0;
}


static sf_pb_rc_t
sf_pb_fail(sf_pb_ctx_t *ctx, sf_pb_rc_t rc, const char *fmt, ...)
{
    int      n;
    char     text[SF_PB_TEXT_LEN];
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);

    if (n < 0) {
        n = 0;
        text[0] = '\0';
    }

    if ((size_t) n >= sizeof(text)) {
        n = (int) sf_json_utf8_trim(text, sizeof(text) - 1);
    }

    sf_json_copy_cut(ctx->err, ctx->err_size, text, (size_t) n);

    return rc;
}


static sf_pb_rc_t
sf_pb_bad_json(sf_pb_ctx_t *ctx, json_error_t *e)
{
    char         text[SF_PB_TEXT_LEN];
    size_t       n, max;
    const char  *reason;

    if (json_error_code(e) == json_error_out_of_memory) {
        return sf_pb_fail(ctx, SF_PB_BAD_JSON,
                          "internal error: out of memory");
    }

    if (json_error_code(e) == json_error_null_character) {
        reason = "NUL character (\\u0000) in a string";

    } else if (e->text[0] != '\0') {
        reason = e->text;

    } else {
        reason = "unknown error";
    }

    /* jansson quotes input near the error: keep it printable UTF-8 */

    max = strnlen(reason, sizeof(e->text));
    n = sf_json_clean(text, sizeof(text) - 1, reason, max,
                      SF_JSON_CLEAN_QMARK | SF_JSON_CLEAN_CONTROL);

    text[n] = '\0';

    if (e->line >= 0 && e->column >= 0) {
        return sf_pb_fail(ctx, SF_PB_BAD_JSON,
                          "invalid JSON at line %d, column %d: %s",
                          e->line, e->column, text);
    }

    return sf_pb_fail(ctx, SF_PB_BAD_JSON, "invalid JSON: %s", text);
}


static int
sf_pb_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
           || c == '\v';
}


static void
sf_pb_trim(const char **s, size_t *n)
{
    while (*n > 0 && sf_pb_space((unsigned char) (*s)[0])) {
        (*s)++;
        (*n)--;
    }

    while (*n > 0 && sf_pb_space((unsigned char) (*s)[*n - 1])) {
        (*n)--;
    }
}


/* a member, with JSON null treated as absent */

static json_t *
sf_pb_get(json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v != NULL && json_is_null(v)) {
        return NULL;
    }

    return v;
}


/* a string of nothing but whitespace counts as absent */

static int
sf_pb_blank(json_t *v)
{
    size_t       n;
    const char  *s;

    if (!json_is_string(v)) {
        return 0;
    }

    s = json_string_value(v);
    n = json_string_length(v);

    sf_pb_trim(&s, &n);

    return n == 0;
}


/*
 * The next character of p[0 .. n - 1], HTML entities of sf_pb_entities
 * decoded (case-insensitively) and invalid UTF-8 (jansson never gives
 * any) replaced by U+FFFD: unit receives 1..4 bytes, *k their number.
 * Returns the input bytes consumed.
 */

static size_t
sf_pb_unit(const unsigned char *p, size_t n, char *unit, size_t *k)
{
    size_t                 len, skip;
    const sf_pb_entity_t  *e;

    if (p[0] == '&') {
        for (e = sf_pb_entities; e->text != NULL; e++) {
            if (n >= e->len
                && strncasecmp((const char *) p, e->text, e->len) == 0)
            {
                unit[0] = e->c;
                *k = 1;
                return e->len;
            }
        }
    }

    len = sf_json_utf8(p, n, &skip);

    if (len == 0) {
        memcpy(unit, "\xef\xbf\xbd", 3);
        *k = 3;
        return skip;
    }

    memcpy(unit, p, len);
    *k = len;

    return len;
}


/*
 * One value into out[size]: trimmed, HTML-unescaped, no control
 * characters, must fit.  v is not NULL.
 */

static int
sf_pb_text(sf_pb_ctx_t *ctx, json_t *v, const char *path, unsigned flags,
    char *out, size_t size)
{
    int          r;
    char         num[32], unit[4];
    size_t       n, i, o, k;
    const char  *s;

    out[0] = '\0';

    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);

    } else if (json_is_integer(v) && (flags & SF_PB_INTEGER)) {
        r = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        s = num;
        n = (r > 0 && (size_t) r < sizeof(num)) ? (size_t) r : 0;

    } else {
        sf_pb_fail(ctx, SF_PB_INVALID, "\"%s\" must be a string%s", path,
                   (flags & SF_PB_INTEGER) ? " or an integer" : "");
        return SF_PB_ERROR;
    }

    sf_pb_trim(&s, &n);

    if (n == 0) {
        return SF_PB_ABSENT;
    }

    for (i = 0, o = 0; i < n; /* void */ ) {
        i += sf_pb_unit((const unsigned char *) s + i, n - i, unit, &k);

        if (k == 1 && ((unsigned char) unit[0] < 0x20 || unit[0] == 0x7f)) {
            out[0] = '\0';
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"%s\" must not contain control characters", path);
            return SF_PB_ERROR;
        }

        if (o + k > size - 1) {

            if (flags & SF_PB_CUT) {
                break;
            }

            out[0] = '\0';
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"%s\" is too long (at most %zu bytes)", path,
                       size - 1);
            return SF_PB_ERROR;
        }

        memcpy(out + o, unit, k);
        o += k;
    }

    out[o] = '\0';

    return SF_PB_SET;
}


static int
sf_pb_member(sf_pb_ctx_t *ctx, json_t *obj, const char *prefix,
    const char *key, unsigned flags, char *out, size_t size)
{
    char     path[SF_PB_PATH_LEN];
    json_t  *v;

    out[0] = '\0';

    v = sf_pb_get(obj, key);

    if (v == NULL || sf_pb_blank(v)) {
        return SF_PB_ABSENT;
    }

    (void) snprintf(path, sizeof(path), "%s%s", prefix, key);

    return sf_pb_text(ctx, v, path, flags, out, size);
}


/* key in the shipment sources, first present wins; *prefix tells where */

static int
sf_pb_find(sf_pb_ctx_t *ctx, const char *key, unsigned flags, char *out,
    size_t size, const char **prefix)
{
    int       rc;
    unsigned  i;

    for (i = 0; i < ctx->nsrc; i++) {
        rc = sf_pb_member(ctx, ctx->src[i].obj, ctx->src[i].prefix, key,
                          flags, out, size);

        if (rc != SF_PB_ABSENT) {
            if (prefix != NULL) {
                *prefix = ctx->src[i].prefix;
            }

            return rc;
        }
    }

    return SF_PB_ABSENT;
}


static int
sf_pb_order_id(sf_pb_ctx_t *ctx)
{
    int             rc;
    json_t         *v;
    size_t          n;
    const char     *s;
    sf_postback_t  *pb;

    pb = ctx->pb;

    rc = sf_pb_member(ctx, ctx->root, "", "sourceOrderId", SF_PB_INTEGER,
                      pb->source_order_id, sizeof(pb->source_order_id));

    if (rc != SF_PB_ABSENT) {
        return rc;
    }

    v = sf_pb_get(ctx->root, "OrderId");

    if (v != NULL && json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);

        sf_pb_trim(&s, &n);

        if (n > 0 && s[0] == '{') {
            return sf_pb_order_id_json(ctx, v);
        }
    }

    rc = sf_pb_member(ctx, ctx->root, "", "OrderId", SF_PB_INTEGER,
                      pb->source_order_id, sizeof(pb->source_order_id));

    if (rc == SF_PB_SET
        && strcmp(pb->source_order_id, "[object Object]") == 0)
    {
        pb->source_order_id[0] = '\0';
        sf_pb_fail(ctx, SF_PB_INVALID,
                   "\"OrderId\" is \"[object Object]\": the template "
                   "renders an object, not an order id");
        return SF_PB_ERROR;
    }

    if (rc != SF_PB_ABSENT) {
        return rc;
    }

    sf_pb_fail(ctx, SF_PB_INVALID, "\"sourceOrderId\" is required");

    return SF_PB_ERROR;
}


/*
 * OrderId from {{data.body}} when data.body is the submitted order as
 * JSON text: Handlebars HTML-escaped it, so it is unescaped, then parsed
 * (with the same depth limit) for orderData.sourceOrderId.
 */

static int
sf_pb_order_id_json(sf_pb_ctx_t *ctx, json_t *v)
{
    int             rc;
    char           *text, unit[4];
    size_t          i, n, o, k, line, column;
    json_t         *doc, *data, *obj;
    const char     *s, *prefix;
    sf_postback_t  *pb;

    pb = ctx->pb;
    s = json_string_value(v);
    n = json_string_length(v);

    text = malloc(n + 1);
    if (text == NULL) {
        sf_pb_fail(ctx, SF_PB_INVALID, "internal error: out of memory");
        return SF_PB_ERROR;
    }

    for (i = 0, o = 0; i < n; /* void */ ) {
        i += sf_pb_unit((const unsigned char *) s + i, n - i, unit, &k);

        /* an entity never grows, a U+FFFD needs no more than it replaces */

        if (o + k > n) {
            break;
        }

        memcpy(text + o, unit, k);
        o += k;
    }

    doc = NULL;

    if (!sf_json_too_deep((const unsigned char *) text, o,
                          SF_PB_MAX_DEPTH, &line, &column))
    {
        doc = json_loadb(text, o, JSON_REJECT_DUPLICATES, NULL);
    }

    free(text);

    obj = NULL;
    prefix = NULL;

    if (doc != NULL && json_is_object(doc)) {
        data = sf_pb_get(doc, "orderData");

        if (data != NULL && json_is_object(data)
            && sf_pb_get(data, "sourceOrderId") != NULL)
        {
            obj = data;
            prefix = "OrderId.orderData.";

        } else if (sf_pb_get(doc, "sourceOrderId") != NULL) {
            obj = doc;
            prefix = "OrderId.";
        }
    }

    if (obj == NULL) {
        json_decref(doc);
        sf_pb_fail(ctx, SF_PB_INVALID, "\"OrderId\" holds no "
                   "orderData.sourceOrderId and is not an order id");
        return SF_PB_ERROR;
    }

    rc = sf_pb_member(ctx, obj, prefix, "sourceOrderId", SF_PB_INTEGER,
                      pb->source_order_id, sizeof(pb->source_order_id));

    json_decref(doc);

    if (rc == SF_PB_ABSENT) {
        sf_pb_fail(ctx, SF_PB_INVALID, "\"sourceOrderId\" is required");
        return SF_PB_ERROR;
    }

    return rc;
}


/* "event", else "status": a non-blank string, or NULL with err set */

static json_t *
sf_pb_event_value(sf_pb_ctx_t *ctx, const char **key)
{
    json_t  *v;

    *key = "event";
    v = sf_pb_get(ctx->root, "event");

    if (v == NULL || sf_pb_blank(v)) {
        *key = "status";
        v = sf_pb_get(ctx->root, "status");
    }

    if (v == NULL || sf_pb_blank(v)) {
        sf_pb_fail(ctx, SF_PB_INVALID,
                   "\"event\" or \"status\" is required");
        return NULL;
    }

    if (!json_is_string(v)) {
        sf_pb_fail(ctx, SF_PB_INVALID, "\"%s\" must be a string", *key);
        return NULL;
    }

    return v;
}


static sf_event_t
sf_pb_match(const char *s, size_t n)
{
    char                  key[SF_PB_KEY_LEN + 1];
    size_t                i, k;
    unsigned char         c;
    const sf_pb_alias_t  *a;

    k = 0;

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];

        if (sf_pb_space(c) || c == '-' || c == '_' || c == '.') {
            continue;
        }

        if (k == SF_PB_KEY_LEN) {
            return 0;
        }

        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char) (c - 'A' + 'a');
        }

        key[k++] = (char) c;
    }

    key[k] = '\0';

    for (a = sf_pb_aliases; a->key != NULL; a++) {
        if (strcmp(a->key, key) == 0) {
            return a->event;
        }
    }

    return 0;
}


/*
 * A value quoted in a message: trimmed, at most SF_PB_SHOW_LEN bytes cut
 * at a character boundary then "...", '"' and '\\' escaped with '\\',
 * control characters and invalid UTF-8 as '?'.
 */

static void
sf_pb_show(char *out, size_t size, const char *s, size_t n)
{
    size_t         i, o, k, skip, cap;
    unsigned char  c;

    if (size < sizeof(SF_PB_ELLIPSIS) + 1) {
        if (size > 0) {
            out[0] = '\0';
        }

        return;
    }

    cap = size - sizeof(SF_PB_ELLIPSIS);
    if (cap > SF_PB_SHOW_LEN) {
        cap = SF_PB_SHOW_LEN;
    }

    sf_pb_trim(&s, &n);

    for (i = 0, o = 0; i < n; i += skip) {
        c = (unsigned char) s[i];

        if (c < 0x20 || c == 0x7f) {
            k = 0;
            skip = 1;

        } else {
            k = sf_json_utf8((const unsigned char *) s + i, n - i, &skip);
        }

        if (o + ((k == 0) ? 1 : k) + (c == '"' || c == '\\') > cap) {
            memcpy(out + o, SF_PB_ELLIPSIS, sizeof(SF_PB_ELLIPSIS));
            return;
        }

        if (k == 0) {
            out[o++] = '?';
            continue;
        }

        if (c == '"' || c == '\\') {
            out[o++] = '\\';
        }

        memcpy(out + o, s + i, k);
        o += k;
    }

    out[o] = '\0';
}


/* a shipment index (integer >= 0 or 1-9 digits): 1 ok, 0 absent, -1 bad */

static int
sf_pb_index_value(json_t *v, int *idx)
{
    size_t       n, i;
    json_int_t   val;
    const char  *s;

    if (v == NULL || sf_pb_blank(v)) {
        return 0;
    }

    if (json_is_integer(v)) {
        val = json_integer_value(v);

        if (val < 0 || val > INT_MAX) {
            return -1;
        }

        *idx = (int) val;
        return 1;
    }

    if (!json_is_string(v)) {
        return -1;
    }

    s = json_string_value(v);
    n = json_string_length(v);

    sf_pb_trim(&s, &n);

    if (n > SF_PB_INDEX_DIGITS) {
        return -1;
    }

    val = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        val = val * 10 + (s[i] - '0');
    }

    *idx = (int) val;

    return 1;
}


static int
sf_pb_index(sf_pb_ctx_t *ctx, json_t *obj, const char *prefix, int *idx)
{
    int  rc;

    rc = sf_pb_index_value(sf_pb_get(obj, "shipmentIndex"), idx);

    if (rc < 0) {
        sf_pb_fail(ctx, SF_PB_INVALID,
                   "\"%sshipmentIndex\" must be a non-negative integer",
                   prefix);
        return SF_PB_ERROR;
    }

    return (rc > 0) ? SF_PB_SET : SF_PB_ABSENT;
}


/* the objects shipment fields are looked up in, and the shipment index */

static int
sf_pb_sources(sf_pb_ctx_t *ctx)
{
    int       idx, entry, rc;
    size_t    i, n, chosen;
    json_t   *shipment, *shipments, *e;

    ctx->src[0].obj = ctx->root;
    ctx->src[0].prefix = "";
    ctx->nsrc = 1;

    idx = -1;

    rc = sf_pb_index(ctx, ctx->root, "", &idx);
    if (rc == SF_PB_ERROR) {
        return rc;
    }

    shipment = sf_pb_get(ctx->root, "shipment");

    if (shipment != NULL) {
        if (!json_is_object(shipment)) {
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"shipment\" must be an object");
            return SF_PB_ERROR;
        }

        ctx->src[ctx->nsrc].obj = shipment;
        ctx->src[ctx->nsrc].prefix = "shipment.";
        ctx->nsrc++;

        if (rc == SF_PB_ABSENT) {
            rc = sf_pb_index(ctx, shipment, "shipment.", &idx);
            if (rc == SF_PB_ERROR) {
                return rc;
            }
        }
    }

    shipments = sf_pb_get(ctx->root, "shipments");

    if (shipments != NULL) {
        if (!json_is_array(shipments)) {
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"shipments\" must be an array");
            return SF_PB_ERROR;
        }

        n = json_array_size(shipments);
        if (n > SF_PB_MAX_SHIPMENTS) {
            n = SF_PB_MAX_SHIPMENTS;
        }

        chosen = n;

        if (idx < 0) {
            chosen = 0;

        } else {
            for (i = 0; i < n; i++) {
                e = json_array_get(shipments, i);

                if (json_is_object(e)
                    && sf_pb_index_value(sf_pb_get(e, "shipmentIndex"),
                                         &entry) > 0
                    && entry == idx)
                {
                    chosen = i;
                    break;
                }
            }
        }

        if (chosen < n) {
            e = json_array_get(shipments, chosen);

            (void) snprintf(ctx->prefix, sizeof(ctx->prefix),
                            "shipments[%zu].", chosen);

            if (!json_is_object(e)) {
                sf_pb_fail(ctx, SF_PB_INVALID,
                           "\"shipments[%zu]\" must be an object", chosen);
                return SF_PB_ERROR;
            }

            ctx->src[ctx->nsrc].obj = e;
            ctx->src[ctx->nsrc].prefix = ctx->prefix;
            ctx->nsrc++;

            if (idx < 0) {
                rc = sf_pb_index(ctx, e, ctx->prefix, &idx);
                if (rc == SF_PB_ERROR) {
                    return rc;
                }
            }
        }
    }

    ctx->pb->shipment_index = idx;

    return SF_PB_SET;
}


static int
sf_pb_tracking_url(sf_pb_ctx_t *ctx)
{
    int                   rc;
    const char           *prefix;
    sf_postback_t        *pb;
    const unsigned char  *p;

    pb = ctx->pb;

    rc = sf_pb_find(ctx, "trackingUrl", 0, pb->tracking_url,
                    sizeof(pb->tracking_url), &prefix);

    if (rc != SF_PB_SET) {
        return rc;
    }

    if ((strncasecmp(pb->tracking_url, "http://", 7) != 0
         || pb->tracking_url[7] == '\0')
        && (strncasecmp(pb->tracking_url, "https://", 8) != 0
            || pb->tracking_url[8] == '\0'))
    {
        pb->tracking_url[0] = '\0';
        sf_pb_fail(ctx, SF_PB_INVALID,
                   "\"%strackingUrl\" must be an http:// or https:// URL",
                   prefix);
        return SF_PB_ERROR;
    }

    if (strchr(pb->tracking_url, ' ') != NULL) {
        pb->tracking_url[0] = '\0';
        sf_pb_fail(ctx, SF_PB_INVALID,
                   "\"%strackingUrl\" must not contain spaces", prefix);
        return SF_PB_ERROR;
    }

    for (p = (const unsigned char *) pb->tracking_url; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')
              || strchr(SF_PB_URL_CHARS, *p) != NULL))
        {
            pb->tracking_url[0] = '\0';
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"%strackingUrl\" must contain only URL characters "
                       "(RFC 3986, ASCII)", prefix);
            return SF_PB_ERROR;
        }
    }

    return rc;
}


static int
sf_pb_tracking_number(sf_pb_ctx_t *ctx)
{
    int             rc;
    char            path[SF_PB_PATH_LEN];
    const char     *prefix;
    sf_postback_t  *pb;

    pb = ctx->pb;

    rc = sf_pb_find(ctx, "trackingNumber", SF_PB_INTEGER,
                    pb->tracking_number, sizeof(pb->tracking_number),
                    &prefix);

    if (rc != SF_PB_SET) {
        return rc;
    }

    (void) snprintf(path, sizeof(path), "%strackingNumber", prefix);

    return sf_pb_charset(ctx, pb->tracking_number, path,
                         SF_PB_TRACKING_CHARS, SF_PB_TRACKING_MAX);
}


/*
 * value holds only ASCII letters, digits and extra, at most max bytes;
 * else it is emptied and err names path.
 */

static int
sf_pb_charset(sf_pb_ctx_t *ctx, char *value, const char *path,
    const char *extra, size_t max)
{
    size_t                n;
    const unsigned char  *p;

    n = strlen(value);

    for (p = (const unsigned char *) value; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9')
            || strchr(extra, *p) != NULL)
        {
            continue;
        }

        value[0] = '\0';
        sf_pb_fail(ctx, SF_PB_INVALID,
                   "\"%s\" may contain only ASCII letters, digits, "
                   "spaces and %s", path, extra + 1);
        return SF_PB_ERROR;
    }

    if (n > max) {
        value[0] = '\0';
        sf_pb_fail(ctx, SF_PB_INVALID,
                   "\"%s\" is too long (at most %zu characters)", path, max);
        return SF_PB_ERROR;
    }

    return SF_PB_SET;
}


static int
sf_pb_carrier(sf_pb_ctx_t *ctx)
{
    int       rc;
    char      path[SF_PB_PATH_LEN];
    json_t   *v;
    unsigned  i;

    for (i = 0; i < ctx->nsrc; i++) {
        v = sf_pb_get(ctx->src[i].obj, "carrier");

        if (v == NULL || sf_pb_blank(v)) {
            continue;
        }

        (void) snprintf(path, sizeof(path), "%scarrier", ctx->src[i].prefix);

        if (json_is_string(v)) {
            rc = sf_pb_text(ctx, v, path, 0, ctx->pb->carrier,
                            sizeof(ctx->pb->carrier));
            if (rc != SF_PB_SET) {
                return rc;
            }

            return sf_pb_charset(ctx, ctx->pb->carrier, path,
                                 SF_PB_CARRIER_CHARS, SF_PB_CARRIER_MAX);
        }

        if (!json_is_object(v)) {
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"%s\" must be a string or an object", path);
            return SF_PB_ERROR;
        }

        rc = sf_pb_carrier_object(ctx, v, ctx->src[i].prefix);

        if (rc == SF_PB_SET) {
            /* the flattened value, named as the object */
            return sf_pb_charset(ctx, ctx->pb->carrier, path,
                                 SF_PB_CARRIER_CHARS, SF_PB_CARRIER_MAX);
        }

        if (rc != SF_PB_ABSENT) {
            return rc;
        }
    }

    return SF_PB_ABSENT;
}


/* {code, service, alias} -> "code service", "code", "alias", "service" */

static int
sf_pb_carrier_object(sf_pb_ctx_t *ctx, json_t *obj, const char *prefix)
{
    int             rc;
    char            path[SF_PB_PATH_LEN];
    char            code[SF_PB_CARRIER_LEN], service[SF_PB_CARRIER_LEN];
    char            alias[SF_PB_CARRIER_LEN];
    size_t          n;
    sf_postback_t  *pb;

    pb = ctx->pb;

    (void) snprintf(path, sizeof(path), "%scarrier.", prefix);

    if (sf_pb_member(ctx, obj, path, "code", 0, code, sizeof(code))
        == SF_PB_ERROR
        || sf_pb_member(ctx, obj, path, "service", 0, service,
                        sizeof(service))
           == SF_PB_ERROR
        || sf_pb_member(ctx, obj, path, "alias", 0, alias, sizeof(alias))
           == SF_PB_ERROR)
    {
        return SF_PB_ERROR;
    }

    if (code[0] != '\0') {
        n = strlen(code);

        if (service[0] != '\0') {
            if (n + 1 + strlen(service) > sizeof(pb->carrier) - 1) {
                sf_pb_fail(ctx, SF_PB_INVALID,
                           "\"%scarrier\" is too long (at most %zu bytes)",
                           prefix, sizeof(pb->carrier) - 1);
                return SF_PB_ERROR;
            }

            rc = snprintf(pb->carrier, sizeof(pb->carrier), "%s %s", code,
                          service);

        } else {
            rc = snprintf(pb->carrier, sizeof(pb->carrier), "%s", code);
        }

    } else if (alias[0] != '\0') {
        rc = snprintf(pb->carrier, sizeof(pb->carrier), "%s", alias);

    } else if (service[0] != '\0') {
        rc = snprintf(pb->carrier, sizeof(pb->carrier), "%s", service);

    } else {
        return SF_PB_ABSENT;
    }

    return (rc > 0) ? SF_PB_SET : SF_PB_ABSENT;
}


/* "YYYY-MM-DD" then '\0', 'T', 't' or ' ': out gets 11 bytes; 1 if so */

static int
sf_pb_date(const char *s, char *out)
{
    int                   y, m, d, max;
    size_t                i;
    static const char     mask[] = "dddd-dd-dd";
    static const int      days[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    for (i = 0; i < 10; i++) {
        if (mask[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != '-') {
            return 0;
        }
    }

    if (s[10] != '\0' && s[10] != 'T' && s[10] != 't' && s[10] != ' ') {
        return 0;
    }

    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10
        + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');

    if (y < 1 || m < 1 || m > 12 || d < 1) {
        return 0;
    }

    max = days[m - 1];

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
        max = 29;
    }

    if (d > max) {
        return 0;
    }

    memcpy(out, s, 10);
    out[10] = '\0';

    return 1;
}


static int
sf_pb_ship_date(sf_pb_ctx_t *ctx)
{
    int             rc;
    char            text[SF_PB_TIMESTAMP_LEN];
    const char     *prefix;
    sf_postback_t  *pb;

    pb = ctx->pb;

    rc = sf_pb_find(ctx, "shipDate", 0, text, sizeof(text), &prefix);

    if (rc == SF_PB_ERROR) {
        return rc;
    }

    if (rc == SF_PB_SET) {
        if (!sf_pb_date(text, pb->ship_date)) {
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"%sshipDate\" must be a date (YYYY-MM-DD)",
                       prefix);
            return SF_PB_ERROR;
        }

        return rc;
    }

    if (strlen(pb->timestamp) >= 10
        && sf_pb_date(pb->timestamp, pb->ship_date))
    {
        return SF_PB_SET;
    }

    return SF_PB_ABSENT;
}


static int
sf_pb_items(sf_pb_ctx_t *ctx, char (*items)[SF_PB_ITEM_ID_LEN],
    unsigned max_items)
{
    int          rc, idx;
    char         path[SF_PB_PATH_LEN], id[SF_PB_ITEM_ID_LEN];
    size_t       i, n;
    json_t      *arr, *e, *v;
    unsigned     s, limit, count;
    const char  *prefix;

    arr = NULL;
    prefix = "";

    for (s = 0; s < ctx->nsrc; s++) {
        v = sf_pb_get(ctx->src[s].obj, "items");

        if (v == NULL) {
            continue;
        }

        if (!json_is_array(v)) {
            sf_pb_fail(ctx, SF_PB_INVALID, "\"%sitems\" must be an array",
                       ctx->src[s].prefix);
            return SF_PB_ERROR;
        }

        if (json_array_size(v) > 0) {
            arr = v;
            prefix = ctx->src[s].prefix;
            break;
        }
    }

    if (arr == NULL) {
        return SF_PB_ABSENT;
    }

    limit = SF_PB_MAX_ITEMS;

    if (items != NULL && max_items < limit) {
        limit = max_items;
    }

    n = json_array_size(arr);
    count = 0;

    for (i = 0; i < n; i++) {
        e = json_array_get(arr, i);

        if (json_is_object(e)) {
            rc = sf_pb_index_value(sf_pb_get(e, "shipmentIndex"), &idx);

            if (rc < 0) {
                sf_pb_fail(ctx, SF_PB_INVALID, "\"%sitems[%zu].shipmentIndex"
                           "\" must be a non-negative integer", prefix, i);
                return SF_PB_ERROR;
            }

            /* an item of another shipment of the order */

            if (rc > 0 && ctx->pb->shipment_index >= 0
                && idx != ctx->pb->shipment_index)
            {
                continue;
            }

            v = sf_pb_get(e, "sourceItemId");
            (void) snprintf(path, sizeof(path), "%sitems[%zu].sourceItemId",
                            prefix, i);

            if (v == NULL) {
                continue;
            }

        } else if (json_is_null(e)) {
            continue;

        } else if (json_is_string(e) || json_is_integer(e)) {
            v = e;
            (void) snprintf(path, sizeof(path), "%sitems[%zu]", prefix, i);

        } else {
            sf_pb_fail(ctx, SF_PB_INVALID, "\"%sitems[%zu]\" must be an "
                       "object, a string or an integer", prefix, i);
            return SF_PB_ERROR;
        }

        rc = sf_pb_text(ctx, v, path, SF_PB_INTEGER, id, sizeof(id));

        if (rc == SF_PB_ERROR) {
            return rc;
        }

        if (rc == SF_PB_ABSENT) {
            continue;
        }

        if (count == limit) {
            sf_pb_fail(ctx, SF_PB_INVALID,
                       "\"%sitems\": too many items (more than %u)",
                       prefix, limit);
            return SF_PB_ERROR;
        }

        if (items != NULL) {
            memcpy(items[count], id, strlen(id) + 1);
        }

        count++;
        ctx->pb->nitems = count;
    }

    return (count > 0) ? SF_PB_SET : SF_PB_ABSENT;
}


static int
sf_pb_messages(sf_pb_ctx_t *ctx)
{
    json_t       *v;
    sf_pb_buf_t   b;

    b.buf = ctx->pb->message;
    b.size = sizeof(ctx->pb->message);
    b.len = 0;
    b.full = 0;
    b.buf[0] = '\0';

    v = sf_pb_get(ctx->root, "message");

    if (v != NULL) {
        if (!json_is_string(v)) {
            sf_pb_fail(ctx, SF_PB_INVALID, "\"message\" must be a string");
            return SF_PB_ERROR;
        }

        sf_pb_append_piece(&b, json_string_value(v), json_string_length(v));
    }

    v = sf_pb_get(ctx->root, "error");

    if (v != NULL && sf_pb_message_entry(ctx, &b, v, "error") != SF_PB_SET) {
        return SF_PB_ERROR;
    }

    if (sf_pb_message_list(ctx, &b, "errors") == SF_PB_ERROR
        || sf_pb_message_list(ctx, &b, "errorsClean") == SF_PB_ERROR)
    {
        return SF_PB_ERROR;
    }

    return (b.len > 0) ? SF_PB_SET : SF_PB_ABSENT;
}


/* an array of strings or objects (a lone string is taken too) */

static int
sf_pb_message_list(sf_pb_ctx_t *ctx, sf_pb_buf_t *b, const char *key)
{
    char     path[SF_PB_PATH_LEN];
    size_t   i, n;
    json_t  *v, *e;

    v = sf_pb_get(ctx->root, key);

    if (v == NULL) {
        return SF_PB_ABSENT;
    }

    if (json_is_string(v)) {
        sf_pb_append_piece(b, json_string_value(v), json_string_length(v));
        return SF_PB_SET;
    }

    if (!json_is_array(v)) {
        sf_pb_fail(ctx, SF_PB_INVALID, "\"%s\" must be an array", key);
        return SF_PB_ERROR;
    }

    n = json_array_size(v);
    if (n > SF_PB_MAX_ERRORS) {
        n = SF_PB_MAX_ERRORS;
    }

    for (i = 0; i < n; i++) {
        e = json_array_get(v, i);

        if (json_is_null(e)) {
            continue;
        }

        (void) snprintf(path, sizeof(path), "%s[%zu]", key, i);

        if (sf_pb_message_entry(ctx, b, e, path) != SF_PB_SET) {
            return SF_PB_ERROR;
        }
    }

    return SF_PB_SET;
}


static int
sf_pb_message_entry(sf_pb_ctx_t *ctx, sf_pb_buf_t *b, json_t *v,
    const char *path)
{
    if (json_is_string(v)) {
        sf_pb_append_piece(b, json_string_value(v), json_string_length(v));
        return SF_PB_SET;
    }

    if (json_is_object(v)) {
        sf_pb_append_object(b, v);
        return SF_PB_SET;
    }

    sf_pb_fail(ctx, SF_PB_INVALID, "\"%s\" must be a string or an object",
               path);

    return SF_PB_ERROR;
}


/* "name: message - At path path", as the documented template renders */

static void
sf_pb_append_object(sf_pb_buf_t *b, json_t *obj)
{
    size_t       i, n[3];
    json_t      *v;
    const char  *s[3];
    static const char *const  keys[] = { "name", "message", "path" };

    for (i = 0; i < 3; i++) {
        v = sf_pb_get(obj, keys[i]);
        s[i] = NULL;
        n[i] = 0;

        if (v != NULL && json_is_string(v)) {
            s[i] = json_string_value(v);
            n[i] = json_string_length(v);
            sf_pb_trim(&s[i], &n[i]);
        }
    }

    sf_pb_append_piece(b, "", 0);

    if (n[0] > 0) {
        sf_pb_append(b, s[0], n[0]);
        sf_pb_append(b, ": ", 2);
    }

    if (n[1] > 0) {
        sf_pb_append(b, s[1], n[1]);

    } else {
        sf_pb_append(b, "Unknown error", sizeof("Unknown error") - 1);
    }

    if (n[2] > 0) {
        sf_pb_append(b, " - At path ", sizeof(" - At path ") - 1);
        sf_pb_append(b, s[2], n[2]);
    }
}


/*
 * Starts a new piece ("; " after the previous one) with s[0 .. n - 1]
 * trimmed; a blank s starts no piece, except n == 0 with s == "" which
 * only writes the separator, for sf_pb_append_object().
 */

static void
sf_pb_append_piece(sf_pb_buf_t *b, const char *s, size_t n)
{
    int  forced;

    forced = (n == 0 && s[0] == '\0');

    sf_pb_trim(&s, &n);

    if (n == 0 && !forced) {
        return;
    }

    if (b->len > 0) {
        sf_pb_append(b, "; ", 2);
    }

    sf_pb_append(b, s, n);
}


/* HTML-unescaped, control characters as spaces */

static void
sf_pb_append(sf_pb_buf_t *b, const char *s, size_t n)
{
    char    unit[4];
    size_t  i, k;

    for (i = 0; i < n && !b->full; /* void */ ) {
        i += sf_pb_unit((const unsigned char *) s + i, n - i, unit, &k);

        if (k == 1 && ((unsigned char) unit[0] < 0x20 || unit[0] == 0x7f)) {
            unit[0] = ' ';
        }

        sf_pb_append_unit(b, unit, k);
    }
}


/*
 * When a unit does not fit, whole characters are removed from the end
 * until "..." fits, and nothing more is appended.
 */

static void
sf_pb_append_unit(sf_pb_buf_t *b, const char *unit, size_t k)
{
    size_t  room;

    if (b->full) {
        return;
    }

    if (b->len + k <= b->size - 1) {
        memcpy(b->buf + b->len, unit, k);
        b->len += k;
        b->buf[b->len] = '\0';
        return;
    }

    b->full = 1;
    room = b->size - 1 - (sizeof(SF_PB_ELLIPSIS) - 1);

    while (b->len > room) {
        do {
            b->len--;
        } while (b->len > 0
                 && ((unsigned char) b->buf[b->len] & 0xc0) == 0x80);
    }

    memcpy(b->buf + b->len, SF_PB_ELLIPSIS, sizeof(SF_PB_ELLIPSIS));
    b->len += sizeof(SF_PB_ELLIPSIS) - 1;
}
