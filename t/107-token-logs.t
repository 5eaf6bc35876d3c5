# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the hook and postback token (?token=...) never appears in a
# line nginx writes about a request this module handles: not in the
# request: "..." context of the module's warnings, not in $request or
# $request_uri of an access_log (so not in the default "combined" format);
# $siteflow_request_redacted and $siteflow_request_uri_redacted give the
# request line and URI with the token replaced by "***" for any request
# (for log_format, also for requests refused before the module sees
# them).  "Authorization: Bearer <token>" is accepted on both locations
# instead of the query argument.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();

# the lines of logs/<name>.log (polled until there are $n, bounded)
sub log_lines {
    my ($name, $n) = @_;
    my $dir = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    my @l;
    my $e = ::wait_until("$n lines in $name.log", sub {
        open my $fh, '<', "$dir/logs/$name.log" or return 0;
        @l = <$fh>;
        @l >= $n;
    }, 10);
    return ($e || (), map { "$name: $_" } @l);
}

run_tests();

__DATA__

=== TEST 1: a warning about a postback names the request without the token
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
--- config eval: ::storefront_conf()
--- request eval
::pb_req(-query => 'a=1', event => 'Order Reprinted', sourceOrderId => 'PN-5001')
--- error_code: 422
--- response_body
{"error":"unknown event \"Order Reprinted\""}
--- error_log
siteflow: postback refused: unknown event "Order Reprinted"
request: "POST /postback?token=***&a=1 HTTP/1.1"
--- no_error_log eval
[qr/\[(?:info|notice|warn|error|crit|alert)\].*pb-51e0a8c4-not-real/,
 '[alert]', '[crit]']



=== TEST 2: access_log: $request and $request_uri (so "combined") without the token for the hook and postback; the redacted variables for any request
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    log_format sfredacted '$siteflow_request_redacted|$siteflow_request_uri_redacted';
    log_format sfplain '$request|$request_uri';
--- config eval
::storefront_conf() . '
    access_log logs/redacted.log sfredacted;
    access_log logs/plain.log sfplain;
    access_log logs/combined.log combined;
'
--- request eval
[::pb_req(event => 'printready', sourceOrderId => 'PN-9999'),
 "POST /hook?x=1&token=hook-9f3b2c7d-not-real&event=customer_created\n{\"id\":1}",
 "GET /ping?token=not-ours",
 "GET /ping"]
--- error_code eval
[404, 200, 200, 200]
--- response_body_filters eval
[[], [], [],
 [sub { CORE::join '', map { s/^(combined: )\S+ - - \[[^\]]+\] /$1/r
                                 =~ s/" (\d+) \d+ "/" $1 N "/r }
                 ::log_lines('redacted', 4), ::log_lines('plain', 4),
                 ::log_lines('combined', 4) }]]
--- response_body eval
['{"error":"unknown sourceOrderId \"PN-9999\": no order of this storefront was sent to SiteFlow with it"}
',
'{"skipped":"event \"customer_created\" is not an order event"}
',
"pong\n",
'redacted: POST /postback?token=*** HTTP/1.1|/postback?token=***
redacted: POST /hook?x=1&token=***&event=customer_created HTTP/1.1|/hook?x=1&token=***&event=customer_created
redacted: GET /ping?token=*** HTTP/1.1|/ping?token=***
redacted: GET /ping HTTP/1.1|/ping
plain: POST /postback?token=*** HTTP/1.1|/postback?token=***
plain: POST /hook?x=1&token=***&event=customer_created HTTP/1.1|/hook?x=1&token=***&event=customer_created
plain: GET /ping?token=not-ours HTTP/1.1|/ping?token=not-ours
plain: GET /ping HTTP/1.1|/ping
combined: "POST /postback?token=*** HTTP/1.1" 404 N "-" "-"
combined: "POST /hook?x=1&token=***&event=customer_created HTTP/1.1" 200 N "-" "-"
combined: "GET /ping?token=not-ours HTTP/1.1" 200 N "-" "-"
combined: "GET /ping HTTP/1.1" 200 N "-" "-"
']
--- no_error_log eval
[qr/\[(?:info|notice|warn|error|crit|alert)\].*(?:pb-51e0a8c4-not-real|hook-9f3b2c7d-not-real)/,
 '[alert]', '[crit]']



=== TEST 3: Authorization: Bearer <token> on the hook and on the postback, no query token
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- more_headers eval
["Authorization: Bearer hook-9f3b2c7d-not-real\n",
 "Authorization: Bearer hook-wrong\n",
 "Authorization: Bearer pb-51e0a8c4-not-real\n",
 "Authorization: bearer pb-51e0a8c4-not-real\n"]
--- request eval
["POST /hook\n{\"event\":\"order_created\",\"id\":5001}",
 "POST /hook\n{\"event\":\"order_created\",\"id\":5001}",
 ::pb_req(-token => undef, event => 'printready', sourceOrderId => 'PN-9999'),
 ::pb_req(-token => undef, event => 'printready', sourceOrderId => 'PN-9998')]
--- error_code eval
[202, 401, 404, 404]
--- response_body_filters eval
[[::report(wait => [[siteflow => 'POST /api/order', 1]])], [], [], []]
--- response_body eval
['answer {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
',
'{"error":"invalid token"}
',
'{"error":"unknown sourceOrderId \"PN-9999\": no order of this storefront was sent to SiteFlow with it"}
',
'{"error":"unknown sourceOrderId \"PN-9998\": no order of this storefront was sent to SiteFlow with it"}
']
--- no_error_log
[alert]
[crit]
