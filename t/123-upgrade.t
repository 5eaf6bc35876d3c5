# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: an upgrade keeps the work in the spool.  A spool that 0.2.0
# left behind with jobs in it (t/fixtures/spool-0.2.0, written by that
# version: see its README and t/tools/make-spool-020.pl) is read by this
# build: every job in it is delivered once, the order it had created is
# not created again, job ids go on above the old ones, and nothing is
# reported as damaged.
#
# Like t/121-crash.t, this file starts nginx itself (TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES), on a copy of the fixture spool.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Siteflow::Flow;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set (see docs/testing.md)'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $PORT = MockUpstream::free_port();
$ENV{TEST_NGINX_SERVER_PORT} = $PORT;
$ENV{TEST_NGINX_FIXTURES} = "$Siteflow::Flow::ROOT/t/fixtures";
my $FIXTURE = "$Siteflow::Flow::ROOT/t/fixtures/spool-0.2.0";
my $p;

Siteflow::Flow::start_mocks();
stateful();
pn_rules(map { { on => "GET /api/v2/order/$_", json => pn_order($_) } }
         8001 .. 8004);

# the spool as 0.2.0 left it
mkdir $ENV{TEST_NGINX_SPOOL} or die "$ENV{TEST_NGINX_SPOOL}: $!";
my @files = grep { !/README$/ } glob "$FIXTURE/*";
ok(scalar @files, 'the 0.2.0 spool has files: '
   . join(' ', map { s{.*/}{}r } @files));
copy($_, $ENV{TEST_NGINX_SPOOL}) or die "$_: $!" for @files;

$p = tempdir('siteflow-upgrade-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $server = storefront_conf();
$server =~ s/\$TEST_NGINX_SPOOL/$ENV{TEST_NGINX_SPOOL}/g;
ok(eval {
    nginx_start(prefix => $p, port => $PORT, workers => 2,
        http => "    siteflow_zone sf:4m;\n"
              . "    siteflow_spool $ENV{TEST_NGINX_SPOOL};\n"
              . "    siteflow_retry_backoff 100ms 500ms;\n",
        server => $server) }, 'this build starts on the 0.2.0 spool')
    or BAIL_OUT("cannot start nginx: $@");

my $jobs = admin_jobs();
is(join(', ', map { "$_->{id} $_->{kind} $_->{order_id}" }
                  sort { $a->{id} <=> $b->{id} } @{ $jobs // [] }),
   '1 order 8001, 2 order 8002, 3 order 8003, 4 update 8001',
   'the four jobs of the old spool are in the queue, with their ids');

is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ }
                           @{ $_[0] } }, timeout => 30), '',
   'the jobs of the old spool ran');
is(tally(orders => [8002, 8003]),
   "accepted 2\ncreated 2\nlost 0\nduplicated 0\n",
   'the orders accepted by 0.2.0 are created once, and no other');
my $looked = @{ mock_requests('siteflow', 'GET /api/order/bysourceid/PN-8001') };
my $sent = grep { (json_of($_->{body}) // {})->{orderData}{sourceOrderId}
                  eq 'PN-8001' } @{ mock_requests('siteflow', 'POST *') };
is("$looked $sent", '0 0',
   'order 8001 (in the old index as sent) is neither looked up nor sent');
my @ship = grep { $_->{path} =~ m{^/api/v2/order/8001/} }
           @{ mock_requests('printnow', 'PATCH *') };
is(join(' ', map { "$_->{path} " . ((json_of($_->{body}) // {})
                                    ->{tracking_number} // '-') } @ship),
   '/api/v2/order/8001/shipped T8001',
   'the postback accepted by 0.2.0 updated PrintNow once, with its tracking');

# the index knows 8001 and our update of it: PrintNow's echo of that
# update is recognised as ours, not taken for a change to send
my $r = hook({ event => 'order_updated', id => 8001 });
is("$r->{status} $r->{body}",
   qq(200 {"skipped":"echo of our own update of the order in PrintNow"}\n),
   'order_updated 8001 right after: the echo of our own update, skipped');
$r = hook({ event => 'order_created', id => 8004 });
is($r->{status}, 202, 'a new order accepted');
cmp_ok(job_of($r) // 0, '>', 4, 'its job id goes on above the old ones');
is(wait_until('8004 created', sub {
       tally(orders => [8002, 8003, 8004]) =~ /^lost 0$/m }), '',
   'the new order is created');
is(wait_jobs('idle', sub { !grep { $_->{state} =~ /pending|retrying/ }
                           @{ $_[0] } }), '', 'queue idle');
is(tally(orders => [8002, 8003, 8004]),
   "accepted 3\ncreated 3\nlost 0\nduplicated 0\n",
   'still nothing created twice, 8001 not at all');

is(nginx_stop($p), '', 'nginx stops');
my $log = do { local (@ARGV, $/) = "$p/logs/error.log"; <> } // '';
my @bad = grep { /\[(?:alert|crit|emerg)\]/ || /damaged/ } split /\n/, $log;
is(scalar @bad, 0, 'no alert, crit or damage reported')
    or diag(join "\n", @bad[0 .. ($#bad < 5 ? $#bad : 5)]);

END {
    if ($p) {
        my $pids = nginx_pids($p);
        kill 'KILL', @$pids if @$pids;
    }
}

done_testing();
