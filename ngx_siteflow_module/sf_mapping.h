
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_MAPPING_H_INCLUDED_
#define _SF_MAPPING_H_INCLUDED_


#include <stddef.h>

#include <jansson.h>


/*
 * The mapping file ("siteflow_mapping"): how PrintNow products, shipping
 * services and statuses become SiteFlow ones.  Pure C: libc and jansson
 * only, never nginx headers.  A mapping is loaded and fully validated
 * once (at configuration time), then only read: any number of threads
 * may use one mapping at the same time, and no function keeps state
 * outside the objects it is given.
 *
 * The file is one JSON object (duplicate keys are an error).  Keys:
 *
 *   source_order_id   optional template, default "{order_id}": the
 *                     SiteFlow orderData.sourceOrderId.  Placeholders:
 *                     {order_id}, {integration_id} (the order's).
 *   destination       optional string: SiteFlow destination.name, used
 *                     when the caller passes none.
 *   products          required, non-empty object.  Keys: a PrintNow
 *                     product_id (decimal digits, no leading zero), or
 *                     "integration:<integration_id>" (an item's
 *                     integration_id).  An item is looked up by its
 *                     product_id first, then by its integration_id.
 *                     Value, an object:
 *       sku           required template (the SiteFlow sku)
 *       description   optional template, default: the item's name
 *       components    required non-empty array of objects:
 *           code        required string (the SiteFlow component code)
 *           path        required template, an "http://" or "https://" URL
 *                       (see "URLs" below)
 *           attributes  optional object; each value is a template
 *                       (giving a JSON string), a number or a boolean
 *   carriers          optional object: PrintNow shipping_service ->
 *                     SiteFlow carrier alias (a string); "*" is the
 *                     fallback.  Without this key no carrier is sent;
 *                     with it, an order whose service is neither listed
 *                     nor covered by "*" is invalid.
 *   return_address    optional object of strings: name, address1, town,
 *                     postcode and isoCountry required; companyName,
 *                     address2, address3, state, phone, email optional.
 *   ship_to           optional object; its one key:
 *       name          template overriding shipTo.name (non-blank, no
 *                     control characters).  Placeholders:
 *                     {ship_first_name}, {ship_last_name}, {ship_company}
 *                     (the shipping address's first_name, last_name,
 *                     company), {customer_first_name},
 *                     {customer_last_name}, and {ship_address_label}: the
 *                     address's own "name", an address-book label
 *                     ("Default", "Home"), never used unless asked for.
 *                     When a placeholder has no value (missing, null or
 *                     blank) or the result is blank, the built-in rule
 *                     of sf_transform.h applies instead.
 *   statuses          optional object: SiteFlow event -> PrintNow status
 *                     name (a non-empty string).  Events: received,
 *                     printready, subbatch_scanned, batch_complete,
 *                     complete, cancelled, error, submission_error,
 *                     shipped.
 *   printnow          optional object: body overrides for the PrintNow
 *                     update calls.  Keys: shipped (PATCH .../shipped),
 *                     shipped_item (PATCH .../shipped/{itemId}), status,
 *                     status_item; each a flat object whose values are
 *                     templates (giving strings), numbers, booleans or
 *                     null.  Placeholders: {tracking_number},
 *                     {tracking_url}, {carrier}, {ship_date}, {status},
 *                     {comment}, {order_id}, and {item_id} in the two
 *                     _item calls.  See sf_mapping_printnow_body().
 *   defaults          optional object:
 *       options       object: PrintNow option name -> value for
 *                     {option:<name>} when an item lacks that option (or
 *                     its value is null or blank)
 *       phone         string: shipTo.phone when the shipping address has
 *                     no phone (some carriers, FedEx, require one)
 *
 * Templates are strings with placeholders in braces; "{{" and "}}" stand
 * for literal braces.  In products: {order_id}, {item_id}, {product_id},
 * {sku} (the rendered sku; not in sku itself), {quantity},
 * {option:<name>} (the value of the item's option of that exact name,
 * which may contain spaces and any Unicode but not "}") and
 * {option_integration_id:<name>} (that option's value_integration_id).
 * Templates are compiled into segments at load time.
 *
 * A placeholder without a value: the order is invalid when the template
 * is source_order_id, a sku or a path; an attribute, a description or a
 * printnow body field is omitted instead.
 *
 * URLs (component path): placeholder values are percent-encoded (every
 * byte but the RFC 3986 unreserved ALPHA DIGIT - . _ ~), except a
 * placeholder that starts the path: it must give a whole URL and is
 * inserted as is, only bytes never valid in a URL (controls, space,
 * non-ASCII and "<>\^`{|}) being percent-encoded.  Literal text must be
 * printable ASCII without spaces and the path must start with "http://"
 * or "https://" (or with a placeholder; the result is then checked).
 *
 * Unknown keys are errors everywhere except inside printnow.<call>
 * (those are the body's own fields) and attributes.
 */


