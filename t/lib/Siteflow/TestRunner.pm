package Siteflow::TestRunner;

# Siteflow::TestRunner -- our own, from-scratch runner for data-driven nginx
# tests written in the format of OpenResty's Test::Nginx::Socket.
#
# It is used ONLY when Test::Nginx::Socket is not installed (or when
# SITEFLOW_TEST_RUNNER=builtin); t/lib/Siteflow/Test.pm makes that choice.
# It is built on Test::Base (blocks, sections, filters, ONLY/SKIP/LAST) and
# mirrors Test::Nginx::Socket's observable behaviour: the nginx.conf layout,
# the order, number and names of the assertions (so that
# "plan tests => repeat_each() * (N * blocks())" counts are the same), and
# the environment variables.  It was written without copying Test::Nginx code.
#
# Exported: repeat_each plan blocks run_tests no_shuffle no_long_string
#   master_on master_off master_process_enabled workers worker_connections
#   log_level no_root_location use_hup add_block_preprocessor
#   add_cleanup_handler add_response_body_check env_to_nginx server_name
#   server_addr server_port server_port_for_client server_root html_dir
#   timeout bail_out config_preamble check_accum_error_log no_nginx_manager
#   is_str  (plus everything Test::Base exports: plan, is, like, diag, ...)
#
# Sections: main_config post_main_config http_config config server_name
#   request (string, eval ARRAY of requests, ARRAY of packets with
#   {value, delay_before}) request_eval raw_request raw_request_middle_delay
#   pipelined_requests more_headers (string or eval ARRAY) error_code
#   error_code_like response_body response_body_eval response_body_like
#   response_body_unlike response_body_filters response_headers
#   response_headers_like raw_response_headers_like
#   raw_response_headers_unlike error_log no_error_log grep_error_log
#   grep_error_log_out shutdown_error_log no_shutdown_error_log must_die
#   timeout abort wait shutdown user_files log_level error_log_file init
#   ignore_response http09 charset curl skip_eval skip_nginx reload_fails
#   tcp_listen tcp_reply tcp_reply_delay tcp_query tcp_query_len
#   tcp_no_close tcp_shutdown  (no_check_leak is accepted and ignored)
#
# Environment: TEST_NGINX_BINARY TEST_NGINX_LOAD_MODULES TEST_NGINX_PORT
#   TEST_NGINX_SERVER_PORT TEST_NGINX_CLIENT_PORT TEST_NGINX_SERVROOT
#   TEST_NGINX_USE_HUP TEST_NGINX_USE_VALGRIND TEST_NGINX_VALGRIND_SUPPRESSIONS
#   TEST_NGINX_NO_CLEAN TEST_NGINX_VERBOSE TEST_NGINX_SLEEP TEST_NGINX_TIMEOUT
#   TEST_NGINX_NO_SHUFFLE TEST_NGINX_LOG_LEVEL TEST_NGINX_MASTER_PROCESS
#   TEST_NGINX_ERROR_LOG TEST_NGINX_EVENT_TYPE TEST_NGINX_CHECK_ACCUM_ERR_LOG
#   TEST_NGINX_NO_NGINX_MANAGER, and our own SITEFLOW_TEST_STRICT=1 (turns
#   [alert]/[crit]/[emerg] lines and valgrind reports into test failures).
#
# $TEST_NGINX_FOO in config sections and user_files is replaced by
# $ENV{TEST_NGINX_FOO} (an unset one bails out); $TEST_NGINX_RAND_PORT_N by a
# free port.  TEST_NGINX_SERVER_PORT and TEST_NGINX_SERVER_ROOT are set.
#
# Life cycle, as in Test::Nginx: nginx (daemon) is started for each block
# that has a config section and stopped (QUIT, then TERM/KILL) when the next
# block starts or the script ends; a block without a config section reuses
# the running nginx.  With TEST_NGINX_USE_HUP the master process is forced
# on and nginx is reloaded (USR1 + HUP) instead.  With
# TEST_NGINX_USE_VALGRIND nginx runs in the foreground under valgrind
# (numeric value: memcheck, full leak check; otherwise the value is the
# valgrind options) and is stopped at the end of each block; what valgrind
# printed is reported as a warning (a failure if SITEFLOW_TEST_STRICT=1).
#
# nginx listens on PORT of every address ("listen PORT;"), as under
# Test::Nginx::Socket.  A server of http_config on the same port must use
# the same form ("listen $TEST_NGINX_SERVER_PORT;"): nginx offers a
# connection accepted on 127.0.0.1:PORT only the servers that listen on
# 127.0.0.1:PORT, never those of *:PORT, so mixed forms route by runner.
#
# Deliberate differences from Test::Nginx::Socket (all harmless for tests):
#   * *_temp_path directives point into the server root (Debian's nginx has
#     them compiled to /var/lib/nginx/...), unless http_config sets them;
#   * nginx's stderr is appended to logs/error.log (Debian's nginx has its
#     built-in error log set to "stderr", so that is where start-up errors,
#     e.g. for must_die blocks, and valgrind reports end up);
#   * $TEST_NGINX_* in request/more_headers/raw_request is expanded too
#     (only for variables that are set);
#   * a start-up failure other than "address in use" bails out at once
#     instead of retrying for 30 seconds.

use strict;
use warnings;

use Test::Base -base;

use Digest::MD5 ();
use Digest::SHA ();
use Encode ();
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempfile);
use HTTP::Response;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use List::Util qw(min shuffle);
use POSIX qw(EAGAIN EWOULDBLOCK WNOHANG);
use Scalar::Util qw(looks_like_number);
use Socket qw(SOCK_STREAM);
use Test::LongString;
use Time::HiRes qw(sleep time);

our $VERSION = '0.1';

our @EXPORT = qw(
    env_to_nginx is_str run_tests repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location use_hup
    server_name server_addr server_root html_dir server_port
    server_port_for_client timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_cleanup_handler
    add_response_body_check
);

# ---------------------------------------------------------------------------
# Settings (environment first, then the exported setters)
# ---------------------------------------------------------------------------

our $Verbose        = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary    = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules    = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseHup         = $ENV{TEST_NGINX_USE_HUP};
our $UseValgrind    = $ENV{TEST_NGINX_USE_VALGRIND};
our $NoClean        = $ENV{TEST_NGINX_NO_CLEAN};
our $NoShuffle      = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoNginxManager = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $Strict         = $ENV{SITEFLOW_TEST_STRICT};
our $Timeout        = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Sleep          = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LogLevel       = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $ServerPort     = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $ServerAddr     = '127.0.0.1';
our $ServerName     = 'localhost';
our $RepeatEach     = 1;
our $Workers        = 1;
our $WorkerConnections = 64;
our $NoRootLocation = 0;
our $NoLongString;
our $ConfigPreamble = '';
our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @ResponseBodyChecks);

our $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || 't/servroot');
$ServRoot =~ s{/+$}{};
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";

# Run-time state.
my $MainPid = $$;
our ($NginxVersion, $PrevConfig, $PrevBlock, $ConfigVersion);
our ($ChildPid, $TcpServerPid);     # nginx under valgrind; mock TCP server
our $FirstTime = 1;
our $ErrLogFilePos = 0;
our $ValgrindLogPos = 0;
our $TotalConnectingTimeouts = 0;
our $InMustDie;

# ---------------------------------------------------------------------------
# Exported setters / getters
# ---------------------------------------------------------------------------

