#!/usr/bin/env bash
# Instructions per request of the Ship API guard, counted by callgrind:
# a single-process nginx runs under valgrind --tool=callgrind three times,
# with 0 requests (start-up and shutdown only), N unguarded requests and N
# signed requests to a guarded location (both locations end in empty_gif).
# Per-request cost = (total - start-up) / N.  Deterministic for a given
# binary and input, unlike wall-clock rates on a shared machine.
#
#   t/bench/guard-callgrind.sh [N]

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-2000}
module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
port=${BENCH_PORT:-8191}
out=$top/t/bench/out
mkdir -p "$out"

prefix=$(mktemp -d /tmp/siteflow-cg.XXXXXX)
mkdir -p "$prefix/logs" "$prefix/conf"

cat > "$prefix/conf/nginx.conf" <<CONF
load_module $module;
daemon off;
master_process off;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 1000000;
    siteflow_zone sf:16m;
    server {
        listen 127.0.0.1:$port;
        location /plain/ {
            empty_gif;
        }
        location /ship/ {
            siteflow_verify_signature on;
            siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
            empty_gif;
        }
    }
}
CONF

# one keep-alive connection, N sequential requests, each with a fresh nonce
client() {  # client PATH COUNT
    perl -MIO::Socket::INET -MDigest::SHA=hmac_sha256_base64 -e '
        my ($port, $path, $n) = @ARGV;
        my $key = "0123456789abcdef0123456789abcdef01234567";
        my $s;
        for (1 .. 600) {
            $s = IO::Socket::INET->new("127.0.0.1:$port") and last;
            select undef, undef, undef, 0.1;
        }
        die "bench: nginx did not start under callgrind\n" unless $s;
        for my $i (1 .. $n) {
            my $nonce = sprintf("cg%d-%08d", $$, $i);
            my $sig = hmac_sha256_base64($nonce, $key);
            $sig .= "=" while length($sig) % 4;
            print $s "GET $path HTTP/1.1\r\nHost: x\r\n"
                   . "X-SiteFlow-Nonce: $nonce\r\n"
                   . "X-SiteFlow-Signature: p1:$sig\r\n\r\n";
            my $head = "";
            while ($head !~ /\r\n\r\n/) {
                sysread($s, $head, 1, length $head) or die "eof";
            }
            $head =~ m{^HTTP/1.1 200 } or die "unexpected: $head";
            my ($len) = $head =~ /Content-Length: (\d+)/i;
            my $body = "";
            while (length($body) < $len) {
                sysread($s, $body, $len - length $body, length $body) or die;
            }
        }' "$port" "$1" "$2"
}

measure() {  # measure NAME PATH COUNT
    rm -f "$out/callgrind.$1"
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$1" \
        "$nginx" -p "$prefix/" -c conf/nginx.conf 2>/dev/null &
    local vg=$!
    if ! client "$2" "$3"; then
        kill -KILL "$vg"
        exit 1
    fi
    kill -QUIT "$vg"
    wait "$vg" || true
    awk '/^summary:|^totals:/ { print $2; exit }' "$out/callgrind.$1"
}

idle=$(measure idle /plain/x 0)
base=$(measure base /plain/x "$n")
guard=$(measure guard /ship/x "$n")

awk -v idle="$idle" -v base="$base" -v guard="$guard" -v n="$n" 'BEGIN {
    b = (base - idle) / n; g = (guard - idle) / n
    printf "instructions per request: unguarded %.0f, guarded %.0f\n", b, g
    printf "guard adds %.0f instructions per request; ratio unguarded/guarded %.3f\n", g - b, b / g
}' | tee "$out/guard-callgrind.txt"
rm -rf "$prefix"
