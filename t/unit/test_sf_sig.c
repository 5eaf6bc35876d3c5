
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_sig.c: the Ship API partner signature
 * (protocols.md 3a) and outbound request signing (protocols.md 1).
 */


#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "sf_sig.h"


#define S(s)        (const unsigned char *) (s), (sizeof(s) - 1)

#define SHIP_KEY    "0123456789abcdef0123456789abcdef01234567"
#define SHIP_NONCE  "abc123"
#define SHIP_SIG    "OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs="

#define REQ_SECRET  "testsecret"
#define REQ_TS      "2024-05-01T12:00:00.000Z"

#define PRINTOS_KEY "0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p"


static void test_ship_vector(void **state);
static void test_ship_tamper(void **state);
static void test_ship_prepared_key(void **state);
static void test_ship_length(void **state);
static void test_ship_alphabet(void **state);
static void test_ship_missing(void **state);
static void test_ship_key(void **state);
static void test_split(void **state);
static void test_split_partner(void **state);
static void test_nonce(void **state);
static void test_random_hex(void **state);
static void test_strerror(void **state);
static void test_request_vectors(void **state);
static void test_request_invalid(void **state);
static void test_signed_path_url(void **state);
static void test_signed_path_oneflow(void **state);
static void test_signed_path_printos(void **state);
static void test_signed_path_overflow(void **state);
static void test_signed_path_end_to_end(void **state);
static void test_detect_scheme(void **state);
static void test_algorithm(void **state);
static void test_timestamp(void **state);

static void expect_path(sf_scheme_t scheme, const char *url,
    const char *want);
static void expect_ts(long long ms, const char *want);


static void
test_ship_vector(void **state)
{
    char  out[SF_SIG_B64_LEN + 1];

    (void) state;

    assert_int_equal(sf_sig_ship_sign(S(SHIP_KEY), S(SHIP_NONCE), out),
                     SF_SIG_OK);
    assert_string_equal(out, SHIP_SIG);

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                        S(SHIP_SIG)),
                     SF_SIG_OK);
}


/* every single-bit change of the 32 signature bytes is a mismatch */

static void
test_ship_tamper(void **state)
{
    int            n;
    size_t         bit;
    unsigned char  raw[SF_SIG_B64_LEN], b64[SF_SIG_B64_LEN + 1];

    (void) state;

    n = EVP_DecodeBlock(raw, (const unsigned char *) SHIP_SIG,
                        SF_SIG_B64_LEN);
    assert_int_equal(n, 33);

    for (bit = 0; bit < SF_SIG_HMAC256_LEN * 8; bit++) {
        raw[bit / 8] ^= (unsigned char) (1 << (bit % 8));

        assert_int_equal(EVP_EncodeBlock(b64, raw, SF_SIG_HMAC256_LEN),
                         SF_SIG_B64_LEN);
        assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                            b64, SF_SIG_B64_LEN),
                         SF_SIG_MISMATCH);

        raw[bit / 8] ^= (unsigned char) (1 << (bit % 8));
    }

    /* the same through a character: 'O' (14) -> 'P' (15) */

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                         S("PZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs=")),
                     SF_SIG_MISMATCH);

    /* a different nonce */

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S("abc124"),
                                        S(SHIP_SIG)),
                     SF_SIG_MISMATCH);
}


static void
test_ship_length(void **state)
{
    (void) state;

    /* no padding */
    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                         S("OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs")),
                     SF_SIG_MALFORMED);

    /* one byte too many */
    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                         S("OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs==")),
                     SF_SIG_MALFORMED);

    /* valid signature followed by garbage */
    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                         S(SHIP_SIG SHIP_SIG)),
                     SF_SIG_MALFORMED);

    /* hex instead of base64 */
    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                         S("3994786406966e79c35e6a6e5b46153a8f408a55"
                           "b96d63ec6aaffadb82d4e8995b")),
                     SF_SIG_MALFORMED);

    /* empty signature part ("partner:") */
    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                        (const unsigned char *) "", 0),
                     SF_SIG_MALFORMED);

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                        NULL, 0),
                     SF_SIG_MALFORMED);
}


static void
test_ship_alphabet(void **state)
{
    size_t                i, k;
    unsigned char         sig[SF_SIG_B64_LEN];
    static const char     bad[] = "-_ *.!~\t\n";
    static const size_t   pos[] = { 0, 10, 42 };

    (void) state;

    for (i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {

        for (k = 0; k < sizeof(bad) - 1; k++) {
            memcpy(sig, SHIP_SIG, SF_SIG_B64_LEN);
            sig[pos[i]] = (unsigned char) bad[k];

            assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                                sig, SF_SIG_B64_LEN),
                             SF_SIG_MALFORMED);
        }

        /* NUL, high bytes and a misplaced '=' */

        memcpy(sig, SHIP_SIG, SF_SIG_B64_LEN);
        sig[pos[i]] = '\0';
        assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                            sig, SF_SIG_B64_LEN),
                         SF_SIG_MALFORMED);

        sig[pos[i]] = 0xff;
        assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                            sig, SF_SIG_B64_LEN),
                         SF_SIG_MALFORMED);

        sig[pos[i]] = '=';
        assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                            sig, SF_SIG_B64_LEN),
                         SF_SIG_MALFORMED);
    }

    /* last character must be the single '=' */

    memcpy(sig, SHIP_SIG, SF_SIG_B64_LEN);
    sig[SF_SIG_B64_LEN - 1] = 'A';
    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                                        sig, SF_SIG_B64_LEN),
                     SF_SIG_MALFORMED);

    /* non-canonical: 's' (44) -> 't' (45) sets an unused low bit */

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S(SHIP_NONCE),
                         S("OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVt=")),
                     SF_SIG_MALFORMED);
}


