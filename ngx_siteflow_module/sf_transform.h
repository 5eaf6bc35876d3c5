
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_TRANSFORM_H_INCLUDED_
#define _SF_TRANSFORM_H_INCLUDED_


#include <stddef.h>

#include <jansson.h>

#include "sf_mapping.h"


/*
 * A PrintNow v2 order (json_t) -> the SiteFlow order to submit, through a
 * mapping (sf_mapping.h).  Pure C: libc and jansson only, never nginx
 * headers; no global state; the order and the mapping are only read, so
 * any number of threads may transform with one mapping at once.
 *
 * The SiteFlow order (keys in this order; optional ones are omitted when
 * there is no value, never sent as null or ""):
 *
 *   destination.name              the destination argument, else the
 *                                 mapping's "destination"
 *   orderData.sourceOrderId       the mapping's source_order_id template
 *   orderData.customerName        customer first_name + " " + last_name
 *                                 (either alone), else shipTo.name
 *   orderData.email               customer.email, else
 *                                 shipping_address.email
 *   orderData.items[]             one per item whose product is mapped,
 *                                 in order:
 *       sourceItemId              the item id, as a string
 *       sku                       the product's sku template
 *       quantity                  integer
 *       description               the description template, else the
 *                                 item's name
 *       shipmentIndex             0
 *       components[]              code, path, fetch: true, attributes
 *       extraData.printnowItemId  the item id, as a string
 *   orderData.shipments[0]:
 *       shipmentIndex             0
 *       shipTo                    from shipping_address: name (the
 *                                 mapping's ship_to.name when every
 *                                 placeholder in it has a value and the
 *                                 result is not blank; else first_name +
 *                                 last_name, else company, else the
 *                                 customer's first_name + last_name;
 *                                 never the address's "name", an
 *                                 address-book label, unless
 *                                 ship_to.name has {ship_address_label}),
 *                                 companyName
 *                                 (company), address1..3 (line_1, line_2,
 *                                 line_3 and line_4 joined by ", "), town
 *                                 (city), state, postcode (postal_code),
 *                                 isoCountry (country_code, upper-cased),
 *                                 phone (else the mapping's
 *                                 defaults.phone), email (else
 *                                 orderData.email)
 *       returnAddress             the mapping's return_address
 *       carrier.alias             the mapping's carriers, for
 *                                 shipping_service (or "*")
 *   orderData.extraData.printnowOrderId   the order id, as a string
 *
 * What is accepted from the order (a JSON null is the same as a missing
 * key; a string that is empty or only spaces counts as missing too):
 *
 *   ids (order id, item id, product_id, integration_id): a non-negative
 *       integer or a string of at most SF_TRANSFORM_MAX_ID bytes without
 *       control characters ("5001" and 5001 are the same id);
 *   quantity: a positive integer up to SF_TRANSFORM_MAX_QUANTITY, or a
 *       string of decimal digits with such a value;
 *   every other value used: a string of at most SF_TRANSFORM_MAX_STRING
 *       bytes; option values may also be numbers or booleans.
 *
 * Results:
 *
 *   SF_TRANSFORM_OK       *siteflow_order is a new object (the caller
 *                         owns it), reason is "".
 *   SF_TRANSFORM_SKIP     nothing to send: the order is deleted or
 *                         archived in PrintNow (is_deleted or is_archived
 *                         is JSON true: "order 5001 is deleted in
 *                         PrintNow (is_deleted: true)"), no items, or no
 *                         item of a
 *                         mapped product ("no item of order 5001 has a
 *                         mapped product (product_id 99, 98)", listing
 *                         up to 8 distinct product_ids, or
 *                         "integration:<id>" or "none" for items without
 *                         one).  Items of unmapped products are dropped
 *                         and not checked beyond being objects with a
 *                         valid product_id and integration_id.
 *   SF_TRANSFORM_INVALID  the order lacks something SiteFlow requires or
 *                         is malformed; reason names the field
 *                         ("shipping_address.postal_code is missing",
 *                         "items[2].quantity must be a positive
 *                         integer").  Nothing is produced.
 *   SF_TRANSFORM_ERROR    out of memory, or no destination name at all
 *                         (neither argument nor mapping): a caller or
 *                         configuration problem, not the order's.
 *
 * For OK, *siteflow_order is NULL otherwise.  reason (may be NULL if
 * reason_size is 0) is NUL-terminated, valid UTF-8 without control
 * characters, cut at a character boundary when longer than
 * reason_size - 1 (SF_TRANSFORM_REASON_SIZE is always enough).  Order
 * values quoted in a reason are cut to 64 bytes.
 *
 * The order must be what jansson's decoder makes (valid UTF-8 strings);
 * only the fixed paths above are read, so its depth does not matter.  The
 * caller bounds the size of the text it decodes.
 */


#define SF_TRANSFORM_MAX_ITEMS      1000   /* items[] of an order */
#define SF_TRANSFORM_MAX_OPTIONS    256    /* options[] of an item */
#define SF_TRANSFORM_MAX_ID         128    /* bytes of an id */
#define SF_TRANSFORM_MAX_STRING     4096   /* bytes of other strings */
#define SF_TRANSFORM_MAX_QUANTITY   1000000000
#define SF_TRANSFORM_SOURCE_ID_MAX  256    /* bytes of a sourceOrderId */

/* reason_size that never cuts a reason */
#define SF_TRANSFORM_REASON_SIZE    1024


#define SF_TRANSFORM_OK       0
#define SF_TRANSFORM_SKIP     1
#define SF_TRANSFORM_INVALID  2
#define SF_TRANSFORM_ERROR    3


/*
 * destination: the SiteFlow destination name (NUL-terminated UTF-8); NULL
 * or "" to use the mapping's.
 */
int sf_transform_order(const sf_mapping_t *m, const json_t *printnow_order,
    const char *destination, json_t **siteflow_order, char *reason,
    size_t reason_size);

/*
 * The sourceOrderId alone (for look-ups and the sent-orders index),
 * exactly as sf_transform_order() would put it in the order: at most
 * SF_TRANSFORM_SOURCE_ID_MAX bytes, no control characters, written
 * NUL-terminated to out.  Returns SF_TRANSFORM_OK, SF_TRANSFORM_INVALID
 * (no usable id, or the template lacks a value), or SF_TRANSFORM_ERROR
 * when out_size is too small (SF_TRANSFORM_SOURCE_ID_MAX + 1 always
 * suffices); out is "" unless OK.
 */
int sf_transform_source_order_id(const sf_mapping_t *m, const json_t *order,
    char *out, size_t out_size);


#endif /* _SF_TRANSFORM_H_INCLUDED_ */
