# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: whatever the network does to SiteFlow or PrintNow calls,
# nothing the module acknowledged is lost and nothing is created twice in
# SiteFlow: for each fault, every hook answered 202 becomes exactly one
# order in SiteFlow once the fault is gone ("created 5 / lost 0 /
# duplicated 0"), PrintNow updates of one order arrive in acceptance order,
# and nginx keeps serving other requests meanwhile.
#
# The mock SiteFlow is stateful here (Siteflow::Flow::stateful): a create
# it took in counts as created even when its answer was cut, late or reset
# after the fact, and from then on its look-up by sourceOrderId answers
# 200.  So a module that re-creates after an ambiguous failure without the
# look-up shows up as "duplicated 1", and one that gives up as "lost 1".
# Orders 6001-6030 are t/fixtures/orders/5001.json with another id.
# Process and disk faults (kill -9, reload, restart, full or torn spool)
# are in t/121-crash.t.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();
run_tests();

__DATA__

=== TEST 1: SiteFlow down (connection refused): 5 orders accepted, retried, all created once after it comes back
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::stateful();
::mock_down('siteflow');
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub { ::run_orders(ids => [6001 .. 6005], during => sub {
    my ($acc) = @_;
    # the storefront's breaker: one probe at a time, the rest wait
    my $e = ::wait_jobs('all 5 waiting, one of them tried twice', sub {
        5 == grep({ $_->{state} =~ /^(?:pending|retrying)$/ } @{ $_[0] })
        && grep { $_->{attempts} >= 2 } @{ $_[0] } });
    ::mock_up('siteflow');
    $e || 'all waiting while down' }) })
--- response_body
answer pong
answers: 202 x5
all waiting while down
accepted 5
created 5
lost 0
duplicated 0
--- no_error_log
[alert]
[crit]



=== TEST 2: 503 for the next 12 SiteFlow requests (validate, create and look-ups alike): all created once
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::stateful({ on => '* /api/*', status => 503, times => 12,
             json => { success => JSON::PP::false, error => { code => 503 } } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my @l = ::run_orders(ids => [6001 .. 6005]);
    my $n = grep { ($_->{_rule}{status} // 0) == 503 } @{ ::mock_requests('siteflow') };
    (@l, "503 answers: $n") })
--- response_body
answer pong
answers: 202 x5
accepted 5
created 5
lost 0
duplicated 0
503 answers: 12
--- no_error_log
[alert]
[crit]



=== TEST 3: SiteFlow slower than siteflow_timeout on validate and on create (create taken in, answer too late): resolved by look-up
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(timeout => '1s')
--- init
::stateful({ on => 'POST /api/order/validate', delay_ms => 2500, times => 2,
             json => { success => JSON::PP::true } },
           { on => 'POST /api/order', status => 201, delay_ms => 2500, times => 2,
             json => { _id => '{{hex24}}' } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my @l = ::run_orders(ids => [6001 .. 6004]);
    my $ping = ::http_request(method => 'GET', path => '/ping');
    my $lookups = @{ ::mock_requests('siteflow', 'GET /api/order/bysourceid/*') };
    (@l, "look-ups: " . ($lookups >= 2 ? 'at least 2' : $lookups),
     "ping: $ping->{status}") })
--- response_body
answer pong
answers: 202 x4
accepted 4
created 4
lost 0
duplicated 0
look-ups: at least 2
ping: 200
--- no_error_log
[alert]
[crit]



=== TEST 4: connection reset before an answer (validate) and mid-response (create: taken in, half an answer): all created once
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::stateful({ on => 'POST /api/order/validate', action => 'reset', times => 2 },
           { on => 'POST /api/order', action => 'partial', status => 201, times => 2,
             json => { _id => '{{hex24}}', url => 'x' x 200 } },
           { on => 'POST /api/order', action => 'close', times => 1 });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub { ::run_orders(ids => [6001 .. 6005]) })
--- response_body
answer pong
answers: 202 x5
accepted 5
created 5
lost 0
duplicated 0
--- no_error_log
[alert]
[crit]



=== TEST 5: oversized answers (2 MB against siteflow_max_response 64k) on validate, create and the PrintNow fetch: all created once
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_max_response 64k;')
--- init
::stateful({ on => 'POST /api/order/validate', action => 'oversize', size => 2097152, times => 2 },
           { on => 'POST /api/order', action => 'oversize', status => 201, size => 2097152, times => 1 });
::pn_rules({ on => 'GET /api/v2/order/6003', action => 'oversize', size => 2097152,
             chunked => JSON::PP::true, times => 1 });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub { ::run_orders(ids => [6001 .. 6004]) })
