# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: with the job queue on PostgreSQL (siteflow_queue), several
# nginx edges share one queue and nothing acknowledged is lost or created
# twice: hooks spread over two edges are all created exactly once; kill -9
# of one edge (master and workers) in the middle of deliveries leaves its
# jobs to the other edge once their leases run out, and an order whose
# create may have reached SiteFlow is looked up, not created again;
# PostgreSQL stopped mid-stream answers 503 to hooks (nothing
# acknowledged) and delivery resumes by itself when it is back; the jobs
# of one order run in order across edges.
#
# Like t/121-crash.t this file starts nginx itself (two of them, each with
# a prefix and port of its own, the same module and configuration), and
# the private PostgreSQL of Siteflow::Pg.  It is skipped, with the reason,
# when PostgreSQL's server package is missing or the module was built
# without libpq.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX ();
use Siteflow::Flow;
use Siteflow::Pg;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set (see docs/testing.md)'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

{
    my $so = (split ' ', $ENV{TEST_NGINX_LOAD_MODULES})[0];
    open my $fh, '<:raw', $so or plan skip_all => "$so: $!";
    local $/;
    my $bytes = <$fh>;
    plan skip_all => 'the module was built without PostgreSQL support '
        . '(libpq-dev missing when it was built)'
        unless $bytes =~ /PQconnectStart/;
}

if (my $why = pg_available()) {
    plan skip_all => $why;
}

pg_start();

my $PORT_A = MockUpstream::free_port();
my $PORT_B = MockUpstream::free_port();
$ENV{TEST_NGINX_SERVER_PORT} = $PORT_A;
$ENV{TEST_NGINX_FIXTURES} = "$Siteflow::Flow::ROOT/t/fixtures";

my (@edges, %edge);

sub http_conf {
    my (%o) = @_;
    my $ret = $o{retention} ? " index_retention=$o{retention}" : '';
    my $conc = $o{concurrency}
        ? "    siteflow_queue_concurrency $o{concurrency};\n" : '';
    return "    siteflow_zone sf:4m;\n"
         . "    siteflow_queue $ENV{TEST_NGINX_PG_URL} lease=3s$ret;\n"
         . "    siteflow_retry_backoff 100ms 500ms;\n" . $conc;
}

