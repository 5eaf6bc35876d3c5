#!/usr/bin/env perl
# The torture test of the delivery engine (issue 11 item 7): rounds of
# steady traffic under a random schedule of process, network and disk
# faults, then a drain and a check of SPEC 2's promises at the mocks.
# Run by t/bench/torture.sh (make torture); docs/testing.md describes it.
#
# Each round (its own seed: the run's SEED + round - 1):
#   - nginx (2 workers, the module, spool on a small tmpfs when root),
#     a mock SiteFlow and a mock PrintNow (t/mock/mock-upstream.pl) with
#     a stateful SiteFlow: the look-up by sourceOrderId answers 200 once
#     a create of that order was taken in, whatever happened to its answer;
#   - for SECONDS: PrintNow hooks (order_created / order_updated; new
#     order ids, and repeats of earlier ones) at RATE per second, and
#     SiteFlow postbacks (received, printready, shipped in that order) for
#     the orders SiteFlow has, at RATE per second;
#   - meanwhile a schedule drawn from the seed: kill -9 of a worker, kill
#     -9 of the master (its workers then killed as systemd would) and a
#     start, nginx -s reload, -s stop then a start, SiteFlow or PrintNow
#     windows of 503, slow answers (inside or beyond siteflow_timeout),
#     resets, cut answers (the request acted on, the answer cut), and a
#     full disk (the spool's tmpfs filled up);
#   - heal (rules back, disk freed, nginx running), drain (poll the admin
#     queue, bounded) and check:
#       1. every order whose hook was answered 2xx was created in SiteFlow
#          exactly once; no order was created twice; no order whose hooks
#          were all refused was created;
#       2. every postback answered 2xx with a job reached PrintNow, and each
#          order's updates reached it in the order sent (a repeat of the
#          same update is counted: documented ambiguous case 1);
#       3. no job pending, retrying or failed after the drain, and no
#          stall in it (no delivery for TORTURE_STALL s while jobs were due);
#       4. no [alert], [crit] or [emerg] in the error log except a worker
#          exiting on signal 9 (one we sent) and "No space left on device";
#          no worker exiting on another signal.
# A failing round prints its seed: make torture SEED=<seed> ROUNDS=1.
#
# TORTURE_QUEUE=postgresql: the same rounds with the job queue on
# PostgreSQL (docs/fleet.md) shared by two edges:
#
#     TORTURE_QUEUE=postgresql make torture ROUNDS=3
#     TORTURE_QUEUE=postgresql ROUNDS=3 TORTURE_SECONDS=20 t/bench/torture.sh
#
#   - a private PostgreSQL for the run (t/lib/Siteflow/Pg.pm, port
#     TEST_NGINX_PORT + 7), its tables emptied at the start of each round;
#   - two nginx edges, a (TEST_NGINX_PORT) and b (TEST_NGINX_PORT + 1, or
#     a free port), each its own prefix and 2 workers, the configuration
#     above with "siteflow_queue URL lease=3s;" instead of siteflow_spool;
#     each hook and postback goes to an edge drawn at random among those
#     up (as a load balancer would);
#   - each process fault of the schedule (kill -9 of a worker, of the
#     master, reload, stop/start) hits an edge drawn at random; the full
#     disk is replaced by database faults: pg_kill (immediate shutdown,
#     as a crash, then a start) and pg_stop (down 1 to 5 s, then a start);
#   - heal also starts the database; the drain reads siteflow_jobs with
#     SQL, then each edge's admin API must list no job pending, retrying
#     or failed; the error logs of both edges are checked.
# The PostgreSQL-only parts are in t/bench/TorturePg.pm.  A failing round
# also keeps jobs.txt and index.txt (the tables) and postgres.log.
#
# Environment: ROUNDS (20), SEED (from the clock), TORTURE_SECONDS (30),
# TORTURE_RATE (10 hooks/s, as many postbacks/s), TORTURE_DRAIN (120 s,
# plus the backoff's maximum), TORTURE_STALL (60 s), TORTURE_BACKOFF
# (siteflow_retry_backoff of every round; else drawn from the seed),
# TORTURE_TMPFS (1: tmpfs spool when root; 0: no full-disk faults),
# TORTURE_BREAK (lookup or give_up: break a promise on purpose, to see
# the checks fail), TORTURE_STOP (1: stop after the first failing round),
# TORTURE_KEEP (1: keep every round's directory; a failing round's is
# always kept), TORTURE_QUEUE (spool, the default, or postgresql),
# TEST_NGINX_PORT, TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib", $FindBin::Bin;
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::Local ();
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use Siteflow::Flow ();

my $ROOT = $Siteflow::Flow::ROOT;
my $BIN = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $MODULE = $ENV{TEST_NGINX_LOAD_MODULES}
    || "$ROOT/t/build/ngx_http_siteflow_module.so";
my $ROUNDS = $ENV{ROUNDS} || 20;
my $SEED = $ENV{SEED} || (time() * 1000) % 1000000000;
my $SECONDS = $ENV{TORTURE_SECONDS} || 30;
my $RATE = $ENV{TORTURE_RATE} || 10;
my $DRAIN = $ENV{TORTURE_DRAIN} || 120;
my $STALL = $ENV{TORTURE_STALL} || 60;
# spool (one nginx, its spool on a tmpfs) or postgresql (two edges sharing
# the queue in PostgreSQL: t/bench/TorturePg.pm)
my $QUEUE = $ENV{TORTURE_QUEUE} || 'spool';
$QUEUE =~ /^(?:spool|postgresql)$/
    or die "torture: TORTURE_QUEUE is spool or postgresql\n";
