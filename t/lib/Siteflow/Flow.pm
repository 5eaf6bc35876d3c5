package Siteflow::Flow;

# End-to-end helpers for the order and postback flows (t/100-hook.t,
# t/110-postback.t, t/120-faults.t, t/121-crash.t).  Core Perl only.
#
# In a data-driven .t file (both runners):
#
#     use lib 't/lib';
#     use Siteflow::Test;
#     use Siteflow::Flow;          # exports the functions below into main
#     flow_setup();                # a fresh mock SiteFlow, mock PrintNow and
#                                  # spool directory for every block
#     no_shuffle(); run_tests();
#
# Before each block that has a --- config, a block preprocessor stops the
# previous block's mocks, starts two MockUpstream servers on free ports
# with the default rules below, creates an empty spool directory and sets
#
#     $TEST_NGINX_SITEFLOW_PORT   mock SiteFlow (OneFlow paths /api/...,
#                                 PrintOS paths /siteflow/api/...)
#     $TEST_NGINX_PRINTNOW_PORT   mock PrintNow (/api/v2/...)
#     $TEST_NGINX_SPOOL           empty spool directory of this block
#     $TEST_NGINX_SHOP2_PORT      a free port for a second storefront server
#     $TEST_NGINX_FIXTURES        t/fixtures (absolute)
#
# Both runners replace $TEST_NGINX_* in config sections with the
# environment variable when the block starts (after the preprocessors).
# A mock that was stopped on purpose (mock_down) and started again keeps
# its port and its request history (the report merges both).
#
# The checks happen in a --- response_body_filters eval section: report()
# returns a filter that waits (bounded polling) for what the block expects,
# then replaces the response body by a text report of the answer and of
# every request the mocks received, each request checked:
#
#     answer {"job":"ID"}
#     PN GET /api/v2/order/5001 basic -> 200
#     SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
#     SF POST /api/order oneflow PN-5001 fields-ok -> 201
#
#   - "oneflow"/"printos": the request is signed right for that scheme with
#     the storefront's credentials (Siteflow::Sign::verify_request), with
#     HMAC-SHA256 (the default); "oneflow(SHA1)" if right but with SHA1
#     (siteflow_api ... algorithm=sha1; PrintOS accepts SHA256 only); else
#     "sig-BAD(<why>)";
#   - "basic": PrintNow's HTTP Basic credentials are right; else auth-BAD;
#   - "fields-ok": the order body has every field SPEC 6 requires, and every
#     key/value of t/fixtures/expected/<sourceOrderId>.json (what the real
#     transform makes of the fixture order); else the first difference;
#   - "-> 201": what the mock answered (its rule), "-> reset", "-> 503",
#     "-> 200 (default)" when no rule matched;
#   - PrintNow PATCH bodies are shown as canonical JSON;
#   - "LEAK" if a secret appears in clear in a request.
#
# A wait that times out adds a "TIMEOUT: ..." line, so the block fails
# with the whole report in the diff.  "job ..." lines (option jobs => 1)
# come from the admin queue.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our $ROOT;
BEGIN {
    $ROOT = abs_path(dirname(__FILE__) . '/../../..');
    unshift @INC, "$ROOT/t/mock";
}
use MockUpstream;
use Siteflow::Sign;

our @EXPORT = qw(
    flow_setup sf_rules pn_rules pn_order mock_down mock_up mock_requests
    hook postback postbacks_at_once admin admin_jobs report tally
    wait_until wait_requests
    raw_request
    wait_jobs job_of storefront_conf http_request json_of fixture
    order_for send_and_wait nginx_port pb_req stateful run_orders
    sync_lookups nginx_start nginx_stop nginx_kill nginx_pids
    hook_answers conns_of
);

our $J  = JSON::PP->new->utf8->canonical;     # bytes
our $JC = JSON::PP->new->canonical;           # characters
our $TIMEOUT = $ENV{SITEFLOW_FLOW_TIMEOUT} || 15;

# credentials of the suite (fake)
our %PN = (token => 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
           key => 'C0FFEE' x 10 . '0A0B');
our %TOKEN = (hook => 'hook-9f3b2c7d-not-real', postback => 'pb-51e0a8c4-not-real');
our %SHOP = (   # sourceOrderId prefix => storefront facts
    'PN-'    => { scheme => 'oneflow', destination => 'acme',
                  name => 'shop1' },
    'SHOP2-' => { scheme => 'printos', destination => 'acme2',
                  name => 'shop2' },
);

our (%Mock, %Rules, %History, %Saved, $Spool, @Accepted, $Stateful, %Known,
     $OnPg);

# ---------------------------------------------------------------------------
# per-block set-up
# ---------------------------------------------------------------------------