static void
test_ship_missing(void **state)
{
    (void) state;

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY),
                                        (const unsigned char *) "", 0,
                                        S(SHIP_SIG)),
                     SF_SIG_MISSING);

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), NULL, 0, S(SHIP_SIG)),
                     SF_SIG_MISSING);

    /* a nonce with a space is rejected before the signature is looked at */

    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY), S("abc 123"),
                                        S(SHIP_SIG)),
                     SF_SIG_MALFORMED);
}


static void
test_ship_key(void **state)
{
    char  out[SF_SIG_B64_LEN + 1];

    (void) state;

    /* wrong key */
    assert_int_equal(sf_sig_ship_verify(
                         S("0123456789abcdef0123456789abcdef01234568"),
                         S(SHIP_NONCE), S(SHIP_SIG)),
                     SF_SIG_MISMATCH);

    /* the key is used as text, not hex-decoded */
    assert_int_equal(sf_sig_ship_verify(
                         S("\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45"
                           "\x67\x89\xab\xcd\xef\x01\x23\x45\x67"),
                         S(SHIP_NONCE), S(SHIP_SIG)),
                     SF_SIG_MISMATCH);

    /* no key is a caller error, never a pass */
    assert_int_equal(sf_sig_ship_verify((const unsigned char *) "", 0,
                                        S(SHIP_NONCE), S(SHIP_SIG)),
                     SF_SIG_ERROR);
    assert_int_equal(sf_sig_ship_verify(NULL, 0, S(SHIP_NONCE), S(SHIP_SIG)),
                     SF_SIG_ERROR);
    assert_int_equal(sf_sig_ship_sign(NULL, 0, S(SHIP_NONCE), out),
                     SF_SIG_ERROR);
    assert_string_equal(out, "");

    /* a long response nonce (48 random bytes as hex) round-trips */

    assert_int_equal(sf_sig_ship_sign(S(SHIP_KEY),
                         S("00112233445566778899aabbccddeeff0011223344556677"
                           "8899aabbccddeeff00112233445566778899aabbccddeeff"),
                         out),
                     SF_SIG_OK);
    assert_int_equal(strlen(out), SF_SIG_B64_LEN);
    assert_int_equal(sf_sig_ship_verify(S(SHIP_KEY),
                         S("00112233445566778899aabbccddeeff0011223344556677"
                           "8899aabbccddeeff00112233445566778899aabbccddeeff"),
                         (const unsigned char *) out, SF_SIG_B64_LEN),
                     SF_SIG_OK);
}


static void
test_split(void **state)
{
    size_t                plen, slen;
    const unsigned char  *partner, *sig, *v;

    (void) state;

    v = (const unsigned char *) "acme:" SHIP_SIG;
    assert_int_equal(sf_sig_split(v, strlen((const char *) v),
                                  &partner, &plen, &sig, &slen),
                     SF_SIG_OK);
    assert_ptr_equal(partner, v);
    assert_int_equal(plen, 4);
    assert_ptr_equal(sig, v + 5);
    assert_int_equal(slen, SF_SIG_B64_LEN);

    /* empty */
    assert_int_equal(sf_sig_split((const unsigned char *) "", 0,
                                  &partner, &plen, &sig, &slen),
                     SF_SIG_MISSING);
    assert_null(partner);
    assert_null(sig);
    assert_int_equal(sf_sig_split(NULL, 0, &partner, &plen, &sig, &slen),
                     SF_SIG_MISSING);

    /* no colon */
    assert_int_equal(sf_sig_split(S("acme" SHIP_SIG),
                                  &partner, &plen, &sig, &slen),
                     SF_SIG_MALFORMED);
    assert_null(partner);
    assert_int_equal(plen, 0);
    assert_null(sig);
    assert_int_equal(slen, 0);

    /* leading colon: empty partner */
    assert_int_equal(sf_sig_split(S(":" SHIP_SIG),
                                  &partner, &plen, &sig, &slen),
                     SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_split(S(":"), &partner, &plen, &sig, &slen),
                     SF_SIG_MALFORMED);

    /* colon inside the signature part: split at the first one */
    v = (const unsigned char *) "acme:abc:def";
    assert_int_equal(sf_sig_split(v, 12, &partner, &plen, &sig, &slen),
                     SF_SIG_OK);
    assert_int_equal(plen, 4);
    assert_int_equal(slen, 7);
    assert_memory_equal(sig, "abc:def", 7);

    /* trailing colon: empty signature, judged later by verify */
    assert_int_equal(sf_sig_split(S("acme:"), &partner, &plen, &sig, &slen),
                     SF_SIG_OK);
    assert_int_equal(plen, 4);
    assert_int_equal(slen, 0);

    /* the length is honoured, not a NUL */
    assert_int_equal(sf_sig_split(S("acme:x"), &partner, &plen,
                                  &sig, &slen),
                     SF_SIG_OK);
    assert_int_equal(sf_sig_split((const unsigned char *) "acme:x", 4,
                                  &partner, &plen, &sig, &slen),
                     SF_SIG_MALFORMED);
}