my $PG = $QUEUE eq 'postgresql';
my $TMPFS = ($ENV{TORTURE_TMPFS} // 1) && $> == 0 && !$PG;
# checks of the checks: each breaks one promise on purpose, and the round
# must fail.  lookup: the mock SiteFlow's look-up never finds an order
# (duplicates after ambiguous creates); give_up: siteflow_give_up 1s
# (jobs fail during outages: lost orders and updates, failed jobs)
my $BREAK = $ENV{TORTURE_BREAK} // '';
$BREAK =~ /^(?:|lookup|give_up)$/
    or die "torture: TORTURE_BREAK is lookup or give_up\n";
my $PORT = $ENV{TEST_NGINX_PORT} || MockUpstream::free_port();
my $J = JSON::PP->new->utf8->canonical;
my %RANK = (received => 1, printready => 2, shipped => 3);
my @EVENTS = qw(received printready shipped);

die "torture: $MODULE is missing: run make build\n" unless -f $MODULE;
# nginx maps the module: a rebuild that rewrites the file in place (make
# build's cp) under a running nginx crashes it (SIGBUS, then SIGSEGV).
# The run loads a copy of its own.
my $MODDIR = tempdir('siteflow-torture-so-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $MODDIR;
system('cp', $MODULE, "$MODDIR/ngx_http_siteflow_module.so") == 0
    or die "torture: cannot copy $MODULE\n";
$MODULE = "$MODDIR/ngx_http_siteflow_module.so";
die "torture: port $PORT is in use (TEST_NGINX_PORT)\n"
    if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT,
                             Proto => 'tcp', Timeout => 1);
$SEED =~ /^\d+$/ or die "torture: SEED must be a number\n";
# the second edge of the PostgreSQL mode, and the database
my $PORT_B;
if ($PG) {
    require TorturePg;
    my $why = TorturePg::unavailable($MODULE);
    die "torture: TORTURE_QUEUE=postgresql: $why\n" if $why;
    $PORT_B = $ENV{TEST_NGINX_PORT} ? $PORT + 1 : MockUpstream::free_port();
    die "torture: port $PORT_B is in use (TEST_NGINX_PORT + 1)\n"
        if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT_B,
                                 Proto => 'tcp', Timeout => 1);
    $ENV{TEST_NGINX_PORT} ||= $PORT;    # the database's port is this + 7
    TorturePg::start();
}
$| = 1;

# ---------------------------------------------------------------------------
# a PRNG of our own (xorshift32): the schedule must not depend on what else
# calls rand() (File::Temp does)
# ---------------------------------------------------------------------------
sub prng {
    my ($seed) = @_;
    my $s = ($seed * 2654435761 + 1) & 0xffffffff;
    $s ||= 1;
    return sub {        # uniform in [0, 1)
        $s ^= ($s << 13) & 0xffffffff;
        $s ^= $s >> 17;
        $s ^= ($s << 5) & 0xffffffff;
        return $s / 4294967296;
    };
}

sub pick { my ($r, @l) = @_; return $l[int($r->() * @l)] }
sub between { my ($r, $a, $b) = @_; return $a + ($b - $a) * $r->() }

# ---------------------------------------------------------------------------
# mocks
# ---------------------------------------------------------------------------
my $ORDER_TEXT = do {
    open my $fh, '<:raw', "$ROOT/t/fixtures/orders/5001.json" or die $!;
    local $/;
    my $t = <$fh>;
    $t =~ s/\b5001\b/{{path_last}}/g;
    $t;
};

# the normal rules; a fault window puts its rules first, or changes these
sub sf_base {
    my (%f) = @_;      # delay => ms, cut => 1
    my @r = (
        { method => 'GET', path_prefix => '/api/order/bysourceid/',
          if_known => $BREAK eq 'lookup' ? 'never' : '{{path_last}}',
          comment => 'lookup-hit',
          json => { _id => '{{hex24}}',
                    orderData => { sourceOrderId => '{{path_last}}' } } },
        { method => 'GET', path_prefix => '/api/order/bysourceid/',
          status => 404, comment => 'lookup-miss',
          json => { success => JSON::PP::false, error => {
              message => 'Order not found', name => 'NotFound',
              code => 404 } } },
        { method => 'POST', path => '/api/order/validate', comment => 'validate',
          json => { success => JSON::PP::true } },
        { method => 'POST', path => '/api/order', status => 201,
          remember => '{{json.orderData.sourceOrderId}}', comment => 'create',
          json => { _id => '{{hex24}}' } },
        { method => 'PUT', path_prefix => '/api/order/', comment => 'put',
          json => { success => JSON::PP::true } },
    );
    for (@r) {
        $_->{delay_ms} = $f{delay} if $f{delay};
        $_->{action} = 'partial' if $f{cut};
    }
    return @r;
}

sub pn_base {
    my (%f) = @_;
    my @r = (
        { method => 'GET', path_prefix => '/api/v2/order/', comment => 'fetch',
          body => $ORDER_TEXT,
          headers => { 'Content-Type' => 'application/json' } },
        { method => 'PATCH', path_prefix => '/api/v2/order/', comment => 'patch',
          json => { success => JSON::PP::true } },
    );
    for (@r) {
        $_->{delay_ms} = $f{delay} if $f{delay};
        $_->{action} = 'partial' if $f{cut};
    }
    return @r;
}

