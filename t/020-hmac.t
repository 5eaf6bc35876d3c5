# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: a guarded Ship API location lets through only requests that
# carry a valid, never-used X-SiteFlow-Signature of a configured partner;
# everything else gets 401 in SiteFlow's error shape without reaching the
# shipping service; every response, whatever its origin, is signed with a
# fresh nonce, and statuses SiteFlow does not understand become 400.
#
# Signed requests are single-use by design (the replay cache is the point),
# so this file runs each block once: a repeated block would replay its own
# nonce.  With several requests in a block, Test::Nginx checks --- error_log
# after each of them: lines that only a later request causes are checked
# with --- shutdown_error_log against the whole log (check_accum_error_log).

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;

repeat_each(1);
plan 'no_plan';

check_accum_error_log();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: the protocols 3a test vector passes and reaches the backend
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        add_header X-Partner $siteflow_partner_id;
        add_header X-Sig $siteflow_signature;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "shipped $request_uri\n";
    }
--- more_headers
X-SiteFlow-Nonce: abc123
X-SiteFlow-Signature: p1:OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs=
--- request
POST /ship/shipment
{}
--- error_code: 200
--- response_body
shipped /backend/shipment
--- response_headers_like
X-SiteFlow-Nonce: [0-9a-f]{96}
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
X-Partner: p1
X-Sig: ok
--- error_log
siteflow hmac: verified partner "p1"
--- no_error_log
0123456789abcdef0123456789abcdef01234567
[error]
[alert]
[crit]



=== TEST 2: no headers at all: 401, SiteFlow shape, still signed
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        add_header X-Sig $siteflow_signature always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "must not be reached\n";
    }
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"missing X-SiteFlow-Nonce header"}}
--- response_headers_like
Content-Type: application/json
X-SiteFlow-Nonce: [0-9a-f]{96}
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
X-Sig: missing
--- error_log
siteflow: Ship API request refused: missing X-SiteFlow-Nonce header
--- no_error_log
[alert]
[crit]



=== TEST 3: nonce without a signature
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200;
    }
--- more_headers
X-SiteFlow-Nonce: abc123
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"missing X-SiteFlow-Signature header"}}
--- no_error_log
[alert]
[crit]



=== TEST 4: tampered signature (one character changed)
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        add_header X-Sig $siteflow_signature always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "must not be reached\n";
    }
--- more_headers
X-SiteFlow-Nonce: abc123
X-SiteFlow-Signature: p1:PZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs=
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"signature does not match"}}
--- response_headers
X-Sig: mismatch
--- error_log
siteflow: Ship API request refused: signature does not match
--- no_error_log
OZR4dgaWecNeam5bRhU6j0CKVbltY
[alert]
[crit]



=== TEST 5: signature of the wrong length is malformed, not compared
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        add_header X-Sig $siteflow_signature always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200;
    }
--- more_headers
X-SiteFlow-Nonce: abc123
X-SiteFlow-Signature: p1:OZR4dgaWecNeam5bRhU6j0CKVbltY
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"malformed X-SiteFlow-Signature header, expected a base64 HMAC-SHA256"}}
--- response_headers
X-Sig: malformed
--- no_error_log
[alert]
[crit]



=== TEST 6: signature without a partner id
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200;
    }
--- more_headers
X-SiteFlow-Nonce: abc123
X-SiteFlow-Signature: OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs=
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"malformed X-SiteFlow-Signature header, expected \"partnerId:signature\""}}
--- no_error_log
[alert]
[crit]



=== TEST 7: unknown partner, answered with the first configured partner
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        siteflow_partner p2 c0ffeec0ffeec0ffeec0ffeec0ffeec000000003;
        add_header X-Sig $siteflow_signature always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200;
    }
--- more_headers
X-SiteFlow-Nonce: abc123
X-SiteFlow-Signature: zz:OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs=
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"unknown partner \"zz\""}}
--- response_headers_like
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
X-Sig: unknown_partner
--- no_error_log
[alert]
[crit]



=== TEST 8: a replayed nonce is refused, the first use passes
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        add_header X-Sig $siteflow_signature always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "shipped\n";
    }
--- more_headers eval
my $h = Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY);
[$h, $h]
--- request eval
["POST /ship/shipment\n{}", "POST /ship/shipment\n{}"]
--- error_code eval
[200, 401]
--- response_body eval
["shipped\n", qq({"status":{"code":"error","message":"nonce already used"}}\n)]
--- response_headers eval
["X-Sig: ok", "X-Sig: replay"]
--- shutdown_error_log
siteflow: Ship API request refused: nonce already used
--- no_error_log
[alert]
[crit]



=== TEST 9: key rotation: old and new key both valid for one partner id
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 feedfacefeedfacefeedfacefeedface00000002;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "shipped\n";
    }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY2),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY3)]
--- request eval
["POST /ship/shipment\n{}", "POST /ship/shipment\n{}", "POST /ship/shipment\n{}"]
--- error_code eval
[200, 200, 401]
--- response_body eval
["shipped\n", "shipped\n", qq({"status":{"code":"error","message":"signature does not match"}}\n)]
--- no_error_log
[alert]
[crit]



