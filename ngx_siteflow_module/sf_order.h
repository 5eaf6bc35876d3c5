
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_ORDER_H_INCLUDED_
#define _SF_ORDER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * Whether a PrintNow order is sent to SiteFlow: the one decision the hook
 * (on an order event) and the order job (before the transform) both take.
 * The caller gathers the facts (the sent-orders index, the queue, the
 * configuration, the order's status) and acts on the decision: a table in
 * each caller maps it to a counter, an HTTP answer or a job state.
 *
 * The reason is written to the caller's buffer for the answer or the log;
 * it quotes the order's status, which comes from the hook body or from
 * PrintNow, byte for byte.
 */

typedef enum {
    SF_ORDER_SEND = 0,          /* hook: queue the order as hooked;
                                   job: transform and create it */
    SF_ORDER_FETCH,             /* hook: queue a job that fetches it */
    SF_ORDER_CANCEL,            /* hook: queue a cancel */
    SF_ORDER_LOOKUP,            /* job: a create may be out, look it up */
    SF_ORDER_SKIP_SENT,
    SF_ORDER_SKIP_ECHO,         /* our own update of the order, echoed */
    SF_ORDER_SKIP_CANCELLED,
    SF_ORDER_SKIP_QUEUED,       /* a job for it is queued already */
    SF_ORDER_SKIP_DELETED,      /* deleted in PrintNow, nothing to cancel */
    SF_ORDER_SKIP_ARCHIVED,
    SF_ORDER_SKIP_MANUAL,       /* siteflow_order_trigger manual */
    SF_ORDER_SKIP_NO_STATUS,
    SF_ORDER_SKIP_STATUS,       /* not a trigger status */
    SF_ORDER_DECISIONS
} sf_order_decision_t;


typedef enum {
    SF_ORDER_AT_HOOK = 0,
    SF_ORDER_AT_JOB
} sf_order_stage_t;


typedef enum {
    SF_ORDER_NOT_SENT = 0,      /* not in the index, or a create queued */
    SF_ORDER_SENT,
    SF_ORDER_CANCELLED
} sf_order_index_t;


typedef enum {
    SF_ORDER_LIVE = 0,
    SF_ORDER_DELETED_EVENT,     /* an order_deleted event */
    SF_ORDER_DELETED_FLAG       /* an order event with is_deleted: true */
} sf_order_deleted_t;


/* a trigger status; siteflow_order_trigger keeps an array of them */
typedef struct {
    size_t                  len;
    const unsigned char    *data;
} sf_order_str_t;


typedef struct {
    sf_order_stage_t        stage;

    sf_order_index_t        index;
    const char             *siteflow_id;     /* the index's, may be NULL */
    size_t                  siteflow_id_len;
    uint64_t                updated_ms;      /* index update, 0: none */
    uint64_t                now_ms;
    uint64_t                echo_window;     /* ms */

    /* the hook */
    sf_order_deleted_t      deleted;
    unsigned                archived:1;
    unsigned                fetch:1;         /* siteflow_printnow_fetch */
    unsigned                cancel_on_delete:1;
    unsigned                pending_order:1; /* an order job is queued */
    unsigned                pending_cancel:1;

    /* the job */
    unsigned                force:1;         /* admin send with force */
    unsigned                manual:1;        /* admin send: no trigger */
    unsigned                lookup:1;        /* maybe sent, id known */

    /* the order */
    const char             *status;          /* NULL: none or not a string */
    size_t                  status_len;
    const sf_order_str_t   *triggers;        /* none: manual */
    size_t                  ntriggers;
} sf_order_facts_t;


/*
 * Decides; writes the reason (no NUL) to reason[0 .. size - 1], cut at
 * size bytes, and its length to *len.  The reason is empty for SEND,
 * FETCH, CANCEL and LOOKUP.
 */

sf_order_decision_t sf_order_decide(const sf_order_facts_t *f, char *reason,
    size_t size, size_t *len);

const char *sf_order_decision_name(sf_order_decision_t d);

/*
 * The sent-orders index forgot this order id (index_retention), by its
 * horizon: numeric ids up to pruned_max (0: none forgotten), and any
 * other id once one was forgotten (pruned_other).  1 or 0.
 */
int sf_order_forgotten(const char *id, size_t len, uint64_t pruned_max,
    int pruned_other);


#endif /* _SF_ORDER_H_INCLUDED_ */
