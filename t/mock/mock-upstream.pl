#!/usr/bin/env perl
# mock-upstream.pl -- programmable mock HTTP/1.1 upstream for the fault
# injection and end-to-end tests of ngx_http_siteflow_module.
#
# Single process, non-blocking, IO::Select event loop; core Perl only.
# Listens on 127.0.0.1 only.
#
#   mock-upstream.pl --port N [--log FILE] [--pidfile FILE] [--rules FILE]
#                    [--daemon] [--max-body BYTES]
#
#   --port 0     pick a free port and print it on stdout (before forking)
#   --log FILE   truncated at start; every request (except /_mock/*) is
#                appended as one JSON line and flushed at once:
#                {"seq":N,"time":<epoch ms>,"method":..,"path":..,"query":..,
#                 "headers":{"<lowercased name>":"value",..},"body":"..",
#                 "conn":<connection number>,"rule":<index of the rule|null>}
#                A body that is not valid UTF-8 also gets "body_base64".
#   --rules FILE JSON array of rules to start with.
#   --daemon     fork after the socket is bound; the parent writes --pidfile
#                and exits, so the server is usable as soon as it returns.
#   SIGTERM/SIGINT exit cleanly (the pidfile is removed).
#
# Control API (same port; not logged, not matched against rules):
#   POST /_mock/rules          body: JSON array, replaces all rules
#   POST /_mock/rules/append   body: one rule (or an array), appended
#   GET  /_mock/rules          current rules ("times" = remaining, "_hits")
#   GET  /_mock/requests       the log as a JSON array; ?path=PREFIX filters
#                              by path prefix, ?since=SEQ keeps seq > SEQ
#   POST /_mock/reset          clears rules, log and known keys (seq
#                              restarts at 1)
#   GET  /_mock/health         200 {"ok":true,"pid":..,"requests":..}
#   GET  /_mock/known          the keys "remember" rules stored, each with
#                              how many times: {"PN-1":1,..}
#
# Rule format (the first matching unspent rule applies):
#   {
#     "method":      "POST",            optional, any method if absent
#     "path":        "/api/order",      exact path (query string excluded), or
#     "path_prefix": "/api/order/bysourceid/",   neither = any path
#     "times":       N,                 apply to the next N matches, then the
#                                       rule is spent; absent = forever
#     "status":      201,               default 200
#     "headers":     {"X-A": "b"},      extra response headers; may override
#                                       Content-Length (a lying length),
#                                       Connection, Transfer-Encoding
#     "body":        "text"  or  "json": {...}    response body
#     "body_base64": bytes sent as they are (not UTF-8 encoded, not
#                    expanded): an upstream answering in another charset
#     "chunked":     true,              send the body with chunked encoding
#     "delay_ms":    D,                 answer after D ms (other connections
#                                       are served meanwhile)
#     "action":      "respond"      (default) normal answer
#                    "close"        close the connection without answering
#                    "reset"        SO_LINGER 0 + close: the peer gets a RST
#                    "partial"      headers (full Content-Length) and half of
#                                   the body (empty: 1 KB of "x"), then close
#                    "oversize"     body of "size" bytes (default 20 MB),
#                                   streamed, never built in memory
#                    "slow_body"    headers, then the body one byte every
#                                   delay_ms (default 100)
#                    "no_response"  keep the connection open, never answer
#     "size":        bytes for "oversize",
#     "comment":     free text; also written in the log entry of each
#                    request the rule answers ("comment")
#     "remember":    "{{json.orderData.sourceOrderId}}": when the rule
#                    applies, the expanded text is stored as a known key
#                    (counted; /_mock/known lists them).  A stateful
#                    SiteFlow: an order exists once a create was taken in
#     "if_known":    "{{path_last}}": the rule matches only if the expanded
#                    text is a known key (a look-up that answers 200 for
#                    the orders created, the next rule 404 for the rest)
#   }
# No rule matches: POST/PUT/PATCH -> 200 {"success":true}; others -> 404.
#
# Placeholders, expanded in the body and in header values:
#   {{seq}}        request sequence number       {{path}}   request path
#   {{path_last}}  the last segment of the request path
#   {{hex24}}      sprintf("%024x", seq): a SiteFlow/Mongo-like 24-hex id
#   {{json.a.b.c}} dotted path into the JSON request body (array elements by
#                  index); in the body it is inserted JSON-escaped without
#                  quotes, objects/arrays as their JSON text; missing -> ""
#   {{body.KEY}}   alias of {{json.KEY}}
#   {{header.NAME}} request header value
#   Unknown placeholders are left as they are.
#
# Request side: Content-Length and chunked bodies (up to 10 MB, else 413),
# Expect: 100-continue, keep-alive (HTTP/1.1 default, Connection: close),
# pipelining, HEAD (headers only, for every action).
use v5.36;
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_LINGER);
use POSIX ();
use Time::HiRes qw(time);
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use Getopt::Long;

