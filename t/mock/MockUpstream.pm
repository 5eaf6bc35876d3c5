package MockUpstream;
# Perl test helper for t/mock/mock-upstream.pl (core Perl only).
#
#   use lib 't/mock';
#   use MockUpstream;
#   my $m = MockUpstream->start(port => 1984 + 100, log => "/tmp/x.log",
#                               rules => [{ path => '/api/order', status => 201,
#                                           json => { _id => '{{hex24}}' } }]);
#   $m->rules([...]);                 # replace all rules
#   $m->append_rule({...});           # add one rule
#   my $reqs = $m->requests(path => '/api/');   # arrayref of log entries
#   $m->wait_requests(count => 2, path => '/api/order', timeout => 10);
#   $m->reset;                        # clear rules and log
#   $m->stop;                         # SIGTERM, wait for the exit
#
# start() also accepts a plain function call (MockUpstream::start(...)) and
# the options pidfile (default $TMPDIR/mock-upstream-PORT.pid), rules_file
# (passed as --rules) and timeout (seconds to wait for /_mock/health, 10).
# Without "port" a free port is picked (MockUpstream::free_port()).
# The server is stopped when the object is destroyed in the process that
# started it (not in forked children).
use v5.36;
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use File::Basename qw(dirname);
use File::Spec;
use Time::HiRes qw(time sleep);

my $SCRIPT = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)),
    'mock-upstream.pl');
my $J = JSON::PP->new->utf8->canonical;

# a port nothing listens on now, and never handed out before by this
# process: the kernel may give a port it just gave again, and two callers
# that bind later (a mock, and an nginx of the test) would then collide
my %Given;

sub free_port () {
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or die "MockUpstream: no free port: $@";
        my $p = $s->sockport;
        close $s;
        return $p unless $Given{$p}++;
    }
    die "MockUpstream: no free port not handed out before\n";
}

sub start {
    shift if @_ % 2;    # class name, when called as a method
    my %a = @_;
    my $port = $a{port} // free_port();
    my $self = bless { port => $port, log => $a{log}, owner => $$,
        pidfile => $a{pidfile}
            // File::Spec->catfile(File::Spec->tmpdir, "mock-upstream-$port.pid"),
    }, __PACKAGE__;
    my @cmd = ($^X, $SCRIPT, '--port', $port, '--daemon',
        '--pidfile', $self->{pidfile});
    push @cmd, '--log', $a{log} if defined $a{log};
    push @cmd, '--rules', $a{rules_file} if defined $a{rules_file};
    system(@cmd) == 0 or die "MockUpstream: @cmd failed (status $?)\n";
    open my $fh, '<', $self->{pidfile}
        or die "MockUpstream: no pidfile $self->{pidfile}: $!\n";
    ($self->{pid}) = (<$fh> // '') =~ /^(\d+)/
        or die "MockUpstream: bad pidfile $self->{pidfile}\n";
    close $fh;
    my $deadline = time + ($a{timeout} // 10);
    while (1) {
        my ($st) = eval { $self->http(GET => '/_mock/health') };
        last if ($st // 0) == 200;
        die "MockUpstream: no health answer on port $port\n" if time > $deadline;
        sleep 0.02;
    }
    $self->rules($a{rules}) if $a{rules};
    return $self;
}

sub port ($self) { $self->{port} }
sub pid ($self) { $self->{pid} }
sub url ($self, $path = '') { "http://127.0.0.1:$self->{port}$path" }

# minimal HTTP/1.1 client: returns (status, body)
sub http ($self, $method, $path, $body = undef, $timeout = 10) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Proto => 'tcp', Timeout => $timeout)
        or die "MockUpstream: connect to port $self->{port}: $@\n";
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$self->{port}\r\n"
        . "Connection: close\r\n";
    $req .= "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n" if defined $body;
    $s->syswrite($req . "\r\n" . ($body // ''));
    my ($resp, $sel, $deadline) = ('', IO::Select->new($s), time + $timeout);
    while (1) {
        $sel->can_read($deadline - time) or die "MockUpstream: $method $path: timeout\n";
        my $n = sysread($s, $resp, 65536, length $resp);
        die "MockUpstream: $method $path: $!\n" unless defined $n;
        last unless $n;
    }
    close $s;
    my ($st, $b) = $resp =~ m{^HTTP/1\.[01] (\d+)[^\n]*\n.*?\r\n\r\n(.*)\z}s
        or die "MockUpstream: $method $path: bad response\n";
    return ($st, $b);
}

sub _call ($self, $method, $path, $data = undef) {
    my ($st, $b) = $self->http($method, $path,
        defined $data ? $J->encode($data) : undef);
    die "MockUpstream: $method $path: $st $b\n" unless $st == 200;
    return $J->decode($b);
}

sub rules ($self, $rules) { $self->_call(POST => '/_mock/rules', $rules) }
sub append_rule ($self, $rule) { $self->_call(POST => '/_mock/rules/append', $rule) }
sub reset ($self) { $self->_call(POST => '/_mock/reset') }

sub _esc ($s) { $s =~ s{([^A-Za-z0-9\-._~/])}{sprintf '%%%02X', ord $1}ger }

# arrayref of log entries (hashes); path => prefix, since => seq
sub requests ($self, %a) {
    my @q;
    push @q, 'path=' . _esc($a{path}) if defined $a{path};
    push @q, 'since=' . ($a{since} + 0) if defined $a{since};
    return $self->_call(GET => '/_mock/requests' . (@q ? '?' . join('&', @q) : ''));
}

# polls until at least count requests (matching path) are logged; returns
# them all (arrayref); dies on timeout
sub wait_requests ($self, %a) {
    my $count = $a{count} // 1;
    my $deadline = time + ($a{timeout} // 10);
    while (1) {
        my $r = $self->requests(map { defined $a{$_} ? ($_ => $a{$_}) : () }
            qw(path since));
        return $r if @$r >= $count;
        die sprintf("MockUpstream: %d of %d request(s)%s after %ss\n",
            scalar @$r, $count, defined $a{path} ? " to $a{path}*" : '',
            $a{timeout} // 10) if time > $deadline;
        sleep 0.02;
    }
}

sub _alive ($pid) {
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $st = <$fh> // '';
        return 0 if $st =~ /\)\s+Z/;
    }
    return 1;
}

sub stop ($self) {
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    my $deadline = time + 5;
    sleep 0.01 while _alive($pid) && time < $deadline;
    if (_alive($pid)) {
        kill 'KILL', $pid;
        unlink $self->{pidfile};
    }
    return 1;
}

sub DESTROY ($self) {
    $self->stop if $self->{pid} && $self->{owner} == $$;
}

1;
