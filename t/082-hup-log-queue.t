# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the Site Flow Log and the job queue live in shared memory
# that "nginx -s reload" keeps: entries and jobs from before a reload are
# served by the new workers after it.  (A reload that would resize the
# queue's zone is refused: t/121-crash.t.)
#
# The blocks run in order against one nginx that is reloaded (SIGHUP)
# between them, so repeat_each(1) and no_shuffle().

BEGIN {
    $ENV{TEST_NGINX_USE_HUP} = 1;
}

use lib 't/lib';
use Siteflow::Test;

# a spool left by an earlier run may hold jobs: this run's order is new
our $OID = 90000 + int(rand(9000));

repeat_each(1);
plan 'no_plan';

master_on();
workers(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a hook is logged and its job queued (PrintNow unreachable)
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool html/spool;
--- config
    siteflow_storefront shop1;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_order_trigger "New Order";
    siteflow_mapping ../html/mapping.json;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    location = /hook { siteflow_printnow_hook; siteflow_token T0K-example-not-real; }
    location /admin/ { siteflow_admin; }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- more_headers
Content-Type: application/json
--- request eval
"POST /hook?token=T0K-example-not-real
{\"event\": \"order_created\", \"id\": $::OID}"
--- error_code: 202
--- response_body_like
^\{"job":"\d+"\}$
--- no_error_log
[alert]
[crit]



=== TEST 2: after a reload the new workers serve the log and the queue
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool html/spool;
--- config
    siteflow_storefront shop1;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_order_trigger "New Order";
    siteflow_mapping ../html/mapping.json;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    location = /hook { siteflow_printnow_hook; siteflow_token T0K-example-not-real; }
    location /admin/ { siteflow_admin; }
    location = /reloaded { return 200 "new configuration\n"; }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- request eval
["GET /reloaded", "GET /admin/log?order_id=$::OID",
 "GET /admin/queue?order_id=$::OID"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
["new configuration",
 qr/"method":"POST","url":"\/hook\?token=\*\*\*","status":202,"duration_ms":\d{1,4},"order_id":"$::OID"/,
 qr/^\{"jobs":\[\{"id":"\d+","kind":"order","storefront":"shop1","order_id":"$::OID","state":"(pending|retrying)"/]
--- no_error_log
[alert]
[crit]