static void
test_split_partner(void **state)
{
    size_t                i, plen, slen;
    unsigned char         buf[SF_SIG_PARTNER_MAX + 8];
    const unsigned char  *partner, *sig;
    static const char    *bad[] = {
        " acme:x", "acme :x", "ac me:x", "ac/me:x", "ac+me:x", "ac=me:x",
        "ac@me:x", "ac\tme:x", "caf\xc3\xa9:x", "ac\x7fme:x"
    };

    (void) state;

    /* the whole charset is accepted */
    assert_int_equal(sf_sig_split(S("AZaz09._-:x"), &partner, &plen,
                                  &sig, &slen),
                     SF_SIG_OK);
    assert_int_equal(plen, 9);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sf_sig_split((const unsigned char *) bad[i],
                                      strlen(bad[i]),
                                      &partner, &plen, &sig, &slen),
                         SF_SIG_MALFORMED);
    }

    /* NUL inside the partner */
    assert_int_equal(sf_sig_split(S("ac\0me:x"), &partner, &plen,
                                  &sig, &slen),
                     SF_SIG_MALFORMED);

    /* SF_SIG_PARTNER_MAX is accepted, one more is not */

    memset(buf, 'p', sizeof(buf));
    buf[SF_SIG_PARTNER_MAX] = ':';
    assert_int_equal(sf_sig_split(buf, SF_SIG_PARTNER_MAX + 2,
                                  &partner, &plen, &sig, &slen),
                     SF_SIG_OK);
    assert_int_equal(plen, SF_SIG_PARTNER_MAX);
    assert_int_equal(slen, 1);

    memset(buf, 'p', sizeof(buf));
    buf[SF_SIG_PARTNER_MAX + 1] = ':';
    assert_int_equal(sf_sig_split(buf, SF_SIG_PARTNER_MAX + 3,
                                  &partner, &plen, &sig, &slen),
                     SF_SIG_MALFORMED);
}


static void
test_nonce(void **state)
{
    unsigned char  buf[SF_SIG_NONCE_MAX + 1];

    (void) state;

    assert_int_equal(sf_sig_nonce_check(S(SHIP_NONCE)), SF_SIG_OK);
    assert_int_equal(sf_sig_nonce_check(S("!")), SF_SIG_OK);
    assert_int_equal(sf_sig_nonce_check(S("~")), SF_SIG_OK);
    assert_int_equal(sf_sig_nonce_check(S("a:b=c/d+e")), SF_SIG_OK);

    assert_int_equal(sf_sig_nonce_check((const unsigned char *) "", 0),
                     SF_SIG_MISSING);
    assert_int_equal(sf_sig_nonce_check(NULL, 0), SF_SIG_MISSING);

    assert_int_equal(sf_sig_nonce_check(S("abc 123")), SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_nonce_check(S(" ")), SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_nonce_check(S("abc\t")), SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_nonce_check(S("abc\r\n")), SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_nonce_check(S("a\0b")), SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_nonce_check(S("a\x7f")), SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_nonce_check(S("a\x80")), SF_SIG_MALFORMED);
    assert_int_equal(sf_sig_nonce_check(S("\xff")), SF_SIG_MALFORMED);

    memset(buf, 'n', sizeof(buf));
    assert_int_equal(sf_sig_nonce_check(buf, SF_SIG_NONCE_MAX), SF_SIG_OK);
    assert_int_equal(sf_sig_nonce_check(buf, SF_SIG_NONCE_MAX + 1),
                     SF_SIG_MALFORMED);
}


static void
test_random_hex(void **state)
{
    size_t  i;
    char    a[2 * 48 + 2], b[2 * 48 + 2], big[2 * 100 + 2];

    (void) state;

    memset(a, 'X', sizeof(a));
    assert_int_equal(sf_sig_random_hex(a, 48), 0);
    assert_int_equal(strlen(a), 96);
    assert_int_equal(a[97], 'X');               /* nothing past the NUL */

    for (i = 0; i < 96; i++) {
        assert_non_null(strchr("0123456789abcdef", a[i]));
    }

    assert_int_equal(sf_sig_random_hex(b, 48), 0);
    assert_string_not_equal(a, b);

    /* more than one internal chunk */
    memset(big, 'X', sizeof(big));
    assert_int_equal(sf_sig_random_hex(big, 100), 0);
    assert_int_equal(strlen(big), 200);
    assert_int_equal(big[201], 'X');
    assert_int_equal(strspn(big, "0123456789abcdef"), 200);

    a[0] = 'X';
    assert_int_equal(sf_sig_random_hex(a, 0), 0);
    assert_string_equal(a, "");

    assert_int_equal(sf_sig_random_hex(NULL, 4), -1);
    assert_int_equal(sf_sig_random_hex(a, SIZE_MAX / 2 + 1), -1);

    /* a random nonce passes the nonce check */
    assert_int_equal(sf_sig_random_hex(a, 48), 0);
    assert_int_equal(sf_sig_nonce_check((const unsigned char *) a,
                                        strlen(a)),
                     SF_SIG_OK);
}


static void
test_strerror(void **state)
{
    int          i, k;
    const char  *s[5];

    (void) state;

    for (i = 0; i < 5; i++) {
        s[i] = sf_sig_strerror((sf_sig_rc_t) i);
        assert_non_null(s[i]);
        assert_true(strlen(s[i]) > 0);

        for (k = 0; k < i; k++) {
            assert_string_not_equal(s[i], s[k]);
        }
    }

    assert_string_equal(sf_sig_strerror(SF_SIG_OK), "ok");
    assert_string_equal(sf_sig_strerror(SF_SIG_MISMATCH),
                        "signature does not match");
    assert_string_equal(sf_sig_strerror((sf_sig_rc_t) 99), "unknown");
}


