# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: every misconfiguration of the module is refused when the
# configuration is loaded ("nginx -t", start, reload) with an EMERG message
# that names the directive, the value and what is wrong, and no secret key
# is ever echoed.

use lib 't/lib';
use Siteflow::Test;
use File::Temp qw(tempdir);

repeat_each(1);
plan 'no_plan';

# A spool the worker processes' user cannot write (a parent directory it
# cannot enter) is refused at "nginx -t", naming the directive, its file
# and line and the user, instead of every hook getting 503 at run time;
# the same spool under an open parent passes.  Only as root: the master
# then runs the workers as "user" (nobody here), with a configuration of
# its own (the blocks below run nginx as root).
SKIP: {
    Test::More::skip('the workers-user spool check needs root', 6)
        if $> != 0;
    my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $module = (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} || '')[0];
    my $dir = tempdir(CLEANUP => 1);
    chmod 0755, $dir;
    mkdir "$dir/logs";
    mkdir "$dir/closed", 0700;
    mkdir "$dir/open", 0755;
    # without a master process nginx keeps root's user: nothing to refuse
    for my $case (['closed', 1], ['open', 0], ['closed', 0, 'single']) {
        my ($sub, $refused, $single) = @$case;
        my $conf = "$dir/$sub" . ($single ? '-single' : '') . '.conf';
        open my $out, '>', $conf or die "$conf: $!";
        print $out ($module ? "load_module $module;\n" : ''),
            "user nobody nogroup;\nerror_log logs/error.log;\n",
            "events { }\nhttp {\n    siteflow_spool $dir/$sub/spool;\n}\n",
            $single ? "master_process off;\n" : '';
        close $out;
        my $res = `$nginx -t -p $dir/ -c $conf 2>&1`;
        if ($refused) {
            Test::More::isnt($?, 0, "nginx -t refuses a spool the workers' user cannot reach");
            Test::More::like($res, qr{\[emerg\] "siteflow_spool" "\Q$dir\E/closed/spool" in \Q$conf\E:6 cannot be written by the worker processes' user "nobody": .*\(13: Permission denied\)},
                "the message names the directive, its file:line and the user");
        } else {
            Test::More::is($?, 0, "nginx -t accepts a spool the workers' user can write"
                           . ($single ? ' (master_process off: root)' : ''))
                or Test::More::diag($res);
            Test::More::unlike($res, qr{siteflow_spool}, 'no complaint about it');
        }
    }
}

# the blocks that run nginx with a hook or admin location keep their spool
# out of t/servroot: the workers may still be writing to it while the next
# block's set-up empties t/servroot
$ENV{TEST_NGINX_SPOOL_010} = tempdir(CLEANUP => 1);
chmod 0755, $ENV{TEST_NGINX_SPOOL_010};

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



=== TEST 21: unknown signature log level, named with the choices
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_signature_log_level debug;
--- must_die
--- error_log eval
qr/\[emerg\] .*"siteflow_signature_log_level" has an unknown level "debug": use info, notice, warn or error in \S+:\d+/



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



=== TEST 27: a hook needs a spool
--- http_config
    siteflow_zone sf:1m;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
--- config
    location = /hook {
        siteflow_printnow_hook;
        siteflow_token T0K-example-not-real;
    }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log
"siteflow_printnow_hook", "siteflow_postback" or "siteflow_admin" location requires "siteflow_spool" (or "siteflow_queue") in the http block, in



=== TEST 28: siteflow_log takes on or off
--- http_config
    siteflow_log maybe;
--- config
--- must_die
--- error_log
invalid value "maybe" in "siteflow_log" directive, it must be "on" or "off"



=== TEST 29: siteflow_storefront is a server directive
--- http_config
--- config
    location / {
        siteflow_storefront shop;
    }
--- must_die
--- error_log
"siteflow_storefront" directive is not allowed here



=== TEST 30: a hook needs a token
--- http_config
    siteflow_spool spool;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
--- config
    location = /hook {
        siteflow_printnow_hook;
    }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log
"siteflow_printnow_hook" requires "siteflow_token" in



=== TEST 31: a hook needs a mapping
--- http_config
    siteflow_spool spool;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
--- config
    location = /hook {
        siteflow_printnow_hook;
        siteflow_token T0K-example-not-real;
    }
--- must_die
--- error_log
but no "siteflow_mapping" in



=== TEST 32: a hook needs SiteFlow credentials
--- http_config
    siteflow_spool spool;
    siteflow_destination acme;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