/* limits; exceeding one is a load error naming it */
#define SF_MAPPING_MAX_SIZE         (4 * 1024 * 1024)  /* bytes of file */
#define SF_MAPPING_MAX_DEPTH        16      /* nesting of objects/arrays */
#define SF_MAPPING_MAX_PRODUCTS     10000
#define SF_MAPPING_MAX_COMPONENTS   16      /* per product */
#define SF_MAPPING_MAX_ATTRIBUTES   64      /* per component */
#define SF_MAPPING_MAX_CARRIERS     1000
#define SF_MAPPING_MAX_STATUSES     9       /* one per event */
#define SF_MAPPING_MAX_FIELDS       64      /* per printnow.<call> body */
#define SF_MAPPING_MAX_OPTIONS      256     /* defaults.options */
#define SF_MAPPING_MAX_KEY          256     /* bytes of any key */
#define SF_MAPPING_MAX_TEMPLATE     2048    /* bytes of a template/string */
#define SF_MAPPING_MAX_PLACEHOLDERS 32      /* per template */
#define SF_MAPPING_MAX_RENDER       8192    /* bytes of a rendered value */

/* err_size that holds any message of sf_mapping_load/parse uncut */
#define SF_MAPPING_ERR_SIZE         1024


/* template placeholders */
typedef enum {
    SF_TPL_LITERAL = 0,
    SF_TPL_ORDER_ID,
    SF_TPL_INTEGRATION_ID,
    SF_TPL_ITEM_ID,
    SF_TPL_PRODUCT_ID,
    SF_TPL_SKU,
    SF_TPL_QUANTITY,
    SF_TPL_OPTION,
    SF_TPL_OPTION_INTEGRATION_ID,
    SF_TPL_TRACKING_NUMBER,
    SF_TPL_TRACKING_URL,
    SF_TPL_CARRIER,
    SF_TPL_SHIP_DATE,
    SF_TPL_STATUS,
    SF_TPL_COMMENT,
    SF_TPL_SHIP_FIRST_NAME,        /* shipping_address.first_name */
    SF_TPL_SHIP_LAST_NAME,
    SF_TPL_SHIP_COMPANY,
    SF_TPL_SHIP_ADDRESS_LABEL,     /* shipping_address.name: "Default" */
    SF_TPL_CUSTOMER_FIRST_NAME,    /* customer.first_name */
    SF_TPL_CUSTOMER_LAST_NAME
} sf_tpl_var_t;


typedef struct {
    sf_tpl_var_t        var;
    size_t              len;
    const char         *text;      /* literal bytes, or the option name */
} sf_tpl_seg_t;


typedef struct {
    const sf_tpl_seg_t *segs;
    unsigned            nsegs;
    unsigned            url;       /* a component path */
    const char         *where;     /* key path in the file, for messages */
} sf_tpl_t;


typedef enum {
    SF_VAL_TEMPLATE = 0,
    SF_VAL_INTEGER,
    SF_VAL_REAL,
    SF_VAL_TRUE,
    SF_VAL_FALSE,
    SF_VAL_NULL
} sf_val_type_t;


/* an attribute or a printnow body field */
typedef struct {
    const char         *key;       /* NUL-terminated UTF-8 */
    sf_val_type_t       type;
    json_int_t          integer;
    double              real;
    sf_tpl_t            tpl;
} sf_map_field_t;


/* the JSON value of a field that is not a template (a new reference) */
json_t *sf_map_field_scalar(const sf_map_field_t *f);


typedef struct {
    const char         *key;       /* NUL-terminated UTF-8 */
    size_t              key_len;
    const char         *value;     /* NUL-terminated UTF-8 */
    size_t              value_len;
} sf_map_pair_t;


typedef struct {
    const char         *code;
    sf_tpl_t            path;
    sf_map_field_t     *attributes;
    unsigned            nattributes;
} sf_map_component_t;


typedef struct {
    const char         *key;       /* "12" or "integration:<id>" */
    size_t              key_len;
    sf_tpl_t            sku;
    sf_tpl_t            description;   /* nsegs 0: the item's name */
    sf_map_component_t *components;
    unsigned            ncomponents;
} sf_map_product_t;


typedef enum {
    SF_EVENT_RECEIVED = 0,
    SF_EVENT_PRINTREADY,
    SF_EVENT_SUBBATCH_SCANNED,
    SF_EVENT_BATCH_COMPLETE,
    SF_EVENT_COMPLETE,
    SF_EVENT_CANCELLED,
    SF_EVENT_ERROR,
    SF_EVENT_SUBMISSION_ERROR,
    SF_EVENT_SHIPPED,
    SF_EVENT_COUNT
} sf_mapping_event_t;


typedef enum {
    SF_PN_SHIPPED = 0,             /* PATCH /api/v2/order/{id}/shipped */
    SF_PN_SHIPPED_ITEM,            /* PATCH .../shipped/{itemId} */
    SF_PN_STATUS,                  /* PATCH .../status */
    SF_PN_STATUS_ITEM,             /* PATCH .../status/{itemId} */
    SF_PN_COUNT
} sf_pn_call_t;


typedef struct sf_map_block_s  sf_map_block_t;


/*
 * A loaded mapping.  Read-only once returned; the fields are public for
 * sf_transform.c and the accessors below, nothing else should need them.
 */
