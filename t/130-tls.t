# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: SiteFlow and PrintNow are reached over TLS, and TLS never
# costs an order or the edge: with siteflow_ssl_trusted_certificate naming
# the CA of the upstreams an order is delivered; an upstream whose
# certificate is not trusted, or names another host, gets nothing (not a
# byte of the order reaches it), the job says why in last_error, the error
# log says why, and the job stays queued and retried until the certificate
# is right; siteflow_ssl_verify off delivers and warns when the worker
# starts; a TLS handshake that never completes does not stall nginx; and
# the worker's OpenSSL error queue is left clean after libcurl's calls, so
# nginx's own TLS clients (this nginx also terminates TLS, as an edge
# does) never meet "ignoring stale global SSL error" alerts.
#
# Set-up: the suite makes its own throw-away CA with the openssl command
# line when this file starts (a temporary directory, removed at the end;
# nothing here is a real secret):
#
#   ca.pem         the test CA (siteflow_ssl_trusted_certificate)
#   good.pem       localhost (and 127.0.0.1), signed by the test CA
#   wronghost.pem  wrong-host.example only, signed by the test CA
#   untrusted.pem  localhost, signed by another CA nobody trusts
#
# (each .pem holds the certificate and its key).  The mocks stay plain
# HTTP; this nginx fronts them with TLS server blocks, as SiteFlow's and
# PrintNow's load balancers do:
#
#   https://localhost:$TEST_NGINX_SF_TLS_PORT  -> mock SiteFlow, with the
#       certificate $TEST_NGINX_CERTS/sf-front.pem (read at each handshake,
#       so a block can "fix" the upstream by replacing the file)
#   https://localhost:$TEST_NGINX_PN_TLS_PORT  -> mock PrintNow (good.pem)
#   https://localhost:$TEST_NGINX_EDGE_PORT    this nginx's own clients
#       (good.pem): /ping
#   127.0.0.1:$TEST_NGINX_STALL_PORT           a listener that takes
#       connections and never answers (a TLS handshake that stalls)
#   127.0.0.1:$TEST_NGINX_OSSL_PORT            "openssl s_server", an
#       upstream outside this nginx (TEST 7)
#
# Every block asserts no [alert] in the error log (strict runs fail on
# any).  Without the module's ERR_clear_error() calls TESTs 2, 4 and 7
# fail with "ignoring stale global SSL error (... shutdown while in
# init)"; in TEST 7 it is the edge's client connection that meets it.
# Each block ends with nothing in flight (the certificate fixed and the
# order delivered, or siteflow_give_up), so that make valgrind stays clean.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

our ($CERTS, $STALL, @STALLED);

sub openssl {
    my @a = @_;
    my $out = `openssl @a 2>&1`;
    die "openssl @a: $out\n" if $?;
    return $out;
}

# a CA (self-signed) or a server certificate signed by $o{ca}
sub make_cert {
    my ($name, %o) = @_;
    my $d = $CERTS;
    my $ec = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';
    if ($o{ca_self}) {
        openssl("req -x509 $ec -keyout $d/$name.key -out $d/$name.crt"
            . " -days 2 -subj '/O=siteflow test suite/CN=$o{cn}'"
            . " -addext basicConstraints=critical,CA:TRUE"
            . " -addext keyUsage=critical,keyCertSign,cRLSign");
    } else {
        open my $fh, '>', "$d/$name.ext" or die "$d/$name.ext: $!\n";
        print $fh "subjectAltName=$o{san}\nbasicConstraints=CA:FALSE\n"
            . "keyUsage=critical,digitalSignature\n"
            . "extendedKeyUsage=serverAuth\n";
        close $fh;
        openssl("req -new $ec -keyout $d/$name.key -out $d/$name.csr"
            . " -subj '/O=siteflow test suite/CN=$o{cn}'");
        openssl("x509 -req -in $d/$name.csr -CA $d/$o{ca}.crt"
            . " -CAkey $d/$o{ca}.key -set_serial " . (1000 + $o{serial})
            . " -days 2 -extfile $d/$name.ext -out $d/$name.crt");
    }
    open my $out, '>', "$d/$name.pem" or die "$d/$name.pem: $!\n";
    for my $f ("$d/$name.crt", "$d/$name.key") {
        open my $in, '<', $f or die "$f: $!\n";
        local $/;
        print $out scalar <$in>;
    }
    close $out;
    return;
}

