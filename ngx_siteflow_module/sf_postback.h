
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_POSTBACK_H_INCLUDED_
#define _SF_POSTBACK_H_INCLUDED_


#include <stddef.h>


/*
 * SiteFlow trigger postbacks (SPEC section 7): parse the JSON a trigger
 * template renders and normalise it into one sf_postback_t, and the rules
 * that keep an order from moving backwards.  Pure C: libc and jansson
 * only, no global state, safe to call from any thread.  The accepted
 * fields, aliases and precedence are listed at the top of sf_postback.c
 * and in docs/postbacks.md.
 */


/* limits on the work done for one body */
#define SF_PB_MAX_DEPTH       16     /* nesting of objects and arrays */
#define SF_PB_MAX_ITEMS       64     /* sourceItemIds per postback: more
                                        is refused (docs/postbacks.md) */
#define SF_PB_MAX_ERRORS      1000   /* errors[] entries read */
#define SF_PB_MAX_SHIPMENTS   1000   /* shipments[] entries searched */

/* buffer sizes of sf_postback_t, each including the NUL */
#define SF_PB_EVENT_LEN       32
#define SF_PB_ORDER_ID_LEN    256
#define SF_PB_TIMESTAMP_LEN   64
#define SF_PB_TRACKING_LEN    128
#define SF_PB_URL_LEN         1024
#define SF_PB_CARRIER_LEN     128
#define SF_PB_DATE_LEN        32
#define SF_PB_ITEM_ID_LEN     128
#define SF_PB_MESSAGE_LEN     1024


typedef enum {
    SF_EV_RECEIVED = 1,
    SF_EV_PRINTREADY,
    SF_EV_SUBBATCH_SCANNED,
    SF_EV_BATCH_COMPLETE,
    SF_EV_COMPLETE,
    SF_EV_SHIPPED,
    SF_EV_CANCELLED,
    SF_EV_ERROR,
    SF_EV_SUBMISSION_ERROR
} sf_event_t;


/*
 * Every string is NUL-terminated valid UTF-8, "" when absent.  Values
 * are trimmed of ASCII whitespace and HTML-unescaped (what Handlebars'
 * {{value}} escapes), see sf_postback.c.
 */
typedef struct {
    sf_event_t   event;
    char         event_name[SF_PB_EVENT_LEN];      /* canonical name */
    char         source_order_id[SF_PB_ORDER_ID_LEN];
    char         timestamp[SF_PB_TIMESTAMP_LEN];   /* as sent */
    int          shipment_index;                   /* -1 if absent */
    char         tracking_number[SF_PB_TRACKING_LEN];
    char         tracking_url[SF_PB_URL_LEN];
    char         carrier[SF_PB_CARRIER_LEN];       /* "ups ground" */
    char         ship_date[SF_PB_DATE_LEN];        /* YYYY-MM-DD or "" */
    unsigned     nitems;
    char       (*items)[SF_PB_ITEM_ID_LEN];        /* sourceItemIds, the
                                                      caller's array */
    char         message[SF_PB_MESSAGE_LEN];       /* errors, "; "-joined */
} sf_postback_t;


typedef enum {
    SF_PB_OK = 0,
    SF_PB_BAD_JSON,          /* empty, not JSON, too deep, not an object */
    SF_PB_INVALID,           /* a field is missing, of a wrong type or too
                                long: answer 400 */
    SF_PB_UNKNOWN_EVENT      /* well-formed, event not ours: answer 422 */
} sf_pb_rc_t;


/*
 * Parses body[0 .. len - 1] (not NUL-terminated; the caller bounds len).
 *
 * items is the caller's array of max_items entries for the shipment's
 * sourceItemIds; pb->items is set to it.  More ids than
 * min(max_items, SF_PB_MAX_ITEMS) is SF_PB_INVALID.  With items == NULL
 * (max_items is then ignored) the ids are checked and counted in
 * pb->nitems, up to SF_PB_MAX_ITEMS, but not stored.
 *
 * err receives one NUL-terminated, valid UTF-8 message without control
 * characters, "" for SF_PB_OK; a long message is cut at a character
 * boundary and ends with "...".  err may be NULL if err_size is 0.
 *
 * pb is always initialised (strings "", shipment_index -1, nitems 0).
 * On failure it holds what was parsed before the problem was found: for
 * SF_PB_UNKNOWN_EVENT, source_order_id and timestamp, for logging.
 */
sf_pb_rc_t sf_postback_parse(const char *body, size_t len, sf_postback_t *pb,
    char (*items)[SF_PB_ITEM_ID_LEN], unsigned max_items, char *err,
    size_t err_size);

/* the canonical name ("received", ..., "submission_error"), NULL if ev is
   not an sf_event_t value */
const char *sf_postback_event_name(sf_event_t ev);

/*
 * The position of an event in an order's life, -1 if ev is not an
 * sf_event_t value:
 *
 *   submission_error 0, received 1, error 1, printready 2,
 *   subbatch_scanned 3, batch_complete 4, complete 5, cancelled 6,
 *   shipped 7
 */
int sf_postback_rank(sf_event_t ev);

/*
 * Whether `newer` may be applied to an order whose last applied event is
 * `older` (0 or any other non-event value when none was applied yet),
 * checked in this order:
 *
 *   newer not an event                       0
 *   older not an event (nothing applied)     1
 *   newer shipped                            1  (another shipment, a
 *                                               corrected tracking number,
 *                                               or the parcel left after
 *                                               all: shipping wins over
 *                                               cancelling)
 *   older shipped or cancelled               0  (terminal)
 *   newer error                              1  (also after error: new
 *                                               messages)
 *   newer submission_error                   older is submission_error
 *   otherwise                                rank(newer) > rank(older)
 *
 * Exact repeats are found with sf_postback_same(), not here.
 */
int sf_postback_supersedes(sf_event_t newer, sf_event_t older);

/*
 * Whether b repeats a (a duplicate postback): same event, sourceOrderId,
 * shipment index, tracking number and message.  Timestamps, tracking
 * URL, carrier, ship date and items are not compared.
 */
int sf_postback_same(const sf_postback_t *a, const sf_postback_t *b);


#endif /* _SF_POSTBACK_H_INCLUDED_ */
