# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: process and disk faults lose nothing that was acknowledged and
# create nothing twice: kill -9 of the delivering worker, kill -9 of the
# whole nginx (master and workers) followed by a restart, a reload (HUP),
# a stop/start with a backlog, all in the middle of deliveries; a full
# spool answers 503 with a JSON error and acknowledges nothing, then
# recovers by itself; a torn record at the journal's tail is never
# delivered as half a job while everything before it is.
#
# These scenarios need nginx stopped, killed and restarted around the
# requests, which the data-driven runners cannot do, so this file starts
# nginx itself (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES) with a prefix
# of its own, two workers, and the mocks of Siteflow::Flow (stateful mock
# SiteFlow: see t/120-faults.t).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(time sleep);
use Siteflow::Flow;

my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set (see docs/testing.md)'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

# SITEFLOW_TEST_QUEUE=postgresql (make prove-pg): the jobs are kept in
# the private PostgreSQL of Siteflow::Pg ("siteflow_queue", lease 3 s);
# the subtests about the spool's own files and zone are skipped
my $PG = ($ENV{SITEFLOW_TEST_QUEUE} // '') eq 'postgresql';

if ($PG) {
    require Siteflow::Pg;
    my $why = Siteflow::Pg::pg_available();
    plan skip_all => $why if $why;
    Siteflow::Pg::pg_start();
}

sub spool_only {
    plan skip_all => 'about the spool (SITEFLOW_TEST_QUEUE=postgresql)'
        if $PG;
}

my $PORT = MockUpstream::free_port();
$ENV{TEST_NGINX_SERVER_PORT} = $PORT;     # Flow's hook/admin calls
$ENV{TEST_NGINX_FIXTURES} = "$Siteflow::Flow::ROOT/t/fixtures";
my @prefixes;

# a fresh scenario: new mocks, spool, prefix; nginx started
sub scenario {
    my (%o) = @_;
    Siteflow::Flow::start_mocks();
    Siteflow::Pg::pg_empty() if $PG;
    my $p = tempdir('siteflow-crash-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    push @prefixes, $p;
    $o{before}->($p) if $o{before};
    my $pid = eval { start($p, %o) };
    BAIL_OUT("cannot start nginx: $@") unless $pid;
    return $p;
}

sub start {
    my ($p, %o) = @_;
    my $server = storefront_conf(extra => $o{extra} // '');
    $server =~ s/\$TEST_NGINX_SPOOL/$ENV{TEST_NGINX_SPOOL}/g;
    return nginx_start(prefix => $p, port => $PORT, workers => 2,
        http => "    siteflow_zone sf:4m;\n"
              . ($PG ? "    siteflow_queue $ENV{TEST_NGINX_PG_URL} lease=3s;\n"
                     : "    siteflow_spool $ENV{TEST_NGINX_SPOOL}"
                       . ($o{spool_args} ? " $o{spool_args}" : '') . ";\n")
              . "    siteflow_retry_backoff "
              . ($o{backoff} // '100ms 500ms') . ";\n"
              . ($o{http} // ''),
        server => $server);
}

sub lines_are {
    my ($got, $want, $name) = @_;
    is(join("\n", @$got) . "\n", $want, $name);
}

# $allow: a regex of alert/crit lines that the scenario causes on purpose
sub no_alerts {
    my ($p, $name, $allow) = @_;
    open my $fh, '<', "$p/logs/error.log" or return;
    my @bad = grep { /\[(?:alert|crit|emerg)\]/ && !/exited on signal 9/
                     && !($allow && /$allow/) } <$fh>;
    is(scalar @bad, 0, "$name: no alert/crit in the error log")
        or diag(join '', @bad[0 .. ($#bad < 5 ? $#bad : 5)]);
}

# the worker processes holding a TCP connection to 127.0.0.1:$port
sub workers_connected_to {
    my ($p, $port) = @_;
    my (%inode, @found);
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        while (<$fh>) {
            my @c = split;
            next unless ($c[2] // '') =~ /:([0-9A-F]{4})$/ && hex($1) == $port;
            $inode{ $c[9] } = 1;
        }
    }
    my ($m, @w) = @{ nginx_pids($p) };
    for my $w (@w) {
        for my $fd (glob "/proc/$w/fd/*") {
            my $l = readlink($fd) // next;
            if ($l =~ /^socket:\[(\d+)\]$/ && $inode{$1}) {
                push @found, $w;
                last;
            }
        }
    }
    return @found;
}

sub worker_connected_to { (workers_connected_to(@_))[0] }

# the pid of the worker that logged "worker N of M delivers jobs" last
sub delivering_worker {
    my ($p, $n) = @_;
    open my $fh, '<', "$p/logs/error.log" or return undef;
    my $pid;
    while (<$fh>) {
        $pid = $1 if /\] (\d+)#\d+: siteflow: worker $n of \d+ delivers jobs/;
    }
    return $pid;
}

# ---------------------------------------------------------------------------
subtest 'kill -9 of the worker delivering a create' => sub {
    my $p = scenario();
    stateful({ on => 'POST /api/order', status => 201, delay_ms => 3000,
               times => 1, json => { _id => '{{hex24}}' } });
    my $r = hook({ event => 'order_created', id => 6001 });
    is($r->{status}, 202, 'hook accepted');
    is(wait_requests(siteflow => 'POST /api/order', 1), '',
       'the create reached SiteFlow');
    my $w = worker_connected_to($p, $Siteflow::Flow::Mock{siteflow}->port);
    ok($w, 'found the worker with the connection to SiteFlow')
        or return;
    kill 'KILL', $w;
    is(wait_until("worker $w gone", sub { !kill 0, $w }), '', "worker $w killed");
    $r = hook({ event => 'order_created', id => 6002 });
    is($r->{status}, 202, 'a new hook is accepted after the crash');
    is(wait_until('every accepted order created', sub {
           tally(orders => [6001, 6002]) =~ /^lost 0$/m }, 30), '',
       'both orders created');
    my $e = wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } });
    is($e, '', 'queue idle');
    is(tally(orders => [6001, 6002]),
       "accepted 2\ncreated 2\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    ok(scalar @{ mock_requests('siteflow', 'GET /api/order/bysourceid/PN-6001') },
       'the interrupted create was looked up before anything else');
    nginx_stop($p);
    no_alerts($p, 'worker kill');
};

# ---------------------------------------------------------------------------
subtest 'kill -9 of the master (and its workers) mid-delivery, then restart' => sub {
    my $p = scenario();
    stateful({ on => 'POST /api/order', status => 201, delay_ms => 2000,
               times => 3, json => { _id => '{{hex24}}' } },
             { on => 'POST /api/order/validate', delay_ms => 1500, times => 2,
               json => { success => JSON::PP::true } });
    my @acc;
    for my $id (6001 .. 6006) {
        my $r = hook({ event => 'order_created', id => $id });
        push @acc, $id if $r->{status} == 202;
    }
    is(scalar @acc, 6, '6 hooks accepted');
    is(wait_requests(siteflow => 'POST /api/order', 1), '', 'deliveries under way');
    ok(nginx_kill($p) >= 3, 'master and workers killed with SIGKILL');
    my $pid = eval { start($p) };
    ok($pid, 'nginx starts again on the same spool') or diag $@;
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '', 'all created');
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'queue idle');
    is(tally(orders => \@acc), "accepted 6\ncreated 6\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    nginx_stop($p);
    no_alerts($p, 'master kill');
};

# ---------------------------------------------------------------------------
subtest 'nginx -s reload (HUP) mid-delivery' => sub {
    my $p = scenario();
    stateful({ on => 'POST /api/order', status => 201, delay_ms => 1500,
               times => 3, json => { _id => '{{hex24}}' } });
    my @acc;
    for my $id (6001 .. 6006) {
        my $r = hook({ event => 'order_created', id => $id });
        push @acc, $id if $r->{status} == 202;
    }
    is(scalar @acc, 6, '6 hooks accepted');
    is(wait_requests(siteflow => 'POST /api/order', 1), '', 'deliveries under way');
    my ($m, @old) = @{ nginx_pids($p) };
    kill 'HUP', $m;
    is(wait_until('new workers', sub {
           my ($mm, @w) = @{ nginx_pids($p) };
           my %o = map { $_ => 1 } @old;
           2 <= grep { !$o{$_} } @w }, 15), '', 'reloaded: new workers');
    my $r = hook({ event => 'order_created', id => 6007 });
    push @acc, 6007 if $r->{status} == 202;
    is($r->{status}, 202, 'a hook during the reload is accepted');
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '', 'all created');
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'queue idle');
    # old workers finish or abandon their transfers: either way no duplicate
    is(wait_until('old workers gone', sub { !grep { kill 0, $_ } @old }, 30), '',
       'old workers exited');
    is(tally(orders => \@acc), "accepted 7\ncreated 7\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    nginx_stop($p);
    no_alerts($p, 'reload');
};

# ---------------------------------------------------------------------------
# issue 11.1: 120 hooks, 8 at a time, SiteFlow answering 503 to everything
# until hook 96, kill -9 of worker 0 at hook 40, a reload at hook 56, then
# one create taken in and its connection reset.  A new worker 0 (after the
# crash, after the reload) starts up to siteflow_queue_concurrency jobs at
# once; they all failed, and each failure doubled the storefront breaker's
# backoff, which so reached siteflow_retry_backoff's maximum (here 60s)
# at once: nothing was delivered for up to a minute after SiteFlow was
# back (with the default 1s 300s: 150 to 300 s).  The backoff now grows
# with the failed probes only.
sub worker0 {
    my ($p) = @_;
    my $w;
    if (open my $fh, '<', "$p/logs/error.log") {
        while (<$fh>) {
            $w = $1 if /\[debug\] (\d+)#\d+: .*siteflow: job \d+ \(\w+\) starts/;
        }
    }
    return $w if $w && kill 0, $w;
    return worker_connected_to($p, $Siteflow::Flow::Mock{printnow}->port)
        // worker_connected_to($p, $Siteflow::Flow::Mock{siteflow}->port);
}

subtest 'outage + kill -9 of worker 0 + reload: the queue resumes when SiteFlow is back' => sub {
    for my $round (1 .. 2) {
        my $p = scenario(backoff => '100ms 60s');
        my @ids = (7001 .. 7120);
        pn_rules(map { { on => "GET /api/v2/order/$_",
                         json => Siteflow::Flow::pn_order($_) } } @ids);
        stateful({ on => '* /api/*', status => 503,
                   json => { success => JSON::PP::false } });
        my (@acc, %ev);
        for (my $i = 0; $i < @ids; $i += 8) {
            my @kids;
            for my $id (@ids[$i .. $i + 7]) {
                my $pid = fork // die "fork: $!";
                if (!$pid) {
                    my $r = hook({ event => 'order_created', id => $id });
                    POSIX::_exit($r->{status} == 202 ? 0 : 1);
                }
                push @kids, [$pid, $id];
            }
            for my $k (@kids) {
                waitpid $k->[0], 0;
                push @acc, $k->[1] if $? == 0;
            }
            if ($i == 32) {
                my $w = worker0($p);
                $ev{kill} = $w && kill('KILL', $w);
            } elsif ($i == 48) {
                my ($m) = @{ nginx_pids($p) };
                $ev{reload} = kill 'HUP', $m;
            } elsif ($i == 88) {
                # the first create is taken in, its answer lost
                stateful({ on => 'POST /api/order', action => 'reset',
                           times => 1 });
                $ev{up} = 1;
            }
            sleep 0.3;
        }
        ok($ev{kill} && $ev{reload} && $ev{up},
           "round $round: kill -9 of worker 0, reload, SiteFlow back");
        is(scalar @acc, 120, "round $round: 120 hooks accepted");
        is(wait_until('every accepted order created', sub {
               tally(orders => \@acc) =~ /^lost 0$/m }, 20), '',
           "round $round: all created within 20 s of SiteFlow's return")
            or diag(tally(orders => \@acc));
        is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
           '', "round $round: queue idle");
        is(tally(orders => \@acc), "accepted 120\ncreated 120\nlost 0\nduplicated 0\n",
           "round $round: accepted vs created vs duplicated");
        nginx_stop($p);
        no_alerts($p, "round $round");
    }
};

# ---------------------------------------------------------------------------
subtest 'a reload that resizes siteflow_spool is refused; the old configuration runs on' => sub {
    spool_only();
    my $p = scenario();
    stateful();
    my @acc;
    my $r = hook({ event => 'order_created', id => 6001 });
    push @acc, 6001 if $r->{status} == 202;
    is(wait_until('both workers running', sub {
           my ($mm, @w) = @{ nginx_pids($p) }; @w == 2 }, 15), '',
       'two workers');
    my ($m, @old) = @{ nginx_pids($p) };

    open my $in, '<', "$p/conf/nginx.conf" or die "$p/conf/nginx.conf: $!";
    my $conf = do { local $/; <$in> };
    close $in;
    ok($conf =~ s/(siteflow_spool \S+);/$1 size=2m;/, 'spool resized in the configuration');
    open my $out, '>', "$p/conf/nginx.conf" or die "$p/conf/nginx.conf: $!";
    print $out $conf;
    close $out;

    kill 'HUP', $m;
    is(wait_until('the reload to be refused', sub {
           open my $fh, '<', "$p/logs/error.log" or return 0;
           grep { /\[emerg\].*the size of "siteflow_spool" cannot change on reload; restart nginx to resize it/ } <$fh> }, 15),
       '', 'the reload is refused with the reason');
    my ($m2, @now) = @{ nginx_pids($p) };
    is(join(',', sort @now), join(',', sort @old), 'the same workers run on');

    $r = hook({ event => 'order_created', id => 6002 });
    push @acc, 6002 if $r->{status} == 202;
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '', 'all created');
    is(tally(orders => \@acc), "accepted 2\ncreated 2\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    nginx_stop($p);
    no_alerts($p, 'resize', qr/cannot change on reload/);
};

# ---------------------------------------------------------------------------
subtest 'stop with a backlog, start: delivered once, each looked up before its create' => sub {
    my $p = scenario();
    stateful();
    mock_down('siteflow');
    my @acc;
    for my $id (6001 .. 6005) {
        my $r = hook({ event => 'order_created', id => $id });
        push @acc, $id if $r->{status} == 202;
    }
    is(scalar @acc, 5, '5 hooks accepted while SiteFlow is down');
    # the storefront's breaker lets one job at a time try: the others wait
    is(wait_jobs('all waiting, one retried', sub {
           5 == grep({ $_->{state} =~ /^(?:pending|retrying)$/ } @{ $_[0] })
           && grep { $_->{attempts} >= 2 } @{ $_[0] } }), '',
       'all waiting, one retried');
    is(nginx_stop($p), '', 'nginx -s quit (graceful stop)');
    mock_up('siteflow');
    ok(eval { start($p) }, 'started again') or diag $@;
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '', 'all created');
    is(tally(orders => \@acc), "accepted 5\ncreated 5\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    # after a restart an unfinished order job of the spool looks up
    # before creating (on PostgreSQL only one whose lease ran out does)
    if ($PG) {
        nginx_stop($p);
        no_alerts($p, 'stop/start');
        return;
    }
    my @first;
    for my $q (@{ mock_requests('siteflow') }) {
        my ($src) = $q->{path} =~ m{/bysourceid/(.+)$};
        $src //= ($q->{method} eq 'POST' && $q->{path} =~ m{/order$})
            ? 'create:' . ((json_of($q->{body}) // {})->{orderData}{sourceOrderId} // '') : undef;
        push @first, $src if defined $src;
    }
    for my $id (@acc) {
        my ($i) = grep { $first[$_] =~ /(?:^|:)PN-$id$/ } 0 .. $#first;
        is($first[$i // 0] // '', "PN-$id", "PN-$id looked up before its create");
    }
    nginx_stop($p);
    no_alerts($p, 'stop/start');
};

# ---------------------------------------------------------------------------
subtest 'compaction (segment=64k): old segments replaced by a snapshot, then stop/start: delivered once' => sub {
    spool_only();
    # (one job at a time retries behind the storefront's breaker: a short
    # backoff has its state records fill the segment within seconds)
    my %args = (spool_args => 'segment=64k', backoff => '10ms 20ms');
    my $p = scenario(%args);
    stateful();
    mock_down('siteflow');
    my @acc;
    for my $id (6001 .. 6030) {
        my $r = hook({ event => 'order_created', id => $id });
        push @acc, $id if $r->{status} == 202;
    }
    is(scalar @acc, 30, '30 hooks accepted while SiteFlow is down');
    my $spool = $ENV{TEST_NGINX_SPOOL};
    # every retry writes a state record: the first segment fills, a
    # snapshot replaces it
    is(wait_until('a snapshot, the first segment gone', sub {
           my @snap = glob("$spool/snapshot-*.sfq");
           @snap && !-e "$spool/journal-0000000000000001.sfq" }, 60),
       '', 'compacted: ' . join(' ', map { s{.*/}{}r } glob("$spool/*")));
    is(nginx_stop($p), '', 'nginx -s quit');
    mock_up('siteflow');
    ok(eval { start($p, %args) }, 'started again from the snapshot') or diag $@;
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 60), '', 'all created')
        or diag(join "\n", map { "$_->{id} $_->{order_id} $_->{state} "
                                  . "$_->{attempts} $_->{last_error}" }
                            @{ admin_jobs() || [] });
    is(tally(orders => \@acc), "accepted 30\ncreated 30\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    nginx_stop($p);
    no_alerts($p, 'compaction');
};

# a scenario whose spool is a 1 MB tmpfs (to be filled up): its prefix
# and the spool; the subtest is skipped without root or a mountable tmpfs
# (and with PostgreSQL)
sub tmpfs_scenario {
    spool_only();
    plan skip_all => 'needs root to mount a 1 MB tmpfs on the spool (we are uid ' . $> . ')'
        if $> != 0;
    my $spool;
    my $p = scenario(before => sub {
        $spool = $ENV{TEST_NGINX_SPOOL};
        mkdir $spool;
        system('mount', '-t', 'tmpfs', '-o', 'size=1m', 'sf-spool-test', $spool) == 0
            or plan skip_all => "cannot mount a tmpfs on $spool (no CAP_SYS_ADMIN?)";
    });
    return ($p, $spool);
}

# ---------------------------------------------------------------------------
subtest 'spool full: 503 JSON, nothing acknowledged; recovers when space returns' => sub {
    my ($p, $spool) = tmpfs_scenario();
    my $filler = "$spool/filler";
    # fill the file system, leaving nothing for a journal record
    system("dd if=/dev/zero of=$filler bs=4k 2>/dev/null");
    my @refused;
    for my $id (6001 .. 6003) {
        my $r = hook({ event => 'order_created', id => $id });
        is($r->{status}, 503, "hook $id: 503 while the spool is full");
        like($r->{body}, qr/^\{"error":"[^"]+"\}\s*$/, "hook $id: JSON error");
        is($r->{headers}{'content-type'}, 'application/json', 'JSON type');
    }
    my $r = postback({ event => 'printready', sourceOrderId => 'PN-6001' });
    ok($r->{status} == 503 || $r->{status} == 404, "postback refused ($r->{status})");
    # issue 11.4: each refused write used to start a new (empty) segment
    # and log one crit line: 30 more refused hooks, the segment is reused,
    # the message rate-limited
    my $refused = 0;
    for (1 .. 30) {
        $refused++ if hook({ event => 'order_created', id => 6001 })->{status} == 503;
    }
    is($refused, 30, '30 more hooks refused with 503');
    my @segs = glob "$spool/journal-*.sfq";
    cmp_ok(scalar @segs, '<=', 2, 'no new segment per refused write: '
           . scalar(@segs) . ' segment(s)');
    my @crit = do { open my $fh, '<', "$p/logs/error.log"; grep { /\[crit\].*records were not made durable/ } <$fh> };
    ok(@crit >= 1 && @crit <= 4, 'the crit line is rate-limited: ' . scalar(@crit)
       . ' for 34 refused writes by 2 workers');
    unlink $filler;
    my @acc;
    for my $id (6004 .. 6006) {
        my $r = hook({ event => 'order_created', id => $id });
        is($r->{status}, 202, "hook $id accepted once space is back");
        push @acc, $id if $r->{status} == 202;
    }
    is(wait_until('accepted orders created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '', 'created');
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'queue idle');
    is(tally(orders => \@acc), "accepted 3\ncreated 3\nlost 0\nduplicated 0\n",
       'only the acknowledged orders were created');
    my $jobs = admin_jobs() // [];
    is(scalar(grep { $_->{order_id} =~ /^600[123]$/ } @$jobs), 0,
       'no job for the refused hooks');
    like(do { local (@ARGV, $/) = "$p/logs/error.log"; <> },
         qr/\[notice\].*the spool "\Q$spool\E" takes records again/,
         'the recovery is logged');
    nginx_stop($p);
    system('umount', $spool);
    # a failed journal write is logged at crit, as nginx core does
    no_alerts($p, 'spool full', qr/No space left on device|\(28:/);
};

# ---------------------------------------------------------------------------
subtest 'spool full: a refused postback of a sent order is not a duplicate when sent again' => sub {
    my ($p, $spool) = tmpfs_scenario();
    # the order is in the index; then the file system fills up, and hooks
    # go on until the journal's last page is used up too
    send_and_wait(6011);
    my $filler = "$spool/filler";
    system("dd if=/dev/zero of=$filler bs=4k 2>/dev/null");
    my $full = 0;
    for my $i (1 .. 200) {
        if (hook({ event => 'order_created', id => 6100 + $i })->{status} == 503) {
            $full = 1;
            last;
        }
    }
    ok($full, 'the spool refuses hooks (503)');
    my $r = postback({ event => 'printready', sourceOrderId => 'PN-6011' });
    is($r->{status}, 503, 'a postback of the sent order: 503 while the spool is full');
    # what it would have taken in the index is given back: the sender's
    # retry is judged as the first attempt was, not as its duplicate
    unlink $filler;
    $r = postback({ event => 'printready', sourceOrderId => 'PN-6011' });
    is($r->{status}, 200, 'the same postback once space is back: 200');
    like($r->{body}, qr/^\{"job":"\d+"\}/, 'a job, not a duplicate: ' . $r->{body});
    is(wait_requests(printnow => 'PATCH /api/v2/order/6011/status', 1), '',
       'its PrintNow update is made');
    $r = postback({ event => 'printready', sourceOrderId => 'PN-6011' });
    like($r->{body}, qr/duplicate/, 'sent a third time: now a duplicate');
    nginx_stop($p);
    system('umount', $spool);
    no_alerts($p, 'spool full (postback)', qr/No space left on device|\(28:/);
};

# ---------------------------------------------------------------------------
# a write that the full file system cuts short (the journal's last page had
# room for part of the batch) is cut back to where it began: nothing torn
# is left for the next batch to follow, and a restart reads the journal
# without a bad record, every acknowledged order delivered once
subtest 'spool full: a write cut short is cut back; restarted, nothing torn' => sub {
    my ($p, $spool) = tmpfs_scenario();
    pn_rules(map { { on => "GET /api/v2/order/$_", json => Siteflow::Flow::pn_order($_) } }
             6201 .. 6403);
    my @acc;
    my $r = hook({ event => 'order_created', id => 6201 });
    push @acc, 6201 if $r->{status} == 202;
    my $filler = "$spool/filler";
    system("dd if=/dev/zero of=$filler bs=4k 2>/dev/null");
    # hooks (and their deliveries' records) fill the journal's last page;
    # a write that finds part of a record's room is cut short
    my $refused;
    for my $id (6202 .. 6400) {
        $r = hook({ event => 'order_created', id => $id });
        if ($r->{status} == 202) {
            push @acc, $id;
            next;
        }
        $refused = $id;
        last;
    }
    ok($refused, "the spool refuses a hook once full ($refused)");
    unlink $filler;
    for my $id (6401 .. 6403) {
        $r = hook({ event => 'order_created', id => $id });
        is($r->{status}, 202, "hook $id accepted once space is back");
        push @acc, $id if $r->{status} == 202;
    }
    is(nginx_stop($p), '', 'nginx stopped');
    ok(eval { start($p) }, 'nginx starts again on the spool') or diag $@;
    my $log = do { local (@ARGV, $/) = "$p/logs/error.log"; <> };
    unlike($log, qr/damaged|bad record|resynchron/i, 'no damaged bytes read at the start');
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 60), '', 'all created');
    is(tally(orders => \@acc), 'accepted ' . @acc . "\ncreated " . @acc
       . "\nlost 0\nduplicated 0\n", 'each accepted order created once');
    is(scalar @{ mock_requests('printnow', "GET /api/v2/order/$refused") }, 0,
       'the refused hook was never performed');
    nginx_stop($p);
    system('umount', $spool);
    no_alerts($p, 'spool full (cut short)', qr/No space left on device|\(28:/);
};

# ---------------------------------------------------------------------------
subtest 'a torn record at the journal tail' => sub {
    spool_only();
    my $p = scenario();
    stateful();
    mock_down('siteflow');
    my @acc;
    for my $id (6001 .. 6003) {
        my $r = hook({ event => 'order_created', id => $id });
        push @acc, $id if $r->{status} == 202;
    }
    is(scalar @acc, 3, '3 hooks accepted');
    is(nginx_stop($p), '', 'nginx stopped');
    my $spool = $ENV{TEST_NGINX_SPOOL};
    my ($last) = sort { -M $a <=> -M $b || $b cmp $a } glob "$spool/journal-*.sfq";
    ok($last, 'a journal segment exists') or return;
    my $size = -s $last;
    # half of a JOB record for order 6009: a whole header announcing the
    # payload, then only half of the payload (what a crash mid-write leaves)
    my $payload = '{"kind":"order","storefront":"shop1","order_key":"6009",'
        . '"steps":[{"step":"fetch","order_id":"6009"}]}';
    my $hdr = pack('a4 v v V V Q< Q<', 'SFQ1', 1, 0, length $payload,
                   0xdeadbeef, 999999, int(time * 1000));
    open my $fh, '>>:raw', $last or die "$last: $!";
    print $fh $hdr, substr($payload, 0, length($payload) / 2);
    close $fh;
    mock_up('siteflow');
    ok(eval { start($p) }, 'nginx starts on the torn spool') or diag $@;
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '', 'all created');
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'queue idle');
    is(tally(orders => \@acc), "accepted 3\ncreated 3\nlost 0\nduplicated 0\n",
       'the complete jobs delivered once, the torn one never');
    is(scalar @{ mock_requests('printnow', 'GET /api/v2/order/6009') }, 0,
       'nothing of the torn job was performed');
    my $jobs = admin_jobs() // [];
    is(scalar(grep { $_->{order_id} eq '6009' || $_->{id} eq '999999' } @$jobs), 0,
       'the torn job is not in the queue');
    nginx_stop($p);
    no_alerts($p, 'torn tail');
};

# ---------------------------------------------------------------------------
# a journal or snapshot that is not a regular file stops nginx -t and the
# start with an emerg naming the file (a FIFO used to hang the master in
# open()); never a start with an empty queue.  EACCES/EIO are not tested:
# the tests run as root, which reads any file.
subtest 'a spool file that cannot be read stops nginx -t and the start' => sub {
    spool_only();
    for my $case (
        [ 'journal-0000000000000002.sfq', 'a FIFO',
          sub { POSIX::mkfifo($_[0], 0600) or die "mkfifo: $!" } ],
        [ 'journal-0000000000000002.sfq', 'a directory',
          sub { mkdir $_[0] or die "mkdir: $!" } ],
        [ 'snapshot-0000000000000001.sfq', 'cannot be read',
          sub { symlink "$_[0].gone", $_[0] or die "symlink: $!" } ],
        [ 'journal-0000000000000002.sfq', 'a device',
          sub { system('mknod', $_[0], 'c', '1', '3') == 0
                    or symlink('/dev/null', $_[0]) or die "mknod: $!" } ],
    ) {
        my ($name, $what, $make) = @$case;
        Siteflow::Flow::start_mocks();
        my $p = tempdir('siteflow-crash-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        push @prefixes, $p;
        my $spool = $ENV{TEST_NGINX_SPOOL};
        # a valid spool first (one accepted job), then the bad file
        ok(eval { start($p) }, "$what: nginx starts") or next;
        stateful();
        mock_down('siteflow');
        is(hook({ event => 'order_created', id => 6001 })->{status}, 202,
           "$what: a hook accepted");
        is(nginx_stop($p), '', "$what: nginx stopped");
        $make->("$spool/$name");
        for my $t ([ '-t', 'nginx -t' ], [ '', 'start' ]) {
            my $out = `timeout 10 $bin $t->[0] -p $p/ -c $p/conf/nginx.conf 2>&1`;
            my $rc = $? >> 8;
            isnt($rc, 0, "$what: $t->[1] fails") or diag $out;
            isnt($rc, 124, "$what: $t->[1] does not hang");
            my $log = $out . (-e "$p/logs/error.log"
                ? do { local (@ARGV, $/) = "$p/logs/error.log"; <> } : '');
            like($log, qr/\[emerg\].*spool file "\Q$spool\E\/\Q$name\E" .*\Q$what\E/,
                 "$what: $t->[1]: emerg names the file");
        }
        my $pids = nginx_pids($p);
        kill 'KILL', @$pids if @$pids;
        # moved away, nginx starts and the accepted job is still there
        rename "$spool/$name", "$p/$name.moved" or unlink "$spool/$name"
            or rmdir "$spool/$name";
        ok(eval { start($p) }, "$what: moved away, nginx starts") or diag $@;
        my $jobs = admin_jobs() // [];
        is(scalar(grep { $_->{order_id} eq '6001' } @$jobs), 1,
           "$what: the accepted job is recovered");
        nginx_stop($p);
    }
};

# ---------------------------------------------------------------------------
# issue 11.2: one flipped byte in the middle of the journal ended its scan:
# every later record was ignored (accepted jobs lost, index entries gone so
# an order_updated created the order again, a repeated "shipped" postback
# updated PrintNow again) and job ids were given again
subtest 'a flipped byte in the middle of the journal: resynchronised, nothing lost or repeated' => sub {
    spool_only();
    my $p = scenario();
    stateful();
    my (@acc, %job);
    for my $id (6001 .. 6004) {
        my $r = hook({ event => 'order_created', id => $id });
        push @acc, $id if $r->{status} == 202;
        $job{$id} = job_of($r);
    }
    is(wait_until('4 orders created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '', '4 orders created');
    # the mock has the creates before the module has written their outcome
    # (and so the index entry the postback needs)
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'the 4 jobs done');
    my $r = postback({ event => 'shipped', sourceOrderId => 'PN-6003',
                       trackingNumber => 'T6003', shipDate => '2024-05-02' });
    is($r->{status}, 200, 'shipped postback accepted');
    is(wait_requests(printnow => 'PATCH /api/v2/order/6003/shipped', 1), '',
       'PrintNow told once');
    mock_down('siteflow');
    for my $id (6005, 6006) {
        my $r = hook({ event => 'order_created', id => $id });
        push @acc, $id if $r->{status} == 202;
        $job{$id} = job_of($r);
    }
    is(scalar @acc, 6, '6 hooks accepted');
    is(wait_idle_or_retrying(), '', 'the last two waiting for SiteFlow');
    is(nginx_stop($p), '', 'nginx stopped');

    # flip one byte in the middle of order 6002's JOB record
    my $spool = $ENV{TEST_NGINX_SPOOL};
    my ($file, $at, $next);
    for my $f (sort glob "$spool/journal-*.sfq") {
        open my $fh, '<:raw', $f or die "$f: $!";
        my $d = do { local $/; <$fh> };
        my $off = 0;
        while ($off + 32 <= length $d) {
            my ($magic, $type, undef, $len) = unpack 'a4 v v V', substr($d, $off, 12);
            last unless $magic eq 'SFQ1';
            my $size = 32 + (($len + 7) & ~7);
            if ($type == 1 && substr($d, $off + 32, $len) =~ /"o":"6002"/) {
                ($file, $at, $next) = ($f, $off + 32 + int($len / 2), $off + $size);
            }
            $off += $size;
        }
        last if $file;
    }
    ok($file && $next < -s $file, 'order 6002\'s JOB record found, records after it')
        or return;
    open my $fh, '+<:raw', $file or die "$file: $!";
    seek $fh, $at, 0;
    read $fh, my $c, 1;
    seek $fh, $at, 0;
    print $fh chr(ord($c) ^ 0x20);
    close $fh;

    mock_up('siteflow');
    ok(eval { start($p) }, 'nginx starts on the damaged journal') or diag $@;
    my $log = do { local (@ARGV, $/) = "$p/logs/error.log"; <> };
    like($log, qr/\[alert\].*\Q$file\E": \d+ bytes at offset \d+ are damaged and were skipped/,
         'alert: offset and bytes skipped');
    like($log, qr/\[alert\].*the spool file "\Q$file\E" is damaged: \d+ bytes skipped/,
         'alert: the file is damaged');
    ok(-e "$file.damaged", 'the damaged original is kept aside');
    like(admin(GET => 'metrics')->{body}, qr/^siteflow_spool_damaged_total 1$/m,
         'counted in the metrics');
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '',
       'the jobs after the damage were delivered');

    # the index entries after the damage are there: no second create, no
    # second "shipped"
    for my $id (6001 .. 6006) {
        hook({ event => 'order_updated', id => $id });
    }
    $r = postback({ event => 'shipped', sourceOrderId => 'PN-6003',
                    trackingNumber => 'T6003', shipDate => '2024-05-02' });
    is($r->{status}, 200, 'the repeated postback is answered');
    $r = hook({ event => 'order_created', id => 6007 });
    my $new = job_of($r) // 0;
    my ($max) = sort { $b <=> $a } values %job;
    cmp_ok($new, '>', $max, "a new job gets a new id ($new > $max)");
    is(wait_until('6007 created', sub {
           tally(orders => [6007]) =~ /^lost 0$/m }, 30), '', '6007 created');
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'queue idle');
    is(tally(orders => [@acc, 6007]),
       "accepted 7\ncreated 7\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    is(scalar @{ mock_requests('printnow', 'PATCH /api/v2/order/6003/shipped') }, 1,
       'PrintNow got one "shipped" update');

    # the next start finds a clean file and says nothing
    is(nginx_stop($p), '', 'nginx stopped');
    ok(eval { start($p) }, 'started again') or diag $@;
    $log = do { local (@ARGV, $/) = "$p/logs/error.log"; <> };
    is(scalar(() = $log =~ /is damaged:/g), 1, 'no new damage reported');
    ok(-e "$file.damaged", 'the damaged original is still there');
    nginx_stop($p);
    no_alerts($p, 'damaged journal', qr/damaged/);
};

sub wait_idle_or_retrying {
    return wait_jobs('6005 and 6006 retrying', sub {
        2 == grep { $_->{order_id} =~ /^600[56]$/
                    && $_->{state} =~ /pending|retrying/ } @{ $_[0] } });
}

# ---------------------------------------------------------------------------
# issue 11.6: the Ship API replay cache was only in shared memory: after a
# stop/start a captured, correctly signed request was accepted again
subtest 'the Ship API replay cache survives stop/start and kill -9' => sub {
    spool_only();
    require Siteflow::Sign;
    my $ship = <<"EOC";
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 $Siteflow::Sign::KEY;
        proxy_pass http://127.0.0.1:$PORT/ok200;
    }
    location /ok200 {
        return 200 "ok\\n";
    }
EOC
    my %o = (extra => $ship);
    my $p = scenario(%o);
    my $signed = sub {
        my ($nonce) = @_;
        my $r = http_request(method => 'POST', path => '/ship/shipment',
            body => '{}', headers => {
                'Content-Type' => 'application/json',
                'X-SiteFlow-Nonce' => $nonce,
                'X-SiteFlow-Signature' => 'p1:'
                    . Siteflow::Sign::sig($Siteflow::Sign::KEY, $nonce) });
        return "$r->{status} " . ($r->{status} != 200 ? $r->{body} =~ s/\s+$//r : '');
    };
    my ($a, $b) = map { Siteflow::Sign::nonce() } 1 .. 2;
    is($signed->($a), '200 ', 'first use accepted');
    is($signed->($a), '401 {"status":{"code":"error","message":"nonce already used"}}',
       'replay refused');
    is($signed->($b), '200 ', 'another nonce accepted');
    is(nginx_stop($p), '', 'nginx stopped');
    ok(eval { start($p, %o) }, 'started again') or diag $@;
    is($signed->($b), '401 {"status":{"code":"error","message":"nonce already used"}}',
       'after stop/start the replay is refused');
    is($signed->($a), '401 {"status":{"code":"error","message":"nonce already used"}}',
       'the first one too');
    ok(nginx_kill($p) >= 3, 'kill -9 of master and workers');
    ok(eval { start($p, %o) }, 'started again') or diag $@;
    is($signed->($b), '401 {"status":{"code":"error","message":"nonce already used"}}',
       'after kill -9 and start the replay is refused');
    is($signed->(Siteflow::Sign::nonce()), '200 ', 'a fresh nonce is accepted');
    like(do { local (@ARGV, $/) = "$p/logs/error.log"; <> },
         qr/\[notice\].*siteflow: 2 unexpired Ship API nonces loaded from "\Q$ENV{TEST_NGINX_SPOOL}\E\/nonces.sfn"/,
         'the nonces loaded at start are logged');
    nginx_stop($p);
    no_alerts($p, 'nonce persistence');
};

# ---------------------------------------------------------------------------
# the nonce file mirrors the replay cache's ring: it never grows beyond
# siteflow_nonce_cache slots of 24 bytes, however many nonces are verified
subtest 'the nonce file stays as large as the replay cache' => sub {
    spool_only();
    require Siteflow::Sign;
    my %o = (http => "    siteflow_nonce_cache 16;\n", extra => <<"EOC");
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 $Siteflow::Sign::KEY;
        proxy_pass http://127.0.0.1:$PORT/ok200;
    }
    location /ok200 {
        return 200 "ok\\n";
    }
EOC
    my $p = scenario(%o);
    my $file = "$ENV{TEST_NGINX_SPOOL}/nonces.sfn";
    my (%st, @sizes);
    for my $i (1 .. 60) {
        my $nonce = Siteflow::Sign::nonce();
        my $r = http_request(method => 'POST', path => '/ship/shipment',
            body => '{}', headers => {
                'Content-Type' => 'application/json',
                'X-SiteFlow-Nonce' => $nonce,
                'X-SiteFlow-Signature' => 'p1:'
                    . Siteflow::Sign::sig($Siteflow::Sign::KEY, $nonce) });
        $st{$r->{status}}++;
        push @sizes, -s $file // 0 if $i % 20 == 0;
    }
    is(join(' ', map { "$_ x$st{$_}" } sort keys %st), '200 x60',
       '60 fresh nonces accepted');
    is("@sizes", join(' ', (16 * 24) x 3),
       'after 20, 40 and 60 nonces the file holds 16 slots of 24 bytes');
    is(nginx_stop($p), '', 'nginx stopped');
    ok(eval { start($p, %o) }, 'started again') or diag $@;
    is(-s $file, 16 * 24, 'rewritten at start as the same ring');
    nginx_stop($p);
    no_alerts($p, 'nonce file size');
};

# ---------------------------------------------------------------------------
# issue 11.5: the sent-orders index kept every order ever sent (about 350
# bytes of zone each), so a busy store filled size= and every hook got 503.
# With index_retention=1s the index forgets, and an order it forgot is
# looked up in SiteFlow before it is created again.
#
# The orders come in waves of 400, and each wave waits until the index
# has forgotten the one before (siteflow_index_entries): what the zone
# holds at once is then bounded by the wave, whatever the speed of the
# machine.  (Sent as fast as possible, the index holds about 2 s of
# orders: on a fast machine more than a 1m zone holds, and hooks got 503.)
# Without forgetting the wait for the index times out: a 1m zone holds
# about 2,500 entries, and 3,200 orders are sent.
sub metric {
    my ($name) = @_;
    my ($v) = (admin(GET => 'metrics')->{body} // '') =~ /^\Q$name\E (\d+)$/m;
    return $v;
}

subtest 'index_retention: a 1m zone takes more orders than it holds, no duplicate' => sub {
    spool_only();
    my $N = $ENV{SITEFLOW_INDEX_ORDERS} // 3200;
    my $W = 400;
    my %o = (spool_args => 'size=1m index_retention=1s');
    my $p = scenario(%o);
    my @ids = (10001 .. 10000 + $N);
    my @again = @ids[0 .. 9];
    # the mock is not stateful (its look-ups answer 404) so that the waits
    # stay cheap; the orders looked up again answer from rules of their own
    pn_rules(map { { on => "GET /api/v2/order/$_",
                     json => Siteflow::Flow::pn_order($_) } } @ids);
    my (%ans, @acc, @waits);
    for (my $w = 0; $w < @ids; $w += $W) {
        for (my $i = $w; $i < $w + $W && $i < @ids; $i += 16) {
            my @kids;
            for my $id (grep { defined } @ids[$i .. $i + 15]) {
                my $pid = fork // die "fork: $!";
                if (!$pid) {
                    my $r = hook({ event => 'order_created', id => $id });
                    POSIX::_exit($r->{status} == 202 ? 0
                                 : $r->{status} == 503 ? 2 : 1);
                }
                push @kids, [$pid, $id];
            }
            for my $k (@kids) {
                waitpid $k->[0], 0;
                my $st = $? >> 8;
                $ans{$st}++;
                push @acc, $k->[1] if $st == 0;
            }
        }
        my $e = wait_jobs('idle', sub {
                    !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } },
                    timeout => 60)
             || wait_until(sub { 'the index forgets the wave (entries: '
                                 . (metric('siteflow_index_entries') // '?')
                                 . ')' },
                           sub { (metric('siteflow_index_entries') // 1e9)
                                 <= 2 }, 30);
        push @waits, $e if $e;
        last if $e;
    }
    is(join('; ', @waits), '', 'each wave delivered, then forgotten');
    is($ans{0} // 0, $N, "$N hooks accepted (503: " . ($ans{2} // 0) . ')');
    cmp_ok(metric('siteflow_index_forgotten_total') // 0, '>=', $N - $W,
           'siteflow_index_forgotten_total counts the forgotten orders');
    # the first orders are long forgotten: their hooks look them up first
    sf_rules(map { { on => "GET /api/order/bysourceid/PN-$_", status => 200,
                     json => { _id => sprintf('%024x', $_),
                               orderData => { sourceOrderId => "PN-$_" } } } }
             @again);
    for my $id (@again) {
        is(hook({ event => 'order_updated', id => $id })->{status}, 202,
           "order_updated $id accepted");
    }
    is(wait_requests(siteflow => 'GET /api/order/bysourceid/*', 10, 30), '',
       'each forgotten order looked up in SiteFlow');
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'queue idle');
    is(tally(orders => \@acc),
       "accepted $N\ncreated $N\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    nginx_stop($p);
    no_alerts($p, 'index retention');
};

# ---------------------------------------------------------------------------
# siteflow_queue_workers: more than one worker delivers (the spool's claim
# is in its zone; the breakers too)

# a storefront with two delivering workers; SiteFlow's validate fails
# (503 after $delay ms) when $delay is given; the hooks of @ids accepted
sub workers_scenario {
    my ($delay, @ids) = @_;
    my $p = scenario(http => "    siteflow_queue_workers all;\n",
                     backoff => '100ms 200ms');
    stateful({ on => 'POST /api/order/validate', status => 503,
               delay_ms => $delay,
               json => { success => JSON::PP::false, error => { code => 503 } } });
    for my $id (@ids) {
        is(hook({ event => 'order_created', id => $id })->{status}, 202,
           "hook $id accepted");
    }
    return $p;
}

# SiteFlow answers again: every order of @$acc created once
sub created_once {
    my ($acc) = @_;
    stateful();
    is(wait_until('every accepted order created', sub {
           tally(orders => $acc) =~ /^lost 0$/m }, 30), '',
       'all orders created once SiteFlow answers');
    my $n = @$acc;
    is(tally(orders => $acc),
       "accepted $n\ncreated $n\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
}

subtest 'siteflow_queue_workers all: both workers deliver; kill -9 of the one that is not worker 0 mid-create' => sub {
    spool_only();
    my $p = scenario(http => "    siteflow_queue_workers all;\n"
                           . "    siteflow_queue_concurrency 2;\n");
    my ($w0, $w1);
    is(wait_until('worker 0 and worker 1 deliver', sub {
           $w0 = delivering_worker($p, 0);
           $w1 = delivering_worker($p, 1);
           $w0 && $w1 && $w0 != $w1 }), '', 'worker 0 and worker 1 deliver')
        or return;
    stateful({ on => 'POST /api/order', status => 201, delay_ms => 3000,
               times => 2, json => { _id => '{{hex24}}' } });
    my @acc = (6001, 6002);
    for my $id (@acc) {
        is(hook({ event => 'order_created', id => $id })->{status}, 202,
           "hook $id accepted");
    }
    is(wait_requests(siteflow => 'POST /api/order', 2), '',
       'both creates reached SiteFlow');
    # one job at a time per worker (concurrency 2 shared by 2): each
    # worker holds one of the creates
    my @w = sort { $a <=> $b } workers_connected_to($p,
        $Siteflow::Flow::Mock{siteflow}->port);
    is("@w", join(' ', sort { $a <=> $b } $w0, $w1),
       'each worker has a connection to SiteFlow');
    kill 'KILL', $w1;
    is(wait_until("worker $w1 gone", sub { !kill 0, $w1 }), '',
       "worker 1 ($w1) killed");
    is(wait_until('every accepted order created', sub {
           tally(orders => \@acc) =~ /^lost 0$/m }, 30), '',
       'both orders created');
    is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ } @{ $_[0] } }),
       '', 'queue idle');
    is(tally(orders => \@acc),
       "accepted 2\ncreated 2\nlost 0\nduplicated 0\n",
       'accepted vs created vs duplicated');
    # (worker 0's create times out too: siteflow_timeout is 2 s here)
    ok(scalar @{ mock_requests('siteflow', 'GET /api/order/bysourceid/*') },
       'the interrupted creates were looked up before anything else');
    my $log = do { local (@ARGV, $/) = ("$p/logs/error.log"); <> };
    like($log, qr/was being delivered by process $w1, which is gone; it is resumed/,
         'worker 0 resumed the job of the dead worker');
    nginx_stop($p);
    no_alerts($p, 'siteflow_queue_workers kill');
};

subtest 'siteflow_queue_workers all: SiteFlow failing: one job at a time calls it, across both workers' => sub {
    spool_only();
    my @acc = (6001 .. 6006);
    my $p = workers_scenario(300, @acc);
    # the second and later validates of each order are retries, which
    # only the breaker's probe may be: each begins after the one before
    # it was answered, whichever worker sent it
    my $late = sub {
        my (%n, @r);
        for my $q (sort { $a->{time} <=> $b->{time} || $a->{seq} <=> $b->{seq} }
                   @{ mock_requests('siteflow', 'POST /api/order/validate') }) {
            my $src = (json_of($q->{body}) // {})->{orderData}{sourceOrderId} // '';
            push @r, $q if ++$n{$src} >= 2;
        }
        \@r };
    is(wait_until(sub { '6 validates that are retries' },
                  sub { @{ $late->() } >= 6 }, 30), '',
       'SiteFlow probed while it fails');
    my $v = $late->();
    my $overlap = grep { $v->[$_]{time} < $v->[$_ - 1]{time} + 300 } 1 .. $#$v;
    is($overlap, 0, 'SiteFlow called by one job at a time');
    created_once(\@acc);
    nginx_stop($p);
    no_alerts($p, 'siteflow_queue_workers breaker');
};

subtest 'siteflow_queue_workers all: kill -9 of the workers while a breaker probe is out: the probe ends, the storefront resumes' => sub {
    spool_only();
    my @acc = (6001 .. 6003);
    my $p = workers_scenario(2000, @acc);
    # three first attempts, then the probe: the fourth validate
    is(wait_requests(siteflow => 'POST /api/order/validate', 4, 30), '',
       'the breaker opened and its probe is out');
    my ($m, @w) = @{ nginx_pids($p) };
    kill 'KILL', @w;
    is(wait_until('workers gone', sub { !grep { kill 0, $_ } @w }), '',
       'both workers killed with the probe out');
    # without the sweep ending the dead worker's probe, the storefront
    # stays shut and this times out
    created_once(\@acc);
    my $log = do { local (@ARGV, $/) = ("$p/logs/error.log"); <> };
    like($log, qr/1 breaker probe\(s\) were run by a process that is gone/,
         'the probe was ended by the sweep');
    nginx_stop($p);
    no_alerts($p, 'siteflow_queue_workers probe');
};

END {
    for my $p (@prefixes) {
        my $pids = nginx_pids($p);
        kill 'KILL', @$pids if @$pids;
    }
}

done_testing();
