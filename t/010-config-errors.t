# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: every misconfiguration of the module is refused when the
# configuration is loaded ("nginx -t", start, reload) with an EMERG message
# that names the directive, the value and what is wrong, and no secret key
# is ever echoed.  Directives whose behaviour is not built yet fail with
# "is not implemented yet" instead of being silently accepted.

use lib 't/lib';
use Siteflow::Test;

repeat_each(1);
plan 'no_plan';

run_tests();

__DATA__

=== TEST 1: verify without a partner
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        return 200;
    }
--- must_die
--- error_log
"siteflow_verify_signature" requires at least one "siteflow_partner" in



=== TEST 2: verify without a zone
--- http_config

--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        return 200;
    }
--- must_die
--- error_log
"siteflow_verify_signature" requires "siteflow_zone" for its nonce replay cache in



=== TEST 3: zone without a size
--- http_config
    siteflow_zone sf;
--- config

--- must_die
--- error_log
invalid zone "sf" in "siteflow_zone", expected name:size



=== TEST 4: zone with a bad size
--- http_config
    siteflow_zone sf:lots;
--- config

--- must_die
--- error_log
invalid zone size "lots" in "siteflow_zone"



=== TEST 5: zone smaller than 8 pages
--- http_config
    siteflow_zone sf:8k;
--- config

--- must_die
--- error_log
zone "sf" is too small, "siteflow_zone" needs at least



=== TEST 6: zone with an empty name
--- http_config
    siteflow_zone :1m;
--- config

--- must_die
--- error_log
empty zone name in "siteflow_zone"



=== TEST 7: zone twice
--- http_config
    siteflow_zone sf:1m;
    siteflow_zone sf2:1m;
--- config

--- must_die
--- error_log
"siteflow_zone" directive is duplicate



=== TEST 8: zone name used by another module
--- http_config
    siteflow_zone sf:1m;
    limit_req_zone $binary_remote_addr zone=sf:1m rate=1r/s;
--- config

--- must_die
--- error_log
the shared memory zone "sf" is already declared for a different use



=== TEST 9: zone in server context
--- config
    siteflow_zone sf:1m;
--- must_die
--- error_log
"siteflow_zone" directive is not allowed here



=== TEST 10: partner id with a colon
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_partner p:1 0123456789abcdef0123456789abcdef01234567;
--- must_die
--- error_log
invalid partner id "p:1" in "siteflow_partner"



=== TEST 11: partner key too short, and not echoed
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_partner p1 shortkey;
--- must_die
--- error_log
the key of partner "p1" in "siteflow_partner" is too short (8 characters)
--- no_error_log
shortkey



=== TEST 12: partner key with a non-printable byte
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_partner p1 "0123456789abcdef\t0123456789";
--- must_die
--- error_log
the key of partner "p1" in "siteflow_partner" contains a character that is not printable ASCII



=== TEST 13: same partner key twice
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
    siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
--- must_die
--- error_log
partner "p1" is given the same key twice in "siteflow_partner"



=== TEST 14: partner with one argument
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_partner p1;
--- must_die
--- error_log
invalid number of arguments in "siteflow_partner" directive



=== TEST 15: verify in server context
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_verify_signature on;
--- must_die
--- error_log
"siteflow_verify_signature" directive is not allowed here



=== TEST 16: verify with a bad flag
--- http_config
    siteflow_zone sf:1m;
--- config
    location / {
        siteflow_verify_signature yes;
    }
--- must_die
--- error_log
invalid value "yes" in "siteflow_verify_signature" directive, it must be "on" or "off"



=== TEST 17: nonce ttl zero
--- http_config
    siteflow_zone sf:1m;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_nonce_ttl 0;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
    }
--- must_die
--- error_log
"siteflow_nonce_ttl" must be greater than 0 where "siteflow_verify_signature" is on in



=== TEST 18: nonce ttl not a time
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_nonce_ttl soon;
--- must_die
--- error_log
"siteflow_nonce_ttl" directive invalid value



=== TEST 19: nonce cache not a number
--- http_config
    siteflow_zone sf:1m;
    siteflow_nonce_cache many;
--- config

--- must_die
--- error_log
invalid value "many" in "siteflow_nonce_cache", expected "auto" or a number of entries of at least 16



