
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * The scanner of Ship API shipment bodies (see sf_ship_scan() below) and
 * the walk over the text of a body known to be valid JSON, for the checks
 * of sf_ship.c.
 */


#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sf_ship_int.h"
#include "sf_json.h"


/* keys of the open objects that the scanner remembers for duplicates */
#define SF_SHIP_SCAN_KEYS     256
#define SF_SHIP_SCAN_OBJKEYS  64

/* numbers the scanner is sure jansson reads without an overflow error */
#define SF_SHIP_SCAN_INT_DIGITS   18
#define SF_SHIP_SCAN_REAL_DIGITS  40
#define SF_SHIP_SCAN_REAL_EXP     250


typedef struct {
    const sf_ship_u8_t  *p;
    const sf_ship_u8_t  *end;
    unsigned             depth;
    unsigned             nkeys;
    unsigned             dups;     /* duplicate keys make it unsure */
    sf_ship_doc_t       *doc;      /* containers are recorded here */
    sf_ship_key_t        keys[SF_SHIP_SCAN_KEYS];
} sf_ship_scan_t;


static int sf_ship_scan_value(sf_ship_scan_t *s,
    const sf_ship_name_t *names, const sf_ship_name_t *elem);
static int sf_ship_scan_container(sf_ship_scan_t *s,
    const sf_ship_name_t *names, const sf_ship_name_t *elem);
static void sf_ship_child(const sf_ship_name_t *names, size_t k,
    const sf_ship_name_t **obj, const sf_ship_name_t **elem);
static int sf_ship_scan_string(sf_ship_scan_t *s, unsigned *escaped);
static int sf_ship_scan_number(sf_ship_scan_t *s);
static int sf_ship_hex4(const sf_ship_u8_t *p);
static const sf_ship_u8_t *sf_ship_skip(const sf_ship_u8_t *p,
    sf_ship_doc_t *doc);
static sf_ship_box_t *sf_ship_box(const sf_ship_u8_t *p, sf_ship_doc_t *doc);
static int sf_ship_key_is(const sf_ship_u8_t *key, size_t len,
    const sf_ship_name_t *name);


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

int
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


/* p is at the opening '"'; returns the byte after the closing one */

const sf_ship_u8_t *
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

void
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

const sf_ship_u8_t *
sf_ship_first(const sf_ship_u8_t *array, sf_ship_doc_t *doc)
{
    const sf_ship_u8_t  *p;

    p = sf_ship_ws(array + 1, doc->end);

    return (p < doc->end && *p != ']') ? p : NULL;
}


/* the element after the one at p, NULL at the end of the array */

const sf_ship_u8_t *
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

size_t
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

int
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