sub repeat_each       { $RepeatEach = shift if @_; $RepeatEach }
sub workers           { @_ ? ($Workers = shift) : $Workers }
sub worker_connections { @_ ? ($WorkerConnections = shift) : $WorkerConnections }
sub log_level         { @_ ? ($LogLevel = shift) : $LogLevel }
sub master_on ()      { $MasterProcessEnabled = 'on' }
sub master_off ()     { $MasterProcessEnabled = 'off' }
sub master_process_enabled {
    return $MasterProcessEnabled unless @_;
    $MasterProcessEnabled = shift() ? 'on' : 'off';
}
sub no_shuffle ()     { $NoShuffle = 1 }
sub no_long_string () { $NoLongString = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub no_nginx_manager () { $NoNginxManager = 1 }
sub use_hup ()        { $UseHup = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub config_preamble ($) { $ConfigPreamble = shift }
sub server_name       { @_ ? ($ServerName = shift) : $ServerName }
sub server_addr       { @_ ? ($ServerAddr = shift) : $ServerAddr }
sub server_port       { @_ ? ($ServerPort = shift) : $ServerPort }
sub server_port_for_client { @_ ? ($ServerPortForClient = shift) : $ServerPortForClient }
sub timeout           { @_ ? ($Timeout = shift) : $Timeout }
sub server_root ()    { $ServRoot }
sub html_dir ()       { $HtmlDir }

# Later preprocessors / cleanup handlers run first, as in Test::Nginx.
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

sub env_to_nginx {
    croak "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        croak "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

# String comparison honouring no_long_string() and qr// expectations.
sub is_str {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::like($got, $expected, $desc)
        if ref $expected && ref $expected eq 'Regexp';
    return Test::More::is($got, $expected, $desc) if $NoLongString;
    return is_string($got, $expected, $desc);
}

sub bail_out {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

# A block section in scalar context (an absent section gives undef; calling
# the accessor in list context would give an empty list instead).
sub sec {
    my ($block, $key) = @_;
    my $v = $block->$key;
    return $v;
}

# A zombie counts as gone: the daemonised nginx is not our child, and the
# process reaping orphans (pid 1) may be slow to do so.
sub is_running {
    my $pid = shift;
    return 0 unless $pid && kill(0, $pid);
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        return 0 if $stat =~ /^\d+ \(.*\) Z/s;
    }
    return 1;
}

# the processes whose parent is $ppid (nginx's workers, cache processes)
sub child_pids {
    my ($ppid) = @_;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh> // '';
        push @pids, $p if $stat =~ /^\d+ \(.*\) \S (\d+) /s && $1 == $ppid;
    }
    closedir $dh;
    return @pids;
}

sub parse_time {
    my $t = shift;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^([\d.]+)ms$/;
    return $1 if $t =~ /^([\d.]+)s$/;
    return $t;
}

sub fmt_str {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub trim_summary {
    my $s = shift;
    return '' unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\s+/ /g;
    return $s;
}

sub rand_str {
    my @c = ('A' .. 'Z', 'a' .. 'z', '0' .. '9');
    return join '', map { $c[int rand @c] } 1 .. shift;
}

sub can_run {
    my $cmd = shift;
    return (-f $cmd && -x _) ? $cmd : undef if $cmd =~ m{/};
    for my $dir (split /:/, $ENV{PATH} // '') {
        next if $dir eq '';
        return "$dir/$cmd" if -f "$dir/$cmd" && -x _;
    }
    return undef;
}

sub free_port {
    my $used = shift;
    for (1 .. 1000) {
        my $port = 1985 + int rand(65535 - 1985);
        next if $used->{$port};
        my $s = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                      LocalPort => $port, Proto => 'tcp',
                                      Listen => 1);
        if ($s) { close $s; return $port }
    }
    return undef;
}

# Replaces $TEST_NGINX_FOO by $ENV{TEST_NGINX_FOO}.  In config sections an
# unset variable bails out (as Test::Nginx does); $TEST_NGINX_RAND_PORT_N
# becomes a free port, the same one for the whole block.  With $lenient,
# unset variables are left alone (used for requests and headers).
sub expand_env {
    my ($text, $name, $rand_ports, $lenient) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/ && $rand_ports) {
            $rand_ports->{$var} //= do {
                my %used = (($ServerPort // 0) => 1,
                            map { $_ => 1 } grep { defined } values %$rand_ports);
                free_port(\%used)
                    // bail_out("$name - Cannot find an available listening port number for $var.\n");
            };
        } elsif (defined $ENV{$var}) {
            $ENV{$var};
        } elsif ($lenient) {
            "\$$var";
        } else {
            bail_out("$name - No environment $var defined.\n");
        }
    }ge;
    return $text;
}

sub get_nginx_version {
    my $out = `$NginxBinary -V 2>&1`;
    bail_out("Failed to get the version of the Nginx in PATH: " . ($out // ''))
        if !defined $out || $? != 0;
    return sprintf("%d.%03d%03d", $1, $2, $3)
        if $out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)};
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

sub read_pid_file {
    open my $in, '<', $PidFile or return undef;
    my $pid = do { local $/; <$in> };
    close $in;
    return undef unless defined $pid && $pid =~ /(\d+)/;
    return $1;
}

sub wait_for_pid_file {
    my ($secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $pid = read_pid_file();
        return $pid if $pid;
        return undef if $ChildPid && waitpid($ChildPid, WNOHANG) != 0;
        sleep 0.01;
    }
    return undef;
}

# QUIT first, then TERM, then KILL (the last resort also hits the process
# group when the process leads one).
sub kill_process {
    my ($pid, $wait, $name) = @_;
    return unless $pid;
    warn "stopping process $pid (QUIT)\n" if $Verbose;
    if ($wait) {
        kill 'QUIT', $pid;
        my $left = $Timeout;
        while ($left > 0 && is_running($pid)) {
            waitpid($pid, WNOHANG);
            sleep 0.01;
            $left -= 0.01;
        }
    }
    my $step = $Sleep;
    for (1 .. 20) {
        waitpid($pid, WNOHANG);
        return unless is_running($pid);
        kill 'TERM', $pid;
        $step *= 1.2;
        sleep($step > 0.5 ? 0.5 : $step);
    }
    waitpid($pid, WNOHANG);
    return unless is_running($pid);
    warn "$name - WARNING: killing the process $pid with force...\n";
    kill 'KILL', (getpgrp($pid) == $pid ? -$pid : $pid);
    waitpid($pid, 0);
}

sub cleanup {
    for my $hdl (@CleanupHandlers) { $hdl->() }
    if (defined $TcpServerPid) {
        kill_child($TcpServerPid);
        undef $TcpServerPid;
    }
    if (defined $ChildPid) {
        kill_process($ChildPid, 1, 'cleanup');
        undef $ChildPid;
    }
}

# Our own short-lived children (the mock TCP server).
sub kill_child {
    my $pid = shift;
    kill 'TERM', $pid;
    for (1 .. 100) {
        return if waitpid($pid, WNOHANG) != 0;
        sleep 0.01;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# Lines of error.log written since the last call (or all of them, with
# check_accum_error_log()).
sub error_log_data {
    sleep $Sleep * 3;    # nginx may still be logging (log phase, etc.)
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos > 0;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
    close $in;
    return \@lines;
}

# ---------------------------------------------------------------------------
# Server root, user files, nginx.conf
# ---------------------------------------------------------------------------

sub setup_server_root {
    my ($first_time) = @_;
    remove_tree($ConfDir, $HtmlDir, glob("$ServRoot/*_temp"),
                glob("$ServRoot/*_cache"));
    if ($UseHup && !$first_time) {
        # nginx keeps running: keep its pid file (it reopens the logs on USR1)
        for my $f (glob("$LogDir/*")) {
            next if $f eq $PidFile || $f =~ /\.sock$/;
            unlink $f;
        }
    } else {
        remove_tree($LogDir);
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        next if -d $dir;
        make_path($dir) or bail_out("Failed to do mkdir $dir: $!\n");
    }
    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!\n");
    print $out '<html><head><title>It works!</title></head>'
             . '<body>It works!</body></html>';
    close $out;
    $ValgrindLogPos = 0;
}

sub write_user_files {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = sec($block, 'user_files');
    return unless $files;

    if (!ref $files) {            # ">>> name [touch -t date]" syntax
        my @list;
        for my $line (split /^/m, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, undef, $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: ", ref $files,
                 ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body //= '';
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - Cannot create directory $1");
        }
        $body = expand_env($body, $name, $rand_ports);
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - Failed to run touch -t '$date' $path\n");
        }
    }
}

sub write_config_file {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;

    master_on() if $UseHup;    # HUP reloads need a master process

    my $http_config = expand_env(sec($block, 'http_config'), $name, $rand_ports) // '';
    my $main_config = expand_env(sec($block, 'main_config'), $name, $rand_ports) // '';
    my $post_main_config
        = expand_env(sec($block, 'post_main_config'), $name, $rand_ports) // '';
    my $err_log_file = sec($block, 'error_log_file') || $ErrLogFile;
    my $server_name = sec($block, 'server_name') // $ServerName;
    $server_name =~ s/\\/\\\\/g;
    $server_name =~ s/'/\\'/g;
    $config //= '';

    my $daemon = $UseValgrind ? 'off' : 'on';

    my $load_modules = '';
    for my $mod (grep { length } split /\s+/, $LoadModules // '') {
        # nginx resolves relative paths against the prefix (the server
        # root); we accept paths relative to the current directory too.
        $mod = File::Spec->rel2abs($mod) if $mod !~ m{^/} && -e $mod;
        $load_modules .= "load_module $mod;\n";
    }

    my $env = '';
    for my $v (qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS), @EnvToNginx) {
        $env .= $v =~ /\s/ ? "env '$v';\n" : "env $v;\n";
    }

    my $user = ($> == 0 && $main_config !~ /^\s*user\s/m) ? "user root;\n" : '';

    my $temp_paths = '';
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $http_config =~ /\b${t}_temp_path\b/;
        $temp_paths .= "    ${t}_temp_path $ServRoot/${t}_temp;\n";
    }

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $hup_server = !$UseHup ? '' : <<"_EOC_";
    server {
        listen          $ServerPort;
        server_name     'Test-Nginx';

        location = /ver {
            return 200 '$ConfigVersion';
        }
    }
_EOC_

    my $event_type = $ENV{TEST_NGINX_EVENT_TYPE}
                     ? "    use $ENV{TEST_NGINX_EVENT_TYPE};\n" : '';

    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<"_EOC_";
${load_modules}worker_processes  $Workers;
daemon $daemon;
master_process $MasterProcessEnabled;
error_log $err_log_file $LogLevel;
pid       $PidFile;
$env$user
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$temp_paths
$http_config

    server {
        listen          $ServerPort;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
$hup_server}

$post_main_config

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
$event_type}
_EOC_
    close $out;
}

