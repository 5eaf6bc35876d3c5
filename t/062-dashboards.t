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
# The "how to scrape" examples of docs/admin-api.md work: its
# prometheus.yml passes "promtool check config" (with the alert rules),
# and a real Prometheus with that scrape config scrapes an nginx with the
# doc's server_name and admin location (allow and the password file
# adapted; plain HTTP through a proxy_url, the nginx itself, so that the
# targets' names stay in Host): up is 1 for the edge whose name is a
# server_name, 0 (403, DNS rebinding protection) for the other.
#
# Starts nginx itself with Siteflow::Flow's mocks (like t/121-crash.t).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP ();
use HTTP::Tiny;
use Time::HiRes ();
use Siteflow::Flow;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set (see docs/testing.md)'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $top = $Siteflow::Flow::ROOT;
my $dash_file = "$top/conf-examples/grafana-dashboard.json";
my $rules_file = "$top/conf-examples/prometheus-alerts.yml";
my $doc_file = "$top/docs/admin-api.md";
my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
my ($prometheus) = grep { -x } map { "$_/prometheus" } split /:/, $ENV{PATH};

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
    skip 'promtool is missing (package prometheus, make deps)', 1
        unless $promtool;
    my $out = `$promtool check rules $rules_file 2>&1`;
    is($?, 0, 'promtool check rules') or diag $out;
}

