# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the module loads into the nginx under test, a minimal guarded
# configuration starts cleanly, and requests to it are answered without
# any error, alert or crash.

use lib 't/lib';
use Siteflow::Test;

repeat_each(2);
plan 'no_plan';

run_tests();

__DATA__

=== TEST 1: the module loads and nginx serves requests
--- http_config
    siteflow_zone sf:1m;
--- config
    location /t {
        return 200 "alive\n";
    }
--- request
GET /t
--- error_code: 200
--- response_body
alive
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 2: a guarded location answers an unsigned GET with a signed 401
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        siteflow_signature_log_level info;
        empty_gif;
    }
--- request
GET /ship/shipment
--- error_code: 401
--- response_headers_like
X-SiteFlow-Nonce: [0-9a-f]{96}
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
--- no_error_log
[error]
[alert]
[crit]
[emerg]
