# vim:set ft=perl ts=4 sw=4 et:
#
# Self-test of our builtin test runner (t/lib/Siteflow/TestRunner.pm) and
# of the runner selection in t/lib/Siteflow/Test.pm.
#
# It runs the fixture files under t/runner/fixtures/ through `prove` in
# subprocesses, with SITEFLOW_TEST_RUNNER=builtin, on a port and server
# root of its own (so it does not clash with the real suite), and checks
# that the correct fixtures pass and that every deliberately wrong
# expectation fails -- exactly those, and nothing else.
#
# Run from the repository root:  prove -v t/runner/selftest.t
# SITEFLOW_SELFTEST_PORT picks the port (default: a free one); the mock TCP
# server of the fixtures uses the next one.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use File::Temp qw(tempdir tempfile);
use FindBin ();
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $root = abs_path("$FindBin::Bin/../..");
chdir $root or die "cannot chdir to $root: $!\n";

sub find_in_path {
    my $cmd = shift;
    for my $dir (split /:/, $ENV{PATH} // '') {
        return "$dir/$cmd" if $dir ne '' && -f "$dir/$cmd" && -x _;
    }
    return undef;
}

my $nginx = $ENV{TEST_NGINX_BINARY} || find_in_path('nginx')
            || (-x '/usr/sbin/nginx' ? '/usr/sbin/nginx' : undef);
plan skip_all => 'no nginx binary (set TEST_NGINX_BINARY)' unless $nginx;
my $prove = find_in_path('prove');
plan skip_all => 'prove not found in PATH' unless $prove;