my %opt = (port => undef, 'max-body' => 10 * 1024 * 1024);
GetOptions(\%opt, 'port=i', 'log=s', 'pidfile=s', 'rules=s', 'daemon',
    'max-body=i') && defined $opt{port}
    or die "usage: $0 --port N [--log FILE] [--pidfile FILE] [--rules FILE] [--daemon]\n";

my $JB = JSON::PP->new->utf8->canonical;         # bytes <-> data
my $JC = JSON::PP->new->canonical->allow_nonref; # chars, for bodies
my %REASON = (100 => 'Continue', 200 => 'OK', 201 => 'Created',
    202 => 'Accepted', 204 => 'No Content', 301 => 'Moved Permanently',
    302 => 'Found', 304 => 'Not Modified', 400 => 'Bad Request',
    401 => 'Unauthorized', 403 => 'Forbidden', 404 => 'Not Found',
    405 => 'Method Not Allowed', 408 => 'Request Timeout', 409 => 'Conflict',
    410 => 'Gone', 413 => 'Payload Too Large', 415 => 'Unsupported Media Type',
    422 => 'Unprocessable Entity', 429 => 'Too Many Requests',
    431 => 'Request Header Fields Too Large', 500 => 'Internal Server Error',
    502 => 'Bad Gateway', 503 => 'Service Unavailable',
    504 => 'Gateway Timeout');
my %ACTIONS = map { $_ => 1 } qw(respond close reset partial oversize
    slow_body no_response);
my %RULE_KEYS = map { $_ => 1 } qw(method path path_prefix times status
    headers body body_base64 json chunked delay_ms action size comment remember
    if_known);

my (@rules, @log, %conns, @timers, @pending, %known);
my ($seq, $nconn, $quit, $logfh) = (0, 0, 0, undef);

# ---------------------------------------------------------------- startup
if (defined $opt{rules}) {
    open my $fh, '<:raw', $opt{rules} or die "$opt{rules}: $!\n";
    my $err = set_rules(do { local $/; <$fh> }, 0);
    die "$opt{rules}: $err\n" if $err;
}
if (defined $opt{log}) {
    open $logfh, '>>:raw', $opt{log} or die "$opt{log}: $!\n";
    truncate $logfh, 0;
}
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $opt{port}, Proto => 'tcp', Listen => 1024,
    ReuseAddr => 1, Blocking => 0)
    or die "mock-upstream: cannot listen on 127.0.0.1:$opt{port}: $@\n";
if ($opt{port} == 0) {
    $| = 1;
    print $listen->sockport, "\n";
}
if ($opt{daemon}) {
    my $pid = fork // die "fork: $!\n";
    if ($pid) {
        write_pidfile($pid);
        POSIX::_exit(0);
    }
    POSIX::setsid();
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
} else {
    write_pidfile($$);
}
$SIG{PIPE} = 'IGNORE';
$SIG{TERM} = $SIG{INT} = sub { $quit = 1 };

