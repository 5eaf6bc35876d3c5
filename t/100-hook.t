# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: a PrintNow order reaches SiteFlow production exactly once,
# correctly mapped and signed, or fails loudly.  A hook is answered 202
# {"job"} only once its job is durable, 200 {"skipped"} when there is
# nothing to do; the job fetches the order from PrintNow (HTTP Basic),
# sends it only when its status is a trigger status and it was not sent
# before, validates before it creates (a 4xx on validate creates nothing),
# survives a SiteFlow outage, and after an ambiguous create looks the order
# up by sourceOrderId before creating it again.  Every SiteFlow request is
# signed right for the storefront's scheme (OneFlow, or PrintOS without the
# /siteflow prefix), and every order body carries the SPEC 6 fields with
# the values the real transform gives for the fixture order.
#
# How to read a block: each block starts with a fresh mock SiteFlow, mock
# PrintNow and an empty spool (Siteflow::Flow).  The response body filter
# waits (bounded) for what the block expects and replaces the body by a
# report: the answer, then every request each mock received with its checks
# (see t/lib/Siteflow/Flow.pm), then the admin queue's jobs if asked.
# Order fixtures: t/fixtures/orders/<id>.json; expected SiteFlow orders:
# t/fixtures/expected/PN-<id>.json (t/fixtures/make-expected.sh).

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();
run_tests();

__DATA__

=== TEST 1: order_created (envelope "order"), status "New Order" is a trigger: fetched, validated, created once; OneFlow-signed; every field
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":5001,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_headers
Content-Type: application/json
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]])
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
--- no_error_log
[alert]
[crit]
0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978
C0FFEEC0FFEEC0FFEE



=== TEST 2: envelope "data", event from ?event=, no content type, status "Approved" (second trigger status), three items
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request
POST /hook?token=hook-9f3b2c7d-not-real&event=order_updated
{"data":{"id":5002}}
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]])
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/5002 basic -> 200
SF POST /api/order/validate oneflow PN-5002 fields-ok -> 200
SF POST /api/order oneflow PN-5002 fields-ok -> 201
--- no_error_log
[alert]
[crit]



=== TEST 3: a status outside the trigger: job skipped, nothing sent; once PrintNow says "Approved", the next hook sends it
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5003}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order_id\":5003}"]
--- error_code eval
[202, 202]
--- response_body_filters eval
[[::report(jobs => 1,
           then => sub { ::pn_rules({ on => 'GET /api/v2/order/5003',
                                      json => ::pn_order(5003, status => 'Approved') }); () })],
 [::report(wait => [[siteflow => 'POST /api/order', 1]])]]
--- response_body eval
["answer {\"job\":\"ID\"}
PN GET /api/v2/order/5003 basic -> 200
job order 5003 skipped
",
"answer {\"job\":\"ID\"}
PN GET /api/v2/order/5003 basic -> 200
PN GET /api/v2/order/5003 basic -> 200
SF POST /api/order/validate oneflow PN-5003 fields-ok -> 200
SF POST /api/order oneflow PN-5003 fields-ok -> 201
"]
--- no_error_log
[alert]
[crit]



=== TEST 4: manual mode: the hook sends nothing; admin send does, once; a second send without force is refused (409) by the duplicate guard
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(trigger => 'manual')
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5001}",
"POST /admin/send/5001",
"POST /admin/send/5001"]
--- more_headers eval
["", "X-SiteFlow-Admin: 1\n", "X-SiteFlow-Admin: 1\n"]
--- error_code eval
[200, 202, 409]
--- response_body_filters eval
[[::report(answer => 'skipped:manual')],
 [::report(wait => [[siteflow => 'POST /api/order', 1]])],
 [::report(answer => 'error:already sent')]]
--- response_body eval
["answer {\"skipped\": ~ /manual/}
",
"answer {\"job\":\"ID\"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
",
"answer {\"error\": ~ /already sent/}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
"]
--- no_error_log
[alert]
[crit]



=== TEST 5: duplicate hooks: while the first is still queued (SiteFlow slow) and after it was sent: 200 skipped, one create
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::sf_rules({ on => 'POST /api/order/validate', delay_ms => 1500,
             json => { success => JSON::PP::true } });
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5001}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"id\":5001}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5001,\"status\":\"New Order\"}"]
--- error_code eval
[202, 200, 200]
--- response_body_filters eval
[[::report(idle => 0, mocks => [])],
 [::report(answer => 'skipped:.',
           wait => [[siteflow => 'POST /api/order', 1]])],
 [::report(answer => 'skipped:.', jobs => 1)]]