# ---------------------------------------------------------------------------
# Starting and stopping nginx
# ---------------------------------------------------------------------------

sub nginx_cmd {
    my @bin = split ' ', $NginxBinary;
    return (@bin, '-p', "$ServRoot/", '-c', $ConfFile);
}

sub valgrind_cmd {
    my @cmd = ('valgrind');
    if ($UseValgrind =~ /^\d+$/) {
        push @cmd, qw(--num-callers=100 -q --tool=memcheck --leak-check=full
                      --show-possibly-lost=no --gen-suppressions=all
                      --keep-debuginfo=yes);
        push @cmd, '--suppressions=valgrind.suppress'
            if -f 'valgrind.suppress' && !$ENV{TEST_NGINX_VALGRIND_SUPPRESSIONS};
    } else {
        push @cmd, split ' ', $UseValgrind;
    }
    for my $f (split ' ', $ENV{TEST_NGINX_VALGRIND_SUPPRESSIONS} // '') {
        push @cmd, "--suppressions=$f";
    }
    return @cmd;
}

# fork + exec with stdout to /dev/null and stderr appended to error.log.
sub spawn {
    my ($new_group, @cmd) = @_;
    my $pid = fork;
    bail_out("fork() failed: $!") unless defined $pid;
    return $pid if $pid;
    setpgrp(0, 0) if $new_group;
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>>', $ErrLogFile;
    {
        no warnings 'exec';
        exec { $cmd[0] } @cmd;
        print STDERR "exec $cmd[0] failed: $!\n";
    }
    POSIX::_exit(127);
}

sub run_nginx_sync {
    warn "running: @{[nginx_cmd()]}\n" if $Verbose;
    my $pid = spawn(0, nginx_cmd());
    waitpid($pid, 0);
    return $?;
}

sub last_startup_error {
    open my $in, '<', $ErrLogFile or return '';
    my ($last) = reverse grep { /\[(?:emerg|alert)\]|exec .* failed/ } <$in>;
    close $in;
    $last //= '';
    chomp $last;
    return $last;
}

sub start_nginx {
    my ($name) = @_;
    my @cmd = nginx_cmd();
    bail_out("$name - Cannot find the nginx executable \"$cmd[0]\"")
        unless can_run($cmd[0]);

    if ($UseValgrind) {
        warn "$name\n";
        warn "running: @{[valgrind_cmd()]} @cmd\n" if $Verbose;
        $ChildPid = spawn(1, valgrind_cmd(), @cmd);
        # valgrind is slow to start: give it time, but notice early exits
        my $pid = wait_for_pid_file($Timeout * 10 + 20);
        if (!$pid) {
            my $why = last_startup_error();
            undef $ChildPid;
            bail_out("$name - Cannot start nginx under valgrind: @cmd"
                     . ($why ? " ($why)" : ''));
        }
        return;
    }

    my ($tries, $waited) = (0, 0);
    while (1) {
        my $status = run_nginx_sync();
        last if $status == 0;
        my $why = last_startup_error();
        if ($why =~ /Address already in use/ && $waited < 30) {
            # a previous nginx may still be exiting; try again
            my $delay = min(1, 0.1 * ++$tries);
            sleep $delay;
            $waited += $delay;
            truncate $ErrLogFile, 0;
            next;
        }
        bail_out("$name - Cannot start nginx using command \"@cmd\" "
                 . "(status code $status)" . ($why ? ": $why" : ''));
    }
    wait_for_pid_file(5)
        or warn "WARNING: $name - no pid file $PidFile after starting nginx\n";
    sleep $Sleep;
}

# Send USR1 (reopen the logs we just deleted) and HUP, then wait until the
# new configuration answers.  Returns false if nginx could not be signalled.
sub hup_reload {
    my ($block, $name, $config, $rand_ports, $pid) = @_;
    setup_server_root(0);
    write_user_files($block, $rand_ports);
    write_config_file($block, $config, $rand_ports);
    warn "reloading nginx $pid (USR1, HUP)\n" if $Verbose;
    if (!kill 'USR1', $pid) {
        warn "$name - Failed to send USR1 signal\n";
        return 0;
    }
    sleep $Sleep;
    my @old = child_pids($pid);
    return 0 unless kill 'HUP', $pid;
    sleep $Sleep * 3;
    warn "$name\n" if $UseValgrind;
    if (defined $block->reload_fails) {
        sleep 0.3;
    } else {
        wait_config_version($name);
        # an old worker still accepts until it has read its QUIT: the
        # block's requests must not meet the old configuration (bounded,
        # a worker finishing a long request may stay longer)
        my $deadline = time + 5;
        sleep 0.02 while time < $deadline && grep { is_running($_) } @old;
    }
    check_prev_block_shutdown_error_log();
    return 1;
}