--- config
    location = /hook {
        siteflow_printnow_hook;
        siteflow_token T0K-example-not-real;
    }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log
has a PrintNow hook location but no "siteflow_credentials" in



=== TEST 33: a postback needs PrintNow credentials
--- http_config
    siteflow_spool spool;
    siteflow_mapping ../html/mapping.json;
--- config
    location = /postback {
        siteflow_postback;
        siteflow_token T0K-example-not-real;
    }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log
but no "siteflow_printnow_credentials" in



=== TEST 34: mapping with bad JSON: line and column
--- http_config
    siteflow_mapping ../html/bad.json;
--- config
--- user_files
>>> bad.json
{
 "products": {
  "12": { "sku": "X", }
 }
}
--- must_die
--- error_log
invalid JSON in "



=== TEST 35: mapping with an unknown placeholder: key path
--- http_config
    siteflow_mapping ../html/ph.json;
--- config
--- user_files
>>> ph.json
{"products": {"12": {"sku": "{nope}", "components": [
  {"code": "text", "path": "https://x.example/{order_id}"}]}}}
--- must_die
--- error_log
unknown placeholder "{nope}" in products."12".sku



=== TEST 36: mapping file missing
--- http_config
    siteflow_mapping ../html/none.json;
--- config
--- must_die
--- error_log
invalid mapping file in "siteflow_mapping": open() "



=== TEST 37: credentials of an unknown shape need scheme=
--- http_config
    siteflow_spool spool;
    siteflow_credentials not-a-known-shape FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
--- config
    location = /hook {
        siteflow_printnow_hook;
        siteflow_token T0K-example-not-real;
    }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log eval
qr/\[emerg\] .*cannot tell from the token of "siteflow_credentials" in \S+nginx\.conf:(\d+) whether it is a OneFlow or an HP PrintOS account; add "scheme=oneflow" or "scheme=printos" to "siteflow_api" \(storefront "localhost", whose first handler is in \S+nginx\.conf:(?!\1\b)\d+\)/



=== TEST 38: retry backoff base above max
--- http_config
    siteflow_retry_backoff 10s 1s;
--- config
--- must_die
--- error_log
invalid "siteflow_retry_backoff" "10s 1s"



=== TEST 39: spool with a bad size
--- http_config
    siteflow_spool spool size=12k;
--- config
--- must_die
--- error_log
invalid size "size=12k" in "siteflow_spool", expected at least 1m



=== TEST 40: unreadable trusted certificate
--- http_config
    siteflow_ssl_trusted_certificate /nonexistent/ca.pem;
--- config
--- must_die
--- error_log
cannot read "/nonexistent/ca.pem" of "siteflow_ssl_trusted_certificate"



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



=== TEST 43: a hook needs a destination
--- http_config
    siteflow_spool spool;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
--- config
    location = /hook {
        siteflow_printnow_hook;
        siteflow_token T0K-example-not-real;
    }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log
but no "siteflow_destination" (nor a "destination" in its mapping file) in



=== TEST 44: give up takes off or a time
--- http_config
    siteflow_give_up soon;
--- config
--- must_die
--- error_log
invalid "siteflow_give_up" "soon", expected "off" or a time



=== TEST 45: the spool twice
--- http_config
    siteflow_spool spool;
    siteflow_spool spool2;
--- config
--- must_die
--- error_log
"siteflow_spool" directive is duplicate



=== TEST 46: the credentials secret is never echoed
--- http_config
    siteflow_credentials 0123456789 badsecret;
--- config
--- must_die
--- error_log
the secret of "siteflow_credentials" contains a character that is not printable ASCII



=== TEST 47: "siteflow_storefront" once per server
--- http_config
--- config
    siteflow_storefront acme;
    siteflow_storefront beta;
--- must_die
--- error_log
"siteflow_storefront" directive is duplicate



=== TEST 48: "siteflow_admin" once per location
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
--- config
    location /admin/ { siteflow_admin; siteflow_admin; }
--- must_die
--- error_log
"siteflow_admin" directive is duplicate



=== TEST 49: siteflow_api with an unknown algorithm, with a parameter twice
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api auto scheme=oneflow algorithm=md5;
--- must_die
--- error_log eval
qr/invalid parameter "algorithm=md5" in "siteflow_api", expected "scheme=oneflow", "scheme=printos", "algorithm=sha256" or "algorithm=sha1" \(each at most once\) in \S+nginx\.conf:\d+/



