# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: an id never changes which upstream URL is called.  Every id
# the module puts into an upstream URL path (the hook's PrintNow order id,
# a postback's sourceItemId with siteflow_ship_per_item, admin
# send/{id}, SiteFlow's _id taken from its answer) is one percent-escaped
# path segment; an id that is ".", ".." (or empty) is refused with 400
# naming the field before anything is queued, and libcurl sends paths as
# built (CURLOPT_PATH_AS_IS).  Each block sends a table of hostile ids and
# lists every request the mocks received: nothing reaches another path.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();

# "<status> <body>" of each answer, job ids replaced
sub answers {
    return map { "$_->{status} " . ($_->{body} =~ s/"job":"[^"]+"/"job":"ID"/r
                                               =~ s/\s+$//r) } @_;
}

run_tests();

__DATA__

=== TEST 1: hook: hostile PrintNow order ids: "." and ".." refused (400 naming the field), the rest fetched as one escaped segment
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::pn_rules({ on => 'GET /api/v2/order/*', status => 404,
             json => { error => 'not found' } });
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             ::answers(map { ::hook($_) }
                 { event => 'order_created', id => '.' },
                 { event => 'order_created', id => '..' },
                 { event => 'order_created', order => { id => '..' } },
                 { event => 'order_created', data => { order_id => '.' } },
                 { event => 'order_created', id => '' },
                 { event => 'order_created', id => '../1003' },
                 { event => 'order_created', id => '...' },
                 { event => 'order_created', id => '%2e%2e' },
                 { event => 'order_created', id => '..%2F..%2Fv1%2Fsecret' },
                 { event => 'order_created', id => '1001?x=1#f' },
                 { event => 'order_created', id => 'a\\..\\b' },
                 { event => 'order_created', id => '..;' });
         },
         wait => [[printnow => 'GET *', 6]], mocks => ['printnow'], sort => 1)
--- response_body
answer pong
400 {"error":"\"id\": the order id is \".\" or \"..\", which is not an id"}
400 {"error":"\"id\": the order id is \".\" or \"..\", which is not an id"}
400 {"error":"\"order.id\": the order id is \".\" or \"..\", which is not an id"}
400 {"error":"\"data.order_id\": the order id is \".\" or \"..\", which is not an id"}
400 {"error":"\"id\": the order id is not a string or number of 1 to 128 printable characters"}
400 {"error":"\"id\": the order id is not a string or number of 1 to 128 printable characters"}
202 {"job":"ID"}
202 {"job":"ID"}
202 {"job":"ID"}
202 {"job":"ID"}
202 {"job":"ID"}
202 {"job":"ID"}
PN GET /api/v2/order/%252e%252e basic -> 404
PN GET /api/v2/order/..%252F..%252Fv1%252Fsecret basic -> 404
PN GET /api/v2/order/..%3B basic -> 404
PN GET /api/v2/order/... basic -> 404
PN GET /api/v2/order/1001%3Fx%3D1%23f basic -> 404
PN GET /api/v2/order/a%5C..%5Cb basic -> 404
--- no_error_log
[alert]
[crit]



=== TEST 2: postback with siteflow_ship_per_item: a sourceItemId "." or ".." is refused (400, nothing queued); the rest is one escaped segment
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_ship_per_item on;')
--- init
::send_and_wait(5002);
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             my $n = 0;
             ::answers(map { ::postback({ event => 'shipped',
                                          sourceOrderId => 'PN-5002',
                                          shipmentIndex => 0,
                                          trackingNumber => 'TRK' . ++$n,
                                          shipDate => '2024-05-02',
                                          items => $_ }) }
                 [{ sourceItemId => '..', shipmentIndex => 0 }],
                 ['101', '.'],
                 [{ sourceItemId => '../../1003/shipped', shipmentIndex => 0 }],
                 ['../../../../v1/secret?x=1#'],
                 ['%2e%2e', '...']);
         },
         wait => [[printnow => 'PATCH *', 4]], hide => qr{^GET },
         mocks => ['printnow'], sort => 1)
--- response_body
answer pong
400 {"error":"\"sourceItemId\" is \".\" or \"..\", which is not an id"}
400 {"error":"\"sourceItemId\" is \".\" or \"..\", which is not an id"}
200 {"job":"ID"}
200 {"job":"ID"}
200 {"job":"ID"}
PN PATCH /api/v2/order/5002/shipped/%252e%252e basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK5"} -> 200
PN PATCH /api/v2/order/5002/shipped/..%2F..%2F..%2F..%2Fv1%2Fsecret%3Fx%3D1%23 basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK4"} -> 200
PN PATCH /api/v2/order/5002/shipped/..%2F..%2F1003%2Fshipped basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK3"} -> 200
PN PATCH /api/v2/order/5002/shipped/... basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK5"} -> 200
--- no_error_log
[alert]
[crit]



=== TEST 3: admin send/{id}: dot segments never reach PrintNow; an id is fetched as one segment
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::pn_rules({ on => 'GET /api/v2/order/*', status => 404,
             json => { error => 'not found' } });
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             map { my $r = ::admin(POST => "send/$_");
                   "$_: $r->{status}" }
                 '.', '..', '%2E%2E', '.%2e', 'a..b', '...',
                 '..%2F..%2Fv1', '1001%3Fx', '1001%2F..';
         },
         wait => [[printnow => 'GET *', 2]], mocks => ['printnow'], sort => 1)
--- response_body
answer pong
.: 404
..: 405
%2E%2E: 405
.%2e: 405
a..b: 202
...: 202
..%2F..%2Fv1: 404
1001%3Fx: 400
1001%2F..: 404
PN GET /api/v2/order/... basic -> 404
PN GET /api/v2/order/a..b basic -> 404
--- no_error_log
[alert]
[crit]



=== TEST 4: a SiteFlow _id ".." from the create answer is never put in a path: the cancel fails, nothing is sent
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_cancel_on_delete on;')
--- init
::sf_rules({ on => 'POST /api/order', status => 201, json => { _id => '..' } });
::send_and_wait(5001);
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_deleted","id":5001}
--- error_code: 202
--- response_body_filters eval
::report(jobs_wait => ['the cancel ended', sub { grep { $_->{kind} eq 'cancel' && $_->{state} eq 'failed' } @{ $_[0] } }],
         mocks => ['siteflow'], jobs => 1,
         then => sub { map { "last_error: $_->{last_error}" }
                       grep { $_->{kind} eq 'cancel' } @{ ::admin_jobs() } })
--- response_body
answer {"job":"ID"}
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
job order 5001 done
job cancel 5001 failed
last_error: SiteFlow's order id ".." is "." or "..", which is not an id: it cannot be put in a URL path
--- no_error_log
[alert]
[crit]
