
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_SIG_H_INCLUDED_
#define _SF_SIG_H_INCLUDED_


#include <stddef.h>


/*
 * Pure signature code: libc and OpenSSL only, never nginx headers.
 * Every function works on caller-provided buffers and keeps no state.
 *
 * Two directions are covered (see docs and protocols.md):
 *
 *   inbound,  SiteFlow Ship API -> us:
 *       x-siteflow-nonce:     <nonce>
 *       x-siteflow-signature: <partnerId>:<base64(HMAC-SHA256(key, nonce))>
 *
 *   outbound, us -> SiteFlow / OneFlow REST API:
 *       x-oneflow-authorization:  <token>:<hex HMAC>    (OneFlow native)
 *       x-hp-hmac-authentication: <key>:<hex HMAC>      (HP PrintOS gateway)
 */


typedef enum {
    SF_SIG_OK = 0,
    SF_SIG_MISSING,      /* header value empty */
    SF_SIG_MALFORMED,    /* no ':' / empty partner / partner too long /
                            bad base64 / wrong length / bad nonce chars */
    SF_SIG_MISMATCH,     /* well-formed but does not verify */
    SF_SIG_ERROR         /* OpenSSL failure, or no key (caller bug) */
} sf_sig_rc_t;


#define SF_SIG_HMAC256_LEN   32
#define SF_SIG_B64_LEN       44      /* base64(32 bytes) with padding */
#define SF_SIG_PARTNER_MAX   128
#define SF_SIG_NONCE_MAX     512

#define SF_SIG_METHOD_MAX    32      /* HTTP method in a string-to-sign */
#define SF_SIG_STS_MAX       4096    /* whole string-to-sign, without NUL */
#define SF_SIG_HEX_MAX       64      /* hex HMAC-SHA256, without NUL */
#define SF_SIG_TIMESTAMP_LEN 24      /* "2024-05-01T12:00:00.000Z" */


/*
 * Ship API (SiteFlow -> partner): "X-SiteFlow-Signature: <partnerId>:<b64>"
 *
 * Splits at the FIRST ':'.  The partner id must be 1..SF_SIG_PARTNER_MAX
 * bytes of [A-Za-z0-9._-]; the signature part is returned as is (it may
 * be empty or contain ':'; sf_sig_ship_verify() judges it).  No
 * whitespace is trimmed.  On any result other than SF_SIG_OK the four
 * outputs are NULL/0.
 *
 *   len == 0                                  SF_SIG_MISSING
 *   no ':', empty / long / bad partner id     SF_SIG_MALFORMED
 */
sf_sig_rc_t sf_sig_split(const unsigned char *value, size_t len,
    const unsigned char **partner, size_t *partner_len,
    const unsigned char **sig, size_t *sig_len);

/*
 *   len == 0                                            SF_SIG_MISSING
 *   len > SF_SIG_NONCE_MAX or a byte outside 0x21..0x7e SF_SIG_MALFORMED
 */
sf_sig_rc_t sf_sig_nonce_check(const unsigned char *nonce, size_t len);

/*
 * out = base64(HMAC-SHA256(key, nonce)), NUL-terminated.  The key bytes
 * are used as given (the hex apiKey string is NOT hex-decoded).  The
 * nonce is not checked here; an empty key is SF_SIG_ERROR.
 */
sf_sig_rc_t sf_sig_ship_sign(const unsigned char *key, size_t key_len,
    const unsigned char *nonce, size_t nonce_len,
    char out[SF_SIG_B64_LEN + 1]);

/*
 * In this order:
 *   nonce fails sf_sig_nonce_check()              its result
 *   sig_len != SF_SIG_B64_LEN (checked before decoding), a byte outside
 *   the standard base64 alphabet, padding other than exactly one final
 *   '=', or non-zero trailing bits (non-canonical) SF_SIG_MALFORMED
 *   empty key / OpenSSL failure                   SF_SIG_ERROR
 *   HMAC differs (constant time)                  SF_SIG_MISMATCH
 *   otherwise                                     SF_SIG_OK
 */
sf_sig_rc_t sf_sig_ship_verify(const unsigned char *key, size_t key_len,
    const unsigned char *nonce, size_t nonce_len,
    const unsigned char *sig, size_t sig_len);

/*
 * A partner key prepared once (the HMAC state after the key), so that
 * signing and verifying cost one HMAC update each instead of a full
 * HMAC() with algorithm look-up.  Not thread-safe: one per process.
 * sf_sig_key_new() returns NULL for an empty key or an OpenSSL failure.
 */
typedef struct sf_sig_key_s  sf_sig_key_t;

sf_sig_key_t *sf_sig_key_new(const unsigned char *key, size_t key_len);
void sf_sig_key_free(sf_sig_key_t *k);

/* as sf_sig_ship_sign() and sf_sig_ship_verify(), with a prepared key;
   on SF_SIG_OK, verify copies the HMAC to mac_out unless it is NULL */
sf_sig_rc_t sf_sig_key_ship_sign(sf_sig_key_t *k,
    const unsigned char *nonce, size_t nonce_len,
    char out[SF_SIG_B64_LEN + 1]);
sf_sig_rc_t sf_sig_key_ship_verify(sf_sig_key_t *k,
    const unsigned char *nonce, size_t nonce_len,
    const unsigned char *sig, size_t sig_len,
    unsigned char mac_out[SF_SIG_HMAC256_LEN]);

