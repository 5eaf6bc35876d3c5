
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <stdint.h>
#include <string.h>

#include "sf_json.h"
#include "sf_order.h"


typedef struct {
    char        *start;
    size_t       len;
    size_t       size;
} sf_order_buf_t;


static sf_order_decision_t sf_order_at_hook(const sf_order_facts_t *f,
    sf_order_buf_t *b);
static sf_order_decision_t sf_order_deleted(const sf_order_facts_t *f,
    sf_order_buf_t *b);
static sf_order_decision_t sf_order_at_job(const sf_order_facts_t *f,
    sf_order_buf_t *b);
static uint32_t sf_order_fold(const unsigned char **p,
    const unsigned char *end);
static sf_order_decision_t sf_order_trigger(const sf_order_facts_t *f,
    sf_order_buf_t *b);
static sf_order_decision_t sf_order_skip(sf_order_buf_t *b,
    sf_order_decision_t d, const char *text, const char *quote,
    size_t quote_len, const char *tail);
static void sf_order_put(sf_order_buf_t *b, const char *s, size_t n);


static const char  *sf_order_names[] = {
    "send",
    "fetch",
    "cancel",
    "lookup",
    "skip_sent",
    "skip_echo",
    "skip_cancelled",
    "skip_queued",
    "skip_deleted",
    "skip_archived",
    "skip_manual",
    "skip_no_status",
    "skip_status"
};


sf_order_decision_t
sf_order_decide(const sf_order_facts_t *f, char *reason, size_t size,
    size_t *len)
{
    sf_order_buf_t       b;
    sf_order_decision_t  d;

    b.start = reason;
    b.len = 0;
    b.size = size;

    if (f->stage == SF_ORDER_AT_JOB) {
        d = sf_order_at_job(f, &b);

    } else {
        d = sf_order_at_hook(f, &b);
    }

    *len = b.len;

    return d;
}


const char *
sf_order_decision_name(sf_order_decision_t d)
{
    if ((unsigned) d >= SF_ORDER_DECISIONS) {
        return "unknown";
    }

    return sf_order_names[d];
}


/* an order event, or order_deleted: checked in this order */

static sf_order_decision_t
sf_order_at_hook(const sf_order_facts_t *f, sf_order_buf_t *b)
{
    if (f->deleted != SF_ORDER_LIVE) {
        return sf_order_deleted(f, b);
    }

    if (f->index == SF_ORDER_CANCELLED) {
        return sf_order_skip(b, SF_ORDER_SKIP_CANCELLED,
                             "the order was sent to SiteFlow as \"",
                             f->siteflow_id, f->siteflow_id_len,
                             "\" and cancelled there");
    }

    if (f->index == SF_ORDER_SENT) {
        if (f->updated_ms && f->now_ms - f->updated_ms < f->echo_window) {
            return sf_order_skip(b, SF_ORDER_SKIP_ECHO,
                                 "echo of our own update of the order in "
                                 "PrintNow", NULL, 0, NULL);
        }

        return sf_order_skip(b, SF_ORDER_SKIP_SENT,
                             "already sent to SiteFlow as \"",
                             f->siteflow_id, f->siteflow_id_len, "\"");
    }

    if (f->pending_order) {
        return sf_order_skip(b, SF_ORDER_SKIP_QUEUED,
                             "a job for this order is already queued",
                             NULL, 0, NULL);
    }

    /* archived and never sent: filed away in PrintNow, not printed */

    if (f->archived) {
        return sf_order_skip(b, SF_ORDER_SKIP_ARCHIVED,
                             "the order is archived in PrintNow "
                             "(is_archived: true): it is not sent to "
                             "SiteFlow", NULL, 0, NULL);
    }

    if (f->ntriggers == 0) {
        return sf_order_skip(b, SF_ORDER_SKIP_MANUAL,
                             "siteflow_order_trigger is manual: orders are "
                             "sent with the admin send call only",
                             NULL, 0, NULL);
    }

    /* siteflow_printnow_fetch on: the job decides on the fetched order */

    if (f->fetch) {
        return SF_ORDER_FETCH;
    }

    if (f->status == NULL) {
        return sf_order_skip(b, SF_ORDER_SKIP_NO_STATUS,
                             "the order in the body has no status",
                             NULL, 0, NULL);
    }

    return sf_order_trigger(f, b);
}