sub flow_setup {
    my $caller = caller;
    $ENV{TEST_NGINX_FIXTURES} = "$ROOT/t/fixtures";
    start_mocks();      # so that the variables exist from the start
    my $add = $caller->can('add_block_preprocessor')
        or die "Siteflow::Flow: use Siteflow::Test before flow_setup()\n";
    $add->(sub {
        my ($block) = @_;
        start_mocks() if defined $block->config;
        _on_postgresql($block) if $OnPg;
        return $block;
    });
    if (($ENV{SITEFLOW_TEST_QUEUE} // 'spool') eq 'postgresql') {
        require Siteflow::Pg;
        Siteflow::Pg::pg_start();
        $OnPg = 1;
    }
    return;
}

# SITEFLOW_TEST_QUEUE=postgresql (make prove-pg): a block whose jobs live
# in the spool keeps them in the private PostgreSQL of Siteflow::Pg
# instead ("siteflow_queue", lease 3 s), with the tables emptied first.
# Blocks named "(spool only)" test what only the spool has (its files,
# its breakers) and are skipped.
sub _on_postgresql {
    my ($block) = @_;
    my $h = $block->http_config // return;
    if ($block->name =~ /\(spool only\)/) {
        $block->set_value(skip_eval => '1: 1');
        return;
    }
    return unless $h =~ s{siteflow_spool \$TEST_NGINX_SPOOL[^;]*;}
                         {siteflow_queue \$TEST_NGINX_PG_URL lease=3s;};
    $block->set_value(http_config => $h);
    Siteflow::Pg::pg_empty();
    return;
}

sub stop_mocks {
    for my $n (keys %Mock) {
        my $m = delete $Mock{$n} or next;
        $m->stop;
    }
}

sub start_mocks {
    stop_mocks();
    %Rules = %History = %Saved = %Known = ();
    $Stateful = 0;
    @Accepted = ();
    for my $n (qw(siteflow printnow)) {
        $Mock{$n} = MockUpstream->start;
        $Rules{$n} = [];
    }
    sf_rules();
    pn_rules();
    $ENV{TEST_NGINX_SITEFLOW_PORT} = $Mock{siteflow}->port;
    $ENV{TEST_NGINX_PRINTNOW_PORT} = $Mock{printnow}->port;
    $ENV{TEST_NGINX_SHOP2_PORT} = MockUpstream::free_port();
    remove_tree($Spool) if $Spool && -d $Spool;
    $Spool = tempdir('siteflow-spool-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    rmdir $Spool;       # the module creates it
    $ENV{TEST_NGINX_SPOOL} = $Spool;
    return;
}

END { stop_mocks() }

sub nginx_port {
    my ($which) = @_;
    return $ENV{TEST_NGINX_SHOP2_PORT} if ($which // '') eq 'shop2';
    return $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
}

# ---------------------------------------------------------------------------
# mock rules
# ---------------------------------------------------------------------------

# "POST /api/order" => method, path; "GET /api/order/bysourceid/*" =>
# method, path_prefix; the rest of the rule as MockUpstream takes it
sub _rule {
    my ($r) = @_;
    my %r = %$r;
    if (my $on = delete $r{on}) {
        my ($m, $p) = $on =~ /^(\S+)\s+(\S+)$/ or die "bad rule on: $on\n";
        $r{method} = $m unless $m eq '*';
        if ($p =~ s/\*$//) { $r{path_prefix} = $p } else { $r{path} = $p }
    }
    return \%r;
}

# stateful(): from now on (in this block) the mock SiteFlow answers a
# look-up GET {api}/order/bysourceid/{id} with 200 and the order's _id once
# it took in a create of that order (a create whose rule answers 2xx, even
# if the answer was cut or too late), else 404.  sync_lookups() keeps it
# true: every wait of this module calls it while polling.
sub stateful {
    $Stateful = 1;
    %Known = ();
    sf_rules(@_);
    return;
}

# In stateful mode the mock itself remembers every create it takes in (at
# the moment it matches, before any delay or cut answer) and answers the
# look-up of a remembered order with 200: a look-up that arrives while the
# create is still being answered finds it, as it would in SiteFlow.
# sync_lookups() below carries that knowledge over a mock restart.
sub _remember_creates {
    my ($mock, $all, $ntest) = @_;     # the block's own rules come first
    return unless $mock eq 'siteflow';
    my %bases;
    for my $r (@$all) {
        next unless ($r->{method} // '') eq 'POST'
            && ($r->{path} // '') =~ m{^(.*)/order$};
        $bases{$1} = 1;
        next if ($r->{action} // 'respond') =~ /^(?:close|reset)$/
             || ($r->{status} // 200) !~ /^2/;
        $r->{remember} //= '{{json.orderData.sourceOrderId}}';
    }
    for my $b (sort keys %bases) {
        splice @$all, $ntest, 0, { method => 'GET',
            path_prefix => "$b/order/bysourceid/",
            if_known => '{{path_last}}', status => 200,
            comment => 'stateful look-up: created',
            json => { _id => '{{hex24}}',
                      orderData => { sourceOrderId => '{{path_last}}' } } };
    }
    return;
}

sub sync_lookups {
    return unless $Stateful && $Mock{siteflow}{pid};
    for my $e (@{ mock_requests('siteflow', 'POST *') }) {
        next unless $e->{path} =~ m{^(.*)/order$};
        my $base = $1;
        my $r = $e->{_rule} or next;
        next if ($r->{action} // 'respond') =~ /^(?:close|reset)$/
             || ($r->{status} // 200) !~ /^2/;
        my $src = (json_of($e->{body}) // {})->{orderData}{sourceOrderId};
        next if !defined $src || $Known{"$base $src"}++;
        my $rule = _rule({ on => "GET $base/order/bysourceid/$src",
            status => 200, json => { _id => sprintf('%024x', $e->{seq}),
                orderData => { sourceOrderId => $src } } });
        push @{ $Rules{siteflow} }, $rule;
        $Mock{siteflow}->append_rule($rule);
    }
    return;
}

sub sf_defaults {
    my @r;
    for my $b ('/api', '/siteflow/api') {
        push @r,
            { on => "POST $b/order/validate", status => 200,
              json => { success => JSON::PP::true } },
            { on => "POST $b/order", status => 201,
              json => { _id => '{{hex24}}' } },
            ($Stateful ? () :       # unmatched GET: 404 from the mock
            { on => "GET $b/order/bysourceid/*", status => 404,
              json => { success => JSON::PP::false, error => {
                  message => 'Order not found', name => 'NotFound',
                  code => 404 } } }),
            { on => "PUT $b/order/*", status => 200,
              json => { success => JSON::PP::true } };
    }
    return @r;
}

# a PrintNow order fixture (t/fixtures/orders/<id>.json), or one made from
# 5001 for other ids (6000-6999: the fault tests' orders), with changes
sub pn_order {
    my ($id, %change) = @_;
    my $o = fixture("orders/$id.json");
    if (!$o) {
        my $text = _slurp("$ROOT/t/fixtures/orders/5001.json");
        $text =~ s/\b5001\b/$id/g;
        $o = $J->decode($text);
    }
    $o->{$_} = $change{$_} for keys %change;
    return $o;
}

sub pn_defaults {
    my @r;
    for my $f (glob "$ROOT/t/fixtures/orders/*.json") {
        my ($id) = $f =~ m{/(\d+)\.json$} or next;
        push @r, { on => "GET /api/v2/order/$id", json => pn_order($id) };
    }
    for my $id (6001 .. 6030) {     # the fault tests' orders
        push @r, { on => "GET /api/v2/order/$id", json => pn_order($id) };
    }
    push @r, { on => "PATCH /api/v2/order/*", status => 200,
               json => { success => JSON::PP::true } };
    return @r;
}

# replaces the rules: the given ones first (first match wins), then the
# defaults (unless no_defaults => 1 is the first argument pair)
sub _set_rules {
    my ($mock, $defaults, @r) = @_;
    my $nodef = @r >= 2 && !ref $r[0] && $r[0] eq 'no_defaults' ? do {
        splice @r, 0, 2; 1 } : 0;
    my @all = map { _rule($_) } @r, ($nodef ? () : $defaults->());
    _remember_creates($mock, \@all, scalar @r) if $Stateful;
    _snapshot($mock) if $Mock{$mock}{pid} && $Rules{$mock};   # pin old rules
    $Rules{$mock} = \@all;
    $Mock{$mock}->rules(\@all) if $Mock{$mock}{pid};
    return scalar @all;
}

sub sf_rules { _set_rules('siteflow', \&sf_defaults, @_) }
sub pn_rules { _set_rules('printnow', \&pn_defaults, @_) }

# stops a mock (connections refused from now on), keeping its history
sub mock_down {
    my ($mock) = @_;
    _snapshot($mock);
    $Saved{$mock} = [@{ $History{$mock} // [] }];
    delete $History{"$mock.live"};
    $Mock{$mock}->stop;
    return 1;
}

# starts it again on the same port with the current rules (loaded before
# it listens: no request may meet the mock's defaults in between)
sub mock_up {
    my ($mock, @rules) = @_;
    my $port = $Mock{$mock}->port;
    my ($fh, $file) = File::Temp::tempfile('siteflow-rules-XXXXXX',
                                           TMPDIR => 1, UNLINK => 1);
    print $fh $J->encode($Rules{$mock} // []);  # bytes: the mock reads bytes
    close $fh;
    $Mock{$mock} = MockUpstream->start(port => $port, rules_file => $file);
    if (@rules) {
        _set_rules($mock, $mock eq 'siteflow' ? \&sf_defaults : \&pn_defaults,
                   @rules);
    }
    return 1;
}

# every request the mock received in this block (across restarts), each
# annotated with _rule (the rule that answered it, undef for the default)
sub _snapshot {
    my ($mock) = @_;
    my $m = $Mock{$mock};
    my $now = $m->{pid} ? $m->requests : [];
    for my $e (@$now) {
        $e->{_rule} = defined $e->{rule} ? $Rules{$mock}[ $e->{rule} ] : undef;
    }
    # rules may have changed since an entry was logged: keep the rule seen
    # the first time an entry was fetched
    my %old = map { $_->{seq} => $_ } @{ $History{"$mock.live"} // [] };
    for my $e (@$now) {
        $e->{_rule} = $old{ $e->{seq} }{_rule} if $old{ $e->{seq} };
    }
    $History{"$mock.live"} = $now;
    $History{$mock} = [@{ $Saved{$mock} // [] }, @$now];
    return $History{$mock};
}

sub mock_requests {
    my ($mock, $filter) = @_;
    my $all = _snapshot($mock);
    return $all unless defined $filter;
    my ($m, $p) = $filter =~ /^(\S+)\s+(\S+)$/ or die "bad filter $filter\n";
    my $prefix = $p =~ s/\*$//;
    return [grep {
        ($m eq '*' || $_->{method} eq $m)
        && ($prefix ? index($_->{path}, $p) == 0 : $_->{path} eq $p)
    } @$all];
}

# ---------------------------------------------------------------------------
# HTTP to nginx
# ---------------------------------------------------------------------------

# returns { status, headers => { lower-case name => value }, body }; status
# 0 and body "<error>" when the connection fails
sub http_request {
    my (%a) = @_;
    my $port = $a{port} // nginx_port();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5)
        or return { status => 0, headers => {}, body => "connect: $!" };
    my $body = $a{body};
    $body = $J->encode($body) if ref $body;
    my $req = "$a{method} $a{path} HTTP/1.1\r\nHost: "
        . ($a{host} // 'localhost') . "\r\n"
        . "Connection: close\r\n";
    for my $k (sort keys %{ $a{headers} // {} }) {
        $req .= "$k: $a{headers}{$k}\r\n";
    }
    $req .= "Content-Length: " . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    $s->syswrite($req);
    return _response($s, $a{timeout});
}

# raw_request(parts => [TEXT | {value => TEXT, delay_before => SECONDS}],
# port => N): sends the parts as they are (a part after a delay once nginx
# may have answered: a refused write ends the sending), then reads the
# answer as http_request() does
sub raw_request {
    my (%a) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $a{port} // nginx_port(), Proto => 'tcp', Timeout => 5)
        or return { status => 0, headers => {}, body => "connect: $!" };
    for my $p (@{ $a{parts} }) {
        my ($v, $d) = ref $p ? ($p->{value}, $p->{delay_before}) : ($p, 0);
        select(undef, undef, undef, $d) if $d;
        last unless $s->syswrite($v);
    }
    return _response($s, $a{timeout});
}

# the answer on $s until the server closes it: {status, headers, body}
sub _response {
    my ($s, $timeout) = @_;
    my ($resp, $sel, $deadline) = ('', IO::Select->new($s),
                                   time + ($timeout // 10));
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $resp, 65536, length $resp);
        last unless $n;
    }
    close $s;
    my ($head, $b) = split /\r\n\r\n/, $resp, 2;
    my ($st) = ($head // '') =~ m{^HTTP/1\.[01] (\d+)};
    return { status => 0, headers => {}, body => "no answer: $resp" }
        unless $st;
    my %h;
    for (split /\r\n/, $head) {
        $h{ lc $1 } = $2 if /^([^:]+):\s*(.*)$/;
    }
    if (($h{'transfer-encoding'} // '') =~ /chunked/ && defined $b) {
        my $out = '';
        while ($b =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $n = hex $1;
            last unless $n;
            $out .= substr($b, 0, $n, '');
            $b =~ s/^\r\n//;
        }
        $b = $out;
    }
    return { status => $st, headers => \%h, body => $b // '' };
}

# bytes (an HTTP body) or characters (a body from the mock's JSON log)
sub json_of {
    my ($text) = @_;
    return undef unless defined $text;
    utf8::encode($text) if utf8::is_utf8($text);
    return eval { $J->decode($text) };
}

# POST a PrintNow hook; %o: query (string, after the token), port, token,
# content_type.  Remembers the job id of a 202 as accepted.
sub hook {
    my ($body, %o) = @_;
    my $q = 'token=' . ($o{token} // $TOKEN{hook});
    $q .= "&$o{query}" if $o{query};
    my %h;
    $h{'Content-Type'} = $o{content_type} if $o{content_type};
    my $r = http_request(method => $o{method} // 'POST',
        port => $o{port} // nginx_port($o{shop}), path => "/hook?$q",
        body => $body, headers => \%h);
    _accepted($r, 'hook', $body);
    return $r;
}

# sends each body as a hook, one after the other; "answers: 202 x8" (the
# statuses counted, in order)
sub hook_answers {
    my (@bodies) = @_;
    my %ans;
    $ans{ hook($_)->{status} }++ for @bodies;
    return 'answers: ' . join(', ', map { "$_ x$ans{$_}" } sort keys %ans);
}

# the connections (numbers the mock gave them) of the requests to $mock
# for the orders $lo .. $hi (SiteFlow: the body's sourceOrderId PN-<id>;
# PrintNow: the path's last number): a hash ref
sub conns_of {
    my ($mock, $lo, $hi) = @_;
    my $id_of = $mock eq 'printnow'
        ? sub { $_[0]->{path} =~ m{/(\d+)$} ? $1 : 0 }
        : sub { my $s = (json_of($_[0]->{body}) // {})->{orderData}{sourceOrderId} // '';
                $s =~ /^PN-(\d+)$/ ? $1 : 0 };
    return { map { $_->{conn} => 1 }
             grep { my $id = $id_of->($_); $id >= $lo && $id <= $hi }
             @{ mock_requests($mock) } };
}

sub postback {
    my ($body, %o) = @_;
    my $q = 'token=' . ($o{token} // $TOKEN{postback});
    my $r = http_request(method => $o{method} // 'POST',
        port => $o{port} // nginx_port($o{shop}), path => "/postback?$q",
        body => $body, headers => { 'Content-Type' => 'application/json' });
    _accepted($r, 'postback', $body);
    return $r;
}

# postbacks_at_once([BODY, ...], %o): each postback on its own connection,
# every one written before any answer is read, so that they reach nginx
# together (SiteFlow's retries, two triggers firing at once); returns the
# answers in the same order.  %o: port, shop, token.
sub postbacks_at_once {
    my ($bodies, %o) = @_;
    my $port = $o{port} // nginx_port($o{shop});
    my $q = 'token=' . ($o{token} // $TOKEN{postback});
    my @c;
    for my $b (@$bodies) {
        my $body = ref $b ? $J->encode($b) : $b;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp', Timeout => 5)
            or die "postbacks_at_once: connect: $!\n";
        push @c, [$s, $body];
    }
    for my $c (@c) {
        $c->[0]->syswrite("POST /postback?$q HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($c->[1]) . "\r\n\r\n$c->[1]");
    }
    return map {
        my $r = _response($_->[0]);
        _accepted($r, 'postback', $_->[1]);
        $r;
    } @c;
}

# the text of a --- request for a postback: pb_req(field => value, ...);
# -method, -token (undef: none) and -query change the request line
sub pb_req {
    my (%f) = @_;
    my $m = delete $f{-method} // 'POST';
    my $t = exists $f{-token} ? delete $f{-token} : $TOKEN{postback};
    my $q = delete $f{-query};
    my @q = ((defined $t ? "token=$t" : ()), ($q // ()));
    $f{timestamp} //= '2024-05-01T12:00:00.000Z';
    return "$m /postback" . (@q ? '?' . join('&', @q) : '') . "\n"
        . $J->encode(\%f);
}

sub _accepted {
    my ($r, $what, $body) = @_;
    my $d = json_of($r->{body});
    push @Accepted, { what => $what, job => $d->{job}, body => $body,
                      status => $r->{status} }
        if $r->{status} =~ /^2/ && ref $d eq 'HASH' && defined $d->{job};
}

sub job_of { my $d = json_of($_[0]->{body}); ref $d eq 'HASH' ? $d->{job} : undef }

# admin call on the storefront's server ("shop2" or the main one), by its
# IP address (a Host the admin API accepts on any server block); a POST,
# PUT or DELETE carries X-SiteFlow-Admin as the console does
sub admin {
    my ($method, $path, %o) = @_;
    return http_request(method => $method,
                        port => $o{port} // nginx_port($o{shop}),
                        host => '127.0.0.1',
                        headers => ($method =~ /^(?:GET|HEAD)$/ ? {}
                                    : { 'X-SiteFlow-Admin' => 1 }),
                        path => "/admin/$path", body => $o{body});
}

# the admin queue as a list of jobs (hashrefs); undef if it cannot be read
sub admin_jobs {
    my (%o) = @_;
    my @q;
    push @q, "state=$o{state}" if $o{state};
    push @q, "order_id=$o{order_id}" if $o{order_id};
    my $r = admin(GET => 'queue' . (@q ? '?' . join('&', @q) : ''), %o);
    return undef unless $r->{status} == 200;
    my $d = json_of($r->{body});
    return ref $d eq 'HASH' && ref $d->{jobs} eq 'ARRAY' ? $d->{jobs} : undef;
}

# ---------------------------------------------------------------------------
# waits: bounded polling, never sleep-and-hope
# ---------------------------------------------------------------------------

# polls $cond every 20 ms until it returns true or $timeout seconds pass;
# returns '' on success, else "TIMEOUT: $what after Ns"
sub wait_until {
    my ($what, $cond, $timeout) = @_;
    my $deadline = time + ($timeout // $TIMEOUT);
    while (1) {
        sync_lookups();
        my $ok = eval { $cond->() };
        return '' if $ok;
        if (time > $deadline) {
            my $why = ref $what eq 'CODE' ? $what->() : $what;
            return "TIMEOUT: $why after " . ($timeout // $TIMEOUT) . 's'
                . ($@ ? " ($@)" : '');
        }
        sleep 0.02;
    }
}

# "siteflow", "POST /api/order", count
sub wait_requests {
    my ($mock, $filter, $count, $timeout) = @_;
    my $have = 0;
    return wait_until(sub { "$count x $mock $filter (have $have)" },
        sub { $have = @{ mock_requests($mock, $filter) }; $have >= $count },
        $timeout);
}

# waits until $cond->(\@jobs) is true for the admin queue (of %o{shop})
sub wait_jobs {
    my ($what, $cond, %o) = @_;
    my $last = 'queue unreadable';
    return wait_until(sub { "$what (queue: $last)" }, sub {
        my $jobs = admin_jobs(%o) or return 0;
        $last = join(', ', map { "$_->{kind} $_->{order_id} $_->{state}" }
                     @$jobs) || 'empty';
        $cond->($jobs);
    }, $o{timeout});
}

sub _idle {
    my (%o) = @_;
    delete $o{port} unless defined $o{port};
    # SITEFLOW_FLOW_NO_ADMIN=1: for trying the flows before the admin API
    # exists; a fixed settle time instead of the queue (never in CI)
    if ($ENV{SITEFLOW_FLOW_NO_ADMIN} && !admin_jobs(%o)) {
        sleep 1.5;
        return '';
    }
    return wait_jobs('no job pending or retrying', sub {
        !grep { $_->{state} =~ /^(?:pending|retrying)$/ } @{ $_[0] }
    }, %o);
}

# sends a hook for a fixture order and waits until SiteFlow has it
# (the create answered and the job done); dies otherwise.  For set-ups.
sub send_and_wait {
    my ($id, %o) = @_;
    my $pre = $o{shop} && $o{shop} eq 'shop2' ? 'SHOP2-' : 'PN-';
    my $r = hook({ event => 'order_created', id => $id }, %o);
    die "send_and_wait $id: hook answered $r->{status} $r->{body}\n"
        unless $r->{status} == 202;
    my $job = job_of($r);
    if ($ENV{SITEFLOW_FLOW_NO_ADMIN} && !admin_jobs(%o)) {
        my $e = wait_requests(siteflow => "POST *", 2);
        sleep 1;
        die "send_and_wait $id: $e\n" if $e;
        return $job;
    }
    my $e = wait_jobs("job $job of order $id done", sub {
        my ($j) = grep { $_->{id} eq $job } @{ $_[0] };
        # a finished job may be compacted away: then the create must be
        # in the mock's log
        return $j ? $j->{state} eq 'done'
            : scalar grep { ($_->{path} =~ m{/order$}) && $_->{method} eq 'POST'
                  && (json_of($_->{body}) // {})->{orderData}{sourceOrderId}
                     eq "$pre$id" } @{ mock_requests('siteflow') };
    }, %o);
    die "send_and_wait $id: $e\n" if $e;
    return $job;
}

# ---------------------------------------------------------------------------
# checks of single requests
# ---------------------------------------------------------------------------

sub _slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return undef;
    local $/;
    return scalar <$fh>;
}

# decoded t/fixtures/<path>, or undef
sub fixture {
    my ($path) = @_;
    my $t = _slurp("$ROOT/t/fixtures/$path");
    return defined $t ? $J->decode($t) : undef;
}

# the SiteFlow order we expect for a sourceOrderId (fault-test orders
# 6000-6999 are 5001 with another id)
sub order_for {
    my ($src) = @_;
    my $e = fixture("expected/$src.json");
    return $e if $e;
    my ($pre, $id) = $src =~ /^(PN-)(6\d{3})$/ or return undef;
    my $t = _slurp("$ROOT/t/fixtures/expected/PN-5001.json");
    $t =~ s/\b5001\b/$id/g;
    return $J->decode($t);
}

# first place where $got lacks a key or value of $want ('' if none)
sub _subset {
    my ($want, $got, $path) = @_;
    if (ref $want eq 'HASH') {
        return "$path is not an object" unless ref $got eq 'HASH';
        for my $k (sort keys %$want) {
            return "$path.$k missing" unless exists $got->{$k};
            my $e = _subset($want->{$k}, $got->{$k}, "$path.$k");
            return $e if $e;
        }
        return '';
    }
    if (ref $want eq 'ARRAY') {
        return "$path is not an array" unless ref $got eq 'ARRAY';
        return "$path has " . @$got . " entries, not " . @$want
            unless @$got == @$want;
        for my $i (0 .. $#$want) {
            my $e = _subset($want->[$i], $got->[$i], "$path\[$i]");
            return $e if $e;
        }
        return '';
    }
    my ($tw, $tg) = (_type($want), _type($got));    # before any "$x"
    my $show = sub { defined $_[0] ? $JC->allow_nonref->encode($_[0]) : 'null' };
    return "$path is " . $show->($got) . ", not " . $show->($want)
        if $tw ne $tg || (defined $want && "$got" ne "$want");
    return '';
}

# SPEC 6 / protocols 4b: what SiteFlow requires of an order
sub _required {
    my ($o) = @_;
    return 'body is not a JSON object' unless ref $o eq 'HASH';
    my $d = $o->{orderData};
    return 'destination.name missing'
        unless ref $o->{destination} eq 'HASH' && _str($o->{destination}{name});
    return 'orderData missing' unless ref $d eq 'HASH';
    for (qw(sourceOrderId customerName email)) {
        return "orderData.$_ missing" unless _str($d->{$_});
    }
    return 'orderData.items empty'
        unless ref $d->{items} eq 'ARRAY' && @{ $d->{items} };
    my %seen;
    for my $i (0 .. $#{ $d->{items} }) {
        my $it = $d->{items}[$i];
        for (qw(sourceItemId sku)) {
            return "items[$i].$_ missing" unless _str($it->{$_});
        }
        return "items[$i].sourceItemId not unique" if $seen{ $it->{sourceItemId} }++;
        return "items[$i].quantity not a positive integer"
            unless defined $it->{quantity} && $it->{quantity} =~ /^[1-9]\d*$/;
        return "items[$i].shipmentIndex not 0"
            unless defined $it->{shipmentIndex} && $it->{shipmentIndex} eq '0';
        return "items[$i].components empty"
            unless ref $it->{components} eq 'ARRAY' && @{ $it->{components} };
        for my $c (@{ $it->{components} }) {
            return "items[$i] component without code/path"
                unless _str($c->{code}) && _str($c->{path});
            return "items[$i] component path is not a URL"
                unless $c->{path} =~ m{^https?://\S+$};
            return "items[$i] component without fetch: true"
                unless JSON::PP::is_bool($c->{fetch}) && $c->{fetch};
        }
    }
    my $s = ref $d->{shipments} eq 'ARRAY' ? $d->{shipments}[0] : undef;
    return 'orderData.shipments[0] missing' unless ref $s eq 'HASH';
    for (qw(name address1 town postcode isoCountry)) {
        return "shipments[0].shipTo.$_ missing"
            unless ref $s->{shipTo} eq 'HASH' && _str($s->{shipTo}{$_});
    }
    return 'shipments[0].returnAddress missing'
        unless ref $s->{returnAddress} eq 'HASH';
    return 'shipments[0].carrier.alias missing'
        unless ref $s->{carrier} eq 'HASH' && _str($s->{carrier}{alias});
    return 'orderData.extraData has no PrintNow order id'
        unless ref $d->{extraData} eq 'HASH'
               && grep { defined && !ref && length } values %{ $d->{extraData} };
    return '';
}

# null, bool, num, str or ref, as JSON::PP decoded it (a number has no
# string value of its own until it is used as a string)
sub _type {
    my ($v) = @_;
    return 'null' unless defined $v;
    return 'bool' if JSON::PP::is_bool($v);
    return 'ref' if ref $v;
    require B;
    my $f = B::svref_2object(\$v)->FLAGS;
    return ($f & (B::SVp_IOK() | B::SVp_NOK())) && !($f & B::SVp_POK())
        ? 'num' : 'str';
}

sub _str { defined $_[0] && !ref $_[0] && $_[0] =~ /\S/ }

sub _sig {
    my ($e) = @_;
    my $h = $e->{headers};
    my $scheme = Siteflow::Sign::scheme_of($h);
    return 'sig-BAD(no signature headers)' if $scheme eq '';
    return 'sig-BAD(both schemes)' if $scheme eq 'both';
    my $c = $Siteflow::Sign::CRED{$scheme};
    my $why = Siteflow::Sign::verify_request(scheme => $scheme,
        token => $c->{token}, secret => $c->{secret},
        method => $e->{method}, path => $e->{path}, headers => $h,
        skew => 600,
        algorithms => $scheme eq 'printos' ? ['SHA256'] : undef);
    return "sig-BAD($why)" if $why ne '';
    # SHA256 is the default; a SHA1 signature (verified too) says so
    return Siteflow::Sign::algorithm_of($scheme, $h) eq 'SHA1'
        ? "$scheme(SHA1)" : $scheme;
}

sub _leak {
    my ($e) = @_;
    my $text = join "\n", $e->{body} // '', $e->{query} // '',
        map { "$_: $e->{headers}{$_}" } sort keys %{ $e->{headers} };
    for my $secret ((map { $_->{secret} } values %Siteflow::Sign::CRED),
                    $PN{key}, values %TOKEN) {
        return ' LEAK' if index($text, $secret) >= 0;
    }
    return '';
}

sub _answer_of {
    my ($e) = @_;
    my $r = $e->{_rule};
    return $e->{method} =~ /^(?:POST|PUT|PATCH)$/ ? '200 (default)'
                                                  : '404 (default)' unless $r;
    my $a = $r->{action} // 'respond';
    my $st = $r->{status} // 200;
    return $a eq 'respond' ? ($r->{delay_ms} ? "$st after $r->{delay_ms}ms" : $st)
         : $a eq 'oversize' ? "$st oversize"
         : $a eq 'partial' ? "$st partial"
         : $a eq 'slow_body' ? "$st slow"
         : $a eq 'no_response' ? 'no answer'
         : $a;
}

sub _sf_line {
    my ($e) = @_;
    my $l = "SF $e->{method} $e->{path} " . _sig($e);
    if ($e->{method} eq 'POST' && $e->{path} =~ m{/order(?:/validate)?$}) {
        my $o = json_of($e->{body});
        my $src = ref $o eq 'HASH' && ref $o->{orderData} eq 'HASH'
            ? $o->{orderData}{sourceOrderId} // '?' : '?';
        my $why = _required($o);
        if (!$why) {    # on a fresh copy: _required's regexes change flags
            my $want = order_for($src);
            $why = $want ? _subset($want, json_of($e->{body}), 'body')
                         : "no expected order $src";
        }
        $l .= " $src " . ($why ? "fields: $why" : 'fields-ok');
    }
    return $l . _leak($e) . ' -> ' . _answer_of($e);
}

sub _pn_line {
    my ($e) = @_;
    my $want = 'Basic ' . encode_base64("$PN{token}:$PN{key}", '');
    my $auth = ($e->{headers}{authorization} // '') eq $want ? 'basic'
        : 'auth-BAD(' . ($e->{headers}{authorization} // 'none') . ')';
    my $l = "PN $e->{method} $e->{path} $auth";
    if ($e->{method} ne 'GET') {
        my $d = json_of($e->{body});
        $l .= ' ' . (defined $d ? $JC->encode($d) : "body-not-json:$e->{body}");
    }
    return $l . _leak($e) . ' -> ' . _answer_of($e);
}

sub _job_lines {
    my (%o) = @_;
    my @l;
    for my $shop (@{ $o{admin} // [undef] }) {
        my $jobs = admin_jobs(shop => $shop);
        if (!$jobs) { push @l, 'job list unreadable'; next }
        for my $j (sort { _idcmp($a->{id}, $b->{id}) } @$jobs) {
            my $s = "job $j->{kind} $j->{order_id} $j->{state}";
            $s .= " ($j->{storefront})" if $shop;
            if (my $re = ($o{errors} // {})->{ $j->{order_id} }) {
                my $e = $j->{last_error} // '';
                $s .= $e =~ /$re/ ? " (last_error ~ /$re/)"
                                : " (last_error does not match /$re/: $e)";
            }
            push @l, $s;
        }
    }
    return @l;
}

# duration_ms of every Site Flow Log entry (of every storefront: GET log
# lists them all): an integer from 0 to under $DURATION_MAX ms.  An entry
# once showed 4294967295 ms (an unsigned underflow).  Returns a "BAD"
# line per entry out of range, nothing when the log cannot be read (the
# tests that stop nginx); with durations => 1 also one line listing the
# kinds of entry checked ("in POST /hook", "out GET /api/v2/order/{id}").
our $DURATION_MAX = 60000;

sub _durations {
    my (%o) = @_;
    my $r = admin(GET => 'log?limit=10000');
    my $d = $r->{status} == 200 ? json_of($r->{body}) : undef;
    if (!(ref $d eq 'HASH' && ref $d->{entries} eq 'ARRAY')) {
        return $o{durations} ? ("log unreadable ($r->{status})") : ();
    }
    my (@bad, %kind);
    for my $e (@{ $d->{entries} }) {
        (my $path = $e->{url} // '') =~ s{^https?://[^/]+}{};
        $path =~ s/[?#].*//s;
        $path =~ s{/(?:[0-9a-f]{24}|\d+)(?=/|$)}{/{id}}g;
        my $what = join ' ', $e->{direction} // '?', $e->{method} // '?',
                             $path;
        my $ms = $e->{duration_ms};
        push @bad, "BAD duration_ms " . ($ms // 'null')
                   . " in log entry $e->{id} ($what)"
            unless defined $ms && $ms =~ /^\d+$/ && $ms < $DURATION_MAX;
        $kind{$what}++;
    }
    return @bad unless $o{durations};
    return (@bad, "duration_ms 0..@{[ $DURATION_MAX - 1 ]} in "
                  . scalar(@{ $d->{entries} }) . " entries: "
                  . join(', ', sort keys %kind));
}

sub _idcmp {
    my ($x, $y) = @_;
    return $x =~ /^\d+$/ && $y =~ /^\d+$/ ? $x <=> $y : $x cmp $y;
}

# ---------------------------------------------------------------------------
# the report filter
# ---------------------------------------------------------------------------

# report(%o) returns a response body filter (a code ref).  %o:
#   do    => sub { ... }   run first (may return lines to report)
#   wait  => [ [mock, "METHOD /path[*]", count], ... ]
#   jobs_wait => [ "what", sub { my ($jobs) = @_; ... } ]
#   idle  => 0             do not wait for the queue to be idle (default 1)
#   jobs  => 1             add the admin queue's jobs
#   admin => [undef, 'shop2']   whose queues (idle and jobs)
#   mocks => ['printnow', 'siteflow']   which logs to show (default both)
#   hide  => qr{...}        leave out requests whose "METHOD path" matches
#   answer => "key:regex"   the answer line becomes 'answer {"key": ~ /regex/}'
#                           if the body is {"key": "<a match>"} and nothing
#                           else (for texts we do not pin)
#   errors => { order_id => "regex" }   check the job's last_error
#   sort  => 1              sort each mock's lines (concurrent orders)
#   then  => sub { ... }    run last (e.g. change rules for the next request)
#   durations => 1          add a line naming the kinds of Site Flow Log
#                           entries whose duration_ms was checked
# Every report checks every Site Flow Log entry's duration_ms (_durations)
# and adds a "BAD duration_ms" line for each one out of range.
sub report {
    my (%o) = @_;
    return sub {
        my ($body) = @_;
        my @l;
        (my $a = $body // '') =~ s/\s+\z//;
        utf8::decode($a);       # the report is characters until the end
        $a =~ s/("job"\s*:\s*)"[^"]+"/$1"ID"/g;
        if (defined $o{answer}) {       # "key:regex"
            my ($k, $re) = split /:/, $o{answer}, 2;
            my $d = json_of($body);
            $a = "{\"$k\": ~ /$re/}"
                if ref $d eq 'HASH' && keys %$d == 1 && defined $d->{$k}
                   && !ref $d->{$k} && $d->{$k} =~ /$re/;
        }
        push @l, "answer $a";
        push @l, grep { defined } $o{do}->() if $o{do};
        for my $w (@{ $o{wait} // [] }) {
            my $e = wait_requests(@$w);
            push @l, $e if $e;
        }
        if (my $jw = $o{jobs_wait}) {
            my $e = wait_jobs(@$jw);
            push @l, $e if $e;
        }
        if ($o{idle} // 1) {
            for my $shop (@{ $o{admin} // [undef] }) {
                my $e = _idle(shop => $shop);
                push @l, $e if $e;
            }
        }
        for my $mock (@{ $o{mocks} // [qw(printnow siteflow)] }) {
            my @m;
            for my $e (@{ mock_requests($mock) }) {
                next if $o{hide} && "$e->{method} $e->{path}" =~ $o{hide};
                push @m, $mock eq 'siteflow' ? _sf_line($e) : _pn_line($e);
            }
            push @l, $o{sort} ? sort @m : @m;
        }
        push @l, _job_lines(%o) if $o{jobs};
        push @l, _durations(%o);
        push @l, grep { defined } $o{then}->() if $o{then};
        my $out = join("\n", @l) . "\n";
        utf8::encode($out);     # as the expected text in the .t file
        print STDERR "# report:\n$out" if $ENV{SITEFLOW_FLOW_DEBUG};
        return $out;
    };
}

# accepted vs delivered vs duplicated for the fault tests: an order counts
# as created in SiteFlow once per POST {api}/order the mock took in (its
# rule answered 2xx, even if the answer never reached nginx: "partial",
# "no answer", a delay beyond the timeout).  %o: orders => [ids] (the
# PrintNow ids whose hooks were accepted), prefix (default PN-).
# Returns "accepted N / created N / lost N / duplicated N" plus a line per
# problem.
sub tally {
    my (%o) = @_;
    my $pre = $o{prefix} // 'PN-';
    my %created;
    for my $e (@{ mock_requests('siteflow', 'POST *') }) {
        next unless $e->{path} =~ m{/order$};
        my $r = $e->{_rule};
        my $a = $r ? $r->{action} // 'respond' : 'respond';
        my $st = $r ? $r->{status} // 200 : 200;
        next if $a =~ /^(?:close|reset)$/ || $st !~ /^2/;
        my $o = json_of($e->{body}) // {};
        $created{ $o->{orderData}{sourceOrderId} // '?' }++;
    }
    my @ids = @{ $o{orders} };
    my $lost = grep { !$created{"$pre$_"} } @ids;
    my $dup  = grep { ($created{"$pre$_"} // 0) > 1 } @ids;
    my %acc = map { ("$pre$_" => 1) } @ids;
    my @extra = grep { !$acc{$_} } sort keys %created;
    my @l = ('accepted ' . @ids, 'created ' . (grep { $created{"$pre$_"} } @ids),
             "lost $lost", "duplicated $dup");
    push @l, "created but never accepted: @extra" if @extra;
    push @l, map { "lost $pre$_" } grep { !$created{"$pre$_"} } @ids;
    push @l, map { "duplicated $pre$_ x$created{\"$pre$_\"}" }
             grep { ($created{"$pre$_"} // 0) > 1 } @ids;
    return join("\n", @l) . "\n";
}

# ---------------------------------------------------------------------------
# fault runs: many orders through the hook, then the tally
# ---------------------------------------------------------------------------

# run_orders(ids => [6001 .. 6010], during => sub { ... }, port => ...,
#            wait => 1 (default: wait until every accepted order is created
#            and the queue is idle))
# Sends an order_created hook per id, runs "during" (which may return
# lines), waits, and returns the lines "answers: ...", what "during" said,
# and the tally (accepted vs created vs lost vs duplicated).
sub run_orders {
    my (%o) = @_;
    my (%ans, @acc);
    for my $id (@{ $o{ids} }) {
        my $r = hook({ event => 'order_created', id => $id },
                     (port => $o{port}) x !!$o{port});
        $ans{ $r->{status} }++;
        push @acc, $id if $r->{status} == 202;
    }
    my @l = ('answers: ' . CORE::join(', ', map { "$_ x$ans{$_}" } sort keys %ans));
    push @l, grep { defined } $o{during}->(\@acc) if $o{during};
    if ($o{wait} // 1) {
        my $e = wait_until(sub { 'every accepted order created' }, sub {
            my %c;
            for my $e (@{ mock_requests('siteflow', 'POST *') }) {
                next unless $e->{path} =~ m{/order$};
                my $r = $e->{_rule};
                next if $r && (($r->{action} // '') =~ /^(?:close|reset)$/
                               || ($r->{status} // 200) !~ /^2/);
                $c{ (json_of($e->{body}) // {})->{orderData}{sourceOrderId} // '' } = 1;
            }
            !grep { !$c{"PN-$_"} } @acc;
        }, $o{timeout} // 30);
        push @l, $e if $e;
        $e = _idle(port => $o{port}, timeout => $o{timeout} // 30);
        push @l, $e if $e;
    }
    return @l unless $o{wait} // 1;     # nothing can be delivered yet
    return (@l, split /\n/, tally(orders => \@acc));
}

# ---------------------------------------------------------------------------
# nginx outside the data-driven runners (t/121-crash.t)
# ---------------------------------------------------------------------------

# nginx_start(prefix => DIR, port => N, http => TEXT, server => TEXT,
#             workers => 2): writes DIR/conf/nginx.conf ($TEST_NGINX_*
# expanded) and starts nginx (master + workers, daemon); dies unless it
# answers on the port.  Returns the master pid.
sub nginx_start {
    my (%o) = @_;
    my $p = $o{prefix};
    make_path("$p/conf", "$p/logs");
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $mods = CORE::join '', map { "load_module $_;\n" }
        split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
    my $conf = <<"EOC";
${mods}daemon on;
master_process on;
worker_processes @{[ $o{workers} // 2 ]};
error_log $p/logs/error.log debug;
pid $p/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $p/client_body_temp;
    proxy_temp_path $p/proxy_temp;
    fastcgi_temp_path $p/fastcgi_temp;
    uwsgi_temp_path $p/uwsgi_temp;
    scgi_temp_path $p/scgi_temp;
$o{http}
    server {
        listen 127.0.0.1:$o{port};
$o{server}
    }
}
EOC
    $conf =~ s{\$(TEST_NGINX_[A-Z0-9_]+)}{
        $ENV{$1} // die "nginx_start: \$$1 is not set\n" }ge;
    open my $fh, '>', "$p/conf/nginx.conf" or die "$p/conf/nginx.conf: $!\n";
    print $fh $conf;
    close $fh;
    unlink "$p/logs/nginx.pid";
    my $out = `$bin -p $p/ -c $p/conf/nginx.conf 2>&1`;
    die "nginx_start: $bin failed: $out\n" if $?;
    my $e = wait_until('nginx answers', sub {
        -s "$p/logs/nginx.pid"
        && http_request(port => $o{port}, method => 'GET', path => '/ping',
                        timeout => 1)->{status} == 200 }, 10);
    die "nginx_start: $e\n" if $e;
    return nginx_pids($p)->[0];
}

# [master pid, worker pids...] of the nginx under prefix (from its pid file
# and /proc)
sub nginx_pids {
    my ($p) = @_;
    open my $fh, '<', "$p/logs/nginx.pid" or return [];
    my ($m) = (<$fh> // '') =~ /(\d+)/ or return [];
    my @w;
    for my $st (glob '/proc/[0-9]*/stat') {
        open my $s, '<', $st or next;
        my $l = <$s> // next;
        my ($pid, $ppid) = $l =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @w, $pid if $ppid == $m;
    }
    return [$m, sort { $a <=> $b } @w];
}

# graceful stop (QUIT), waiting for every process to exit
sub nginx_stop {
    my ($p, $sig) = @_;
    my $pids = nginx_pids($p);
    return '' unless @$pids;
    kill $sig // 'QUIT', $pids->[0];
    my $e = wait_until('nginx exits', sub { !grep { kill 0, $_ } @$pids }, 15);
    kill 'KILL', @$pids if $e;
    return $e;     # '' when every process exited
}

# kill -9 of the master and all its workers (a crash of the whole nginx)
sub nginx_kill {
    my ($p) = @_;
    my $pids = nginx_pids($p);
    kill 'KILL', @$pids;
    wait_until('nginx killed', sub { !grep { kill 0, $_ } @$pids }, 10);
    return scalar @$pids;
}

# ---------------------------------------------------------------------------
# configuration text
# ---------------------------------------------------------------------------

# server-level directives of a storefront plus its hook, postback and admin
# locations.  %o: shop ('shop1' oneflow, 'shop2' printos), trigger,
# extra (more directives), api (instead of the mock's URL), admin_only
# (no hook and postback locations: a manual-only storefront),
# no_destination (no siteflow_destination; the fixture mappings have none)
sub storefront_conf {
    my (%o) = @_;
    my $shop = $o{shop} // 'shop1';
    my $scheme = $shop eq 'shop2' ? 'printos' : 'oneflow';
    my $c = $Siteflow::Sign::CRED{$scheme};
    my $api = $o{api} // ($scheme eq 'printos'
        ? 'http://127.0.0.1:$TEST_NGINX_SITEFLOW_PORT/siteflow/api'
        : 'http://127.0.0.1:$TEST_NGINX_SITEFLOW_PORT/api');
    my $dest = $shop eq 'shop2' ? 'acme2' : 'acme';
    my $trigger = $o{trigger} // '"New Order" "Approved"';
    my $extra = $o{extra} // '';
    my $timeout = $o{timeout} // '2s';
    my $algo = defined $o{algorithm} ? " algorithm=$o{algorithm}" : '';
    my $destination = $o{no_destination} ? ''
                      : "    siteflow_destination $dest;\n";
    my $hooks = $o{admin_only} ? '' : <<"EOC";
    location = /hook {
        siteflow_printnow_hook;
        siteflow_token $TOKEN{hook};
    }
    location = /postback {
        siteflow_postback;
        siteflow_token $TOKEN{postback};
    }
EOC
    return <<"EOC";
    siteflow_storefront $shop;
    siteflow_api $api scheme=$scheme$algo;
    siteflow_credentials $c->{token} $c->{secret};
${destination}    siteflow_order_trigger $trigger;
    siteflow_mapping \$TEST_NGINX_FIXTURES/mapping-$shop.json;
    siteflow_printnow_api http://127.0.0.1:\$TEST_NGINX_PRINTNOW_PORT;
    siteflow_printnow_credentials $PN{token} $PN{key};
    siteflow_timeout $timeout;
$extra
${hooks}    location /admin/ {
        siteflow_admin;
    }
    location = /ping {
        return 200 "pong\\n";
    }
EOC
}

1;
