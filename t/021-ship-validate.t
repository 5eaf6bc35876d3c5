# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: with "siteflow_shipment_validate on", a shipment request that
# lacks what SiteFlow marks mandatory is answered 400 listing every problem
# and never reaches the shipping service; a valid one reaches it byte for
# byte, whether the body was buffered in memory or in a temporary file.
#
# Each block runs once: signed requests are single-use (replay cache).

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;

repeat_each(1);
plan 'no_plan';

# the Ship API request example of the SiteFlow documentation, reconstructed
our $SHIP = '{"output":{"type":"printer","deviceName":"zebra01","format":"pdf",'
  . '"orientation":"portrait","dimensions":{"unit":"inch","width":4,"height":6},'
  . '"dpi":203},"shipmentId":"5976029c770e36a13e25a85e","timezone":"Europe/London",'
  . '"dateFormat":"dd/MM/yyyy","weightUnit":"g","dimensionUnit":"mm","currency":"GBP",'
  . '"shipTo":{"name":"John Smith","companyName":"HP GSB Solutions","address1":'
  . '"1 Primrose Street","address2":"200 Commerce Street","address3":"","town":"London",'
  . '"state":"","postcode":"IG11 0HQ","isoCountry":"GB","phone":"0202223333",'
  . '"email":"siteflow@example.com"},"orderNumber":"20170721051327","carrier":{},'
  . '"return":{"name":"Jane Doe","companyName":"HP GSB Solutions","address1":'
  . '"1 Primrose Street","address2":"","address3":"","town":"London","state":"",'
  . '"postcode":"IG11 0HQ","isoCountry":"GB","phone":"0202223333","email":'
  . '"getintouch@example.com"},"shipper":{"name":"Mr Smith","address1":'
  . '"1 Primrose Street","town":"London","postcode":"IG11 0HQ","isoCountry":"GB",'
  . '"phone":"0202223333","email":"getintouch@example.com"},"packages":[{"weight":6,'
  . '"totalWeight":11,"height":334,"width":229,"depth":1,"volume":76486,'
  . '"referenceNumber":"20170721051327-1-1","value":200,"items":[{"type":"production",'
  . '"barcode":"B30000B96B","sourceItemId":"20170721051327-1","description":"Postcard",'
  . '"value":200,"count":1}]}]}';

# the same with an escaped order number, and without a mandatory field
our $SHIP_ESC = $SHIP;
$SHIP_ESC =~ s/"orderNumber":"20170721051327"/"orderNumber":"SF-\\u0037"/;
our $SHIP_BAD = $SHIP;
$SHIP_BAD =~ s/"orderNumber":"20170721051327"/"orderNumber":42/;
$SHIP_BAD =~ s/"shipmentId":"5976029c770e36a13e25a85e",//;

# one line per Site Flow Log entry: method url status order_id
sub entries {
    my ($body) = @_;
    require JSON::PP;
    my $j = eval { JSON::PP->new->decode($body) };
    return $body unless ref $j eq 'HASH' && ref $j->{entries} eq 'ARRAY';
    return join '', map {
        join(' ', $_->{method}, $_->{url}, $_->{status} // '-',
             $_->{order_id} // '-') . "\n"
    } @{ $j->{entries} };
}

# the same, padded past 1k so that it is buffered in a temporary file
our $SHIP_BIG = $SHIP;
$SHIP_BIG =~ s/"Postcard"/'"Postcard ' . ('x' x 3000) . '"'/e;

# An echo backend: the request is proxied to a location answering 502,
# which is intercepted and answered by a named location returning the
# request body that proxy_pass has read.
add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'_EOC_');
    siteflow_zone sf:1m;
    client_body_temp_path client_body_temp;
_EOC_
    }

    my $config = $block->config;
    $config .= <<'_EOC_';
    location /echo/ {
        client_body_buffer_size 64k;
        client_body_in_single_buffer on;
        proxy_intercept_errors on;
        error_page 502 = @echo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/fail;
    }
    location /fail {
        return 502;
    }
    location @echo {
        return 200 "backend got: $request_body";
    }
_EOC_
    $block->set_value("config", $config);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid shipment request reaches the backend byte for byte
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
"Content-Type: application/json\n"
. Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n$main::SHIP"
--- error_code: 200
--- response_body eval
"backend got: $main::SHIP"
--- error_log
siteflow hmac: shipment request is valid
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: a body buffered to a temporary file is validated and passed on intact
--- config
    location /ship/ {
        client_body_buffer_size 1k;
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
"Content-Type: application/json\n"
. Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n$main::SHIP_BIG"
--- error_code: 200
--- response_body eval
"backend got: $main::SHIP_BIG"
--- error_log
a client request body is buffered to a temporary file
siteflow hmac: shipment request is valid
--- no_error_log
[error]
[alert]
[crit]



=== TEST 3: every missing mandatory field is listed, the backend is not reached
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
my $b = $main::SHIP;
$b =~ s/"postcode":"IG11 0HQ",//;      # shipTo.postcode
$b =~ s/"town":"London",//;            # shipTo.town
$b =~ s/"items":\[.*?\]/"items":[]/;   # packages[0].items
"POST /ship/shipment\n$b"
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"shipTo.town is required; shipTo.postcode is required; packages[0].items must be a non-empty array"}}
--- response_headers_like
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
--- error_log
siteflow: shipment request refused, 3 problem(s)
--- no_error_log
backend got
[error]
[alert]
[crit]