static void
test_request_vectors(void **state)
{
    char  hex[SF_SIG_HEX_MAX + 1];

    (void) state;

    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     40);
    assert_string_equal(hex, "a66147d2dbd5b9c92116f5105c873869753ffa7b");

    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA256,
                                    "POST", "/api/order", REQ_TS,
                                    S(REQ_SECRET), hex, sizeof(hex)),
                     64);
    assert_string_equal(hex, "39df2e30fe9d066685fea94cfc50b3f8"
                             "c2088ba07503cef5bf3201facc615c7a");

    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     40);
    assert_string_equal(hex, "b8cef39aa5d16a0cd9c776146da340a5c2f5a45c");

    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, SF_HASH_SHA256,
                                    "POST", "/api/order", REQ_TS,
                                    S(REQ_SECRET), hex, sizeof(hex)),
                     64);
    assert_string_equal(hex, "d117bed8fb9a9867c79fb4f1e64a1577"
                             "b0b52d124c0664679add3d9260b3f8cc");

    /* the method is uppercased before signing */

    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "post",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     40);
    assert_string_equal(hex, "a66147d2dbd5b9c92116f5105c873869753ffa7b");

    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, SF_HASH_SHA256,
                                    "PoSt", "/api/order", REQ_TS,
                                    S(REQ_SECRET), hex, sizeof(hex)),
                     64);
    assert_string_equal(hex, "d117bed8fb9a9867c79fb4f1e64a1577"
                             "b0b52d124c0664679add3d9260b3f8cc");

    /* exact-size output buffers */

    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, 41),
                     40);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA256,
                                    "POST", "/api/order", REQ_TS,
                                    S(REQ_SECRET), hex, 65),
                     64);
}


static void
test_request_invalid(void **state)
{
    size_t  i;
    char    hex[SF_SIG_HEX_MAX + 1];
    char    path[SF_SIG_STS_MAX + 2];

    (void) state;

    /* output one byte too short */
    hex[0] = 'X';
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, 40),
                     -1);
    assert_int_equal(hex[0], '\0');
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA256,
                                    "POST", "/api/order", REQ_TS,
                                    S(REQ_SECRET), hex, 64),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    NULL, 0),
                     -1);

    /* scheme and hash */
    assert_int_equal(sf_sig_request(SF_SCHEME_UNKNOWN, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, (sf_hash_t) 0, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);

    /* method */
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "PO ST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1,
                                    "POST\xc3\xa9", "/api/order", REQ_TS,
                                    S(REQ_SECRET), hex, sizeof(hex)),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1,
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, NULL,
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);

    /* path, timestamp, secret */
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "POST",
                                    "", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "POST",
                                    "/api/order", "", S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS,
                                    (const unsigned char *) "", 0,
                                    hex, sizeof(hex)),
                     -1);

    /* string-to-sign exactly SF_SIG_STS_MAX, then one byte more */

    path[0] = '/';
    for (i = 1; i < sizeof(path); i++) {
        path[i] = 'a';
    }

    /* "POST " + path + " " + "T" */
    path[SF_SIG_STS_MAX - 7] = '\0';
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA256,
                                    "POST", path, "T", S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     64);

    path[SF_SIG_STS_MAX - 7] = 'a';
    path[SF_SIG_STS_MAX - 6] = '\0';
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA256,
                                    "POST", path, "T", S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);

    /* PrintOS has no second space, so that one byte fits again */
    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, SF_HASH_SHA256,
                                    "POST", path, "T", S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     64);

    path[SF_SIG_STS_MAX - 6] = 'a';
    path[SF_SIG_STS_MAX + 1] = '\0';
    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, SF_HASH_SHA256,
                                    "POST", path, "T", S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     -1);
}


static void
expect_path(sf_scheme_t scheme, const char *url, const char *want)
{
    int   n;
    char  out[256];

    memset(out, 'X', sizeof(out));

    n = sf_sig_signed_path(scheme, url, strlen(url), out, sizeof(out));

    if (want == NULL) {
        if (n != -1) {
            print_error("url \"%s\": got \"%s\", want -1\n", url, out);
        }

        assert_int_equal(n, -1);
        return;
    }

    if (n < 0 || strcmp(out, want) != 0) {
        print_error("url \"%s\": got %d \"%.*s\", want \"%s\"\n",
                    url, n, n < 0 ? 0 : n, out, want);
    }

    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}


