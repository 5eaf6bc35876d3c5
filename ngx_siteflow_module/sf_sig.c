
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The prepared keys use the SHA-256 block functions, deprecated (not
 * removed) in OpenSSL 3: with the ipad/opad states computed once, an HMAC
 * costs half of what EVP_MAC costs per call.  OpenSSL 4 gets EVP_MAC.
 */
#define OPENSSL_SUPPRESS_DEPRECATED  1

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#if (OPENSSL_VERSION_NUMBER >= 0x40000000L)
#include <openssl/core_names.h>
#include <openssl/params.h>
#define SF_SIG_EVP_MAC  1
#endif

#include "sf_json.h"
#include "sf_sig.h"


#define SF_SIG_SHA256_BLOCK  64


/* a partner key with its HMAC state prepared once */
struct sf_sig_key_s {
#if (SF_SIG_EVP_MAC)
    EVP_MAC_CTX   *ctx;
#else
    SHA256_CTX     inner;    /* after the key ^ ipad block */
    SHA256_CTX     outer;    /* after the key ^ opad block */
#endif
};


/* base64 of 32 bytes decodes to 33 bytes, the last one from the padding */
#define SF_SIG_B64_DECODED   (SF_SIG_B64_LEN / 4 * 3)

/* length of the "/siteflow" PrintOS service prefix */
#define SF_SIG_PRINTOS_PFX_LEN  (sizeof("/siteflow") - 1)

#define SF_SIG_PRINTOS_KEY_LEN  32

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z */
#define SF_SIG_MS_MIN        (-62167219200000LL)
#define SF_SIG_MS_MAX        253402300799999LL

#define SF_SIG_RAND_CHUNK    32


static int sf_sig_request_hmac(const EVP_MD *md,
    const unsigned char *secret, size_t secret_len, const char *msg,
    size_t msg_len, unsigned char *mac, unsigned int *mac_len);
static int sf_sig_partner_char(unsigned char c);
static int sf_sig_b64_value(unsigned char c);
static int sf_sig_hex_value(unsigned char c);
static void sf_sig_hex(const unsigned char *in, size_t len, char *out);
static sf_sig_rc_t sf_sig_hmac256(const unsigned char *key, size_t key_len,
    const unsigned char *msg, size_t msg_len,
    unsigned char mac[SF_SIG_HMAC256_LEN]);
static sf_sig_rc_t sf_sig_key_hmac256(sf_sig_key_t *k,
    const unsigned char *msg, size_t msg_len,
    unsigned char mac[SF_SIG_HMAC256_LEN]);
static sf_sig_rc_t sf_sig_b64_mac(const unsigned char mac[SF_SIG_HMAC256_LEN],
    char out[SF_SIG_B64_LEN + 1]);
static sf_sig_rc_t sf_sig_ship_check(const unsigned char *nonce,
    size_t nonce_len, const unsigned char *sig, size_t sig_len);
static sf_sig_rc_t sf_sig_ship_compare(unsigned char mac[SF_SIG_HMAC256_LEN],
    const unsigned char *sig, unsigned char mac_out[SF_SIG_HMAC256_LEN]);
static void sf_sig_civil(long long days, int *year, int *month, int *day);


static const char  sf_sig_hex_digits[] = "0123456789abcdef";


sf_sig_rc_t
sf_sig_split(const unsigned char *value, size_t len,
    const unsigned char **partner, size_t *partner_len,
    const unsigned char **sig, size_t *sig_len)
{
    size_t                i;
    const unsigned char  *colon;

    *partner = NULL;
    *partner_len = 0;
    *sig = NULL;
    *sig_len = 0;

    if (value == NULL || len == 0) {
        return SF_SIG_MISSING;
    }

    colon = memchr(value, ':', len);

    if (colon == NULL) {
        return SF_SIG_MALFORMED;
    }

    i = (size_t) (colon - value);

    if (i == 0 || i > SF_SIG_PARTNER_MAX) {
        return SF_SIG_MALFORMED;
    }

    while (i-- > 0) {
        if (!sf_sig_partner_char(value[i])) {
            return SF_SIG_MALFORMED;
        }
    }

    *partner = value;
    *partner_len = (size_t) (colon - value);
    *sig = colon + 1;
    *sig_len = len - *partner_len - 1;

    return SF_SIG_OK;
}


