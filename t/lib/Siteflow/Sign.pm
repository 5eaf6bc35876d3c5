package Siteflow::Sign;

# Test helpers for SiteFlow Ship API signatures:
#   X-SiteFlow-Signature: <partnerId>:<base64 HMAC-SHA256(key, nonce)>
# The keys used in the suite are obviously fake test keys.

use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_base64 hmac_sha1_hex hmac_sha256_hex);

our $KEY  = '0123456789abcdef0123456789abcdef01234567';  # protocols 3a
our $KEY2 = 'feedfacefeedfacefeedfacefeedface00000002';  # rotated key
our $KEY3 = 'c0ffeec0ffeec0ffeec0ffeec0ffeec000000003';  # second partner

my $seq = 0;

# base64 with padding, as SiteFlow sends it
sub sig {
    my ($key, $nonce) = @_;
    my $s = hmac_sha256_base64($nonce, $key);
    $s .= '=' while length($s) % 4;
    return $s;
}

# a nonce never used before by this test process
sub nonce {
    $seq++;
    return sprintf("n%x%x%04x%06x", $$, time, $seq, int(rand(0xffffff)));
}

# "--- more_headers" text for a signed request
sub headers {
    my ($partner, $key, $nonce) = @_;
    $nonce = nonce() unless defined $nonce;
    return "X-SiteFlow-Nonce: $nonce\n"
         . "X-SiteFlow-Signature: $partner:" . sig($key, $nonce) . "\n";
}

# ---------------------------------------------------------------------------
# Outbound SiteFlow request signatures (protocols.md section 1), used by the
# end-to-end tests to check what the mock SiteFlow received.
#
#   OneFlow:  x-oneflow-authorization: <token>:<hex HMAC(secret, S)>
#             x-oneflow-date: <timestamp>
#             x-oneflow-algorithm: SHA256 (absent: SHA1); the module sends SHA256
#             unless "siteflow_api ... algorithm=sha1"
#             S = "METHOD path timestamp" (a space before the timestamp);
#             path = the request path with its API prefix, no query
#   PrintOS:  x-hp-hmac-authentication: <key>:<hex HMAC(secret, S)>
#             x-hp-hmac-date: <timestamp>
#             x-hp-hmac-algorithm: SHA256 or SHA1 (absent: SHA1)
#             S = "METHOD pathtimestamp" (no separator); path = the request
#             path without the "/siteflow" service prefix, no query
# ---------------------------------------------------------------------------

# suite credentials: a OneFlow token is all digits with a 48-hex secret, a
# PrintOS key and secret are 32 characters of [0-9a-v] (protocols 1c); fake
our %CRED = (
    oneflow => { token => '1234567890123',
                 secret => '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978' },
    printos => { token => '0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p',
                 secret => 'v9u8t7s6r5q4p3o2n1m0l9k8j7i6h5g4' },
);

sub string_to_sign {
    my ($scheme, $method, $path, $ts) = @_;
    $path =~ s/\?.*//s;
    if ($scheme eq 'printos') {
        $path =~ s{^/siteflow(?=/|$)}{};
        return uc($method) . " $path$ts";
    }
    return uc($method) . " $path $ts";
}

sub hmac_hex {
    my ($algo, $secret, $data) = @_;
    return uc($algo) eq 'SHA256' ? hmac_sha256_hex($data, $secret)
                                 : hmac_sha1_hex($data, $secret);
}

# the algorithm a request says it is signed with (no header: SHA1)
sub algorithm_of {
    my ($scheme, $h) = @_;
    my $n = $scheme eq 'printos' ? 'x-hp-hmac-algorithm' : 'x-oneflow-algorithm';
    return uc($h->{$n} // 'SHA1');
}

# the headers a correct client sends (used to test the verifier itself);
# SHA256 unless told, like the module; a OneFlow SHA1 client sends no
# algorithm header unless $algo names it
sub sign_request {
    my ($scheme, $token, $secret, $method, $path, $ts, $algo) = @_;
    my $sig = hmac_hex($algo // 'SHA256',
                       $secret, string_to_sign($scheme, $method, $path, $ts));
    if ($scheme eq 'printos') {
        return { 'x-hp-hmac-authentication' => "$token:$sig",
                 'x-hp-hmac-date' => $ts,
                 'x-hp-hmac-algorithm' => $algo // 'SHA256' };
    }
    my %h = ('x-oneflow-authorization' => "$token:$sig",
             'x-oneflow-date' => $ts);
    $h{'x-oneflow-algorithm'} = $algo // 'SHA256';
    return \%h;
}

# ISO-8601 UTC timestamp within $skew seconds of now (undef: any time)
sub _check_time {
    my ($ts, $skew) = @_;
    return "no timestamp" unless defined $ts && length $ts;
    my ($y, $mo, $d, $h, $mi, $s) = $ts =~
        /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d{1,6})?Z$/
        or return "timestamp \"$ts\" is not ISO-8601 UTC";
    return '' unless defined $skew;
    require Time::Local;
    my $t = eval { Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) };
    return "timestamp \"$ts\" is not a date" unless defined $t;
    return "timestamp \"$ts\" is " . int(abs($t - time)) . " s off"
        if abs($t - time) > $skew;
    return '';
}

# Checks one request's signature.  %a: scheme (oneflow|printos), token,
# secret, method, path (as received, query allowed), headers (hashref with
# lower-case names), skew (seconds; undef: no clock check), algorithms
# (arrayref of accepted algorithm names, default both).
# Returns '' when the signature is right, else what is wrong.
sub verify_request {
    my %a = @_;
    my $h = $a{headers} // {};
    my ($auth_h, $date_h, $algo_h) = $a{scheme} eq 'printos'
        ? ('x-hp-hmac-authentication', 'x-hp-hmac-date', 'x-hp-hmac-algorithm')
        : ('x-oneflow-authorization', 'x-oneflow-date', 'x-oneflow-algorithm');
    my $auth = $h->{$auth_h};
    return "no $auth_h header" unless defined $auth;
    my ($tok, $sig) = $auth =~ /^([^:]*):(.*)$/s
        or return "$auth_h is not token:signature";
    return "$auth_h names token \"$tok\", not \"$a{token}\""
        unless $tok eq $a{token};
    my $algo = uc($h->{$algo_h} // 'SHA1');
    return "unknown algorithm \"$algo\"" unless $algo =~ /^SHA(?:1|256)$/;
    my @ok = @{ $a{algorithms} // [qw(SHA1 SHA256)] };
    return "algorithm $algo not accepted here (@ok)"
        unless grep { uc $_ eq $algo } @ok;
    my $ts = $h->{$date_h};
    return "no $date_h header" unless defined $ts;
    my $e = _check_time($ts, $a{skew});
    return $e if $e;
    my $want = hmac_hex($algo, $a{secret},
        string_to_sign($a{scheme}, $a{method}, $a{path}, $ts));
    return "signature mismatch for \""
        . string_to_sign($a{scheme}, $a{method}, $a{path}, $ts) . "\" ($algo)"
        unless lc $sig eq $want && $sig eq lc $sig;
    return '';
}

# which scheme the headers use: 'oneflow', 'printos', 'both' or ''
sub scheme_of {
    my ($h) = @_;
    my $of = grep { /^x-oneflow-/ } keys %$h;
    my $hp = grep { /^x-hp-hmac-/ } keys %$h;
    return $of && $hp ? 'both' : $of ? 'oneflow' : $hp ? 'printos' : '';
}

1;
