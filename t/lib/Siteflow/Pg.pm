package Siteflow::Pg;

# A private PostgreSQL for the tests of the shared queue (siteflow_queue),
# and a second (third, ...) nginx "edge" for two-edge tests.  Core Perl
# only; the server is Debian's "postgresql" package (make deps), found in
# /usr/lib/postgresql/<highest version>/bin (SITEFLOW_PG_BINDIR overrides).
# No system service is used or touched.
#
#     use lib 't/lib';
#     use Siteflow::Test;            # or Test::More, for a plain .t file
#     use Siteflow::Pg;              # exports the functions below
#
#     my $why = pg_available();
#     plan skip_all => $why if $why;
#     pg_start();                    # then $TEST_NGINX_PG_URL in configs
#     ...
#     is(pg_sql("select count(*) from siteflow_jobs where state = 'done'"), 3);
#
# pg_available()   '' when a cluster can be started here, else a one-line
#                  reason (for plan skip_all).  Starts nothing.
# pg_start()       initdb (first call) and start one cluster for this test
#                  file, in a directory of its own under the temporary
#                  directory (siteflow-pg-PORT-XXXXXX), removed at exit.
#                  Returns the URL
#                      postgresql://siteflow@127.0.0.1:PORT/siteflow?sslmode=disable
#                  and puts it in $ENV{TEST_SITEFLOW_PG} and
#                  $ENV{TEST_NGINX_PG_URL} (both runners substitute only
#                  $TEST_NGINX_* variables in config sections: use
#                  $TEST_NGINX_PG_URL there).  Calling it again while the
#                  cluster runs returns the URL; after pg_stop() it starts
#                  the same cluster (its data kept).
# pg_stop()        fast shutdown (connections are cut), waits for it
# pg_restart()     pg_stop() then pg_start(); data kept
# pg_kill(%o)      immediate shutdown (like a crash of the server: no
#                  checkpoint, crash recovery at the next start), then
#                  starts it again; stay_down => 1 leaves it down (bring
#                  it back with pg_start()).  Committed data survives:
#                  fsync=on.
# pg_sql($sql, %o) runs $sql (one or more statements) with psql -X -At -q
#                  -v ON_ERROR_STOP=1 on the cluster's unix socket, as the
#                  superuser "postgres" in database "siteflow" (user =>,
#                  db => change them); dies with psql's error.  Returns
#                  the output lines (list context) or them joined by "\n"
#                  (scalar context: the value of a one-value query).
# pg_empty()       empties the module's queue: its jobs, its sent-orders
#                  index, the horizon, and schema rows newer than 1 (a
#                  no-op before the module has created its tables).
#                  An nginx of this or the previous test may be running
#                  against the tables meanwhile (its first connection
#                  prunes, its worker 0 claims): TRUNCATE then meets their
#                  locks in another order and one side can be chosen as
#                  the deadlock victim.  The statement is retried, up to
#                  50 times, when it is the victim or waits more than 2 s
#                  for a lock (t/lib/Siteflow/pg-empty.sql).
# pg_session()     a psql kept open (as pg_sql's user and database,
#                  without ON_ERROR_STOP) for a transaction that must
#                  stay open while the test does something else: returns
#                  a handle; $s->send($sql) writes (and flushes) it,
#                  $s->close ends psql (an open transaction rolls back)
#                  and returns what it printed, errors included.
# pg_url()         the URL (undef before pg_start)
# pg_port()        the port pg_start() uses
# pg_log()         the server's log so far (for diag on a failure)
# pg_dir()         the cluster's directory
#
# The cluster: listen_addresses 127.0.0.1 only, port TEST_NGINX_PORT + 7
# (default 1984 + 7 = 1991; TEST_SITEFLOW_PG_PORT overrides), the unix
# socket in its directory, fsync=on, synchronous_commit=on,
# max_connections=100, trust authentication (local and 127.0.0.1/32),
# role "siteflow" (LOGIN, not superuser) owning database "siteflow" (it
# may create tables in schema public, as the module does on its first
# connection), superuser "postgres".  Port choice: the mocks of
# Siteflow::Flow, and $TEST_NGINX_SHOP2_PORT and the ports of t/121,
# come from the kernel's ephemeral range (32768-60999), nginx under test
# listens on TEST_NGINX_PORT (or TEST_NGINX_SERVER_PORT), the demo on
# 8090-8093: +7 meets none of them.  Runs with different TEST_NGINX_PORT
# values (not 7 apart) have different clusters and can run at the same
# time.  A port already taken makes pg_start() die saying so; a cluster
# left behind by a test process that was killed (its directory names the
# port, and the pid of its owner is dead) is stopped and removed first.
#
# As root (CI), initdb and postgres refuse to run: they run as "postgres"
# (the package's user; "nobody" if it does not exist) with runuser -u,
# and the directory is given to that user.  As any other user they run
# as that user.  psql and pg_isready run as the caller.
#
# At exit (END; also on SIGINT/SIGTERM to the process that called
# pg_start() or edge_start(), when the test file has no handler of its
# own) the cluster is stopped and its directory removed, and every
# edge still running is stopped and its prefix removed.  Only the process
# that started them does this (not forked children).
#
# Edges.  Siteflow::Flow::nginx_start() (t/121-crash.t) already starts an
# nginx with a prefix, port and configuration of its own, and can run
# twice with two prefixes; edge_start() wraps the same pieces
# (nginx_pids, http_request) in a handle, with error_log at "info", one
# worker by default, and a readiness check that needs no /ping location:
#
#     my $b = edge_start(name => 'b', port => $PORT_B,      # required
#                        http_config => "siteflow_zone sf:4m;\n"
#                                     . "siteflow_queue $url lease=2s;\n",
#                        config => storefront_conf(),       # server{} body
#                        workers => 1,                      # default 1
#                        main_config => '');                # top level
#     $b->pids        # [master, workers...] (from its pid file and /proc)
#     $b->kill9       # SIGKILL to the master and all workers; waits
#     $b->start       # starts it again with the same prefix and conf
#     $b->stop        # graceful (QUIT); '' when every process exited
#     $b->error_log   # the content of its error log
#     $b->port, $b->prefix, $b->name
#
# It writes PREFIX/conf/nginx.conf: load_module for each .so of
# $TEST_NGINX_LOAD_MODULES, daemon on, master_process on,
# worker_processes, error_log PREFIX/logs/error.log info, pid, events,
# http { access_log off; temp paths in PREFIX; http_config; server {
# listen 127.0.0.1:PORT; config } }, with $TEST_NGINX_* replaced by the
# environment (an unset one dies), runs $TEST_NGINX_BINARY (default
# "nginx" in PATH), and waits (bounded, 10 s) until the port answers any
# HTTP status; it dies with the end of the error log otherwise.  The
# prefix is siteflow-edge-NAME-XXXXXX in the temporary directory.

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(ESRCH);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    pg_available pg_start pg_stop pg_restart pg_kill pg_sql pg_empty
    pg_session pg_url pg_port pg_log pg_dir edge_start
);

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');

