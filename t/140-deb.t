# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the Debian package installs like Debian's own nginx modules.
# Built from this tree (t/tools/build-deb.sh, what "make deb" runs), it
# installs with apt-get; it puts the module in /usr/lib/nginx/modules/ and
# enables it in /etc/nginx/modules-enabled/, so Debian's /usr/sbin/nginx
# runs a configuration that uses the module with no load_module line of its
# own (only "include /etc/nginx/modules-enabled/*.conf;"): a signed Ship
# API call passes the guard, an unsigned one is refused, and the admin
# metrics count both; t/020-hmac.t and t/060-admin.t pass against the
# installed module.  Purged, it leaves nothing enabled and nginx still
# starts.
#
# The machine's packages change only for the duration of the test: it
# skips when the package is installed already (it would not be restored),
# and purges what it installed, also on failure.  Needs root, apt-get,
# dpkg-buildpackage and dh_nginx (make deps).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Siteflow::Flow;
use Siteflow::Sign;

my $PKG = 'libnginx-mod-http-siteflow';
my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';

plan skip_all => 'installs a package: needs root' if $> != 0;
for my $c (qw(apt-get dpkg-buildpackage dh_nginx)) {
    plan skip_all => "$c is missing (make deps installs it)"
        unless grep { -x "$_/$c" } split /:/, $ENV{PATH};
}
plan skip_all => "tests Debian's nginx, not $bin" if $bin ne '/usr/sbin/nginx';
plan skip_all => 'not under valgrind (make test runs it)'
    if $ENV{TEST_NGINX_USE_VALGRIND};
plan skip_all => "$PKG is installed already: the test would remove it"
    if `dpkg-query -W -f='\${Status}' $PKG 2>/dev/null` =~ /installed/;

