# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the admin location answers every call of SPEC section 4 and
# only those (404 and 405 as JSON errors); every guarded Ship API call is
# recorded in the Site Flow Log with its method, URI, status and bodies but
# never a partner key, signature, Authorization header or token value;
# the log filters (limit, order_id, since, storefront) select what they
# say; DELETE clears the calling storefront's entries only; the run-time
# logging switch overrides "siteflow_log"; a full ring drops its oldest
# entries; the metrics are valid Prometheus text.
#
# Each block uses a zone of its own name, so no block sees the entries of
# another even when the runner keeps nginx running between blocks.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;
use JSON::PP ();

# each block starts with an empty queue: the spool lives in html/, which
# the runner (as Test::Nginx) empties before every block
repeat_each(1);
plan 'no_plan';

our $KEY = $Siteflow::Sign::KEY;

sub signed { Siteflow::Sign::headers('p1', $KEY) }

# one line per log entry: direction method url status order storefront
sub entries {
    my ($body) = @_;
    my $j = eval { JSON::PP->new->decode($body) };
    return $body unless ref $j eq 'HASH' && ref $j->{entries} eq 'ARRAY';
    return join '', map {
        join(' ', $_->{direction}, $_->{method}, $_->{url},
             $_->{status} // '-', $_->{order_id} // '-', $_->{storefront})
        . "\n"
    } @{ $j->{entries} };
}

# promtool's verdict on a metrics body, or "ok" when promtool is missing
sub promtool {
    my ($body) = @_;
    return $body unless $body =~ /^# HELP/;
    my $tool = `command -v promtool 2>/dev/null`;
    chomp $tool;
    return "ok\n" unless $tool;
    open my $p, '|-', "$tool check metrics >/dev/null 2>&1" or die;
    print $p $body;
    close $p;
    return $? == 0 ? "ok\n" : "promtool: invalid metrics\n";
}

add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->no_error_log) {
        $block->set_value('no_error_log', "[error]\n[alert]\n[crit]\n");
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the console page
--- http_config
    siteflow_zone sf1:1m;
    siteflow_spool html/spool;
--- config
    location /admin/ { siteflow_admin; }
--- request
GET /admin/
--- response_headers_like
Content-Type: text/html; charset=utf-8
Content-Security-Policy: default-src 'none'.*
Cache-Control: no-store
--- response_body_like eval
qr{<title>Site Flow console</title>.*id="log-list".*id="send-form"}s



=== TEST 2: HEAD of the console, no body
--- http_config
    siteflow_zone sf2:1m;
    siteflow_spool html/spool;
--- config
    location /admin/ { siteflow_admin; }
--- request
HEAD /admin/
--- response_headers
Content-Type: text/html; charset=utf-8
--- response_body



=== TEST 3: the prefix without its slash
--- http_config
    siteflow_zone sf3:1m;
    siteflow_spool html/spool;
--- config
    location /admin/ { siteflow_admin; }
    location /ops { siteflow_admin; }
--- request eval
["GET /admin", "GET /ops", "GET /ops/", "GET /ops/log"]
--- error_code eval
[301, 200, 200, 200]
--- response_headers_like eval
["Location: http://[^/]+/admin/", "Content-Type: text/html.*",
 "Content-Type: text/html.*", "Content-Type: application/json"]
--- response_body_like eval
[qr/301/, qr/Site Flow/, qr/Site Flow/, qr/^\{"entries":\[\]\}$/]



=== TEST 4: unknown calls are 404, wrong methods 405 with Allow, as JSON
--- http_config
    siteflow_zone sf4:1m;
    siteflow_spool html/spool;
--- config
    location /admin/ { siteflow_admin; }
--- request eval
["GET /admin/nope", "GET /admin/log/x", "PUT /admin/\n", "POST /admin/metrics",
 "GET /admin/queue/1/retry", "DELETE /admin/queue",
 "POST /admin/queue/abc/retry", "PATCH /admin/log\n{}", "GET /admin/send/1"]
--- error_code eval
[404, 404, 405, 405, 405, 405, 400, 405, 405]
--- response_headers_like eval
["Content-Type: application/json", "Content-Type: application/json",
 "Allow: GET, HEAD", "Allow: GET, HEAD", "Allow: POST", "Allow: GET, HEAD",
 "Content-Type: application/json", "Allow: GET, HEAD, DELETE",
 "Allow: POST"]
--- response_body eval
["{\"error\":\"unknown admin call\"}\n",
 "{\"error\":\"unknown admin call\"}\n",
 "{\"error\":\"method not allowed\"}\n",
 "{\"error\":\"method not allowed\"}\n",
 "{\"error\":\"method not allowed\"}\n",
 "{\"error\":\"method not allowed\"}\n",
 "{\"error\":\"invalid job or order id\"}\n",
 "{\"error\":\"method not allowed\"}\n",
 "{\"error\":\"method not allowed\"}\n"]



=== TEST 5: a guarded call is logged, secrets are not
--- http_config
    siteflow_zone sf5:1m;
    siteflow_spool html/spool;
--- config
    siteflow_storefront acme;
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 '{"tracking":"T-1"}';
    }
    location /admin/ { siteflow_admin; }