# the rules of a mock given its current fault (undef = none)
sub rules_of {
    my ($which, $fault) = @_;
    my $base = $which eq 'sf' ? \&sf_base : \&pn_base;
    my $pre = $which eq 'sf' ? '/api/' : '/api/v2/';
    return [$base->()] unless $fault;
    my ($kind, $arg) = @$fault;
    return [{ path_prefix => $pre, status => 503, comment => 'fault-503',
              json => { error => 'maintenance' } }, $base->()]
        if $kind eq '503';
    return [{ path_prefix => $pre, action => 'reset', comment => 'fault-reset' },
            $base->()]
        if $kind eq 'reset';
    return [$base->(delay => $arg)] if $kind eq 'slow';
    return [$base->(cut => 1)] if $kind eq 'cut';
    die "rules_of: $kind\n";
}

# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------
sub write_conf {
    my ($R) = @_;
    my $server = Siteflow::Flow::storefront_conf(timeout => '1s',
        api => "http://127.0.0.1:$R->{sf}{port}/api");
    $server =~ s/\$TEST_NGINX_FIXTURES/$ROOT\/t\/fixtures/g;
    $server =~ s/\$TEST_NGINX_PRINTNOW_PORT/$R->{pn}{port}/g;
    my $p = $R->{prefix};
    make_path("$p/conf", "$p/logs");
    open my $fh, '>', "$p/conf/nginx.conf" or die "$p/conf/nginx.conf: $!\n";
    print $fh <<"EOC";
load_module $MODULE;
daemon on;
master_process on;
worker_processes 2;
error_log $p/logs/error.log info;
pid $p/logs/nginx.pid;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $p/client_body_temp;
    proxy_temp_path $p/proxy_temp;
    fastcgi_temp_path $p/fastcgi_temp;
    uwsgi_temp_path $p/uwsgi_temp;
    scgi_temp_path $p/scgi_temp;
    siteflow_zone sf:4m;
    @{[ $R->{pg_url} ? "siteflow_queue $R->{pg_url} lease=3s;"
                     : "siteflow_spool $R->{spool};" ]}
    siteflow_retry_backoff $R->{backoff};
    @{[ $R->{workers} ? "siteflow_queue_workers $R->{workers};" : '' ]}
    @{[ $BREAK eq 'give_up' ? 'siteflow_give_up 1s;' : '' ]}
    server {
        listen 127.0.0.1:@{[ $R->{port} // $PORT ]};
$server
    }
}
EOC
    close $fh;
}

sub nginx_cmd {
    my ($R, @args) = @_;
    my $p = $R->{prefix};
    my $out = `$BIN -p $p/ -c $p/conf/nginx.conf @args 2>&1`;
    return $? ? "nginx @args: $out" : '';
}

sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $st = <$fh> // '';
        return 0 if $st =~ /\)\s+Z/;
    }
    return 1;
}

sub pids { Siteflow::Flow::nginx_pids($_[0]{prefix}) }

# the nginx of the spool mode ($R), or an edge of the PostgreSQL mode
sub edges_of { my ($R) = @_; return $R->{edges} ? @{ $R->{edges} } : ($R) }

sub answers {
    my ($R) = @_;
    my $r = Siteflow::Flow::http_request(port => $R->{port} // $PORT,
        method => 'GET', path => '/ping', timeout => 1);
    return $r->{status} == 200;
}

# starts nginx and waits (bounded) until it answers; '' or the problem
sub start_nginx {
    my ($R) = @_;
    my $e = nginx_cmd($R);
    return $e if $e;
    $e = Siteflow::Flow::wait_until('nginx answers', sub { answers($R) }, 15);
    $R->{workers_seen} = pids($R);
    return $e;
}

# waits until every pid in @$p has exited; kills what is left after $t s
sub wait_gone {
    my ($p, $t) = @_;
    my $e = Siteflow::Flow::wait_until('processes exit',
        sub { !grep { alive($_) } @$p }, $t);
    kill 'KILL', grep { alive($_) } @$p if $e;
    return $e;
}

# ---------------------------------------------------------------------------
# the disk
# ---------------------------------------------------------------------------
sub fill_disk {
    my ($R) = @_;
    open my $fh, '>:raw', "$R->{disk}/filler" or return "filler: $!";
    my $blk = "\0" x 65536;
    while (1) {
        my $n = syswrite($fh, $blk);
        last if !defined $n || $n < length $blk;
    }
    close $fh;
    return '';
}

sub free_disk { unlink "$_[0]{disk}/filler" }

