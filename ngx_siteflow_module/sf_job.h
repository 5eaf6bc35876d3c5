
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_JOB_H_INCLUDED_
#define _SF_JOB_H_INCLUDED_


#include <stdint.h>


/*
 * Delivery outcome rules of the durable queue: what one HTTP attempt
 * means for a job step, how long to wait before the next attempt, and
 * when to give up.  Pure C, no state, safe to call from any thread.
 */


typedef enum {
    SF_JOB_DONE = 0,         /* the step succeeded */
    SF_JOB_RETRY,            /* it did not happen: try again after backoff */
    SF_JOB_FAIL,             /* it will not work as is: "failed", a person
                                looks at it; never retried by itself */
    SF_JOB_AMBIGUOUS         /* it may have happened: the job kind resolves
                                it (look the order up before creating it
                                again); an idempotent step just retries */
} sf_job_outcome_t;


typedef enum {
    SF_NET_OK = 0,           /* a complete response was received */
    SF_NET_CONNECT,          /* connection refused / unreachable */
    SF_NET_DNS,              /* the host name did not resolve */
    SF_NET_TIMEOUT,          /* connect or total timeout */
    SF_NET_RESET,            /* connection reset or closed early */
    SF_NET_TOO_LARGE,        /* the response exceeded our size cap */
    SF_NET_TLS,              /* TLS handshake or certificate failure */
    SF_NET_OTHER             /* any other transfer error */
} sf_net_error_t;


/*
 * The outcome of one attempt.  http_status is the response status (0
 * when none was received); request_sent is non-zero once the whole
 * request (headers and body) was handed to the network, so that the
 * server may have acted on it.  In this order:
 *
 *   SF_NET_CONNECT, SF_NET_DNS                  RETRY (nothing was sent,
 *                                               whatever request_sent says)
 *   SF_NET_TOO_LARGE with a status that is
 *     not 2xx (100..599)                        as that status, below (an
 *                                               oversized error page is
 *                                               still that error)
 *   SF_NET_TOO_LARGE otherwise                  FAIL: the call succeeded
 *                                               (or we cannot tell) but its
 *                                               answer cannot be read, and
 *                                               sending it again neither
 *                                               makes the answer smaller
 *                                               nor is safe; raise the cap
 *   SF_NET_TIMEOUT, SF_NET_RESET, SF_NET_TLS,
 *     SF_NET_OTHER, or any other value          AMBIGUOUS if request_sent,
 *                                               else RETRY
 *   status 2xx                                  DONE
 *   status 408 (request timeout), 429           RETRY
 *   status 5xx                                  AMBIGUOUS if request_sent,
 *                                               else RETRY
 *   status 3xx (redirects are not followed),
 *     other 4xx                                 FAIL
 *   status 0, 1xx or above 599 (no usable
 *     response)                                 AMBIGUOUS if request_sent,
 *                                               else RETRY
 */
sf_job_outcome_t sf_job_classify(unsigned http_status, sf_net_error_t err,
    int request_sent);

/*
 * The wait before attempt number "attempt + 1", after "attempt" failed
 * attempts (attempt 0, nothing failed yet: 0).  With
 * d = min(base_ms * 2^(attempt - 1), max_ms), computed without overflow
 * for any attempt, the result is d / 2 + floor((d - d / 2 + 1) *
 * random / 2^32): uniform in [d / 2, d] over the 2^32 values of random
 * ("equal jitter": never less than half the exponential delay, so a
 * herd spreads out yet keeps backing off).  base_ms or max_ms 0 gives 0.
 */
uint64_t sf_job_backoff_ms(unsigned attempt, uint64_t base_ms,
    uint64_t max_ms, uint32_t random);

/*
 * Non-zero if a job created at created_ms has been retried long enough:
 * give_up_ms is not 0 and now_ms - created_ms >= give_up_ms.  0 when
 * give_up_ms is 0 (retry forever) and when the clock reads earlier than
 * created_ms (it was set back: wait rather than fail).
 */
int sf_job_give_up(uint64_t created_ms, uint64_t now_ms,
    uint64_t give_up_ms);

/* "done", "retry", "fail", "ambiguous"; "unknown" otherwise, never NULL */
const char *sf_job_outcome_name(sf_job_outcome_t outcome);

/* "ok", "connect", "dns", "timeout", "reset", "too_large", "tls",
   "other"; "unknown" otherwise, never NULL */
const char *sf_net_error_name(sf_net_error_t err);


#endif /* _SF_JOB_H_INCLUDED_ */