# Two consecutive free ports on 127.0.0.1: nginx, and the mock TCP server.
sub port_is_free {
    my $port = shift;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                  Proto => 'tcp', ReuseAddr => 1, Listen => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

my $port = $ENV{SITEFLOW_SELFTEST_PORT};
if (!$port) {
    for (1 .. 200) {
        my $p = 20000 + 2 * int rand 10000;
        if (port_is_free($p) && port_is_free($p + 1)) { $port = $p; last }
    }
    BAIL_OUT('no free port pair found') unless $port;
}

my $servroot = tempdir('siteflow-selftest-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# The fixtures' environment: nothing inherited from TEST_NGINX_* or
# SITEFLOW_* (the caller may be running the real suite with them set).
my %base_env = map { $_ => $ENV{$_} }
               grep { !/^(?:TEST_NGINX_|SITEFLOW_)/ } keys %ENV;
%base_env = (
    %base_env,
    SITEFLOW_TEST_RUNNER => 'builtin',
    TEST_NGINX_BINARY    => $nginx,
    TEST_NGINX_PORT      => $port,
    TEST_NGINX_MOCK_PORT => $port + 1,
    TEST_NGINX_SERVROOT  => $servroot,
);

sub slurp {
    my $file = shift;
    open my $in, '<', $file or return '';
    local $/;
    my $s = <$in>;
    return $s // '';
}

# Runs `prove -v FIXTURE` with extra environment; returns a summary.
# A leading "label => ..." names the run in test names (default: the
# extra environment).
sub run_fixture {
    my ($fixture, @args) = @_;
    my $label = $args[0] && $args[0] eq 'label' ? (splice @args, 0, 2)[1] : undef;
    my %env = @args;
    my %child_env = (%base_env, %env);
    delete @child_env{ grep { !defined $child_env{$_} } keys %child_env };

    my (undef, $out_file) = tempfile(UNLINK => 1);
    my (undef, $err_file) = tempfile(UNLINK => 1);
    my $started = time;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        setpgrp(0, 0);
        %ENV = %child_env;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out_file or POSIX::_exit(126);
        open STDERR, '>', $err_file or POSIX::_exit(126);
        { no warnings 'exec'; exec $^X, $prove, '--norc', '-v', $fixture; }
        POSIX::_exit(127);
    }
    my $timed_out;
    while (waitpid($pid, WNOHANG) == 0) {
        if (time - $started > 300) {
            kill 'KILL', -$pid;
            waitpid($pid, 0);
            $timed_out = 1;
            last;
        }
        sleep 0.05;
    }
    my $status = $?;

    my $out = slurp($out_file);
    my $err = slurp($err_file);
    my (@ok, @not_ok, $planned, $skipped);
    for my $line (split /\n/, $out) {
        if ($line =~ /^(not )?ok \d+(.*)$/) {
            my ($failed, $name) = ($1, $2);
            $skipped++ if $name =~ s/\s*#\s*skip\b.*//i;
            $name =~ s/^ - //;
            push @{ $failed ? \@not_ok : \@ok }, $name;
        } elsif ($line =~ /^1\.\.(\d+)/) {
            $planned = $1;
        }
    }
    (my $short = $fixture) =~ s{.*/}{};
    $label //= join ' ', map { "$_=" . ($env{$_} // '(unset)') } sort keys %env;
    my $res = {
        name => $label eq '' ? $short : "$short [$label]",
        exit => $timed_out ? 'timeout' : $status >> 8,
        out => $out, err => $err, ok => \@ok, not_ok => \@not_ok,
        planned => $planned, skipped => $skipped // 0,
        seconds => sprintf('%.1f', time - $started),
    };
    note "$res->{name}: exit $res->{exit}, ", scalar(@ok), " ok, ",
         scalar(@not_ok), " not ok, $res->{seconds}s";
    return $res;
}

sub explain_run {
    my $r = shift;
    diag "---- $r->{name}\n---- stdout:\n$r->{out}\n---- stderr:\n$r->{err}";
}

# Asserts that a fixture run passed as a whole, under prove.
sub passes {
    my ($r, $expected_tests) = @_;
    my $ok = is($r->{exit}, 0, "$r->{name}: prove exits 0");
    $ok &= like($r->{out}, qr/^Result: PASS$/m, "$r->{name}: prove says PASS");
    $ok &= is(scalar @{ $r->{not_ok} }, 0, "$r->{name}: no failing assertion");
    if (defined $expected_tests) {
        $ok &= is(scalar @{ $r->{ok} }, $expected_tests,
                  "$r->{name}: $expected_tests assertions ran");
        $ok &= is($r->{planned}, $expected_tests, "$r->{name}: the plan matches");
    }
    explain_run($r) unless $ok;
    return $ok;
}

# Asserts that a fixture run failed, and exactly in the expected places:
# @expected is a list of [regex, count] for the names of failing tests.
sub fails_exactly {
    my ($r, $expected_ok, @expected) = @_;
    my $ok = isnt($r->{exit}, 0, "$r->{name}: prove exits non-zero");
    $ok &= like($r->{out}, qr/^Result: FAIL$/m, "$r->{name}: prove says FAIL");
    my @left = @{ $r->{not_ok} };
    for my $exp (@expected) {
        my ($re, $count) = @$exp;
        my $n = grep { $_ =~ $re } @left;
        $ok &= is($n, $count, "$r->{name}: fails $count time(s): $re");
        @left = grep { $_ !~ $re } @left;
    }
    $ok &= is(scalar @left, 0, "$r->{name}: no other assertion fails")
        or diag "unexpected failures:\n" . join "\n", @left;
    $ok &= is(scalar @{ $r->{ok} }, $expected_ok,
              "$r->{name}: the $expected_ok correct expectations pass");
    explain_run($r) unless $ok;
    return $ok;
}

sub announced {
    my ($r, $what) = @_;
    my @lines = $r->{err} =~ /^# Siteflow::Test: using (.*)$/mg;
    is(scalar @lines, 1, "$r->{name}: the runner is announced once");
    like($lines[0] // '', $what, "$r->{name}: the announced runner is right");
}

my $F = 't/runner/fixtures';

# --- correct fixtures pass (the plan counts mirror Test::Nginx::Socket's)

my $r = run_fixture("$F/good.fixture");
passes($r, 104);
announced($r, qr/^builtin Siteflow::TestRunner \(SITEFLOW_TEST_RUNNER=builtin\)$/);
like($r->{err}, qr/WARNING: .*TEST 9: .*\[emerg\].*siteflow_no_such_directive/,
     'good.t: the expected [emerg] of the must_die block is only a warning');

$r = run_fixture("$F/good.fixture", TEST_NGINX_USE_HUP => 1, TEST_NGINX_NO_SHUFFLE => 1);
passes($r, 104);
is($r->{skipped}, 10, 'HUP mode: skip_eval (2 x 4) and shutdown_error_log (2) tests are skipped');

$r = run_fixture("$F/api.fixture");
passes($r, 43);
like($r->{err}, qr{^# curl -i -sS -X GET http://127\.0\.0\.1:$port/f$}m,
     'api.t: --- curl prints a curl command line');
like($r->{err}, qr/^# cleanup handler ran$/m, 'api.t: add_cleanup_handler() handlers run');

# --- each deliberately wrong expectation fails, and nothing else does

$r = run_fixture("$F/bad.fixture");
fails_exactly($r, 15,
    [qr/TEST 1: wrong body - response_body - response is expected/, 1],
    [qr/TEST 2: wrong status - status code ok$/, 1],
    [qr/TEST 3: wrong header value - header X-Foo ok$/, 1],
    [qr/TEST 4: .* - header X-Foo not present in the raw headers$/, 1],
    [qr/TEST 5: .* - pattern "this pattern never appears in the log" should match a line in error\.log/, 1],
    [qr/TEST 6: .* - pattern "\[error\]" should not match any line in error\.log/, 1],
    [qr/^ERROR: client socket timed out - .*TEST 7: /, 1],
    [qr/TEST 7: client timeout without abort - status code ok$/, 1],
    [qr/TEST 8: must_die on a good config - die as expected$/, 1],
    [qr/TEST 9: .* - pattern "invalid number of arguments" should match a line in error\.log/, 1],
    [qr/TEST 10: .* - response_body_like - response is expected/, 1],
    [qr/TEST 11: .* - grep_error_log_out \(req 0\)$/, 1],
    [qr/TEST 12: tcp_query mismatch - tcp_query ok$/, 1],
    [qr/TEST 13: .* - status code ok$/, 1],
);
like($r->{err}, qr/WARNING: .*TEST 8: .*nginx must die but it does not/,
     'bad.t: a must_die nginx that starts is reported and killed');

# --- [alert]/[crit]/[emerg] lines: warnings, or failures when strict

$r = run_fixture("$F/strict.fixture");
passes($r, 4);
like($r->{err}, qr/WARNING: .*TEST 1: .*\[crit\].*connect\(\) to unix:/,
     'strict.t: an unexpected [crit] line is a warning by default');
unlike($r->{err}, qr/WARNING: .*TEST 2: .*\[crit\]/,
       'strict.t: no warning when the block expects [crit]');

$r = run_fixture("$F/strict.fixture", SITEFLOW_TEST_STRICT => 1);
fails_exactly($r, 4,
    [qr/TEST 1: .* - SITEFLOW_TEST_STRICT: unexpected \[crit\] line: .*connect\(\) to unix:/, 1]);

# --- TEST_NGINX_LOAD_MODULES puts load_module lines at the top of nginx.conf

$r = run_fixture("$F/modules.fixture", label => 'TEST_NGINX_LOAD_MODULES',
                 TEST_NGINX_LOAD_MODULES => '/nonexistent/siteflow-a.so /nonexistent/siteflow-b.so');
passes($r, 2);

# --- valgrind mode (TEST_NGINX_USE_VALGRIND)

my $fake_vg_path = "$root/t/runner/fake-valgrind:$ENV{PATH}";
$r = run_fixture("$F/valgrind.fixture", label => 'fake valgrind',
                 TEST_NGINX_USE_VALGRIND => 1, PATH => $fake_vg_path);
passes($r, 3);
like($r->{err}, qr/WARNING: .*TEST 1: .* - valgrind reported errors:\n==4242== Invalid read of size 8/,
     'valgrind.t: errors valgrind prints are reported as a warning');

$r = run_fixture("$F/valgrind.fixture", label => 'fake valgrind, strict',
                 TEST_NGINX_USE_VALGRIND => 1, PATH => $fake_vg_path,
                 SITEFLOW_TEST_STRICT => 1);
fails_exactly($r, 3, [qr/TEST 1: nginx under valgrind - valgrind reported errors$/, 1]);

SKIP: {
    skip 'valgrind is not installed', 3 unless find_in_path('valgrind');
    $r = run_fixture("$F/valgrind.fixture", label => 'real valgrind', TEST_NGINX_USE_VALGRIND => 1,
                     TEST_NGINX_VALGRIND_SUPPRESSIONS => 't/runner/valgrind-nginx-core.supp');
    passes($r, 3) or next;
    unlike($r->{err}, qr/valgrind reported errors/,
           'real valgrind: no report for stock nginx with the suppressions')
        or diag $r->{err};
}

# --- runner selection (t/lib/Siteflow/Test.pm)

my $fake_tns = "$root/t/runner/fake-tns";
my $perl5lib = join ':', grep { defined && length } $fake_tns, $ENV{PERL5LIB};

$r = run_fixture("$F/select.fixture", label => 'stand-in Test::Nginx::Socket installed',
                 SITEFLOW_TEST_RUNNER => undef, PERL5LIB => $perl5lib);
passes($r);
announced($r, qr/^Test::Nginx::Socket 9\.99-selftest-double \(installed\)$/);
ok((grep { /^stand-in Test::Nginx::Socket ran TEST 1: hello/ } @{ $r->{ok} }),
   'an installed Test::Nginx::Socket runs the blocks');

$r = run_fixture("$F/select.fixture", label => 'stand-in installed, SITEFLOW_TEST_RUNNER=builtin',
                 PERL5LIB => $perl5lib);
passes($r);
announced($r, qr/^builtin Siteflow::TestRunner \(SITEFLOW_TEST_RUNNER=builtin\)$/);
ok((grep { /TEST 1: hello - status code ok$/ } @{ $r->{ok} }),
   'SITEFLOW_TEST_RUNNER=builtin ignores the installed Test::Nginx::Socket');

my $real_installed = system($^X, '-e',
    'exit(eval { require Test::Nginx::Socket; 1 } ? 0 : 1)') == 0;
if ($real_installed) {
    $r = run_fixture("$F/select.fixture", SITEFLOW_TEST_RUNNER => undef);
    announced($r, qr/^Test::Nginx::Socket .*\(installed\)$/);
} else {
    $r = run_fixture("$F/select.fixture", SITEFLOW_TEST_RUNNER => undef);
    passes($r);
    announced($r, qr/^builtin Siteflow::TestRunner \(Test::Nginx::Socket is not installed\)$/);

    $r = run_fixture("$F/select.fixture", SITEFLOW_TEST_RUNNER => 'real');
    isnt($r->{exit}, 0, 'SITEFLOW_TEST_RUNNER=real fails when Test::Nginx::Socket is missing');
    like($r->{err}, qr/Siteflow::Test: cannot load Test::Nginx::Socket/,
         'SITEFLOW_TEST_RUNNER=real says why');
}

# --- nothing is left running

my @left;
for my $cmdline (glob '/proc/[0-9]*/cmdline') {
    my $c = slurp($cmdline);
    push @left, $cmdline if index($c, $servroot) >= 0 && $c =~ /nginx/;
}
sleep 0.5 if @left;    # a daemon may still be finishing its exit
@left = grep { my $c = slurp($_); $c ne '' && index($c, $servroot) >= 0 } @left;
is(scalar @left, 0, 'no nginx of the selftest is left running')
    or diag "left: @left";

done_testing();