sf_sig_rc_t
sf_sig_nonce_check(const unsigned char *nonce, size_t len)
{
    size_t  i;

    if (nonce == NULL || len == 0) {
        return SF_SIG_MISSING;
    }

    if (len > SF_SIG_NONCE_MAX) {
        return SF_SIG_MALFORMED;
    }

    for (i = 0; i < len; i++) {
        if (nonce[i] < 0x21 || nonce[i] > 0x7e) {
            return SF_SIG_MALFORMED;
        }
    }

    return SF_SIG_OK;
}


sf_sig_rc_t
sf_sig_ship_sign(const unsigned char *key, size_t key_len,
    const unsigned char *nonce, size_t nonce_len,
    char out[SF_SIG_B64_LEN + 1])
{
    sf_sig_rc_t    rc;
    unsigned char  mac[SF_SIG_HMAC256_LEN];

    out[0] = '\0';

    rc = sf_sig_hmac256(key, key_len, nonce, nonce_len, mac);
    if (rc != SF_SIG_OK) {
        return rc;
    }

    return sf_sig_b64_mac(mac, out);
}


sf_sig_rc_t
sf_sig_ship_verify(const unsigned char *key, size_t key_len,
    const unsigned char *nonce, size_t nonce_len,
    const unsigned char *sig, size_t sig_len)
{
    sf_sig_rc_t    rc;
    unsigned char  mac[SF_SIG_HMAC256_LEN];

    rc = sf_sig_ship_check(nonce, nonce_len, sig, sig_len);
    if (rc != SF_SIG_OK) {
        return rc;
    }

    rc = sf_sig_hmac256(key, key_len, nonce, nonce_len, mac);
    if (rc != SF_SIG_OK) {
        return rc;
    }

    return sf_sig_ship_compare(mac, sig, NULL);
}


sf_sig_key_t *
sf_sig_key_new(const unsigned char *key, size_t key_len)
{
    sf_sig_key_t  *k;

    if (key == NULL || key_len == 0 || key_len > INT_MAX) {
        return NULL;
    }

    k = calloc(1, sizeof(sf_sig_key_t));
    if (k == NULL) {
        return NULL;
    }

#if (SF_SIG_EVP_MAC)
    {
    EVP_MAC    *mac;
    OSSL_PARAM  params[2];

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        free(k);
        return NULL;
    }

    k->ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);

    if (k->ctx == NULL) {
        free(k);
        return NULL;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(k->ctx, key, key_len, params) != 1) {
        sf_sig_key_free(k);
        return NULL;
    }
    }