/*
 * nbytes random bytes from RAND_bytes() written as 2 * nbytes lowercase
 * hex digits plus NUL (out must hold 2 * nbytes + 1); 0 ok, -1 failure.
 */
int sf_sig_random_hex(char *out, size_t nbytes);

/* short static text, never NULL */
const char *sf_sig_strerror(sf_sig_rc_t rc);


/* Outbound request signing (module -> SiteFlow), protocols.md section 1 */

typedef enum {
    SF_SCHEME_UNKNOWN = 0,
    SF_SCHEME_ONEFLOW,         /* x-oneflow-authorization: token:hexsig */
    SF_SCHEME_PRINTOS          /* x-hp-hmac-authentication: key:hexsig */
} sf_scheme_t;

typedef enum {
    SF_HASH_SHA1 = 1,
    SF_HASH_SHA256
} sf_hash_t;


/*
 * protocols.md 1c heuristic, checked in this order:
 *   1 or more bytes, all [0-9]                  SF_SCHEME_ONEFLOW
 *   exactly 32 bytes of [0-9a-vA-V]             SF_SCHEME_PRINTOS
 *   anything else (including empty)             SF_SCHEME_UNKNOWN
 * The PrintOS match is case-insensitive: published keys are lowercase,
 * but base32hex itself is case-insensitive and an uppercased key still
 * cannot be mistaken for a numeric OneFlow token.
 */
sf_scheme_t sf_sig_detect_scheme(const char *token, size_t len);

/*
 * The "algorithm=" value of siteflow_api: "sha256" or "sha1", ASCII
 * case-insensitive; anything else (including empty) is 0.
 */
sf_hash_t sf_sig_hash_parse(const char *s, size_t len);

/*
 * The algorithm when the configuration names none: SF_HASH_SHA256 for
 * both schemes (HMAC-SHA256 is what SiteFlow recommends; PrintOS
 * refuses SHA1 since 2022).
 */
sf_hash_t sf_sig_default_hash(sf_scheme_t scheme);

/*
 * The value of the algorithm header (x-oneflow-algorithm or
 * x-hp-hmac-algorithm) for a request signed with hash: "SHA256" or
 * "SHA1"; NULL when the header is left out, which is SHA1 on OneFlow
 * (the old OneFlow SDKs send none, and no header means SHA1 there).
 * NULL for an unknown scheme or hash.
 */
const char *sf_sig_algorithm_header(sf_scheme_t scheme, sf_hash_t hash);

/*
 * The path that is signed for a request URL.
 *
 * The URL is either absolute ("scheme://authority/path?query#fragment";
 * the authority, including any userinfo and port, is everything up to
 * the next '/', '?' or '#') or origin-form ("/path?query").  Anything
 * else is -1.  The pathname ends at the first '?' or '#' and becomes "/"
 * when empty.
 *
 *   SF_SCHEME_ONEFLOW: percent-decoded like decodeURIComponent(): every
 *     "%XX" (hex, any case) becomes its byte, "%2F" included; '+' stays
 *     '+'.  The result is -1 (cannot be signed, as decodeURIComponent
 *     would throw) if a '%' is not followed by two hex digits, if the
 *     decoded bytes are not valid UTF-8, or if they contain NUL.
 *   SF_SCHEME_PRINTOS: a leading "/siteflow" service segment is removed
 *     ("/siteflow/api/order" -> "/api/order", "/siteflow" -> "/") but only
 *     as a whole segment ("/siteflowx/api" is untouched); case-sensitive;
 *     no decoding.  A NUL byte in the path is -1.
 *   SF_SCHEME_UNKNOWN: -1.
 *
 * Returns the length written (out is NUL-terminated), or -1 on overflow
 * (out_size must be at least length + 1) or invalid input.
 */
int sf_sig_signed_path(sf_scheme_t scheme, const char *url, size_t url_len,
    char *out, size_t out_size);

/*
 * String to sign:
 *   SF_SCHEME_ONEFLOW: METHOD + " " + path + " " + timestamp
 *   SF_SCHEME_PRINTOS: METHOD + " " + path + timestamp    (no space)
 * The method (1..SF_SIG_METHOD_MAX bytes of 0x21..0x7e) is uppercased;
 * path and timestamp are non-empty and used as given; the whole string
 * must fit SF_SIG_STS_MAX.  out_hex receives the lowercase hex HMAC (40
 * chars for SHA1, 64 for SHA256) and a NUL.  Returns the hex length, or
 * -1 on invalid input, short buffer, empty secret or OpenSSL failure.
 */
int sf_sig_request(sf_scheme_t scheme, sf_hash_t hash,
    const char *method, const char *path, const char *timestamp,
    const unsigned char *secret, size_t secret_len,
    char *out_hex, size_t out_size);

/*
 * ISO-8601 UTC with milliseconds, "2024-05-01T12:00:00.000Z".  Years
 * 0000..9999 (negative epoch_ms allowed); needs out_size >=
 * SF_SIG_TIMESTAMP_LEN + 1.  Returns the length (24) or -1.
 */
int sf_sig_timestamp(long long epoch_ms, char *out, size_t out_size);


/*
 * Frees the HMAC context kept for request signatures (at process exit:
 * its pointer goes with the module when nginx unloads it).
 */
void sf_sig_release(void);


#endif /* _SF_SIG_H_INCLUDED_ */