=== TEST 50: siteflow_api with one algorithm twice
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api auto algorithm=sha1 algorithm=sha256;
--- must_die
--- error_log
invalid parameter "algorithm=sha256" in "siteflow_api"



=== TEST 51: a siteflow_token shorter than 16 characters (the token itself is not echoed)
--- http_config
    siteflow_zone sf:1m;
--- config
    location = /hook {
        siteflow_printnow_hook;
        siteflow_token Sh0rt-t0ken-15c;
    }
--- must_die
--- error_log eval
[qr/\[emerg\] .*the token of "siteflow_token" is 15 characters long, at least 16 are required \(one that short can be guessed; "openssl rand -hex 32" makes one\) in \S+nginx\.conf:\d+/]
--- no_error_log
Sh0rt-t0ken-15c



=== TEST 52: siteflow_max_response 0
--- http_config
    siteflow_max_response 0;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"siteflow_max_response" directive must be greater than 0 \(0 would refuse every answer\) in \S+nginx\.conf:\d+/



=== TEST 53: siteflow_connect_timeout 0
--- http_config
    siteflow_connect_timeout 0;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"siteflow_connect_timeout" directive must be greater than 0 \(0 would wait forever\) in \S+nginx\.conf:\d+/



=== TEST 54: siteflow_timeout 0
--- http_config
--- config
    siteflow_timeout 0ms;
--- must_die
--- error_log eval
qr/\[emerg\] .*"siteflow_timeout" directive must be greater than 0 \(0 would wait forever\) in \S+nginx\.conf:\d+/



=== TEST 55: siteflow_spool size=1m segment=4g: the message says the segment is larger than the zone
--- http_config
    siteflow_spool spool size=1m segment=4g;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid segment size "segment=4g" in "siteflow_spool": larger than the zone \("size=1m"\); the journal is compacted into a snapshot of the zone's table, so "segment=" must be at most "size=" \(and at most 1g\) in \S+nginx\.conf:\d+/



=== TEST 56: siteflow_spool segment= larger than the default zone
--- http_config
    siteflow_spool spool segment=64m;
--- config
--- must_die
--- error_log
invalid segment size "segment=64m" in "siteflow_spool": larger than the zone (the default "size=32m")



=== TEST 57: siteflow_spool segment= beyond any sane size, even in a zone that large
--- http_config
    siteflow_spool spool size=4g segment=2g;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid segment size "segment=2g" in "siteflow_spool": larger than 1g, the most a journal file may grow before it is compacted \(every start reads it whole\) in \S+nginx\.conf:\d+/



=== TEST 58: siteflow_spool segment= that is not a size
--- http_config
    siteflow_spool spool segment=16x;
--- config
--- must_die
--- error_log
invalid segment size "segment=16x" in "siteflow_spool", expected a size such as 16m (k, m or g suffix) from 64k to 1g



=== TEST 59: siteflow_spool segment= too small
--- http_config
    siteflow_spool spool segment=32k;
--- config
--- must_die
--- error_log
invalid segment size "segment=32k" in "siteflow_spool": too small, at least 64k



=== TEST 60: a siteflow_storefront name longer than the admin log switch holds (128 bytes)
--- http_config
--- config
    siteflow_storefront a23456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789;
--- must_die
--- error_log eval
qr/\[emerg\] .*storefront name "a2345\d+" in "siteflow_storefront" is 129 bytes long, at most 128 are allowed \(the admin log switch keeps names of up to 128 bytes\) in \S+nginx\.conf:\d+/



=== TEST 61: a storefront named by a server_name longer than 128 bytes, in a server with a siteflow location
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    server {
        listen 127.0.0.1:$TEST_NGINX_SERVER_PORT;
        server_name a23456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789.example;
        location /admin/ { siteflow_admin; }
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*storefront name "a2345[0-9.a-z]+" \(the first "server_name"\) is 137 bytes long, at most 128 are allowed \(the admin log switch keeps names of up to 128 bytes\); name the storefront with "siteflow_storefront" in \S+nginx\.conf:\d+/



=== TEST 62: mapping: ship_to.name with a placeholder that does not exist
--- http_config
    siteflow_mapping ../html/st.json;
--- config
--- user_files
>>> st.json
{"products": {"12": {"sku": "S", "components": [
  {"code": "text", "path": "https://x.example/{order_id}"}]}},
 "ship_to": {"name": "{first_name} {last_name}"}}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid mapping file in "siteflow_mapping": "[^"]*st\.json": unknown placeholder "\{first_name\}" in ship_to\.name in \S+nginx\.conf:\d+/



