# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: no worker outlives its master.  When the master process is
# killed (kill -9 of the master alone, its workers left behind), every
# worker of an nginx with a spool exits at once and writes nothing more to
# the spool: the nginx started next on the same spool is its only writer,
# and it delivers what was accepted exactly once.  Stock nginx leaves such
# workers running (serving requests, and here delivering jobs and
# appending to the journal beside the new nginx).
#
# Like t/121-crash.t this file starts nginx itself (Siteflow::Flow).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Siteflow::Flow;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set (see docs/testing.md)'
    unless $ENV{TEST_NGINX_LOAD_MODULES};
plan skip_all => 'needs Linux (the parent-death signal)'
    unless $^O eq 'linux';

my $PORT = MockUpstream::free_port();
$ENV{TEST_NGINX_SERVER_PORT} = $PORT;
$ENV{TEST_NGINX_FIXTURES} = "$Siteflow::Flow::ROOT/t/fixtures";
my (@prefixes, @orphans);

sub start {
    my ($p) = @_;
    my $server = storefront_conf();
    $server =~ s/\$TEST_NGINX_SPOOL/$ENV{TEST_NGINX_SPOOL}/g;
    return nginx_start(prefix => $p, port => $PORT, workers => 2,
        http => "    siteflow_zone sf:4m;\n"
              . "    siteflow_spool $ENV{TEST_NGINX_SPOOL};\n"
              . "    siteflow_retry_backoff 100ms 500ms;\n",
        server => $server);
}

# name => "size mtime" of every file of the spool
sub spool_state {
    my %s;
    for my $f (glob "$ENV{TEST_NGINX_SPOOL}/*") {
        my @st = stat $f or next;
        $s{ $f =~ s{.*/}{}r } = "$st[7] $st[9]";
    }
    return join "\n", map { "$_ $s{$_}" } sort keys %s;
}

subtest 'kill -9 of the master alone, mid-delivery' => sub {
    Siteflow::Flow::start_mocks();
    my $p = tempdir('siteflow-orphan-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    push @prefixes, $p;
    ok(start($p), 'nginx started');
    # the create is answered after 3 s: the master dies while it runs
    stateful({ on => 'POST /api/order', status => 201, delay_ms => 3000,
               times => 1, json => { _id => '{{hex24}}' } });
    my $r = hook({ event => 'order_created', id => 6001 });
    is($r->{status}, 202, 'hook accepted');
    is(wait_requests(siteflow => 'POST /api/order', 1), '',
       'the create reached SiteFlow');

    my ($m, @w) = @{ nginx_pids($p) };
    is(scalar @w, 2, 'two workers');
    push @orphans, @w;
    kill 'KILL', $m;
    is(wait_until('master gone', sub { !kill 0, $m }, 10), '', 'master killed');
    my $before = spool_state();
    is(wait_until('every worker gone', sub { !grep { kill 0, $_ } @w }, 10),
       '', 'the workers exit when their master is killed');

    # a worker left running would record the create's time-out (2 s) or
    # its answer (3 s): a negative, so a fixed wait past both
    sleep 4;
    is(spool_state(), $before, 'the spool is not written after the kill');

    kill 'KILL', grep { kill 0, $_ } @w;    # (the old code's orphans)
    unlink "$p/logs/nginx.pid";
    ok(eval { start($p) }, 'nginx starts again on the same spool')
        or diag $@;
    is(wait_jobs('idle', sub {
           !grep { $_->{state} =~ /pending|retrying|running/ } @{ $_[0] } }),
       '', 'queue idle');
    is(tally(orders => [6001]),
       "accepted 1\ncreated 1\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    nginx_stop($p);
    open my $fh, '<', "$p/logs/error.log";
    my @bad = grep { /\[(?:alert|emerg)\]/ } <$fh>;
    is(scalar @bad, 0, 'no alert in the error log') or diag(join '', @bad);
};

END {
    for my $p (@prefixes) {
        my $pids = nginx_pids($p);
        kill 'KILL', @$pids if @$pids;
    }
    kill 'KILL', grep { kill 0, $_ } @orphans;
}

done_testing();