static void
test_signed_path_url(void **state)
{
    int          i;
    sf_scheme_t  s;

    (void) state;

    for (i = 0; i < 2; i++) {
        s = i == 0 ? SF_SCHEME_ONEFLOW : SF_SCHEME_PRINTOS;

        expect_path(s, "https://pro-api.oneflowcloud.com/api/order",
                    "/api/order");
        expect_path(s, "https://h/api/order?page=2&x=/y", "/api/order");
        expect_path(s, "https://h/api/order#frag", "/api/order");
        expect_path(s, "https://h/api/order#f?x=1", "/api/order");
        expect_path(s, "https://h/api/order?x=1#f", "/api/order");
        expect_path(s, "https://h:8443/api/order", "/api/order");
        expect_path(s, "https://u:p@h:8443/api/order", "/api/order");
        expect_path(s, "http://[::1]:8080/api/order", "/api/order");
        expect_path(s, "HTTPS://H/api/order", "/api/order");
        expect_path(s, "svc+x.y-z://h/a", "/a");
        expect_path(s, "https://h/api/order/", "/api/order/");

        /* no path */
        expect_path(s, "https://h", "/");
        expect_path(s, "https://h:443", "/");
        expect_path(s, "https://h?q=1", "/");
        expect_path(s, "https://h#f", "/");
        expect_path(s, "https://h/", "/");
        expect_path(s, "https:///api", "/api");

        /* origin-form */
        expect_path(s, "/api/order?x=1", "/api/order");
        expect_path(s, "/", "/");
        expect_path(s, "/?x", "/");

        /* not a URL we sign */
        expect_path(s, "api/order", NULL);
        expect_path(s, "?x=1", NULL);
        expect_path(s, "mailto:x@y", NULL);
        expect_path(s, "https:/api", NULL);
        expect_path(s, "https:", NULL);
        expect_path(s, "1http://h/a", NULL);
        expect_path(s, " https://h/a", NULL);
        expect_path(s, "", NULL);
    }

    expect_path(SF_SCHEME_UNKNOWN, "https://h/api/order", NULL);
}


static void
test_signed_path_oneflow(void **state)
{
    char  out[64];

    (void) state;

    expect_path(SF_SCHEME_ONEFLOW,
                "https://pro-api.oneflowcloud.com/api/order/bysourceid/A%20B",
                "/api/order/bysourceid/A B");

    /* %2F is decoded as decodeURIComponent() does */
    expect_path(SF_SCHEME_ONEFLOW, "https://h/api/a%2Fb", "/api/a/b");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/api/a%2fb", "/api/a/b");

    /* no double decoding, '+' stays */
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%2541", "/a%41");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a+b", "/a+b");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%3F?x", "/?");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%23#x", "/#");

    /* UTF-8 */
    expect_path(SF_SCHEME_ONEFLOW, "https://h/caf%C3%A9", "/caf\xc3\xa9");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/caf%c3%a9", "/caf\xc3\xa9");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/caf\xc3\xa9", "/caf\xc3\xa9");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%F0%9F%98%80",
                "/\xf0\x9f\x98\x80");
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%EF%BF%BF", "/\xef\xbf\xbf");

    /* malformed escapes are rejected: decodeURIComponent() would throw */
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%zz", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%2", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%?x=1", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%g0", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%0g", NULL);

    /* ... and so are NUL and invalid UTF-8 */
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%00b", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%FF", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%C3", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/a%C3%28", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%C0%AF", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%E0%80%AF", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%ED%A0%80", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/%F4%90%80%80", NULL);
    expect_path(SF_SCHEME_ONEFLOW, "https://h/\xff", NULL);

    /* a NUL byte inside the given length */
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, "https://h/a\0b",
                                        13, out, sizeof(out)),
                     -1);

    /* a NUL after the path (in the query) does not matter */
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, "https://h/a?\0",
                                        13, out, sizeof(out)),
                     2);
    assert_string_equal(out, "/a");

    /* the PrintOS prefix is not special for OneFlow */
    expect_path(SF_SCHEME_ONEFLOW, "https://h/siteflow/api/order",
                "/siteflow/api/order");
}


static void
test_signed_path_printos(void **state)
{
    (void) state;

    expect_path(SF_SCHEME_PRINTOS,
                "https://printos.api.hp.com/siteflow/api/order",
                "/api/order");
    expect_path(SF_SCHEME_PRINTOS,
                "https://stage.printos.api.hp.com/siteflow/api/order?x=1",
                "/api/order");

    /* only as a whole segment */
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflowx/api",
                "/siteflowx/api");
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflow", "/");
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflow/", "/");
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflow?x=1", "/");
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflow#f", "/");
    expect_path(SF_SCHEME_PRINTOS, "/siteflow/api/order", "/api/order");

    /* only once, only leading, case-sensitive */
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflow/siteflow/api",
                "/siteflow/api");
    expect_path(SF_SCHEME_PRINTOS, "https://h/api/siteflow/x",
                "/api/siteflow/x");
    expect_path(SF_SCHEME_PRINTOS, "https://h/SiteFlow/api",
                "/SiteFlow/api");
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflo", "/siteflo");
    expect_path(SF_SCHEME_PRINTOS, "https://h//siteflow/api",
                "//siteflow/api");

    /* no decoding */
    expect_path(SF_SCHEME_PRINTOS, "https://h/siteflow/api/A%20B",
                "/api/A%20B");
    expect_path(SF_SCHEME_PRINTOS, "https://h/%73iteflow/api",
                "/%73iteflow/api");
    expect_path(SF_SCHEME_PRINTOS, "https://h/a%zz", "/a%zz");
}