# docs/admin-api.md, "Scraping it with Prometheus": its nginx example
# (server_name, admin location) and its prometheus.yml
my $doc = do {
    open my $fh, '<', $doc_file or die "$doc_file: $!";
    local $/;
    <$fh>;
};
my ($scrape_doc) = $doc =~ /^#### Scraping it with Prometheus\n(.*?)^###? /ms;
my ($doc_nginx) = ($scrape_doc // '') =~ /^```nginx\n(.*?)^```/ms;
my ($doc_yml) = ($scrape_doc // '')
    =~ /^```yaml\n(# prometheus\.yml\n.*?)^```/ms;
my ($doc_names) = ($doc_nginx // '') =~ /^\s*server_name\s+([^;]+);/m;
my ($doc_location) = ($doc_nginx // '')
    =~ /^(\s*location \/siteflow\/admin\/ \{\n.*?^\s*\}\n)/ms;
my @doc_targets = ($doc_yml // '') =~ /'([^']+:\d+)'/g;
ok($doc_names && $doc_location && $doc_yml && @doc_targets == 2,
   'the doc has the nginx and prometheus.yml examples')
    or diag $scrape_doc;
like($doc_location, qr/^\s*auth_basic_user_file (\S+);/m,
     'the admin location of the doc asks for a password');

# the doc's files, under $etc
my $etc = tempdir('siteflow-prom-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $etc;     # the workers (user nobody) read the htpasswd
my $password = 'scrape-password-not-real';
my $yml = $doc_yml // '';
$yml =~ s{/etc/prometheus/siteflow\.password}{$etc/siteflow.password}g;
$yml =~ s{/etc/prometheus/siteflow-alerts\.yml}{$etc/siteflow-alerts.yml}g;
{
    open my $fh, '>', "$etc/siteflow.password" or die "$etc: $!";
    print $fh "$password\n";
    close $fh;
    open my $in, '<', $rules_file or die "$rules_file: $!";
    open my $out, '>', "$etc/siteflow-alerts.yml" or die "$etc: $!";
    print {$out} <$in>;
    close $out;
    open $fh, '>', "$etc/prometheus.yml" or die "$etc: $!";
    print $fh $yml;
    close $fh;
}
unlike($yml, qr{/etc/}, 'every file of the example is under the test dir');

SKIP: {
    skip 'promtool is missing (package prometheus, make deps)', 1
        unless $promtool;
    my $out = `$promtool check config $etc/prometheus.yml 2>&1`;
    is($?, 0, 'promtool check config: the doc\'s prometheus.yml')
        or diag "$out\n$yml";
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

# the doc's server_name and admin location; Prometheus (127.0.0.1) is let
# through instead of 10.0.0.0/8, with a user of the password file
my $location = $doc_location // '';
$location =~ s{^(\s*)allow 10\.0\.0\.0/8;}{${1}allow 127.0.0.1;}m;
$location =~ s{auth_basic_user_file \S+;}{auth_basic_user_file $etc/htpasswd;};
{
    open my $fh, '>', "$etc/htpasswd" or die "$etc: $!";
    print $fh "prometheus:{PLAIN}$password\n";
    close $fh;
}
$server .= "    server_name $doc_names;\n$location" if $doc_names;
nginx_start(prefix => $p, port => $PORT, workers => 2,
    http => "    siteflow_zone sf:4m;\n"
          . "    siteflow_spool $ENV{TEST_NGINX_SPOOL} size=2m;\n"
          . "    siteflow_retry_backoff 1s 5s;\n",
    server => $server);

# the scrapes, for the renderer of the dashboard's picture (below)
my @scrapes;
sub scrape {
    my $text = admin('GET', 'metrics')->{body} // '';
    push @scrapes, { t => Time::HiRes::time(), text => $text };
    return $text;
}

scrape();
is(hook({ event => 'order_created', id => 6001 })->{status}, 202,
   'hook accepted');
my $metrics = '';
is(wait_until('breaker open and job retrying in the metrics', sub {
       $metrics = scrape();
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
       $metrics = scrape();
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

# the picture's renderer (t/tools/dashboard.js, make dashboard-png) draws
# every panel of the dashboard: each query is one it evaluates (else the
# panel would say "not rendered"), here on the scrapes above; and what it
# does not know, it says so
SKIP: {
    my ($node) = grep { -x } map { ("$_/node", "$_/nodejs") }
                 split /:/, $ENV{PATH};
    skip 'node is missing (package nodejs, make deps)', 6 unless $node;
    my $json = JSON::PP->new->canonical;
    my $eval = sub {
        my ($dashboard) = @_;
        open my $fh, '>', "$etc/dash.json" or die "$etc: $!";
        print $fh $json->encode($dashboard);
        close $fh;
        open $fh, '>', "$etc/scrapes.json" or die "$etc: $!";
        print $fh $json->encode(\@scrapes);
        close $fh;
        my $out = `$node $top/t/tools/dashboard-eval.js $etc/dash.json $etc/scrapes.json 2>&1`;
        my $r = eval { $json->decode($out) };
        return $r || diag "dashboard-eval.js: $out";
    };
    my $panels = $eval->($dash) || [];
    my @bad = grep { defined $_->{error} } @$panels;
    ok(@$panels >= 10 && !@bad, scalar(@$panels)
       . ' panels, each drawn by t/tools/dashboard.js')
        or diag explain \@bad;
    my %by = map { $_->{title} => { map { $_->{name} => $_ } @{ $_->{series} } } }
             @$panels;
    my $hooks = $by{'PrintNow webhooks by outcome'}{accepted};
    ok($hooks && $hooks->{max} > 0, 'the accepted hook shows in its rate')
        or diag explain $by{'PrintNow webhooks by outcome'};
    is($by{'Breaker by storefront'}{shop1}{max}, 1,
       'the breaker of shop1 shows open');
    is($by{'Breaker by storefront'}{shop1}{last}, 0, 'and closed at the end');

    my $odd = $json->decode($json->encode($dash));
    my ($ts) = grep { ($_->{targets} || [])->[0] } @{ $odd->{panels} };
    $ts->{targets}[0]{expr} = 'topk(3, siteflow_jobs)';
    $panels = $eval->($odd) || [];
    my ($p1) = grep { $_->{title} eq $ts->{title} } @$panels;
    like($p1 && $p1->{error}, qr/topk/,
         'an expression it does not know: not rendered');
    $ts->{type} = 'heatmap';
    $ts->{targets}[0]{expr} = 'siteflow_jobs';
    $panels = $eval->($odd) || [];
    ($p1) = grep { $_->{title} eq $ts->{title} } @$panels;
    like($p1 && $p1->{error}, qr/heatmap/,
         'a panel type it does not draw: not rendered');
}

# a real Prometheus with the doc's scrape config: plain HTTP through a
# proxy_url (this nginx: it takes the host of an absolute request URI as
# Host, as Prometheus names the target there), every second
my $prom_pid;
SKIP: {
    skip 'prometheus is missing (package prometheus, make deps)', 4
        unless $prometheus;
    my $live = $yml;
    $live =~ s/^(\s*)scheme: https$/${1}scheme: http/m;
    $live =~ s{^(\s*)scrape_interval: \S+$}
              {${1}scrape_interval: 1s\n${1}proxy_url: http://127.0.0.1:$PORT}m;
    like($live, qr/proxy_url/, 'the scrape config over the proxy');
    open my $fh, '>', "$etc/live.yml" or die "$etc: $!";
    print $fh $live;
    close $fh;

    my $pport = MockUpstream::free_port();
    $prom_pid = fork // die "fork: $!";
    if ($prom_pid == 0) {
        open STDOUT, '>', "$etc/prometheus.log";
        open STDERR, '>&', \*STDOUT;
        exec $prometheus, "--config.file=$etc/live.yml",
            "--storage.tsdb.path=$etc/data",
            "--web.listen-address=127.0.0.1:$pport";
        exit 127;
    }
    my $http = HTTP::Tiny->new(timeout => 2, proxy => undef,
                               http_proxy => undef);
    my %up;
    my $e = wait_until('Prometheus scraped both targets', sub {
        my $r = $http->get("http://127.0.0.1:$pport/api/v1/query?query="
                           . 'up%7Bjob%3D%22nginx-siteflow%22%7D');
        return 0 unless $r->{success};
        my $d = eval { JSON::PP::decode_json($r->{content}) } or return 0;
        %up = map { $_->{metric}{instance} => $_->{value}[1] }
              @{ $d->{data}{result} || [] };
        return keys %up == 2;
    }, 30);
    is($e, '', 'Prometheus scrapes the doc\'s targets')
        or diag `cat $etc/prometheus.log`;

    # a name of this nginx's server_name, and one it does not have
    my ($mine, $other) = @doc_targets;
    is($up{$mine}, '1', "up{instance=\"$mine\"} is 1: Host $mine passes");
    is($up{$other}, '0', "up{instance=\"$other\"} is 0: refused")
        or diag explain \%up;
}

nginx_stop($p);

END {
    kill 'TERM', $prom_pid if $prom_pid;
    waitpid $prom_pid, 0 if $prom_pid;
    my $pids = nginx_pids($p) if $p;
    kill 'KILL', @$pids if $pids && @$pids;
}

done_testing();
