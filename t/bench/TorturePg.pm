package TorturePg;

# The PostgreSQL mode of the torture test (TORTURE_QUEUE=postgresql; see
# the top of t/bench/torture.pl and docs/testing.md, "The torture test"):
# the parts of t/bench/torture.pl that only this mode has.
#
#   - one private PostgreSQL per run (Siteflow::Pg::pg_start), its tables
#     emptied at the start of each round (as t/151-pg-fleet.t does);
#   - two nginx edges per round, "a" and "b", each with its own prefix
#     and port and 2 workers, the same module and configuration with
#     "siteflow_queue URL lease=3s;" instead of siteflow_spool;
#   - which edge a process fault of the schedule hits, and which edge a
#     hook or postback goes to (the edges that are up, as a load balancer
#     with health checks would choose);
#   - the database faults that replace the full disk: pg_kill (immediate
#     shutdown, i.e. a crash without checkpoint, then a start) and pg_stop
#     (a fast shutdown, LEN seconds down, then a start);
#   - the queue as the drain reads it (SQL on siteflow_jobs, in the shape
#     of the admin API's GET queue), the admin API of each edge checked
#     after the drain, and what a failing round keeps of the database.
#
# The error logs of both edges are checked as the spool's is, with no
# exception added: losing the connections to a database that was killed
# or stopped is logged at [error] ("connection to PostgreSQL lost",
# "connecting to PostgreSQL failed", "cannot claim jobs in PostgreSQL",
# "cannot read order ... from PostgreSQL", "the outcome of job N cannot be
# written to PostgreSQL now") and the server's goodbye at [warn]
# ("PostgreSQL said: WARNING:  terminating connection due to immediate
# shutdown command").  A database fault that brings an [alert], [crit]
# or [emerg] line fails the round, to be looked at.

use strict;
use warnings;
use Time::HiRes qw(time);
use Siteflow::Flow ();
use Siteflow::Pg ();

our $URL;
my @NAMES = qw(a b);
my @KIND = (undef, 'order', 'cancel', 'update');
my @STATE = qw(pending retrying done failed skipped);

# '' when the mode can run, else why not
sub unavailable {
    my ($module) = @_;
    my $why = Siteflow::Pg::pg_available();
    return $why if $why;
    open my $fh, '<:raw', $module or return "$module: $!";
    local $/;
    my $bytes = <$fh>;
    return 'the module was built without PostgreSQL support (libpq-dev '
        . 'missing when it was built)' unless $bytes =~ /PQconnectStart/;
    return '';
}

# once per run
sub start {
    $URL = Siteflow::Pg::pg_start();
    return $URL;
}

sub up { $Siteflow::Pg::Running ? 1 : 0 }

# the start of a round: the database up (a harness error may have left it
# down) and its tables emptied, as t/151-pg-fleet.t does between scenarios
sub round_start {
    Siteflow::Pg::pg_start() unless up();
    Siteflow::Pg::pg_empty();
    return;
}

