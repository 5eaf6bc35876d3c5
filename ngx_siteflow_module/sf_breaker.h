
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_BREAKER_H_INCLUDED_
#define _SF_BREAKER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * Breakers, one per storefront and upstream (SiteFlow, PrintNow): a
 * storefront whose upstream keeps failing is not hammered by its whole
 * backlog.  After a retryable failure only one job (a probe) may start
 * once the breaker's backoff is over, and the others that call that
 * upstream wait for its answer.  PrintNow answering does not close the
 * breaker of a SiteFlow that is down, and a job waits only for the
 * upstreams it calls.  Pure: the consumers (the spool's, PostgreSQL's)
 * keep one sf_breakers_t each, in their own process.
 */


#define SF_BREAKER_SITEFLOW   1          /* upstream bits, run probe bits */
#define SF_BREAKER_PRINTNOW   2
#define SF_BREAKER_NAME_LEN   128        /* of a storefront, capped */
#define SF_BREAKERS           128        /* 2 per storefront */


typedef struct {
    char                 name[SF_BREAKER_NAME_LEN];
    size_t               len;
    unsigned             up;             /* SF_BREAKER_SITEFLOW/PRINTNOW */
    unsigned             failures;       /* probes failed in a row; 0:
                                            closed */
    uint64_t             until;          /* the next probe, ms */
    unsigned             probing;        /* a probe is out */
    uint64_t             owner;          /* who runs it (a pid), if told:
                                            sf_breaker_probe_owner() */
} sf_breaker_t;


typedef struct {
    sf_breaker_t         b[SF_BREAKERS];
    unsigned             n;
    unsigned             open;           /* breakers with failures */
} sf_breakers_t;


typedef enum {
    SF_BREAKER_SAME = 0,
    SF_BREAKER_CLOSED,                   /* it was open: the queue
                                            resumes */
    SF_BREAKER_OPENED                    /* it opened, or its backoff
                                            grew */
} sf_breaker_change_t;


/* the storefront's breakers: by[0] SiteFlow, by[1] PrintNow, or NULL */
void sf_breakers_of(sf_breakers_t *s, const char *name, size_t len,
    sf_breaker_t *by[2]);

/*
 * May a job of the storefront that calls the upstreams "up" (bits)
 * start at now?  1: yes, and *probe holds the bits of the open breakers
 * it probes (marked probing); 0: it waits.
 */
int sf_breaker_allows(sf_breakers_t *s, const char *name, size_t len,
    unsigned up, uint64_t now, unsigned *probe);

/*
 * An upstream answered a call of a run (ok) or failed (retryably).
 * *probe: the run's probe bits (the one of up is cleared).  A failure
 * counts when the breaker was closed or the run was its probe (the runs
 * started together before it opened are one failure); the next probe is
 * then due backoff_ms after now.  Returns what changed; *b the breaker
 * (NULL when there is no room for a new one).
 */
sf_breaker_change_t sf_breaker_report(sf_breakers_t *s, const char *name,
    size_t len, unsigned up, int ok, unsigned *probe, uint64_t now,
    uint64_t backoff_ms, sf_breaker_t **b);

/* the failures the next report of a failure would count (for the
   backoff of that report) */
unsigned sf_breaker_next_failures(sf_breakers_t *s, const char *name,
    size_t len, unsigned up);

/* a run ends: the probes it still holds end without an answer */
void sf_breaker_probe_end(sf_breakers_t *s, const char *name, size_t len,
    unsigned *probe);

/* the larger failure count of the storefront's breakers (its gauge) */
unsigned sf_breaker_failures(sf_breakers_t *s, const char *name,
    size_t len);

/*
 * Breakers shared by several processes: the probes just given by
 * sf_breaker_allows() (its *probe) belong to owner; a probe whose owner
 * gone() says is gone ends, so that the breaker can give the next one.
 * Returns the number of probes ended.
 */
void sf_breaker_probe_owner(sf_breakers_t *s, const char *name, size_t len,
    unsigned probe, uint64_t owner);

unsigned sf_breaker_probes_release(sf_breakers_t *s,
    int (*gone)(uint64_t owner, void *data), void *data);


#endif /* _SF_BREAKER_H_INCLUDED_ */