/*
 * An order PrintNow marks deleted is never created in SiteFlow: its hook
 * is handled as an order_deleted event (docs/printnow.md), with the reason
 * told apart when nothing is cancelled
 */

static sf_order_decision_t
sf_order_deleted(const sf_order_facts_t *f, sf_order_buf_t *b)
{
    const char  *why;

    if (f->deleted == SF_ORDER_DELETED_FLAG) {

        if (f->index == SF_ORDER_CANCELLED) {
            why = "it is already cancelled in SiteFlow";

        } else if (f->index != SF_ORDER_SENT && !f->pending_order) {
            why = "it is not sent to SiteFlow";

        } else if (f->cancel_on_delete) {
            why = NULL;

        } else if (f->index == SF_ORDER_SENT) {
            why = "it was sent to SiteFlow and stays there "
                  "(siteflow_cancel_on_delete is off)";

        } else if (f->fetch) {
            why = "the job already queued for it fetches the order again "
                  "and skips it";

        } else {
            why = "a job for it is already queued with the order as "
                  "hooked before (siteflow_cancel_on_delete is off)";
        }

        if (why) {
            sf_order_put(b, "the order is deleted in PrintNow "
                            "(is_deleted: true): ",
                         sizeof("the order is deleted in PrintNow "
                                "(is_deleted: true): ") - 1);

            return sf_order_skip(b, SF_ORDER_SKIP_DELETED, why, NULL, 0,
                                 NULL);
        }
    }

    if (!f->cancel_on_delete) {
        return sf_order_skip(b, SF_ORDER_SKIP_DELETED,
                             "siteflow_cancel_on_delete is off",
                             NULL, 0, NULL);
    }

    if (f->index == SF_ORDER_CANCELLED) {
        return sf_order_skip(b, SF_ORDER_SKIP_CANCELLED,
                             "the order is already cancelled in SiteFlow",
                             NULL, 0, NULL);
    }

    if (f->index != SF_ORDER_SENT && !f->pending_order) {
        return sf_order_skip(b, SF_ORDER_SKIP_DELETED,
                             "the order was never sent to SiteFlow",
                             NULL, 0, NULL);
    }

    if (f->pending_cancel) {
        return sf_order_skip(b, SF_ORDER_SKIP_QUEUED,
                             "a cancel of this order is already queued",
                             NULL, 0, NULL);
    }

    return SF_ORDER_CANCEL;
}


/*
 * the order job, before the transform: the duplicate guard, then (a
 * create of this job may already be out: an ambiguous answer, or a
 * restart) the look-up, whatever the status or the mapping say now, so
 * that the order is never left unrecorded or sent twice, then the trigger
 * unless an admin send asked for the order
 */

static sf_order_decision_t
sf_order_at_job(const sf_order_facts_t *f, sf_order_buf_t *b)
{
    if (!f->force && f->index != SF_ORDER_NOT_SENT) {
        return sf_order_skip(b, SF_ORDER_SKIP_SENT,
                             "already sent to SiteFlow as \"",
                             f->siteflow_id, f->siteflow_id_len, "\"");
    }

    if (f->lookup) {
        return SF_ORDER_LOOKUP;
    }

    if (f->manual) {
        return SF_ORDER_SEND;
    }

    if (f->status == NULL) {
        return sf_order_skip(b, SF_ORDER_SKIP_NO_STATUS,
                             "the PrintNow order has no status",
                             NULL, 0, NULL);
    }

    if (f->ntriggers == 0) {
        return sf_order_skip(b, SF_ORDER_SKIP_MANUAL,
                             "siteflow_order_trigger is manual: orders are "
                             "sent with the admin send call only",
                             NULL, 0, NULL);
    }

    return sf_order_trigger(f, b);
}