our ($Bin, $User, $Dir, $Port, $Url, $Owner, $Running, @Edges);
our $SqlSeq = 0;

our $SUPERUSER = 'postgres';
our $ROLE      = 'siteflow';
our $DB        = 'siteflow';
our $WAIT      = $ENV{SITEFLOW_PG_TIMEOUT} || 30;

# ---------------------------------------------------------------------------
# where things are
# ---------------------------------------------------------------------------

sub _bindir {
    return $ENV{SITEFLOW_PG_BINDIR} if $ENV{SITEFLOW_PG_BINDIR};
    my @v = sort { _vercmp($b, $a) }
        map { m{^/usr/lib/postgresql/([^/]+)/bin/initdb$} ? $1 : () }
        glob '/usr/lib/postgresql/*/bin/initdb';
    return @v ? "/usr/lib/postgresql/$v[0]/bin" : undef;
}

sub _vercmp {
    my ($x, $y) = @_;
    my @x = split /\./, $x;
    my @y = split /\./, $y;
    while (@x || @y) {
        my ($p, $q) = (shift(@x) // 0, shift(@y) // 0);
        my $c = ($p =~ /^\d+$/ && $q =~ /^\d+$/) ? $p <=> $q : $p cmp $q;
        return $c if $c;
    }
    return 0;
}

sub _runuser {
    for my $d (qw(/usr/sbin /sbin /usr/bin /bin)) {
        return "$d/runuser" if -x "$d/runuser";
    }
    return undef;
}

sub pg_port {
    return $ENV{TEST_SITEFLOW_PG_PORT} if $ENV{TEST_SITEFLOW_PG_PORT};
    return ($ENV{TEST_NGINX_PORT} || 1984) + 7;
}

sub pg_url { $Url }
sub pg_dir { $Dir }

# ---------------------------------------------------------------------------
# availability
# ---------------------------------------------------------------------------

sub pg_available {
    my $bin = _bindir()
        // return 'PostgreSQL is not installed (no '
                  . '/usr/lib/postgresql/*/bin/initdb; Debian package '
                  . '"postgresql", make deps)';
    for my $t (qw(initdb pg_ctl postgres psql pg_isready)) {
        return "PostgreSQL's $t is missing in $bin" unless -x "$bin/$t";
    }
    if ($> == 0) {
        return 'running as root, and runuser (util-linux) is missing to '
               . 'run initdb/postgres as an unprivileged user'
            unless _runuser();
        return 'running as root, and neither user "postgres" nor '
               . '"nobody" exists to run initdb/postgres'
            unless defined _pg_user();
    }
    my $p = pg_port();
    return "the PostgreSQL port $p is out of range (TEST_NGINX_PORT + 7)"
        unless $p =~ /^\d+$/ && $p > 0 && $p < 65536;
    return '';
}

sub _pg_user {
    for my $u (qw(postgres nobody)) {
        return $u if defined getpwnam($u);
    }
    return undef;
}

# ---------------------------------------------------------------------------
# running commands
# ---------------------------------------------------------------------------

# a command of the server's (initdb, pg_ctl) as the unprivileged user
sub _server_cmd {
    my (@cmd) = @_;
    return $> == 0 ? (_runuser(), '-u', $User, '--', @cmd) : @cmd;
}

# runs @$cmd in $dir with stdin from /dev/null; returns ($?, stdout,
# stderr); stderr goes to stdout unless $o{stderr} names a file
sub _run {
    my ($cmd, %o) = @_;
    my $pid = open(my $fh, '-|');
    die "Siteflow::Pg: fork: $!\n" unless defined $pid;
    if (!$pid) {
        chdir($o{dir} // $Dir // '/') or chdir '/';
        open STDIN, '<', '/dev/null';
        if ($o{stderr}) { open STDERR, '>', $o{stderr} }
        else            { open STDERR, '>&', \*STDOUT }
        { exec { $cmd->[0] } @$cmd }
        print STDERR "exec $cmd->[0]: $!\n";
        POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    my $rc = $?;
    my $err = '';
    if ($o{stderr} && open my $e, '<', $o{stderr}) {
        $err = do { local $/; <$e> } // '';
    }
    return ($rc, $out, $err);
}

sub _must {
    my ($what, $cmd, %o) = @_;
    my ($rc, $out) = _run($cmd, %o);
    return $out unless $rc;
    my $log = pg_log();
    $log = "\n--- server log (end) ---\n" . substr($log, -3000) if $log ne '';
    die "Siteflow::Pg: $what failed (status $rc): @$cmd\n$out$log\n";
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    # a zombie (nobody reaps it, e.g. no init in a container) is gone
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $l = <$fh> // return 1;
    return $l =~ /^\d+ \(.*\) Z/ ? 0 : 1;
}

sub _port_free {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $port, Proto => 'tcp', Listen => 1, ReuseAddr => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# ---------------------------------------------------------------------------
# the cluster
# ---------------------------------------------------------------------------

# a cluster of this port whose owner (a test process) died without its
# END block: stop it, remove it
sub _reap_stale {
    my ($port) = @_;
    for my $d (glob File::Spec->catfile(File::Spec->tmpdir,
                                        "siteflow-pg-$port-*")) {
        open my $fh, '<', "$d/owner" or next;
        my ($pid) = (<$fh> // '') =~ /^(\d+)/ or next;
        close $fh;
        next if $pid == $$;
        next if kill(0, $pid) || $! != ESRCH;     # its owner still runs
        if (-f "$d/data/postmaster.pid") {
            my $u = getpwuid((stat "$d/data")[4]) // $User;
            local $User = $u;
            _run([_server_cmd("$Bin/pg_ctl", '-D', "$d/data", '-m',
                              'immediate', '-w', '-t', 10, 'stop')],
                 dir => $d);
        }
        remove_tree($d);
    }
}

sub _write {
    my ($file, $text, $append) = @_;
    open my $fh, $append ? '>>' : '>', $file
        or die "Siteflow::Pg: $file: $!\n";
    print $fh $text;
    close $fh or die "Siteflow::Pg: $file: $!\n";
}

sub _init {
    my $why = pg_available();
    die "Siteflow::Pg: $why\n" if $why;
    $Bin = _bindir();
    $Port = pg_port();
    $User = $> == 0 ? _pg_user() : scalar getpwuid($>);
    _reap_stale($Port);
    $Owner = $$;
    $Dir = tempdir("siteflow-pg-$Port-XXXXXX", TMPDIR => 1);
    _write("$Dir/owner", "$$\n");
    if ($> == 0) {
        my ($uid, $gid) = (getpwnam $User)[2, 3];
        chown $uid, $gid, $Dir or die "Siteflow::Pg: chown $Dir: $!\n";
        my ($rc) = _run([_server_cmd('/usr/bin/test', '-w', $Dir, '-a',
                                     '-x', $Dir)]);
        die "Siteflow::Pg: user $User cannot write $Dir (is the temporary "
            . "directory " . File::Spec->tmpdir . " reachable by $User?)\n"
            if $rc;
    }
    _must('initdb', [_server_cmd("$Bin/initdb", '-D', "$Dir/data",
        '-U', $SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C',
        '--no-sync')]);
    _write("$Dir/data/postgresql.conf", <<"EOC", 1);

# Siteflow::Pg
listen_addresses = '127.0.0.1'
port = $Port
unix_socket_directories = '$Dir'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 100
shared_buffers = 16MB
dynamic_shared_memory_type = mmap
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOC
    _write("$Dir/data/pg_hba.conf", <<"EOC");
# Siteflow::Pg: trust, on the unix socket and 127.0.0.1 only
local all all trust
host  all all 127.0.0.1/32 trust
EOC
    return;
}

sub pg_start {
    _signals();
    if (!$Dir) {
        _init();
    } elsif ($Running) {
        return $Url;
    }
    die "Siteflow::Pg: port $Port (TEST_NGINX_PORT + 7, or "
        . "TEST_SITEFLOW_PG_PORT) is in use; pick another TEST_NGINX_PORT\n"
        unless _port_free($Port);
    _must('pg_ctl start', [_server_cmd("$Bin/pg_ctl", '-D', "$Dir/data",
        '-l', "$Dir/postgres.log", '-w', '-t', $WAIT, 'start')]);
    $Running = 1;
    _ready();
    $Url = "postgresql://$ROLE\@127.0.0.1:$Port/$DB?sslmode=disable";
    if (!-e "$Dir/created") {
        pg_sql(qq{CREATE ROLE "$ROLE" LOGIN}, db => 'postgres');
        pg_sql(qq{CREATE DATABASE "$DB" OWNER "$ROLE"}, db => 'postgres');
        _write("$Dir/created", '');
    }
    $ENV{TEST_SITEFLOW_PG} = $ENV{TEST_NGINX_PG_URL} = $Url;
    return $Url;
}

# bounded: pg_isready over TCP, as nginx connects
sub _ready {
    my $deadline = time + $WAIT;
    my $out = '';
    while (time < $deadline) {
        my $rc;
        ($rc, $out) = _run(["$Bin/pg_isready", '-q', '-h', '127.0.0.1',
                            '-p', $Port, '-U', $SUPERUSER, '-d', 'postgres',
                            '-t', 2]);
        return if $rc == 0;
        sleep 0.05;
    }
    die "Siteflow::Pg: the server on 127.0.0.1:$Port is not ready after "
        . "$WAIT s\n" . substr(pg_log(), -3000) . "\n";
}

sub _stop {
    my ($mode) = @_;
    return '' unless $Dir && $Running;
    my ($rc, $out) = _run([_server_cmd("$Bin/pg_ctl", '-D', "$Dir/data",
        '-m', $mode, '-w', '-t', $WAIT, 'stop')]);
    if ($rc && $mode ne 'immediate') {
        ($rc, $out) = _run([_server_cmd("$Bin/pg_ctl", '-D', "$Dir/data",
            '-m', 'immediate', '-w', '-t', $WAIT, 'stop')]);
    }
    $Running = 0 unless $rc;
    return $rc ? "pg_ctl stop: $out" : '';
}

sub pg_stop {
    my $e = _stop('fast');
    die "Siteflow::Pg: $e\n" if $e;
    return 1;
}

sub pg_restart {
    pg_stop();
    return pg_start();
}

sub pg_kill {
    my (%o) = @_;
    my $e = _stop('immediate');
    die "Siteflow::Pg: $e\n" if $e;
    return 1 if $o{stay_down};
    return pg_start();
}

sub pg_sql {
    my ($sql, %o) = @_;
    die "Siteflow::Pg: pg_sql before pg_start\n" unless $Dir && $Running;
    my $n = ++$SqlSeq;
    my $file = "$Dir/sql-$$-$n.sql";
    _write($file, $sql);
    my ($rc, $out, $err) = _run(["$Bin/psql", '-X', '-A', '-t', '-q',
        '-v', 'ON_ERROR_STOP=1', '-h', $o{host} // $Dir, '-p', $Port,
        '-U', $o{user} // $SUPERUSER, '-d', $o{db} // $DB, '-f', $file],
        stderr => "$file.err");
    unlink $file, "$file.err";
    if ($rc) {
        $err =~ s/\s+\z//;
        $err =~ s/\n/ | /g;
        die "Siteflow::Pg: psql failed (status $rc): $err -- on: $sql\n";
    }
    my @l = split /\n/, $out;
    return wantarray ? @l : join "\n", @l;
}

sub pg_empty {
    my $file = dirname(__FILE__) . '/pg-empty.sql';
    open my $fh, '<', $file or die "Siteflow::Pg: $file: $!\n";
    my $sql = do { local $/; <$fh> };
    return scalar pg_sql($sql);
}

sub pg_session {
    my (%o) = @_;
    die "Siteflow::Pg: pg_session before pg_start\n" unless $Dir && $Running;
    my $out = "$Dir/session-$$-" . ++$SqlSeq . '.out';
    my $pid = open(my $fh, '|-');
    die "Siteflow::Pg: fork: $!\n" unless defined $pid;
    if (!$pid) {
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        { exec { "$Bin/psql" } "$Bin/psql", '-X', '-A', '-t', '-q', '-h',
              $o{host} // $Dir, '-p', $Port, '-U', $o{user} // $SUPERUSER,
              '-d', $o{db} // $DB }
        POSIX::_exit(127);
    }
    my $old = select $fh;
    $| = 1;
    select $old;
    return bless { fh => $fh, out => $out }, 'Siteflow::Pg::Session';
}

sub Siteflow::Pg::Session::send {
    my ($s, $sql) = @_;
    print { $s->{fh} } "$sql\n";
    return;
}

sub Siteflow::Pg::Session::close {
    my ($s) = @_;
    return '' unless $s->{fh};
    close delete $s->{fh};
    my $text = '';
    if (open my $in, '<', $s->{out}) { local $/; $text = <$in> // '' }
    unlink $s->{out};
    return $text;
}

sub pg_log {
    return '' unless $Dir && open my $fh, '<', "$Dir/postgres.log";
    return do { local $/; <$fh> } // '';
}

# ---------------------------------------------------------------------------
# edges
# ---------------------------------------------------------------------------

sub edge_start {
    my (%o) = @_;
    require Siteflow::Flow;
    _signals();
    die "edge_start: port => N is required\n" unless $o{port};
    my $name = $o{name} // 'edge';
    die "edge_start: bad name \"$name\"\n" unless $name =~ /^[\w.-]+$/;
    my $p = tempdir("siteflow-edge-$name-XXXXXX", TMPDIR => 1);
    chmod 0755, $p;     # workers (user nobody as root) reach their files
    make_path("$p/conf", "$p/logs");
    my $mods = join '', map { "load_module $_;\n" }
        split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
    my $conf = <<"EOC";
${mods}daemon on;
master_process on;
worker_processes @{[ $o{workers} // 1 ]};
error_log $p/logs/error.log info;
pid $p/logs/nginx.pid;
@{[ $o{main_config} // '' ]}
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $p/client_body_temp;
    proxy_temp_path $p/proxy_temp;
    fastcgi_temp_path $p/fastcgi_temp;
    uwsgi_temp_path $p/uwsgi_temp;
    scgi_temp_path $p/scgi_temp;
@{[ $o{http_config} // '' ]}
    server {
        listen 127.0.0.1:$o{port};
@{[ $o{config} // '' ]}
    }
}
EOC
    $conf =~ s{\$(TEST_NGINX_[A-Z0-9_]+)}{
        $ENV{$1} // die "edge_start: \$$1 is not set\n" }ge;
    _write("$p/conf/nginx.conf", $conf);
    my $e = bless { name => $name, port => $o{port}, prefix => $p,
                    owner => $$ }, 'Siteflow::Pg::Edge';
    push @Edges, $e;
    $e->start;
    return $e;
}

# ---------------------------------------------------------------------------
# clean-up
# ---------------------------------------------------------------------------

sub _cleanup {
    for my $e (@Edges) {
        next unless $e->{owner} == $$;
        eval { $e->stop(5) };
        remove_tree($e->{prefix}) if -d $e->{prefix};
    }
    @Edges = ();
    return unless $Dir && defined $Owner && $Owner == $$;
    _stop('fast') if $Running;
    _stop('immediate') if $Running;
    remove_tree($Dir);
    $Dir = undef;
}

# SIGINT/SIGTERM run the END block (stop and remove what we started),
# unless the test file has handlers of its own; installed by pg_start()
# and edge_start(), for the process that called them: a forked child
# (the runner's TCP server, ...) still dies of the signal as before
our $SigPid;

sub _signals {
    return if defined $SigPid;
    $SigPid = $$;
    for my $sig (qw(INT TERM)) {
        my $h = $SIG{$sig};
        next if defined $h && $h ne '' && $h ne 'DEFAULT';
        $SIG{$sig} = sub {
            if ($$ == $SigPid) {
                exit 128 + ($sig eq 'INT' ? POSIX::SIGINT() : POSIX::SIGTERM());
            }
            $SIG{$sig} = 'DEFAULT';
            kill $sig, $$;
        };
    }
}

END {
    my $rc = $?;
    _cleanup();
    $? = $rc;
}


package Siteflow::Pg::Edge;

use strict;
use warnings;
use Time::HiRes qw(sleep time);

sub name   { $_[0]{name} }
sub port   { $_[0]{port} }
sub prefix { $_[0]{prefix} }

sub pids { Siteflow::Flow::nginx_pids($_[0]{prefix}) }

sub start {
    my ($self) = @_;
    my $p = $self->{prefix};
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    unlink "$p/logs/nginx.pid";
    my $out = `$bin -p $p/ -c $p/conf/nginx.conf 2>&1`;
    die "edge_start($self->{name}): $bin failed: $out\n" if $?;
    my $deadline = time + 10;
    while (1) {
        my $m = $self->pids->[0];
        my $r = Siteflow::Flow::http_request(port => $self->{port},
            method => 'GET', path => '/', timeout => 1);
        return $m if $m && $r->{status};
        if (time > $deadline || ($m && !Siteflow::Pg::_alive($m))) {
            my $log = substr($self->error_log, -3000);
            die "edge_start($self->{name}): nginx does not answer on "
                . "127.0.0.1:$self->{port}\n$log\n";
        }
        sleep 0.05;
    }
}

sub _wait_gone {
    my ($pids, $timeout) = @_;
    my $deadline = time + $timeout;
    while (grep { Siteflow::Pg::_alive($_) } @$pids) {
        return 0 if time > $deadline;
        sleep 0.02;
    }
    return 1;
}

# SIGKILL to the master and every worker; returns how many were killed
sub kill9 {
    my ($self) = @_;
    my $pids = [grep { Siteflow::Pg::_alive($_) } @{ $self->pids }];
    kill 'KILL', @$pids if @$pids;
    _wait_gone($pids, 10)
        or die "edge $self->{name}: processes @$pids survive SIGKILL\n";
    return scalar @$pids;
}

# graceful stop (QUIT); '' when every process exited, else the reason
# (they are then killed)
sub stop {
    my ($self, $timeout) = @_;
    my $pids = [grep { Siteflow::Pg::_alive($_) } @{ $self->pids }];
    return '' unless @$pids;
    kill 'QUIT', $pids->[0];
    return '' if _wait_gone($pids, $timeout // 15);
    kill 'KILL', @$pids;
    _wait_gone($pids, 5);
    return "edge $self->{name}: did not exit on QUIT within "
        . ($timeout // 15) . " s (killed)";
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{prefix}/logs/error.log" or return '';
    return do { local $/; <$fh> } // '';
}

1;