=== TEST 10: the response is signed with the key that verified the request
The round trip: auth_request sends the signed request to the guarded
location and keeps the response's nonce and signature; the main request
then presents them to a second guarded location that knows only the
rotated key.  /check-other knows only a different key and must refuse:
the check is real.
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        siteflow_partner p1 feedfacefeedfacefeedfacefeedface00000002;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "shipped\n";
    }
    location /roundtrip/ {
        auth_request /probe;
        auth_request_set $rn $upstream_http_x_siteflow_nonce;
        auth_request_set $rs $upstream_http_x_siteflow_signature;
        proxy_set_header X-SiteFlow-Nonce $rn;
        proxy_set_header X-SiteFlow-Signature $rs;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/;
    }
    location = /probe {
        internal;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ship/shipment;
    }
    location /check-rotated/ {
        siteflow_verify_signature on;
        siteflow_partner p1 feedfacefeedfacefeedfacefeedface00000002;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /check-other/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY2),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY2)]
--- request eval
["GET /roundtrip/check-rotated/x", "GET /roundtrip/check-other/x"]
--- error_code eval
[200, 401]
--- response_body eval
["shipped\n", qq({"status":{"code":"error","message":"signature does not match"}}\n)]
--- no_error_log
[alert]
[crit]



=== TEST 11: several partners, each signing with its own key
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        siteflow_partner p-2.b c0ffeec0ffeec0ffeec0ffeec0ffeec000000003;
        add_header X-Partner $siteflow_partner_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok201;
    }
    location /ok201 {
        return 201 "label\n";
    }
--- more_headers eval
[Siteflow::Sign::headers('p-2.b', $Siteflow::Sign::KEY3),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY3)]
--- request eval
["POST /ship/shipment\n{}", "POST /ship/shipment\n{}", "POST /ship/shipment\n{}"]
--- error_code eval
[201, 201, 401]
--- response_headers_like eval
["X-SiteFlow-Signature: p-2\\.b:[A-Za-z0-9+/]{43}=",
 "X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=",
 "X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}="]
--- no_error_log
[alert]
[crit]



=== TEST 12: duplicate signature headers are malformed
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200;
    }
--- more_headers
X-SiteFlow-Nonce: abc123
X-SiteFlow-Signature: p1:OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs=
X-SiteFlow-Signature: p1:OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs=
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"more than one X-SiteFlow-Signature header"}}
--- no_error_log
[alert]
[crit]



=== TEST 13: backend 404 and 500 become 400 with a SiteFlow message, signed
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        default_type text/html;
        add_header ETag '"abc"';
        return 404 "<html>not here</html>";
    }
    location /backend/fail {
        return 500 "backend stack trace";
    }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)]
--- request eval
["POST /ship/shipment\n{}", "POST /ship/fail\n{}"]
--- error_code eval
[400, 400]
--- response_body eval
[qq({"status":{"code":"error","message":"shipping service answered HTTP 404"}}\n),
 qq({"status":{"code":"error","message":"shipping service failed or is unavailable (HTTP 500)"}}\n)]
--- response_headers_like eval
["Content-Type: application/json\nX-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=",
 "Content-Type: application/json\nX-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}="]
--- response_headers eval
["!ETag", "!ETag"]
--- no_error_log
[alert]
[crit]



=== TEST 14: shipping service down: nginx's 502 becomes a SiteFlow 400
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:1/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request
POST /ship/shipment
{}
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"shipping service failed or is unavailable (HTTP 502)"}}
--- response_headers_like
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
--- error_log
connect() failed
--- no_error_log
[alert]
[crit]



=== TEST 15: the backend's 201 and 401 pass unchanged; its own X-SiteFlow headers are replaced
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        add_header X-SiteFlow-Nonce forged always;
        add_header X-SiteFlow-Signature p9:forged always;
        return 201 "created\n";
    }
    location /backend/denied {
        return 401 "denied\n";
    }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)]
--- request eval
["POST /ship/shipment\n{}", "POST /ship/denied\n{}"]
--- error_code eval
[201, 401]
--- response_body eval
["created\n", "denied\n"]
--- raw_response_headers_unlike eval
[qr/forged/, qr/forged/]
--- no_error_log
[alert]
[crit]



=== TEST 16: siteflow_signature_log_level warn
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_signature_log_level warn;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200;
    }
--- request
POST /ship/shipment
{}
--- error_code: 401
--- error_log
[warn]
siteflow: Ship API request refused: missing X-SiteFlow-Nonce header
--- no_error_log
[error]
[alert]
[crit]



=== TEST 17: replay cache full: the oldest nonce is evicted (and warned), newer ones are still refused
siteflow_nonce_cache 16 holds 16 nonces: after 17 fresh ones the first was
evicted, so it passes again (the documented trade-off); the 17th is still
refused.
--- http_config
    siteflow_zone sf:1m;
    siteflow_nonce_cache 16;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200 "ok\n";
    }
