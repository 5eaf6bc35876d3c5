# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: t/lib/Siteflow/Pg.pm gives a test file a private PostgreSQL
# that behaves as the shared-queue tests need: started as an unprivileged
# user (also when the suite runs as root), reachable at the URL it
# returns as role "siteflow" over TCP, durable across a restart and an
# immediate (crash-like) shutdown, really down after pg_stop, separate
# for another TEST_NGINX_PORT running at the same time, refusing a port
# that is taken, and gone (processes and directory) when the test process
# ends.  Its edge helper starts a second nginx with a prefix of its own,
# kills it with SIGKILL and stops it.  No nginx module is needed (the
# edge part is skipped without an nginx binary).
#
# Run from the repository root:  prove -v t/runner/pg-selftest.t

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempfile);
use IO::Socket::INET;
use Siteflow::Pg;

my $why = pg_available();
plan skip_all => $why if $why;

# a port of our own so that a suite running at the same time on the
# default port is not disturbed
$ENV{TEST_NGINX_PORT} ||= 1984 + 200 + $$ % 500 * 10;
delete $ENV{TEST_SITEFLOW_PG_PORT};

my $port = pg_port();
is($port, $ENV{TEST_NGINX_PORT} + 7, 'port is TEST_NGINX_PORT + 7');

my $url = pg_start();
is($url, "postgresql://siteflow\@127.0.0.1:$port/siteflow?sslmode=disable",
   'pg_start returns the URL');
is($ENV{TEST_SITEFLOW_PG}, $url, '$TEST_SITEFLOW_PG is set');
is($ENV{TEST_NGINX_PG_URL}, $url, '$TEST_NGINX_PG_URL is set');
is(pg_start(), $url, 'pg_start again while running: the same URL');

is(scalar pg_sql('select 1'), '1', 'select 1');
is_deeply([pg_sql("select 1; select 'a' union all select 'b' order by 1")],
          [1, 'a', 'b'], 'output lines of several statements');

# as nginx will connect: the URL, over TCP, as role siteflow
my $psql = Siteflow::Pg::_bindir() . '/psql';
my $who = `$psql -X -At -c 'select current_user, current_database(), current_setting(\$\$fsync\$\$), current_setting(\$\$max_connections\$\$)' '$url' 2>&1`;
is($who, "siteflow|siteflow|on|100\n",
   'the URL connects as siteflow to siteflow; fsync on, max_connections 100');

# the module creates its tables on its first connection: the role can
is(scalar pg_sql('create table t (id int primary key, v text); '
                 . "insert into t values (1, 'before restart')",
                 user => 'siteflow', host => '127.0.0.1'), '',
   'siteflow may create tables in its database');
is(scalar pg_sql('select rolsuper from pg_roles where rolname = current_user',
                 user => 'siteflow'), 'f', 'siteflow is not a superuser');

eval { pg_sql('select * from no_such_table') };
like($@, qr/no_such_table/, 'an SQL error dies with psql\'s message');

# the server runs as an unprivileged user
my $pidfile = pg_dir() . '/data/postmaster.pid';
open my $pf, '<', $pidfile or die "$pidfile: $!";
my ($pid) = <$pf> =~ /(\d+)/;
close $pf;
my $uid = (stat "/proc/$pid")[4];
isnt($uid, 0, 'postgres does not run as root (uid ' . $uid . ')');

ok(pg_restart(), 'pg_restart');
is(scalar pg_sql('select v from t where id = 1'), 'before restart',
   'data kept across a restart');

pg_sql("insert into t values (2, 'before kill')");
ok(pg_kill(), 'pg_kill (immediate shutdown, then start)');
is(scalar pg_sql('select count(*) from t'), '2',
   'committed rows survive an immediate shutdown');
like(pg_log(), qr/not properly shut down|automatic recovery|redo/,
     'the start after pg_kill ran crash recovery');

ok(pg_kill(stay_down => 1), 'pg_kill(stay_down => 1)');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                          Proto => 'tcp', Timeout => 2),
   'down: the port refuses connections');