=== TEST 4: a body that is not JSON gets the parser's line and column
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n{\"shipTo\": {\n  \"name\": \"x\",,\n}}"
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"invalid JSON at line 2, column 15: string or '}' expected near ','"}}
--- no_error_log
[error]
[alert]
[crit]



=== TEST 5: an empty body
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request
POST /ship/shipment
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"empty request body"}}
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: larger than siteflow_shipment_body_max
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_shipment_body_max 512;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n$main::SHIP"
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"shipment request is larger than \"siteflow_shipment_body_max\""}}
--- no_error_log
[error]
[alert]
[crit]



=== TEST 7: client_max_body_size: nginx's 413 is answered as a SiteFlow 400
--- config
    location /ship/ {
        client_max_body_size 100;
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n$main::SHIP"
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"request body too large (HTTP 413)"}}
--- response_headers_like
X-SiteFlow-Signature: p1:[A-Za-z0-9+/]{43}=
--- error_log
client intended to send too large body
--- no_error_log
[alert]
[crit]



=== TEST 8: the signature is checked before the body is looked at
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- request
POST /ship/shipment
not json at all
--- error_code: 401
--- response_body
{"status":{"code":"error","message":"missing X-SiteFlow-Nonce header"}}
--- no_error_log
[alert]
[crit]



=== TEST 9: validation off: any body is passed on
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request
POST /ship/shipment
not json at all
--- error_code: 200
--- response_body chomp
backend got: not json at all
--- no_error_log
shipment request
[error]
[alert]
[crit]



=== TEST 10: with validation on, only POST is accepted
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request
GET /ship/shipment
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"shipment requests must be POSTed (HTTP 405)"}}
--- no_error_log
backend got
[error]
[alert]
[crit]



=== TEST 11: a content type that cannot carry JSON
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
"Content-Type: application/x-www-form-urlencoded\n"
. Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n$main::SHIP"
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"unsupported content type \"application/x-www-form-urlencoded\", expected application/json (HTTP 415)"}}
--- no_error_log
backend got
[error]
[alert]
[crit]



=== TEST 12: application/json with parameters is fine
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
"Content-Type: Application/JSON ; charset=utf-8\n"
. Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n$main::SHIP"
--- error_code: 200
--- response_body eval
"backend got: $main::SHIP"
--- no_error_log
[error]
[alert]
[crit]



=== TEST 13: a type ending in +json without a slash is not JSON
--- config
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
--- more_headers eval
"Content-Type: foo+json\n"
. Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY)
--- request eval
"POST /ship/shipment\n$main::SHIP"
--- error_code: 400
--- response_body
{"status":{"code":"error","message":"unsupported content type \"foo+json\", expected application/json (HTTP 415)"}}
--- error_log
siteflow: shipment request refused: unsupported content type
--- no_error_log
[error]
[alert]
[crit]



=== TEST 14: the log entry of a validated request has its order number
The validation reads the order number for the Site Flow Log (a string
unescaped, an integer in decimal, also for a refused shipment); a body it
refuses as JSON is read the way the log always read it (duplicate keys
allowed, the last one counts).
--- http_config
    siteflow_zone sf14:1m;
    siteflow_spool html/spool;
    client_body_temp_path client_body_temp;
--- config
    siteflow_storefront acme;
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
    location /admin/ { siteflow_admin; }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY),
 ""]
--- request eval
["POST /ship/a\n$main::SHIP",
 "POST /ship/b\n$main::SHIP_ESC",
 "POST /ship/c\n$main::SHIP_BAD",
 "POST /ship/d\n{\"orderNumber\":\"A\",\"orderNumber\":\"B\"}",
 "GET /admin/log?limit=4"]
--- error_code eval
[200, 200, 400, 400, 200]
--- response_body_filters eval
\&main::entries
--- response_body eval
["backend got: $main::SHIP",
 "backend got: $main::SHIP_ESC",
 qq{{"status":{"code":"error","message":"shipmentId is required"}}\n},
 qq{{"status":{"code":"error","message":"invalid JSON at line 1, column 32: duplicate object key near '\\"orderNumber\\"'"}}\n},
 "POST /ship/d 400 B\nPOST /ship/c 400 42\nPOST /ship/b 200 SF-7\n"
 . "POST /ship/a 200 20170721051327\n"]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 15: a call refused before the guard ran (nginx's 413 for a body over client_max_body_size, answered as a signed SiteFlow 400) is in the Site Flow Log too
--- http_config
    siteflow_zone sf15:1m;
    siteflow_spool html/spool;
    client_body_temp_path client_body_temp;
--- config
    siteflow_storefront acme;
    location /ship/ {
        client_max_body_size 100;
        siteflow_verify_signature on;
        siteflow_shipment_validate on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/;
    }
    location /admin/ { siteflow_admin; }
--- more_headers eval
[Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY), ""]
--- request eval
["POST /ship/shipment\n$main::SHIP",
 "GET /admin/log?limit=4"]
--- error_code eval
[400, 200]
--- response_body_filters eval
\&main::entries
--- response_body eval
[qq{{"status":{"code":"error","message":"request body too large (HTTP 413)"}}\n},
 "POST /ship/shipment 400 -\n"]
--- no_error_log
[alert]
[crit]
