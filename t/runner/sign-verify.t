# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the suite's verifiers of outbound SiteFlow signatures
# (Siteflow::Sign::verify_request, used on every request the mock SiteFlow
# receives in t/100-hook.t, t/110-postback.t, t/120-faults.t and
# t/121-crash.t) accept exactly the protocols.md section 1d signatures and
# refuse every near miss, so a passing end-to-end test means a signature
# SiteFlow would accept.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Siteflow::Sign;

my $ts = '2024-05-01T12:00:00.000Z';
my $S  = 'testsecret';

# protocols.md 1d, the four worked signatures
my @vec = (
    [oneflow => SHA1   => 'POST /api/order 2024-05-01T12:00:00.000Z',
     'a66147d2dbd5b9c92116f5105c873869753ffa7b'],
    [oneflow => SHA256 => 'POST /api/order 2024-05-01T12:00:00.000Z',
     '39df2e30fe9d066685fea94cfc50b3f8c2088ba07503cef5bf3201facc615c7a'],
    [printos => SHA1   => 'POST /api/order2024-05-01T12:00:00.000Z',
     'b8cef39aa5d16a0cd9c776146da340a5c2f5a45c'],
    [printos => SHA256 => 'POST /api/order2024-05-01T12:00:00.000Z',
     'd117bed8fb9a9867c79fb4f1e64a1577b0b52d124c0664679add3d9260b3f8cc'],
);

for my $v (@vec) {
    my ($scheme, $algo, $sts, $hex) = @$v;
    is(Siteflow::Sign::string_to_sign($scheme, 'post', '/api/order', $ts),
       $sts, "$scheme string to sign");
    is(Siteflow::Sign::hmac_hex($algo, $S, $sts), $hex, "$scheme $algo 1d");

    my ($ah, $dh, $gh) = $scheme eq 'oneflow'
        ? qw(x-oneflow-authorization x-oneflow-date x-oneflow-algorithm)
        : qw(x-hp-hmac-authentication x-hp-hmac-date x-hp-hmac-algorithm);
    my %h = ($ah => "tok:$hex", $dh => $ts);
    $h{$gh} = $algo if $algo eq 'SHA256';
    my %req = (scheme => $scheme, token => 'tok', secret => $S,
               method => 'POST', headers => \%h);
    my $path = $scheme eq 'printos' ? '/siteflow/api/order' : '/api/order';

    is(Siteflow::Sign::verify_request(%req, path => $path), '',
       "$scheme $algo: the 1d vector verifies (path $path)");
    is(Siteflow::Sign::verify_request(%req, path => "$path?page=2"), '',
       "$scheme $algo: the query string is not signed");
    is(Siteflow::Sign::sign_request($scheme, 'tok', $S, 'POST', $path, $ts,
                                    $algo)->{$ah}, "tok:$hex",
       "$scheme $algo: sign_request gives the 1d header");

    # near misses, each must be refused with a reason
    my %bad = (
        'another path'    => [path => $scheme eq 'printos'
                                        ? '/siteflow/api/order/validate'
                                        : '/api/order/validate'],
        'another method'  => [method => 'PUT'],
        'another secret'  => [secret => 'testsecreT'],
        'another token'   => [token => 'tok2'],
        'uppercase hex'   => [headers => { %h, $ah => 'tok:' . uc $hex }],
        'other timestamp' => [headers => { %h, $dh => '2024-05-01T12:00:01.000Z' }],
        'no date header'  => [headers => { map { $_ => $h{$_} } grep { $_ ne $dh } keys %h }],
        'no auth header'  => [headers => { map { $_ => $h{$_} } grep { $_ ne $ah } keys %h }],
        'other algorithm' => [headers => { %h, $gh => $algo eq 'SHA1' ? 'SHA256' : 'SHA1' }],
        'other scheme'    => [scheme => $scheme eq 'oneflow' ? 'printos' : 'oneflow'],
    );
    for my $what (sort keys %bad) {
        my $why = Siteflow::Sign::verify_request(%req, path => $path,
                                                 @{ $bad{$what} });
        isnt($why, '', "$scheme $algo: refused with $what ($why)");
    }
}

# PrintOS signs the path without /siteflow; OneFlow signs it as requested
is(Siteflow::Sign::string_to_sign('printos', 'GET',
       '/siteflow/api/order/bysourceid/PN-1', 'T'),
   'GET /api/order/bysourceid/PN-1T', 'printos drops the /siteflow prefix');
is(Siteflow::Sign::string_to_sign('oneflow', 'GET',
       '/siteflow/api/order', 'T'),
   'GET /siteflow/api/order T', 'oneflow keeps the whole path');
is(Siteflow::Sign::string_to_sign('printos', 'GET', '/siteflowx/api', 'T'),
   'GET /siteflowx/apiT', 'only a whole /siteflow segment is dropped');

# algorithms restricted (the suite requires SHA256 on PrintOS)
{
    my $h = Siteflow::Sign::sign_request('printos', 'k', 's', 'POST',
        '/siteflow/api/order', $ts, 'SHA1');
    like(Siteflow::Sign::verify_request(scheme => 'printos', token => 'k',
            secret => 's', method => 'POST', path => '/siteflow/api/order',
            headers => $h, algorithms => ['SHA256']),
         qr/SHA1 not accepted/, 'SHA1 refused where only SHA256 is');
}

# clock check
{
    my @t = gmtime(time);
    my $now = sprintf '%04d-%02d-%02dT%02d:%02d:%02d.123Z',
        $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0];
    my $h = Siteflow::Sign::sign_request('oneflow', 'k', 's', 'GET',
        '/api/order', $now);
    my %r = (scheme => 'oneflow', token => 'k', secret => 's',
             method => 'GET', path => '/api/order', skew => 300);
    is(Siteflow::Sign::verify_request(%r, headers => $h), '',
       'a current timestamp passes the clock check');
    $h = Siteflow::Sign::sign_request('oneflow', 'k', 's', 'GET',
        '/api/order', $ts);
    like(Siteflow::Sign::verify_request(%r, headers => $h), qr/s off/,
         'a 2024 timestamp fails the clock check');
    $h = Siteflow::Sign::sign_request('oneflow', 'k', 's', 'GET',
        '/api/order', '1714564800');
    like(Siteflow::Sign::verify_request(%r, headers => $h),
         qr/not ISO-8601/, 'epoch seconds are not the format we send');
}

is(Siteflow::Sign::scheme_of({ 'x-oneflow-date' => 1 }), 'oneflow', 'scheme_of');
is(Siteflow::Sign::scheme_of({ 'x-hp-hmac-date' => 1 }), 'printos', 'scheme_of');
is(Siteflow::Sign::scheme_of({ 'x-hp-hmac-date' => 1, 'x-oneflow-date' => 1 }),
   'both', 'scheme_of');

done_testing();