--- response_body eval
["answer {\"job\":\"ID\"}
",
"answer {\"skipped\": ~ /./}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200 after 1500ms
SF POST /api/order oneflow PN-5001 fields-ok -> 201
",
"answer {\"skipped\": ~ /./}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200 after 1500ms
SF POST /api/order oneflow PN-5001 fields-ok -> 201
job order 5001 done
"]
--- no_error_log
[alert]
[crit]



=== TEST 6: echo suppression: after our own PrintNow update (a postback), PrintNow's order_updated hook is recognised as an echo
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
["POST /postback?token=pb-51e0a8c4-not-real
{\"event\":\"printready\",\"sourceOrderId\":\"PN-5001\",\"timestamp\":\"2024-05-01T12:00:00.000Z\"}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"id\":5001}"]
--- error_code eval
[200, 200]
--- response_body_filters eval
[[::report(wait => [[printnow => 'PATCH /api/v2/order/5001/status', 1]])],
 [::report(answer => 'skipped:echo')]]
--- response_body eval
["answer {\"job\":\"ID\"}
PN GET /api/v2/order/5001 basic -> 200
PN PATCH /api/v2/order/5001/status basic {\"comment\":\"SiteFlow: printready\",\"status\":\"In Production\"} -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
",
"answer {\"skipped\": ~ /echo/}
PN GET /api/v2/order/5001 basic -> 200
PN PATCH /api/v2/order/5001/status basic {\"comment\":\"SiteFlow: printready\",\"status\":\"In Production\"} -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
"]
--- no_error_log
[alert]
[crit]



=== TEST 7: cancel on delete (the default: siteflow_cancel_on_delete not set): order_deleted of a sent order cancels it in SiteFlow by its _id (after the create, signed)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::sf_rules({ on => 'POST /api/order', status => 201,
             json => { _id => '5f00aa00bb00cc00dd005001' } });
::send_and_wait(5001);
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_deleted","id":5001}
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'PUT /api/order/*', 1]])
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
SF PUT /api/order/5f00aa00bb00cc00dd005001/cancel oneflow -> 200
--- no_error_log
[alert]
[crit]



=== TEST 8: order_deleted of an order never sent, and of a sent order with cancel_on_delete off: 200 skipped, no cancel
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_cancel_on_delete off;')
--- init
::send_and_wait(5001);
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_deleted\",\"id\":5002}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_deleted\",\"id\":5001}"]
--- error_code eval
[200, 200]
--- response_body_filters eval
[[::report(answer => 'skipped:.', mocks => ['siteflow'])],
 [::report(answer => 'skipped:.', mocks => ['siteflow'])]]
--- response_body eval
["answer {\"skipped\": ~ /./}
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
",
"answer {\"skipped\": ~ /./}
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
"]
--- no_error_log
[alert]
[crit]



=== TEST 9: validation failure: job failed with SiteFlow's messages, nothing created; admin retry after the fix creates it
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::sf_rules({ on => 'POST /api/order/validate', status => 400, times => 1,
             json => { success => JSON::PP::false, error => {
                 code => 208, message => 'Validation failed',
                 validations => [{ path => 'orderData.items[0].sku',
                                   message => 'SKU BC-STD-85x55 not found' }] } } });
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5001}",
"GET /ping"]
--- error_code eval
[202, 200]
--- response_body_filters eval
[[::report(jobs_wait => ['job failed', sub { grep { $_->{state} eq 'failed' } @{ $_[0] } }],
           jobs => 1, errors => { 5001 => 'SKU BC-STD-85x55 not found' })],
 [::report(do => sub {
               my ($j) = @{ ::admin_jobs(state => 'failed') // [] };
               my $r = ::admin(POST => "queue/$j->{id}/retry");
               "retry -> $r->{status}" },
           wait => [[siteflow => 'POST /api/order', 1]], mocks => ['siteflow'])]]
--- response_body eval
["answer {\"job\":\"ID\"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 400
job order 5001 failed (last_error ~ /SKU BC-STD-85x55 not found/)
",
"answer pong
retry -> 202
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 400
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
"]
--- no_error_log
[alert]
[crit]



=== TEST 10: SiteFlow down: the hook is still accepted, the job retries, and after recovery the order is created once
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::mock_down('siteflow');
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","id":5001}
--- error_code: 202
--- response_body_filters eval
::report(do => sub {
             my $e = ::wait_jobs('order retrying after a failed attempt', sub {
                 grep { $_->{state} eq 'retrying' && $_->{attempts} >= 1
                        && $_->{last_error} } @{ $_[0] } });
             ::mock_up('siteflow');
             $e || 'seen retrying' },
         wait => [[siteflow => 'POST /api/order', 1]], mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
seen retrying
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
--- no_error_log
[alert]
[crit]



=== TEST 11: ambiguous create (SiteFlow took it, the answer was cut): the retry looks it up, finds it, creates nothing more
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::sf_rules({ on => 'POST /api/order', action => 'partial', status => 201, times => 1,
             json => { _id => '5f00aa00bb00cc00dd005001', url => 'x' x 64 } },
           { on => 'GET /api/order/bysourceid/PN-5001', status => 200,
             json => { _id => '5f00aa00bb00cc00dd005001',
                       orderData => { sourceOrderId => 'PN-5001' } } });
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","id":5001}
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'GET /api/order/bysourceid/*', 1]],
         hide => qr{/validate$}, mocks => ['siteflow'], jobs => 1)
