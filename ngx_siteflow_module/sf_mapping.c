
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * The mapping file: load, validate, compile templates (sf_mapping.h has
 * the format).  Everything a loaded mapping holds lives in a chain of
 * blocks owned by it, so freeing it is one walk; no jansson object
 * survives the load.  The first problem found (in file order) is
 * reported and the load stops there, as nginx does with its own
 * configuration.
 */


#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "sf_mapping.h"
#include "sf_json.h"


#define SF_MAP_PATH_LEN     512      /* a key path in a message */
#define SF_MAP_QUOTE_MAX    64       /* bytes of a key quoted in a message */
#define SF_MAP_NAME_MAX     200      /* bytes of the file name in one */
#define SF_MAP_QUOTE_LEN    (2 * SF_MAP_QUOTE_MAX + 4)
#define SF_MAP_NAME_LEN     (2 * SF_MAP_NAME_MAX + 4)
#define SF_MAP_BLOCK_SIZE   8192
#define SF_MAP_ALIGN        16
#define SF_MAP_BLOCK_HDR                                                     \
    ((sizeof(sf_map_block_t) + SF_MAP_ALIGN - 1)                             \
     & ~((size_t) SF_MAP_ALIGN - 1))

#define SF_MAP_SEGS         (2 * SF_MAPPING_MAX_PLACEHOLDERS + 1)

/* placeholder sets, one bit per sf_tpl_var_t */
#define SF_MAP_BIT(v)       (1u << (v))

#define SF_MAP_SOURCE_VARS                                                   \
    (SF_MAP_BIT(SF_TPL_ORDER_ID) | SF_MAP_BIT(SF_TPL_INTEGRATION_ID))

#define SF_MAP_SKU_VARS                                                      \
    (SF_MAP_BIT(SF_TPL_ORDER_ID) | SF_MAP_BIT(SF_TPL_ITEM_ID)                \
     | SF_MAP_BIT(SF_TPL_PRODUCT_ID) | SF_MAP_BIT(SF_TPL_QUANTITY)           \
     | SF_MAP_BIT(SF_TPL_OPTION) | SF_MAP_BIT(SF_TPL_OPTION_INTEGRATION_ID))

#define SF_MAP_ITEM_VARS    (SF_MAP_SKU_VARS | SF_MAP_BIT(SF_TPL_SKU))

#define SF_MAP_PN_VARS                                                       \
    (SF_MAP_BIT(SF_TPL_TRACKING_NUMBER) | SF_MAP_BIT(SF_TPL_TRACKING_URL)    \
     | SF_MAP_BIT(SF_TPL_CARRIER) | SF_MAP_BIT(SF_TPL_SHIP_DATE)             \
     | SF_MAP_BIT(SF_TPL_STATUS) | SF_MAP_BIT(SF_TPL_COMMENT)                \
     | SF_MAP_BIT(SF_TPL_ORDER_ID))

#define SF_MAP_PN_ITEM_VARS (SF_MAP_PN_VARS | SF_MAP_BIT(SF_TPL_ITEM_ID))

#define SF_MAP_SHIP_TO_VARS                                                  \
    (SF_MAP_BIT(SF_TPL_SHIP_FIRST_NAME) | SF_MAP_BIT(SF_TPL_SHIP_LAST_NAME)  \
     | SF_MAP_BIT(SF_TPL_SHIP_COMPANY)                                       \
     | SF_MAP_BIT(SF_TPL_SHIP_ADDRESS_LABEL)                                 \
     | SF_MAP_BIT(SF_TPL_CUSTOMER_FIRST_NAME)                                \
     | SF_MAP_BIT(SF_TPL_CUSTOMER_LAST_NAME))


#if defined(__GNUC__) || defined(__clang__)
#define SF_MAP_PRINTF(f, a)  __attribute__ ((format (printf, f, a)))
#else
#define SF_MAP_PRINTF(f, a)
#endif


struct sf_map_block_s {
    sf_map_block_t     *next;
    size_t              size;
    size_t              used;
};


typedef struct {
    sf_mapping_t       *m;
    char               *err;
    size_t              err_size;
    char                name[SF_MAP_NAME_LEN];    /* quoted file name */
} sf_map_ctx_t;


typedef struct {
    const char         *name;
    size_t              len;
    sf_tpl_var_t        var;
} sf_map_var_t;


typedef int (*sf_map_handler_pt)(sf_map_ctx_t *ctx, json_t *v);

typedef struct {
    const char         *key;
    sf_map_handler_pt   handler;
} sf_map_key_t;


static void sf_map_errno(sf_map_ctx_t *ctx, const char *call,
    const char *path, int err);
static int sf_map_error(sf_map_ctx_t *ctx, const char *fmt, ...)
    SF_MAP_PRINTF(2, 3);
static void sf_map_set_err(sf_map_ctx_t *ctx, const char *text);
static void sf_map_quote(char *dst, size_t size, const char *s, size_t len,
    size_t max, int escape);
static const char *sf_map_q(char *buf, const char *s);
static void sf_map_path(char *buf, const char *fmt, ...)
    SF_MAP_PRINTF(2, 3);
static void *sf_map_alloc(sf_map_ctx_t *ctx, size_t size);
static char *sf_map_strdup(sf_map_ctx_t *ctx, const char *s, size_t len);
static int sf_map_blank(const char *s, size_t len);
static int sf_map_country(const char *s, size_t len);
static int sf_map_string(sf_map_ctx_t *ctx, json_t *v, const char *path,
    const char **out, size_t *out_len);
static int sf_map_template(sf_map_ctx_t *ctx, const char *s, size_t len,
    const char *where, unsigned allowed, unsigned url, sf_tpl_t *tpl);
static int sf_map_check_url(sf_map_ctx_t *ctx, const sf_tpl_t *tpl);
static int sf_map_fields(sf_map_ctx_t *ctx, json_t *obj, const char *path,
    unsigned allowed, unsigned allow_null, unsigned max,
    sf_map_field_t **fields, unsigned *n);
