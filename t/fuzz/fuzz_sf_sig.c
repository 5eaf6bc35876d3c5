
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_sig.c.
 *
 * The input is split at '\n' into up to four fields:
 *
 *     header \n nonce \n key \n url
 *
 * (missing fields are empty; the url keeps any further '\n').  The
 * header goes through sf_sig_split() and its signature part, with the
 * nonce and key, through sf_sig_ship_verify(); the url through
 * sf_sig_signed_path() for both schemes and the result through
 * sf_sig_request(); key and header through sf_sig_detect_scheme(); the
 * first 8 bytes through sf_sig_timestamp().  Besides "no crash", a few
 * invariants are checked and abort() when broken.
 *
 * Output buffers are malloc()ed at their exact size so that ASan sees
 * any write past them.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf_sig.h"


#define FUZZ_FIELDS  4


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_ship(const unsigned char *header, size_t header_len,
    const unsigned char *nonce, size_t nonce_len,
    const unsigned char *key, size_t key_len);
static void fuzz_path(sf_scheme_t scheme, const char *url, size_t url_len,
    size_t small, const char *method, const char *ts,
    const unsigned char *key, size_t key_len);
static char *fuzz_strndup(const unsigned char *p, size_t len, size_t max);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                 *method, *ts, tbuf[SF_SIG_TIMESTAMP_LEN + 1];
    size_t                i, n, len[FUZZ_FIELDS], small;
    long long             ms;
    const uint8_t        *p, *nl, *end;
    const unsigned char  *f[FUZZ_FIELDS];

    p = data;
    end = data + size;

    for (i = 0; i < FUZZ_FIELDS; i++) {
        f[i] = p;

        nl = (i < FUZZ_FIELDS - 1) ? memchr(p, '\n', (size_t) (end - p))
                                   : NULL;

        if (nl == NULL) {
            len[i] = (size_t) (end - p);
            p = end;

        } else {
            len[i] = (size_t) (nl - p);
            p = nl + 1;
        }
    }

    fuzz_ship(f[0], len[0], f[1], len[1], f[2], len[2]);

    (void) sf_sig_detect_scheme((const char *) f[2], len[2]);
    (void) sf_sig_detect_scheme((const char *) f[0], len[0]);
    (void) sf_sig_strerror(sf_sig_nonce_check(f[1], len[1]));

    method = fuzz_strndup(f[0], len[0], SF_SIG_METHOD_MAX + 8);
    ts = fuzz_strndup(f[1], len[1], 64);

    if (method == NULL || ts == NULL) {
        free(method);
        free(ts);
        return 0;
    }

    small = size > 0 ? data[0] % 24 : 0;

    fuzz_path(SF_SCHEME_ONEFLOW, (const char *) f[3], len[3], small,
              method, ts, f[2], len[2]);
    fuzz_path(SF_SCHEME_PRINTOS, (const char *) f[3], len[3], small,
              method, ts, f[2], len[2]);
    fuzz_path(SF_SCHEME_UNKNOWN, (const char *) f[3], len[3], small,
              method, ts, f[2], len[2]);

    free(method);
    free(ts);

    if (size >= sizeof(ms)) {
        memcpy(&ms, data, sizeof(ms));

        n = (size_t) sf_sig_timestamp(ms, tbuf, sizeof(tbuf));

        if (n != (size_t) -1
            && (n != SF_SIG_TIMESTAMP_LEN || strlen(tbuf) != n
                || tbuf[n - 1] != 'Z'))
        {
            abort();
        }
    }

    return 0;
}


static void
fuzz_ship(const unsigned char *header, size_t header_len,
    const unsigned char *nonce, size_t nonce_len,
    const unsigned char *key, size_t key_len)
{
    size_t                plen, slen;
    sf_sig_rc_t           rc, nrc;
    const unsigned char  *partner, *sig;
    char                  out[SF_SIG_B64_LEN + 1];

    rc = sf_sig_split(header, header_len, &partner, &plen, &sig, &slen);

    if (rc == SF_SIG_OK) {
        if (partner != header || plen == 0 || plen > SF_SIG_PARTNER_MAX
            || header[plen] != ':' || memchr(partner, ':', plen) != NULL
            || sig != header + plen + 1 || plen + 1 + slen != header_len)
        {
            abort();
        }

        (void) sf_sig_ship_verify(key, key_len, nonce, nonce_len, sig, slen);

    } else if (partner != NULL || sig != NULL || plen != 0 || slen != 0
               || (header_len == 0) != (rc == SF_SIG_MISSING))
    {
        abort();
    }

    /* the whole header as a signature, too */

    (void) sf_sig_ship_verify(key, key_len, nonce, nonce_len,
                              header, header_len);

    /* sign then verify round-trips whenever the nonce is acceptable */

    nrc = sf_sig_nonce_check(nonce, nonce_len);

    rc = sf_sig_ship_sign(key, key_len, nonce, nonce_len, out);

    if (key_len == 0) {
        if (rc != SF_SIG_ERROR) {
            abort();
        }

        return;
    }

    if (rc != SF_SIG_OK || strlen(out) != SF_SIG_B64_LEN) {
        abort();
    }

    rc = sf_sig_ship_verify(key, key_len, nonce, nonce_len,
                            (const unsigned char *) out, SF_SIG_B64_LEN);

    if (rc != nrc) {
        abort();
    }
}


static void
fuzz_path(sf_scheme_t scheme, const char *url, size_t url_len,
    size_t small, const char *method, const char *ts,
    const unsigned char *key, size_t key_len)
{
    int     n, m;
    char   *out, *hex;
    size_t  size;

    /* a path never grows: url_len + 1 always suffices ("/" needs 2) */

    size = url_len + 2;

    out = malloc(size);
    if (out == NULL) {
        return;
    }

    n = sf_sig_signed_path(scheme, url, url_len, out, size);

    if (n != -1) {
        if (scheme == SF_SCHEME_UNKNOWN || n < 1 || (size_t) n >= size
            || out[0] != '/' || strlen(out) != (size_t) n
            || ((size_t) n > url_len && url_len != 0))
        {
            abort();
        }
    }

    hex = malloc(SF_SIG_HEX_MAX + 1);

    if (hex != NULL && n > 0) {
        m = sf_sig_request(scheme, SF_HASH_SHA256, method, out, ts,
                           key, key_len, hex, SF_SIG_HEX_MAX + 1);

        if (m != -1 && (m != 64 || strlen(hex) != 64)) {
            abort();
        }

        m = sf_sig_request(scheme, SF_HASH_SHA1, method, out, ts,
                           key, key_len, hex, 41);

        if (m != -1 && (m != 40 || strlen(hex) != 40)) {
            abort();
        }
    }

    free(hex);
    free(out);

    /* an exact, often too small, buffer */

    out = malloc(small + 1);
    if (out == NULL) {
        return;
    }

    m = sf_sig_signed_path(scheme, url, url_len, out, small);

    if (m != -1 && (n != m || (size_t) m >= small)) {
        abort();
    }

    free(out);
}


static char *
fuzz_strndup(const unsigned char *p, size_t len, size_t max)
{
    char  *s;

    if (len > max) {
        len = max;
    }

    s = malloc(len + 1);
    if (s == NULL) {
        return NULL;
    }

    memcpy(s, p, len);
    s[len] = '\0';

    return s;
}
