# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: a web page in an operator's browser cannot use the admin API.
# Every admin call must name this server in Host: a server_name of the
# server block (exact, "*.x", ".x", "x.*" or a regex, as nginx matches
# them) or a literal IPv4 or [IPv6] address; any other Host (a page that
# rebinds its own DNS name to the admin's address sends its own name) is
# refused with 403 JSON, for reads too (the log holds customer data).
# Every POST, PUT and DELETE also needs the header "X-SiteFlow-Admin",
# which a browser sends cross-origin only after a CORS preflight the
# module never grants; without it the call is refused with 403 JSON and
# changes nothing.
#
# Each block uses a zone of its own name.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;
use JSON::PP ();

repeat_each(1);
plan 'no_plan';

# the log as "N entries", other bodies unchanged
sub count {
    my ($body) = @_;
    my $j = eval { JSON::PP->new->decode($body) };
    return $body unless ref $j eq 'HASH' && ref $j->{entries} eq 'ARRAY';
    return scalar(@{ $j->{entries} }) . " entries\n";
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

=== TEST 1: Host must be a server_name of the server block or an IP address
--- http_config
    siteflow_zone sfr1:1m;
    siteflow_spool html/spool;
--- config
    server_name shop.example.com *.wild.example .dot.example www.suffix.*
                "~^re\d+\.example$";
    location /admin/ { siteflow_admin; }
--- more_headers eval
["Host: evil.example\n",
 "Host: shop.example.com\n",
 "Host: SHOP.Example.COM:8080\n",
 "Host: shop.example.com.\n",
 "Host: 127.0.0.1\n",
 "Host: 127.0.0.1:8080\n",
 "Host: [::1]\n",
 "Host: [::1]:8080\n",
 "Host: a.wild.example\n",
 "Host: wild.example\n",
 "Host: dot.example\n",
 "Host: b.dot.example\n",
 "Host: www.suffix.org\n",
 "Host: re42.example\n",
 "Host: rex.example\n",
 "Host: 127.0.0.1.evil.example\n",
 "Host: 10.1.2\n",
 "Host: shop.example.com.evil.example\n",
 "Host: evil.example\n",
 "Host: evil.example\nX-SiteFlow-Admin: 1\n"]
--- request eval
[("GET /admin/log") x 18, "GET /admin/metrics", "DELETE /admin/log"]
--- error_code eval
[403, 200, 200, 200, 200, 200, 200, 200, 200, 403, 200, 200, 200, 200, 403,
 403, 403, 403, 403, 403]
--- response_body_filters eval
\&main::count
--- response_body eval
["{\"error\":\"the Host header names neither a server_name of this server nor an IP address (DNS rebinding protection)\"}\n",
 ("0 entries\n") x 8,
 "{\"error\":\"the Host header names neither a server_name of this server nor an IP address (DNS rebinding protection)\"}\n",
 ("0 entries\n") x 4,
 ("{\"error\":\"the Host header names neither a server_name of this server nor an IP address (DNS rebinding protection)\"}\n") x 6]



=== TEST 2: POST, PUT and DELETE need X-SiteFlow-Admin; without it nothing changes
--- http_config
    siteflow_zone sfr2:1m;
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
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY), "", "", "", "", "", "",
 "X-SiteFlow-Admin: 1\n", "X-SiteFlow-Admin: 1\n", "X-SiteFlow-Admin: 1\n",
 "X-SiteFlow-Admin: 1\n", ""]
--- request eval
["POST /ship/1\n{}",
 "DELETE /admin/log",
 "PUT /admin/log/enabled\n{\"enabled\":false}",
 "POST /admin/queue/1/retry",
 "POST /admin/send/1001",
 "GET /admin/log",
 "GET /admin/log/enabled",
 "POST /admin/queue/1/retry",
 "POST /admin/send/1001",
 "PUT /admin/log/enabled\n{\"enabled\":false}",
 "DELETE /admin/log",
 "GET /admin/log"]
--- error_code eval
[200, 403, 403, 403, 403, 200, 200, 404, 409, 200, 204, 200]
--- response_body_filters eval
\&main::count
--- response_body eval
["ok",
 ("{\"error\":\"a POST, PUT or DELETE needs the header \\\"X-SiteFlow-Admin: 1\\\" (cross-site request protection)\"}\n") x 4,
 "1 entries\n",
 "{\"storefront\":\"acme\",\"enabled\":true,\"configured\":true,\"override\":null}\n",
 "{\"error\":\"no such job\"}\n",
 "{\"error\":\"this server has no siteflow_credentials, siteflow_printnow_credentials and siteflow_mapping to send orders with\"}\n",
 "{\"storefront\":\"acme\",\"enabled\":false,\"configured\":true,\"override\":false}\n",
 "",
 "0 entries\n"]
