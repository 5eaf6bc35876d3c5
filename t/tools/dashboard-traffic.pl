#!/usr/bin/env perl
# Traffic for the dashboard picture (t/tools/dashboard-png.sh): drives the
# demo started by t/demo/run.sh (nginx on 127.0.0.1:8090, mock SiteFlow on
# 8091, mock PrintNow on 8092) with the demo's kinds of calls for a while,
# and scrapes the admin metrics every few seconds, as Prometheus would.
#
#   dashboard-traffic.pl --order t/demo/order-5001.json --out scrapes.json
#                        [--seconds 240] [--interval 5] [--base URL]
#                        [--siteflow PORT] [--printnow PORT]
#
# Each second: a new PrintNow order hook every 2 s (the mock PrintNow is
# taught the order first), now and then the same hook again (skipped) or
# a hook without an order id (rejected); SiteFlow's "shipped" postbacks
# for orders created, some twice (duplicate); signed Ship API calls, and
# now and then an unsigned one, one with a wrong signature, one replayed.
# Between 35 % and 60 % of the run the mock SiteFlow answers 503 (an
# outage): deliveries retry, the storefront's breaker opens, jobs wait.
#
# --out gets a JSON array of {"t": <epoch seconds>, "text": <the scrape>}.
# Core Perl only (HTTP::Tiny, JSON::PP, Digest::SHA).

use strict;
use warnings;
use Getopt::Long;
use HTTP::Tiny;
use JSON::PP;
use Digest::SHA qw(hmac_sha256_base64);
use Time::HiRes qw(time sleep);

my %o = (seconds => 240, interval => 5, base => 'http://127.0.0.1:8090',
         siteflow => 8091, printnow => 8092);
GetOptions(\%o, 'order=s', 'out=s', 'seconds=i', 'interval=f', 'base=s',
           'siteflow=i', 'printnow=i')
    && $o{order} && $o{out}
    or die "usage: $0 --order FILE --out FILE [--seconds N] [--interval S]\n";

my $json = JSON::PP->new->canonical;
# direct to 127.0.0.1, whatever http_proxy says
my $http = HTTP::Tiny->new(timeout => 5, proxy => undef, http_proxy => undef);
my $order = do {
    open my $fh, '<', $o{order} or die "$o{order}: $!";
    local $/;
    $json->decode(<$fh>);
};

my $hook_url = "$o{base}/siteflow/hook?token=demo-hook-token-not-real";
my $pb_url = "$o{base}/siteflow/postback?token=demo-postback-token-not-real";
my $ship_url = "$o{base}/ship/shipment";
my $metrics_url = "$o{base}/siteflow/admin/metrics";
my $sf_mock = "http://127.0.0.1:$o{siteflow}/_mock";
my $pn_mock = "http://127.0.0.1:$o{printnow}/_mock";

# the demo's SiteFlow rules (t/demo/run.sh), and the outage's
my @sf_ok = (
    { method => 'POST', path => '/api/order/validate',
      json => { valid => JSON::PP::true } },
    { method => 'POST', path => '/api/order', status => 201,
      json => { _id => '{{hex24}}',
                timestamp => '2026-11-23T10:00:00.000Z' } },
    { method => 'GET', path_prefix => '/api/order/bysourceid/',
      status => 404,
      json => { error => { message => 'order not found', code => 404 } } },
);
my @sf_down = (
    { path_prefix => '/api/', status => 503,
      json => { error => { message => 'maintenance', code => 503 } } },
);