=== TEST 20: nonce cache larger than the zone
--- http_config
    siteflow_zone sf:64k;
    siteflow_nonce_cache 100000;
--- config

--- must_die
--- error_log
"siteflow_nonce_cache" of 100000 entries does not fit in siteflow zone "sf" of 65536 bytes



=== TEST 21: unknown signature log level
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_signature_log_level debug;
--- must_die
--- error_log
invalid value "debug"



=== TEST 22: shipment body max not a size
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_shipment_body_max big;
--- must_die
--- error_log
"siteflow_shipment_body_max" directive invalid value



=== TEST 23: api with a bad URL
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api ftp://example.com/api;
--- must_die
--- error_log
invalid URL "ftp://example.com/api" in "siteflow_api"



=== TEST 24: api with a bad scheme parameter
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api auto scheme=sha;
--- must_die
--- error_log
invalid parameter "scheme=sha" in "siteflow_api"



=== TEST 25: printnow api without a host
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_printnow_api https:///api;
--- must_die
--- error_log
no host in URL "https:///api" in "siteflow_printnow_api"



=== TEST 26: order trigger mixing manual and statuses
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_order_trigger manual "Ready For Print";
--- must_die
--- error_log
"manual" cannot be combined with statuses in "siteflow_order_trigger"



=== TEST 27: "siteflow_spool" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool /var/spool/siteflow;
--- config

--- must_die
--- error_log
"siteflow_spool" is not implemented yet



=== TEST 28: "siteflow_log" takes on or off
--- http_config
    siteflow_zone sf:1m;
    siteflow_log maybe;
--- config

--- must_die
--- error_log
invalid value "maybe" in "siteflow_log" directive, it must be "on" or "off"



=== TEST 29: "siteflow_storefront" once per server
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_storefront acme;
    siteflow_storefront beta;
--- must_die
--- error_log
"siteflow_storefront" directive is duplicate



=== TEST 30: "siteflow_api" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api https://orders.example.test/api scheme=oneflow;
--- must_die
--- error_log
"siteflow_api" is not implemented yet



=== TEST 31: "siteflow_destination" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_destination acme-print;
--- must_die
--- error_log
"siteflow_destination" is not implemented yet



=== TEST 32: "siteflow_credentials" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_credentials 1234567890123 0000000000000000000000000000000000000000000000aa;
--- must_die
--- error_log
"siteflow_credentials" is not implemented yet



=== TEST 33: "siteflow_order_trigger" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_order_trigger "Ready For Print" Approved;
--- must_die
--- error_log
"siteflow_order_trigger" is not implemented yet



=== TEST 34: "siteflow_mapping" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_mapping /etc/nginx/siteflow-mapping.json;
--- must_die
--- error_log
"siteflow_mapping" is not implemented yet



=== TEST 35: "siteflow_printnow_api" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_printnow_api https://api.printnow.example.test;
--- must_die
--- error_log
"siteflow_printnow_api" is not implemented yet



=== TEST 36: "siteflow_printnow_credentials" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_printnow_credentials 00000000000000000000000000000000 FAKEFAKE;
--- must_die
--- error_log
"siteflow_printnow_credentials" is not implemented yet



=== TEST 37: "siteflow_printnow_hook" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    location /hook { siteflow_printnow_hook; }
--- must_die
--- error_log
"siteflow_printnow_hook" is not implemented yet



=== TEST 38: "siteflow_postback" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    location /postback { siteflow_postback; }
--- must_die
--- error_log
"siteflow_postback" is not implemented yet



=== TEST 39: "siteflow_token" is not implemented yet
--- http_config
    siteflow_zone sf:1m;
--- config
    location /hook { siteflow_token not-a-real-token-000; }
--- must_die
--- error_log
"siteflow_token" is not implemented yet



=== TEST 40: "siteflow_admin" once per location
--- http_config
    siteflow_zone sf:1m;
--- config
    location /admin/ { siteflow_admin; siteflow_admin; }
--- must_die
--- error_log
"siteflow_admin" directive is duplicate



=== TEST 41: nonce cache without a zone
--- config
--- http_config
    siteflow_nonce_cache 1000;
--- must_die
--- error_log
"siteflow_nonce_cache" requires "siteflow_zone"



=== TEST 42: an empty value is refused
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_destination "";
--- must_die
--- error_log
empty value in "siteflow_destination"