static int sf_map_root(sf_map_ctx_t *ctx, json_t *root);
static int sf_map_source_order_id(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_destination(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_products(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_product_key(const char *key, size_t len);
static int sf_map_product(sf_map_ctx_t *ctx, json_t *v, const char *path,
    sf_map_product_t *p);
static int sf_map_component(sf_map_ctx_t *ctx, json_t *v, const char *path,
    sf_map_component_t *c);
static int sf_map_carriers(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_return_address(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_ship_to(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_statuses(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_printnow(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_defaults(sf_map_ctx_t *ctx, json_t *v);
static int sf_map_pair_cmp(const void *a, const void *b);
static int sf_map_product_cmp(const void *a, const void *b);
static int sf_map_key_cmp(const char *a, size_t alen, const char *b,
    size_t blen);


static const sf_map_var_t  sf_map_vars[] = {
    { "order_id", 8, SF_TPL_ORDER_ID },
    { "integration_id", 14, SF_TPL_INTEGRATION_ID },
    { "item_id", 7, SF_TPL_ITEM_ID },
    { "product_id", 10, SF_TPL_PRODUCT_ID },
    { "sku", 3, SF_TPL_SKU },
    { "quantity", 8, SF_TPL_QUANTITY },
    { "tracking_number", 15, SF_TPL_TRACKING_NUMBER },
    { "tracking_url", 12, SF_TPL_TRACKING_URL },
    { "carrier", 7, SF_TPL_CARRIER },
    { "ship_date", 9, SF_TPL_SHIP_DATE },
    { "status", 6, SF_TPL_STATUS },
    { "comment", 7, SF_TPL_COMMENT },
    { "ship_first_name", 15, SF_TPL_SHIP_FIRST_NAME },
    { "ship_last_name", 14, SF_TPL_SHIP_LAST_NAME },
    { "ship_company", 12, SF_TPL_SHIP_COMPANY },
    { "ship_address_label", 18, SF_TPL_SHIP_ADDRESS_LABEL },
    { "customer_first_name", 19, SF_TPL_CUSTOMER_FIRST_NAME },
    { "customer_last_name", 18, SF_TPL_CUSTOMER_LAST_NAME },
    { NULL, 0, SF_TPL_LITERAL }
};


static const sf_map_key_t  sf_map_keys[] = {
    { "source_order_id", sf_map_source_order_id },
    { "destination", sf_map_destination },
    { "products", sf_map_products },
    { "carriers", sf_map_carriers },
    { "return_address", sf_map_return_address },
    { "ship_to", sf_map_ship_to },
    { "statuses", sf_map_statuses },
    { "printnow", sf_map_printnow },
    { "defaults", sf_map_defaults },
    { NULL, NULL }
};


/* SiteFlow event names, in sf_mapping_event_t order */
static const char *const  sf_map_events[] = {
    "received", "printready", "subbatch_scanned", "batch_complete",
    "complete", "cancelled", "error", "submission_error", "shipped", NULL
};


/* printnow section keys, in sf_pn_call_t order */
static const char *const  sf_map_calls[] = {
    "shipped", "shipped_item", "status", "status_item", NULL
};


/* SiteFlow address keys in output order; the first five are required */
static const char *const  sf_map_address_keys[] = {
    "name", "companyName", "address1", "address2", "address3", "town",
    "state", "postcode", "isoCountry", "phone", "email", NULL
};

static const char *const  sf_map_address_required[] = {
    "name", "address1", "town", "postcode", "isoCountry", NULL
};


sf_mapping_t *
sf_mapping_load(const char *path, char *err, size_t err_size)
{
    int            fd;
    char          *buf;
    size_t         size, n;
    ssize_t        r;
    struct stat    st;
    sf_mapping_t  *m;
    sf_map_ctx_t   ctx;

    ctx.m = NULL;
    ctx.err = err;
    ctx.err_size = err_size;

    if (err_size > 0) {
        err[0] = '\0';
    }

    sf_map_quote(ctx.name, sizeof(ctx.name), path, strlen(path),
                 SF_MAP_NAME_MAX, 1);

    fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        sf_map_errno(&ctx, "open()", ctx.name, errno);
        return NULL;
    }

    if (fstat(fd, &st) == -1) {
        sf_map_errno(&ctx, "fstat()", ctx.name, errno);
        (void) close(fd);
        return NULL;
    }

    if (!S_ISREG(st.st_mode)) {
        (void) sf_map_error(&ctx, "not a regular file");
        (void) close(fd);
        return NULL;
    }

    if (st.st_size > SF_MAPPING_MAX_SIZE) {
        (void) sf_map_error(&ctx, "file too large (%lld bytes, limit %d)",
                            (long long) st.st_size, SF_MAPPING_MAX_SIZE);
        (void) close(fd);
        return NULL;
    }

    /* one byte more than announced, to notice a file growing meanwhile */

    size = (size_t) st.st_size + 1;

    buf = malloc(size);
    if (buf == NULL) {
        (void) sf_map_error(&ctx, "out of memory");
        (void) close(fd);
        return NULL;
    }

    n = 0;

    while (n < size) {
        r = read(fd, buf + n, size - n);

        if (r == -1) {
            if (errno == EINTR) {
                continue;
            }

            sf_map_errno(&ctx, "read()", ctx.name, errno);
            free(buf);
            (void) close(fd);
            return NULL;
        }

        if (r == 0) {
            break;
        }

        n += (size_t) r;
    }

    (void) close(fd);

    if (n == size) {
        (void) sf_map_error(&ctx, "file changed while being read");
        free(buf);
        return NULL;
    }

    m = sf_mapping_parse(buf, n, path, err, err_size);

    free(buf);

    return m;
}


sf_mapping_t *
sf_mapping_parse(const char *text, size_t len, const char *name, char *err,
    size_t err_size)
{
    char           msg[SF_MAPPING_ERR_SIZE];
    char           reason[2 * JSON_ERROR_TEXT_LENGTH + 4];
    size_t         line, column, bom;
    json_t        *root;
    json_error_t   jerr;
    sf_mapping_t  *m;
    sf_map_ctx_t   ctx;

    ctx.m = NULL;
    ctx.err = err;
    ctx.err_size = err_size;

    if (err_size > 0) {
        err[0] = '\0';
    }

    if (name == NULL) {
        name = "mapping";
    }

    sf_map_quote(ctx.name, sizeof(ctx.name), name, strlen(name),
                 SF_MAP_NAME_MAX, 1);

    if (text == NULL && len > 0) {
        (void) sf_map_error(&ctx, "no mapping text");
        return NULL;
    }

    if (text != NULL) {
        /* a file saved with a byte order mark (Windows Notepad) */
        bom = sf_json_bom(text, len);
        text += bom;
        len -= bom;
    }

    if (len > SF_MAPPING_MAX_SIZE) {
        (void) sf_map_error(&ctx, "file too large (%zu bytes, limit %d)",
                            len, SF_MAPPING_MAX_SIZE);
        return NULL;
    }

    if (sf_json_too_deep((const unsigned char *) text, len,
                         SF_MAPPING_MAX_DEPTH, &line, &column))
    {
        (void) snprintf(msg, sizeof(msg),
                        "invalid JSON in \"%s\" at line %zu, column %zu: "
                        "nesting too deep (more than %d levels)",
                        ctx.name, line, column, SF_MAPPING_MAX_DEPTH);
        sf_map_set_err(&ctx, msg);
        return NULL;
    }

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            (void) sf_map_error(&ctx, "out of memory");
            return NULL;
        }

        sf_map_quote(reason, sizeof(reason), jerr.text,
                     strnlen(jerr.text, sizeof(jerr.text)),
                     sizeof(jerr.text), 0);

        if (jerr.line >= 1 && jerr.column >= 0) {
            (void) snprintf(msg, sizeof(msg),
                            "invalid JSON in \"%s\" at line %d, column %d: "
                            "%s", ctx.name, jerr.line, jerr.column, reason);

        } else {
            (void) snprintf(msg, sizeof(msg), "invalid JSON in \"%s\": %s",
                            ctx.name, reason);
        }

        sf_map_set_err(&ctx, msg);
        return NULL;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        (void) sf_map_error(&ctx, "the mapping must be a JSON object");
        return NULL;
    }

    m = calloc(1, sizeof(sf_mapping_t));
    if (m == NULL) {
        json_decref(root);
        (void) sf_map_error(&ctx, "out of memory");
        return NULL;
    }

    ctx.m = m;

    if (sf_map_root(&ctx, root) != 0) {
        json_decref(root);
        sf_mapping_free(m);
        return NULL;
    }

    json_decref(root);

    return m;
}


json_t *
sf_map_field_scalar(const sf_map_field_t *f)
{
    switch (f->type) {

    case SF_VAL_INTEGER:
        return json_integer(f->integer);

    case SF_VAL_REAL:
        return json_real(f->real);

    case SF_VAL_TRUE:
        return json_true();

    case SF_VAL_FALSE:
        return json_false();

    default: /* SF_VAL_NULL; a template is rendered by its caller */
        return json_null();
    }
}


void
sf_mapping_free(sf_mapping_t *m)
{
    sf_map_block_t  *b, *next;

    if (m == NULL) {
        return;
    }

    for (b = m->blocks; b != NULL; b = next) {
        next = b->next;
        free(b);
    }

    free(m);
}


const sf_map_product_t *
sf_mapping_product(const sf_mapping_t *m, const char *key, size_t len)
{
    int       rc;
    unsigned  lo, hi, mid;

    lo = 0;
    hi = m->nproducts;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        rc = sf_map_key_cmp(key, len, m->products[mid].key,
                            m->products[mid].key_len);

        if (rc == 0) {
            return &m->products[mid];
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return NULL;
}


const char *
sf_mapping_carrier(const sf_mapping_t *m, const char *service, size_t len)
{
    int       rc;
    unsigned  lo, hi, mid;

    if (service == NULL || len == 0) {
        return m->carrier_fallback;
    }

    lo = 0;
    hi = m->ncarriers;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        rc = sf_map_key_cmp(service, len, m->carriers[mid].key,
                            m->carriers[mid].key_len);

        if (rc == 0) {
            return m->carriers[mid].value;
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return m->carrier_fallback;
}


int
sf_mapping_event(const char *name, size_t len)
{
    int  i;

    for (i = 0; sf_map_events[i] != NULL; i++) {
        if (strlen(sf_map_events[i]) == len
            && memcmp(sf_map_events[i], name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


const char *
sf_mapping_status(const sf_mapping_t *m, sf_mapping_event_t event)
{
    if ((unsigned) event >= SF_EVENT_COUNT) {
        return NULL;
    }

    return m->statuses[event];
}


/* messages */

static void
sf_map_errno(sf_map_ctx_t *ctx, const char *call, const char *path, int err)
{
    char        msg[SF_MAPPING_ERR_SIZE], text[128];
    const char  *p;

    /* strerror() is not thread-safe; strerror_r() comes in two kinds */

#if defined(_GNU_SOURCE)
    p = strerror_r(err, text, sizeof(text));
#else
    p = (strerror_r(err, text, sizeof(text)) == 0) ? text : "unknown error";
#endif

    (void) snprintf(msg, sizeof(msg), "%s \"%s\" failed (%d: %s)",
                    call, path, err, p);

    sf_map_set_err(ctx, msg);
}


/* '"<file>": ' and the formatted text; returns -1 for "return ..." */

static int
sf_map_error(sf_map_ctx_t *ctx, const char *fmt, ...)
{
    int      n;
    char     msg[SF_MAPPING_ERR_SIZE];
    va_list  args;

    n = snprintf(msg, sizeof(msg), "\"%s\": ", ctx->name);

    if (n < 0 || (size_t) n >= sizeof(msg)) {
        n = 0;
    }

    va_start(args, fmt);
    (void) vsnprintf(msg + n, sizeof(msg) - n, fmt, args);
    va_end(args);

    sf_map_set_err(ctx, msg);

    return -1;
}


/* copies a message into err, cut at a UTF-8 character boundary */

static void
sf_map_set_err(sf_map_ctx_t *ctx, const char *text)
{
    size_t  len;

    if (ctx->err_size == 0) {
        return;
    }

    len = strlen(text);

    if (len >= ctx->err_size) {
        len = ctx->err_size - 1;

        while (len > 0 && ((unsigned char) text[len] & 0xc0) == 0x80) {
            len--;
        }
    }

    memcpy(ctx->err, text, len);
    ctx->err[len] = '\0';
}


/*
 * Copies s[0 .. len - 1] for a message: at most max source bytes, cut at
 * a character boundary and followed by "..." when longer; control
 * characters and invalid UTF-8 become '?', and with escape '"' and '\'
 * get a backslash.  size must be at least 2 * max + 4.
 */

static void
sf_map_quote(char *dst, size_t size, const char *s, size_t len, size_t max,
    int escape)
{
    size_t          i, k, n, step;
    unsigned char   c;

    n = 0;

    for (i = 0; i < len; /* void */ ) {
        c = (unsigned char) s[i];

        if (c < 0x20 || c == 0x7f) {
            k = 0;

        } else {
            k = sf_json_utf8((const unsigned char *) s + i, len - i, NULL);
        }

        step = (k != 0) ? k : 1;

        if (i + step > max || n + 2 * step + 4 > size) {
            break;
        }

        if (k == 0) {
            dst[n++] = '?';
            i++;
            continue;
        }

        if (escape && (c == '"' || c == '\\')) {
            dst[n++] = '\\';
        }

        memcpy(dst + n, s + i, k);
        n += k;
        i += k;
    }

    if (i < len && n + 4 <= size) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }

    dst[n] = '\0';
}


/* a key for a message, quoted into buf of SF_MAP_QUOTE_LEN bytes */

static const char *
sf_map_q(char *buf, const char *s)
{
    sf_map_quote(buf, SF_MAP_QUOTE_LEN, s, strlen(s), SF_MAP_QUOTE_MAX, 1);

    return buf;
}


/* a key path for messages, into buf of SF_MAP_PATH_LEN bytes */

static void
sf_map_path(char *buf, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    (void) vsnprintf(buf, SF_MAP_PATH_LEN, fmt, args);
    va_end(args);
}


/* memory */

static void *
sf_map_alloc(sf_map_ctx_t *ctx, size_t size)
{
    char            *p;
    size_t           cap;
    sf_map_block_t  *b;

    size = (size + SF_MAP_ALIGN - 1) & ~((size_t) SF_MAP_ALIGN - 1);

    if (size == 0) {
        size = SF_MAP_ALIGN;
    }

    b = ctx->m->blocks;

    if (b == NULL || b->size - b->used < size) {
        cap = (size > SF_MAP_BLOCK_SIZE) ? size : SF_MAP_BLOCK_SIZE;

        b = malloc(SF_MAP_BLOCK_HDR + cap);
        if (b == NULL) {
            (void) sf_map_error(ctx, "out of memory");
            return NULL;
        }

        b->size = cap;
        b->used = 0;

        /* a big block goes second so that the current one stays in use */

        if (cap > SF_MAP_BLOCK_SIZE && ctx->m->blocks != NULL) {
            b->next = ctx->m->blocks->next;
            ctx->m->blocks->next = b;

        } else {
            b->next = ctx->m->blocks;
            ctx->m->blocks = b;
        }
    }

    p = (char *) b + SF_MAP_BLOCK_HDR + b->used;
    b->used += size;

    memset(p, 0, size);

    return p;
}


static char *
sf_map_strdup(sf_map_ctx_t *ctx, const char *s, size_t len)
{
    char  *p;

    p = sf_map_alloc(ctx, len + 1);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, s, len);
    p[len] = '\0';

    return p;
}


static int
sf_map_blank(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
            return 0;
        }
    }

    return 1;
}


/* ISO 3166-1 alpha-2 or alpha-3 */

static int
sf_map_country(const char *s, size_t len)
{
    size_t  i;

    if (len != 2 && len != 3) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) {
            return 0;
        }
    }

    return 1;
}


/* a non-blank string of at most SF_MAPPING_MAX_TEMPLATE bytes, copied */

static int
sf_map_string(sf_map_ctx_t *ctx, json_t *v, const char *path,
    const char **out, size_t *out_len)
{
    size_t       len;
    const char  *s;

    if (!json_is_string(v)) {
        return sf_map_error(ctx, "%s must be a string", path);
    }

    s = json_string_value(v);
    len = json_string_length(v);

    if (sf_map_blank(s, len)) {
        return sf_map_error(ctx, "%s must not be empty", path);
    }

    if (len > SF_MAPPING_MAX_TEMPLATE) {
        return sf_map_error(ctx, "%s is too long (%zu bytes, limit %d)",
                            path, len, SF_MAPPING_MAX_TEMPLATE);
    }

    *out = sf_map_strdup(ctx, s, len);
    if (*out == NULL) {
        return -1;
    }

    if (out_len != NULL) {
        *out_len = len;
    }

    return 0;
}


/* templates */

static int
sf_map_template(sf_map_ctx_t *ctx, const char *s, size_t len,
    const char *where, unsigned allowed, unsigned url, sf_tpl_t *tpl)
{
    char             lit[SF_MAPPING_MAX_TEMPLATE + 1];
    char             q[SF_MAP_QUOTE_LEN];
    char            *text;
    size_t           i, j, n, start, nlen, pfx;
    size_t           offs[SF_MAP_SEGS];
    unsigned         nsegs, nph, k;
    const char      *name;
    sf_tpl_seg_t     segs[SF_MAP_SEGS];
    sf_tpl_seg_t    *out;
    sf_tpl_var_t     var;

    if (len > SF_MAPPING_MAX_TEMPLATE) {
        return sf_map_error(ctx, "%s is too long (%zu bytes, limit %d)",
                            where, len, SF_MAPPING_MAX_TEMPLATE);
    }

    n = 0;
    start = 0;
    nsegs = 0;
    nph = 0;

    for (i = 0; i < len; /* void */ ) {

        if (s[i] == '{' && i + 1 < len && s[i + 1] == '{') {
            lit[n++] = '{';
            i += 2;
            continue;
        }

        if (s[i] == '}') {
            lit[n++] = '}';
            i += (i + 1 < len && s[i + 1] == '}') ? 2 : 1;
            continue;
        }

        if (s[i] != '{') {
            lit[n++] = s[i++];
            continue;
        }

        /* a placeholder */

        for (j = i + 1; j < len && s[j] != '}'; j++) {
            /* void */
        }

        if (j == len) {
            sf_map_quote(q, sizeof(q), s + i, len - i, SF_MAP_QUOTE_MAX, 1);
            return sf_map_error(ctx, "unterminated placeholder \"%s\" in %s",
                                q, where);
        }

        sf_map_quote(q, sizeof(q), s + i, j + 1 - i, SF_MAP_QUOTE_MAX, 1);

        if (++nph > SF_MAPPING_MAX_PLACEHOLDERS) {
            return sf_map_error(ctx, "too many placeholders in %s (limit %d)",
                                where, SF_MAPPING_MAX_PLACEHOLDERS);
        }

        if (n > start) {
            segs[nsegs].var = SF_TPL_LITERAL;
            segs[nsegs].len = n - start;
            offs[nsegs++] = start;
        }

        name = s + i + 1;
        nlen = j - i - 1;
        var = SF_TPL_LITERAL;
        pfx = 0;

        for (k = 0; sf_map_vars[k].name != NULL; k++) {
            if (sf_map_vars[k].len == nlen
                && memcmp(sf_map_vars[k].name, name, nlen) == 0)
            {
                var = sf_map_vars[k].var;
                break;
            }
        }

        if (var == SF_TPL_LITERAL) {
            if (nlen >= 7 && memcmp(name, "option:", 7) == 0) {
                var = SF_TPL_OPTION;
                pfx = 7;

            } else if (nlen >= 22
                       && memcmp(name, "option_integration_id:", 22) == 0)
            {
                var = SF_TPL_OPTION_INTEGRATION_ID;
                pfx = 22;

            } else {
                return sf_map_error(ctx, "unknown placeholder \"%s\" in %s",
                                    q, where);
            }

            if (nlen == pfx) {
                return sf_map_error(ctx, "empty option name in placeholder "
                                    "\"%s\" in %s", q, where);
            }

            if (nlen - pfx > SF_MAPPING_MAX_KEY) {
                return sf_map_error(ctx, "option name too long in "
                                    "placeholder \"%s\" in %s (limit %d "
                                    "bytes)", q, where, SF_MAPPING_MAX_KEY);
            }
        }

        if ((allowed & SF_MAP_BIT(var)) == 0) {
            return sf_map_error(ctx, "placeholder \"%s\" cannot be used in %s",
                                q, where);
        }

        /* the option name is kept with the literal text */

        segs[nsegs].var = var;
        segs[nsegs].len = nlen - pfx;
        offs[nsegs++] = n;

        memcpy(lit + n, name + pfx, nlen - pfx);
        n += nlen - pfx;
        start = n;

        i = j + 1;
    }

    if (n > start) {
        segs[nsegs].var = SF_TPL_LITERAL;
        segs[nsegs].len = n - start;
        offs[nsegs++] = start;
    }

    text = sf_map_strdup(ctx, lit, n);
    if (text == NULL) {
        return -1;
    }

    out = sf_map_alloc(ctx, nsegs * sizeof(sf_tpl_seg_t));
    if (out == NULL) {
        return -1;
    }

    for (k = 0; k < nsegs; k++) {
        out[k].var = segs[k].var;
        out[k].len = segs[k].len;
        out[k].text = text + offs[k];
    }

    tpl->segs = out;
    tpl->nsegs = nsegs;
    tpl->url = url;

    tpl->where = sf_map_strdup(ctx, where, strlen(where));
    if (tpl->where == NULL) {
        return -1;
    }

    if (url) {
        return sf_map_check_url(ctx, tpl);
    }

    return 0;
}


static int
sf_map_check_url(sf_map_ctx_t *ctx, const sf_tpl_t *tpl)
{
    size_t               i;
    unsigned             k;
    unsigned char        c;
    const sf_tpl_seg_t  *seg;

    if (tpl->nsegs == 0) {
        return sf_map_error(ctx, "%s must be an http:// or https:// URL",
                            tpl->where);
    }

    seg = &tpl->segs[0];

    if (seg->var == SF_TPL_LITERAL
        && !(seg->len > 7 && strncasecmp(seg->text, "http://", 7) == 0)
        && !(seg->len > 8 && strncasecmp(seg->text, "https://", 8) == 0))
    {
        return sf_map_error(ctx, "%s must be an http:// or https:// URL",
                            tpl->where);
    }

    for (k = 0; k < tpl->nsegs; k++) {
        seg = &tpl->segs[k];

        if (seg->var != SF_TPL_LITERAL) {
            continue;
        }

        for (i = 0; i < seg->len; i++) {
            c = (unsigned char) seg->text[i];

            if (c <= 0x20 || c >= 0x7f) {
                return sf_map_error(ctx, "%s: space, control or non-ASCII "
                                    "character in the URL (percent-encode "
                                    "it)", tpl->where);
            }
        }
    }

    return 0;
}


/* attributes and printnow bodies */

static int
sf_map_fields(sf_map_ctx_t *ctx, json_t *obj, const char *path,
    unsigned allowed, unsigned allow_null, unsigned max,
    sf_map_field_t **fields, unsigned *n)
{
    char             where[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    size_t           klen;
    json_t          *v;
    unsigned         i;
    const char      *key;
    sf_map_field_t  *f;

    if (!json_is_object(obj)) {
        return sf_map_error(ctx, "%s must be an object", path);
    }

    if (json_object_size(obj) > max) {
        return sf_map_error(ctx, "%s: too many fields (%zu, limit %u)",
                            path, json_object_size(obj), max);
    }

    *n = 0;
    *fields = NULL;

    if (json_object_size(obj) == 0) {
        return 0;
    }

    f = sf_map_alloc(ctx, json_object_size(obj) * sizeof(sf_map_field_t));
    if (f == NULL) {
        return -1;
    }

    i = 0;

    json_object_foreach(obj, key, v) {
        klen = strlen(key);

        sf_map_path(where, "%s.\"%s\"", path, sf_map_q(q, key));

        if (klen > SF_MAPPING_MAX_KEY) {
            return sf_map_error(ctx, "%s: key too long (%zu bytes, limit %d)",
                                where, klen, SF_MAPPING_MAX_KEY);
        }

        f[i].key = sf_map_strdup(ctx, key, klen);
        if (f[i].key == NULL) {
            return -1;
        }

        switch (json_typeof(v)) {

        case JSON_STRING:
            f[i].type = SF_VAL_TEMPLATE;

            if (sf_map_template(ctx, json_string_value(v),
                                json_string_length(v), where, allowed, 0,
                                &f[i].tpl)
                != 0)
            {
                return -1;
            }

            break;

        case JSON_INTEGER:
            f[i].type = SF_VAL_INTEGER;
            f[i].integer = json_integer_value(v);
            break;

        case JSON_REAL:
            f[i].type = SF_VAL_REAL;
            f[i].real = json_real_value(v);
            break;

        case JSON_TRUE:
            f[i].type = SF_VAL_TRUE;
            break;

        case JSON_FALSE:
            f[i].type = SF_VAL_FALSE;
            break;

        case JSON_NULL:
            if (allow_null) {
                f[i].type = SF_VAL_NULL;
                break;
            }

            /* fall through */

        default:
            return sf_map_error(ctx, "%s must be a string, number%s", where,
                                allow_null ? ", boolean or null"
                                           : " or boolean");
        }

        i++;
    }

    *fields = f;
    *n = i;

    return 0;
}


/* the sections */

static int
sf_map_root(sf_map_ctx_t *ctx, json_t *root)
{
    char                 q[SF_MAP_QUOTE_LEN];
    json_t              *v;
    unsigned             i;
    const char          *key;
    static const char    dflt[] = "{order_id}";

    json_object_foreach(root, key, v) {

        for (i = 0; sf_map_keys[i].key != NULL; i++) {
            if (strcmp(sf_map_keys[i].key, key) == 0) {
                break;
            }
        }

        if (sf_map_keys[i].key == NULL) {
            return sf_map_error(ctx, "unknown top-level key \"%s\"",
                                sf_map_q(q, key));
        }

        if (sf_map_keys[i].handler(ctx, v) != 0) {
            return -1;
        }
    }

    if (ctx->m->products == NULL) {
        return sf_map_error(ctx, "\"products\" is required");
    }

    if (ctx->m->source_order_id.segs == NULL) {
        return sf_map_template(ctx, dflt, sizeof(dflt) - 1,
                               "source_order_id", SF_MAP_SOURCE_VARS, 0,
                               &ctx->m->source_order_id);
    }

    return 0;
}


static int
sf_map_source_order_id(sf_map_ctx_t *ctx, json_t *v)
{
    size_t       i, len;
    const char  *s;

    if (!json_is_string(v)) {
        return sf_map_error(ctx, "source_order_id must be a string");
    }

    if (sf_map_blank(json_string_value(v), json_string_length(v))) {
        return sf_map_error(ctx, "source_order_id must not be empty");
    }

    s = json_string_value(v);
    len = json_string_length(v);

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return sf_map_error(ctx, "source_order_id must not contain "
                                "control characters");
        }
    }

    return sf_map_template(ctx, s, len, "source_order_id",
                           SF_MAP_SOURCE_VARS, 0, &ctx->m->source_order_id);
}


static int
sf_map_destination(sf_map_ctx_t *ctx, json_t *v)
{
    return sf_map_string(ctx, v, "destination", &ctx->m->destination, NULL);
}


static int
sf_map_products(sf_map_ctx_t *ctx, json_t *v)
{
    char               path[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    size_t             klen, n;
    json_t            *p;
    unsigned           i;
    const char        *key;
    sf_map_product_t  *products;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "products must be an object");
    }

    n = json_object_size(v);

    if (n == 0) {
        return sf_map_error(ctx, "products must not be empty");
    }

    if (n > SF_MAPPING_MAX_PRODUCTS) {
        return sf_map_error(ctx, "products: too many products (%zu, "
                            "limit %d)", n, SF_MAPPING_MAX_PRODUCTS);
    }

    products = sf_map_alloc(ctx, n * sizeof(sf_map_product_t));
    if (products == NULL) {
        return -1;
    }

    i = 0;

    json_object_foreach(v, key, p) {
        klen = strlen(key);

        sf_map_path(path, "products.\"%s\"", sf_map_q(q, key));

        if (klen > SF_MAPPING_MAX_KEY) {
            return sf_map_error(ctx, "%s: key too long (%zu bytes, limit %d)",
                                path, klen, SF_MAPPING_MAX_KEY);
        }

        if (!sf_map_product_key(key, klen)) {
            return sf_map_error(ctx, "%s: the key must be a PrintNow "
                                "product_id (digits) or "
                                "\"integration:<integration_id>\"", path);
        }

        products[i].key = sf_map_strdup(ctx, key, klen);
        if (products[i].key == NULL) {
            return -1;
        }

        products[i].key_len = klen;

        if (sf_map_product(ctx, p, path, &products[i]) != 0) {
            return -1;
        }

        i++;
    }

    qsort(products, i, sizeof(sf_map_product_t), sf_map_product_cmp);

    ctx->m->products = products;
    ctx->m->nproducts = i;

    return 0;
}


/* "12" (no leading zero, at most 19 digits) or "integration:<id>" */

static int
sf_map_product_key(const char *key, size_t len)
{
    size_t  i;

    if (len > 12 && memcmp(key, "integration:", 12) == 0) {
        return 1;
    }

    if (len == 0 || len > 19 || (key[0] == '0' && len > 1)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (key[i] < '0' || key[i] > '9') {
            return 0;
        }
    }

    return 1;
}


static int
sf_map_product(sf_map_ctx_t *ctx, json_t *v, const char *path,
    sf_map_product_t *p)
{
    char         where[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    size_t       n;
    json_t      *sku, *desc, *comps, *c;
    unsigned     i;
    const char  *key;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "%s must be an object", path);
    }

    json_object_foreach(v, key, c) {
        if (strcmp(key, "sku") != 0 && strcmp(key, "description") != 0
            && strcmp(key, "components") != 0)
        {
            return sf_map_error(ctx, "%s: unknown key \"%s\"", path,
                                sf_map_q(q, key));
        }
    }

    sku = json_object_get(v, "sku");

    if (sku == NULL) {
        return sf_map_error(ctx, "%s: \"sku\" is required", path);
    }

    sf_map_path(where, "%s.sku", path);

    if (!json_is_string(sku)) {
        return sf_map_error(ctx, "%s must be a string", where);
    }

    if (sf_map_blank(json_string_value(sku), json_string_length(sku))) {
        return sf_map_error(ctx, "%s must not be empty", where);
    }

    if (sf_map_template(ctx, json_string_value(sku), json_string_length(sku),
                        where, SF_MAP_SKU_VARS, 0, &p->sku)
        != 0)
    {
        return -1;
    }

    comps = json_object_get(v, "components");

    if (comps == NULL) {
        return sf_map_error(ctx, "%s: \"components\" is required", path);
    }

    sf_map_path(where, "%s.components", path);

    n = json_array_size(comps);

    if (!json_is_array(comps) || n == 0) {
        return sf_map_error(ctx, "%s must be a non-empty array", where);
    }

    if (n > SF_MAPPING_MAX_COMPONENTS) {
        return sf_map_error(ctx, "%s: too many components (%zu, limit %d)",
                            where, n, SF_MAPPING_MAX_COMPONENTS);
    }

    p->components = sf_map_alloc(ctx, n * sizeof(sf_map_component_t));
    if (p->components == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        sf_map_path(where, "%s.components[%u]", path, i);

        if (sf_map_component(ctx, json_array_get(comps, i), where,
                             &p->components[i])
            != 0)
        {
            return -1;
        }
    }

    p->ncomponents = n;

    desc = json_object_get(v, "description");

    if (desc != NULL) {
        sf_map_path(where, "%s.description", path);

        if (!json_is_string(desc)) {
            return sf_map_error(ctx, "%s must be a string", where);
        }

        if (sf_map_template(ctx, json_string_value(desc),
                            json_string_length(desc), where,
                            SF_MAP_ITEM_VARS, 0, &p->description)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
sf_map_component(sf_map_ctx_t *ctx, json_t *v, const char *path,
    sf_map_component_t *c)
{
    char         where[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    json_t      *code, *pth, *attrs, *x;
    const char  *key;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "%s must be an object", path);
    }

    json_object_foreach(v, key, x) {
        if (strcmp(key, "code") != 0 && strcmp(key, "path") != 0
            && strcmp(key, "attributes") != 0)
        {
            return sf_map_error(ctx, "%s: unknown key \"%s\"", path,
                                sf_map_q(q, key));
        }
    }

    code = json_object_get(v, "code");

    if (code == NULL) {
        return sf_map_error(ctx, "%s: \"code\" is required", path);
    }

    sf_map_path(where, "%s.code", path);

    if (sf_map_string(ctx, code, where, &c->code, NULL) != 0) {
        return -1;
    }

    pth = json_object_get(v, "path");

    if (pth == NULL) {
        return sf_map_error(ctx, "%s: \"path\" is required", path);
    }

    sf_map_path(where, "%s.path", path);

    if (!json_is_string(pth)) {
        return sf_map_error(ctx, "%s must be a string", where);
    }

    if (sf_map_template(ctx, json_string_value(pth), json_string_length(pth),
                        where, SF_MAP_ITEM_VARS, 1, &c->path)
        != 0)
    {
        return -1;
    }

    attrs = json_object_get(v, "attributes");

    if (attrs != NULL) {
        sf_map_path(where, "%s.attributes", path);

        if (sf_map_fields(ctx, attrs, where, SF_MAP_ITEM_VARS, 0,
                          SF_MAPPING_MAX_ATTRIBUTES, &c->attributes,
                          &c->nattributes)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
sf_map_carriers(sf_map_ctx_t *ctx, json_t *v)
{
    char            path[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    size_t          klen, n;
    json_t         *c;
    unsigned        i;
    const char     *key, *alias;
    sf_map_pair_t  *pairs;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "carriers must be an object");
    }

    n = json_object_size(v);

    if (n > SF_MAPPING_MAX_CARRIERS) {
        return sf_map_error(ctx, "carriers: too many carriers (%zu, "
                            "limit %d)", n, SF_MAPPING_MAX_CARRIERS);
    }

    pairs = sf_map_alloc(ctx, n * sizeof(sf_map_pair_t));
    if (pairs == NULL) {
        return -1;
    }

    i = 0;

    json_object_foreach(v, key, c) {
        klen = strlen(key);

        sf_map_path(path, "carriers.\"%s\"", sf_map_q(q, key));

        if (klen > SF_MAPPING_MAX_KEY) {
            return sf_map_error(ctx, "%s: key too long (%zu bytes, limit %d)",
                                path, klen, SF_MAPPING_MAX_KEY);
        }

        if (sf_map_string(ctx, c, path, &alias, NULL) != 0) {
            return -1;
        }

        if (strcmp(key, "*") == 0) {
            ctx->m->carrier_fallback = alias;
            continue;
        }

        pairs[i].key = sf_map_strdup(ctx, key, klen);
        if (pairs[i].key == NULL) {
            return -1;
        }

        pairs[i].key_len = klen;
        pairs[i].value = alias;
        pairs[i].value_len = strlen(alias);
        i++;
    }

    qsort(pairs, i, sizeof(sf_map_pair_t), sf_map_pair_cmp);

    ctx->m->carriers = pairs;
    ctx->m->ncarriers = i;
    ctx->m->has_carriers = 1;

    return 0;
}


static int
sf_map_return_address(sf_map_ctx_t *ctx, json_t *v)
{
    char            path[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    size_t          len;
    json_t         *x;
    unsigned        i, k, n;
    const char     *key, *value;
    sf_map_pair_t  *pairs;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "return_address must be an object");
    }

    json_object_foreach(v, key, x) {
        for (i = 0; sf_map_address_keys[i] != NULL; i++) {
            if (strcmp(sf_map_address_keys[i], key) == 0) {
                break;
            }
        }

        if (sf_map_address_keys[i] == NULL) {
            return sf_map_error(ctx, "return_address: unknown key \"%s\"",
                                sf_map_q(q, key));
        }
    }

    for (i = 0; sf_map_address_required[i] != NULL; i++) {
        if (json_object_get(v, sf_map_address_required[i]) == NULL) {
            return sf_map_error(ctx, "return_address: \"%s\" is required",
                                sf_map_address_required[i]);
        }
    }

    pairs = sf_map_alloc(ctx, json_object_size(v) * sizeof(sf_map_pair_t));
    if (pairs == NULL) {
        return -1;
    }

    n = 0;

    for (k = 0; sf_map_address_keys[k] != NULL; k++) {
        key = sf_map_address_keys[k];
        x = json_object_get(v, key);

        if (x == NULL) {
            continue;
        }

        sf_map_path(path, "return_address.%s", key);

        if (sf_map_string(ctx, x, path, &value, &len) != 0) {
            return -1;
        }

        if (strcmp(key, "isoCountry") == 0 && !sf_map_country(value, len)) {
            return sf_map_error(ctx, "%s must be an ISO 3166-1 country code "
                                "(2 or 3 letters)", path);
        }

        pairs[n].key = key;
        pairs[n].key_len = strlen(key);
        pairs[n].value = value;
        pairs[n].value_len = len;
        n++;
    }

    ctx->m->return_address = pairs;
    ctx->m->nreturn_address = n;

    return 0;
}


static int
sf_map_ship_to(sf_map_ctx_t *ctx, json_t *v)
{
    char         q[SF_MAP_QUOTE_LEN];
    size_t       i, len;
    json_t      *x;
    const char  *key, *s;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "ship_to must be an object");
    }

    json_object_foreach(v, key, x) {

        if (strcmp(key, "name") != 0) {
            return sf_map_error(ctx, "ship_to: unknown key \"%s\"",
                                sf_map_q(q, key));
        }

        if (!json_is_string(x)) {
            return sf_map_error(ctx, "ship_to.name must be a string");
        }

        s = json_string_value(x);
        len = json_string_length(x);

        if (sf_map_blank(s, len)) {
            return sf_map_error(ctx, "ship_to.name must not be empty");
        }

        for (i = 0; i < len; i++) {
            if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
                return sf_map_error(ctx, "ship_to.name must not contain "
                                    "control characters");
            }
        }

        if (sf_map_template(ctx, s, len, "ship_to.name",
                            SF_MAP_SHIP_TO_VARS, 0, &ctx->m->ship_to_name)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
sf_map_statuses(sf_map_ctx_t *ctx, json_t *v)
{
    int          ev;
    char         path[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    json_t      *x;
    const char  *key;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "statuses must be an object");
    }

    json_object_foreach(v, key, x) {
        ev = sf_mapping_event(key, strlen(key));

        if (ev < 0) {
            return sf_map_error(ctx, "statuses: unknown SiteFlow event "
                                "\"%s\"", sf_map_q(q, key));
        }

        sf_map_path(path, "statuses.\"%s\"", key);

        if (sf_map_string(ctx, x, path, &ctx->m->statuses[ev], NULL) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
sf_map_printnow(sf_map_ctx_t *ctx, json_t *v)
{
    char         path[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    json_t      *x;
    unsigned     i;
    const char  *key;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "printnow must be an object");
    }

    json_object_foreach(v, key, x) {
        for (i = 0; sf_map_calls[i] != NULL; i++) {
            if (strcmp(sf_map_calls[i], key) == 0) {
                break;
            }
        }

        if (sf_map_calls[i] == NULL) {
            return sf_map_error(ctx, "printnow: unknown call \"%s\" "
                                "(expected shipped, shipped_item, status or "
                                "status_item)", sf_map_q(q, key));
        }

        sf_map_path(path, "printnow.%s", key);

        if (sf_map_fields(ctx, x, path,
                          (i == SF_PN_SHIPPED_ITEM || i == SF_PN_STATUS_ITEM)
                          ? SF_MAP_PN_ITEM_VARS : SF_MAP_PN_VARS,
                          1, SF_MAPPING_MAX_FIELDS, &ctx->m->printnow[i],
                          &ctx->m->nprintnow[i])
            != 0)
        {
            return -1;
        }

        ctx->m->has_printnow[i] = 1;
    }

    return 0;
}


static int
sf_map_defaults(sf_map_ctx_t *ctx, json_t *v)
{
    char            path[SF_MAP_PATH_LEN], q[SF_MAP_QUOTE_LEN];
    size_t          klen, n;
    json_t         *x, *o;
    unsigned        i;
    const char     *key, *okey;
    sf_map_pair_t  *pairs;

    if (!json_is_object(v)) {
        return sf_map_error(ctx, "defaults must be an object");
    }

    json_object_foreach(v, key, x) {

        if (strcmp(key, "phone") == 0) {
            if (sf_map_string(ctx, x, "defaults.phone",
                              &ctx->m->default_phone, NULL)
                != 0)
            {
                return -1;
            }

            continue;
        }

        if (strcmp(key, "options") != 0) {
            return sf_map_error(ctx, "defaults: unknown key \"%s\"",
                                sf_map_q(q, key));
        }

        if (!json_is_object(x)) {
            return sf_map_error(ctx, "defaults.options must be an object");
        }

        n = json_object_size(x);

        if (n > SF_MAPPING_MAX_OPTIONS) {
            return sf_map_error(ctx, "defaults.options: too many options "
                                "(%zu, limit %d)", n,
                                SF_MAPPING_MAX_OPTIONS);
        }

        pairs = sf_map_alloc(ctx, n * sizeof(sf_map_pair_t));
        if (pairs == NULL) {
            return -1;
        }

        i = 0;

        json_object_foreach(x, okey, o) {
            klen = strlen(okey);

            sf_map_path(path, "defaults.options.\"%s\"", sf_map_q(q, okey));

            if (klen > SF_MAPPING_MAX_KEY) {
                return sf_map_error(ctx, "%s: key too long (%zu bytes, "
                                    "limit %d)", path, klen,
                                    SF_MAPPING_MAX_KEY);
            }

            if (sf_map_string(ctx, o, path, &pairs[i].value,
                              &pairs[i].value_len)
                != 0)
            {
                return -1;
            }

            pairs[i].key = sf_map_strdup(ctx, okey, klen);
            if (pairs[i].key == NULL) {
                return -1;
            }

            pairs[i].key_len = klen;
            i++;
        }

        ctx->m->default_options = pairs;
        ctx->m->ndefault_options = i;
    }

    return 0;
}


static int
sf_map_pair_cmp(const void *a, const void *b)
{
    const sf_map_pair_t  *x = a, *y = b;

    return sf_map_key_cmp(x->key, x->key_len, y->key, y->key_len);
}


static int
sf_map_product_cmp(const void *a, const void *b)
{
    const sf_map_product_t  *x = a, *y = b;

    return sf_map_key_cmp(x->key, x->key_len, y->key, y->key_len);
}


static int
sf_map_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int  rc;

    rc = memcmp(a, b, (alen < blen) ? alen : blen);

    if (rc != 0) {
        return rc;
    }

    return (alen < blen) ? -1 : (alen > blen);
}