# -------------------------------------------------------------- main loop
my $rsel = IO::Select->new($listen);
my $wsel = IO::Select->new;
until ($quit) {
    my $timeout = 1;
    if (@timers) {
        $timeout = $timers[0][0] - time;
        $timeout = 0 if $timeout < 0;
        $timeout = 1 if $timeout > 1;
    }
    my ($r, $w) = IO::Select::select($rsel, $wsel, undef, $timeout);
    for my $fh (@{ $w // [] }) {
        my $c = $conns{$fh} or next;
        flush($c);
    }
    for my $fh (@{ $r // [] }) {
        if ($fh == $listen) { accept_all(); next }
        my $c = $conns{$fh} or next;
        on_read($c);
    }
    my $now = time;
    while (@timers && $timers[0][0] <= $now) {
        (shift @timers)->[1]->();
    }
    while (my $c = shift @pending) {
        process($c) unless $c->{closed};
    }
}
close $listen;
if (defined $opt{pidfile} && open my $fh, '<', $opt{pidfile}) {
    my $p = <$fh> // '';
    unlink $opt{pidfile} if $p =~ /^(\d+)/ && $1 == $$;
}
exit 0;

sub write_pidfile ($pid) {
    return unless defined $opt{pidfile};
    open my $fh, '>', $opt{pidfile} or die "$opt{pidfile}: $!\n";
    print $fh "$pid\n";
    close $fh;
}

sub add_timer ($sec, $cb) {
    push @timers, [time + $sec, $cb];
    @timers = sort { $a->[0] <=> $b->[0] } @timers;
}

# ------------------------------------------------------------ connections
sub accept_all () {
    while (my $fh = $listen->accept) {
        $fh->blocking(0);
        setsockopt($fh, IPPROTO_TCP, TCP_NODELAY, 1);
        $conns{$fh} = { fh => $fh, id => ++$nconn, in => '', out => '' };
        $rsel->add($fh);
    }
}

sub close_conn ($c, $rst = 0) {
    return if $c->{closed};
    $c->{closed} = 1;
    $rsel->remove($c->{fh});
    $wsel->remove($c->{fh});
    delete $conns{ $c->{fh} };
    setsockopt($c->{fh}, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) if $rst;
    close $c->{fh};
}

# graceful close: FIN now, drain what the peer still sends, close on EOF
sub close_after ($c) {
    return if $c->{closed};
    shutdown($c->{fh}, 1);
    $c->{busy} = $c->{hold} = 1;
    $c->{in} = '';
    add_timer(2, sub { close_conn($c) });
}

sub on_read ($c) {
    my $n = sysread($c->{fh}, $c->{in}, 262144, length $c->{in});
    if (!defined $n) {
        return if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
        return close_conn($c);
    }
    return close_conn($c) if $n == 0;
    if ($c->{hold}) { $c->{in} = ''; return }
    process($c);
}

# write what is queued (and what the generator produces) until EAGAIN;
# when all is written, run the "then" continuation of the response
sub flush ($c) {
    return if $c->{closed};
    while (1) {
        if ($c->{out} eq '' && $c->{gen}) {
            my $d = $c->{gen}->();
            if (defined $d) { $c->{out} = $d } else { delete $c->{gen} }
        }
        last if $c->{out} eq '';
        my $n = syswrite($c->{fh}, $c->{out});
        if (!defined $n) {
            if ($!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR}) {
                $wsel->add($c->{fh});
                return;
            }
            return close_conn($c);
        }
        substr($c->{out}, 0, $n, '');
    }
    $wsel->remove($c->{fh});
    if (my $then = delete $c->{then}) { $then->() }
}

sub send_out ($c, $data, $then = undef) {
    $c->{out} .= $data;
    $c->{then} = $then if $then;
    flush($c);
}

# ------------------------------------------------------- request parsing
sub process ($c) {
    while (!$c->{busy} && !$c->{closed}) {
        my $r = parse($c) or return;
        dispatch($c, $r);
    }
}

sub bad ($c, $status) {
    $c->{busy} = 1;
    my $r = { method => 'GET', keep => 0 };
    send_out($c, head($r, $status, {}, 0), sub { close_after($c) });
    return;
}

sub parse ($c) {
    my $r = $c->{req};
    if (!$r) {
        $c->{in} =~ s/^(?:\r\n)+//;
        my $i = index($c->{in}, "\r\n\r\n");
        if ($i < 0) {
            return length $c->{in} > 65536 ? bad($c, 431) : undef;
        }
        my ($line, @h) = split /\r\n/, substr($c->{in}, 0, $i + 4, '');
        my ($m, $t, $v) = $line =~ m{^([A-Za-z]+) (\S+) HTTP/(1\.[01])$}
            or return bad($c, 400);
        my %h;
        for (@h) {
            my ($k, $val) = /^([^:\s]+):[ \t]*(.*?)[ \t]*$/ or return bad($c, 400);
            $k = lc $k;
            $h{$k} = exists $h{$k} ? "$h{$k}, $val" : $val;
        }
        $t = $1 // '/' if $t =~ m{^https?://[^/]+(/.*)?$};
        my ($path, $query) = split /\?/, $t, 2;
        my $ch = lc($h{connection} // '');
        $r = $c->{req} = { method => uc $m, path => $path, query => $query // '',
            headers => \%h, body => '',
            keep => $v eq '1.1' ? $ch !~ /\bclose\b/ : !!($ch =~ /\bkeep-alive\b/) };
        if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            $r->{chunk} = 'size';
        } elsif (defined $h{'content-length'}) {
            $h{'content-length'} =~ /^\d+$/ or return bad($c, 400);
            $r->{need} = $h{'content-length'};
            return bad($c, 413) if $r->{need} > $opt{'max-body'};
        }
        if (($h{expect} // '') =~ /100-continue/i
            && ($r->{chunk} || ($r->{need} // 0) > length $c->{in})) {
            send_out($c, "HTTP/1.1 100 Continue\r\n\r\n");
        }
    }
    if (defined $r->{need}) {
        return if length $c->{in} < $r->{need};
        $r->{body} = substr($c->{in}, 0, $r->{need}, '');
    }
    while ($r->{chunk}) {
        if ($r->{chunk} eq 'size' || $r->{chunk} eq 'trailer') {
            my $i = index($c->{in}, "\r\n");
            if ($i < 0) { return length $c->{in} > 8192 ? bad($c, 400) : undef }
            my $line = substr($c->{in}, 0, $i + 2, '');
            if ($r->{chunk} eq 'trailer') {
                delete $r->{chunk} if $i == 0;
                next;
            }
            $line =~ /^([0-9A-Fa-f]{1,8})/ or return bad($c, 400);
            $r->{left} = hex $1;
            return bad($c, 413)
                if length($r->{body}) + $r->{left} > $opt{'max-body'};
            $r->{chunk} = $r->{left} ? 'data' : 'trailer';
        } elsif ($r->{chunk} eq 'data') {
            my $n = length $c->{in};
            $n = $r->{left} if $n > $r->{left};
            $r->{body} .= substr($c->{in}, 0, $n, '');
            return if $r->{left} -= $n;
            $r->{chunk} = 'crlf';
        } else {    # crlf after the chunk data
            return if length $c->{in} < 2;
            substr($c->{in}, 0, 2, '') eq "\r\n" or return bad($c, 400);
            $r->{chunk} = 'size';
        }
    }
    return delete $c->{req};
}

# ---------------------------------------------------------------- dispatch
sub dispatch ($c, $r) {
    return control($c, $r) if $r->{path} =~ m{^/_mock/};
    $r->{seq} = ++$seq;
    my ($u, $idx) = match_rule($r);
    log_request($c, $r, $idx);
    if (!$u) {
        return reply($c, $r, 200, { success => JSON::PP::true })
            if $r->{method} =~ /^(?:POST|PUT|PATCH)$/;
        return reply($c, $r, 404, { success => JSON::PP::false,
            error => 'no mock rule matches' });
    }
    $c->{busy} = 1;
    my $action = $u->{action} // 'respond';
    if ($action eq 'no_response') {
        $c->{hold} = 1;
        $c->{in} = '';
        return;
    }
    my $go = sub { act($c, $r, $u, $action) unless $c->{closed} };
    if ($u->{delay_ms} && $action ne 'slow_body') {
        add_timer($u->{delay_ms} / 1000, $go);
    } else {
        $go->();
    }
}

sub match_rule ($r) {
    for my $i (0 .. $#rules) {
        my $u = $rules[$i];
        next if defined $u->{times} && $u->{times} <= 0;
        next if defined $u->{method} && uc $u->{method} ne $r->{method};
        next if defined $u->{path} && $u->{path} ne $r->{path};
        next if defined $u->{path_prefix}
            && index($r->{path}, $u->{path_prefix}) != 0;
        next if defined $u->{if_known}
            && !$known{ expand($u->{if_known}, $r, 0) };
        $known{ expand($u->{remember}, $r, 0) }++ if defined $u->{remember};
        $u->{times}-- if defined $u->{times};
        $u->{_hits}++;
        return ($u, $i);
    }
    return;
}

sub act ($c, $r, $u, $action) {
    return close_conn($c) if $action eq 'close';
    return close_conn($c, 1) if $action eq 'reset';
    my $status = $u->{status} // 200;
    my %h = %{ $u->{headers} // {} };
    $_ = expand($_, $r, 0) for values %h;
    $r->{keep} = 0 if grep { lc $_ eq 'connection' && $h{$_} =~ /close/i } keys %h;
    my $body;
    if (defined $u->{body_base64}) {
        $body = decode_base64($u->{body_base64});   # bytes as they are
    } else {
        $body = defined $u->{json} ? $JC->encode($u->{json}) : $u->{body} // '';
        $body = expand($body, $r, 1);
        utf8::encode($body);
    }
    $body = 'x' x 1024 if $action eq 'partial' && length $body < 2;
    if (($body ne '' || $action eq 'oversize')
        && !grep { lc $_ eq 'content-type' } keys %h) {
        $h{'Content-Type'} = $action eq 'oversize' ? 'application/octet-stream'
            : $body =~ /^\s*[\[{]/ ? 'application/json' : 'text/plain';
    }
    my $head_only = $r->{method} eq 'HEAD';
    my $done = $r->{keep} ? sub { $c->{busy} = 0; push @pending, $c }
                          : sub { close_after($c) };

    if ($action eq 'oversize') {
        my $left = $u->{size} // 20 * 1024 * 1024;
        my $blk = 'x' x 65536;
        send_out($c, head($r, $status, \%h, $u->{chunked} ? undef : $left));
        return $done->() if $head_only;
        my $last = 0;
        $c->{gen} = sub {
            if ($left <= 0) {
                return undef if $last++ || !$u->{chunked};
                return "0\r\n\r\n";
            }
            my $n = $left < 65536 ? $left : 65536;
            $left -= $n;
            my $d = $n == 65536 ? $blk : substr($blk, 0, $n);
            return $u->{chunked} ? sprintf("%x\r\n", $n) . $d . "\r\n" : $d;
        };
        return send_out($c, '', $done);
    }
    if ($action eq 'partial') {
        return send_out($c, head($r, $status, \%h, length $body)
            . ($head_only ? '' : substr($body, 0, length($body) >> 1)),
            sub { close_after($c) });
    }
    if ($action eq 'slow_body') {
        my @bytes = $head_only ? () : split //, $body;
        send_out($c, head($r, $status, \%h, length $body));
        return $done->() unless @bytes;
        my $step = ($u->{delay_ms} // 100) / 1000;
        add_timer($step, sub {
            return if $c->{closed};
            send_out($c, shift @bytes, @bytes ? undef : $done);
            add_timer($step, __SUB__) if @bytes;
        });
        return;
    }
    # respond
    if ($u->{chunked}) {
        my $out = $head_only ? '' : ($body ne '' ? sprintf("%x\r\n%s\r\n",
            length $body, $body) : '') . "0\r\n\r\n";
        return send_out($c, head($r, $status, \%h, undef) . $out, $done);
    }
    send_out($c, head($r, $status, \%h, length $body)
        . ($head_only ? '' : $body), $done);
}

# response head; $len undef = chunked
sub head ($r, $status, $h, $len) {
    my $s = "HTTP/1.1 $status " . ($REASON{$status} // 'Status') . "\r\n"
        . "Server: mock-upstream\r\n";
    my %seen = map { lc($_) => 1 } keys %$h;
    $s .= "$_: $h->{$_}\r\n" for sort keys %$h;
    if (!defined $len) {
        $s .= "Transfer-Encoding: chunked\r\n" unless $seen{'transfer-encoding'};
    } elsif (!$seen{'content-length'}) {
        $s .= "Content-Length: $len\r\n";
    }
    $s .= 'Connection: ' . ($r->{keep} ? 'keep-alive' : 'close') . "\r\n"
        unless $seen{connection};
    return "$s\r\n";
}

# JSON answer (control API, default answers)
sub reply ($c, $r, $status, $data) {
    $c->{busy} = 1;
    my $body = ref $data ? $JB->encode($data) : $data;
    my $done = $r->{keep} ? sub { $c->{busy} = 0; push @pending, $c }
                          : sub { close_after($c) };
    send_out($c, head($r, $status, { 'Content-Type' => 'application/json' },
        length $body) . ($r->{method} eq 'HEAD' ? '' : $body), $done);
}

# ------------------------------------------------------------ placeholders
sub expand ($s, $r, $esc) {
    return $s unless index($s, '{{') >= 0;
    $s =~ s/\{\{\s*([\w.\-]+)\s*\}\}/placeholder($1, $r, $esc)/ge;
    return $s;
}

sub placeholder ($name, $r, $esc) {
    my $v;
    if ($name eq 'seq') { return $r->{seq} }
    elsif ($name eq 'hex24') { return sprintf '%024x', $r->{seq} }
    elsif ($name eq 'path') { $v = text($r->{path}) }
    elsif ($name eq 'path_last') { $v = text($r->{path} =~ s{^.*/}{}r) }
    elsif ($name =~ /^header\.(.+)$/) { $v = text($r->{headers}{ lc $1 } // '') }
    elsif ($name =~ /^(?:json|body)\.(.+)$/) {
        $r->{json} //= eval { $JB->decode($r->{body}) } // {};
        $v = $r->{json};
        for my $k (split /\./, $1) {
            if (ref $v eq 'HASH') { $v = $v->{$k} }
            elsif (ref $v eq 'ARRAY' && $k =~ /^\d+$/) { $v = $v->[$k] }
            else { $v = undef }
            last unless defined $v;
        }
        $v = ref $v && !JSON::PP::is_bool($v) ? $JC->encode($v) : $v // '';
        $v = $v ? 'true' : 'false' if JSON::PP::is_bool($v);
    } else { return "{{$name}}" }
    return $v unless $esc;
    $v = $JC->encode("$v");
    return substr($v, 1, -1);
}

# bytes -> characters when valid UTF-8 (for JSON output)
sub text ($s) {
    my $t = $s;
    return utf8::decode($t) ? $t : $s;
}

# ------------------------------------------------------------------- log
sub log_request ($c, $r, $idx) {
    my %h = map { $_ => text($r->{headers}{$_}) } keys %{ $r->{headers} };
    my $body = $r->{body};
    my $e = { seq => $r->{seq}, time => int(time * 1000),
        method => $r->{method}, path => text($r->{path}),
        query => text($r->{query}), headers => \%h, conn => $c->{id},
        rule => $idx };
    $e->{comment} = $rules[$idx]{comment}
        if defined $idx && defined $rules[$idx]{comment};
    if (utf8::decode($body)) {
        $e->{body} = $body;
    } else {
        $e->{body} = $r->{body};
        $e->{body_base64} = encode_base64($r->{body}, '');
    }
    my $line = $JB->encode($e);
    syswrite($logfh, "$line\n") if $logfh;    # one write(2) per line
    push @log, [$r->{path}, $r->{seq}, $line];
}

# ------------------------------------------------------------ control API
sub control ($c, $r) {
    my ($m, $p) = ($r->{method}, $r->{path});
    my %q;
    for (split /&/, $r->{query}) {
        my ($k, $v) = map { (my $x = $_ // '') =~ tr/+/ /;
            $x =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $x } split /=/, $_, 2;
        $q{$k} = $v;
    }
    if ($p eq '/_mock/health') {
        return reply($c, $r, 200, { ok => JSON::PP::true, pid => $$,
            requests => $seq, connections => scalar keys %conns });
    }
    if ($p eq '/_mock/known' && $m eq 'GET') {
        return reply($c, $r, 200, \%known);
    }
    if ($p eq '/_mock/requests' && $m eq 'GET') {
        my ($pre, $since) = ($q{path}, $q{since} // 0);
        my @l = grep { $_->[1] > $since
            && (!defined $pre || index($_->[0], $pre) == 0) } @log;
        return reply($c, $r, 200, '[' . join(',', map { $_->[2] } @l) . ']');
    }
    if ($p eq '/_mock/rules' && $m eq 'GET') {
        return reply($c, $r, 200, \@rules);
    }
    if ($p =~ m{^/_mock/rules(/append)?$} && $m eq 'POST') {
        my $err = set_rules($r->{body}, !!$1);
        return reply($c, $r, 400, { ok => JSON::PP::false, error => $err })
            if $err;
        return reply($c, $r, 200, { ok => JSON::PP::true,
            rules => scalar @rules });
    }
    if ($p eq '/_mock/reset' && $m eq 'POST') {
        @rules = ();
        @log = ();
        %known = ();
        $seq = 0;
        truncate $logfh, 0 if $logfh;
        return reply($c, $r, 200, { ok => JSON::PP::true });
    }
    return reply($c, $r, 404, { ok => JSON::PP::false,
        error => "unknown control request $m $p" });
}

# returns an error message, or '' when the rules were installed
sub set_rules ($json, $append) {
    my $d = eval { $JB->decode($json) };
    return "invalid JSON: " . ($@ =~ s/ at \S+ line \d+.*//sr) unless defined $d;
    $d = [$d] if $append && ref $d eq 'HASH';
    return 'expected a JSON array of rules' unless ref $d eq 'ARRAY';
    for my $i (0 .. $#$d) {
        my $u = $d->[$i];
        return "rule $i: not an object" unless ref $u eq 'HASH';
        for (keys %$u) {
            return "rule $i: unknown key '$_'" unless $RULE_KEYS{$_} || /^_/;
        }
        my $a = $u->{action} // 'respond';
        return "rule $i: unknown action '$a'" unless $ACTIONS{$a};
        return "rule $i: both body and json" if exists $u->{body} && exists $u->{json};
        return "rule $i: headers must be an object"
            if exists $u->{headers} && ref $u->{headers} ne 'HASH';
        for my $k (qw(times status delay_ms size)) {
            return "rule $i: $k must be a non-negative integer"
                if defined $u->{$k} && $u->{$k} !~ /^\d+$/;
        }
    }
    @rules = () unless $append;
    push @rules, @$d;
    return '';
}