sub post_json {
    my ($url, $body, $headers) = @_;
    my $r = $http->post($url, {
        headers => { 'Content-Type' => 'application/json',
                     %{ $headers // {} } },
        content => ref $body ? $json->encode($body) : $body });
    return $r->{status};
}

my $key = '0123456789abcdef0123456789abcdef01234567';
my $ship = {
    shipmentId => 'demo-1', orderNumber => 'PN-5001',
    shipTo => { name => 'Jane Smith', address1 => '123 Main St',
                town => 'New York', postcode => '10001',
                isoCountry => 'US' },
    return => { name => 'Acme Print', address1 => '1 Print Way',
                town => 'Newark', postcode => '07102', isoCountry => 'US' },
    shipper => { name => 'Acme Print', address1 => '1 Print Way',
                 town => 'Newark', postcode => '07102', isoCountry => 'US' },
    packages => [ { weight => 120, items => [
        { type => 'production', sourceItemId => 'PN-5001-77',
          count => 1 } ] } ],
};

sub ship_call {
    my ($how, $nonce) = @_;
    $nonce //= join '', map { sprintf '%02x', int rand 256 } 1 .. 24;
    my $sig = hmac_sha256_base64($nonce, $key);
    $sig .= '=' while length($sig) % 4;
    $sig = 'AAAA' . substr($sig, 4) if $how eq 'wrong';
    my %h = $how eq 'unsigned' ? ()
          : ('X-SiteFlow-Nonce' => $nonce,
             'X-SiteFlow-Signature' => "demo-partner:$sig");
    post_json($ship_url, $ship, \%h);
    return $nonce;
}

my (@scrapes, @created, %shipped);
my $start = time;
my $next_scrape = $start;
my $last_nonce;
my $down = 0;
my $next_id = 7001;

for (my $tick = 0; ; $tick++) {
    my $now = time;
    my $frac = ($now - $start) / $o{seconds};

    if ($now >= $next_scrape) {
        my $r = $http->get($metrics_url);
        die "metrics: $r->{status} $r->{content}\n" unless $r->{success};
        push @scrapes, { t => 0 + sprintf('%.3f', $now),
                         text => $r->{content} };
        $next_scrape += $o{interval};
    }
    last if $frac >= 1;

    my $want_down = ($frac >= 0.35 && $frac < 0.6) ? 1 : 0;
    if ($want_down != $down) {
        $http->post("$sf_mock/rules", {
            content => $json->encode($want_down ? \@sf_down : \@sf_ok) });
        $down = $want_down;
    }

    if ($tick % 2 == 0) {
        my $id = $next_id++;
        my %copy = (%$order, id => $id);
        $http->post("$pn_mock/rules/append", {
            content => $json->encode({ method => 'GET',
                path => "/api/v2/order/$id", json => \%copy }) });
        post_json($hook_url, { event => 'order_created', id => $id });
        push @created, [$id, $tick];
    }
    if ($tick % 7 == 3 && @created) {
        post_json($hook_url, { event => 'order_updated',
                               id => $created[int rand @created][0] });
    }
    if ($tick % 13 == 5) {
        post_json($hook_url, { event => 'order_created' });
    }

    # shipped postbacks for orders SiteFlow has (created 5 s ago or more)
    if ($tick % 3 == 1 && !$down) {
        my ($c) = grep { !$shipped{$_->[0]} && $_->[1] <= $tick - 5 }
                  @created;
        if ($c) {
            $shipped{$c->[0]} = 1;
            post_json($pb_url, { event => 'shipped',
                sourceOrderId => "PN-$c->[0]",
                trackingNumber => "1Z999AA1$c->[0]", carrier => 'UPS',
                shipDate => '2026-11-23' });
        }
    }
    if ($tick % 10 == 9 && %shipped) {
        my @s = sort keys %shipped;
        post_json($pb_url, { event => 'shipped',
            sourceOrderId => "PN-$s[-1]",
            trackingNumber => "1Z999AA1$s[-1]", carrier => 'UPS',
            shipDate => '2026-11-23' });
    }

    $last_nonce = ship_call('signed');
    ship_call('signed') if $tick % 2;
    ship_call('unsigned') if $tick % 9 == 4;
    ship_call('wrong') if $tick % 11 == 6;
    ship_call('signed', $last_nonce) if $tick % 17 == 8;

    my $sleep = $start + $tick + 1 - time;
    sleep $sleep if $sleep > 0;
}

# leave the demo as it was found
$http->post("$sf_mock/rules", { content => $json->encode(\@sf_ok) })
    if $down;

open my $fh, '>', $o{out} or die "$o{out}: $!";
print $fh $json->encode(\@scrapes);
close $fh or die "$o{out}: $!";
printf "dashboard-traffic: %d orders, %d scrapes over %d s\n",
       scalar @created, scalar @scrapes, $o{seconds};
