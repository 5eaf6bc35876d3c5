# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: the admin console works in a real browser against a running
# nginx: log entries newest first with the token redacted, an entry
# expands with the keyboard and shows the request JSON pretty-printed and
# the response, a failed job can be retried, Clear Log asks first and
# empties this storefront's log, and a phone-sized screen needs no
# horizontal scrolling.  The screenshot goes to t/build/console.png;
# SITEFLOW_SCREENSHOT=docs/console.png refreshes the one in docs/.
#
# Headless Chromium (Debian's "chromium") driven over the DevTools
# protocol by t/browser/console-cdp.js (Node's built-in WebSocket); the
# file is skipped when either is missing.  It is not a Test::Nginx data
# file: t/browser/console-test.sh starts its own nginx.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;

my $chromium = $ENV{CHROMIUM} || '/usr/bin/chromium';

plan skip_all => "no $chromium (apt-get install chromium)" unless -x $chromium;
plan skip_all => 'no node with a built-in WebSocket'
    unless system('node --experimental-websocket --no-warnings -e '
                  . '"process.exit(typeof WebSocket === \'function\' ? 0 : 1)"'
                  . ' >/dev/null 2>&1') == 0;

my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                              LocalPort => 0, Proto => 'tcp')
    or die "no free port: $!";
my $port = $s->sockport;
close $s;

my $shot = $ENV{SITEFLOW_SCREENSHOT} || 't/build/console.png';
system('mkdir', '-p', 't/build');

my @out = `t/browser/console-test.sh $port $shot 2>&1`;
my $rc = $?;

my $tests = 0;
for my $line (@out) {
    if ($line =~ /^(not )?ok \d+ - (.*)$/) {
        ok(!$1, $2);
        $tests++;
    } elsif ($line !~ /^1\.\.\d+$/) {
        diag($line);
    }
}

ok($rc == 0, 'the browser test script succeeded');
ok($tests >= 10, "the browser test ran its checks ($tests)");

done_testing();