--- response_body
answer pong
answers: 202 x4
accepted 4
created 4
lost 0
duplicated 0
--- no_error_log
[alert]
[crit]



=== TEST 6: a SiteFlow host name that does not resolve: hooks accepted, jobs kept retrying with the reason, nginx stays responsive
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(api => 'http://nonexistent.invalid/api')
--- request
GET /ping
--- response_body_filters eval
::report(mocks => ['siteflow'], idle => 0, do => sub {
    my @l = ::run_orders(ids => [6001 .. 6003], wait => 0);
    # one job at a time is tried (the breaker), and says why it failed
    my $e = ::wait_jobs('3 jobs waiting, one tried twice with an error', sub {
        3 == grep({ $_->{state} =~ /^(?:pending|retrying)$/ } @{ $_[0] })
        && grep { $_->{state} eq 'retrying' && $_->{attempts} >= 2
                  && ($_->{last_error} // '') =~ /resolv|host|nonexistent\.invalid|dns/i } @{ $_[0] } });
    push @l, $e || 'retrying, last_error names the host problem';
    my $slow = 0;
    for (1 .. 20) {
        my $t = Time::HiRes::time();
        my $r = ::http_request(method => 'GET', path => '/ping', timeout => 3);
        $slow++ if $r->{status} != 200 || Time::HiRes::time() - $t > 0.5;
    }
    push @l, "slow or failed pings: $slow";
    @l })
--- response_body
answer pong
answers: 202 x3
retrying, last_error names the host problem
slow or failed pings: 0
--- no_error_log
[alert]
[crit]



=== TEST 7: PrintNow resetting connections while two orders get three updates each: each update once, per order in acceptance order
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
::send_and_wait(5002);
::pn_rules({ on => 'PATCH /api/v2/order/*', action => 'reset', times => 4 },
           { on => 'PATCH /api/v2/order/5002/status', status => 503, times => 2 });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my @l;
    for my $ev (qw(printready complete shipped)) {
        for my $o (5001, 5002) {
            my $r = ::postback({ event => $ev, sourceOrderId => "PN-$o",
                                 trackingNumber => "T$o", shipDate => '2024-05-02' });
            push @l, "$o $ev -> $r->{status}";
        }
    }
    my $e = ::wait_until('6 updates delivered', sub {
        6 == grep { my $r = $_->{_rule}; !$r || ($r->{action} // 'respond') eq 'respond' && ($r->{status} // 200) == 200 }
                 @{ ::mock_requests('printnow', 'PATCH *') } });
    push @l, $e if $e;
    my %seq;
    for my $q (@{ ::mock_requests('printnow', 'PATCH *') }) {
        my $r = $q->{_rule};
        next unless !$r || ($r->{action} // 'respond') eq 'respond' && ($r->{status} // 200) == 200;
        my ($o, $what) = $q->{path} =~ m{/order/(\d+)/(\w+)};
        my $b = ::json_of($q->{body}) // {};
        push @{ $seq{$o} }, $what eq 'shipped' ? 'shipped' : $b->{comment} =~ s/^SiteFlow: //r;
    }
    (@l, map { "$_: @{ $seq{$_} // [] }" } sort keys %seq) })
--- response_body
answer pong
5001 printready -> 200
5002 printready -> 200
5001 complete -> 200
5002 complete -> 200
5001 shipped -> 200
5002 shipped -> 200
5001: printready complete shipped
5002: printready complete shipped
--- no_error_log
[alert]
[crit]



=== TEST 8: creates on kept-alive connections: SiteFlow takes a create in and closes the reused connection without a byte of answer: libcurl does not send it again by itself, the look-up finds it; one create per order
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::stateful({ on => 'POST /api/order', action => 'close', times => 3,
             remember => '{{json.orderData.sourceOrderId}}' });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub {
    my @l = ::run_orders(ids => [6011 .. 6015], wait => 0);
    my $e = Siteflow::Flow::_idle(timeout => 30);
    push @l, $e if $e;
    my (%n, $looked);
    for my $q (@{ ::mock_requests('siteflow') }) {
        $looked++ if $q->{path} =~ m{/bysourceid/};
        next unless $q->{method} eq 'POST' && $q->{path} =~ m{/order$};
        $n{ (::json_of($q->{body}) // {})->{orderData}{sourceOrderId} // '?' }++;
    }
    (@l, map({ "$_: $n{$_}" } sort keys %n), 'looked up: ' . ($looked >= 3 ? '3 or more' : $looked // 0)) })
--- response_body
answer pong
answers: 202 x5
PN-6011: 1
PN-6012: 1
PN-6013: 1
PN-6014: 1
PN-6015: 1
looked up: 3 or more
--- no_error_log
[alert]
[crit]



=== TEST 9: nginx stops while a create is still waiting for SiteFlow's answer: the run in flight is dropped at exit (under make valgrind: nothing of it leaks), the job stays claimed for the next start
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(timeout => '60s')
--- init
::sf_rules({ on => 'POST /api/order', status => 201, delay_ms => 30000,
             json => { _id => '{{hex24}}' } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], idle => 0, do => sub {
    my @l = ::run_orders(ids => [6021, 6022], wait => 0);
    my $e = ::wait_requests('siteflow', 'POST /api/order', 2);
    push @l, $e || 'SiteFlow has both creates, answers in 30 s';
    $e = ::wait_jobs('2 jobs pending, none attempted yet', sub {
        2 == grep { $_->{state} eq 'pending' && !$_->{attempts} } @{ $_[0] } });
    push @l, $e || 'both jobs in flight when nginx stops';
    @l })
--- response_body
answer pong
answers: 202 x2
SiteFlow has both creates, answers in 30 s
both jobs in flight when nginx stops
--- no_error_log
[alert]
[crit]



=== TEST 10: SiteFlow answers 503 slowly while PrintNow answers: PrintNow's answers do not close SiteFlow's breaker, one job at a time calls SiteFlow until it is back, then all are created once
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 200ms;
--- config eval: ::storefront_conf()
--- init
::stateful({ on => 'POST /api/order/validate', status => 503, delay_ms => 300,
             json => { success => JSON::PP::false, error => { code => 503 } } });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], do => sub { ::run_orders(ids => [6001 .. 6006], during => sub {
    # the second and later validates of each order: with SiteFlow failing,
    # each is a retry, which only the breaker's probe may be; each must
    # begin after the one before it was answered (a first attempt may
    # still be on its way from a run claimed before the breaker opened)
    my $late = sub {
        my (%n, @r);
        for my $q (sort { $a->{time} <=> $b->{time} || $a->{seq} <=> $b->{seq} }
                   @{ ::mock_requests('siteflow', 'POST /api/order/validate') }) {
            my $src = (::json_of($q->{body}) // {})->{orderData}{sourceOrderId} // '';
            push @r, $q if ++$n{$src} >= 2;
        }
        \@r };
    my $e = ::wait_until(sub { '5 validates that are retries' },
                         sub { @{ $late->() } >= 5 });
    my $v = $late->();
    my $overlap = grep { $v->[$_]{time} < $v->[$_ - 1]{time} + 300 } 1 .. $#$v;
    ::stateful();
    $e || "SiteFlow called by one job at a time: " . ($overlap ? "no, $overlap overlap" : 'yes') }) })
--- response_body
answer pong
answers: 202 x6
SiteFlow called by one job at a time: yes
accepted 6
created 6
lost 0
duplicated 0
--- no_error_log
[alert]
[crit]



=== TEST 11: SiteFlow down, its breaker open for 10 s: a postback's PrintNow update goes at once (it waits only for PrintNow's breaker), the orders keep waiting
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 10s 10s;
--- config eval: ::storefront_conf(extra => '    siteflow_printnow_fetch off;')
--- init
::stateful();
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], idle => 0, do => sub {
    my @l;
    my $r = ::hook({ event => 'order_created', order => ::pn_order(6011) });
    push @l, "6011 -> $r->{status}";
    my $e = ::wait_jobs('the order of 6011 done', sub {
        grep { $_->{order_id} eq '6011' && $_->{state} eq 'done' } @{ $_[0] } });
    push @l, $e if $e;
    ::mock_down('siteflow');
    for my $id (6012, 6013) {
        $r = ::hook({ event => 'order_created', order => ::pn_order($id) });
        push @l, "$id -> $r->{status}";
    }
    # (the orders are whole in their hooks: no PrintNow answer of theirs
    # could close a breaker)
    # one of them failed (the breaker opened), the other waits behind it
    # or failed too
    $e = ::wait_jobs('6012 and 6013 waiting, one retrying: the breaker is open', sub {
        my @j = grep { $_->{order_id} =~ /^601[23]$/ } @{ $_[0] };
        2 == grep({ $_->{state} =~ /^(?:pending|retrying)$/ } @j)
        && grep { $_->{state} eq 'retrying' } @j });
    push @l, $e || 'breaker open';
    $r = ::postback({ event => 'shipped', sourceOrderId => 'PN-6011',
                      trackingNumber => 'T6011', shipDate => '2024-05-02' });
    push @l, "shipped -> $r->{status}";
    $e = ::wait_requests('printnow', 'PATCH /api/v2/order/6011/shipped', 1, 5);
    push @l, $e || 'PrintNow has it within 5 s';
    push @l, 'orders still waiting: ' . scalar(grep { $_->{order_id} =~ /^601[23]$/
        && $_->{state} =~ /^(?:pending|retrying)$/ } @{ ::admin_jobs() || [] });
    @l })
--- response_body
answer pong
6011 -> 202
6012 -> 202
6013 -> 202
breaker open
shipped -> 200
PrintNow has it within 5 s
orders still waiting: 2
--- no_error_log
[alert]
[crit]



=== TEST 12: SiteFlow refuses a validate with text that is not UTF-8 (a proxy's Latin-1 page), or with a long message of 3-byte characters that the error's length limit cuts: each job still ends failed, its last_error valid UTF-8 (bad bytes as U+FFFD, no cut character)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
use MIME::Base64 ();
::pn_rules({ on => 'GET /api/v2/order/6031', json => ::pn_order(6031) },
           { on => 'GET /api/v2/order/6032', json => ::pn_order(6032) });
::sf_rules({ on => 'POST /api/order/validate', status => 400,
             headers => { 'Content-Type' => 'text/html; charset=iso-8859-1' },
             body_base64 => MIME::Base64::encode_base64(
                 "<p>Zugang verweigert f\xFCr Ger\xE4t</p>", '') });
--- request
GET /ping
--- response_body_filters eval
::report(mocks => [], idle => 0, do => sub {
    my @l = ::run_orders(ids => [6031], wait => 0);
    my $e = ::wait_jobs('6031 failed', sub {
        grep { $_->{order_id} eq '6031' && $_->{state} eq 'failed' } @{ $_[0] } });
    push @l, $e || 'failed';
    ::sf_rules({ on => 'POST /api/order/validate', status => 400,
                 json => { error => { message => "x" . "\x{20AC}" x 400 } } });
    push @l, ::run_orders(ids => [6032], wait => 0);
    $e = ::wait_jobs('6032 failed', sub {
        grep { $_->{order_id} eq '6032' && $_->{state} eq 'failed' } @{ $_[0] } });
    push @l, $e || 'failed';
    for my $j (sort { $a->{order_id} cmp $b->{order_id} } @{ ::admin_jobs() }) {
        my $t = $j->{last_error} // '';
        push @l, "$j->{order_id}: " . ($t =~ /\x{FFFD}/ ? 'U+FFFD' : 'no U+FFFD')
                 . ', ' . (length($t) > 100 ? 'long' : 'short')
                 . ($t =~ /Zugang verweigert f\x{FFFD}r Ger\x{FFFD}t/ ? ', the text' : '');
    }
    @l })
--- response_body
answer pong
answers: 202 x1
failed
answers: 202 x1
failed
6031: U+FFFD, short, the text
6032: no U+FFFD, long
--- no_error_log
[alert]
[crit]
