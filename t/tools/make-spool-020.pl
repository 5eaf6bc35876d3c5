#!/usr/bin/perl
#
# Writes t/fixtures/spool-0.2.0/: a spool left by the 0.2.0 module (commit
# cddf94e) when it was stopped with work in it, for t/123-upgrade.t.
# It is run once, by hand, from a 0.2.0 checkout with its module built:
#
#   git worktree add /tmp/sf020 cddf94e
#   (cd /tmp/sf020 && t/tools/build.sh /tmp/sf020/t/build)
#   cd /tmp/sf020 && TEST_NGINX_BINARY=/usr/sbin/nginx \
#       TEST_NGINX_LOAD_MODULES=/tmp/sf020/t/build/ngx_http_siteflow_module.so \
#       perl /path/to/this/t/tools/make-spool-020.pl /path/to/this/t/fixtures
#
# What the spool holds when 0.2.0 stops:
#   - order 8001 created in SiteFlow (the sent-orders index has it);
#   - orders 8002 and 8003 accepted while PrintNow and SiteFlow answered
#     503: order jobs, retrying;
#   - a "shipped" postback for 8001 (tracking T8001) accepted meanwhile: a
#     PrintNow update job, pending (the storefront's breaker holds it).
# README in the fixture directory says the same, with the job ids.

use strict;
use warnings;
use lib 't/lib';
use File::Copy qw(copy);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use Siteflow::Flow;

my $out = shift // die "usage: $0 FIXTURES_DIR\n";
my $port = MockUpstream::free_port();
$ENV{TEST_NGINX_SERVER_PORT} = $port;
$ENV{TEST_NGINX_FIXTURES} = "$Siteflow::Flow::ROOT/t/fixtures";
Siteflow::Flow::start_mocks();
my $p = tempdir('sf020-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $server = storefront_conf();
$server =~ s/\$TEST_NGINX_SPOOL/$ENV{TEST_NGINX_SPOOL}/g;
nginx_start(prefix => $p, port => $port, workers => 2,
    http => "    siteflow_zone sf:4m;\n"
          . "    siteflow_spool $ENV{TEST_NGINX_SPOOL};\n"
          . "    siteflow_retry_backoff 1s 300s;\n",
    server => $server);

my @ids;
stateful();
pn_rules(map { { on => "GET /api/v2/order/$_", json => pn_order($_) } }
         8001 .. 8003);
my $r = hook({ event => 'order_created', id => 8001 });
die "8001: $r->{status}\n" unless $r->{status} == 202;
push @ids, "8001 order " . job_of($r);
my $e = wait_requests(siteflow => 'POST /api/order', 1, 20);
die "$e\n" if $e;
$e = wait_jobs('8001 done', sub { !grep { $_->{state} =~ /pending|retrying/ }
                                  @{ $_[0] } }, timeout => 20);
die "$e\n" if $e;

# both upstreams refuse from now on
pn_rules(no_defaults => 1, { on => '* /*', status => 503 });
sf_rules(no_defaults => 1, { on => '* /*', status => 503 });
for my $id (8002, 8003) {
    $r = hook({ event => 'order_created', id => $id });
    die "$id: $r->{status}\n" unless $r->{status} == 202;
    push @ids, "$id order " . job_of($r);
}
$r = postback({ event => 'shipped', sourceOrderId => 'PN-8001',
                trackingNumber => 'T8001', shipDate => '2024-05-02' });
die "postback: $r->{status} $r->{body}\n" unless $r->{status} =~ /^2/;
push @ids, "8001 update " . (job_of($r) // '?');
$e = wait_jobs('both order jobs failed once', sub {
        2 <= grep { $_->{state} eq q(retrying) } @{ $_[0] } }, timeout => 20);
die "$e\n" if $e;
$e = nginx_stop($p);
die "stop: $e\n" if $e;

my $dir = "$out/spool-0.2.0";
remove_tree($dir);
make_path($dir);
for my $f (glob "$ENV{TEST_NGINX_SPOOL}/*") {
    next if -d $f;
    copy($f, $dir) or die "$f: $!\n";
}
open my $fh, '>', "$dir/README" or die "$dir/README: $!\n";
print $fh <<"EOT";
A spool written by ngx_siteflow_module 0.2.0 (commit cddf94e), stopped
with work in it; made by t/tools/make-spool-020.pl, read by
t/123-upgrade.t.  Storefront "shop1" (Siteflow::Flow's storefront_conf).
Order 8001 was created in SiteFlow (sent-orders index); the jobs below
were pending or retrying (SiteFlow and PrintNow answered 503) when nginx stopped:

@{[ join "\n", @ids ]}
EOT
close $fh;
print "wrote $dir: ", join(' ', map { s{.*/}{}r } glob "$dir/*"), "\n";
