
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Delivery outcome rules; the rules themselves are listed in sf_job.h.
 */


#include <stdint.h>

#include "sf_job.h"


static sf_job_outcome_t sf_job_status(unsigned http_status,
    int request_sent);


static const char *const  sf_job_outcome_names[] = {
    "done", "retry", "fail", "ambiguous"
};

static const char *const  sf_net_error_names[] = {
    "ok", "connect", "dns", "timeout", "reset", "too_large", "tls", "other"
};


sf_job_outcome_t
sf_job_classify(unsigned http_status, sf_net_error_t err, int request_sent)
{
    switch (err) {

    case SF_NET_OK:
        return sf_job_status(http_status, request_sent);

    case SF_NET_CONNECT:
    case SF_NET_DNS:
        return SF_JOB_RETRY;

    case SF_NET_TOO_LARGE:
        if (http_status >= 100 && http_status <= 599
            && (http_status < 200 || http_status > 299))
        {
            return sf_job_status(http_status, request_sent);
        }

        return SF_JOB_FAIL;

    default:
        /* SF_NET_TIMEOUT, SF_NET_RESET, SF_NET_TLS, SF_NET_OTHER */
        break;
    }

    return request_sent ? SF_JOB_AMBIGUOUS : SF_JOB_RETRY;
}


uint64_t
sf_job_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms,
    uint32_t random)
{
    uint64_t  d, half, span, hi, lo;

    if (attempt == 0 || base_ms == 0 || max_ms == 0) {
        return 0;
    }

    /* d = min(base_ms * 2^(attempt - 1), max_ms), without overflow */

    d = base_ms;

    while (--attempt > 0 && d < max_ms) {
        if (d > max_ms / 2) {
            d = max_ms;
            break;
        }

        d *= 2;
    }

    if (d > max_ms) {
        d = max_ms;
    }

    /*
     * half + floor(span * random / 2^32), span = d - half + 1 values;
     * span * random is split at 32 bits so that it cannot overflow
     */

    half = d / 2;
    span = d - half + 1;
    hi = span >> 32;
    lo = span & 0xffffffff;

    return half + hi * random + ((lo * random) >> 32);
}


int
sf_job_give_up(uint64_t created_ms, uint64_t now_ms, uint64_t give_up_ms)
{
    if (give_up_ms == 0 || now_ms < created_ms) {
        return 0;
    }

    return now_ms - created_ms >= give_up_ms;
}


const char *
sf_job_outcome_name(sf_job_outcome_t outcome)
{
    if ((unsigned) outcome > SF_JOB_AMBIGUOUS) {
        return "unknown";
    }

    return sf_job_outcome_names[outcome];
}


const char *
sf_net_error_name(sf_net_error_t err)
{
    if ((unsigned) err > SF_NET_OTHER) {
        return "unknown";
    }

    return sf_net_error_names[err];
}


/* a response was received (or is treated as received): its status */

static sf_job_outcome_t
sf_job_status(unsigned http_status, int request_sent)
{
    if (http_status >= 200 && http_status <= 299) {
        return SF_JOB_DONE;
    }

    if (http_status == 408 || http_status == 429) {
        return SF_JOB_RETRY;
    }

    if (http_status >= 300 && http_status <= 499) {
        return SF_JOB_FAIL;
    }

    /* 5xx, or no usable status: the server may have acted on it */

    return request_sent ? SF_JOB_AMBIGUOUS : SF_JOB_RETRY;
}