# a fresh scenario: new mocks, an empty queue, two edges started
sub scenario {
    my (%o) = @_;
    for my $e (@edges) { $e->stop }
    @edges = ();
    Siteflow::Flow::start_mocks();
    $o{mocks}->() if $o{mocks};
    pg_empty();
    my $server = storefront_conf(timeout => $o{timeout} // '2s');
    for my $n (qw(a b)) {
        $edge{$n} = edge_start(name => $n,
            port => $n eq 'a' ? $PORT_A : $PORT_B, workers => 2,
            http_config => http_conf(%o), config => $server);
        push @edges, $edge{$n};
    }
}

sub jobs_by_state {
    my %n = map { split /\|/ } pg_sql(
        'SELECT state, count(*) FROM siteflow_jobs GROUP BY state');
    my @names = qw(pending retrying done failed skipped);
    return join ', ', map { "$names[$_] " . ($n{$_} // 0) } 0 .. 4;
}

sub wait_done {
    my ($n, $timeout) = @_;
    return Siteflow::Flow::wait_until(sub { "$n jobs done (" . jobs_by_state() . ')' },
        sub {
            Siteflow::Flow::sync_lookups();
            pg_sql('SELECT count(*) FROM siteflow_jobs WHERE state = 2') >= $n
            && pg_sql('SELECT count(*) FROM siteflow_jobs '
                      . 'WHERE state IN (0, 1)') == 0;
        }, $timeout // 30);
}

# --------------------------------------------------------------------------

subtest 'two edges share the queue: hooks spread over both, each order '
      . 'created once' => sub {
    scenario();
    my @acc;
    for my $id (6001 .. 6012) {
        my $r = hook({ event => 'order_created', id => $id },
                     port => $id % 2 ? $PORT_A : $PORT_B);
        is($r->{status}, 202, "hook $id accepted by edge "
                              . ($id % 2 ? 'a' : 'b'));
        push @acc, $id if $r->{status} == 202;
    }
    is(wait_done(12), '', 'all jobs done');
    is(tally(orders => \@acc),
       "accepted 12\ncreated 12\nlost 0\nduplicated 0\n", 'tally');

    my @owners = pg_sql('SELECT count(*) FROM siteflow_jobs '
                        . 'WHERE lease_owner IS NOT NULL');
    is($owners[0], 0, 'no lease left behind');
    is(pg_sql("SELECT count(*) FROM siteflow_index WHERE state = 1 "
              . "AND siteflow_id <> ''"), 12,
       'the sent-orders index has the 12 orders with their SiteFlow ids');

    # the same order again: skipped by either edge, from the shared index
    my $r = hook({ event => 'order_created', id => 6001 }, port => $PORT_B);
    is($r->{status}, 200, 'order 6001 again at edge b: skipped');
    like($r->{body}, qr/"skipped"/, '... with the reason');
};

subtest 'kill -9 of one edge mid-delivery: the other edge takes its '
      . 'jobs over after the lease, nothing lost or duplicated' => sub {
    # at most 3 jobs in flight per edge: edge a cannot claim all ten
    # before edge b's consumer looks (then b would have nothing to lose)
    scenario(concurrency => 3, mocks => sub {
        Siteflow::Flow::stateful({ on => 'POST /api/order', status => 201,
                                   delay_ms => 1500, times => 6,
                                   json => { _id => '{{hex24}}' } });
    });
    my @acc;
    for my $id (6013 .. 6022) {
        my $r = hook({ event => 'order_created', id => $id },
                     port => $id % 2 ? $PORT_A : $PORT_B);
        push @acc, $id if $r->{status} == 202;
    }
    is(scalar @acc, 10, 'ten hooks accepted over both edges');

    my $bpids = $edge{b}->pids;
    my $pat = join '|', @$bpids;
    my $e = Siteflow::Flow::wait_until('edge b holds leases', sub {
        pg_sql("SELECT count(*) FROM siteflow_jobs WHERE lease_owner "
               . "~ '/($pat)/'") > 0 }, 10);
    is($e, '', 'edge b is delivering');
    my $held = pg_sql("SELECT count(*) FROM siteflow_jobs WHERE "
                      . "lease_owner ~ '/($pat)/'");
    $edge{b}->kill9;
    ok(!grep({ Siteflow::Pg::_alive($_) } @$bpids),
       "edge b: master and workers (@$bpids) gone");
    diag("edge b held $held leases when it was killed");

    is(wait_done(10, 40), '', 'edge a finished every job');
    is(tally(orders => \@acc),
       "accepted 10\ncreated 10\nlost 0\nduplicated 0\n", 'tally');
    like($edge{a}->error_log, qr/siteflow/, 'edge a logged its work')
        or diag($edge{a}->error_log);
};

subtest 'PostgreSQL stopped mid-stream: 503 while down, nothing '
      . 'acknowledged lost, delivery resumes by itself' => sub {
    scenario();
    my @acc;
    for my $id (6023 .. 6026) {
        my $r = hook({ event => 'order_created', id => $id },
                     port => $PORT_A);
        push @acc, $id if $r->{status} == 202;
    }
    pg_stop();
    my $t0 = time;
    my $r = hook({ event => 'order_created', id => 6027 }, port => $PORT_A);
    my $took = time - $t0;
    is($r->{status}, 503, 'hook while the database is down: 503');
    like($r->{body}, qr/"error"/, '... with a JSON error');
    ok($took < 6, sprintf('... answered in %.1f s (not hung)', $took));
    $r = hook({ event => 'order_created', id => 6028 }, port => $PORT_B);
    is($r->{status}, 503, 'and at the other edge too');

    pg_start();
    my $e = Siteflow::Flow::wait_until('a hook is accepted again', sub {
        my $r = hook({ event => 'order_created', id => 6029 },
                     port => $PORT_B);
        push @acc, 6029 if $r->{status} == 202;
        $r->{status} == 202 }, 20);
    is($e, '', 'hooks are accepted again without a restart');
    is(wait_done(scalar @acc, 30), '', 'every accepted job done');
    is(tally(orders => \@acc),
       'accepted ' . @acc . "\ncreated " . @acc . "\nlost 0\nduplicated 0\n",
       'tally');
};

subtest 'jobs of one order run in order across edges' => sub {
    scenario(mocks => sub {
        Siteflow::Flow::sf_rules({ on => 'POST /api/order', status => 201,
                                   delay_ms => 300,
                                   json => { _id => '{{hex24}}' } });
    });
    # created at edge a, deleted at edge b at once: the cancel must wait
    # for the create, whichever edge claims it
    my $r = hook({ event => 'order_created', id => 6030 }, port => $PORT_A);
    is($r->{status}, 202, 'order created: accepted at edge a');
    $r = hook({ event => 'order_deleted', id => 6030 }, port => $PORT_B);
    is($r->{status}, 202, 'order deleted: accepted at edge b');
    is(wait_done(2, 30), '', 'both jobs done');
    my @calls = map { "$_->{method} $_->{path}" }
                grep { $_->{path} =~ m{/order(?:/[^/]+/cancel.*)?$}
                       && $_->{method} =~ /POST|PUT/ }
                @{ mock_requests('siteflow') };
    my ($create) = grep { $calls[$_] eq 'POST /api/order' } 0 .. $#calls;
    my ($cancel) = grep { $calls[$_] =~ /cancel/ } 0 .. $#calls;
    ok(defined $create && defined $cancel && $create < $cancel,
       'SiteFlow saw the create before the cancel')
        or diag(join "\n", @calls);
};

subtest 'an edge that cannot renew its lease sends no create (another '
      . 'edge could have the job by then); the order is created once '
      . 'when the database is back' => sub {
    scenario(timeout => '5s', mocks => sub {
        # the validation takes 2.5 s: more than half the 3 s lease
        Siteflow::Flow::stateful({ on => 'POST /api/order/validate',
                                   status => 200, delay_ms => 2500,
                                   times => 1,
                                   json => { success => JSON::PP::true } });
    });
    $edge{b}->stop;
    my $r = hook({ event => 'order_created', id => 6001 }, port => $PORT_A);
    is($r->{status}, 202, 'hook accepted');
    is(wait_requests(siteflow => 'POST /api/order/validate', 1), '',
       'the job is validating');
    pg_stop();
    my $e = Siteflow::Flow::wait_until('the job ended without its create',
        sub { $edge{a}->error_log =~ /the create was not sent/ }, 15);
    is($e, '', 'the edge logged that it did not send the create')
        or diag(join "\n", grep { !/notice/ }
                   split /\n/, substr($edge{a}->error_log, -3000));
    is(scalar(grep { $_->{path} eq '/api/order' }
              @{ mock_requests('siteflow', 'POST *') }), 0,
       'no create reached SiteFlow while the lease was not renewed');
    pg_start();
    is(wait_done(1, 30), '', 'the job is done once the database is back');
    is(tally(orders => [6001]),
       "accepted 1\ncreated 1\nlost 0\nduplicated 0\n", 'tally');
};

subtest 'the index forgets an order after index_retention; a hook for '
      . 'it again looks SiteFlow up first and does not create it twice'
      => sub {
    scenario(retention => '1s', mocks => sub { Siteflow::Flow::stateful() });
    $edge{b}->stop;
    my $r = hook({ event => 'order_created', id => 6002 }, port => $PORT_A);
    is($r->{status}, 202, 'hook accepted');
    is(wait_done(1), '', 'created');
    my $e = Siteflow::Flow::wait_until('the entry is older than 1 s', sub {
        pg_sql("SELECT count(*) FROM siteflow_index "
               . "WHERE used_ms < siteflow_now_ms() - 1100") == 1 }, 10);
    is($e, '', 'the index entry is past index_retention');

    # worker 0 prunes a second after it starts, then every minute
    $edge{a}->stop;
    $edge{a}->start;
    $e = Siteflow::Flow::wait_until('the index forgot the order', sub {
        pg_sql('SELECT count(*) FROM siteflow_index') == 0 }, 10);
    is($e, '', 'pruned from the index');
    is(pg_sql('SELECT pruned_max || \' \' || pruned FROM siteflow_horizon'),
       '6002 1', 'the horizon remembers the highest order id forgotten');
    is(pg_sql('SELECT count(*) FROM siteflow_jobs'), 0,
       'the finished job older than index_retention went too');

    $r = hook({ event => 'order_created', id => 6002 }, port => $PORT_A);
    is($r->{status}, 202, 'the same order again: queued (the index '
                          . 'forgot it)');
    is(wait_done(1), '', 'its job is done');
    ok(scalar(grep { $_->{path} =~ m{/order/bysourceid/PN-6002$} }
              @{ mock_requests('siteflow', 'GET *') }),
       'SiteFlow was asked for PN-6002 first');
    is(tally(orders => [6002]),
       "accepted 1\ncreated 1\nlost 0\nduplicated 0\n",
       'created once, not twice');
};

subtest 'a database that takes the connection and never answers: nginx '
      . 'keeps serving, the hook gets 503 when the connect attempt ends' => sub {
    for my $e (@edges) { $e->stop }
    @edges = ();
    Siteflow::Flow::start_mocks();
    # accepts (the kernel's backlog) and never says a word
    my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp', Listen => 16, ReuseAddr => 1)
        or die "listener: $@\n";
    my $url = 'postgresql://siteflow@127.0.0.1:' . $hole->sockport
            . '/siteflow?sslmode=disable';
    my $e = edge_start(name => 'hole', port => $PORT_A, workers => 1,
        http_config => "    siteflow_zone sf:4m;\n"
                     . "    siteflow_queue $url lease=3s;\n",
        config => storefront_conf());
    push @edges, $e;

    my $t0 = time;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $r = hook({ event => 'order_created', id => 6003 },
                     port => $PORT_A);
        POSIX::_exit($r->{status} == 503 ? 0 : 1);
    }
    # for a second while the hook waits for the database
    my @ping;
    while (time - $t0 < 1 || @ping < 5) {
        my $s = time;
        my $r = Siteflow::Flow::http_request(port => $PORT_A,
            method => 'GET', path => '/ping', timeout => 3);
        push @ping, [$r->{status}, time - $s];
    }
    is(scalar(grep { $_->[0] != 200 || $_->[1] >= 0.5 } @ping), 0,
       'meanwhile /ping answers at once (' . @ping . ' times)')
        or diag(join ' ', map { "$_->[0]:$_->[1]" } @ping);
    waitpid $pid, 0;
    is($? >> 8, 0, 'the hook is answered 503 (nothing acknowledged)');
    ok(time - $t0 < 15, sprintf('... within %.1f s', time - $t0));
    close $hole;
};

subtest 'another session holds a lock while an edge sets up its '
      . 'connection: a deadlock there is an [error] and the next attempt '
      . 'goes through' => sub {
    for my $e (@edges) { $e->stop }
    @edges = ();
    Siteflow::Flow::start_mocks();
    pg_empty();
    my $e = edge_start(name => 'lock', port => $PORT_A, workers => 1,
        http_config => "    siteflow_zone sf:4m;\n"
                     . "    siteflow_queue $ENV{TEST_NGINX_PG_URL} pool=1 "
                     . "lease=3s;\n"
                     . "    siteflow_retry_backoff 100ms 500ms;\n",
        config => storefront_conf());
    push @edges, $e;
    my $r = hook({ event => 'order_created', id => 6001 }, port => $PORT_A);
    is($r->{status}, 202, 'the edge is up: a hook accepted');

    # an operator's session: TRUNCATE takes siteflow_jobs then
    # siteflow_index; this one takes them by hand, one at a time, and
    # leaves the deadlock check to the edge (its own check waits 100 s)
    my $s = pg_session();
    $s->send("SET deadlock_timeout = '100s';");
    $s->send('BEGIN;');
    $s->send('LOCK TABLE siteflow_jobs IN ACCESS EXCLUSIVE MODE;');
    my $held = "SELECT count(*) FROM pg_locks WHERE relation = "
             . "'siteflow_jobs'::regclass AND mode = 'AccessExclusiveLock'";
    is(Siteflow::Flow::wait_until(sub { 'the session holds siteflow_jobs' },
        sub { pg_sql("$held AND granted") == 1 }, 10), '',
       'a session holds siteflow_jobs');

    # the edge's connection is cut: its next one runs the setup SQL, whose
    # PREPAREs lock siteflow_index, then wait for siteflow_jobs
    pg_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           . "WHERE application_name = 'ngx_siteflow_module'");
    my $waits = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
              . "USING (pid) WHERE l.relation = 'siteflow_jobs'::regclass "
              . "AND NOT l.granted "
              . "AND a.application_name = 'ngx_siteflow_module'";
    is(Siteflow::Flow::wait_until(sub { 'the edge waits for siteflow_jobs' },
        sub { pg_sql($waits) >= 1 }, 10), '',
       'the edge\'s new connection waits in its set-up');
    $s->send('LOCK TABLE siteflow_index IN ACCESS EXCLUSIVE MODE;');
    $s->send("SELECT 'session got siteflow_index';");
    my $t0 = time;
    is(Siteflow::Flow::wait_until(sub { 'the session gets siteflow_index' },
        sub { pg_sql("SELECT count(*) FROM pg_locks WHERE relation = "
                     . "'siteflow_index'::regclass AND granted "
                     . "AND mode = 'AccessExclusiveLock'") == 1 }, 15), '',
       'the deadlock is found and the edge\'s set-up gives way');
    $s->send('ROLLBACK;');
    like($s->close, qr/session got siteflow_index/,
         'the session went on once the edge gave way');

    # until the next attempt (100 ms later) is up, a hook is not
    # acknowledged: 503, and PrintNow sends it again
    my @st;
    is(Siteflow::Flow::wait_until(sub { 'a hook accepted (' . "@st" . ')' },
        sub {
            $r = hook({ event => 'order_created', id => 6002 },
                      port => $PORT_A);
            push @st, $r->{status};
            $r->{status} == 202;
        }, 10), '', 'a hook is accepted again (the next attempt set the '
                    . 'connection up)');
    is(scalar(grep { $_ != 202 && $_ != 503 } @st), 0,
       'before that, 503 only (' . "@st" . ')');
    is(wait_done(2), '', 'both jobs done');
    is(tally(orders => [6001, 6002]),
       "accepted 2\ncreated 2\nlost 0\nduplicated 0\n", 'tally');
    my $log = $e->error_log;
    like($log, qr/\[error\].*the setup SQL met another session's lock on PostgreSQL: .*deadlock/,
         'the deadlock is logged as an [error] saying what happened');
    unlike($log, qr/\[(?:alert|crit|emerg)\]/, 'no [alert] or [crit]')
        or diag($log);
};

for my $e (@edges) { $e->stop }

done_testing();
