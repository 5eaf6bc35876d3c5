# vim:set ft=perl ts=4 sw=4 et:
#
# The delivery path says what it does at debug level (error_log ... debug,
# nginx built --with-debug as Debian's is): a "siteflow hook:" line with
# the hook's decision, and "siteflow job:" lines when a job starts, its
# decision, each call out (step, method, path), each answer (network
# result, outcome, the answer's text) and its end (state and reason).
# Operators and tests can follow one job by its id.  The report waits until
# the queue is idle, so every line is written before the log is read.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();
run_tests();

__DATA__

=== TEST 1: an order sent: the hook's decision, the job's start, decision, three calls, their answers and its end
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
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]])
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
--- error_log eval
[qr/siteflow hook: order "5001" fetch: $/m,
 qr/siteflow job: \d+ order job of order "5001" \(shop1\) starts/,
 qr{siteflow job: \d+ fetch: GET /api/v2/order/5001$}m,
 qr/siteflow job: \d+ fetch answered: ok, done: HTTP 200/,
 qr/siteflow job: \d+ order "5001" send: $/m,
 qr{siteflow job: \d+ validate: POST /order/validate$}m,
 qr/siteflow job: \d+ validate answered: ok, done: HTTP 200/,
 qr{siteflow job: \d+ create: POST /order$}m,
 qr/siteflow job: \d+ create answered: ok, done: HTTP 201/,
 qr/siteflow job: \d+ ends done: ""/]
--- no_error_log
[alert]
[crit]



=== TEST 2: a status that is not a trigger in PrintNow's copy: the job's decision and its end, skipped with the reason
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(trigger => '"Approved"')
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":5001,"status":"Approved"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
--- error_log eval
[qr/siteflow job: \d+ fetch answered: ok, done: HTTP 200/,
 qr/siteflow job: \d+ order "5001" skip_status: status "New Order" is not a trigger status$/m,
 qr/siteflow job: \d+ ends skipped: "status "New Order" is not a trigger status"/]
--- no_error_log
[alert]
[crit]



=== TEST 3: SiteFlow down: the validate call's network error, the retry and the job's end as retrying
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
--- error_log eval
[qr/siteflow job: \d+ validate answered: connect, retry: connection failed/,
 qr/siteflow job: \d+ ends retrying: "connection failed"/,
 qr/siteflow job: \d+ ends done: ""/]
--- no_error_log
[alert]
[crit]



=== TEST 4: siteflow_printnow_fetch off: a body jansson would read is read as text (no tree of the order at the hook), and the order sent is the hook's
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_printnow_fetch off;')
--- request eval
"POST /hook?token=hook-9f3b2c7d-not-real&event=order_created\n"
. Siteflow::Flow::_slurp("$Siteflow::Flow::ROOT/t/fixtures/orders/5004.json")
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]])
--- response_body
answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-5004 fields-ok -> 200
SF POST /api/order oneflow PN-5004 fields-ok -> 201
--- error_log eval
[qr/siteflow hook: body read as text, \d+ bytes/,
 qr/siteflow hook: order "5004" send: $/m,
 qr/siteflow job: \d+ ends done: ""/]
--- no_error_log
[alert]
[crit]



=== TEST 5: a body the text reader cannot vouch for (a key with an escape) goes to jansson, with the same answer and the same order sent
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_printnow_fetch off;')
--- request eval
my $o = Siteflow::Flow::_slurp("$Siteflow::Flow::ROOT/t/fixtures/orders/5004.json");
$o =~ s/"status"/"st\\u0061tus"/ or die "no status in 5004.json";
"POST /hook?token=hook-9f3b2c7d-not-real&event=order_created\n$o"
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]])
--- response_body
answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-5004 fields-ok -> 200
SF POST /api/order oneflow PN-5004 fields-ok -> 201
--- error_log eval
[qr/siteflow hook: order "5004" send: $/m,
 qr/siteflow job: \d+ ends done: ""/]
--- no_error_log
siteflow hook: body read as text
[alert]
[crit]