#else
    {
    size_t         i;
    unsigned char  block[SF_SIG_SHA256_BLOCK], pad[SF_SIG_SHA256_BLOCK];

    /* RFC 2104: a key longer than a block is hashed first */

    memset(block, 0, sizeof(block));

    if (key_len > SF_SIG_SHA256_BLOCK) {
        if (SHA256(key, key_len, block) == NULL) {
            free(k);
            return NULL;
        }

    } else {
        memcpy(block, key, key_len);
    }

    for (i = 0; i < SF_SIG_SHA256_BLOCK; i++) {
        pad[i] = block[i] ^ 0x36;
    }

    if (SHA256_Init(&k->inner) != 1
        || SHA256_Update(&k->inner, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    for (i = 0; i < SF_SIG_SHA256_BLOCK; i++) {
        pad[i] = block[i] ^ 0x5c;
    }

    if (SHA256_Init(&k->outer) != 1
        || SHA256_Update(&k->outer, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));

    return k;

failed:

    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    sf_sig_key_free(k);

    return NULL;
    }
#endif

    return k;
}


void
sf_sig_key_free(sf_sig_key_t *k)
{
    if (k == NULL) {
        return;
    }

#if (SF_SIG_EVP_MAC)
    EVP_MAC_CTX_free(k->ctx);
#endif

    OPENSSL_cleanse(k, sizeof(sf_sig_key_t));
    free(k);
}


sf_sig_rc_t
sf_sig_key_ship_sign(sf_sig_key_t *k, const unsigned char *nonce,
    size_t nonce_len, char out[SF_SIG_B64_LEN + 1])
{
    sf_sig_rc_t    rc;
    unsigned char  mac[SF_SIG_HMAC256_LEN];

    out[0] = '\0';

    rc = sf_sig_key_hmac256(k, nonce, nonce_len, mac);
    if (rc != SF_SIG_OK) {
        return rc;
    }

    return sf_sig_b64_mac(mac, out);
}


sf_sig_rc_t
sf_sig_key_ship_verify(sf_sig_key_t *k, const unsigned char *nonce,
    size_t nonce_len, const unsigned char *sig, size_t sig_len,
    unsigned char mac_out[SF_SIG_HMAC256_LEN])
{
    sf_sig_rc_t    rc;
    unsigned char  mac[SF_SIG_HMAC256_LEN];

    rc = sf_sig_ship_check(nonce, nonce_len, sig, sig_len);
    if (rc != SF_SIG_OK) {
        return rc;
    }

    rc = sf_sig_key_hmac256(k, nonce, nonce_len, mac);
    if (rc != SF_SIG_OK) {
        return rc;
    }

    return sf_sig_ship_compare(mac, sig, mac_out);
}


/*
 * The format of a Ship API signature, checked before anything is
 * decoded: exactly SF_SIG_B64_LEN characters, 43 of the standard base64
 * alphabet and one '='; the last character carries 2 unused bits that
 * must be zero (canonical encoding only, so one signature has one
 * spelling).
 */

static sf_sig_rc_t
sf_sig_ship_check(const unsigned char *nonce, size_t nonce_len,
    const unsigned char *sig, size_t sig_len)
{
    int          v;
    size_t       i;
    sf_sig_rc_t  rc;

    rc = sf_sig_nonce_check(nonce, nonce_len);
    if (rc != SF_SIG_OK) {
        return rc;
    }

    if (sig == NULL || sig_len != SF_SIG_B64_LEN) {
        return SF_SIG_MALFORMED;
    }

    for (i = 0; i < SF_SIG_B64_LEN - 1; i++) {
        if (sf_sig_b64_value(sig[i]) < 0) {
            return SF_SIG_MALFORMED;
        }
    }

    v = sf_sig_b64_value(sig[SF_SIG_B64_LEN - 2]);

    if (sig[SF_SIG_B64_LEN - 1] != '=' || (v & 0x03) != 0) {
        return SF_SIG_MALFORMED;
    }

    return SF_SIG_OK;
}


/* sig has passed sf_sig_ship_check(); mac is wiped on return */

static sf_sig_rc_t
sf_sig_ship_compare(unsigned char mac[SF_SIG_HMAC256_LEN],
    const unsigned char *sig, unsigned char mac_out[SF_SIG_HMAC256_LEN])
{
    sf_sig_rc_t    rc;
    unsigned char  got[SF_SIG_B64_DECODED];

    /* EVP_DecodeBlock() counts the padding: 44 chars always give 33 */

    if (EVP_DecodeBlock(got, sig, SF_SIG_B64_LEN) != SF_SIG_B64_DECODED) {
        OPENSSL_cleanse(mac, SF_SIG_HMAC256_LEN);
        return SF_SIG_ERROR;
    }

    /* constant time comparison */

    rc = CRYPTO_memcmp(got, mac, SF_SIG_HMAC256_LEN) == 0
         ? SF_SIG_OK : SF_SIG_MISMATCH;

    if (rc == SF_SIG_OK && mac_out != NULL) {
        memcpy(mac_out, mac, SF_SIG_HMAC256_LEN);
    }

    OPENSSL_cleanse(mac, SF_SIG_HMAC256_LEN);

    return rc;
}


int
sf_sig_random_hex(char *out, size_t nbytes)
{
    size_t         n;
    unsigned char  buf[SF_SIG_RAND_CHUNK];

    if (out == NULL || nbytes > (SIZE_MAX - 1) / 2) {
        return -1;
    }

    while (nbytes > 0) {
        n = nbytes < sizeof(buf) ? nbytes : sizeof(buf);

        if (RAND_bytes(buf, (int) n) != 1) {
            OPENSSL_cleanse(buf, sizeof(buf));
            *out = '\0';
            return -1;
        }

        sf_sig_hex(buf, n, out);

        out += 2 * n;
        nbytes -= n;
    }

    OPENSSL_cleanse(buf, sizeof(buf));

    *out = '\0';

    return 0;
}


const char *
sf_sig_strerror(sf_sig_rc_t rc)
{
    switch (rc) {

    case SF_SIG_OK:
        return "ok";

    case SF_SIG_MISSING:
        return "missing";

    case SF_SIG_MALFORMED:
        return "malformed";

    case SF_SIG_MISMATCH:
        return "signature does not match";

    case SF_SIG_ERROR:
        return "internal error";
    }

    return "unknown";
}


sf_scheme_t
sf_sig_detect_scheme(const char *token, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (token == NULL || len == 0) {
        return SF_SCHEME_UNKNOWN;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) token[i];
        if (c < '0' || c > '9') {
            break;
        }
    }

    if (i == len) {
        return SF_SCHEME_ONEFLOW;
    }

    if (len != SF_SIG_PRINTOS_KEY_LEN) {
        return SF_SCHEME_UNKNOWN;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) token[i];

        if ((c >= '0' && c <= '9')
            || (c >= 'a' && c <= 'v')
            || (c >= 'A' && c <= 'V'))
        {
            continue;
        }

        return SF_SCHEME_UNKNOWN;
    }

    return SF_SCHEME_PRINTOS;
}