=== TEST 63: mapping: ship_to.name with a placeholder it does not take
--- http_config
    siteflow_mapping ../html/st.json;
--- config
--- user_files
>>> st.json
{"products": {"12": {"sku": "S", "components": [
  {"code": "text", "path": "https://x.example/{order_id}"}]}},
 "ship_to": {"name": "{ship_first_name} #{order_id}"}}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid mapping file in "siteflow_mapping": "[^"]*st\.json": placeholder "\{order_id\}" cannot be used in ship_to\.name in \S+nginx\.conf:\d+/



=== TEST 64: mapping: an unknown key in ship_to
--- http_config
    siteflow_mapping ../html/st.json;
--- config
--- user_files
>>> st.json
{"products": {"12": {"sku": "S", "components": [
  {"code": "text", "path": "https://x.example/{order_id}"}]}},
 "ship_to": {"name": "{ship_company}", "company": "{ship_company}"}}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid mapping file in "siteflow_mapping": "[^"]*st\.json": ship_to: unknown key "company" in \S+nginx\.conf:\d+/



=== TEST 65: siteflow_queue and siteflow_spool both: nginx -t says the jobs live in one of them, the URL (and its password) not echoed
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    siteflow_queue postgresql://sf:pw-not-real-7c1e@127.0.0.1:5432/siteflow?sslmode=disable pool=4 lease=30s;
--- config
--- must_die
--- error_log
"siteflow_queue" and "siteflow_spool" cannot both be set
--- no_error_log
pw-not-real-7c1e



=== TEST 66: siteflow_queue with something else than a PostgreSQL URI
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue mysql://sf:pw-not-real-7c1e@127.0.0.1/siteflow;
--- config
--- must_die
--- error_log
invalid URL in "siteflow_queue", expected a PostgreSQL connection URI
--- no_error_log
pw-not-real-7c1e



=== TEST 67: siteflow_queue with an unknown parameter
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue postgres://sf@127.0.0.1/siteflow leases=30s;
--- config
--- must_die
--- error_log
invalid parameter "leases=30s" in "siteflow_queue"



=== TEST 68: an admin location without siteflow_zone (its log, switch and counters live there): nginx -t names the location
--- http_config
    siteflow_spool spool;
--- config
    location /admin/ { siteflow_admin; }
--- must_die
--- error_log eval
qr/\[emerg\] .*a "siteflow_admin" location requires "siteflow_zone" in the http block \(the Site Flow Log and the counters it serves live there\), in \S+nginx\.conf:\d+/