# ---------------------------------------------------------------------------
# the schedule of one round
# ---------------------------------------------------------------------------
sub schedule {
    my ($rnd, $secs) = @_;
    my @ev;
    my $t = between($rnd, 0.5, 2);
    my @kinds = (qw(kill_worker kill_worker kill_master reload reload
                    stop_start sf_503 pn_503 sf_slow pn_slow sf_reset
                    pn_reset sf_cut pn_cut outage outage), ($TMPFS ? ('disk_full') x 2 : ()),
                 ($PG ? TorturePg::fault_kinds() : ()));
    while ($t < $secs - 1) {
        my $k = pick($rnd, @kinds);
        my %e = (t => $t, kind => $k);
        if ($k eq 'outage') {
            # issue 11 item 1: a long SiteFlow outage, the delivering
            # worker killed and a reload during it, then an ambiguous
            # recovery (creates taken in, answers cut)
            my $len = between($rnd, 5, 9);
            push @ev, { t => $t, kind => 'sf_503', len => $len },
                { t => $t + $len * 0.4, kind => 'kill_worker',
                  which => 'worker0' },
                { t => $t + $len * 0.7, kind => 'reload' },
                { t => $t + $len + 0.05, kind => 'sf_cut', len => 0.7 };
            $t += $len + between($rnd, 1, 2);
            next;
        }
        if ($k eq 'kill_worker') {
            $e{which} = pick($rnd, 0, 1, 'worker0');
        } elsif ($k eq 'kill_master' || $k eq 'stop_start') {
            $e{down} = between($rnd, 0.2, 2);
        } elsif ($k ne 'reload' && $k ne 'pg_kill') {
            $e{len} = between($rnd, 1, 5);
            $e{delay} = pick($rnd, 400, 1500) if $k =~ /slow/;
        }
        push @ev, \%e;
        $t += between($rnd, $secs < 20 ? 0.8 : 1.2, $secs < 20 ? 2.5 : 3.5);
    }
    return sort { $a->{t} <=> $b->{t} } @ev;
}

sub ev_text {
    my ($e) = @_;
    my $s = sprintf '%5.1fs %s', $e->{t}, $e->{kind};
    $s .= " worker#$e->{which}" if defined $e->{which};
    $s .= " at edge $e->{edge_name}" if defined $e->{edge_name};
    $s .= sprintf ' down %.1fs', $e->{down} if defined $e->{down};
    $s .= sprintf ' %.1fs', $e->{len} if defined $e->{len};
    $s .= " ${\ $e->{delay}}ms" if defined $e->{delay};
    return $s;
}

