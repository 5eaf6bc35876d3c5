# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: conf-examples/grafana-dashboard.json and
# conf-examples/prometheus-alerts.yml only use metrics the module exports:
# every siteflow_* name in their queries is a family of a live scrape of
# the admin metrics (a histogram's _bucket/_sum/_count count as its
# family); the rules pass "promtool check rules".  The per-storefront
# metrics they need are there with their labels: the age of the oldest
# pending/retrying job, the breaker of a storefront whose SiteFlow keeps
# failing (and closes once it answers), the spool zone's size and free
# bytes.
#
# Starts nginx itself with Siteflow::Flow's mocks (like t/121-crash.t).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP ();
use Siteflow::Flow;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set (see docs/testing.md)'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $top = $Siteflow::Flow::ROOT;
my $dash_file = "$top/conf-examples/grafana-dashboard.json";
my $rules_file = "$top/conf-examples/prometheus-alerts.yml";

# every query of the dashboard (panels, nested rows, template variables)
sub queries {
    my ($node) = @_;
    my @q;
    if (ref $node eq 'HASH') {
        for my $k (sort keys %$node) {
            my $v = $node->{$k};
            if (($k eq 'expr' || $k eq 'definition') && !ref $v) {
                push @q, $v;
            } elsif ($k eq 'query' && !ref $v) {
                push @q, $v;
            } else {
                push @q, queries($v);
            }
        }
    } elsif (ref $node eq 'ARRAY') {
        push @q, queries($_) for @$node;
    }
    return @q;
}

my $dash = do {
    open my $fh, '<', $dash_file or die "$dash_file: $!";
    local $/;
    JSON::PP->new->decode(<$fh>);
};
my @dash_q = grep { /siteflow_/ } queries($dash);
ok(@dash_q >= 10, scalar(@dash_q) . ' dashboard queries');

my @rules_q;
{
    open my $fh, '<', $rules_file or die "$rules_file: $!";
    my $text = do { local $/; <$fh> };
    # "expr:" values, folded (>-) or on one line, up to the next key
    while ($text =~ /^\s*expr:\s*(?:>-?\s*\n)?(.*?)(?=^\s*(?:for|labels|annotations):)/msg) {
        push @rules_q, $1;
    }
}
ok(@rules_q >= 5, scalar(@rules_q) . ' alert rule expressions');

SKIP: {
    my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
    skip 'promtool is missing (package prometheus, make deps)', 1
        unless $promtool;
    my $out = `$promtool check rules $rules_file 2>&1`;
    is($?, 0, 'promtool check rules') or diag $out;
}

# a live scrape: SiteFlow answers 503, so a job of shop1 retries and its
# breaker opens
my $PORT = MockUpstream::free_port();
$ENV{TEST_NGINX_SERVER_PORT} = $PORT;
$ENV{TEST_NGINX_FIXTURES} = "$top/t/fixtures";
Siteflow::Flow::start_mocks();
stateful({ on => '* /api/*', status => 503,
           json => { success => JSON::PP::false, error => { code => 503 } } });
my $p = tempdir('siteflow-dash-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $server = storefront_conf();
$server =~ s/\$TEST_NGINX_SPOOL/$ENV{TEST_NGINX_SPOOL}/g;
nginx_start(prefix => $p, port => $PORT, workers => 2,
    http => "    siteflow_zone sf:4m;\n"
          . "    siteflow_spool $ENV{TEST_NGINX_SPOOL} size=2m;\n"
          . "    siteflow_retry_backoff 1s 5s;\n",
    server => $server);

is(hook({ event => 'order_created', id => 6001 })->{status}, 202,
   'hook accepted');
my $metrics = '';
is(wait_until('breaker open and job retrying in the metrics', sub {
       $metrics = admin('GET', 'metrics')->{body} // '';
       $metrics =~ /^siteflow_breaker_open\{storefront="shop1"\} 1$/m
       && $metrics =~ /^siteflow_jobs_oldest_age_seconds\{storefront="shop1",state="retrying"\} \d+$/m
   }, 20), '', 'the per-storefront metrics appear') or diag $metrics;

like($metrics, qr/^siteflow_breaker_failures\{storefront="shop1"\} [1-9]\d*$/m,
     'breaker failures of shop1');
like($metrics, qr/^siteflow_spool_zone_size_bytes 2097152$/m,
     'spool zone size (size=2m)');
my ($free) = $metrics =~ /^siteflow_spool_zone_free_bytes (\d+)$/m;
ok(defined $free && $free > 0 && $free < 2097152, 'spool zone free bytes');

# SiteFlow answers again: the breaker closes, the job is done
sf_rules();
is(wait_until('breaker closed, no job waiting', sub {
       $metrics = admin('GET', 'metrics')->{body} // '';
       $metrics =~ /^siteflow_breaker_open\{storefront="shop1"\} 0$/m
       && $metrics !~ /^siteflow_jobs_oldest_age_seconds\{/m
   }, 20), '', 'the breaker closes and the oldest-job sample goes')
    or diag $metrics;
like($metrics, qr/^siteflow_breaker_failures\{storefront="shop1"\} 0$/m,
     'no failures in a row');

my %family;
$family{$1} = $2 while $metrics =~ /^# TYPE (\S+) (\S+)$/mg;
my %known = %family;
for my $f (grep { $family{$_} eq 'histogram' } keys %family) {
    $known{"${f}_$_"} = 1 for qw(bucket sum count);
}

my %used;
for my $q (@dash_q, @rules_q) {
    $used{$1} = 1 while $q =~ /\b(siteflow_[a-z0-9_]+)/g;
}
ok(keys %used >= 10, scalar(keys %used) . ' metric names used');
for my $name (sort keys %used) {
    ok($known{$name}, "$name is exported");
}

nginx_stop($p);

END {
    my $pids = nginx_pids($p) if $p;
    kill 'KILL', @$pids if $pids && @$pids;
}

done_testing();
