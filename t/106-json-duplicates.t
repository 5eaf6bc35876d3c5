# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: one JSON policy on every endpoint: a body with a key twice in
# one object (at any depth) is refused with 400 {"error": "invalid JSON at
# line L, column C: duplicate object key..."} and changes nothing: the
# PrintNow hook, the SiteFlow postback, the admin PUT log/enabled and the
# Ship API (siteflow_shipment_validate).  Which of two values would "win"
# is never guessed.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;
use Siteflow::Sign;

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();
run_tests();

__DATA__

=== TEST 1: hook: a key twice (top level, in "order") is refused; nothing is queued or fetched
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5001,\"id\":5002}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"order\":{\"id\":5001,\"status\":\"New Order\",\"status\":\"Draft\"}}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_deleted\",\"event\":\"order_created\",\"id\":5001}"]
--- error_code eval
[400, 400, 400]
--- response_body_filters eval
[[], [], [::report(jobs => 1)]]
--- response_body eval
["{\"error\":\"invalid JSON at line 1, column 39: duplicate object key near '\\\"id\\\"'\"}\n",
"{\"error\":\"invalid JSON at line 1, column 73: duplicate object key near '\\\"status\\\"'\"}\n",
"answer {\"error\":\"invalid JSON at line 1, column 32: duplicate object key near '\\\"event\\\"'\"}\n"]
--- no_error_log
[alert]
[crit]



=== TEST 2: postback: a key twice is refused (as before), nothing is queued
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request
POST /postback?token=pb-51e0a8c4-not-real
{"event":"printready","sourceOrderId":"PN-5001","sourceOrderId":"PN-5002"}
--- error_code: 400
--- response_body_filters eval
::report(jobs => 1)
--- response_body
answer {"error":"invalid JSON at line 1, column 63: duplicate object key near '\"sourceOrderId\"'"}
--- no_error_log
[alert]
[crit]



=== TEST 3: admin PUT log/enabled: a key twice is refused; the switch is unchanged
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
--- config eval: ::storefront_conf()
--- more_headers
X-SiteFlow-Admin: 1
--- request eval
["PUT /admin/log/enabled
{\"enabled\":false,\"enabled\":true}",
"GET /admin/log/enabled"]
--- error_code eval
[400, 200]
--- response_body eval
["{\"error\":\"invalid JSON at line 1, column 26: duplicate object key near '\\\"enabled\\\"'; expected {\\\"enabled\\\": true, false or null}\"}\n",
"{\"storefront\":\"shop1\",\"enabled\":true,\"configured\":true,\"override\":null}\n"]
--- no_error_log
[alert]
[crit]



=== TEST 4: Ship API (siteflow_shipment_validate): a key twice is refused, the backend is not reached
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "backend reached\n";
    }
--- more_headers eval
"Content-Type: application/json\n"
. Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request
POST /ship/shipment
{"shipmentId":"a","shipmentId":"b"}
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"invalid JSON at line 1, column 30: duplicate object key near '\"shipmentId\"'"}}
--- no_error_log
[alert]
[crit]