/*
 * The status against siteflow_order_trigger, without regard to case:
 * ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters ("Überprüft"
 * is "überprüft"); white space around the status does not count.
 */

static sf_order_decision_t
sf_order_trigger(const sf_order_facts_t *f, sf_order_buf_t *b)
{
    int                    same;
    size_t                 i, n;
    const unsigned char   *s, *se, *t, *te, *status;
    const sf_order_str_t  *tr;

    status = (const unsigned char *) f->status;
    n = f->status_len;

    while (n && (status[0] == ' ' || status[0] == '\t')) {
        status++;
        n--;
    }

    while (n && (status[n - 1] == ' ' || status[n - 1] == '\t')) {
        n--;
    }

    for (i = 0; i < f->ntriggers; i++) {
        tr = &f->triggers[i];

        s = status;
        se = status + n;
        t = tr->data;
        te = tr->data + tr->len;

        same = 1;

        while (same && s < se && t < te) {
            same = (sf_order_fold(&s, se) == sf_order_fold(&t, te));
        }

        if (same && s == se && t == te) {
            return SF_ORDER_SEND;
        }
    }

    return sf_order_skip(b, SF_ORDER_SKIP_STATUS, "status \"", f->status,
                         f->status_len, "\" is not a trigger status");
}


/*
 * The next character of UTF-8 text, lower-cased where upper and lower
 * case are one character each (all such letters here are two bytes long).
 * Any other byte, of a longer character or of none, stands for itself,
 * above every code point: longer characters compare byte by byte.
 */

static uint32_t
sf_order_fold(const unsigned char **p, const unsigned char *end)
{
    uint32_t              c;
    const unsigned char  *s;

    s = *p;
    c = s[0];

    if (c < 0x80) {
        *p = s + 1;
        return (c >= 'A' && c <= 'Z') ? c + 0x20 : c;
    }

    if (sf_json_utf8(s, (size_t) (end - s), NULL) != 2) {
        *p = s + 1;
        return 0x80000000 | c;
    }

    /* U+0080 .. U+07FF */

    c = ((c & 0x1f) << 6) | (s[1] & 0x3f);
    *p = s + 2;

    if ((c >= 0xc0 && c <= 0xde && c != 0xd7)          /* Latin-1 */
        || (c >= 0x391 && c <= 0x3ab && c != 0x3a2)    /* Greek */
        || (c >= 0x410 && c <= 0x42f))                 /* Cyrillic */
    {
        return c + 0x20;
    }

    if (c >= 0x400 && c <= 0x40f) {                    /* Cyrillic Ѐ..Џ */
        return c + 0x50;
    }

    if (c == 0x178) {                                  /* Ÿ */
        return 0xff;
    }

    /* Latin Extended-A: upper case even, lower case odd, but for a few */

    if ((c >= 0x100 && c <= 0x12f) || (c >= 0x132 && c <= 0x137)
        || (c >= 0x14a && c <= 0x177))
    {
        return c | 1;
    }

    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) {
        return (c & 1) ? c + 1 : c;
    }

    return c;
}


static sf_order_decision_t
sf_order_skip(sf_order_buf_t *b, sf_order_decision_t d, const char *text,
    const char *quote, size_t quote_len, const char *tail)
{
    sf_order_put(b, text, strlen(text));

    if (quote) {
        sf_order_put(b, quote, quote_len);
    }

    if (tail) {
        sf_order_put(b, tail, strlen(tail));
    }

    return d;
}


static void
sf_order_put(sf_order_buf_t *b, const char *s, size_t n)
{
    if (n > b->size - b->len) {
        n = b->size - b->len;
    }

    if (n) {
        memcpy(b->start + b->len, s, n);
        b->len += n;
    }
}


int
sf_order_forgotten(const char *id, size_t len, uint64_t pruned_max,
    int pruned_other)
{
    size_t    i;
    uint64_t  n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (id[i] < '0' || id[i] > '9' || n > UINT64_MAX / 10 - 9) {
            return pruned_other ? 1 : 0;
        }

        n = n * 10 + (uint64_t) (id[i] - '0');
    }

    return len && pruned_max && n <= pruned_max;
}
