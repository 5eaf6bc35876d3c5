
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_SHIP_INT_H_INCLUDED_
#define _SF_SHIP_INT_H_INCLUDED_


/*
 * Private to sf_ship.c and sf_ship_scan.c: the strict scanner of shipment
 * bodies and the walk over the text of a body known to be valid JSON.
 * Pure C, no global state.
 */


#include <stddef.h>

#include "sf_ship.h"


/* containers whose end the scanner records (the rest are walked over) */
#define SF_SHIP_BOXES         256

/* objects whose checked members the scanner records as it reads them */
#define SF_SHIP_RECORDS       64
#define SF_SHIP_MAX_NAMES     9


typedef unsigned char  sf_ship_u8_t;


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


/* the members the checks look up, defined in sf_ship.c */

extern const sf_ship_name_t  sf_ship_root_keys[];
extern const sf_ship_name_t  sf_ship_address_keys[];
extern const sf_ship_name_t  sf_ship_output_keys[];
extern const sf_ship_name_t  sf_ship_unit_keys[];
extern const sf_ship_name_t  sf_ship_items_keys[];
extern const sf_ship_name_t  sf_ship_item_keys[];
extern const sf_ship_name_t  sf_ship_order_keys[];


int sf_ship_scan(const char *body, size_t len, unsigned dups,
    sf_ship_doc_t *doc);
const sf_ship_u8_t *sf_ship_skip_string(const sf_ship_u8_t *p,
    const sf_ship_u8_t *end);
void sf_ship_members(const sf_ship_u8_t *obj, sf_ship_doc_t *doc,
    const sf_ship_name_t *names, const sf_ship_u8_t **values);
const sf_ship_u8_t *sf_ship_first(const sf_ship_u8_t *array,
    sf_ship_doc_t *doc);
const sf_ship_u8_t *sf_ship_next(const sf_ship_u8_t *p,
    sf_ship_doc_t *doc);
size_t sf_ship_unescape(const sf_ship_u8_t *p, size_t len,
    sf_ship_u8_t *out, size_t size);
int sf_ship_blank(const sf_ship_u8_t *p, size_t len);


/* JSON whitespace */

static const sf_ship_u8_t  sf_ship_space[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0         /* 0x20 */
};


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


#endif /* _SF_SHIP_INT_H_INCLUDED_ */