sub wait_config_version {
    my ($name) = @_;
    my $ok = 0;
    for my $try (1 .. 200) {
        my ($raw) = send_request(
            [{ value => "GET /ver HTTP/1.0\r\nHost: Test-Nginx\r\n\r\n" }],
            undef, 2, undef);
        my ($res) = defined $raw ? parse_response($name, $raw, 0) : ();
        if ($res && ($res->code // 0) == 200 && $res->content eq $ConfigVersion) {
            return if ++$ok >= 20;    # every worker has the new config
            next;
        }
        $ok = 0;
        my $wait = min(1, ($Sleep + $Sleep * $try) * $try / 2);
        warn "$name - waiting $wait sec for nginx to reload the configuration\n"
            if $wait > 0.5;
        sleep $wait;
    }
    Test::More->builder->no_ending(1);
    Test::More::fail("$name - failed to reload configuration after 200 "
                     . "failed test requests");
}

# Stop nginx started under valgrind (not a daemon) and report what
# valgrind printed into error.log.
sub stop_valgrind_nginx {
    my ($name) = @_;
    return unless $ChildPid;
    kill 'QUIT', $ChildPid;
    my $deadline = time + $Timeout * 10 + 10;   # leak checking takes time
    while (time < $deadline) {
        last if waitpid($ChildPid, WNOHANG) != 0;
        sleep 0.05;
    }
    if (is_running($ChildPid) && waitpid($ChildPid, WNOHANG) == 0) {
        warn "$name - timeout when waiting for the process $ChildPid to exit\n";
        kill 'KILL', -$ChildPid;
        waitpid($ChildPid, 0);
    }
    undef $ChildPid;
    unlink $PidFile;
    report_valgrind($name);
}

sub report_valgrind {
    my ($name) = @_;
    open my $in, '<', $ErrLogFile or return;
    seek $in, $ValgrindLogPos, 0;
    my (@report, $in_supp);
    while (my $line = <$in>) {
        if ($line =~ /^==\d+==/) {
            push @report, $line;
        } elsif ($line =~ /^\{\s*$/ || $in_supp) {     # --gen-suppressions
            push @report, $line;
            $in_supp = $line !~ /^\}\s*$/;
        }
    }
    $ValgrindLogPos = tell $in;
    close $in;
    my @kinds = ('Invalid ', 'Conditional jump', 'Use of uninitialised',
                 'Syscall param', 'Mismatched free', 'Source and destination overlap',
                 'Argument ', 'Process terminating', 'Jump to the invalid');
    my $errors = grep {
        my $l = $_;
        $l =~ /^==\d+==\s+(?:ERROR SUMMARY: [1-9]|.*\bare (?:definitely|possibly|indirectly) lost)/
            || grep { $l =~ /^==\d+==\s+\Q$_\E/ } @kinds;
    } @report;
    return unless $errors;
    my $text = join '', @report;
    if ($Strict) {
        Test::More->builder->no_ending(1);
        Test::More::fail("$name - valgrind reported errors");
        Test::More::diag($text);
    } else {
        warn "WARNING: $name - valgrind reported errors:\n$text";
    }
}

sub check_prev_block_shutdown_error_log {
    my $block = $PrevBlock;
    return unless $block && defined $block->shutdown_error_log;
    undef $PrevBlock;
    my $dry_run = ($UseHup || $NoClean) ? 'the HUP reload/no-clean mode' : 0;
    check_shutdown_error_log($block, $dry_run);
}

# ---------------------------------------------------------------------------
# Main loop
# ---------------------------------------------------------------------------

sub run_tests () {
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = Test::Base::blocks();    # runs the section filters
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_block($block);
        $PrevBlock = $block;
    }
    cleanup();
}

sub run_block {
    my ($block) = @_;
    return if defined $block->SKIP;

    my $name = $block->name;
    my $first_time = $FirstTime;
    $FirstTime = 0;

    my $rand_ports = {};
    my $config = expand_env(sec($block, 'config'), $name, $rand_ports);

    local $LogLevel = sec($block, 'log_level') || $LogLevel;
    my $must_die = sec($block, 'must_die');
    local $UseHup = defined $must_die ? undef : $UseHup;
    local $UseValgrind = defined $must_die ? undef : $UseValgrind;

    my ($tests_to_skip, $should_skip, $skip_reason) = block_skip_info($block);

    # Without a config section the running nginx is reused (as in
    # Test::Nginx).
    my $should_restart = defined $config;
    if (!defined $config && !$NoNginxManager && !defined $PrevConfig) {
        bail_out("$name - No '--- config' section specified and could not "
                 . "get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?");
    }

    if (!$NoNginxManager && !$should_skip && $should_restart) {
        $ConfigVersion = rand_str(10) if $UseHup;
        $PrevConfig = $config;

        my $reloaded;
        my $pid = read_pid_file();
        if ($pid && is_running($pid)) {
            if ($UseHup && !$first_time) {
                $reloaded = hup_reload($block, $name, $config, $rand_ports, $pid);
            }
            kill_process($pid, 1, $name) unless $reloaded;
        } elsif (-f $PidFile) {
            unlink $PidFile;
        }

        if (!$reloaded) {
            check_prev_block_shutdown_error_log();
            setup_server_root($first_time);
            write_user_files($block, $rand_ports);
            write_config_file($block, $config, $rand_ports);
            if (defined $must_die) {
                run_must_die($block, $must_die);
                return;
            }
            start_nginx($name);
        }
    }

    if (defined(my $init = sec($block, 'init'))) {
        eval $init;
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        my ($tcp_socket, $tcp_query_file);
        ($tcp_socket, $tcp_query_file) = start_tcp_server($block)
            if defined $block->tcp_listen;

        write_user_files($block, $rand_ports) if $i > 0;

        if ($should_skip && defined $tests_to_skip) {
            SKIP: { Test::More::skip("$name - $skip_reason", $tests_to_skip) }
        } else {
            run_test_helper($block, 0, $i);
            run_tcp_server_tests($block, $tcp_socket, $tcp_query_file);
        }

        if (defined $tcp_socket) {
            if (defined $TcpServerPid) {
                kill_child($TcpServerPid);
                undef $TcpServerPid;
            }
            close $tcp_socket;
            unlink $tcp_socket->hostpath
                if $tcp_socket->isa('IO::Socket::UNIX') && $tcp_socket->hostpath;
        }
    }

    if (my $total = $ENV{TEST_NGINX_ERROR_LOG}) {
        if (-s $ErrLogFile && open my $out, '>>', $total) {
            open my $in, '<', $ErrLogFile;
            print $out "\n=== $name\n", <$in>;
            close $in;
            close $out;
        }
    }

    stop_valgrind_nginx($name) if $UseValgrind && !$UseHup;
}

sub block_skip_info {
    my ($block) = @_;
    my $name = $block->name;
    my ($n, $skip, $reason);
    if (defined(my $spec = sec($block, 'skip_eval'))) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            ($n, $reason) = ($1, 'skip_eval');
            $skip = eval "package main; $2";
            bail_out("$name - skip_eval - failed to eval the Perl code \"$2\": $@")
                if $@;
        }
    }
    if (defined(my $spec = sec($block, 'skip_nginx'))) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        $n = $1;
        $reason = $6 || "nginx version $2 $3.$4.$5";
        my $ver = sprintf "%d.%03d%03d", $3, $4, $5;
        my $op = $2;
        $skip = 1 if eval "$NginxVersion $op $ver";
    }
    return ($n, $skip, $reason // 'various reasons');
}