# ---------------------------------------------------------------------------
# one round
# ---------------------------------------------------------------------------
sub round {
    my ($n, $seed) = @_;
    my $sched_rnd = prng($seed);
    my $load_rnd = prng($seed ^ 0x5bd1e995);
    my @sched = schedule($sched_rnd, $SECONDS);
    my $backoff = pick($sched_rnd, '100ms 1s', '100ms 1s', '1s 5m');
    $backoff = $ENV{TORTURE_BACKOFF} if $ENV{TORTURE_BACKOFF};
    # siteflow_queue_workers (the spool): worker 0 alone or both workers
    # deliver, drawn from the seed by a generator of its own (so the
    # schedules of older seeds are unchanged) or TORTURE_WORKERS
    my $workers = $PG ? '' : $ENV{TORTURE_WORKERS}
        || pick(prng($seed ^ 0x2545f491), '1', 'all');
    TorturePg::assign_edges(\@sched, prng($seed ^ 0x68e31da4)) if $PG;
    my $dir = tempdir("siteflow-torture-$seed-XXXXXX", TMPDIR => 1);
    chmod 0755, $dir;       # the workers (nobody) reach the spool under it
    my %R = (prefix => "$dir/nginx", disk => "$dir/disk", seed => $seed,
             dir => $dir, problems => [], notes => [], backoff => $backoff,
             workers => $workers);
    push @{ $R{notes} }, "siteflow_queue_workers $workers" if $workers;
    make_path($R{disk});
    chmod 0755, $R{disk};
    if ($TMPFS) {
        system('mount', '-t', 'tmpfs', '-o', 'size=32m,mode=0755',
               'siteflow-torture', $R{disk}) == 0
            or die "torture: cannot mount a tmpfs on $R{disk}\n";
        $R{mounted} = 1;
    }
    $R{spool} = "$R{disk}/spool";
    my $ok = eval { run_round(\%R, \@sched, $load_rnd); 1 };
    push @{ $R{problems} }, "harness: $@" unless $ok;
    # clean up whatever is left
    for my $E (edges_of(\%R)) {
        my $p = pids($E);
        kill 'KILL', grep { alive($_) } @$p, @{ $E->{workers_seen} // [] };
        wait_gone([@$p, @{ $E->{workers_seen} // [] }], 5);
    }
    for my $m (grep { $_ } $R{sf}, $R{pn}) { $m->stop }
    free_disk(\%R);
    my $fail = @{ $R{problems} };
    system('cp', '-a', $R{spool}, "$dir/spool") if $fail && -d $R{spool};
    TorturePg::keep($dir) if $fail && $PG;
    system('umount', $R{disk}) if $R{mounted};
    printf "round %d seed %d: %s\n", $n, $seed, $fail ? 'FAIL' : 'ok';
    print "  $_\n" for @{ $R{notes} };
    print "  PROBLEM: $_\n" for @{ $R{problems} };
    if ($fail) {
        print "  replay: " . ($PG ? 'TORTURE_QUEUE=postgresql ' : '')
            . "make torture SEED=$seed ROUNDS=1"
            . " TORTURE_SECONDS=$SECONDS TORTURE_RATE=$RATE"
            . ($ENV{TORTURE_BACKOFF} ? " TORTURE_BACKOFF='$ENV{TORTURE_BACKOFF}'" : '')
            . ($ENV{TORTURE_WORKERS} ? " TORTURE_WORKERS=$ENV{TORTURE_WORKERS}" : '')
            . ($TMPFS || $PG ? '' : ' TORTURE_TMPFS=0') . "\n";
        print "  kept: $dir ", $PG ? '(edge-a/logs/error.log, '
            . 'edge-b/logs/error.log, jobs.txt, index.txt, postgres.log, '
            . "sf.log, pn.log)\n"
            : "(nginx/logs/error.log, spool/, sf.log, pn.log)\n";
    } elsif (!$ENV{TORTURE_KEEP}) {
        remove_tree($dir);
    }
    return !$fail;
}

sub run_round {
    my ($R, $sched, $rnd) = @_;
    $R->{sf} = MockUpstream->start(log => "$R->{dir}/sf.log");
    $R->{pn} = MockUpstream->start(log => "$R->{dir}/pn.log");
    $R->{sf}->rules(rules_of('sf'));
    $R->{pn}->rules(rules_of('pn'));
    if ($PG) {
        TorturePg::round_start();
        $R->{edges} = TorturePg::edges($R, $PORT, $PORT_B);
    }
    for my $E (edges_of($R)) {
        write_conf($E);
        my $e = start_nginx($E);
        die "first start" . ($PG ? " of $E->{label}" : '') . ": $e\n" if $e;
        @$E{qw(up kills_w)} = (1, 0);
    }
    # the port of each hook and postback
    my $port_of = $PG ? TorturePg::port_picker($R, prng($R->{seed} ^ 0x2545f491))
                      : sub { $PORT };

    my (%hook, %pb, @pbq, %inq, %fault, $disk_full);
    my ($sent_h, $sent_p, $next_id) = (0, 0, 100001);
    my (%stat_h, %stat_p);
    my @ends;       # [time, code] ends of windows
    my $t0 = time;
    my $next_known = 0;
    my @log;        # what happened, for the notes

    my $act = sub {
        my ($ev) = @_;
        my $k = $ev->{kind};
        # the nginx a process fault hits: the only one, or its edge
        my $E = $PG ? $R->{edges}[ $ev->{edge} // 0 ] : $R;
        return ($PG ? "$E->{label}" : 'nginx') . ' is down'
            if !$E->{up} && $k =~ /^(?:kill|reload|stop)/;
        if ($k eq 'kill_worker') {
            my (undef, @w) = @{ pids($E) };
            return 'no worker' unless @w;
            my $w = $ev->{which} eq 'worker0' ? worker0($E, \@w)
                : $w[ $ev->{which} % @w ];
            return 'worker 0 not found in the error log' unless $w;
            kill 'KILL', $w;
            $E->{kills_w}++;
            return "killed worker $w";
        }
        if ($k eq 'kill_master') {
            my $p = pids($E);
            return 'no master' unless @$p && alive($p->[0]);
            kill 'KILL', $p->[0];
            wait_gone([$p->[0]], 5);
            # the leftover workers: systemd kills the unit's cgroup
            my @left = grep { alive($_) } @$p[1 .. $#$p];
            kill 'KILL', @left;
            wait_gone(\@left, 5);
            $E->{up} = 0;
            push @ends, [time + $ev->{down}, sub {
                my $e = start_nginx($E);
                push @{ $R->{problems} }, ($PG ? "$E->{label}: " : '')
                    . "start after kill -9: $e" if $e;
                $E->{up} = 1;
            }];
            return 'killed master ' . $p->[0] . ' and ' . scalar(@left)
                . ' leftover worker(s)';
        }
        if ($k eq 'reload') {
            my $e = nginx_cmd($E, '-s', 'reload');
            push @{ $R->{problems} }, ($PG ? "$E->{label}: " : '')
                . "reload: $e" if $e;
            return 'reload';
        }
        if ($k eq 'stop_start') {
            my $p = pids($E);
            my $e = nginx_cmd($E, '-s', 'stop');
            $e ||= wait_gone($p, 20);
            push @{ $R->{problems} }, ($PG ? "$E->{label}: " : '')
                . "stop: $e" if $e;
            $E->{up} = 0;
            push @ends, [time + $ev->{down}, sub {
                my $e = start_nginx($E);
                push @{ $R->{problems} }, ($PG ? "$E->{label}: " : '')
                    . "start after stop: $e" if $e;
                $E->{up} = 1;
            }];
            return 'stopped';
        }
        return TorturePg::db_fault($R, $ev, \@ends) if $k =~ /^pg_/;
        if ($k eq 'disk_full') {
            return 'disk already full' if $disk_full;
            my $e = fill_disk($R);
            return "disk: $e" if $e;
            $disk_full = 1;
            push @ends, [time + $ev->{len}, sub { free_disk($R); $disk_full = 0 }];
            return 'disk full';
        }
        my ($m, $f) = $k =~ /^(sf|pn)_(\w+)$/ or die "event $k\n";
        return "$m already faulty" if $fault{$m};
        $fault{$m} = [$f, $ev->{delay}];
        $R->{$m}->rules(rules_of($m, $fault{$m}));
        push @ends, [time + $ev->{len}, sub {
            delete $fault{$m};
            $R->{$m}->rules(rules_of($m));
        }];
        return "$m $f";
    };

    my $hook = sub {
        my ($id, $event) = @_;
        my $r = Siteflow::Flow::http_request(port => $port_of->(),
            method => 'POST', path => "/hook?token=$Siteflow::Flow::TOKEN{hook}",
            body => { event => $event, id => "$id" },
            headers => { 'Content-Type' => 'application/json' }, timeout => 3);
        my $st = $r->{status};
        $stat_h{$st}++;
        $hook{$id}{$st =~ /^2/ ? 'acked' : $st == 0 ? 'unknown' : 'refused'}++;
        $sent_h++;
    };

    my $postback = sub {
        my ($id) = @_;
        my $o = $pb{$id};
        my $ev = $EVENTS[ $o->{next} ];
        my %b = (event => $ev, sourceOrderId => "PN-$id",
                 timestamp => '2024-05-01T12:00:00.000Z');
        %b = (%b, trackingNumber => "T$id", shipDate => '2024-05-02')
            if $ev eq 'shipped';
        my $r = Siteflow::Flow::http_request(port => $port_of->(),
            method => 'POST', path => "/postback?token=$Siteflow::Flow::TOKEN{postback}",
            body => \%b, headers => { 'Content-Type' => 'application/json' },
            timeout => 3);
        my $st = $r->{status};
        $sent_p++;
        my $d = Siteflow::Flow::json_of($r->{body});
        my $job = ref $d eq 'HASH' && defined $d->{job};
        $stat_p{ $st . ($st =~ /^2/ && !$job ? ' no job' : '') }++;
        if ($st =~ /^2/) {
            push @{ $o->{acked} }, $ev if $job;
            $o->{next}++;
        } elsif ($st == 0) {
            $o->{maybe}{$ev} = 1;
        }
        $o->{due} = time + 0.2;
        return $o->{next} < @EVENTS;
    };

    # ---- load under the schedule
    my @todo = @$sched;
    my $end = $t0 + $SECONDS;
    my ($h_due, $p_due) = ($t0, $t0);
    while (time < $end) {
        my $now = time;
        # ends of windows first: a window may start as another ends
        my @due = sort { $a->[0] <=> $b->[0] } grep { $_->[0] <= $now } @ends;
        @ends = grep { $_->[0] > $now } @ends;
        $_->[1]->() for @due;
        while (@todo && $t0 + $todo[0]{t} <= $now) {
            my $ev = shift @todo;
            push @log, ev_text($ev) . ': ' . $act->($ev);
        }
        if ($now >= $h_due) {
            $h_due += 1 / $RATE;
            if (!%hook || $rnd->() < 0.8) {
                $hook->($next_id++, $rnd->() < 0.7 ? 'order_created'
                                                   : 'order_updated');
            } else {
                my @ids = sort keys %hook;
                $hook->(pick($rnd, @ids), $rnd->() < 0.5 ? 'order_created'
                                                        : 'order_updated');
            }
        }
        if ($now >= $next_known) {      # orders SiteFlow has: postbacks
            $next_known = $now + 0.5;
            my $known = eval { $R->{sf}->_call(GET => '/_mock/known') } // {};
            for my $src (sort keys %$known) {
                my ($id) = $src =~ /^PN-(\d+)$/ or next;
                next if $inq{$id}++ || !$hook{$id}{acked};
                $pb{$id} = { next => 0, acked => [], due => $now };
                push @pbq, $id;
            }
        }
        if ($now >= $p_due) {
            $p_due += 1 / $RATE;
            my ($i) = grep { $pb{ $pbq[$_] }{due} <= $now } 0 .. $#pbq;
            if (defined $i) {
                my $id = splice @pbq, $i, 1;
                push @pbq, $id if $postback->($id);
            }
        }
        sleep 0.01;
    }

    # ---- heal
    my $heal = time;
    for my $x (sort { $a->[0] <=> $b->[0] } @ends) { $x->[1]->() }
    @ends = ();
    free_disk($R);
    for my $m (qw(sf pn)) { $R->{$m}->rules(rules_of($m)) }
    TorturePg::heal($R) if $PG;
    for my $E (edges_of($R)) {
        next if answers($E);
        my $p = pids($E);
        kill 'KILL', grep { alive($_) } @$p;
        wait_gone($p, 5);
        my $e = start_nginx($E);
        push @{ $R->{problems} }, ($PG ? "$E->{label}: " : '')
            . "nginx did not answer after the load; restarted: " . ($e || 'ok');
    }

    # ---- drain: until no job is pending or retrying (seen twice, 0.5 s
    # apart) and the mocks have everything, or the bound
    my ($idle, $last, $drained, $first) = (0, 'never read', 0, undef);
    # stalled: the upstreams answer, jobs are due by their own schedule,
    # and none is delivered for $STALL seconds
    my ($progress, $prev, $stall, $stall_text) = (time, undef, 0, '');
    # a job (or the storefront's breaker) may wait up to the backoff's
    # maximum before its next attempt: that much longer
    my $bound = $DRAIN + seconds_of((split ' ', $R->{backoff})[-1]);
    my $deadline = time + $bound;
    while (time < $deadline) {
        my $q = queue_jobs();
        if (!defined $q) {
            $last = 'queue unreadable';
            $idle = 0;
        } else {
            my @busy = grep { $_->{state} =~ /^(?:pending|retrying)$/ } @$q;
            $last = @busy . ' pending/retrying at '
                . POSIX::strftime('%H:%M:%SZ', gmtime) . ': ' . join(', ', map {
                "$_->{kind} $_->{order_id} $_->{state} x$_->{attempts}"
                . ' next ' . ($_->{next_attempt} // '-')
                . (defined $_->{last_error} ? " ($_->{last_error})" : '') }
                @busy[0 .. ($#busy < 4 ? $#busy : 4)]);
            $idle = @busy ? 0 : $idle + 1;
            $progress = time if !defined $prev || @busy < $prev;
            $prev = @busy;
            my ($due) = sort { $a <=> $b } map {
                epoch_of($_->{next_attempt} // $_->{created}) }
                        @busy;
            if (@busy && time - $progress > $STALL && defined $due
                && time - $due > $STALL && time - $progress > $stall)
            {
                $stall = time - $progress;
                $stall_text = sprintf 'no job delivered for %.0fs while %d '
                    . 'were due (the oldest for %.0fs) and the upstreams '
                    . 'answered: %s', $stall, scalar @busy, time - $due, $last;
            }
            $first //= sprintf '%d pending, %d retrying (most attempts %d, '
                . 'latest next attempt %s) at %s', scalar(grep {
                $_->{state} eq 'pending' } @busy), scalar(grep {
                $_->{state} eq 'retrying' } @busy),
                (sort { $b <=> $a } map { $_->{attempts} // 0 } @busy, {})[0],
                (sort { $b cmp $a } map { $_->{next_attempt} // '' } @busy,
                 {})[0] || '-', POSIX::strftime('%Y-%m-%dT%H:%M:%SZ', gmtime);
        }
        if ($idle >= 2) { $drained = 1; last }
        sleep 0.5;
    }
    my $drain_s = time - $heal;
    push @{ $R->{problems} }, "stalled: $stall_text" if $stall;
    push @{ $R->{notes} }, sprintf('WARNING: slow drain (%.0fs) after the '
        . 'upstreams were healed; queue when it began: %s', $drain_s,
        $first // 'unreadable') if $drained && $drain_s > 30;
    push @{ $R->{problems} }, sprintf('stuck: the queue did not drain in %ds: %s',
        $bound, $last) unless $drained;
    if (my $q = queue_jobs()) {
        my @failed = grep { $_->{state} eq 'failed' } @$q;
        push @{ $R->{problems} }, 'failed jobs: ' . _few(map {
            "$_->{kind} $_->{order_id} ($_->{last_error})" } @failed) if @failed;
    }
    push @{ $R->{problems} }, TorturePg::admin_check($R) if $PG && $drained;

    # ---- the invariants
    my $known = $R->{sf}->_call(GET => '/_mock/known');
    my (@lost, @dup, @refused);
    for my $id (sort keys %hook) {
        my $c = $known->{"PN-$id"} // 0;
        push @lost, $id if $hook{$id}{acked} && !$c;
        push @dup, "$id x$c" if $c > 1;
        push @refused, $id if $c && !$hook{$id}{acked} && !$hook{$id}{unknown};
    }
    my @stray = grep { !/^PN-(\d+)$/ || !$hook{$1} } sort keys %$known;
    push @{ $R->{problems} }, 'acknowledged hook, order never created: '
        . _few(@lost) if @lost;
    push @{ $R->{problems} }, 'order created more than once: ' . _few(@dup)
        if @dup;
    push @{ $R->{problems} }, 'order created though its hooks were refused: '
        . _few(@refused) if @refused;
    push @{ $R->{problems} }, "created orders nobody sent: @stray" if @stray;

    my %seen;     # id => [events as PrintNow got them (effective PATCHes)]
    for my $q (@{ $R->{pn}->requests(path => '/api/v2/order/') }) {
        next unless $q->{method} eq 'PATCH' && ($q->{comment} // '') eq 'patch';
        my ($id, $what) = $q->{path} =~ m{/order/(\d+)/(\w+)$} or next;
        my $b = Siteflow::Flow::json_of($q->{body}) // {};
        my $ev = $what eq 'shipped' ? 'shipped'
               : ($b->{comment} // '') =~ /^SiteFlow: (\w+)/ ? $1 : "?$what";
        push @{ $seen{$id} }, $ev;
    }
    my ($pb_acked, $repeats, @missing, @disorder, @extra) = (0, 0);
    for my $id (sort keys %pb) {
        my $o = $pb{$id};
        $pb_acked += @{ $o->{acked} };
        my @got;
        for (@{ $seen{$id} // [] }) {
            if (@got && $got[-1] eq $_) { $repeats++; next }
            push @got, $_;
        }
        my %got = map { $_ => 1 } @got;
        push @missing, "$id $_" for grep { !$got{$_} } @{ $o->{acked} };
        my %ok = (map({ $_ => 1 } @{ $o->{acked} }), %{ $o->{maybe} // {} });
        push @extra, "$id $_" for grep { !$ok{$_} } @got;
        for my $i (1 .. $#got) {
            next if ($RANK{ $got[$i] } // 0) > ($RANK{ $got[ $i - 1 ] } // 0);
            push @disorder, "$id: @got";
            last;
        }
    }
    for my $id (sort keys %seen) {
        push @extra, "$id (no postback)" unless $pb{$id};
    }
    push @{ $R->{problems} }, 'acknowledged postback never reached PrintNow: '
        . _few(@missing) if @missing;
    push @{ $R->{problems} }, 'PrintNow updates out of order: ' . _few(@disorder)
        if @disorder;
    push @{ $R->{problems} }, 'PrintNow updates nobody acknowledged: '
        . _few(@extra) if @extra;

    # ---- the error log
    my ($sig9, $nospace) = (0, 0);
    for my $E (edges_of($R)) {
        open my $fh, '<', "$E->{prefix}/logs/error.log" or next;
        my ($who, $s9, @bad) = ($PG ? "$E->{label}: " : '', 0);
        while (my $l = <$fh>) {
            if ($l =~ /exited on signal (\d+)/) {
                if ($1 == 9) { $s9++; next }
                push @bad, $l;
                next;
            }
            next unless $l =~ /\[(?:alert|crit|emerg)\]/;
            if ($l =~ /No space left on device/) { $nospace++; next }
            push @bad, $l;
        }
        chomp @bad;
        push @{ $R->{problems} }, "error log: $who" . scalar(@bad)
            . " unexpected line(s):\n    " . join("\n    ",
            @bad[0 .. ($#bad < 7 ? $#bad : 7)]) if @bad;
        push @{ $R->{problems} }, "error log: $who$s9 worker(s) exited on "
            . "signal 9, only $E->{kills_w} killed" if $s9 > $E->{kills_w};
        $sig9 += $s9;
    }

    my $acked = grep { $hook{$_}{acked} } keys %hook;
    push @{ $R->{notes} },
        sprintf('hooks: %d sent (%s), %d orders acknowledged, %d created',
            $sent_h, _stats(\%stat_h), $acked, scalar keys %$known),
        sprintf('postbacks: %d sent (%s), %d acknowledged, %d PrintNow '
            . 'updates (%d repeats)', $sent_p, _stats(\%stat_p), $pb_acked,
            scalar(map { @$_ } values %seen), $repeats),
        sprintf('drain: %.1fs%s, queue when it began: %s', $drain_s,
            $drained ? '' : ' (not drained)', $first // 'unreadable'),
        ($PG ? (TorturePg::notes($R), "log: $sig9 signal-9 exits")
        : sprintf('log: %d signal-9 exits, %d "No space left" lines', $sig9,
            $nospace)),
        "schedule (siteflow_retry_backoff $R->{backoff}):",
        map { "  $_" } @log;
}

# worker 0, the one that delivers, from the master's notices in the error
# log: "start worker processes" then one "start worker process PID" per
# slot in order; a worker that exited is replaced in its slot by the next
# "start worker process" without the plural line before it
sub worker0 {
    my ($R, $alive) = @_;
    open my $fh, '<', "$R->{prefix}/logs/error.log" or return undef;
    my (%slot, %holder, @free, $next);
    while (my $l = <$fh>) {
        if ($l =~ /start worker processes$/) {
            $next = 0;
        } elsif ($l =~ /start worker process (\d+)$/) {
            my $s = defined $next ? $next++ : shift @free;
            next unless defined $s;
            $slot{$1} = $s;
            $holder{$s} = $1;
        } elsif ($l =~ /worker process (\d+) exited on signal/) {
            my $s = $slot{$1};
            push @free, $s if defined $s && $holder{$s} == $1;
            undef $next;
        }
    }
    my $w0 = $holder{0};
    return defined $w0 && grep({ $_ == $w0 } @$alive) ? $w0 : undef;
}

sub queue_jobs {
    return TorturePg::queue_jobs() if $PG;
    my $r = Siteflow::Flow::http_request(port => $PORT, method => 'GET',
        path => '/admin/queue?limit=10000', timeout => 3,
        host => '127.0.0.1');
    return undef unless $r->{status} == 200;
    my $d = Siteflow::Flow::json_of($r->{body});
    return ref $d eq 'HASH' && ref $d->{jobs} eq 'ARRAY' ? $d->{jobs} : undef;
}

sub epoch_of {
    my ($iso) = @_;
    my ($y, $mo, $d, $h, $mi, $s) = ($iso // '')
        =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z$/
        or return ();
    return Time::Local::timegm(0, $mi, $h, $d, $mo - 1, $y) + $s;
}

sub seconds_of {
    my ($t) = @_;
    my ($n, $u) = $t =~ /^(\d+)(ms|s|m|h)?$/ or die "torture: bad time $t\n";
    return $n * { ms => 0.001, s => 1, m => 60, h => 3600 }->{ $u // 's' };
}

sub _few {
    my @l = @_;
    return scalar(@l) . ': ' . join(', ', @l[0 .. ($#l < 9 ? $#l : 9)])
        . (@l > 10 ? ', ...' : '');
}

sub _stats {
    my ($h) = @_;
    return join(', ', map { "$_ x$h->{$_}" } sort keys %$h) || 'none';
}

# ---------------------------------------------------------------------------
print "torture: SEED=$SEED ROUNDS=$ROUNDS TORTURE_SECONDS=$SECONDS "
    . "TORTURE_RATE=$RATE TORTURE_DRAIN=$DRAIN port $PORT"
    . ($PG ? " TORTURE_QUEUE=postgresql: edges on ports $PORT and $PORT_B, "
             . 'PostgreSQL on port ' . Siteflow::Pg::pg_port()
             . ', database faults instead of full-disk ones'
      : $TMPFS ? '' : ' (no tmpfs: no full-disk faults)')
    . ($ENV{TORTURE_BACKOFF} ? " TORTURE_BACKOFF=$ENV{TORTURE_BACKOFF}" : '')
    . ($BREAK ? " TORTURE_BREAK=$BREAK: every round should FAIL" : '') . "\n";
my @failed;
for my $n (1 .. $ROUNDS) {
    my $seed = $SEED + $n - 1;
    push @failed, $seed unless round($n, $seed);
    last if @failed && $ENV{TORTURE_STOP};
}
printf "torture: %d round(s), %d failed%s\n", $ROUNDS, scalar @failed,
    @failed ? " (seeds @failed)" : '';
exit(@failed ? 1 : 0);