my $top = $Siteflow::Flow::ROOT;
# the machine's own configuration: it must pass after as it did before
system("$bin -t -q >/dev/null 2>&1");
my $machine_ok = $? == 0;
my $tmp = tempdir('siteflow-deb-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $installed;
my $prefix;

sub apt {
    my $out = `DEBIAN_FRONTEND=noninteractive apt-get -y -q \\
               -o DPkg::Lock::Timeout=120 @_ 2>&1`;
    return ($? == 0, $out);
}

sub nginx_stop_prefix {
    my ($p) = @_;
    return unless $p && -s "$p/logs/nginx.pid";
    system("$bin -c $p/conf/nginx.conf -s stop >/dev/null 2>&1");
    wait_until('nginx stopped', sub { !-e "$p/logs/nginx.pid" }, 10);
}

END {
    nginx_stop_prefix($prefix);
    apt('purge', $PKG) if $installed;
}

# build
my $build = `LINTIAN=0 $top/t/tools/build-deb.sh $tmp/build 2>&1`;
is($?, 0, 'the package builds (t/tools/build-deb.sh)') or diag $build;
my ($deb) = glob "$tmp/build/${PKG}_*.deb";
ok($deb, 'a .deb was built') or BAIL_OUT('no package');
like($deb, qr{/${PKG}_\d[\w.+~]*_[a-z0-9]+\.deb$},
     'named libnginx-mod-http-siteflow_<version>_<arch>.deb');

my $control = `dpkg-deb -f $deb Depends`;
like($control, qr/\bnginx-abi-[\d.]+-\d+\b/, 'Depends on the nginx ABI');
like($control, qr/\blibjansson4\b/, 'Depends on the shared libraries');

# install
$installed = 1;
my ($ok, $out) = apt('install', $deb);
ok($ok, 'apt-get install ./...deb') or diag $out;
ok(-f '/usr/lib/nginx/modules/ngx_http_siteflow_module.so',
   'the module is in /usr/lib/nginx/modules/');
my $avail = '/usr/share/nginx/modules-available/mod-http-siteflow.conf';
my ($load) = do { local @ARGV = ($avail); <> } // '';
like($load, qr{^load_module modules/ngx_http_siteflow_module\.so;$},
     "$avail loads it");
my ($link) = glob '/etc/nginx/modules-enabled/*mod-http-siteflow.conf';
ok($link && -l $link && readlink($link) eq $avail,
   'enabled in /etc/nginx/modules-enabled/') or diag($link // 'no link');
ok(-f "/usr/share/doc/$PKG/examples/printnow-siteflow.conf",
   'conf-examples under /usr/share/doc/');
ok(-f "/usr/share/doc/$PKG/directives.md.gz", 'docs under /usr/share/doc/');
ok(-f "/usr/share/doc/$PKG/img/dashboard.png",
   'the pictures of the docs beside them (admin-api.md: img/dashboard.png)');

# run Debian's nginx with a configuration without load_module
my $port = MockUpstream::free_port();
$prefix = "$tmp/nginx";
mkdir $prefix;
chmod 0755, $tmp, $prefix;      # the workers (user nobody) use the spool
mkdir "$prefix/$_" for qw(conf logs);
sub write_conf {
    my ($server) = @_;
    open my $fh, '>', "$prefix/conf/nginx.conf" or die $!;
    print $fh <<"EOC";
include /etc/nginx/modules-enabled/*.conf;
daemon on;
master_process on;
worker_processes 1;
error_log $prefix/logs/error.log info;
pid $prefix/logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $prefix/client_body_temp;
    proxy_temp_path $prefix/proxy_temp;
    fastcgi_temp_path $prefix/fastcgi_temp;
    uwsgi_temp_path $prefix/uwsgi_temp;
    scgi_temp_path $prefix/scgi_temp;
$server
}
EOC
    close $fh;
}

write_conf(<<"EOC");
    siteflow_zone sf:1m;
    siteflow_spool $prefix/spool;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        siteflow_storefront deb;
        location /ship/ {
            siteflow_verify_signature on;
            siteflow_partner p1 $Siteflow::Sign::KEY;
            proxy_pass http://127.0.0.1:$port/backend/;
        }
        location /backend/ { return 200 "shipped\\n"; }
        location /admin/ { siteflow_admin; }
    }
EOC
# Debian's prefix (/usr/share/nginx), where modules/ is /usr/lib/nginx/modules
$out = `$bin -c $prefix/conf/nginx.conf -t 2>&1`;
is($?, 0, 'nginx -t: the module is loaded through modules-enabled')
    or diag $out;
$out = `$bin -c $prefix/conf/nginx.conf 2>&1`;
is($?, 0, 'nginx starts') or diag $out;
is(wait_until('nginx answers', sub {
       http_request(port => $port, method => 'GET', path => '/admin/metrics',
                    host => '127.0.0.1', timeout => 1)->{status} == 200 },
       10), '',
   'admin metrics answer');

my $nonce = Siteflow::Sign::nonce();
my $r = http_request(port => $port, method => 'POST', path => '/ship/x',
    body => '{}', headers => {
        'Content-Type' => 'application/json',
        'X-SiteFlow-Nonce' => $nonce,
        'X-SiteFlow-Signature' =>
            'p1:' . Siteflow::Sign::sig($Siteflow::Sign::KEY, $nonce) });
is($r->{status}, 200, 'a signed Ship API call passes the guard');
is($r->{body}, "shipped\n", 'and reaches the shipping service');
$r = http_request(port => $port, method => 'POST', path => '/ship/x',
                  body => '{}', headers => {
                      'Content-Type' => 'application/json' });
isnt($r->{status}, 200, 'an unsigned one is refused');
$r = http_request(port => $port, method => 'GET', path => '/admin/metrics',
                  host => '127.0.0.1');
like($r->{body}, qr/^siteflow_signature_checks_total\{result="ok"\} 1$/m,
     'the metrics count the signed call');
like($r->{body}, qr/^siteflow_signature_checks_total\{result="missing"\} 1$/m,
     'and the unsigned one');
nginx_stop_prefix($prefix);

# a part of the suite against the installed module (the suite's own
# configurations, which load it by path: the installed .so, not t/build's)
my $so = '/usr/lib/nginx/modules/ngx_http_siteflow_module.so';
my @part = map { "t/$_.t" } qw(020-hmac 060-admin);
my $inc = join ' ', map { "-I$_" } grep { !ref && -d } @INC;
$out = `cd $top && TEST_NGINX_BINARY=$bin TEST_NGINX_LOAD_MODULES=$so \\
        prove $inc @part 2>&1`;
is($?, 0, "@part pass against the installed $so") or diag $out;

# remove
($ok, $out) = apt('purge', $PKG);
ok($ok, 'apt-get purge') or diag $out;
$installed = 0 if $ok;
my @left = glob '/etc/nginx/modules-enabled/*mod-http-siteflow*';
is("@left", '', 'nothing of it left in modules-enabled');
ok(!-e '/usr/lib/nginx/modules/ngx_http_siteflow_module.so',
   'the module is gone');
write_conf(<<"EOC");
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "ok\\n"; }
    }
EOC
$out = `$bin -c $prefix/conf/nginx.conf 2>&1`;
is($?, 0, 'nginx starts without the package') or diag $out;
is(wait_until('nginx answers', sub {
       http_request(port => $port, method => 'GET', path => '/',
                    timeout => 1)->{status} == 200 }, 10), '',
   'and answers');
nginx_stop_prefix($prefix);
SKIP: {
    skip "the machine's /etc/nginx/nginx.conf failed nginx -t before", 1
        unless $machine_ok;
    $out = `$bin -t -q 2>&1`;
    is($?, 0, "nginx -t of the machine's /etc/nginx/nginx.conf passes")
        or diag $out;
}

done_testing();