# the two edges of a round: what write_conf() and start_nginx() read
sub edges {
    my ($R, @ports) = @_;
    return [map { +{
        name => $NAMES[$_], label => "edge $NAMES[$_]",
        prefix => "$R->{dir}/edge-$NAMES[$_]", port => $ports[$_],
        sf => $R->{sf}, pn => $R->{pn}, backoff => $R->{backoff},
        pg_url => $URL, up => 1, kills_w => 0, requests => 0,
    } } 0 .. $#NAMES];
}

# the faults that replace the full disk, twice each in the draw
sub fault_kinds { return (('pg_kill') x 2, ('pg_stop') x 2) }

# the edge of each process fault, drawn from a PRNG of its own (the
# schedule's draws stay those of the spool mode's code)
sub assign_edges {
    my ($sched, $rnd) = @_;
    for my $e (@$sched) {
        next unless $e->{kind} =~ /^(?:kill_worker|kill_master|reload|stop_start)$/;
        $e->{edge} = int($rnd->() * @NAMES);
        $e->{edge_name} = $NAMES[ $e->{edge} ];
    }
    return;
}

# a port for the next hook or postback: an edge that is up, drawn at
# random (an edge that was killed or stopped is out of the balancer)
sub port_picker {
    my ($R, $rnd) = @_;
    return sub {
        my @e = grep { $_->{up} } @{ $R->{edges} };
        @e = @{ $R->{edges} } unless @e;
        my $E = $e[ int($rnd->() * @e) ];
        $E->{requests}++;
        return $E->{port};
    };
}

# a database fault of the schedule; returns what happened, for the notes
sub db_fault {
    my ($R, $ev, $ends) = @_;
    my $k = $ev->{kind};
    return 'the database is down already' unless up();
    if ($k eq 'pg_kill') {
        my $t = time;
        my $ok = eval { Siteflow::Pg::pg_kill(); 1 };
        if (!$ok) {
            push @{ $R->{problems} }, "pg_kill: $@";
            return 'pg_kill failed';
        }
        $R->{db_faults}++;
        return sprintf 'database killed (immediate shutdown) and started '
            . 'again in %.1fs', time - $t;
    }
    if ($k eq 'pg_stop') {
        my $ok = eval { Siteflow::Pg::pg_stop(); 1 };
        if (!$ok) {
            push @{ $R->{problems} }, "pg_stop: $@";
            return 'pg_stop failed';
        }
        $R->{db_faults}++;
        push @$ends, [time + $ev->{len}, sub { db_start($R, 'after pg_stop') }];
        return 'database stopped';
    }
    die "db_fault: $k\n";
}

sub db_start {
    my ($R, $why) = @_;
    return if up();
    my $ok = eval { Siteflow::Pg::pg_start(); 1 };
    push @{ $R->{problems} }, "pg_start $why: $@" unless $ok;
    return;
}

# heal: the database up
sub heal { db_start($_[0], 'at heal') }

# the queue as the drain reads it: every job, newest first, in the shape
# of GET /admin/queue's jobs (state and kind names, ISO times); undef when
# the database cannot be read
sub queue_jobs {
    my @l = eval { Siteflow::Pg::pg_sql(
        "SELECT id, kind, order_id, state, attempts, "
        . "CASE WHEN state IN (0, 1) THEN " . _iso('next_ms') . " END, "
        . _iso('created_ms') . ", replace(replace(error, '|', '/'), "
        . "E'\\n', ' ') FROM siteflow_jobs ORDER BY id DESC") };
    return undef if $@;
    my @jobs;
    for (@l) {
        my ($id, $kind, $order, $state, $att, $next, $created, $err)
            = split /\|/, $_, 8;
        push @jobs, { id => $id, kind => $KIND[$kind] // "kind$kind",
            order_id => $order, state => $STATE[$state] // "state$state",
            attempts => $att, next_attempt => $next eq '' ? undef : $next,
            created => $created,
            last_error => ($err // '') eq '' ? undef : $err };
    }
    return \@jobs;
}

sub _iso {
    my ($col) = @_;
    return "to_char(to_timestamp($col / 1000.0) AT TIME ZONE 'UTC', "
        . "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";
}

# after the drain: each edge's admin API agrees with the database (no job
# pending, retrying or failed); the problems found.  A worker whose
# connections are still in their reconnection backoff (100 ms doubling to
# 5 s, docs/fleet.md) after a database fault near the end of the load
# answers 503 "the queue cannot be read now": asked again, bounded (any
# worker of the edge may take the request)
sub admin_check {
    my ($R) = @_;
    my @p;
    for my $E (@{ $R->{edges} }) {
        for my $st (qw(pending retrying failed)) {
            my ($r, $d);
            my $deadline = time + 20;
            while (1) {
                $r = Siteflow::Flow::http_request(port => $E->{port},
                    method => 'GET', timeout => 5, host => '127.0.0.1',
                    path => "/admin/queue?state=$st&limit=1000");
                $d = Siteflow::Flow::json_of($r->{body});
                last if $r->{status} == 200 || time > $deadline;
                Time::HiRes::sleep(0.25);
            }
            if ($r->{status} != 200 || ref $d ne 'HASH'
                || ref $d->{jobs} ne 'ARRAY')
            {
                push @p, "admin API of $E->{label}: GET queue?state=$st "
                    . "answered $r->{status} for 20 s: "
                    . substr($r->{body} // '', 0, 200);
                next;
            }
            push @p, "admin API of $E->{label}: " . @{ $d->{jobs} }
                . " $st job(s) after the drain: " . join(', ', map {
                "$_->{kind} $_->{order_id}" } grep { defined }
                @{ $d->{jobs} }[0 .. 4]) if @{ $d->{jobs} };
        }
    }
    return @p;
}

# what a failing round keeps: the jobs and the index as SQL sees them,
# the server's log
sub keep {
    my ($dir) = @_;
    eval { Siteflow::Pg::pg_start() unless up(); 1 } or return;
    for (['jobs.txt', 'SELECT id, kind, storefront, order_id, state, '
             . 'attempts, maybe_sent, ' . _iso('created_ms') . ' AS created, '
             . _iso('finished_ms') . ' AS finished, lease_owner, error '
             . 'FROM siteflow_jobs ORDER BY id'],
         ['index.txt', 'SELECT * FROM siteflow_index ORDER BY storefront, '
             . 'order_id']) {
        my ($file, $sql) = @$_;
        my @l = eval { Siteflow::Pg::pg_sql("\\pset tuples_only off\n$sql;") };
        open my $fh, '>', "$dir/$file" or next;
        print $fh $@ ? "psql: $@" : join("\n", @l, '');
        close $fh;
    }
    if (open my $fh, '>', "$dir/postgres.log") {
        print $fh Siteflow::Pg::pg_log();
        close $fh;
    }
    return;
}

sub notes {
    my ($R) = @_;
    return sprintf('edges: %s; database faults: %d', join(', ', map {
        "$_->{label} on port $_->{port} got $_->{requests} request(s)" }
        @{ $R->{edges} }), $R->{db_faults} // 0);
}

1;
