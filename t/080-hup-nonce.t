# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the nonce replay cache lives in the shared zone, is shared by
# all worker processes and survives "nginx -s reload": a nonce used before
# a reload is refused by the new workers after it.
#
# The blocks run in order against one nginx that is reloaded (SIGHUP)
# between them, so repeat_each(1) and no_shuffle().

BEGIN {
    $ENV{TEST_NGINX_USE_HUP} = 1;
}

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;

our $HEADERS = Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY);

repeat_each(1);
plan 'no_plan';

master_on();
workers(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: first use of the nonce is accepted
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
$main::HEADERS
--- request
POST /ship/shipment
{}
--- error_code: 200
--- response_body
ok
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: after a reload, the same nonce is refused by the new workers
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
$main::HEADERS
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"nonce already used"}}
--- no_error_log
[alert]
[crit]



=== TEST 3: a reload with a changed configuration keeps the cache too
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
    location /other/ {
        return 200;
    }
--- more_headers eval
$main::HEADERS
--- request
POST /ship/shipment
{}
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"nonce already used"}}
--- no_error_log
[alert]
[crit]