sub run_must_die {
    my ($block, $must_die) = @_;
    my $name = $block->name;
    local $InMustDie = 1;
    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        my $status = run_nginx_sync();
        my $exit_code = $status >> 8;
        if ($status == -1 || $exit_code == 127) {
            Test::More::fail("$name - failed to execute the nginx command line");
        } elsif ($status & 128) {
            Test::More::fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            Test::More::is($exit_code, $must_die,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        check_error_log($block, undef, 0, $i, 0);

        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; "
                 . "killing it (req $i)\n";
            kill_process(wait_for_pid_file(1), 1, $name);
        }
    }
}

# ---------------------------------------------------------------------------
# Building requests
# ---------------------------------------------------------------------------

sub parse_more_headers {
    my ($in) = @_;
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, $in) {
        next if $line =~ /^\s*#/;
        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';
        $chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

sub more_headers_for {
    my ($block, $more, $i) = @_;
    if (ref $more eq 'ARRAY') {
        my $hdr = $more->[$i];
        bail_out("--- more_headers lacks data for the request $i") unless defined $hdr;
        $more = $hdr;
    }
    return parse_more_headers(expand_env($more, $block->name, undef, 1));
}

# Turns "METHOD [uri [version]]\nbody" (possibly split over several packets)
# into a full HTTP request: the request line is normalised, Host,
# Connection, the extra headers and Content-Length are added, and packet
# boundaries are kept in place relative to the original text.
sub build_http_request {
    my ($name, $hdr, $chunked, $conn, $packets) = @_;
    my $orig = join '', map { $_->{value} } @$packets;

    my ($first, $content) = $orig =~ /\A([^\n]*\n?)(.*)\z/s;
    bail_out("$name - Request line should be non-empty") if $first eq '';
    $first =~ /^(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$first\".");
    my @m = ($1, $2, $3, $4, $5, $6, $7, $8);
    my ($meth, $url, $ver) = ($m[1], $m[3] // '/', $m[5] // 'HTTP/1.1');

    my $len_header = '';
    if (!$chunked && $content ne '' && $hdr !~ /(?:^|\n)Content-Length:/) {
        (my $trimmed = $content) =~ s/^\s+|\s+$//gs;
        $len_header = "Content-Length: " . length($trimmed) . "\r\n";
        $content = [$content, $trimmed];
    } else {
        $content = [$content, $content];
    }

    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $hdr !~ /(?:^|\n)Host:/i;
    $headers .= "Connection: $conn\r\n" if $hdr !~ /(?:^|\n)Connection/i;
    $headers .= "$hdr$len_header\r\n";

    # [original text, replacement] for each piece of the original request
    my @segments = (
        [$m[0], ''],
        [$m[1], "$meth "],
        [$m[2], ''],
        [$m[3] // '', "$url "],
        [$m[4] // '', ''],
        [$m[5] // '', "$ver\r\n"],
        [($m[6] // '') . $m[7], ''],
        ['', $headers],
        $content,
    );
    my $new = join '', map { $_->[1] } @segments;
    return [{ %{ $packets->[0] }, value => $new }] if @$packets == 1;

    # Map each original packet boundary to an offset in the new text.
    my @cuts;
    my $boundary = 0;
    for my $p (@$packets[0 .. $#$packets - 1]) {
        $boundary += length $p->{value};
        my ($o, $n) = (0, 0);
        for my $seg (@segments) {
            my ($olen, $nlen) = (length $seg->[0], length $seg->[1]);
            if ($boundary < $o + $olen) {
                $n += min($boundary - $o, $nlen);
                last;
            }
            $o += $olen;
            $n += $nlen;
        }
        push @cuts, $n;
    }
    my @out;
    my $prev = 0;
    for my $i (0 .. $#$packets) {
        my $end = $i < @cuts ? $cuts[$i] : length $new;
        push @out, { %{ $packets->[$i] }, value => substr($new, $prev, $end - $prev) };
        $prev = $end;
    }
    return \@out;
}

# Returns a list of requests; each request is a list of packets
# ({ value => ..., delay_before => ... }) sent over one connection.
sub build_requests {
    my ($block) = @_;
    my $name = $block->name;

    my $raw = sec($block, 'raw_request');
    if (defined $raw) {
        my @bits = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [[ map { { value => expand_env($_, $name, undef, 1) } } @bits ]];
    }

    my $request;
    if (defined(my $re = sec($block, 'request_eval'))) {
        diag "$name - request_eval DEPRECATED. Use request eval instead.";
        $request = eval $re;
        warn $@ if $@;
    } else {
        $request = sec($block, 'request');
        if (defined $request && !ref $request) {
            1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;   # leading comments
        }
    }

    my $more = sec($block, 'more_headers') // '';

    if (my $reqs = sec($block, 'pipelined_requests')) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my ($hdr, $chunked) = more_headers_for($block, $more, $i);
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            my $req = expand_env($reqs->[$i], $name, undef, 1);
            $all .= build_http_request($name, $hdr, $chunked, $conn,
                                       [{ value => $req }])->[0]{value};
        }
        return [[{ value => $all }]];
    }

    return [] unless defined $request;

    if (!ref $request) {
        my ($hdr, $chunked) = more_headers_for($block, $more, 0);
        $request = expand_env($request, $name, undef, 1);
        return [ build_http_request($name, $hdr, $chunked, 'close',
                                    [{ value => $request }]) ];
    }

    bail_out("$name - invalid ---request : MUST be string or array of requests")
        unless ref $request eq 'ARRAY';

    my @out;
    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        my ($hdr, $chunked) = more_headers_for($block, $more, $i);
        my @packets;
        if (!ref $one) {
            @packets = ({ value => $one });
        } elsif (ref $one eq 'ARRAY') {
            for my $p (@$one) {
                if (!ref $p) { push @packets, { value => $p } }
                elsif (ref $p eq 'HASH') { push @packets, {%$p} }
                else { bail_out("$name - Invalid syntax. $p should be a string or hash with value.") }
            }
        } else {
            bail_out("$name - Invalid syntax. $one should be a string or an array of packets.");
        }
        $_->{value} = expand_env($_->{value}, $name, undef, 1) for @packets;
        push @out, build_http_request($name, $hdr, $chunked, 'close', \@packets);
    }
    return \@out;
}

sub shell_quote {
    my $s = shift;
    return $s if $s =~ m{^[-\w.:/=@%+,]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

# --- curl: print an equivalent curl command line for the first request.
sub curl_command {
    my ($packets) = @_;
    my $req = join '', map { $_->{value} } @$packets;
    my ($head, $body) = split /\r\n\r\n/, $req, 2;
    my ($line, @headers) = split /\r\n/, $head;
    my ($meth, $uri) = split ' ', $line;
    my @args = ('curl', '-i', '-sS');
    push @args, $meth eq 'HEAD' ? '-I' : ('-X', $meth);
    for my $h (@headers) {
        next if $h =~ /^(?:Connection|Content-Length)\s*:/i
                || $h =~ /^Host:\s*\Q$ServerName\E$/i;
        push @args, '-H', $h;
    }
    push @args, '--data-binary', $body if defined $body && length $body;
    push @args, "http://$ServerAddr:$ServerPortForClient$uri";
    return join ' ', map { shell_quote($_) } @args;
}

# ---------------------------------------------------------------------------
# Sending requests and parsing responses
# ---------------------------------------------------------------------------

sub connect_server {
    my ($name, $timeout) = @_;
    my $tries = $TotalConnectingTimeouts ? 20 : 50;
    my $err;
    for my $try (1 .. $tries) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                         PeerPort => $ServerPortForClient,
                                         Proto => 'tcp', Timeout => $timeout);
        return $sock if $sock;
        $err = $!;
        if ($ChildPid && waitpid($ChildPid, WNOHANG) != 0) {
            undef $ChildPid;
            warn "WARNING: the nginx process is already gone.\n";
            last;
        }
        my $wait = min(1, ($Sleep + $Sleep * $try) * $try / 2);
        if ($wait >= 0.6) {
            warn "$name - Can't connect to $ServerAddr:$ServerPortForClient: $err\n";
            warn "\tRetry connecting after $wait sec\n" if $try < $tries;
        }
        sleep $wait;
    }
    my $msg = "$name - Can't connect to $ServerAddr:$ServerPortForClient: $err (aborted)\n";
    bail_out($msg) if ++$TotalConnectingTimeouts >= 3;
    Test::More->builder->no_ending(1);
    Test::More::fail($msg);
    return undef;
}

# Sends the packets over one connection and reads until the server closes
# it.  Returns (raw response, is-HEAD-request).  $block is undef for our
# own internal requests (HUP version checks).
sub send_request {
    my ($packets, $middle_delay, $timeout, $block) = @_;
    my $name = $block ? $block->name : 'config version check';
    my $head_req = (join '', map { $_->{value} } @$packets) =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $sock = $block ? connect_server($name, $timeout)
                      : IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                              PeerPort => $ServerPort,
                                              Proto => 'tcp', Timeout => $timeout);
    return (undef, $head_req) unless $sock;

    local $SIG{PIPE} = 'IGNORE';
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);
    my @todo = @$packets;
    my $wbuf = (shift @todo)->{value};
    my $woff = 0;
    my $writing = 1;
    my $resp = '';

    IO: while (1) {
        my ($readable, $writable) =
            IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);
        if (!$readable && !$writable) {
            close $sock;
            if ($block && !defined $block->abort) {
                Test::More->builder->no_ending(1);
                Test::More::fail("ERROR: client socket timed out - $name\n");
            } else {
                sleep 0.005;
            }
            last IO;
        }

        if ($writing && $writable && @$writable) {
            WRITE: while (1) {
                if ($woff < length $wbuf) {
                    my $n = syswrite($sock, $wbuf, length($wbuf) - $woff, $woff);
                    if (!defined $n) {
                        last WRITE if $! == EAGAIN || $! == EWOULDBLOCK;
                        warn "write failed: $!\n";
                        $writing = 0;    # keep reading what the server says
                        last WRITE;
                    }
                    $woff += $n;
                    next WRITE;
                }
                my $next = shift @todo;
                if (!$next) {
                    $writing = 0;
                    my $how = $block ? sec($block, 'shutdown') : undef;
                    if (defined $how) {
                        $how = 1 if $how !~ /\d/;
                        shutdown($sock, $how);
                    }
                    last WRITE;
                }
                my $delay = $next->{delay_before} // $middle_delay;
                sleep $delay if $delay;
                ($wbuf, $woff) = ($next->{value}, 0);
            }
        }

        if ($readable && @$readable) {
            while (1) {
                my $n = sysread($sock, my $buf, 4096);
                if (!defined $n) {
                    next IO if $! == EAGAIN || $! == EWOULDBLOCK;
                    warn "WARNING: $name - HTTP response read failure: $!\n";
                    last IO;
                }
                last IO if $n == 0;
                $resp .= $buf;
            }
        }
    }
    close $sock;
    return ($resp, $head_req);
}

# Returns (HTTP::Response, raw header text, bytes left after this response).
sub parse_response {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);

    my $code = $res->code;
    if (defined $code && $code !~ /^\d+$/) {
        $res->code(undef);
        undef $code;
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $te  = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $left;

    if (defined $te && $te eq 'chunked') {
        my $body = $res->content // '';
        my $decoded = '';
        pos($body) = 0;
        while (1) {
            if ($body =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = substr($body, pos $body) if pos($body) < length $body;
                last;
            }
            if ($body =~ /\G[ \t]*([0-9A-Fa-f]+)[ \t]*\r\n/gc) {
                my $size = hex $1;
                my $at = pos $body;
                if (length($body) - $at < $size) {
                    Test::More->builder->no_ending(1);
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(not enough octets for the data section)");
                    return;
                }
                $decoded .= substr($body, $at, $size);
                pos($body) = $at + $size;
                if ($body !~ /\G\r\n/gc) {
                    Test::More->builder->no_ending(1);
                    Test::More::fail("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
            } elsif ($body =~ /\G(.+)/gcs) {
                Test::More->builder->no_ending(1);
                Test::More::fail("$name - invalid chunked body received: $1");
                return;
            } else {
                Test::More->builder->no_ending(1);
                Test::More::fail("$name - no last chunk found - $body");
                return;
            }
        }
        $res->content($decoded);

    } elsif (defined $len && $len =~ /^\d+$/) {
        my $body = $res->content // '';
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($body) . "\n" unless $head_req;
        } elsif (length $body > $len) {
            $left = substr($body, $len);
            $res->content(substr($body, 0, $len));
        }
    }
    return ($res, $raw_headers, $left);
}

# ---------------------------------------------------------------------------
# Running one repetition of a block
# ---------------------------------------------------------------------------

sub run_test_helper {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $reqs = build_requests($block);
    bail_out("$name - request empty") unless @$reqs;

    warn "# ", curl_command($reqs->[0]), "\n" if defined $block->curl;

    my $timeout = parse_time(sec($block, 'timeout')) // $Timeout;
    my $middle_delay = sec($block, 'raw_request_middle_delay');
    my $pipelined = sec($block, 'pipelined_requests');
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $ignore = defined $block->ignore_response;
    my $wait = sec($block, 'wait');

    my $req_idx = 0;
    my $res;
    for my $r (0 .. $#$reqs) {
        if ($Verbose) {
            (my $show = join '', map { $_->{value} } @{ $reqs->[$r] }) =~ s/\r//g;
            warn "!!! req: [$show]\n";
        }
        my ($raw, $head_req) = send_request($reqs->[$r], $middle_delay,
                                            $timeout, $block);
        $raw //= '';
        warn "!!! resp: [$raw]\n" if $Verbose;

        # pipelined responses all arrive on the one connection
        my $n = $pipelined ? scalar @$pipelined : 0;
        do {
            my ($raw_headers, $left) = ('');
            if (!$ignore) {
                if (defined $block->http09) {
                    $res = HTTP::Response->new(200, 'OK', [], $raw);
                } else {
                    ($res, $raw_headers, $left) = parse_response($name, $raw, $head_req);
                    $raw_headers //= '';
                }
            }

            if ($n) {
                $raw = $left // '';
                $n--;
            } elsif (defined $left && length $left) {
                (my $l = $left) =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last chunk "
                     . "in response: \"$l\"\n";
            }

            if (!$ignore) {
                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx, $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $req_idx, $repeated_req_idx, $need_array);
            }

            if ($n || $req_idx < $#$reqs) {
                sleep $wait if $wait;
                check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
            }
            $req_idx++;
        } while ($n);
    }

    sleep $wait if $wait;
    check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
}

# ---------------------------------------------------------------------------
# Checks (one Test::More assertion each, named like Test::Nginx's)
# ---------------------------------------------------------------------------

sub get_indexed_value {
    my ($name, $value, $req_idx, $need_array) = @_;
    my $is_array = ref $value && ref $value eq 'ARRAY';
    if ($need_array) {
        return $value->[$req_idx] if $is_array;
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }
    return $is_array ? $value->[0] : $value;
}

sub check_error_code {
    my ($block, $res, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $got = ($res && $res->code) || '';
    if (defined(my $like = sec($block, 'error_code_like'))) {
        my $val = get_indexed_value($name, $like, $req_idx, $need_array);
        like($got, qr/$val/sm, "$name - status code ok");
    } elsif (defined(my $code = sec($block, 'error_code'))) {
        is($got, get_indexed_value($name, $code, $req_idx, $need_array),
           "$name - status code ok");
    } else {
        is($got, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers {
    my ($block, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;
    if (defined(my $v = sec($block, 'raw_response_headers_like'))) {
        my $pat = get_indexed_value($name, $v, $req_idx, $need_array);
        like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined(my $v = sec($block, 'raw_response_headers_unlike'))) {
        my $pat = get_indexed_value($name, $v, $req_idx, $need_array);
        unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }
}

# "Name: value" lines ("!Name" = must be absent); a repeated name keeps the
# last value, as Test::Nginx's hash does.
sub parse_headers {
    my ($text) = @_;
    my (%h, @order);
    for my $line (split /\n/, $text // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        my ($key, $val);
        if ($line =~ s/^!\s*//) {
            $key = $line;
        } else {
            ($key, $val) = split /\s*:\s*/, $line, 2;
        }
        push @order, $key unless exists $h{$key};
        $h{$key} = $val;
    }
    return map { [$_, $h{$_}] } @order;
}

sub check_response_headers {
    my ($block, $res, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;
    if (defined(my $spec = sec($block, 'response_headers'))) {
        for my $kv (parse_headers(get_indexed_value($name, $spec, $req_idx, $need_array))) {
            my ($key, $val) = @$kv;
            if (!defined $val) {
                unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            my $actual = $res ? $res->header($key) : undef;
            is($actual // '', $val, "$name - header $key ok");
        }
    } elsif (defined(my $like = sec($block, 'response_headers_like'))) {
        for my $kv (parse_headers(get_indexed_value($name, $like, $req_idx, $need_array))) {
            my ($key, $val) = @$kv;
            my $actual = $res ? $res->header($key) : undef;
            like($actual // '', qr/^$val$/, "$name - header $key like ok");
        }
    }
}

sub run_body_filter {
    my ($block, $filter, $content) = @_;
    my $name = $block->name;
    return $filter->($content) if ref $filter eq 'CODE';
    bail_out("$name - the --- response_body_filters section only supports "
             . "subroutine reference values and string values") if ref $filter;
    my %builtin = (
        md5_hex  => \&Digest::MD5::md5_hex,
        sha1_hex => \&Digest::SHA::sha1_hex,
        uc => sub { uc shift }, lc => sub { lc shift },
        ucfirst => sub { ucfirst shift }, lcfirst => sub { lcfirst shift },
        length => sub { length shift },
    );
    my $f = $builtin{$filter}
        or bail_out("$name - unknown filter, \"$filter\", specified in the "
                    . "--- response_body_filters section");
    return $f->($content);
}

sub transform_response_body {
    my ($block, $res, $req_idx) = @_;
    my $filters = sec($block, 'response_body_filters');
    return unless defined $filters && $res && defined $res->content;
    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//g;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    if (@$filters && ref $filters->[0] eq 'ARRAY') {     # one list per request
        $filters = $filters->[$req_idx];
        bail_out($block->name . " - the ---response_body_filters two-dimensional "
                 . "array unmatch the specified request($req_idx)")
            unless defined $filters;
    }
    my $content = $res->content;
    $content = run_body_filter($block, $_, $content) for @$filters;
    $res->content($content);
}

sub check_response_body {
    my ($block, $res, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;

    my $body = sec($block, 'response_body');
    my $body_eval = sec($block, 'response_body_eval');
    if (defined $body || defined $body_eval) {
        my $expected;
        if ($body_eval) {
            diag "$name - response_body_eval is DEPRECATED. Use response_body eval instead.";
            $expected = eval get_indexed_value($name, $body_eval, $req_idx, $need_array);
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($name, $body, $req_idx, $need_array);
        }
        if (my $charset = sec($block, 'charset')) {
            Encode::from_to($expected, 'UTF-8', $charset);
        }
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        my $what = "(repeated req $repeated_req_idx, req $req_idx)";
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like $what");
        } else {
            is_str($content, $expected,
                   "$name - response_body - response is expected $what");
        }
    } else {
        my ($patterns, $type);
        if (defined(my $l = sec($block, 'response_body_like'))) {
            ($patterns, $type) = ($l, 'like');
        } elsif (defined(my $u = sec($block, 'response_body_unlike'))) {
            ($patterns, $type) = ($u, 'unlike');
        }
        if ($type) {
            my $pat = get_indexed_value($name, $patterns, $req_idx, $need_array);
            $pat =~ s/\$ServerPort\b/$ServerPort/g;
            $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            my $desc = "$name - response_body_$type - response is expected ("
                       . trim_summary($content) . ")";
            if ($type eq 'like') { like($content, qr/$pat/s, $desc) }
            else { unlike($content, qr/$pat/s, $desc) }
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $content, $req_idx, $repeated_req_idx, 0);
    }
}

sub value_contains {
    my ($val, $str) = @_;
    return $val =~ /\Q$str\E/ if !ref $val || ref $val eq 'Regexp';
    if (ref $val eq 'ARRAY') {
        for (@$val) { return 1 if value_contains($_, $str) }
    }
    return 0;
}

# A section value as a list of patterns (one per line, or an eval'ed array
# of strings and qr// objects).
sub pattern_list {
    my ($pats) = @_;
    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : index($line, $pat) >= 0;
}

sub check_error_log {
    my ($block, $res, $dry_run, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $lines;
    my %check_level = (alert => 1, crit => 1, emerg => 1);

    my $grep_pats = sec($block, 'grep_error_log');
    my $grep_pat = ref $grep_pats eq 'ARRAY' ? $grep_pats->[$repeated_req_idx] : $grep_pats;
    if (!defined $grep_pats && defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }
    if (defined $grep_pat) {
        my $expected = sec($block, 'grep_error_log_out');
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
            unless defined $expected;
        $expected = $expected->[$repeated_req_idx] if ref $expected eq 'ARRAY';
        $lines ||= error_log_data();
        my $matched = '';
        for my $line (@$lines) {
            my $ok = ref $grep_pat ? $line =~ /$grep_pat/ : $line =~ /\Q$grep_pat\E/;
            $matched .= "$&\n" if $ok && $& !~ /\n/;
        }
        my $desc = "$name - grep_error_log_out (req $repeated_req_idx)";
        if (ref $expected eq 'Regexp') { like($matched, $expected, $desc) }
        else { is_str($matched, $expected, $desc) }
    }

    if (defined(my $pats = sec($block, 'error_log'))) {
        for my $lvl (keys %check_level) {
            delete $check_level{$lvl} if value_contains($pats, "[$lvl");
        }
        $pats = pattern_list($pats);
        $lines ||= error_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next if !defined $pat || !line_matches($line, $pat);
                pass("$name - pattern \"$pat\" matches a line in error.log (req $repeated_req_idx)");
                undef $pat;
            }
        }
        for my $pat (grep { defined } @$pats) {
            fail("$name - pattern \"$pat\" should match a line in error.log (req $repeated_req_idx)");
        }
    }

    if (defined(my $pats = sec($block, 'no_error_log'))) {
        for my $lvl (keys %check_level) {
            delete $check_level{$lvl} if value_contains($pats, "[$lvl");
        }
        $pats = pattern_list($pats);
        $lines ||= error_log_data();
        my %found;
        for my $i (0 .. $#$lines) {
            my $line = $lines->[$i];
            for my $pat (grep { defined } @$pats) {
                next unless line_matches($line, $pat);
                # a pattern matching several lines fails several times
                Test::More->builder->no_ending(1) if $found{$pat}++;
                my @more = @$lines[$i + 1 .. min($i + 9, $#$lines)];
                fail("$name - pattern \"" . fmt_str($pat) . "\" should not match any "
                     . "line in error.log but matches line \"" . fmt_str($line)
                     . "\" (req $repeated_req_idx)\n" . join('', @more));
            }
        }
        for my $pat (grep { defined && !$found{$_} } @$pats) {
            pass("$name - pattern \"" . fmt_str($pat) . "\" does not match a line "
                 . "in error.log (req $repeated_req_idx)");
        }
    }

    return if $dry_run;
    $lines ||= error_log_data();
    for my $line (@$lines) {
        if ($line =~ /\[(alert|crit|emerg)\]/ && $check_level{$1}) {
            my $ln = fmt_str($line);
            if ($Strict && !$InMustDie) {
                Test::More->builder->no_ending(1);
                fail("$name - SITEFLOW_TEST_STRICT: unexpected [$1] line: $ln");
            } else {
                warn "WARNING: $name - $ln\n";
            }
        }
        if ($line =~ /\bAssertion .*?failed\b/) {
            Test::More->builder->no_ending(1);
            chomp(my $l = $line);
            fail("$name - $l\n");
        }
    }
}

sub check_shutdown_error_log {
    my ($block, $dry_run) = @_;
    my $name = $block->name;
    my $lines;

    if (defined(my $no = sec($block, 'no_shutdown_error_log'))) {
        my $pats = pattern_list($no);
        my %found;
        $lines ||= error_log_data();
        for my $line (@$lines) {
            for my $pat (grep { defined } @$pats) {
                next unless line_matches($line, $pat);
                Test::More->builder->no_ending(1) if $found{$pat}++;
                SKIP: {
                    Test::More::skip("$name - no_shutdown_error_log - tests skipped due to $dry_run", 1)
                        if $dry_run;
                    fail("$name - pattern \"" . fmt_str($pat) . "\" should not match any "
                         . "line in error.log but matches line \"" . fmt_str($line) . "\"");
                }
            }
        }
        for my $pat (grep { defined && !$found{$_} } @$pats) {
            SKIP: {
                Test::More::skip("$name - no_shutdown_error_log - tests skipped due to $dry_run", 1)
                    if $dry_run;
                pass("$name - pattern \"" . fmt_str($pat) . "\" does not match a line in error.log");
            }
        }
    }

    my $pats = pattern_list(sec($block, 'shutdown_error_log'));
    $lines ||= error_log_data();
    for my $line (@$lines) {
        for my $pat (@$pats) {
            next if !defined $pat || !line_matches($line, $pat);
            SKIP: {
                Test::More::skip("$name - shutdown_error_log - tests skipped due to dry_run", 1)
                    if $dry_run;
                pass("$name - pattern \"$pat\" matches a line in error.log");
            }
            undef $pat;
        }
    }
    for my $pat (grep { defined } @$pats) {
        SKIP: {
            Test::More::skip("$name - shutdown_error_log - tests skipped due to dry_run", 1)
                if $dry_run;
            fail("$name - pattern \"$pat\" should match a line in error.log");
        }
    }
}

# ---------------------------------------------------------------------------
# One-shot mock TCP server (--- tcp_listen)
# ---------------------------------------------------------------------------

sub start_tcp_server {
    my ($block) = @_;
    my $name = $block->name;
    my $target = sec($block, 'tcp_listen');
    my $reply = sec($block, 'tcp_reply');
    bail_out("$name - no --- tcp_reply specified but --- tcp_listen is specified")
        if !defined $reply && !defined $block->tcp_shutdown;

    my $req_len = sec($block, 'tcp_query_len');
    my $query_file;
    if (defined $block->tcp_query || defined $req_len) {
        $req_len //= length sec($block, 'tcp_query');
        (undef, $query_file) = tempfile('siteflow-tcp-query-XXXXXX',
                                        TMPDIR => 1, UNLINK => 1);
    }

    my ($sock, $err);
    for my $try (1 .. 30) {
        if ($target =~ /^\d+$/) {
            $sock = IO::Socket::INET->new(LocalHost => $ServerAddr, LocalPort => $target,
                                          Proto => 'tcp', ReuseAddr => 1, Listen => 5);
        } elsif ($target =~ /\S+\.sock$/) {
            unlink $target if -e $target;
            $sock = IO::Socket::UNIX->new(Local => $target, Type => SOCK_STREAM,
                                          Listen => 5);
        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }
        last if $sock;
        $err = $!;
        last unless $err =~ /address already in use/i;
        warn "WARNING: failed to create the tcp listening socket: $err\n";
        sleep 1;
    }
    bail_out("$name - failed to create the tcp listening socket: $err") unless $sock;

    my $pid = fork;
    bail_out("$name - fork() failed: $!") unless defined $pid;
    if ($pid) {
        $TcpServerPid = $pid;
        return ($sock, $query_file);
    }

    # --- child: serve one connection, then exit without running END blocks
    eval {
        my $client;
        until ($client = $sock->accept) {
            warn "WARNING: $name - TCP server: failed to accept: $!\n";
            sleep $Sleep;
        }
        my ($no_read, $no_write);
        if (defined(my $how = sec($block, 'tcp_shutdown'))) {
            my $delay = parse_time(sec($block, 'tcp_shutdown_delay'));
            sleep $delay if $delay;
            $client->shutdown($how);
            if ($how == 0 || $how == 2) { $no_read = 1 } else { $no_write = 1 }
        }
        my $buf = '';
        unless ($no_read) {
            while (1) {
                my $ret = $client->recv(my $chunk, 4096);
                die "failed to receive: $!\n" unless defined $ret;
                $buf .= $chunk;
                if ($query_file) {
                    open my $out, '>', $query_file or die "cannot open $query_file: $!\n";
                    binmode $out;
                    print $out $buf;
                    close $out;
                }
                last if !$req_len || length($buf) >= $req_len || $chunk eq '';
            }
        }
        my $delay = parse_time(sec($block, 'tcp_reply_delay'));
        sleep $delay if $delay;
        if (!$no_write && defined $reply) {
            $reply = $reply->($buf) if ref $reply eq 'CODE';
            for my $r (ref $reply eq 'ARRAY' ? @$reply : ($reply)) {
                defined $client->send($r)
                    or warn "WARNING: tcp server failed to send reply: $!\n";
            }
        }
        if (defined $block->tcp_no_close) {
            sleep 1 while 1;
        }
        $client->close;
        1;
    } or warn "WARNING: $name - TCP server: $@";
    POSIX::_exit(0);
}

sub run_tcp_server_tests {
    my ($block, $sock, $query_file) = @_;
    return unless defined $sock;
    my $name = $block->name;
    my $buf = '';
    if ($query_file && open my $in, '<', $query_file) {
        binmode $in;
        $buf = do { local $/; <$in> } // '';
        close $in;
    }
    unlink $query_file if $query_file;
    is_str($buf, sec($block, 'tcp_query'), "$name - tcp_query ok")
        if defined $block->tcp_query;
    Test::More::is(length($buf), sec($block, 'tcp_query_len'),
                   "$name - TCP query length ok")
        if defined $block->tcp_query_len;
}

END {
    return if $$ != $MainPid;
    local $?;    # keep the test script's exit status
    cleanup();
    if ($UseValgrind || !$NoClean) {
        my $pid = read_pid_file();
        if ($pid && is_running($pid)) {
            kill_process($pid, 1, 'END');
        } elsif (-f $PidFile) {
            unlink $PidFile;
        }
    }
    check_prev_block_shutdown_error_log();
}

1;