typedef struct {
    sf_tpl_t            source_order_id;
    const char         *destination;           /* or NULL */

    sf_map_product_t   *products;              /* sorted by key */
    unsigned            nproducts;

    unsigned            has_carriers;
    sf_map_pair_t      *carriers;              /* sorted, without "*" */
    unsigned            ncarriers;
    const char         *carrier_fallback;      /* "*", or NULL */

    sf_map_pair_t      *return_address;        /* SiteFlow keys, or NULL */
    unsigned            nreturn_address;

    sf_tpl_t            ship_to_name;          /* nsegs 0: built-in rule */

    const char         *statuses[SF_EVENT_COUNT];     /* NULL: unmapped */

    sf_map_field_t     *printnow[SF_PN_COUNT];
    unsigned            nprintnow[SF_PN_COUNT];
    unsigned            has_printnow[SF_PN_COUNT];

    sf_map_pair_t      *default_options;
    unsigned            ndefault_options;
    const char         *default_phone;         /* or NULL */

    sf_map_block_t     *blocks;                /* the memory of it all */
} sf_mapping_t;


/*
 * Loads and validates a mapping file (at most SF_MAPPING_MAX_SIZE bytes).
 * On failure returns NULL and puts one nginx-style message in err
 * (NUL-terminated, cut at a UTF-8 character boundary if err_size is too
 * small; SF_MAPPING_ERR_SIZE is always enough):
 *
 *   open() "<file>" failed (2: No such file or directory)
 *   invalid JSON in "<file>" at line L, column C: <jansson's text>
 *   "<file>": products."12": "sku" is required
 *   "<file>": unknown placeholder "{foo}" in products."12".components[0].path
 *
 * Keys and values quoted in messages are cut to 64 bytes, with '"' and
 * '\' escaped and control characters shown as '?'.
 */
sf_mapping_t *sf_mapping_load(const char *path, char *err, size_t err_size);

/* the same from text[0 .. len - 1]; name is the file name for messages */
sf_mapping_t *sf_mapping_parse(const char *text, size_t len,
    const char *name, char *err, size_t err_size);

/* NULL is allowed */
void sf_mapping_free(sf_mapping_t *m);


/* product by key ("12", "integration:X"); NULL if not mapped */
const sf_map_product_t *sf_mapping_product(const sf_mapping_t *m,
    const char *key, size_t len);

/*
 * The carrier alias for a PrintNow shipping_service (NULL or empty: none
 * given): the exact entry, else "*", else NULL.
 */
const char *sf_mapping_carrier(const sf_mapping_t *m, const char *service,
    size_t len);

/* the event for a SiteFlow event name (exact, as listed above), or -1 */
int sf_mapping_event(const char *name, size_t len);

/* the PrintNow status name for an event, or NULL when not mapped */
const char *sf_mapping_status(const sf_mapping_t *m, sf_mapping_event_t event);


/* values for the printnow section's placeholders: NUL-terminated, NULL
 * or "" when absent; {item_id} is only used by the _item calls */
typedef struct {
    const char         *tracking_number;
    const char         *tracking_url;
    const char         *carrier;
    const char         *ship_date;
    const char         *status;
    const char         *comment;
    const char         *order_id;
    const char         *item_id;
} sf_pn_vars_t;

/*
 * The body of a PrintNow update call as overridden by the mapping.
 * Returns 0 with *body set to a new object (the caller owns it) when the
 * mapping has printnow.<call>, or with *body NULL when it has not (the
 * caller then uses its built-in body).  A field whose template uses an
 * absent value (NULL or "") is omitted.  Returns -1 (and *body NULL) on
 * allocation failure, on invalid UTF-8 in a value or when a rendered
 * value would exceed SF_MAPPING_MAX_RENDER bytes.
 */
int sf_mapping_printnow_body(const sf_mapping_t *m, sf_pn_call_t call,
    const sf_pn_vars_t *vars, json_t **body);


/*
 * Template rendering, shared with sf_transform.c.  The callback gives
 * the value of one placeholder segment: it returns SF_TPL_OK with
 * *value and *len set, SF_TPL_ABSENT, or SF_TPL_FAIL (after recording
 * its own reason).  sf_tpl_render() writes the result to buf (NUL-
 * terminated, size bytes including the NUL) and returns SF_TPL_OK with
 * *len set, SF_TPL_ABSENT with *absent set to the first segment without
 * a value, SF_TPL_TOO_LONG, or SF_TPL_FAIL.  URL templates are encoded
 * as described above.
 */
#define SF_TPL_OK        0
#define SF_TPL_ABSENT    1
#define SF_TPL_TOO_LONG  2
#define SF_TPL_FAIL      3

typedef int (*sf_tpl_value_pt)(void *data, const sf_tpl_seg_t *seg,
    const char **value, size_t *len);

int sf_tpl_render(const sf_tpl_t *tpl, sf_tpl_value_pt get, void *data,
    char *buf, size_t size, size_t *len, const sf_tpl_seg_t **absent);


#endif /* _SF_MAPPING_H_INCLUDED_ */