=== TEST 69: siteflow_queue with a URI libpq cannot parse: nginx -t says so without echoing it
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue postgresql://sf:pw-not-real-7c1e%zz@127.0.0.1/siteflow;
--- config
--- must_die
--- error_log
invalid PostgreSQL connection URI in "siteflow_queue" (libpq cannot parse it
--- no_error_log
pw-not-real-7c1e



=== TEST 70: siteflow_queue pool=0
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue postgresql://sf@127.0.0.1/siteflow pool=0;
--- config
--- must_die
--- error_log
invalid parameter "pool=0" in "siteflow_queue" (pool=1..64



=== TEST 71: siteflow_queue lease= shorter than 3 s (leases are renewed every third of it): refused, the URL not echoed
--- http_config
    siteflow_queue postgresql://sf:pw-not-real-7c1e@127.0.0.1/siteflow lease=1s;
--- config
--- must_die
--- error_log
invalid parameter "lease=1s" in "siteflow_queue"
--- no_error_log
pw-not-real-7c1e



=== TEST 72: siteflow_spool after siteflow_queue: the same refusal in this order
--- http_config
    siteflow_queue postgresql://sf@127.0.0.1/siteflow;
    siteflow_spool spool;
--- config
--- must_die
--- error_log
"siteflow_spool" and "siteflow_queue" cannot both be set



=== TEST 73: siteflow_queue_workers 0
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    siteflow_queue_workers 0;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "siteflow_queue_workers" "0", expected a number from 1 to 1024 or "all" in \S+nginx\.conf:\d+/



=== TEST 74: siteflow_queue_workers with a word other than "all"
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    siteflow_queue_workers auto;
--- config
--- must_die
--- error_log
invalid "siteflow_queue_workers" "auto", expected a number from 1 to 1024 or "all"



=== TEST 75: siteflow_queue_workers twice
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    siteflow_queue_workers 2;
    siteflow_queue_workers all;
--- config
--- must_die
--- error_log
"siteflow_queue_workers" directive is duplicate



=== TEST 76: siteflow_queue_workers with siteflow_queue: each edge's worker 0 delivers, so nginx -t refuses it (the URL not echoed)
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue postgresql://sf:pw-not-real-5d2a@127.0.0.1/siteflow;
    siteflow_queue_workers 2;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"siteflow_queue_workers" applies to "siteflow_spool"; with "siteflow_queue" worker 0 of each edge delivers \(docs\/fleet\.md\) in \S+nginx\.conf:\d+/
--- no_error_log
pw-not-real-5d2a



=== TEST 77: siteflow_queue after siteflow_queue_workers: the same refusal in this order
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue_workers all;
    siteflow_queue postgresql://sf:pw-not-real-5d2a@127.0.0.1/siteflow;
--- config
--- must_die
--- error_log
"siteflow_queue_workers" applies to "siteflow_spool"; with "siteflow_queue" worker 0 of each edge delivers
--- no_error_log
pw-not-real-5d2a



=== TEST 78: api URL with a port out of range
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api https://example.com:99999/api;
--- must_die
--- error_log
invalid port in URL "https://example.com:99999/api" in "siteflow_api", expected a number from 1 to 65535



=== TEST 79: api URL with a port that is not a number
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api https://example.com:abc/api scheme=oneflow;
--- must_die
--- error_log
invalid port in URL "https://example.com:abc/api" in "siteflow_api", expected a number from 1 to 65535



=== TEST 80: printnow api URL with port 0
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_printnow_api https://a:0;
--- must_die
--- error_log
invalid port in URL "https://a:0" in "siteflow_printnow_api", expected a number from 1 to 65535



=== TEST 81: api URL with a space in the host
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api "https://exa mple.com/api";
--- must_die
--- error_log
invalid host in URL "https://exa mple.com/api" in "siteflow_api"



=== TEST 82: api URL with a query: every call would go to the wrong endpoint
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api https://example.com/api?x=1;
--- must_die
--- error_log
query ("?...") in URL "https://example.com/api?x=1" in "siteflow_api" is not allowed: the module appends paths such as "/order/validate" to the URL



=== TEST 83: printnow api URL with a fragment
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_printnow_api https://example.com/api#x;
--- must_die
--- error_log
fragment ("#...") in URL "https://example.com/api#x" in "siteflow_printnow_api" is not allowed: the module appends paths such as "/order/validate" to the URL



=== TEST 84: api URL with user info: refused, the password not echoed
--- http_config
    siteflow_zone sf:1m;
--- config
    siteflow_api https://u:pw-not-real-3b9e@example.com/api;
--- must_die
--- error_log
user name or password in the URL of "siteflow_api" is not allowed (the URL is not echoed); put the credentials in "siteflow_credentials"
--- no_error_log
pw-not-real-3b9e



=== TEST 85: printnow api URL with user info: refused, the password not echoed
--- http_config
    siteflow_zone sf:1m;
    siteflow_printnow_api https://pn:pw-not-real-3b9e@api.printnow.com;
--- config
--- must_die
--- error_log
user name or password in the URL of "siteflow_printnow_api" is not allowed (the URL is not echoed); put the credentials in "siteflow_printnow_credentials"
--- no_error_log
pw-not-real-3b9e



=== TEST 86: the URL forms in use still pass: auto, a port and a path, an IPv6 literal, no path, a trailing slash, an upper-case scheme
--- http_config
    siteflow_zone sf:1m;
    siteflow_api auto scheme=oneflow;
    siteflow_printnow_api https://api.printnow.com;
    server {
        # the form of the main server's listen (see TestRunner.pm)
        listen $TEST_NGINX_SERVER_PORT;
        server_name v6.test;
        siteflow_api http://[::1]:8080 scheme=printos;
        siteflow_printnow_api http://[::1]:8081/pn/;
    }
--- config
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_printnow_api HTTPS://Example.COM:443/printnow/;
    location /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- error_code: 200
--- response_body
ok
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 87: queue concurrency out of bounds names the directive, the bounds and the value
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue_concurrency 0;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"siteflow_queue_concurrency" directive must be between 1 and 10000, not 0 in \S+:\d+/



=== TEST 88: log body max out of bounds names the directive, the bounds and the value
--- http_config
    siteflow_zone sf:1m;
    siteflow_log_body_max 2m;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"siteflow_log_body_max" directive must be between 0 and 1048576, not 2097152 in \S+:\d+/



=== TEST 89: the bounds themselves and an upper-case level are accepted
--- http_config
    siteflow_zone sf:1m;
    siteflow_queue_concurrency 10000;
    siteflow_log_body_max 1m;
--- config
    siteflow_signature_log_level WARN;
    location /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- error_code: 200
--- response_body
ok
--- no_error_log
[emerg]
[alert]



=== TEST 90: two server{} blocks of one storefront name with different settings: refused, naming both and the setting
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_destination acme;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
    server {
        listen $TEST_NGINX_SERVER_PORT;
        server_name other.test;
        siteflow_storefront acme;
        siteflow_credentials 0123456789 FAKE-secret-one;
        location = /hook { siteflow_printnow_hook; siteflow_token T0K-one-FAKE-not-real; }
    }
--- config
    siteflow_storefront acme;
    siteflow_credentials 0123456789 FAKE-secret-two;
    location = /hook { siteflow_printnow_hook; siteflow_token T0K-two-FAKE-not-real; }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log eval
qr/\[emerg\] .*storefront "acme" is used by the server\{\} of \S+nginx\.conf:\d+ and by the server\{\} of \S+nginx\.conf:\d+ with a different "siteflow_credentials"; jobs carry only the storefront's name, so give each server\{\} its own "siteflow_storefront" or the same settings/



=== TEST 91: one storefront name, a different destination: refused; no secret in the message
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
    server {
        listen $TEST_NGINX_SERVER_PORT;
        server_name other.test;
        siteflow_storefront acme;
        siteflow_destination east;
        location = /hook { siteflow_printnow_hook; siteflow_token T0K-one-FAKE-not-real; }
    }
--- config
    siteflow_storefront acme;
    siteflow_destination west;
    location /admin/ { siteflow_admin; }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- must_die
--- error_log eval
qr/\[emerg\] .*storefront "acme" is used by .* with a different "siteflow_destination"/
--- no_error_log
FAKE-secret-not-real



=== TEST 92: one storefront name in two server{} blocks with the same settings (hooks in one, admin on an internal port in the other): accepted
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool $TEST_NGINX_SPOOL_010;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/mapping.json;
    server {
        listen $TEST_NGINX_SERVER_PORT;
        server_name hooks.test;
        siteflow_storefront acme;
        location = /hook { siteflow_printnow_hook; siteflow_token T0K-one-FAKE-not-real; }
    }
--- config
    siteflow_storefront acme;
    location /admin/ { siteflow_admin; }
--- user_files
>>> mapping.json
{"products": {"12": {"sku": "BC", "components": [
  {"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}
--- request
GET /admin/queue
--- more_headers
Host: localhost
--- error_code: 200
--- response_body_like
^\{"jobs":\[\]\}
--- no_error_log
[emerg]
[alert]



=== TEST 93: a mapping file saved with a byte order mark (Windows Notepad) is read
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool $TEST_NGINX_SPOOL_010;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/bom.json;
--- config
    location = /hook { siteflow_printnow_hook; siteflow_token T0K-one-FAKE-not-real; }
    location /t { return 200 "ok\n"; }
--- user_files eval
">>> bom.json\n\xEF\xBB\xBF"
. '{"products": {"12": {"sku": "BC", "components": ['
. '{"code": "text", "path": "https://files.example.com/{order_id}.pdf"}]}}}'
--- request
GET /t
--- error_code: 200
--- response_body
ok
--- no_error_log
[emerg]
[alert]



=== TEST 94: a mapping file with two byte order marks is bad JSON, at line 1
--- http_config
    siteflow_zone sf:1m;
    siteflow_spool spool;
    siteflow_api http://127.0.0.1:1/api scheme=oneflow;
    siteflow_credentials 0123456789 FAKE-secret-not-real;
    siteflow_destination acme;
    siteflow_printnow_api http://127.0.0.1:1;
    siteflow_printnow_credentials pntoken pnkey;
    siteflow_mapping ../html/bom2.json;
--- config
    location = /hook { siteflow_printnow_hook; siteflow_token T0K-one-FAKE-not-real; }
--- user_files eval
">>> bom2.json\n\xEF\xBB\xBF\xEF\xBB\xBF{\"products\": {}}"
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid JSON in "\S*bom2\.json" at line 1/