--- response_body
answer {"job":"ID"}
SF POST /api/order oneflow PN-5001 fields-ok -> 201 partial
SF GET /api/order/bysourceid/PN-5001 oneflow -> 200
job order 5001 done
--- no_error_log
[alert]
[crit]



=== TEST 12: ambiguous create (connection reset after sending): the look-up says 404, so it is created again, once
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::sf_rules({ on => 'POST /api/order', action => 'reset', times => 1 });
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","id":5001}
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 2]], hide => qr{/validate$},
         mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
SF POST /api/order oneflow PN-5001 fields-ok -> reset
SF GET /api/order/bysourceid/PN-5001 oneflow -> 404
SF POST /api/order oneflow PN-5001 fields-ok -> 201
--- no_error_log
[alert]
[crit]



=== TEST 13: a 503 on create is ambiguous too: look-up first, then create
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::sf_rules({ on => 'POST /api/order', status => 503, times => 1,
             json => { success => JSON::PP::false } });
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","id":5001}
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 2]], hide => qr{/validate$},
         mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
SF POST /api/order oneflow PN-5001 fields-ok -> 503
SF GET /api/order/bysourceid/PN-5001 oneflow -> 404
SF POST /api/order oneflow PN-5001 fields-ok -> 201
--- no_error_log
[alert]
[crit]



=== TEST 14: two storefronts in one nginx: shop2 is PrintOS (signed without /siteflow, SHA256), its own mapping and destination
--- http_config eval
'    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_SHOP2_PORT;
        server_name shop2;
' . ::storefront_conf(shop => 'shop2') . '    }
'
--- config eval: ::storefront_conf()
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             my $a = ::hook({ event => 'order_created', id => 7001 }, shop => 'shop2');
             my $b = ::hook({ event => 'order_created', id => 5001 });
             "shop2 -> $a->{status}, shop1 -> $b->{status}" },
         wait => [[siteflow => 'POST /siteflow/api/order', 1],
                  [siteflow => 'POST /api/order', 1]],
         admin => [undef, 'shop2'], sort => 1)
--- response_body
answer pong
shop2 -> 202, shop1 -> 202
PN GET /api/v2/order/5001 basic -> 200
PN GET /api/v2/order/7001 basic -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /siteflow/api/order printos SHOP2-7001 fields-ok -> 201
SF POST /siteflow/api/order/validate printos SHOP2-7001 fields-ok -> 200
--- no_error_log
[alert]
[crit]



=== TEST 15: siteflow_printnow_fetch off: the hook's order is used as is (no PrintNow call); Unicode kept intact
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_printnow_fetch off;')
--- request eval
"POST /hook?token=hook-9f3b2c7d-not-real&event=order_created\n"
. Siteflow::Flow::_slurp("$Siteflow::Flow::ROOT/t/fixtures/orders/5004.json")
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]])
--- response_body
answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-5004 fields-ok -> 200
SF POST /api/order oneflow PN-5004 fields-ok -> 201
--- no_error_log
[alert]
[crit]



=== TEST 16: an order SiteFlow would refuse (no postcode) fails naming the field, one with no mapped product is skipped; nothing sent
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5010}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":5007}"]
--- error_code eval
[202, 202]
--- response_body_filters eval
[[::report(mocks => [])],
 [::report(jobs => 1, errors => { 5010 => 'postal_code' })]]
--- response_body eval
["answer {\"job\":\"ID\"}
",
"answer {\"job\":\"ID\"}
PN GET /api/v2/order/5010 basic -> 200
PN GET /api/v2/order/5007 basic -> 200
job order 5010 failed (last_error ~ /postal_code/)
job order 5007 skipped
"]
--- no_error_log
[alert]
[crit]



=== TEST 17: GET on the hook: 405 with Allow: POST, JSON error
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request
GET /hook?token=hook-9f3b2c7d-not-real
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body_like
^\{"error":"(?:[^"\\]|\\.)+"\}\s*$
--- no_error_log
[alert]
[crit]



