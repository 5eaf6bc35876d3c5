# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: with "siteflow_queue" (the job queue on PostgreSQL) the
# module keeps the spool's promises: a hook is answered 202 only once its
# job is committed, and becomes exactly one order in SiteFlow; a postback
# becomes one PrintNow update; the same order again is skipped from the
# sent-orders index, which is a table; the admin lists, retries and sends
# against the database; the metrics name the backend; a schema newer than
# the module knows is refused with an alert and hooks get 503.
#
# The private PostgreSQL of Siteflow::Pg is started once for the file
# (skipped, with the reason, without Debian's postgresql package or when
# the module was built without libpq); each block empties the tables.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;
use Siteflow::Pg;

BEGIN {
    my $so = (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '')[0] // '';
    my $bytes = '';
    if (open my $fh, '<:raw', $so) { local $/; $bytes = <$fh> }
    my $why = $bytes =~ /PQconnectStart/ ? pg_available()
        : 'the module was built without PostgreSQL support';
    if ($why) {
        require Test::More;
        Test::More::plan(skip_all => $why);
    }
    pg_start();
}


sub pg_jobs {
    my @l = pg_sql('SELECT kind, order_id, state, attempts, '
                   . 'lease_owner IS NULL FROM siteflow_jobs ORDER BY id');
    return @l;
}

# each block starts from an empty queue, emptied before its nginx starts
# (an --- init section runs once nginx is up, next to its connection
# set-up)
add_block_preprocessor(sub { pg_empty() });

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();
run_tests();

__DATA__

=== TEST 1: hooks on PostgreSQL: 202 once committed, each order created once, the jobs done in the table with no lease left
--- http_config
    siteflow_zone sf:4m;
    siteflow_queue $TEST_NGINX_PG_URL lease=5s;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub { (::run_orders(ids => [6001 .. 6003]), ::pg_jobs()) })
--- response_body
answer pong
answers: 202 x3
accepted 3
created 3
lost 0
duplicated 0
1|6001|2|1|t
1|6002|2|1|t
1|6003|2|1|t
--- no_error_log
[alert]
[crit]



=== TEST 2: the same order again is skipped from the index table; the admin lists the jobs from the database
--- http_config
    siteflow_zone sf:4m;
    siteflow_queue $TEST_NGINX_PG_URL lease=5s;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my $r = ::hook({ event => 'order_created', id => 5001 });
    my $j = ::admin_jobs() || [];
    ("again: $r->{status} "
     . ((::json_of($r->{body}) // {})->{skipped} =~ /^(already sent to SiteFlow)/)[0],
     map { "job $_->{kind} $_->{order_id} $_->{state} $_->{attempts}" } @$j) })
--- response_body
answer pong
again: 200 already sent to SiteFlow
job order 5001 done 1
--- no_error_log
[alert]



=== TEST 3: a postback becomes one PrintNow update (the index entry found by sourceOrderId in the table)
--- http_config
    siteflow_zone sf:4m;
    siteflow_queue $TEST_NGINX_PG_URL lease=5s;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
[::pb_req(event => 'received', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'received', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', shipmentIndex => 0,
          trackingNumber => '1Z999AA10123456784',
          trackingUrl => 'https://www.ups.com/track?tracknum=1Z999AA10123456784',
          carrier => 'UPS Ground', shipDate => '2024-05-03'),
 ::pb_req(event => 'received', sourceOrderId => 'PN-9999')]
--- error_code eval
[200, 200, 200, 404]
--- response_body_filters eval
[[::report(mocks => [], wait => [[printnow => 'PATCH *', 1]])],
 [::report(mocks => [])],
 [::report(wait => [[printnow => 'PATCH *', 2]], hide => qr{^GET }, mocks => ['printnow'])],
 [::report(mocks => [], answer => 'error:unknown sourceOrderId')]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
 "answer {\"skipped\":\"duplicate of an earlier \\\"received\\\" postback\"}\n",
'answer {"job":"ID"}
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: received","status":"Submitted"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"carrier":"UPS Ground","notify_customer":true,"ship_date":"2024-05-03","tracking_number":"1Z999AA10123456784","tracking_url":"https://www.ups.com/track?tracknum=1Z999AA10123456784"} -> 200
',
"answer {\"error\": ~ /unknown sourceOrderId/}\n"]
--- no_error_log
[alert]



=== TEST 4: a job that failed is retried by the admin from the database; the metrics name the backend
--- http_config
    siteflow_zone sf:4m;
    siteflow_queue $TEST_NGINX_PG_URL lease=5s;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::sf_rules({ on => 'POST /api/order/validate', status => 400, times => 1,
             json => { success => JSON::PP::false, error => { message => 'bad sku' } } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my $r = ::hook({ event => 'order_created', id => 5001 });
    my $id = ::job_of($r);
    my $e = ::wait_jobs('job failed', sub { grep { $_->{state} eq 'failed' } @{ $_[0] } });
    my $a = ::admin('POST', "queue/$id/retry");
    my $b = ::admin('POST', "queue/999999/retry");
    $e ||= ::wait_jobs('job done', sub { grep { $_->{state} eq 'done' } @{ $_[0] } });
    my $m = ::admin('GET', 'metrics');
    my ($info) = $m->{body} =~ /^(siteflow_queue_backend_info\{backend="[^"]+")/m;
    ($e || 'failed, then done', "retry: $a->{status}", "unknown: $b->{status}",
     $info, ::pg_jobs()) })
--- response_body
answer pong
failed, then done
retry: 202
unknown: 404
siteflow_queue_backend_info{backend="postgresql"
1|5001|2|2|t
--- no_error_log
[alert]



=== TEST 5: a schema newer than the module knows: the connections (made again) are refused with an alert, hooks get 503 and nothing is written
--- http_config
    siteflow_zone sf:4m;
    siteflow_queue $TEST_NGINX_PG_URL lease=5s;
--- config eval: ::storefront_conf()
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], idle => 0, do => sub {
    my $before = ::hook({ event => 'order_created', id => 5001 });
    # another edge with a newer module upgraded the schema; this edge's
    # connections are cut and made again
    ::pg_sql("INSERT INTO siteflow_schema (version) VALUES (2)");
    ::pg_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           . "WHERE application_name = 'ngx_siteflow_module'");
    # the module's alert, not PostgreSQL's log: the hook and the
    # error_log check below come after the worker has seen the refusal
    my $log = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/logs/error.log';
    my $e = ::wait_until('the alert of the refused setup', sub {
        open my $fh, '<', $log or return 0;
        my $text = do { local $/; <$fh> };
        $text =~ /\[alert\].*newer than this module knows/ }, 10);
    my $r = ::hook({ event => 'order_created', id => 5002 });
    my $n = ::pg_sql("SELECT count(*) FROM siteflow_jobs WHERE order_id = '5002'");
    ::pg_sql('DELETE FROM siteflow_schema WHERE version > 1');
    ($e || 'refused', "before: $before->{status}", "after: $r->{status}",
     ($r->{body} =~ /("error")/)[0], "jobs of 5002: $n") })
--- response_body
answer pong
refused
before: 202
after: 503
"error"
jobs of 5002: 0
--- error_log
[alert]
newer than this module knows
