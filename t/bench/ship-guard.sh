#!/usr/bin/env bash
# Benchmark: the Ship API guard vs the same location without it.
#
# One nginx (1 worker) with two locations that both end in empty_gif, so
# the content handler is identical and the access phase really runs:
#   /plain/  no guard              (baseline)
#   /ship/   siteflow_verify_signature on
# wrk (1 thread) sends POSTs that each carry a fresh, correctly signed
# nonce, taken from a file generated beforehand (wrk's Lua has no HMAC);
# the baseline run sends exactly the same requests.  nginx is pinned to
# CPU 0 and wrk to CPU 1.  Runs alternate baseline, guarded, baseline,
# guarded; the ratio is the guarded rate over the baseline rate of the same
# round, reported with wrk's latencies.  The instruction count per request
# (callgrind, t/bench/guard-callgrind.sh) is the noise-free companion.
# After the runs, an unsigned request must still be refused (401).
#
#   t/bench/ship-guard.sh [SECONDS] [CONNECTIONS] [ROUNDS]
#
# Several short rounds and the median of their ratios: the machine is a
# shared VM whose speed drifts between runs of a few seconds.

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-5}
conns=${2:-32}
rounds=${3:-4}
module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
port=${BENCH_PORT:-8190}
out=$top/t/bench/out
mkdir -p "$out"

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }

prefix=$(mktemp -d /tmp/siteflow-bench.XXXXXX)
mkdir -p "$prefix/logs" "$prefix/conf"

cat > "$prefix/conf/nginx.conf" <<CONF
load_module $module;
worker_processes 1;
worker_cpu_affinity 01;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    siteflow_zone sf:64m;
    server {
        listen 127.0.0.1:$port;
        location /plain/ {
            empty_gif;
        }
        location /ship/ {
            siteflow_verify_signature on;
            siteflow_signature_log_level info;
            siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
            empty_gif;
        }
    }
}
CONF

stop() { "$nginx" -p "$prefix/" -c conf/nginx.conf -s stop 2>/dev/null || true; }
trap stop EXIT
"$nginx" -p "$prefix/" -c conf/nginx.conf
sleep 0.3

# fresh signed nonces, one file per guarded round (upper bound 90k req/s)
n=$(( secs * 90000 ))
for round in $(seq 1 "$rounds"); do
perl -MDigest::SHA=hmac_sha256_base64 -e '
    my ($n, $key) = @ARGV;
    for my $i (1 .. $n) {
        my $nonce = sprintf("bench%d-%08d-%x", $$, $i, int(rand(1 << 30)));
        my $s = hmac_sha256_base64($nonce, $key); $s .= "=" while length($s) % 4;
        print "$nonce $s\n";
    }' "$n" 0123456789abcdef0123456789abcdef01234567 > "$prefix/nonces.$round"
done

cat > "$prefix/signed.lua" <<'LUA'
local list = {}
local idx = 0
function init(args)
    local f = assert(io.open(args[1]))
    for line in f:lines() do
        local nonce, sig = line:match("^(%S+) (%S+)$")
        list[#list + 1] = { nonce, sig }
    end
    f:close()
end
function request()
    idx = idx + 1
    if idx > #list then idx = 1 end
    local p = list[idx]
    return wrk.format("GET", nil, {
        ["Content-Type"] = "application/json",
        ["X-SiteFlow-Nonce"] = p[1],
        ["X-SiteFlow-Signature"] = "p1:" .. p[2]
    })
end
LUA

run() {  # run NAME PATH ROUND
    taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency \
        -s "$prefix/signed.lua" "http://127.0.0.1:$port$2" -- "$prefix/nonces.$3" \
        > "$out/guard-$1.txt"
    rps=$(awk '/Requests\/sec/ { print $2 }' "$out/guard-$1.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$out/guard-$1.txt")
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$out/guard-$1.txt")
    echo "$1 $rps $p99 ${non2xx:-0}"
}

for round in $(seq 1 "$rounds"); do
    run "base$round" /plain/x "$round"
    run "guard$round" /ship/shipment "$round"
done > "$out/guard-summary.txt"

unsigned=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' \
           "http://127.0.0.1:$port/ship/shipment")

awk -v unsigned="$unsigned" -v rounds="$rounds" '
    { rps[$1] = $2; p99[$1] = $3; bad[$1] = $4 }
    END {
        printf "%-8s %12s %10s %8s\n", "run", "req/s", "p99", "non-2xx"
        for (i = 1; i <= rounds; i++) {
            b = "base" i; g = "guard" i
            printf "%-8s %12s %10s %8s\n", b, rps[b], p99[b], bad[b]
            printf "%-8s %12s %10s %8s\n", g, rps[g], p99[g], bad[g]
            r[i] = rps[g] / rps[b]; nbad += bad[g]
        }
        # median of the per-round ratios (insertion sort, few rounds)
        for (i = 2; i <= rounds; i++)
            for (j = i; j > 1 && r[j - 1] > r[j]; j--) {
                t = r[j]; r[j] = r[j - 1]; r[j - 1] = t
            }
        m = (rounds % 2) ? r[(rounds + 1) / 2] \
                         : (r[rounds / 2] + r[rounds / 2 + 1]) / 2
        printf "ratio guarded/baseline per round:"
        for (i = 1; i <= rounds; i++) printf " %.3f", r[i]
        printf "\nmedian ratio %.3f (target >= 0.90)\n", m
        printf "unsigned request during the run answered: %s (expected 401)\n", unsigned
        if (nbad > 0)
            print "WARNING: guarded runs had non-2xx answers (nonces exhausted?)"
        if (unsigned != 401) exit 1
    }' "$out/guard-summary.txt"