sf_hash_t
sf_sig_hash_parse(const char *s, size_t len)
{
    if (s == NULL) {
        return 0;
    }

    if (len == 6 && strncasecmp(s, "sha256", 6) == 0) {
        return SF_HASH_SHA256;
    }

    if (len == 4 && strncasecmp(s, "sha1", 4) == 0) {
        return SF_HASH_SHA1;
    }

    return 0;
}


sf_hash_t
sf_sig_default_hash(sf_scheme_t scheme)
{
    (void) scheme;

    return SF_HASH_SHA256;
}


const char *
sf_sig_algorithm_header(sf_scheme_t scheme, sf_hash_t hash)
{
    if (scheme != SF_SCHEME_ONEFLOW && scheme != SF_SCHEME_PRINTOS) {
        return NULL;
    }

    switch (hash) {

    case SF_HASH_SHA256:
        return "SHA256";

    case SF_HASH_SHA1:
        return (scheme == SF_SCHEME_PRINTOS) ? "SHA1" : NULL;

    default:
        return NULL;
    }
}


int
sf_sig_signed_path(sf_scheme_t scheme, const char *url, size_t url_len,
    char *out, size_t out_size)
{
    int                   hi, lo;
    size_t                i, n, path_len;
    unsigned char         c, *dst;
    const unsigned char  *p, *end, *path;

    if (url == NULL || url_len == 0 || out == NULL || out_size == 0) {
        return -1;
    }

    if (scheme != SF_SCHEME_ONEFLOW && scheme != SF_SCHEME_PRINTOS) {
        return -1;
    }

    p = (const unsigned char *) url;
    end = p + url_len;

    /* absolute URL: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) "://" */

    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {

        for (p++; p < end; p++) {
            c = *p;

            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || c == '+' || c == '-'
                || c == '.')
            {
                continue;
            }

            break;
        }

        if (end - p < 3 || p[0] != ':' || p[1] != '/' || p[2] != '/') {
            return -1;
        }

        /* skip the authority: [userinfo@]host[:port] */

        for (p += 3; p < end; p++) {
            if (*p == '/' || *p == '?' || *p == '#') {
                break;
            }
        }

    } else if (*p != '/') {
        return -1;
    }

    path = p;

    while (p < end && *p != '?' && *p != '#') {
        p++;
    }

    path_len = (size_t) (p - path);

    if (path_len == 0) {
        path = (const unsigned char *) "/";
        path_len = 1;
    }

    if (memchr(path, '\0', path_len) != NULL) {
        return -1;
    }

    dst = (unsigned char *) out;

    if (scheme == SF_SCHEME_PRINTOS) {

        if (path_len >= SF_SIG_PRINTOS_PFX_LEN
            && memcmp(path, "/siteflow", SF_SIG_PRINTOS_PFX_LEN) == 0
            && (path_len == SF_SIG_PRINTOS_PFX_LEN
                || path[SF_SIG_PRINTOS_PFX_LEN] == '/'))
        {
            path += SF_SIG_PRINTOS_PFX_LEN;
            path_len -= SF_SIG_PRINTOS_PFX_LEN;

            if (path_len == 0) {
                path = (const unsigned char *) "/";
                path_len = 1;
            }
        }

        if (path_len >= out_size || path_len > INT_MAX) {
            return -1;
        }

        memcpy(dst, path, path_len);
        dst[path_len] = '\0';

        return (int) path_len;
    }

    /* SF_SCHEME_ONEFLOW: decodeURIComponent() */

    n = 0;

    for (i = 0; i < path_len; i++) {
        c = path[i];

        if (c == '%') {
            if (path_len - i < 3) {
                return -1;
            }

            hi = sf_sig_hex_value(path[i + 1]);
            lo = sf_sig_hex_value(path[i + 2]);

            if (hi < 0 || lo < 0) {
                return -1;
            }

            c = (unsigned char) (hi << 4 | lo);

            if (c == '\0') {
                return -1;
            }

            i += 2;
        }

        if (n + 1 >= out_size || n >= INT_MAX) {
            return -1;
        }

        dst[n++] = c;
    }

    dst[n] = '\0';

    /* well-formed UTF-8 as decodeURIComponent() accepts it */

    if (!sf_json_utf8_valid(dst, n)) {
        dst[0] = '\0';
        return -1;
    }

    return (int) n;
}


