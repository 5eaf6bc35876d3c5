# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: with several worker processes, a nonce accepted by one worker
# is refused by every worker.  The guarded server listens with "reuseport",
# so the kernel spreads connections over both workers' sockets; each
# replay arrives on a new proxied connection (no upstream keep-alive).
# That a replay reached the other worker is likely, not certain, on any one
# run; the cross-process case is made certain by t/080-hup-nonce.t, where
# the replay is answered by workers started after a reload.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;

our $HEADERS = Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY);

repeat_each(1);
plan 'no_plan';

master_on();
workers(2);
run_tests();

__DATA__

=== TEST 1: one accepted use, then ten replays on new connections, all refused
--- http_config
    siteflow_zone sf:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 reuseport;
        location /ship/ {
            siteflow_verify_signature on;
            siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
            add_header X-Worker $pid always;
            proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok;
        }
    }
--- config
    location /via/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/ship/;
    }
    location /ok {
        return 200 "ok\n";
    }
--- more_headers eval
[($main::HEADERS) x 11]
--- request eval
[("POST /via/shipment\n{}") x 11]
--- error_code eval
[200, (401) x 10]
--- response_body eval
["ok\n", (qq({"status":{"code":"error","message":"nonce already used"}}\n)) x 10]
--- no_error_log
[alert]
[crit]
