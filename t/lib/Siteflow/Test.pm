package Siteflow::Test;

# The module every t/NNN-*.t file uses:
#
#     use lib 't/lib';
#     use Siteflow::Test;          # or: use Siteflow::Test 'no_plan';
#     repeat_each(2);
#     plan tests => repeat_each() * (3 * blocks());
#     run_tests();
#     __DATA__
#     === TEST 1: ...
#
# If OpenResty's Test::Nginx::Socket can be loaded, this package becomes a
# subclass of it (the Spiffy "-base" inheritance that OpenResty's own
# wrappers such as lua-resty-core's t/TestCore.pm use), so `use
# Siteflow::Test` exports exactly what `use Test::Nginx::Socket` would and
# the test's __DATA__ section is read the same way (Test::Base reads
# main::DATA).  Otherwise it subclasses our own runner, Siteflow::TestRunner,
# which exports the same function names.
#
# SITEFLOW_TEST_RUNNER selects the runner:
#   (unset) or "auto"  the real Test::Nginx::Socket if installed, else builtin
#   "builtin"          always Siteflow::TestRunner (Test::Nginx is not loaded)
#   "real"             Test::Nginx::Socket, or die if it cannot be loaded
#
# One diagnostic line per test file says which runner is in use.

use strict;
use warnings;

our ($Runner, $RunnerDescription);

BEGIN {
    my $choice = $ENV{SITEFLOW_TEST_RUNNER} // '';
    $choice = 'auto' if $choice eq '';
    die "Siteflow::Test: SITEFLOW_TEST_RUNNER must be 'auto', 'builtin' "
        . "or 'real', not '$choice'\n"
        unless $choice =~ /^(?:auto|builtin|real)$/;

    if ($choice ne 'builtin') {
        if (eval { require Test::Nginx::Socket; 1 }) {
            $Runner = 'Test::Nginx::Socket';
            $RunnerDescription = 'Test::Nginx::Socket '
                . ($Test::Nginx::Socket::VERSION // '(unknown version)')
                . ' (installed)';
        } else {
            my $err = $@;
            # Only a missing module means "not installed"; a broken
            # installation should not silently fall back.
            die "Siteflow::Test: cannot load Test::Nginx::Socket: $err"
                if $choice eq 'real'
                   || $err !~ m{^Can't locate Test/Nginx/Socket\.pm in \@INC};
        }
    }

    if (!$Runner) {
        require Siteflow::TestRunner;
        $Runner = 'Siteflow::TestRunner';
        $RunnerDescription = 'builtin Siteflow::TestRunner ('
            . ($choice eq 'builtin' ? 'SITEFLOW_TEST_RUNNER=builtin'
                                    : 'Test::Nginx::Socket is not installed')
            . ')';
    }

    # Equivalent of "use $Runner -base;": @ISA gets $Runner.  (The lower
    # case -base is used on purpose: -Base would also turn on Spiffy's
    # source filter for the rest of this file.)
    $Runner->import('-base');
}

my $announced;

sub import {
    Test::More::diag("Siteflow::Test: using $RunnerDescription")
        unless $announced++;
    # Test::Base::import (inherited by both runners) exports the runner's
    # and Test::Base's functions into the caller, passes plan arguments
    # such as 'no_plan' to Test::More, and keeps caller() intact via goto.
    goto &{ $Runner->can('import') };
}

1;