static void
test_signed_path_overflow(void **state)
{
    char         out[16];
    const char  *url;

    (void) state;

    /* "/api/order" is 10 bytes: 11 fits, 10 does not */

    url = "https://h/api/order";

    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, url, strlen(url),
                                        out, 11),
                     10);
    assert_string_equal(out, "/api/order");
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, url, strlen(url),
                                        out, 10),
                     -1);
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_PRINTOS, url, strlen(url),
                                        out, 11),
                     10);
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_PRINTOS, url, strlen(url),
                                        out, 10),
                     -1);

    url = "https://printos.api.hp.com/siteflow/api/order";

    assert_int_equal(sf_sig_signed_path(SF_SCHEME_PRINTOS, url, strlen(url),
                                        out, 11),
                     10);
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_PRINTOS, url, strlen(url),
                                        out, 10),
                     -1);

    /* the decoded length counts: "/A B" needs 5 bytes, not 7 */

    url = "https://h/A%20B";

    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, url, strlen(url),
                                        out, 5),
                     4);
    assert_string_equal(out, "/A B");
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, url, strlen(url),
                                        out, 4),
                     -1);

    /* "/" needs 2 */

    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, "https://h", 9,
                                        out, 2),
                     1);
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, "https://h", 9,
                                        out, 1),
                     -1);
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, "https://h", 9,
                                        out, 0),
                     -1);
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, "https://h", 9,
                                        NULL, 16),
                     -1);
    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, NULL, 0,
                                        out, sizeof(out)),
                     -1);

    /* url_len is honoured: the path is cut at "/ap" */

    url = "https://h/api/order";

    assert_int_equal(sf_sig_signed_path(SF_SCHEME_ONEFLOW, url, 12,
                                        out, sizeof(out)),
                     3);
    assert_string_equal(out, "/ap");
}


/* URL -> signed path -> signature, for both schemes */

static void
test_signed_path_end_to_end(void **state)
{
    int          n;
    char         path[64], hex[SF_SIG_HEX_MAX + 1];
    const char  *url;

    (void) state;

    url = "https://printos.api.hp.com/siteflow/api/order";
    n = sf_sig_signed_path(sf_sig_detect_scheme(PRINTOS_KEY, 32),
                           url, strlen(url), path, sizeof(path));
    assert_int_equal(n, 10);
    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, SF_HASH_SHA256,
                                    "POST", path, REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     64);
    assert_string_equal(hex, "d117bed8fb9a9867c79fb4f1e64a1577"
                             "b0b52d124c0664679add3d9260b3f8cc");

    url = "https://orders.oneflow.io/api/order?async=1";
    n = sf_sig_signed_path(sf_sig_detect_scheme("124213431243214", 15),
                           url, strlen(url), path, sizeof(path));
    assert_int_equal(n, 10);
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, SF_HASH_SHA1,
                                    "post", path, REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     40);
    assert_string_equal(hex, "a66147d2dbd5b9c92116f5105c873869753ffa7b");
}


/*
 * siteflow_api ... algorithm=: SHA256 unless told (both schemes), SHA1
 * selectable; what each signs (protocols.md 1d vectors) and the
 * algorithm header each request carries.
 */

static void
test_algorithm(void **state)
{
    char       hex[SF_SIG_HEX_MAX + 1];
    sf_hash_t  h;

    (void) state;

    assert_int_equal(sf_sig_hash_parse("sha256", 6), SF_HASH_SHA256);
    assert_int_equal(sf_sig_hash_parse("SHA256", 6), SF_HASH_SHA256);
    assert_int_equal(sf_sig_hash_parse("sha1", 4), SF_HASH_SHA1);
    assert_int_equal(sf_sig_hash_parse("Sha1", 4), SF_HASH_SHA1);
    assert_int_equal(sf_sig_hash_parse("sha1x", 4), SF_HASH_SHA1);
    assert_int_equal(sf_sig_hash_parse("sha1x", 5), 0);
    assert_int_equal(sf_sig_hash_parse("sha-256", 7), 0);
    assert_int_equal(sf_sig_hash_parse("md5", 3), 0);
    assert_int_equal(sf_sig_hash_parse("", 0), 0);
    assert_int_equal(sf_sig_hash_parse(NULL, 6), 0);

    /* OneFlow by default: HMAC-SHA256 and "x-oneflow-algorithm: SHA256" */

    h = sf_sig_default_hash(SF_SCHEME_ONEFLOW);
    assert_int_equal(h, SF_HASH_SHA256);
    assert_string_equal(sf_sig_algorithm_header(SF_SCHEME_ONEFLOW, h),
                        "SHA256");
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, h, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     64);
    assert_string_equal(hex, "39df2e30fe9d066685fea94cfc50b3f8"
                             "c2088ba07503cef5bf3201facc615c7a");

    /* OneFlow algorithm=sha1: SHA1 and no header (older accounts) */

    h = sf_sig_hash_parse("sha1", 4);
    assert_null(sf_sig_algorithm_header(SF_SCHEME_ONEFLOW, h));
    assert_int_equal(sf_sig_request(SF_SCHEME_ONEFLOW, h, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     40);
    assert_string_equal(hex, "a66147d2dbd5b9c92116f5105c873869753ffa7b");

    /* PrintOS: SHA256 by default, SHA1 named in its header */

    h = sf_sig_default_hash(SF_SCHEME_PRINTOS);
    assert_int_equal(h, SF_HASH_SHA256);
    assert_string_equal(sf_sig_algorithm_header(SF_SCHEME_PRINTOS, h),
                        "SHA256");
    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, h, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     64);
    assert_string_equal(hex, "d117bed8fb9a9867c79fb4f1e64a1577"
                             "b0b52d124c0664679add3d9260b3f8cc");

    assert_string_equal(sf_sig_algorithm_header(SF_SCHEME_PRINTOS,
                                                SF_HASH_SHA1),
                        "SHA1");
    assert_int_equal(sf_sig_request(SF_SCHEME_PRINTOS, SF_HASH_SHA1, "POST",
                                    "/api/order", REQ_TS, S(REQ_SECRET),
                                    hex, sizeof(hex)),
                     40);
    assert_string_equal(hex, "b8cef39aa5d16a0cd9c776146da340a5c2f5a45c");

    assert_null(sf_sig_algorithm_header(SF_SCHEME_UNKNOWN, SF_HASH_SHA256));
    assert_null(sf_sig_algorithm_header(SF_SCHEME_ONEFLOW, (sf_hash_t) 0));
}