int
sf_sig_request(sf_scheme_t scheme, sf_hash_t hash,
    const char *method, const char *path, const char *timestamp,
    const unsigned char *secret, size_t secret_len,
    char *out_hex, size_t out_size)
{
    char           *p, sts[SF_SIG_STS_MAX];
    size_t          i, mlen, plen, tlen, len, hex_len;
    unsigned int    mac_len;
    const EVP_MD   *md;
    unsigned char   c, mac[EVP_MAX_MD_SIZE];

    if (out_hex == NULL || out_size == 0) {
        return -1;
    }

    out_hex[0] = '\0';

    if (scheme != SF_SCHEME_ONEFLOW && scheme != SF_SCHEME_PRINTOS) {
        return -1;
    }

    switch (hash) {

    case SF_HASH_SHA1:
        md = EVP_sha1();
        hex_len = 40;
        break;

    case SF_HASH_SHA256:
        md = EVP_sha256();
        hex_len = 64;
        break;

    default:
        return -1;
    }

    if (md == NULL || out_size < hex_len + 1) {
        return -1;
    }

    if (method == NULL || path == NULL || timestamp == NULL
        || secret == NULL || secret_len == 0 || secret_len > INT_MAX)
    {
        return -1;
    }

    mlen = strnlen(method, SF_SIG_METHOD_MAX + 1);
    plen = strnlen(path, SF_SIG_STS_MAX + 1);
    tlen = strnlen(timestamp, SF_SIG_STS_MAX + 1);

    if (mlen == 0 || mlen > SF_SIG_METHOD_MAX || plen == 0 || tlen == 0) {
        return -1;
    }

    len = mlen + 1 + plen + (scheme == SF_SCHEME_ONEFLOW) + tlen;

    if (len > SF_SIG_STS_MAX) {
        return -1;
    }

    p = sts;

    for (i = 0; i < mlen; i++) {
        c = (unsigned char) method[i];

        if (c < 0x21 || c > 0x7e) {
            return -1;
        }

        *p++ = (char) ((c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c);
    }

    *p++ = ' ';
    memcpy(p, path, plen);
    p += plen;

    if (scheme == SF_SCHEME_ONEFLOW) {
        *p++ = ' ';
    }

    memcpy(p, timestamp, tlen);

    if (sf_sig_request_hmac(md, secret, secret_len, sts, len, mac, &mac_len)
        != 0)
    {
        return -1;
    }

    if ((size_t) mac_len * 2 != hex_len) {
        return -1;
    }

    sf_sig_hex(mac, mac_len, out_hex);
    out_hex[mac_len * 2] = '\0';

    return (int) mac_len * 2;
}


/*
 * The HMAC of a request signature.  A worker signs every call with the
 * same one or two secrets: the HMAC context of the last secret and
 * algorithm is kept, its key set once (HMAC() fetched the digest and set
 * the key up on every call, about three times the work).  Not for
 * threads: the module signs from the event loop only.
 */

#define SF_SIG_CACHED_KEY_MAX  256

static HMAC_CTX       *sf_sig_cached_ctx;
static const EVP_MD   *sf_sig_cached_md;
static size_t          sf_sig_cached_len;
static unsigned char   sf_sig_cached_key[SF_SIG_CACHED_KEY_MAX];


static int
sf_sig_request_hmac(const EVP_MD *md, const unsigned char *secret,
    size_t secret_len, const char *msg, size_t msg_len, unsigned char *mac,
    unsigned int *mac_len)
{
    if (secret_len > SF_SIG_CACHED_KEY_MAX) {
        return HMAC(md, secret, (int) secret_len,
                    (const unsigned char *) msg, msg_len, mac, mac_len)
               == NULL ? -1 : 0;
    }

    if (sf_sig_cached_ctx == NULL) {
        sf_sig_cached_ctx = HMAC_CTX_new();
        if (sf_sig_cached_ctx == NULL) {
            return -1;
        }
    }

    if (sf_sig_cached_md == md && sf_sig_cached_len == secret_len
        && CRYPTO_memcmp(sf_sig_cached_key, secret, secret_len) == 0)
    {
        /* the same key: HMAC_Init_ex() with NULL keeps it */

        if (HMAC_Init_ex(sf_sig_cached_ctx, NULL, 0, NULL, NULL) != 1) {
            sf_sig_cached_md = NULL;
            return -1;
        }

    } else {
        sf_sig_cached_md = NULL;

        if (HMAC_Init_ex(sf_sig_cached_ctx, secret, (int) secret_len, md,
                         NULL)
            != 1)
        {
            return -1;
        }

        memcpy(sf_sig_cached_key, secret, secret_len);
        sf_sig_cached_len = secret_len;
        sf_sig_cached_md = md;
    }

    if (HMAC_Update(sf_sig_cached_ctx, (const unsigned char *) msg, msg_len)
        != 1
        || HMAC_Final(sf_sig_cached_ctx, mac, mac_len) != 1)
    {
        sf_sig_cached_md = NULL;
        return -1;
    }

    return 0;
}


void
sf_sig_release(void)
{
    HMAC_CTX_free(sf_sig_cached_ctx);
    sf_sig_cached_ctx = NULL;
    sf_sig_cached_md = NULL;
    sf_sig_cached_len = 0;
    OPENSSL_cleanse(sf_sig_cached_key, sizeof(sf_sig_cached_key));
}


/* v (0 <= v < 10^width) in width decimal digits, zeros in front */

static void
sf_sig_digits(char *out, int v, int width)
{
    while (width--) {
        out[width] = (char) ('0' + v % 10);
        v /= 10;
    }
}


int
sf_sig_timestamp(long long epoch_ms, char *out, size_t out_size)
{
    int        year, month, day;
    long long  ms, secs, days, sod;

    if (out == NULL || out_size < SF_SIG_TIMESTAMP_LEN + 1) {
        return -1;
    }

    if (epoch_ms < SF_SIG_MS_MIN || epoch_ms > SF_SIG_MS_MAX) {
        out[0] = '\0';
        return -1;
    }

    /* floor division, so that times before 1970 work too */

    ms = epoch_ms % 1000;
    secs = epoch_ms / 1000;

    if (ms < 0) {
        ms += 1000;
        secs--;
    }

    days = secs / 86400;
    sod = secs % 86400;

    if (sod < 0) {
        sod += 86400;
        days--;
    }

    sf_sig_civil(days, &year, &month, &day);

    if (year < 0 || year > 9999) {
        out[0] = '\0';
        return -1;
    }

    /* "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", digit by digit */

    sf_sig_digits(out, year, 4);
    out[4] = '-';
    sf_sig_digits(out + 5, month, 2);
    out[7] = '-';
    sf_sig_digits(out + 8, day, 2);
    out[10] = 'T';
    sf_sig_digits(out + 11, (int) (sod / 3600), 2);
    out[13] = ':';
    sf_sig_digits(out + 14, (int) (sod / 60 % 60), 2);
    out[16] = ':';
    sf_sig_digits(out + 17, (int) (sod % 60), 2);
    out[19] = '.';
    sf_sig_digits(out + 20, (int) ms, 3);
    out[23] = 'Z';
    out[24] = '\0';

    return SF_SIG_TIMESTAMP_LEN;
}


/* [A-Za-z0-9._-], the partner id alphabet */

static int
sf_sig_partner_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}