sub make_certs {
    $CERTS = tempdir('siteflow-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    make_cert('ca', ca_self => 1, cn => 'siteflow test CA (fake)');
    make_cert('other-ca', ca_self => 1, cn => 'untrusted test CA (fake)');
    make_cert('good', ca => 'ca', serial => 1, cn => 'localhost',
              san => 'DNS:localhost,IP:127.0.0.1');
    make_cert('wronghost', ca => 'ca', serial => 2,
              cn => 'wrong-host.example', san => 'DNS:wrong-host.example');
    make_cert('untrusted', ca => 'other-ca', serial => 3, cn => 'localhost',
              san => 'DNS:localhost,IP:127.0.0.1');
    copy("$CERTS/ca.crt", "$CERTS/ca.pem") or die "ca.pem: $!\n";
    $ENV{TEST_NGINX_CERTS} = $CERTS;
    return;
}

# the certificate the SiteFlow front presents from now on (atomic: the
# front reads the file at each handshake)
sub sf_front {
    my ($which) = @_;
    copy("$CERTS/$which.pem", "$CERTS/sf-front.pem.new")
        or die "sf-front.pem: $!\n";
    rename "$CERTS/sf-front.pem.new", "$CERTS/sf-front.pem"
        or die "sf-front.pem: $!\n";
    return ();
}

# a listener that never accepts nor answers: connections complete (the
# kernel's backlog) and the client's TLS hello is never answered
sub stall_listen {
    @STALLED = ();
    close $STALL if $STALL;
    $STALL = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', Listen => 16, ReuseAddr => 1)
        or die "stall listener: $@\n";
    $ENV{TEST_NGINX_STALL_PORT} = $STALL->sockport;
    return;
}

# an upstream outside this nginx: "openssl s_server" on
# $TEST_NGINX_OSSL_PORT presenting $which.pem (so that no TLS of this
# nginx runs between a refusal and the next client of the edge)
our $OSSL;
sub ossl_server {
    my ($which) = @_;
    ossl_stop();
    my $port = $ENV{TEST_NGINX_OSSL_PORT};
    $OSSL = fork // die "fork: $!\n";
    if (!$OSSL) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'openssl', 's_server', '-quiet', '-www',
             '-accept', "127.0.0.1:$port",
             '-cert', "$CERTS/$which.pem", '-key', "$CERTS/$which.pem";
        exit 127;
    }
    my $e = ::wait_until('openssl s_server listens', sub {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                              Proto => 'tcp') }, 10);
    die "$e\n" if $e;
    return;
}

sub ossl_stop {
    return unless $OSSL;
    kill 'TERM', $OSSL;
    waitpid $OSSL, 0;
    undef $OSSL;
    return;
}

END { ossl_stop() }

# a TLS client of this nginx (curl on the command line, verifying against
# the test CA): "edge: STATUS BODY" or "edge: failed (...)"
sub edge_ping {
    my $port = $ENV{TEST_NGINX_EDGE_PORT};
    my $out = `curl -sS --max-time 5 --cacert $CERTS/ca.pem \\
               -w ' %{http_code}' https://localhost:$port/ping 2>&1`;
    chomp $out;
    return $out =~ /^(\S+)\s+(\d{3})$/ ? "edge: $2 $1" : "edge: failed ($out)";
}

