package Siteflow::Sign;

# Test helpers for SiteFlow Ship API signatures:
#   X-SiteFlow-Signature: <partnerId>:<base64 HMAC-SHA256(key, nonce)>
# The keys used in the suite are obviously fake test keys.

use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_base64);

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

1;