--- more_headers eval
[main::signed() . "Authorization: Basic c3VwZXI6c2VjcmV0LXBhc3M=\n", "", ""]
--- request eval
["POST /ship/shipment?token=s3cr3t-tok&x=1\n{\"orderNumber\":\"SF-77\",\"shipTo\":{}}",
 "GET /admin/log", "GET /admin/metrics"]
--- response_body_like eval
[qr/T-1/,
 qr/^\{"entries":\[\{"id":1,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","storefront":"acme","direction":"in","method":"POST","url":"\/ship\/shipment\?token=\*\*\*&x=1","status":200,"duration_ms":\d+,"order_id":"SF-77","request":"\{\\"orderNumber\\":\\"SF-77\\",\\"shipTo\\":\{\}\}","response":"\{\\"tracking\\":\\"T-1\\"\}"\}\]\}$/,
 qr/siteflow_signature_checks_total\{result="ok"\} 1\n.*siteflow_log_entries 1\n/s]
--- response_body_unlike eval
[qr/^$/,
 qr/0123456789abcdef|s3cr3t|c3VwZXI6|X-SiteFlow|p1:|Authorization/i,
 qr/0123456789abcdef|s3cr3t|c3VwZXI6/]



=== TEST 6: refused calls are logged too, with the SiteFlow error sent
--- http_config
    siteflow_zone sf6:1m;
    siteflow_spool html/spool;
--- config
    siteflow_storefront acme;
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        siteflow_signature_log_level info;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ { return 200 ok; }
    location /admin/ { siteflow_admin; }
--- request eval
["POST /ship/shipment\n{}", "GET /admin/log"]
--- error_code eval
[401, 200]
--- response_body_like eval
[qr/missing X-SiteFlow-Nonce/,
 qr/"status":401,.*"request":null,"response":"\{\\"status\\":\{\\"code\\":\\"error\\",\\"message\\":\\"missing X-SiteFlow-Nonce header\\"\}\}\\n"/]



=== TEST 7: limit, order_id and since
--- http_config
    siteflow_zone sf7:1m;
    siteflow_spool html/spool;
--- config
    siteflow_storefront acme;
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ { return 200 ok; }
    location /admin/ { siteflow_admin; }
--- more_headers eval
[main::signed(), main::signed(), main::signed(), "", "", "", "", "", "", "",
 "", "", ""]
--- request eval
["POST /ship/a\n{\"orderNumber\":\"A1\"}",
 "POST /ship/b\n{\"orderNumber\":\"B2\"}",
 "POST /ship/c\n{\"orderNumber\":\"A1\"}",
 "GET /admin/log",
 "GET /admin/log?limit=1",
 "GET /admin/log?order_id=A1",
 "GET /admin/log?order_id=Z9",
 "GET /admin/log?since=2000-01-01T00:00:00Z",
 "GET /admin/log?since=4102444800000",
 "GET /admin/log?since=2099-01-01",
 "GET /admin/log?since=yesterday",
 "GET /admin/log?limit=0",
 "GET /admin/log?storefront=acme&limit=2"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 400, 400, 200]
--- response_body_filters eval
\&main::entries
--- response_body eval
["ok", "ok", "ok",
 "in POST /ship/c 200 A1 acme\nin POST /ship/b 200 B2 acme\nin POST /ship/a 200 A1 acme\n",
 "in POST /ship/c 200 A1 acme\n",
 "in POST /ship/c 200 A1 acme\nin POST /ship/a 200 A1 acme\n",
 "",
 "in POST /ship/c 200 A1 acme\nin POST /ship/b 200 B2 acme\nin POST /ship/a 200 A1 acme\n",
 "", "",
 "{\"error\":\"invalid \\\"since\\\", expected milliseconds since the epoch or an ISO-8601 time\"}\n",
 "{\"error\":\"invalid \\\"limit\\\", expected 1 to 10000\"}\n",
 "in POST /ship/c 200 A1 acme\nin POST /ship/b 200 B2 acme\n"]



=== TEST 8: DELETE clears the calling storefront's entries only
--- http_config
    siteflow_zone sf8:1m;
    siteflow_spool html/spool;
    server {
        # the form of the main server's listen (see TestRunner.pm)
        listen $TEST_NGINX_SERVER_PORT;
        server_name beta.test;
        siteflow_storefront beta;
        location /ship/ {
            siteflow_verify_signature on;
            siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
            proxy_set_header Host localhost;
            proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend-beta/;
        }
        location /admin/ { siteflow_admin; }
    }
--- config
    siteflow_storefront acme;
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_set_header Host localhost;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ { return 200 acme; }
    location /backend-beta/ { return 200 beta; }
    location /admin/ { siteflow_admin; }
--- more_headers eval
[main::signed(), main::signed() . "Host: beta.test\n", "",
 "Host: beta.test\nX-SiteFlow-Admin: 1\n", "Host: beta.test\n", "",
 "Host: beta.test\n"]
--- request eval
["POST /ship/x\n{}", "POST /ship/y\n{}", "GET /admin/log",
 "DELETE /admin/log", "GET /admin/log", "GET /admin/log?storefront=acme",
 "GET /admin/log/enabled"]
--- error_code eval
[200, 200, 200, 204, 200, 200, 200]
--- response_body_filters eval
\&main::entries
--- response_body eval
["acme", "beta", "in POST /ship/y 200 - beta\nin POST /ship/x 200 - acme\n",
 "", "in POST /ship/x 200 - acme\n", "in POST /ship/x 200 - acme\n",
 "{\"storefront\":\"beta\",\"enabled\":true,\"configured\":true,\"override\":null}\n"]



=== TEST 9: the run-time logging switch overrides siteflow_log
--- http_config
    siteflow_zone sf9:1m;
    siteflow_spool html/spool;
--- config
    siteflow_storefront acme;
    siteflow_log off;
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ { return 200 ok; }
    location /admin/ { siteflow_admin; }
--- more_headers eval
["", main::signed(), "", "X-SiteFlow-Admin: 1\n", main::signed(), "",
 "X-SiteFlow-Admin: 1\n", "X-SiteFlow-Admin: 1\n", "X-SiteFlow-Admin: 1\n",
 "Content-Type: text/plain\nX-SiteFlow-Admin: 1\n", ""]
--- request eval
["GET /admin/log/enabled",
 "POST /ship/1\n{}",
 "GET /admin/log",
 "PUT /admin/log/enabled\n{\"enabled\":true}",
 "POST /ship/2\n{}",
 "GET /admin/log",
 "PUT /admin/log/enabled\n{\"enabled\":null}",
 "PUT /admin/log/enabled\n{\"enabled\":\"yes\"}",
 "PUT /admin/log/enabled\nnot json",
 "PUT /admin/log/enabled\n{\"enabled\":false}",
 "GET /admin/log/enabled"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 400, 400, 200, 200]
--- response_body_filters eval
\&main::entries
--- response_body eval
["{\"storefront\":\"acme\",\"enabled\":false,\"configured\":false,\"override\":null}\n",
 "ok", "",
 "{\"storefront\":\"acme\",\"enabled\":true,\"configured\":false,\"override\":true}\n",
 "ok", "in POST /ship/2 200 - acme\n",
 "{\"storefront\":\"acme\",\"enabled\":false,\"configured\":false,\"override\":null}\n",
 "{\"error\":\"expected a JSON body {\\\"enabled\\\": true, false or null}\"}\n",
 "{\"error\":\"expected a JSON body {\\\"enabled\\\": true, false or null}\"}\n",
 "{\"storefront\":\"acme\",\"enabled\":false,\"configured\":false,\"override\":false}\n",
 "{\"storefront\":\"acme\",\"enabled\":false,\"configured\":false,\"override\":false}\n"]



=== TEST 10: state-changing calls from another origin are refused
--- http_config
    siteflow_zone sf10:1m;
    siteflow_spool html/spool;
--- config
    server_name admin.test;
    location /admin/ { siteflow_admin; }
--- more_headers eval
["Host: admin.test\nOrigin: http://evil.example\nX-SiteFlow-Admin: 1\n",
 "Host: admin.test\nOrigin: http://evil.example\nX-SiteFlow-Admin: 1\n",
 "Host: admin.test\nOrigin: http://admin.test\nX-SiteFlow-Admin: 1\n",
 "Host: admin.test\nOrigin: http://evil.example\n"]
--- request eval
["DELETE /admin/log", "PUT /admin/log/enabled\n{\"enabled\":false}",
 "DELETE /admin/log", "GET /admin/log"]
--- error_code eval
[403, 403, 204, 200]
--- response_body eval
["{\"error\":\"cross-origin request refused\"}\n",
 "{\"error\":\"cross-origin request refused\"}\n", "",
 "{\"entries\":[]}\n"]



=== TEST 11: queue, retry and send
--- http_config
    siteflow_zone sf11:1m;
    siteflow_spool html/spool;
--- config
    location /admin/ { siteflow_admin; }
--- more_headers
X-SiteFlow-Admin: 1
--- request eval
["GET /admin/queue", "GET /admin/queue?state=failed&order_id=1&limit=5",
 "GET /admin/queue?state=lost", "GET /admin/queue?limit=100000",
 "POST /admin/queue/7/retry", "POST /admin/send/1001?force=1",
 "POST /admin/send/a%20b", "POST /admin/queue/0/retry"]
--- error_code eval
[200, 200, 400, 400, 404, 409, 400, 400]
--- response_body eval
["{\"jobs\":[]}\n", "{\"jobs\":[]}\n",
 "{\"error\":\"invalid \\\"state\\\", expected pending, retrying, done, failed or skipped\"}\n",
 "{\"error\":\"invalid \\\"limit\\\", expected 1 to 10000\"}\n",
 "{\"error\":\"no such job\"}\n",
 "{\"error\":\"this server has no siteflow_credentials, siteflow_printnow_credentials and siteflow_mapping to send orders with\"}\n",
 "{\"error\":\"invalid job or order id\"}\n",
 "{\"error\":\"invalid job or order id\"}\n"]



=== TEST 12: metrics: every family, valid Prometheus text
--- http_config
    siteflow_zone sf12:1m;
    siteflow_spool html/spool;
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        siteflow_signature_log_level info;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ { return 200 ok; }
    location /admin/ { siteflow_admin; }
--- more_headers eval
["", "X-SiteFlow-Nonce: abc\nX-SiteFlow-Signature: p1:AAAA\n", "", ""]
--- request eval
["POST /ship/1\n{}", "POST /ship/2\n{}", "GET /admin/metrics",
 "GET /admin/metrics"]
--- error_code eval
[401, 401, 200, 200]
--- response_headers_like eval
["", "", "Content-Type: text/plain; version=0.0.4; charset=utf-8", ""]
--- response_body_filters eval
[[], [], [], [\&main::promtool]]
--- response_body_like eval
[qr/missing/, qr/Signature/,
 qr/^# HELP siteflow_info .*
siteflow_signature_checks_total\{result="missing"\} 1
.*siteflow_signature_checks_total\{result="malformed"\} 1
.*siteflow_hooks_total\{outcome="accepted"\} 0
.*siteflow_postbacks_total\{outcome="rejected"\} 0
.*siteflow_spool_unavailable_total 0
.*siteflow_deliveries_total\{outcome="ambiguous"\} 0
.*siteflow_jobs\{state="pending"\} 0
.*siteflow_jobs\{state="skipped"\} 0
.*siteflow_upstream_request_duration_seconds_bucket\{upstream="siteflow",le="0.005"\} 0
.*siteflow_upstream_request_duration_seconds_bucket\{upstream="printnow",le="\+Inf"\} 0
siteflow_upstream_request_duration_seconds_sum\{upstream="printnow"\} 0
siteflow_upstream_request_duration_seconds_count\{upstream="printnow"\} 0
.*siteflow_log_entries 2
.*siteflow_log_size_bytes \d+
.*siteflow_log_overwritten_total 0
.*siteflow_zone_free_bytes \d+
$/s,
 qr/^ok$/]



=== TEST 13: a full ring drops its oldest entries
--- http_config
    siteflow_zone sf13:64k;
    siteflow_spool html/spool;
--- config
    siteflow_storefront acme;
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ { return 200 ok; }
    location /admin/ { siteflow_admin; }
--- more_headers eval
[(map { main::signed() } 1 .. 40), "", "", ""]
--- request eval
[(map { "POST /ship/$_\n{\"orderNumber\":\"$_\",\"pad\":\"" . ("x" x 900) . "\"}" } 1 .. 40),
 "GET /admin/log?limit=10000", "GET /admin/log?order_id=1",
 "GET /admin/metrics"]
--- error_code eval
[(200) x 43]
--- response_body_filters eval
\&main::entries
--- response_body_like eval
[(qr/^ok$/) x 40,
 qr/^in POST \/ship\/40 200 40 acme\nin POST \/ship\/39 200 39 acme\n(?:in POST \/ship\/\d+ 200 \d+ acme\n){3,30}$/,
 qr/^$/,
 qr/siteflow_log_overwritten_total [1-9]\d*\n/]
