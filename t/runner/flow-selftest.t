# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the end-to-end helpers (t/lib/Siteflow/Flow.pm) can fail.
# Without nginx, this plays the module's part against the two mocks, once
# right and once wrong in each way the report must catch (bad signature,
# wrong credentials, a missing order field, a value that differs from the
# transform's output, a secret in clear), and checks the report lines, the
# tally of accepted/created/lost/duplicated orders and the bounded waits.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MIME::Base64 qw(encode_base64);
use Siteflow::Sign;
use Siteflow::Flow;

Siteflow::Flow::start_mocks();
my $sf = $Siteflow::Flow::Mock{siteflow};
my $pn = $Siteflow::Flow::Mock{printnow};

sub now_ts {
    my @t = gmtime(time);
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02d.000Z',
        $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0];
}

# a request as the module would send it; %o changes it
sub send_sf {
    my ($method, $path, $body, %o) = @_;
    my $scheme = $o{scheme} // 'oneflow';
    my $c = $Siteflow::Sign::CRED{$scheme};
    my $h = Siteflow::Sign::sign_request($scheme, $o{token} // $c->{token},
        $o{secret} // $c->{secret}, $method, $o{signed_path} // $path,
        $o{ts} // now_ts(), $o{algo});
    $h = { %$h, %{ $o{headers} } } if $o{headers};
    return http_request(port => $sf->port, method => $method, path => $path,
        body => $body, headers => $h);
}

sub send_pn {
    my ($method, $path, $body, %o) = @_;
    my $auth = 'Basic ' . encode_base64(($o{cred} // "$Siteflow::Flow::PN{token}:$Siteflow::Flow::PN{key}"), '');
    return http_request(port => $pn->port, method => $method, path => $path,
        body => $body, headers => { Authorization => $auth });
}

my $order = fixture('expected/PN-5001.json');

# the mocks' default answers
is(send_pn(GET => '/api/v2/order/5001')->{status}, 200, 'PrintNow serves 5001');
is(json_of(send_pn(GET => '/api/v2/order/6042')->{body} // '')->{id}, undef,
   'no 6042 without a rule');
pn_rules({ on => 'GET /api/v2/order/6042', json => pn_order(6042) });
is(json_of(send_pn(GET => '/api/v2/order/6042')->{body})->{id}, 6042,
   'pn_order makes 6042 from 5001');
is(send_sf(POST => '/api/order/validate', $order)->{status}, 200, 'validate 200');
my $r = send_sf(POST => '/api/order', $order);
is($r->{status}, 201, 'create 201');
like($r->{body}, qr/^\{"_id":"[0-9a-f]{24}"\}$/, 'create gives an _id');
is(send_sf(GET => '/api/order/bysourceid/PN-5001')->{status}, 404, 'look-up 404');

my $report = report(idle => 0)->('{"job":"42"}');
is($report, <<'EOT', 'a right flow reports clean lines');
answer {"job":"ID"}
PN GET /api/v2/order/5001 basic -> 200
PN GET /api/v2/order/6042 basic -> 404 (default)
PN GET /api/v2/order/6042 basic -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
SF GET /api/order/bysourceid/PN-5001 oneflow -> 404
EOT

# PrintOS, with the /siteflow prefix left out of the signature
Siteflow::Flow::start_mocks();
($sf, $pn) = @Siteflow::Flow::Mock{qw(siteflow printnow)};
my $o2 = fixture('expected/SHOP2-7001.json');
send_sf(POST => '/siteflow/api/order', $o2, scheme => 'printos',
        signed_path => '/api/order');
{   # the bug this catches: the /siteflow prefix signed too
    my $ts = now_ts();
    my $c = $Siteflow::Sign::CRED{printos};
    my $sig = Siteflow::Sign::hmac_hex('SHA256', $c->{secret},
        "POST /siteflow/api/order$ts");
    send_sf(POST => '/siteflow/api/order', $o2, scheme => 'printos',
            ts => $ts, headers => {
                'x-hp-hmac-authentication' => "$c->{token}:$sig" });
}
send_sf(POST => '/siteflow/api/order', $o2, scheme => 'printos',
        signed_path => '/api/order', algo => 'SHA1');
like(report(idle => 0)->(''), qr{\A\Qanswer 
SF POST /siteflow/api/order printos SHOP2-7001 fields-ok -> 201
SF POST /siteflow/api/order sig-BAD(signature mismatch for "POST /api/order\E[-0-9T:.]+Z\Q" (SHA256)) SHOP2-7001 fields-ok -> 201
SF POST /siteflow/api/order sig-BAD(algorithm SHA1 not accepted here (SHA256)) SHOP2-7001 fields-ok -> 201
\E\z}, 'PrintOS: signed without /siteflow, SHA256 only');

# every way a request can be wrong shows in its line
Siteflow::Flow::start_mocks();
($sf, $pn) = @Siteflow::Flow::Mock{qw(siteflow printnow)};
my %no_email = %{ $Siteflow::Flow::J->decode($Siteflow::Flow::J->encode($order)) };
delete $no_email{orderData}{email};
my $other_qty = $Siteflow::Flow::J->decode($Siteflow::Flow::J->encode($order));
$other_qty->{orderData}{items}[0]{quantity} = 25;
my $str_qty = $Siteflow::Flow::J->decode($Siteflow::Flow::J->encode($order));
$str_qty->{orderData}{items}[0]{quantity} = '250';
send_sf(POST => '/api/order', \%no_email);
send_sf(POST => '/api/order', $other_qty);
send_sf(POST => '/api/order', $str_qty);
send_sf(POST => '/api/order', $order, secret => 'wrong');
send_sf(POST => '/api/order', $order, token => '999');
send_sf(POST => '/api/order', $order, ts => '2024-05-01T12:00:00.000Z');
send_sf(POST => '/api/order', $order, headers => {
    'x-debug' => $Siteflow::Sign::CRED{oneflow}{secret} });
send_sf(GET => '/api/order/bysourceid/PN-5001', undef, scheme => 'printos');
send_pn(PATCH => '/api/v2/order/5001/status', { status => 'x' }, cred => 'a:b');
send_pn(PATCH => '/api/v2/order/5001/status', 'not json');
my @l = split /\n/, report(idle => 0)->('{"skipped":"x"}');
is($l[0], 'answer {"skipped":"x"}', 'answer line');
like($l[1], qr{^PN PATCH \S+ auth-BAD\(Basic YTpi\) \{"status":"x"\} -> 200$}, 'wrong Basic credentials');
like($l[2], qr{^PN PATCH \S+ basic body-not-json:not json -> 200$}, 'body not JSON');
like($l[3], qr{fields: orderData\.email missing}, 'missing required field');
like($l[4], qr{fields: body\.orderData\.items\[0\]\.quantity is 25, not 250}, 'value differs from the transform');
like($l[5], qr{fields: body\.orderData\.items\[0\]\.quantity is "250", not 250}, 'type differs from the transform');
like($l[6], qr{sig-BAD\(signature mismatch}, 'wrong secret');
like($l[7], qr{sig-BAD\(x-oneflow-authorization names token "999"}, 'wrong token');
like($l[8], qr{sig-BAD\(timestamp "2024-05-01T12:00:00.000Z" is \d+ s off\)}, 'stale date');
like($l[9], qr{ LEAK -> 201$}, 'a secret in clear');
is($l[10], 'SF GET /api/order/bysourceid/PN-5001 printos -> 404',
   'the line names the scheme used (a OneFlow storefront expects oneflow)');
is(scalar @l, 11, 'nothing else');

# tally: created = create requests the mock took in (2xx rule)
Siteflow::Flow::start_mocks();
($sf, $pn) = @Siteflow::Flow::Mock{qw(siteflow printnow)};
sf_rules({ on => 'POST /api/order', action => 'reset', times => 1 },
         { on => 'POST /api/order', status => 503, times => 1 });
for my $id (6001, 6001, 6001, 6002, 6002, 6004) {
    my $o = Siteflow::Flow::order_for("PN-$id");
    send_sf(POST => '/api/order', $o);
}
is(tally(orders => [6001, 6002, 6003]), <<'EOT', 'tally');
accepted 3
created 2
lost 1
duplicated 1
created but never accepted: PN-6004
lost PN-6003
duplicated PN-6002 x2
EOT

# mock_down / mock_up keep the port and the history
my $port = $sf->port;
mock_down('siteflow');
is(send_sf(GET => '/x')->{status}, 0, 'down: connection refused');
mock_up('siteflow');
is($Siteflow::Flow::Mock{siteflow}->port, $port, 'same port');
$sf = $Siteflow::Flow::Mock{siteflow};
send_sf(POST => '/api/order/validate', $order);
my @all = @{ mock_requests('siteflow') };
is(scalar @all, 7, 'history kept across the restart');
is(Siteflow::Flow::_answer_of($all[0]), 'reset', 'old rule kept for old entries');
is(Siteflow::Flow::_answer_of($all[-1]), '200', 'new entry');

# bounded waits say what they waited for
my $t0 = time;
like(wait_requests('siteflow', 'POST /api/order', 99, 0.3),
     qr{^TIMEOUT: 99 x siteflow POST /api/order \(have 6\) after 0\.3s$},
     'wait_requests times out with a clear message');
cmp_ok(time - $t0, '<', 2, 'and within its bound');
is(wait_requests('siteflow', 'POST /api/order*', 7, 1), '', 'prefix filter');

# the storefront configuration names both mocks through the variables
my $conf = storefront_conf(shop => 'shop2');
like($conf, qr{siteflow_api http://127\.0\.0\.1:\$TEST_NGINX_SITEFLOW_PORT/siteflow/api scheme=printos;},
     'shop2 is PrintOS under /siteflow');
like($conf, qr{siteflow_mapping \$TEST_NGINX_FIXTURES/mapping-shop2\.json;}, 'mapping');

done_testing();