--- more_headers eval
my @h = map { Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY) } 1 .. 17;
[@h, $h[0], $h[16]]
--- request eval
[map { "POST /ship/shipment\n{}" } 1 .. 19]
--- error_code eval
[(200) x 17, 200, 401]
--- shutdown_error_log
nonce replay cache is full, the oldest unexpired nonce was evicted
--- no_error_log
[alert]
[crit]



=== TEST 18: a rejected request with a body does not break keep-alive
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200 "ok\n";
    }
--- more_headers eval
["Content-Type: application/json",
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)]
--- pipelined_requests eval
["POST /ship/shipment\n{\"shipTo\":{\"name\":\"x\"}}", "POST /ship/shipment\n{}"]
--- error_code eval
[401, 200]
--- response_body eval
[qq({"status":{"code":"error","message":"missing X-SiteFlow-Nonce header"}}\n), "ok\n"]
--- no_error_log
[alert]
[crit]



=== TEST 19: nonce with control characters is malformed
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200;
    }
--- more_headers eval
"X-SiteFlow-Nonce: a b\nX-SiteFlow-Signature: p1:OZR4dgaWecNeam5bRhU6j0CKVbltY+xqr/rbgtTomVs="
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"malformed X-SiteFlow-Nonce header"}}
--- no_error_log
[alert]
[crit]



=== TEST 20: guarded location nested in a server with partners at server level
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
    location /ship/ {
        siteflow_verify_signature on;
        location /ship/inner/ {
            proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/inner;
        }
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/outer;
    }
    location /inner {
        return 200 "inner\n";
    }
    location /outer {
        return 200 "outer\n";
    }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 "X-None: 1"]
--- request eval
["GET /ship/inner/x", "GET /ship/inner/y"]
--- error_code eval
[200, 401]
--- response_body eval
["inner\n", qq({"status":{"code":"error","message":"missing X-SiteFlow-Nonce header"}}\n)]
--- no_error_log
[alert]
[crit]



=== TEST 21: "return" in a guarded location answers before the check: refused, not signed as a success
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        return 200 "unchecked\n";
    }
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"request was not verified"}}
--- response_headers_like
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
--- error_log
siteflow: a guarded location answered 200 before the signature check ("return" or "rewrite" in it?), refused with 401
--- no_error_log
[alert]
[crit]



=== TEST 22: a valid signature does not bypass "deny" under "satisfy any"
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        satisfy any;
        deny all;
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200 "ok\n";
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request
POST /ship/shipment
{}
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"request refused with HTTP 403"}}
--- error_log
access forbidden by rule
--- no_error_log
[alert]
[crit]



=== TEST 23: "satisfy all" with "allow": both the rule and the signature must pass
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        allow 127.0.0.1;
        deny all;
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200 "ok\n";
    }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY), ""]
--- request eval
["POST /ship/shipment\n{}", "POST /ship/shipment\n{}"]
--- error_code eval
[200, 401]
--- response_body eval
["ok\n", qq({"status":{"code":"error","message":"missing X-SiteFlow-Nonce header"}}\n)]
--- no_error_log
[alert]
[crit]



=== TEST 24: a known partner with a bad signature is answered with its own key
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        siteflow_partner p2 c0ffeec0ffeec0ffeec0ffeec0ffeec000000003;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok200;
    }
    location /ok200 {
        return 200 "ok\n";
    }
--- more_headers eval
Siteflow::Sign::headers('p2', $Siteflow::Sign::KEY)
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"signature does not match"}}
--- response_headers_like
X-SiteFlow-Signature: p2:[A-Za-z0-9+/]{43}=
--- no_error_log
[alert]
[crit]



=== TEST 25: an internal redirect keeps the verification (no false replay) and the signature
--- http_config
    siteflow_zone sf:1m;
    log_format partner "partner=$siteflow_partner_id sig=$siteflow_signature";
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        access_log logs/partner.log partner;
        try_files /nonexistent @ship;
    }
    location @ship {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        add_header X-Partner $siteflow_partner_id;
        rewrite ^ /ok200 break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
    location /ok200 {
        return 200 "ok\n";
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request
POST /ship/shipment
{}
--- error_code: 200
--- response_body
ok
--- response_headers_like
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
X-Partner: p1
--- no_error_log
nonce already used
[error]
[alert]
[crit]



=== TEST 26: error_page to an unguarded location: the answer is still signed and mapped
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_intercept_errors on;
        error_page 404 = /fallback;
        error_page 500 = /broken;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 404;
    }
    location /backend/fail {
        return 500;
    }
    location = /fallback {
        return 200 "fallback label\n";
    }
    location = /broken {
        return 503 "down\n";
    }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)]
--- request eval
["POST /ship/shipment\n{}", "POST /ship/fail\n{}"]
--- error_code eval
[200, 400]
--- response_body eval
["fallback label\n", qq({"status":{"code":"error","message":"shipping service failed or is unavailable (HTTP 503)"}}\n)]
--- response_headers_like eval
["X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=", "X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}="]
--- no_error_log
nonce already used
[alert]
[crit]