/* standard base64 alphabet (RFC 4648 section 4), no padding, no url-safe */

static int
sf_sig_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


static int
sf_sig_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


static void
sf_sig_hex(const unsigned char *in, size_t len, char *out)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        *out++ = sf_sig_hex_digits[in[i] >> 4];
        *out++ = sf_sig_hex_digits[in[i] & 0x0f];
    }
}


static sf_sig_rc_t
sf_sig_hmac256(const unsigned char *key, size_t key_len,
    const unsigned char *msg, size_t msg_len,
    unsigned char mac[SF_SIG_HMAC256_LEN])
{
    unsigned int  len;

    if (key == NULL || key_len == 0 || key_len > INT_MAX) {
        return SF_SIG_ERROR;
    }

    if (msg == NULL) {
        if (msg_len != 0) {
            return SF_SIG_ERROR;
        }

        msg = (const unsigned char *) "";
    }

    if (HMAC(EVP_sha256(), key, (int) key_len, msg, msg_len, mac, &len)
        == NULL
        || len != SF_SIG_HMAC256_LEN)
    {
        return SF_SIG_ERROR;
    }

    return SF_SIG_OK;
}


static sf_sig_rc_t
sf_sig_key_hmac256(sf_sig_key_t *k, const unsigned char *msg,
    size_t msg_len, unsigned char mac[SF_SIG_HMAC256_LEN])
{
    if (k == NULL || (msg == NULL && msg_len != 0)) {
        return SF_SIG_ERROR;
    }

    if (msg == NULL) {
        msg = (const unsigned char *) "";
    }

#if (SF_SIG_EVP_MAC)
    {
    size_t  len;

    /* a NULL key re-initialises the context with the key it holds */

    if (EVP_MAC_init(k->ctx, NULL, 0, NULL) != 1
        || EVP_MAC_update(k->ctx, msg, msg_len) != 1
        || EVP_MAC_final(k->ctx, mac, &len, SF_SIG_HMAC256_LEN) != 1
        || len != SF_SIG_HMAC256_LEN)
    {
        return SF_SIG_ERROR;
    }
    }
#else
    {
    int         ok;
    SHA256_CTX  c;

    c = k->inner;
    ok = SHA256_Update(&c, msg, msg_len) == 1 && SHA256_Final(mac, &c) == 1;

    if (ok) {
        c = k->outer;
        ok = SHA256_Update(&c, mac, SF_SIG_HMAC256_LEN) == 1
             && SHA256_Final(mac, &c) == 1;
    }

    OPENSSL_cleanse(&c, sizeof(c));

    if (!ok) {
        return SF_SIG_ERROR;
    }
    }
#endif

    return SF_SIG_OK;
}


static sf_sig_rc_t
sf_sig_b64_mac(const unsigned char mac[SF_SIG_HMAC256_LEN],
    char out[SF_SIG_B64_LEN + 1])
{
    if (EVP_EncodeBlock((unsigned char *) out, mac, SF_SIG_HMAC256_LEN)
        != SF_SIG_B64_LEN)
    {
        out[0] = '\0';
        return SF_SIG_ERROR;
    }

    return SF_SIG_OK;
}


/* days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant) */

static void
sf_sig_civil(long long days, int *year, int *month, int *day)
{
    long long  z, era, doe, yoe, doy, mp, y, m;

    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    m = mp < 10 ? mp + 3 : mp - 9;

    *day = (int) (doy - (153 * mp + 2) / 5 + 1);
    *month = (int) m;
    *year = (int) (y + (m <= 2));
}