=== TEST 18: refusals change nothing: no token, wrong token, form type, multipart, bad JSON (line and column); a Bearer token works
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request eval
["POST /hook
{\"event\":\"order_created\",\"id\":5001}",
"POST /hook?token=hook-9f3b2c7e-not-real
{\"event\":\"order_created\",\"id\":5001}",
"POST /hook?token=hook-9f3b2c7d-not-real
event=order_created&id=5001",
"POST /hook?token=hook-9f3b2c7d-not-real
--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{}\r\n--x--\r\n",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",
 \"id\": 5001,,}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\"}",
"POST /hook
{\"event\":\"order_created\",\"id\":5002}"]
--- more_headers eval
["", "", "Content-Type: application/x-www-form-urlencoded",
 "Content-Type: multipart/form-data; boundary=x", "Content-Type: text/plain",
 "", "Authorization: Bearer hook-9f3b2c7d-not-real"]
--- error_code eval
[401, 401, 415, 415, 400, 400, 202]
--- response_body_filters eval
[[], [], [], [], [], [],
 [::report(wait => [[siteflow => 'POST /api/order', 1]], jobs => 1)]]
--- response_body_like eval
['^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"invalid JSON[^"]*line 2, column \d+(?:[^"\\\\]|\\\\.)*"\}\s*$',
 '^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^answer \{"job":"ID"\}
PN GET /api/v2/order/5002 basic -> 200
SF POST /api/order/validate oneflow PN-5002 fields-ok -> 200
SF POST /api/order oneflow PN-5002 fields-ok -> 201
(?:job order 5002 done
)?$']
--- no_error_log
[alert]
[crit]



=== TEST 19: siteflow_api ... algorithm=sha1 (older OneFlow accounts): HMAC-SHA1 without x-oneflow-algorithm, verified by the mock; the default is SHA256 (TEST 1)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(algorithm => 'sha1')
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":5001,"status":"New Order"}}
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]],
         then => sub { map { "algorithm header: "
                             . ($_->{headers}{'x-oneflow-algorithm'} // 'none') }
                       @{ ::mock_requests('siteflow', 'POST /api/order*') } })
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow(SHA1) PN-5001 fields-ok -> 200
SF POST /api/order oneflow(SHA1) PN-5001 fields-ok -> 201
algorithm header: none
algorithm header: none
--- no_error_log
[alert]
[crit]



=== TEST 20: deleted and archived orders are never created: is_deleted in the hook's order is 200 skipped (not sent) or a cancel (sent, cancel_on_delete on); is_deleted/is_archived in PrintNow's copy skip the job; is_archived in the hook is 200 skipped
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_cancel_on_delete on;')
--- init
::sf_rules({ on => 'POST /api/order', status => 201,
             json => { _id => '5f00aa00bb00cc00dd005001' } });
::send_and_wait(5001);
::pn_rules({ on => 'GET /api/v2/order/6001', json => ::pn_order(6001, is_deleted => JSON::PP::true) },
           { on => 'GET /api/v2/order/6002', json => ::pn_order(6002, is_archived => JSON::PP::true) });
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":5002,\"status\":\"New Order\",\"is_archived\":false,\"is_deleted\":true}}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"order\":{\"id\":5003,\"status\":\"New Order\",\"is_archived\":true,\"is_deleted\":false}}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":6001,\"status\":\"New Order\"}}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":6002,\"status\":\"New Order\"}}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":5001,\"status\":\"New Order\",\"is_deleted\":true}}"]
--- error_code eval
[200, 200, 202, 202, 202]
--- response_body_filters eval
[[], [],
 [::report(mocks => [], jobs_wait => ['job of order 6001 skipped', sub {
      grep { $_->{order_id} eq '6001' && $_->{state} eq 'skipped' } @{ $_[0] } }])],
 [::report(mocks => [], jobs_wait => ['job of order 6002 skipped', sub {
      grep { $_->{order_id} eq '6002' && $_->{state} eq 'skipped' } @{ $_[0] } }])],
 [::report(wait => [[siteflow => 'PUT /api/order/*', 1]], mocks => ['siteflow'], jobs => 1,
           errors => { 6001 => 'order 6001 is deleted in PrintNow \(is_deleted: true\)',
                       6002 => 'order 6002 is archived in PrintNow \(is_archived: true\)' })]]
--- response_body eval
['{"skipped":"the order is deleted in PrintNow (is_deleted: true): it is not sent to SiteFlow"}
',
'{"skipped":"the order is archived in PrintNow (is_archived: true): it is not sent to SiteFlow"}
',
"answer {\"job\":\"ID\"}\n",
"answer {\"job\":\"ID\"}\n",
'answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
SF PUT /api/order/5f00aa00bb00cc00dd005001/cancel oneflow -> 200
job order 5001 done
job order 6001 skipped (last_error ~ /order 6001 is deleted in PrintNow \(is_deleted: true\)/)
job order 6002 skipped (last_error ~ /order 6002 is archived in PrintNow \(is_archived: true\)/)
job cancel 5001 done
']
--- no_error_log
[alert]
[crit]



=== TEST 21: is_deleted of a sent order with siteflow_cancel_on_delete off: 200 skipped saying so, no cancel
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_cancel_on_delete off;')
--- init
::send_and_wait(5001);
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_updated","order":{"id":5001,"status":"New Order","is_deleted":true}}
--- error_code: 200
--- response_body_filters eval
::report(mocks => ['siteflow'])
--- response_body
answer {"skipped":"the order is deleted in PrintNow (is_deleted: true): it was sent to SiteFlow and stays there (siteflow_cancel_on_delete is off)"}
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
--- no_error_log
[alert]
[crit]



=== TEST 22: a body over client_max_body_size: 413 with a JSON error, whether it comes with a Content-Length, chunked at once, or chunked in pieces after the headers were read; no job
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
--- config eval
::storefront_conf(extra => <<"EOC")
    location = /small {
        siteflow_printnow_hook;
        siteflow_token $Siteflow::Flow::TOKEN{hook};
        client_max_body_size 1k;
    }
EOC
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my $body = '{"event":"order_created","id":5001,"pad":"' . ('x' x 3000) . '"}';
    my $head = "POST /small?token=$Siteflow::Flow::TOKEN{hook} HTTP/1.1\r\n"
        . "Host: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\n";
    my @chunks = map { sprintf("%x\r\n%s\r\n", length $_, $_) }
                 unpack('(a500)*', $body);
    my %parts = (
        'length' => [$head . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body],
        'chunked' => [$head . "Transfer-Encoding: chunked\r\n\r\n"
                      . CORE::join('', @chunks) . "0\r\n\r\n"],
        # the headers and a first piece; the rest once nginx has read them
        'chunked late' => [$head . "Transfer-Encoding: chunked\r\n\r\n" . $chunks[0],
                           (map { +{ value => $chunks[$_],
                                     delay_before => $_ == 1 ? 0.3 : 0.05 } } 1 .. $#chunks),
                           { value => "0\r\n\r\n", delay_before => 0.05 }],
    );
    my @l;
    for my $how ('length', 'chunked', 'chunked late') {
        my $r = ::raw_request(parts => $parts{$how});
        (my $ct = $r->{headers}{'content-type'} // '-') =~ s/;.*//;
        (my $b = $r->{body}) =~ s/\s+\z//;
        push @l, "$how: " . ($r->{status} || 'no answer') . " $ct $b";
    }
    (@l, scalar(@{ ::admin_jobs() || [] }) . ' jobs') })
--- response_body
answer pong
length: 413 application/json {"error":"the body is larger than client_max_body_size (1024 bytes)"}
chunked: 413 application/json {"error":"the body is larger than client_max_body_size (1024 bytes)"}
chunked late: 413 application/json {"error":"the body is larger than client_max_body_size (1024 bytes)"}
0 jobs
--- no_error_log
[alert]
[crit]



=== TEST 23: PrintNow's order fetch answered 200 with JSON the module cannot hold (\u0000 in a string, an integer beyond 64 bits, a JSON array): failed with the parser's reason; with an HTML page: retried, the reason kept
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
my $big = $Siteflow::Flow::J->encode(::pn_order(6004));
$big =~ s/^\{/{"tax":123456789012345678901234567890,/;
::pn_rules({ on => 'GET /api/v2/order/6003', json => ::pn_order(6003, customer_note => "a\x{0}b") },
           { on => 'GET /api/v2/order/6004', body => $big },
           { on => 'GET /api/v2/order/6005', json => [::pn_order(6005)] },
           { on => 'GET /api/v2/order/6006', body => '<html><body>down for maintenance</body></html>',
             headers => { 'Content-Type' => 'text/html' } });
--- request eval
[map { "POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":$_,\"status\":\"New Order\"}}" } 6003 .. 6006]
--- error_code eval
[202, 202, 202, 202]
--- response_body_filters eval
[([::report(idle => 0, mocks => [])]) x 3,
 [::report(idle => 0, mocks => ['siteflow'], jobs => 1,
           jobs_wait => ['6003-6005 failed, 6006 retried', sub {
               my %s = map { ($_->{order_id} => [$_->{state}, $_->{attempts}]) } @{ $_[0] };
               (grep { ($s{$_}[0] // '') eq 'failed' } 6003 .. 6005) == 3
               && ($s{6006}[0] // '') eq 'retrying' && $s{6006}[1] >= 2 }],
           errors => { 6003 => '^PrintNow answered the order fetch with JSON this module cannot read: .*(?i:nul)',
                       6004 => '^PrintNow answered the order fetch with JSON this module cannot read: too big integer',
                       6005 => '^PrintNow answered the order fetch with JSON that is not an order object',
                       6006 => '^PrintNow answered the order fetch with something that is not JSON: .*line 1' })]]
--- response_body eval
[("answer {\"job\":\"ID\"}\n") x 3,
'answer {"job":"ID"}
job order 6003 failed (last_error ~ /^PrintNow answered the order fetch with JSON this module cannot read: .*(?i:nul)/)
job order 6004 failed (last_error ~ /^PrintNow answered the order fetch with JSON this module cannot read: too big integer/)
job order 6005 failed (last_error ~ /^PrintNow answered the order fetch with JSON that is not an order object/)
job order 6006 retrying (last_error ~ /^PrintNow answered the order fetch with something that is not JSON: .*line 1/)
']
--- no_error_log
[alert]
[crit]



=== TEST 24: a manual-only storefront with an admin location and no hook or postback location: admin send is delivered with that server's PrintNow and SiteFlow settings
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(trigger => 'manual', admin_only => 1)
--- request
POST /admin/send/5001
--- more_headers
X-SiteFlow-Admin: 1
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]], jobs => 1)
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
job order 5001 done
--- no_error_log
[alert]
[crit]
0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978
C0FFEEC0FFEEC0FFEE



=== TEST 25: the same server without siteflow_destination (the mapping names none either): admin send is refused with 409, nothing is fetched or queued
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
--- config eval: ::storefront_conf(trigger => 'manual', admin_only => 1, no_destination => 1)
--- request
POST /admin/send/5001
--- more_headers
X-SiteFlow-Admin: 1
--- error_code: 409
--- response_body_filters eval
::report(do => sub { scalar(@{ ::admin_jobs() || [] }) . ' jobs' })
--- response_body
answer {"error":"this server has no siteflow_destination (nor a destination in its mapping file) to send orders to"}
0 jobs
--- no_error_log
[alert]
[crit]



=== TEST 26: an "event" that is not a string (array, number, object, boolean; read as text or by jansson) is refused with 400 naming the field: nothing fetched, nothing queued; an "event" of null counts as none (order_updated)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
    # a key with an escape ("x\u0041") makes the hook ask jansson
    map { my $r = ::hook($_);
          (my $b = $r->{body}) =~ s/\s+\z//;
          $b =~ s/("job":)"[^"]+"/$1"ID"/;
          "$r->{status} $b" }
        '{"event":["order_deleted"],"id":"EVC2"}',
        '{"event":5,"id":"EVC2"}',
        '{"event":{"a":1},"id":"EVC2"}',
        '{"event":true,"id":"EVC2"}',
        '{"event":false,"order":{"id":"EVC2","status":"New Order"}}',
        '{"event":["order_deleted"],"id":"EVC2","x\u0041":1}',
        '{"event":5,"order":{"id":"EVC2"},"x\u0041":1}',
        '{"event":null,"id":5001}',
        '{"event":null,"id":5002,"x\u0041":1}' },
    wait => [[siteflow => 'POST /api/order', 2]], sort => 1, jobs => 1)
--- response_body
answer pong
400 {"error":"\"event\": the event is not a string"}
400 {"error":"\"event\": the event is not a string"}
400 {"error":"\"event\": the event is not a string"}
400 {"error":"\"event\": the event is not a string"}
400 {"error":"\"event\": the event is not a string"}
400 {"error":"\"event\": the event is not a string"}
400 {"error":"\"event\": the event is not a string"}
202 {"job":"ID"}
202 {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
PN GET /api/v2/order/5002 basic -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
SF POST /api/order oneflow PN-5002 fields-ok -> 201
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order/validate oneflow PN-5002 fields-ok -> 200
job order 5001 done
job order 5002 done
--- no_error_log
[alert]
[crit]



=== TEST 27: names with spaces around them in PrintNow's order: shipTo.name and customerName are the parts trimmed and joined with one space (" Ann " + " Lee" is "Ann Lee"), a blank part left out
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
my $o1 = ::pn_order(6003);
$o1->{shipping_address}{first_name} = ' Ann ';
$o1->{shipping_address}{last_name} = ' Lee';
$o1->{customer}{first_name} = "\tCora ";
$o1->{customer}{last_name} = '  Buyer  ';
my $o2 = ::pn_order(6004);
$o2->{shipping_address}{first_name} = '  Ann  ';
$o2->{shipping_address}{last_name} = '   ';
$o2->{customer}{first_name} = '   ';
$o2->{customer}{last_name} = ' Buyer';
::pn_rules({ on => 'GET /api/v2/order/6003', json => $o1 },
           { on => 'GET /api/v2/order/6004', json => $o2 });
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             map { my $r = ::hook({ event => 'order_created', id => $_ });
                   "$_: $r->{status} " . ($r->{body} =~ s/"job":"[^"]+"/"job":"ID"/r =~ s/\s+$//r) }
                 6003, 6004 },
         wait => [[siteflow => 'POST /api/order', 2]], mocks => [],
         then => sub {
             map { my $o = ::json_of($_->{body})->{orderData};
                   my $n = $o->{shipments}[0]{shipTo}{name};
                   "$o->{sourceOrderId} shipTo.name \"$n\" customerName \"$o->{customerName}\"" }
             sort { ::json_of($a->{body})->{orderData}{sourceOrderId}
                    cmp ::json_of($b->{body})->{orderData}{sourceOrderId} }
             @{ ::mock_requests('siteflow', 'POST /api/order') } })
--- response_body
answer pong
6003: 202 {"job":"ID"}
6004: 202 {"job":"ID"}
PN-6003 shipTo.name "Ann Lee" customerName "Cora Buyer"
PN-6004 shipTo.name "Ann" customerName "Buyer"
--- no_error_log
[alert]
[crit]



=== TEST 28: PrintNow answering the fetch of one order with another order (another id): the job fails naming both ids and nothing reaches SiteFlow; the same id as a string instead of a number is the same order
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::pn_rules({ on => 'GET /api/v2/order/6007', json => ::pn_order(6008) },
           { on => 'GET /api/v2/order/6009', json => ::pn_order(6009, id => '6009') });
--- request eval
[map { "POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":$_,\"status\":\"New Order\"}}" } 6007, 6009]
--- error_code eval
[202, 202]
--- response_body_filters eval
[[::report(idle => 0, mocks => [])],
 [::report(mocks => ['siteflow'], jobs => 1,
           errors => { 6007 => '^PrintNow answered the fetch of order "6007" with an order whose id is "6008": it is not sent' })]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
'answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-6009 fields-ok -> 200
SF POST /api/order oneflow PN-6009 fields-ok -> 201
job order 6007 failed (last_error ~ /^PrintNow answered the fetch of order "6007" with an order whose id is "6008": it is not sent/)
job order 6009 done
']
--- no_error_log
[alert]
[crit]



=== TEST 29: the order id outside an "order" object without one is read, as docs/printnow.md orders them: the body's id, data.order_id, the body's order_id when order.id is null
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::pn_rules(map { { on => "GET /api/v2/order/$_", json => ::pn_order($_) } } 6010, 6011, 6012);
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"status\":\"New Order\"},\"id\":6010}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"status\":\"New Order\"},\"data\":{\"order_id\":\"6011\"}}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":null,\"status\":\"New Order\"},\"order_id\":6012}"]
--- error_code eval
[202, 202, 202]
--- response_body_filters eval
[[::report(idle => 0, mocks => [])],
 [::report(idle => 0, mocks => [])],
 [::report(mocks => ['siteflow'], jobs => 3)]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
"answer {\"job\":\"ID\"}\n",
'answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-6010 fields-ok -> 200
SF POST /api/order oneflow PN-6010 fields-ok -> 201
SF POST /api/order/validate oneflow PN-6011 fields-ok -> 200
SF POST /api/order oneflow PN-6011 fields-ok -> 201
SF POST /api/order/validate oneflow PN-6012 fields-ok -> 200
SF POST /api/order oneflow PN-6012 fields-ok -> 201
job order 6010 done
job order 6011 done
job order 6012 done
']
--- no_error_log
[alert]
[crit]



=== TEST 30: connections to SiteFlow are kept between bursts: 8 orders at once take 8 connections (each validate waits 300 ms); the next 8 at once use those again and open none (libcurl's own cache keeps 4 per transfer still running, and closed some of them)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_queue_concurrency 8;
--- config eval: ::storefront_conf(extra => '    siteflow_printnow_fetch off;')
--- init
::sf_rules({ on => 'POST /api/order/validate', status => 200, delay_ms => 300,
             json => { success => JSON::PP::true } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my (@l, %conns);
    for my $burst ([6101 .. 6108], [6111 .. 6118]) {
        push @l, ::hook_answers(map { { event => 'order_created', order => ::pn_order($_) } } @$burst);
        my $e = ::wait_requests('siteflow', 'POST /api/order', $burst->[-1] < 6110 ? 8 : 16);
        push @l, $e if $e;
        $e = Siteflow::Flow::_idle(timeout => 30);
        push @l, $e if $e;
        $conns{ $burst->[0] } = ::conns_of('siteflow', $burst->[0], $burst->[-1]);
    }
    my $first = $conns{6101};
    my @new = grep { !$first->{$_} } keys %{ $conns{6111} };
    (@l, 'connections of the first burst: ' . keys(%$first),
     'new connections in the second: ' . @new) })
--- response_body
answer pong
answers: 202 x8
answers: 202 x8
connections of the first burst: 8
new connections in the second: 0
--- no_error_log
[alert]
[crit]



=== TEST 31: a byte order mark is read past: a hook body starting with one (a .NET sender's) is accepted, and so is PrintNow's answer to the fetch with one; both orders are created
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::pn_rules({ on => 'GET /api/v2/order/6014', status => 200,
             headers => { 'Content-Type' => 'application/json; charset=utf-8' },
             body => "\x{FEFF}" . JSON::PP->new->canonical->encode(::pn_order(6014)) });
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
\xEF\xBB\xBF{\"event\":\"order_updated\",\"order\":{\"id\":6013,\"status\":\"New Order\"}}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_updated\",\"order\":{\"id\":6014,\"status\":\"New Order\"}}"]
--- error_code eval
[202, 202]
--- response_body_filters eval
[[::report(idle => 0, mocks => [])],
 [::report(mocks => ['siteflow'], jobs => 2)]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
'answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-6013 fields-ok -> 200
SF POST /api/order oneflow PN-6013 fields-ok -> 201
SF POST /api/order/validate oneflow PN-6014 fields-ok -> 200
SF POST /api/order oneflow PN-6014 fields-ok -> 201
job order 6013 done
job order 6014 done
']
--- no_error_log
[alert]
[crit]



=== TEST 32: an answer whose message is cut at 1023 bytes in the middle of a character (a long event name of 3-byte characters), or that quotes bytes of the URL that are not UTF-8, is still answered: the cut character is left out, a bad byte is U+FFFD; never a 500
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
--- config eval: ::storefront_conf()
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"" . ("\xE2\x82\xAC" x 400) . "\",\"id\":1}",
"POST /hook?token=hook-9f3b2c7d-not-real&event=a%FFb
{\"id\":1}"]
--- error_code eval
[200, 200]
--- response_body eval
["{\"skipped\":\"event \\\"" . ("\xE2\x82\xAC" x 338) . "\"}\n",
"{\"skipped\":\"event \\\"a\xEF\xBF\xBDb\\\" is not an order event\"}\n"]
--- no_error_log
[alert]
[crit]



=== TEST 33: two orders whose keys ("shop1", NUL, the id) have the same crc32, 218504449 and 890439518 (the zone's look-ups hash it): each is created once; the second is not taken for the first, and the first sent again is found already sent
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::pn_rules({ on => 'GET /api/v2/order/218504449', json => ::pn_order(218504449) },
           { on => 'GET /api/v2/order/890439518', json => ::pn_order(890439518) });
--- request eval
["POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":218504449}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":890439518}",
"POST /hook?token=hook-9f3b2c7d-not-real
{\"event\":\"order_created\",\"id\":218504449}"]
--- error_code eval
[202, 202, 200]
--- response_body_filters eval
[[::report(mocks => [], wait => [[siteflow => 'POST /api/order', 1]])],
 [::report(mocks => [], wait => [[siteflow => 'POST /api/order', 2]])],
 [::report(mocks => [], answer => 'skipped:already sent',
           do => sub { split /\n/, ::tally(orders => [218504449, 890439518]) })]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
"answer {\"job\":\"ID\"}\n",
"answer {\"skipped\": ~ /already sent/}
accepted 2
created 2
lost 0
duplicated 0
"]
--- no_error_log
[alert]
[crit]



=== TEST 34: with the fetch, connections to PrintNow and to SiteFlow are both kept between bursts: 8 orders at once take 8 connections to each (each fetch and each validate waits 300 ms); the next 8 open none to either (with every connection counted against siteflow_queue_concurrency, a validate closed an idle PrintNow connection to open its own, and the next burst's fetches opened 8 again)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_queue_concurrency 8;
--- config eval: ::storefront_conf()
--- init
::pn_rules(map { { on => "GET /api/v2/order/$_", delay_ms => 300, json => ::pn_order($_) } }
           6121 .. 6128, 6131 .. 6138);
::sf_rules({ on => 'POST /api/order/validate', status => 200, delay_ms => 300,
             json => { success => JSON::PP::true } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my (@l, %conns);
    for my $burst ([6121 .. 6128], [6131 .. 6138]) {
        push @l, ::hook_answers(map { { event => 'order_created', id => $_ } } @$burst);
        my $e = ::wait_requests('siteflow', 'POST /api/order', $burst->[-1] < 6130 ? 8 : 16);
        push @l, $e if $e;
        $e = Siteflow::Flow::_idle(timeout => 30);
        push @l, $e if $e;
        $conns{$_}{ $burst->[0] } = ::conns_of($_, $burst->[0], $burst->[-1])
            for qw(printnow siteflow);
    }
    for my $mock (qw(printnow siteflow)) {
        my $first = $conns{$mock}{6121};
        my @new = grep { !$first->{$_} } keys %{ $conns{$mock}{6131} };
        push @l, "$mock: connections of the first burst: " . keys(%$first)
                 . ', new in the second: ' . @new;
    }
    @l })
--- response_body
answer pong
answers: 202 x8
answers: 202 x8
printnow: connections of the first burst: 8, new in the second: 0
siteflow: connections of the first burst: 8, new in the second: 0
--- no_error_log
[alert]
[crit]



=== TEST 35: siteflow_queue_concurrency caps the calls in flight (libcurl's own cap is twice as high, for the connections kept open): with 2, six orders whose validates each wait 400 ms reach SiteFlow at most 2 at a time, over 2 connections, and all are created
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_queue_concurrency 2;
--- config eval: ::storefront_conf(extra => '    siteflow_printnow_fetch off;')
--- init
::sf_rules({ on => 'POST /api/order/validate', status => 200, delay_ms => 400,
             json => { success => JSON::PP::true } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my @l = ::hook_answers(map { { event => 'order_created', order => ::pn_order($_) } } 6141 .. 6146);
    my $e = ::wait_requests('siteflow', 'POST /api/order', 6, 30);
    push @l, $e if $e;
    # a validate is in flight for 400 ms from its arrival: the most that
    # arrived within less than that of one another
    my @t = sort { $a <=> $b } map { $_->{time} } @{ ::mock_requests('siteflow', 'POST /api/order/validate') };
    my $most = 0;
    for my $i (0 .. $#t) {
        my $n = grep { $_ > $t[$i] - 350 && $_ <= $t[$i] } @t;
        $most = $n if $n > $most;
    }
    (@l, 'validates: ' . @t, "most at once: $most",
     'connections to SiteFlow: ' . keys %{ ::conns_of('siteflow', 6141, 6146) }) })
--- response_body
answer pong
answers: 202 x6
validates: 6
most at once: 2
connections to SiteFlow: 2
--- no_error_log
[alert]
[crit]