is(pg_start(), $url, 'pg_start brings it back');

# another TEST_NGINX_PORT at the same time: a cluster of its own; a port
# that is taken is refused with a reason
{
    my $other = $ENV{TEST_NGINX_PORT} + 100;
    my $code = <<'EOP';
use lib 't/lib';
use Siteflow::Pg;
my $u = pg_start();
pg_sql("create table mine (v text); insert into mine values ('other')");
print "$u\n", scalar pg_sql('select v from mine'), "\n",
      scalar pg_sql("select count(*) from pg_tables where tablename = 't'"),
      "\n", pg_dir(), "\n";
EOP
    my ($fh, $script) = tempfile('pg-selftest-XXXXXX', TMPDIR => 1,
                                 UNLINK => 1);
    print $fh $code;
    close $fh;
    my $out = do { local $ENV{TEST_NGINX_PORT} = $other;
                   `$^X $script 2>&1` };
    my ($u, $v, $t, $dir) = split /\n/, $out;
    is($u // '', 'postgresql://siteflow@127.0.0.1:' . ($other + 7)
                 . '/siteflow?sslmode=disable',
       'a second TEST_NGINX_PORT gets its own port') or diag $out;
    is($v // '', 'other', 'its cluster works while ours runs');
    is($t // '', '0', 'and is not ours (no table t)');
    ok($dir && !-e $dir, 'its directory is removed when it exits');
    ok(IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                             Proto => 'tcp', Timeout => 2),
       'ours still runs');

    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp', Listen => 1) or die "listen: $!";
    $out = do { local $ENV{TEST_SITEFLOW_PG_PORT} = $busy->sockport;
                `$^X $script 2>&1` };
    like($out, qr/port \d+ .*is in use/, 'a port in use is refused, saying so');
}

# edges (no module needed: plain nginx)
SKIP: {
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    skip "no nginx binary ($bin)", 10
        unless grep { -x "$_/$bin" || ($bin =~ m{/} && -x $bin) }
                    split(/:/, $ENV{PATH}), '/usr/sbin', '';
    local $ENV{TEST_NGINX_LOAD_MODULES} = '';
    local $ENV{TEST_NGINX_SELFTEST_TEXT} = 'edge-b';
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1);
    my $eport = $s->sockport;
    close $s;
    my $e = edge_start(name => 'b', port => $eport, workers => 2,
        http_config => '    default_type text/plain;',
        config => '    location = /who { return 200 "$TEST_NGINX_SELFTEST_TEXT\n"; }');
    my $r = Siteflow::Flow::http_request(port => $eport, method => 'GET',
                                         path => '/who');
    is("$r->{status} $r->{body}", "200 edge-b\n",
       'edge b answers with its own config ($TEST_NGINX_* expanded)');
    my $pids = $e->pids;
    is(scalar @$pids, 3, 'pids: master and 2 workers');
    like($e->error_log, qr/\[notice\].*start worker process/,
         'error_log: its own file');
    my $conf = do { local (@ARGV, $/) = $e->prefix . '/conf/nginx.conf'; <> };
    like($conf, qr{error_log \S+/logs/error\.log info;}, 'error_log at info');
    is($e->kill9, 3, 'kill9 kills master and workers');
    ok(!grep({ Siteflow::Pg::_alive($_) } @$pids), 'all gone');
    ok($e->start, 'start again on the same prefix');
    $r = Siteflow::Flow::http_request(port => $eport, method => 'GET',
                                      path => '/who');
    is($r->{status}, 200, 'answers again');
    is($e->stop, '', 'stop: graceful, every process exited');
    my $p = $e->prefix;
    my $e2 = edge_start(name => 'c', port => $eport);
    isnt($e2->prefix, $p, 'a second edge has a prefix of its own');
}

my $dir = pg_dir();
ok(pg_stop(), 'pg_stop');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                          Proto => 'tcp', Timeout => 2),
   'stopped: the port refuses connections');
ok(-d $dir, 'the directory stays until the process ends');

done_testing();