# the newest Site Flow Log entry of a call to SiteFlow that got no answer
sub failed_call {
    my $log = ::json_of(::admin(GET => 'log?limit=100')->{body}) // {};
    my ($e) = grep { ($_->{direction} // '') eq 'out' && !defined $_->{status}
                     && $_->{url} =~ m{/api/order} } @{ $log->{entries} // [] };
    return 'Site Flow Log: no failed call to SiteFlow' unless $e;
    (my $url = $e->{url}) =~ s/:\d+/:PORT/;
    return "Site Flow Log: $e->{method} $url null $e->{response}";
}

# "job order ID STATE" of this block's order (the queue may hold the
# orders of earlier blocks when nginx is reloaded between blocks)
sub job_line {
    my ($id) = @_;
    my ($j) = grep { $_->{order_id} eq $id } @{ ::admin_jobs() // [] };
    return $j ? "job $j->{kind} $j->{order_id} $j->{state}" : "no job of $id";
}

# the job of order $id, once $cond holds for it
sub wait_job {
    my ($what, $id, $cond) = @_;
    my $job;
    my $e = ::wait_jobs($what, sub {
        ($job) = grep { $_->{order_id} eq $id } @{ $_[0] };
        $job && $cond->($job);
    });
    return ($e, $job);
}

# the TLS front servers (http_config)
sub tls_http {
    my (%o) = @_;
    my $backoff = $o{backoff} // '100ms 300ms';
    return "    siteflow_retry_backoff $backoff;\n" . <<'EOC' . ($o{extra} // '');
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;

    map $ssl_server_name $sf_front_pem {
        default $TEST_NGINX_CERTS/sf-front.pem;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_SF_TLS_PORT ssl;
        ssl_certificate $sf_front_pem;
        ssl_certificate_key $sf_front_pem;
        location / {
            proxy_pass http://127.0.0.1:$TEST_NGINX_SITEFLOW_PORT;
        }
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_PN_TLS_PORT ssl;
        ssl_certificate $TEST_NGINX_CERTS/good.pem;
        ssl_certificate_key $TEST_NGINX_CERTS/good.pem;
        location / {
            proxy_pass http://127.0.0.1:$TEST_NGINX_PRINTNOW_PORT;
        }
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_EDGE_PORT ssl;
        ssl_certificate $TEST_NGINX_CERTS/good.pem;
        ssl_certificate_key $TEST_NGINX_CERTS/good.pem;
        location = /ping {
            return 200 "pong\n";
        }
    }
EOC
}

# the storefront, both APIs over https (the SiteFlow one through the front
# or $o{sf_port}); $o{tls}: TLS directives (default: trust the test CA)
sub tls_conf {
    my (%o) = @_;
    my $sf = $o{sf_port} // '$TEST_NGINX_SF_TLS_PORT';
    my $tls = $o{tls}
        // "    siteflow_ssl_trusted_certificate \$TEST_NGINX_CERTS/ca.pem;\n";
    my $c = ::storefront_conf(api => "https://localhost:$sf/api",
                              extra => $tls . ($o{extra} // ''),
                              timeout => $o{timeout} // '10s');
    $c =~ s{http://127\.0\.0\.1:\$TEST_NGINX_PRINTNOW_PORT}
           {https://localhost:\$TEST_NGINX_PN_TLS_PORT}
        or die "tls_conf: no PrintNow URL\n";
    return $c;
}

make_certs();

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();
add_block_preprocessor(sub {
    my ($block) = @_;
    return $block unless defined $block->config;
    $ENV{"TEST_NGINX_${_}_PORT"} = MockUpstream::free_port()
        for qw(SF_TLS PN_TLS EDGE OSSL);
    ossl_stop();
    sf_front('good');
    stall_listen();
    return $block;
});
run_tests();

__DATA__

=== TEST 1: siteflow_ssl_trusted_certificate names the test CA: the order is fetched and delivered over TLS
--- http_config eval: ::tls_http()
--- config eval: ::tls_conf()
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":6021,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]],
         then => sub { (::job_line('6021'), ::edge_ping()) })
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/6021 basic -> 200
SF POST /api/order/validate oneflow PN-6021 fields-ok -> 200
SF POST /api/order oneflow PN-6021 fields-ok -> 201
job order 6021 done
edge: 200 pong
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: SiteFlow's certificate is signed by a CA nobody trusts: refused before anything is sent, said in the job and the log, retried, delivered once the certificate is right
--- http_config eval: ::tls_http()
--- config eval: ::tls_conf()
--- init
::sf_front('untrusted');
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":6022,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(do => sub {
    my ($e, $j) = ::wait_job('refused twice', '6022', sub {
        $_[0]{state} eq 'retrying' && $_[0]{attempts} >= 2 });
    my @l = $e || ("job $j->{state}, attempts >= 2",
                   "last_error: $j->{last_error}");
    push @l, 'SiteFlow requests while refused: '
        . @{ ::mock_requests('siteflow') };
    push @l, ::edge_ping(), ::failed_call();
    ::sf_front('good');
    @l }, wait => [[siteflow => 'POST /api/order', 1]],
    then => sub { ::job_line('6022') }, mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
job retrying, attempts >= 2
last_error: TLS handshake or certificate verification failed: SSL certificate problem: unable to get local issuer certificate
SiteFlow requests while refused: 0
edge: 200 pong
Site Flow Log: POST https://localhost:PORT/api/order/validate null (no answer: tls: SSL certificate problem: unable to get local issuer certificate)
SF POST /api/order/validate oneflow PN-6022 fields-ok -> 200
SF POST /api/order oneflow PN-6022 fields-ok -> 201
job order 6022 done
--- error_log eval
qr{\[error\] .*siteflow: TLS with localhost:\d+ failed: SSL certificate problem: unable to get local issuer certificate}
--- no_error_log
[alert]
[crit]



=== TEST 3: SiteFlow's certificate names another host: refused before anything is sent, said in the job and the log, retried with attempts increasing, delivered once the certificate is right
--- http_config eval: ::tls_http()
--- config eval: ::tls_conf()
--- init
::sf_front('wronghost');
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":6023,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(do => sub {
    my ($e, $j) = ::wait_job('refused twice', '6023', sub {
        $_[0]{state} eq 'retrying' && $_[0]{attempts} >= 2 });
    return $e if $e;
    my $n = $j->{attempts};
    ($e, $j) = ::wait_job('refused again', '6023', sub {
        $_[0]{state} eq 'retrying' && $_[0]{attempts} > $n });
    ($e || "job $j->{state}, attempts increasing",
     "last_error: $j->{last_error}",
     'SiteFlow requests while refused: ' . @{ ::mock_requests('siteflow') },
     ::edge_ping(), ::failed_call(), ::sf_front('good')) },
    wait => [[siteflow => 'POST /api/order', 1]],
    then => sub { ::job_line('6023') }, mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
job retrying, attempts increasing
last_error: TLS handshake or certificate verification failed: SSL: no alternative certificate subject name matches target host name 'localhost'
SiteFlow requests while refused: 0
edge: 200 pong
Site Flow Log: POST https://localhost:PORT/api/order/validate null (no answer: tls: SSL: no alternative certificate subject name matches target host name 'localhost')
SF POST /api/order/validate oneflow PN-6023 fields-ok -> 200
SF POST /api/order oneflow PN-6023 fields-ok -> 201
job order 6023 done
--- error_log eval
qr{\[error\] .*siteflow: TLS with localhost:\d+ failed: SSL: no alternative certificate subject name matches target host name 'localhost'}
--- no_error_log
[alert]
[crit]



=== TEST 4: no CA for SiteFlow at all (libcurl's default store): refused the same way until siteflow_give_up, then failed with the reason
--- http_config eval: ::tls_http(extra => "    siteflow_give_up 1s;\n")
--- config eval: ::tls_conf(tls => '')
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":6024,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(do => sub {
    my ($e, $j) = ::wait_job('refused, then given up', '6024', sub {
        $_[0]{state} eq 'failed' });
    ($e || "job $j->{state}", "last_error: $j->{last_error}",
     ::edge_ping()) }, mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
job failed
last_error: TLS handshake or certificate verification failed: SSL certificate problem: unable to get local issuer certificate
edge: 200 pong
--- error_log eval
qr{\[error\] .*siteflow: TLS with localhost:\d+ failed: SSL certificate problem: unable to get local issuer certificate}
--- no_error_log
[alert]
[crit]



=== TEST 5: siteflow_ssl_verify off: an untrusted certificate for another host is accepted, the order delivered, and the worker warns at start
--- http_config eval: ::tls_http()
--- config eval: ::tls_conf(tls => "    siteflow_ssl_verify off;\n")
--- init
::sf_front('wronghost');
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":6025,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(wait => [[siteflow => 'POST /api/order', 1]],
         then => sub { (::job_line('6025'), ::edge_ping()) })
--- response_body
answer {"job":"ID"}
PN GET /api/v2/order/6025 basic -> 200
SF POST /api/order/validate oneflow PN-6025 fields-ok -> 200
SF POST /api/order oneflow PN-6025 fields-ok -> 201
job order 6025 done
edge: 200 pong
--- error_log eval
qr{\[warn\] .*siteflow: "siteflow_ssl_verify" is off for storefront "shop1": the certificates and host names of SiteFlow and PrintNow are not checked}
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: a TLS handshake that never completes: nginx keeps answering meanwhile; the attempt times out
While the module's TLS hello waits at the stalled listener, an unrelated
location is asked again and again: each answer that came while the job's
attempt was still in flight (the admin queue, asked right after, does not
show it ended yet) proves that nginx did not wait for the handshake.
siteflow_give_up 1s ends the job after that attempt (failed, with the
reason), so that nothing is in flight when the block ends.
--- http_config eval: ::tls_http(extra => "    siteflow_give_up 1s;\n")
--- config eval: ::tls_conf(sf_port => '$TEST_NGINX_STALL_PORT', extra => "    siteflow_connect_timeout 3s;\n")
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":6026,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(do => sub {
    # the module's connection is taken and its TLS hello is in
    my ($c, $hello) = (undef, '');
    $::STALL->blocking(0);
    my $e = ::wait_until('a TLS hello at the stalled listener', sub {
        if (!$c && ($c = $::STALL->accept)) {
            $c->blocking(0);
            push @::STALLED, $c;
        }
        $c && sysread($c, $hello, 1) });
    return $e if $e;
    # then an unrelated location, over and over, until the attempt ends
    my ($during, $failed) = (0, 0);
    my $j;
    $e = ::wait_until('the attempt to time out', sub {
        my $r = ::http_request(method => 'GET', path => '/ping', timeout => 10);
        $failed++ if $r->{status} != 200;
        ($j) = grep { $_->{order_id} eq '6026' } @{ ::admin_jobs() // [] };
        return 1 if $j && $j->{state} =~ /^(?:retrying|failed)$/;
        $during++ if $r->{status} == 200;
        0 });
    ($e || "job $j->{state}, last_error: $j->{last_error}",
     sprintf('TLS hello: %s', unpack('H2', $hello) eq '16' ? 'yes' : 'no'),
     ($during >= 5 ? 'pings answered during the handshake: at least 5'
                   : "pings answered during the handshake: $during"),
     "failed pings: $failed") }, mocks => ['siteflow'])
--- response_body
answer {"job":"ID"}
job failed, last_error: timed out
TLS hello: yes
pings answered during the handshake: at least 5
failed pings: 0
--- no_error_log
[alert]
[crit]



=== TEST 7: the certificate of an upstream outside this nginx is refused, then a TLS client of this nginx: no stale OpenSSL error meets it
SiteFlow is "openssl s_server" with a certificate of the untrusted CA, so
between libcurl's refusal and the client's handshake no TLS of this nginx
runs.  libcurl leaves "shutdown while in init" in the worker's OpenSSL
error queue; if the module did not clear it, nginx would log "[alert]
ignoring stale global SSL error" for the client's handshake.  The retry
is 30 s away, so the client's handshake is the first TLS after the
refusal (the next attempt would fetch from PrintNow through its front).
--- http_config eval: ::tls_http(backoff => '30s 30s')
--- config eval: ::tls_conf(sf_port => '$TEST_NGINX_OSSL_PORT')
--- init
::ossl_server('untrusted');
--- request
POST /hook?token=hook-9f3b2c7d-not-real
{"event":"order_created","order":{"id":6027,"status":"New Order"}}
--- more_headers
Content-Type: application/json
--- error_code: 202
--- response_body_filters eval
::report(do => sub {
    my ($e, $j) = ::wait_job('refused', '6027', sub {
        $_[0]{state} eq 'retrying' && $_[0]{attempts} >= 1 });
    my @l = ($e || "job $j->{state}", ::edge_ping());
    ::ossl_stop();
    @l }, idle => 0, mocks => [])
--- response_body
answer {"job":"ID"}
job retrying
edge: 200 pong
--- error_log eval
qr{siteflow: TLS with localhost:\d+ failed: SSL certificate problem: unable to get local issuer certificate}
--- no_error_log
[alert]
[crit]
