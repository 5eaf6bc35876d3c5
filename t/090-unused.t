# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the module does nothing where it is not configured.  Loaded
# without any siteflow directive it registers no handler or filter; next
# to a guarded location, other locations are left untouched (no signature
# headers, no status mapping, no "siteflow" log line).

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;

repeat_each(2);
plan 'no_plan';

run_tests();

__DATA__

=== TEST 1: loaded, not configured
--- config
    location /t {
        return 404 "plain\n";
    }
--- request
GET /t
--- error_code: 404
--- response_body
plain
--- response_headers
!X-SiteFlow-Nonce
!X-SiteFlow-Signature
--- no_error_log
siteflow
[error]
[alert]
[crit]



=== TEST 2: a location next to a guarded one is untouched
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        return 200;
    }
    location /t {
        return 404 "plain\n";
    }
--- request
GET /t
--- error_code: 404
--- response_body
plain
--- response_headers
!X-SiteFlow-Nonce
!X-SiteFlow-Signature
--- no_error_log
siteflow
[error]
[alert]
[crit]



=== TEST 3: siteflow_verify_signature off inside a guarded location
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        location /ship/public/ {
            siteflow_verify_signature off;
            return 200 "public\n";
        }
        return 200;
    }
--- request
GET /ship/public/x
--- error_code: 200
--- response_body
public
--- response_headers
!X-SiteFlow-Nonce
--- no_error_log
siteflow
[error]
[alert]
[crit]



=== TEST 4: partners and a zone alone do not guard anything
--- http_config
    siteflow_zone sf:1m;
    siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
--- config
    location /t {
        return 200 "open\n";
    }
--- request
GET /t
--- error_code: 200
--- response_body
open
--- response_headers
!X-SiteFlow-Signature
--- no_error_log
siteflow
[error]
[alert]
[crit]
