package Test::Nginx::Socket;

# NOT the real Test::Nginx::Socket: a minimal stand-in used only by
# t/runner/selftest.t (via PERL5LIB=t/runner/fake-tns) to check that
# t/lib/Siteflow/Test.pm picks an installed Test::Nginx::Socket over the
# builtin runner and re-exports its functions.  Like the real one, it is a
# Test::Base subclass with an @EXPORT list.

use strict;
use warnings;
use Test::Base -base;

our $VERSION = '9.99-selftest-double';
our @EXPORT = qw(run_tests repeat_each no_shuffle);

my $repeat = 1;

sub repeat_each { $repeat = shift if @_; return $repeat }
sub no_shuffle  { }

sub run_tests {
    for my $block (Test::Base::blocks()) {
        Test::More::pass("stand-in Test::Nginx::Socket ran " . $block->name
                         . " with request " . $block->request);
    }
}

1;
