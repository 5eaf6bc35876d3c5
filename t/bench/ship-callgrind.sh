#!/usr/bin/env bash
# Instructions per Ship API request, counted by callgrind (the noise-free
# companion of t/bench/ship-api.sh): a single-process nginx runs under
# valgrind --tool=callgrind, its one location proxying (keep-alive) to a
# plain nginx backend, once with 1 request (start-up, shutdown and what
# the first request sets up once: OpenSSL's DRBG, the upstream connection)
# and once with 1 + N signed POSTs of t/unit/ship/seed-example.json, each
# with a fresh nonce, sent one after the other on one keep-alive
# connection.  Per-request cost = (total - total of the first) / N, for
# each configuration:
#   plain   nginx without the module
#   guard   siteflow_verify_signature on
#   ship    siteflow_verify_signature on + siteflow_shipment_validate on
# (and guard0/ship0 for BEFORE_MODULE, as in ship-api.sh).  The callgrind
# files stay in t/bench/out/callgrind.ship-api.<config> for
# callgrind_annotate.
#
#   t/bench/ship-callgrind.sh [N]          (default 2000)

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-2000}
module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
before=${BEFORE_MODULE:-}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
port=${BENCH_PORT:-8292}
bport=$((port + 1))
key=0123456789abcdef0123456789abcdef01234567
out=$top/t/bench/out
mkdir -p "$out"

P=$(mktemp -d /tmp/siteflow-ship-cg.XXXXXX)
mkdir -p "$P/backend/logs" "$P/t/logs"

cleanup() {
    if [ -f "$P/backend/logs/nginx.pid" ]; then
        kill -QUIT "$(cat "$P/backend/logs/nginx.pid")" 2>/dev/null || true
    fi
    rm -rf "$P"
}
trap cleanup EXIT

cat > "$P/backend/nginx.conf" <<CONF
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$bport;
        location / {
            default_type application/json;
            return 200 '{"status":{"code":"ok"},"shipmentId":"5976029c770e36a13e25a85e"}';
        }
    }
}
CONF
"$nginx" -p "$P/backend/" -c nginx.conf

conf() {
    local load="" guard="" so
    case $1 in
    plain)  ;;
    guard)  so=$module; guard="siteflow_verify_signature on;" ;;
    ship)   so=$module; guard="siteflow_verify_signature on; siteflow_shipment_validate on;" ;;
    guard0) so=$before; guard="siteflow_verify_signature on;" ;;
    ship0)  so=$before; guard="siteflow_verify_signature on; siteflow_shipment_validate on;" ;;
    esac
    if [ -n "$guard" ]; then
        load="load_module $so;"
        guard="$guard siteflow_partner p1 $key;"
    fi
    cat > "$P/t/nginx.conf" <<CONF
$load
daemon off;
master_process off;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 1000000;
    ${load:+siteflow_zone sf:16m;}
    upstream shipping {
        server 127.0.0.1:$bport;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$port;
        location /siteflow/ship/ {
            $guard
            proxy_pass http://shipping;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
}

client() {  # client COUNT
    perl -MIO::Socket::INET -MDigest::SHA=hmac_sha256_base64 -e '
        my ($port, $n, $key, $file) = @ARGV;
        open my $fh, "<", $file or die; local $/; my $body = <$fh>; close $fh;
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
            print $s "POST /siteflow/ship/shipment HTTP/1.1\r\nHost: x\r\n"
                   . "Content-Type: application/json\r\n"
                   . "Content-Length: " . length($body) . "\r\n"
                   . "X-SiteFlow-Nonce: $nonce\r\n"
                   . "X-SiteFlow-Signature: p1:$sig\r\n\r\n$body";
            my $head = "";
            while ($head !~ /\r\n\r\n/) {
                sysread($s, $head, 1, length $head) or die "eof";
            }
            $head =~ m{^HTTP/1.1 200 } or die "unexpected: $head";
            my ($len) = $head =~ /Content-Length: (\d+)/i;
            my $rest = "";
            while (length($rest) < $len) {
                sysread($s, $rest, $len - length $rest, length $rest) or die;
            }
        }' "$port" "$1" "$key" "$top/t/unit/ship/seed-example.json"
}

measure() {  # measure CONFIG COUNT -> total instructions
    local f=$out/callgrind.ship-api.$1 vg i
    [ "$2" -gt 1 ] || f=$f.idle
    conf "$1"
    rm -f "$f"
    valgrind --tool=callgrind --callgrind-out-file="$f" \
        "$nginx" -p "$P/t/" -c nginx.conf 2>/dev/null &
    vg=$!
    if ! client "$2"; then
        kill -KILL "$vg"
        exit 1
    fi
    # QUIT (graceful) now and then, TERM if it does not end in 30 s:
    # valgrind sometimes misses a signal that arrives in epoll_wait
    kill -QUIT "$vg"
    for i in $(seq 1 300); do
        kill -0 "$vg" 2>/dev/null || break
        if [ "$i" = 100 ] || [ "$i" = 200 ]; then kill -TERM "$vg"; fi
        sleep 0.1
    done
    wait "$vg" || true
    awk '/^summary:|^totals:/ { print $2; exit }' "$f"
}

configs="plain guard ship"
if [ -n "$before" ]; then configs="$configs guard0 ship0"; fi

{
echo "== ship-callgrind: $(date -u +%FT%TZ), $n POSTs of seed-example.json"
echo "module: $module${before:+; before: $before}"
for c in $configs; do
    idle=$(measure "$c" 1)
    total=$(measure "$c" $((n + 1)))
    echo "$c $idle $total"
done | awk -v n="$n" '
    { per[$1] = ($3 - $2) / n; order[++k] = $1 }
    END {
        for (i = 1; i <= k; i++)
            printf "%-7s %8.0f instructions per request, plain/this %.3f\n",
                   order[i], per[order[i]], per["plain"] / per[order[i]]
    }'
} | tee "$out/ship-callgrind.txt"