static void
test_detect_scheme(void **state)
{
    (void) state;

    /* OneFlow: all digits, any length */
    assert_int_equal(sf_sig_detect_scheme("1234567890123", 13),
                     SF_SCHEME_ONEFLOW);
    assert_int_equal(sf_sig_detect_scheme("124213431243214", 15),
                     SF_SCHEME_ONEFLOW);
    assert_int_equal(sf_sig_detect_scheme("7", 1), SF_SCHEME_ONEFLOW);

    /* 32 digits are digits first */
    assert_int_equal(sf_sig_detect_scheme("01234567890123456789012345678901",
                                          32),
                     SF_SCHEME_ONEFLOW);

    /* PrintOS: 32 x [0-9a-v], any case */
    assert_int_equal(sf_sig_detect_scheme(PRINTOS_KEY, 32),
                     SF_SCHEME_PRINTOS);
    assert_int_equal(sf_sig_detect_scheme("0A1B2C3D4E5F6G7H8I9J0K1L2M3N4O5P",
                                          32),
                     SF_SCHEME_PRINTOS);
    assert_int_equal(sf_sig_detect_scheme("vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",
                                          32),
                     SF_SCHEME_PRINTOS);
    assert_int_equal(sf_sig_detect_scheme("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                          32),
                     SF_SCHEME_PRINTOS);

    /* 31 and 33 characters */
    assert_int_equal(sf_sig_detect_scheme(PRINTOS_KEY, 31),
                     SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme(PRINTOS_KEY "a", 33),
                     SF_SCHEME_UNKNOWN);

    /* outside base32hex */
    assert_int_equal(sf_sig_detect_scheme("0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5w",
                                          32),
                     SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme("0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5Z",
                                          32),
                     SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme("0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5-",
                                          32),
                     SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme("0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5\0",
                                          32),
                     SF_SCHEME_UNKNOWN);

    /* mixed, empty, whitespace, a 48-hex OneFlow secret */
    assert_int_equal(sf_sig_detect_scheme("123a", 4), SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme("12 3", 4), SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme(" 123", 4), SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme("-123", 4), SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme("", 0), SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme(NULL, 0), SF_SCHEME_UNKNOWN);
    assert_int_equal(sf_sig_detect_scheme(
                         "0123456789abcdef0123456789abcdef0123456789abcdef",
                         48),
                     SF_SCHEME_UNKNOWN);

    /* the length is honoured */
    assert_int_equal(sf_sig_detect_scheme("123abc", 3), SF_SCHEME_ONEFLOW);
}


static void
expect_ts(long long ms, const char *want)
{
    char  out[SF_SIG_TIMESTAMP_LEN + 1];

    memset(out, 'X', sizeof(out));

    assert_int_equal(sf_sig_timestamp(ms, out, sizeof(out)),
                     SF_SIG_TIMESTAMP_LEN);
    assert_string_equal(out, want);
}


static void
test_timestamp(void **state)
{
    char  out[64];

    (void) state;

    expect_ts(1714564800000LL, REQ_TS);
    expect_ts(1714564800007LL, "2024-05-01T12:00:00.007Z");
    expect_ts(1714564800070LL, "2024-05-01T12:00:00.070Z");
    expect_ts(1714564800999LL, "2024-05-01T12:00:00.999Z");
    expect_ts(0, "1970-01-01T00:00:00.000Z");
    expect_ts(-1, "1969-12-31T23:59:59.999Z");
    expect_ts(-1000, "1969-12-31T23:59:59.000Z");
    expect_ts(-1001, "1969-12-31T23:59:58.999Z");
    expect_ts(1709251199000LL, "2024-02-29T23:59:59.000Z");
    expect_ts(1709251200000LL, "2024-03-01T00:00:00.000Z");
    expect_ts(951868800000LL - 1, "2000-02-29T23:59:59.999Z");
    expect_ts(-2203891200000LL - 1, "1900-02-28T23:59:59.999Z");
    expect_ts(2147483648000LL, "2038-01-19T03:14:08.000Z");
    expect_ts(-62167219200000LL, "0000-01-01T00:00:00.000Z");
    expect_ts(253402300799999LL, "9999-12-31T23:59:59.999Z");

    /* out of the four-digit year range */
    assert_int_equal(sf_sig_timestamp(-62167219200001LL, out, sizeof(out)),
                     -1);
    assert_int_equal(sf_sig_timestamp(253402300800000LL, out, sizeof(out)),
                     -1);
    assert_int_equal(sf_sig_timestamp(LLONG_MAX, out, sizeof(out)), -1);
    assert_int_equal(sf_sig_timestamp(LLONG_MIN, out, sizeof(out)), -1);

    /* buffer: 25 fits, 24 does not */
    assert_int_equal(sf_sig_timestamp(0, out, 25), 24);
    assert_int_equal(sf_sig_timestamp(0, out, 24), -1);
    assert_int_equal(sf_sig_timestamp(0, out, 0), -1);
    assert_int_equal(sf_sig_timestamp(0, NULL, 25), -1);
}


/* a prepared key gives the same answers as the one-shot functions */

static void
test_ship_prepared_key(void **state)
{
    int             i;
    char            out[SF_SIG_B64_LEN + 1], one[SF_SIG_B64_LEN + 1];
    char            tampered[SF_SIG_B64_LEN + 1];
    sf_sig_key_t   *k, *other;
    unsigned char   mac[SF_SIG_HMAC256_LEN], zero[SF_SIG_HMAC256_LEN];

    (void) state;

    assert_null(sf_sig_key_new((const unsigned char *) "", 0));
    assert_null(sf_sig_key_new(NULL, 5));

    k = sf_sig_key_new((const unsigned char *) SHIP_KEY, strlen(SHIP_KEY));
    assert_non_null(k);

    other = sf_sig_key_new((const unsigned char *) "another-key-0000",
                           16);
    assert_non_null(other);

    /* reusing the prepared state many times gives the same result */

    for (i = 0; i < 3; i++) {
        assert_int_equal(sf_sig_key_ship_sign(k, (const unsigned char *)
                                              SHIP_NONCE,
                                              strlen(SHIP_NONCE), out),
                         SF_SIG_OK);
        assert_string_equal(out, SHIP_SIG);
    }

    assert_int_equal(sf_sig_ship_sign((const unsigned char *) SHIP_KEY,
                                      strlen(SHIP_KEY),
                                      (const unsigned char *) "other nonce",
                                      11, one),
                     SF_SIG_OK);
    assert_int_equal(sf_sig_key_ship_sign(k, (const unsigned char *)
                                          "other nonce", 11, out),
                     SF_SIG_OK);
    assert_string_equal(out, one);

    memset(mac, 0, sizeof(mac));
    memset(zero, 0, sizeof(zero));

    assert_int_equal(sf_sig_key_ship_verify(k, (const unsigned char *)
                                            SHIP_NONCE, strlen(SHIP_NONCE),
                                            (const unsigned char *) SHIP_SIG,
                                            strlen(SHIP_SIG), mac),
                     SF_SIG_OK);
    assert_memory_not_equal(mac, zero, sizeof(mac));

    /* a failed verification leaves mac_out alone */

    memset(mac, 0, sizeof(mac));

    assert_int_equal(sf_sig_key_ship_verify(other, (const unsigned char *)
                                            SHIP_NONCE, strlen(SHIP_NONCE),
                                            (const unsigned char *) SHIP_SIG,
                                            strlen(SHIP_SIG), mac),
                     SF_SIG_MISMATCH);
    assert_memory_equal(mac, zero, sizeof(mac));

    strcpy(tampered, SHIP_SIG);
    tampered[0] = 'P';

    assert_int_equal(sf_sig_key_ship_verify(k, (const unsigned char *)
                                            SHIP_NONCE, strlen(SHIP_NONCE),
                                            (const unsigned char *) tampered,
                                            strlen(tampered), NULL),
                     SF_SIG_MISMATCH);

    assert_int_equal(sf_sig_key_ship_verify(k, (const unsigned char *)
                                            SHIP_NONCE, strlen(SHIP_NONCE),
                                            (const unsigned char *) SHIP_SIG,
                                            10, NULL),
                     SF_SIG_MALFORMED);

    assert_int_equal(sf_sig_key_ship_verify(k, (const unsigned char *) "",
                                            0,
                                            (const unsigned char *) SHIP_SIG,
                                            strlen(SHIP_SIG), NULL),
                     SF_SIG_MISSING);

    sf_sig_key_free(k);
    sf_sig_key_free(other);
    sf_sig_key_free(NULL);

    /* keys longer than a SHA-256 block are hashed first (RFC 2104) */

    for (i = 1; i <= 200; i += 7) {
        unsigned char  key[200];

        memset(key, 'k' + (i % 7), sizeof(key));

        k = sf_sig_key_new(key, (size_t) i);
        assert_non_null(k);

        assert_int_equal(sf_sig_ship_sign(key, (size_t) i,
                                          (const unsigned char *) SHIP_NONCE,
                                          strlen(SHIP_NONCE), one),
                         SF_SIG_OK);
        assert_int_equal(sf_sig_key_ship_sign(k, (const unsigned char *)
                                              SHIP_NONCE, strlen(SHIP_NONCE),
                                              out),
                         SF_SIG_OK);
        assert_string_equal(out, one);

        sf_sig_key_free(k);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_ship_vector),
        cmocka_unit_test(test_ship_tamper),
        cmocka_unit_test(test_ship_length),
        cmocka_unit_test(test_ship_alphabet),
        cmocka_unit_test(test_ship_missing),
        cmocka_unit_test(test_ship_key),
        cmocka_unit_test(test_ship_prepared_key),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_partner),
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_random_hex),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_request_vectors),
        cmocka_unit_test(test_request_invalid),
        cmocka_unit_test(test_signed_path_url),
        cmocka_unit_test(test_signed_path_oneflow),
        cmocka_unit_test(test_signed_path_printos),
        cmocka_unit_test(test_signed_path_overflow),
        cmocka_unit_test(test_signed_path_end_to_end),
        cmocka_unit_test(test_detect_scheme),
        cmocka_unit_test(test_algorithm),
        cmocka_unit_test(test_timestamp),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
