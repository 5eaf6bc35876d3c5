
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <string.h>

#include "sf_breaker.h"


static sf_breaker_t *sf_breaker_get(sf_breakers_t *s, const char *name,
    size_t len, unsigned up, int create);


void
sf_breakers_of(sf_breakers_t *s, const char *name, size_t len,
    sf_breaker_t *by[2])
{
    unsigned       i;
    sf_breaker_t  *b;

    if (len > SF_BREAKER_NAME_LEN) {
        len = SF_BREAKER_NAME_LEN;
    }

    by[0] = NULL;
    by[1] = NULL;

    for (i = 0; i < s->n; i++) {
        b = &s->b[i];

        if (b->len == len && memcmp(b->name, name, len) == 0) {
            by[b->up >> 1] = b;
        }
    }
}


static sf_breaker_t *
sf_breaker_get(sf_breakers_t *s, const char *name, size_t len, unsigned up,
    int create)
{
    sf_breaker_t  *b, *by[2];

    sf_breakers_of(s, name, len, by);

    if (by[up >> 1] != NULL) {
        return by[up >> 1];
    }

    if (!create || s->n == SF_BREAKERS) {
        return NULL;
    }

    if (len > SF_BREAKER_NAME_LEN) {
        len = SF_BREAKER_NAME_LEN;
    }

    b = &s->b[s->n++];
    memset(b, 0, sizeof(sf_breaker_t));
    memcpy(b->name, name, len);
    b->len = len;
    b->up = up;

    return b;
}


int
sf_breaker_allows(sf_breakers_t *s, const char *name, size_t len,
    unsigned up, uint64_t now, unsigned *probe)
{
    unsigned       i;
    sf_breaker_t  *by[2];

    *probe = 0;

    if (s->open == 0) {
        return 1;
    }

    sf_breakers_of(s, name, len, by);

    /* each open breaker it needs must be due, and not probed already */

    for (i = 0; i < 2; i++) {
        if (!(up & (1u << i)) || by[i] == NULL || by[i]->failures == 0) {
            continue;
        }

        if (by[i]->probing || now < by[i]->until) {
            *probe = 0;
            return 0;
        }

        *probe |= 1u << i;
    }

    for (i = 0; i < 2; i++) {
        if (*probe & (1u << i)) {
            by[i]->probing = 1;
        }
    }

    return 1;
}


unsigned
sf_breaker_next_failures(sf_breakers_t *s, const char *name, size_t len,
    unsigned up)
{
    sf_breaker_t  *by[2];

    sf_breakers_of(s, name, len, by);

    return (by[up >> 1] ? by[up >> 1]->failures : 0) + 1;
}


sf_breaker_change_t
sf_breaker_report(sf_breakers_t *s, const char *name, size_t len,
    unsigned up, int ok, unsigned *probe, uint64_t now, uint64_t backoff_ms,
    sf_breaker_t **bp)
{
    unsigned       probed;
    sf_breaker_t  *b;

    b = sf_breaker_get(s, name, len, up, !ok);
    *bp = b;

    if (b == NULL) {
        return SF_BREAKER_SAME;
    }

    probed = *probe & up;

    if (probed) {
        b->probing = 0;
        b->owner = 0;
        *probe &= ~up;
    }

    if (ok) {
        if (b->failures == 0) {
            return SF_BREAKER_SAME;
        }

        b->failures = 0;
        b->until = 0;
        s->open--;

        return SF_BREAKER_CLOSED;
    }

    /*
     * The backoff grows with the failed probes, not with every run that
     * fails: the runs started together before the breaker opened (up to
     * the queue's concurrency, e.g. when a new consumer starts after a
     * crash or a reload) are one failure.  Counting each of them took
     * the breaker to the backoff's maximum at once, and the queue waited
     * that long after the upstream was back.
     */

    if (b->failures != 0 && !probed) {
        return SF_BREAKER_SAME;
    }

    if (b->failures == 0) {
        s->open++;
    }

    b->failures++;
    b->until = now + backoff_ms;

    return SF_BREAKER_OPENED;
}


void
sf_breaker_probe_end(sf_breakers_t *s, const char *name, size_t len,
    unsigned *probe)
{
    unsigned       i;
    sf_breaker_t  *by[2];

    if (*probe == 0) {
        return;
    }

    sf_breakers_of(s, name, len, by);

    for (i = 0; i < 2; i++) {
        if ((*probe & (1u << i)) && by[i] != NULL) {
            by[i]->probing = 0;
            by[i]->owner = 0;
        }
    }

    *probe = 0;
}


unsigned
sf_breaker_failures(sf_breakers_t *s, const char *name, size_t len)
{
    unsigned       i, failures;
    sf_breaker_t  *by[2];

    sf_breakers_of(s, name, len, by);

    failures = 0;

    for (i = 0; i < 2; i++) {
        if (by[i] != NULL && by[i]->failures > failures) {
            failures = by[i]->failures;
        }
    }

    return failures;
}


void
sf_breaker_probe_owner(sf_breakers_t *s, const char *name, size_t len,
    unsigned probe, uint64_t owner)
{
    unsigned       i;
    sf_breaker_t  *by[2];

    if (probe == 0) {
        return;
    }

    sf_breakers_of(s, name, len, by);

    for (i = 0; i < 2; i++) {
        if ((probe & (1u << i)) && by[i] != NULL && by[i]->probing) {
            by[i]->owner = owner;
        }
    }
}


unsigned
sf_breaker_probes_release(sf_breakers_t *s,
    int (*gone)(uint64_t owner, void *data), void *data)
{
    unsigned       i, n;
    sf_breaker_t  *b;

    n = 0;

    for (i = 0; i < s->n; i++) {
        b = &s->b[i];

        if (b->probing && b->owner != 0 && gone(b->owner, data)) {
            b->probing = 0;
            b->owner = 0;
            n++;
        }
    }

    return n;
}
