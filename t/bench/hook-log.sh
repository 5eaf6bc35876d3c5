#!/usr/bin/env bash
# Benchmark: the PrintNow hook with the Site Flow Log on vs off.
#
# One nginx (1 worker, pinned to CPU 0; wrk on CPU 1) with two servers
# that differ only in "siteflow_log": port P logs every call, port P+1
# does not (the baseline).  The hook runs its whole path each time (token,
# body, JSON, index and queue look-ups, the JSON answer); the storefront is
# in manual mode, so the answer is 200 "skipped" and no job is queued:
# the spool's fsync would otherwise hide the cost of the log entry.  Runs
# alternate baseline and logged; the ratio is logged over baseline of the
# same round, the median of the rounds is reported (target >= 0.90).
# After the runs the log must hold entries from the logged server only.
#
#   t/bench/hook-log.sh [SECONDS] [CONNECTIONS] [ROUNDS]

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-5}
conns=${2:-32}
rounds=${3:-4}
module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
port=${BENCH_PORT:-8290}
out=$top/t/bench/out
mkdir -p "$out"

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }

prefix=$(mktemp -d /tmp/siteflow-bench.XXXXXX)
chmod 755 "$prefix"
mkdir -p "$prefix/logs" "$prefix/conf"
cp "$top/t/fixtures/mapping-shop1.json" "$prefix/conf/mapping.json"

server() {  # server PORT NAME on|off
    cat <<SRV
    server {
        listen 127.0.0.1:$1;
        siteflow_storefront $2;
        siteflow_log $3;
        siteflow_api http://127.0.0.1:1/api scheme=oneflow;
        siteflow_credentials 0123456789 FAKE-secret-not-real;
        siteflow_destination acme;
        siteflow_order_trigger manual;
        siteflow_mapping mapping.json;
        siteflow_printnow_api http://127.0.0.1:1;
        siteflow_printnow_credentials pntoken pnkey;
        location = /hook { siteflow_printnow_hook; siteflow_token T0K-bench-not-real; }
        location /admin/ { siteflow_admin; }
    }
SRV
}

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
    siteflow_spool spool;
$(server "$port" logged on)
$(server "$((port + 1))" baseline off)
}
CONF

stop() { "$nginx" -p "$prefix/" -c conf/nginx.conf -s stop 2>/dev/null || true; }
trap 'stop; rm -rf "$prefix"' EXIT
"$nginx" -p "$prefix/" -c conf/nginx.conf
sleep 0.3

cat > "$prefix/hook.lua" <<'LUA'
local n = 0
function request()
    n = n + 1
    return wrk.format("POST", "/hook?token=T0K-bench-not-real",
        { ["Content-Type"] = "application/json" },
        '{"event":"order_created","order":{"id":' .. (100000 + n) ..
        ',"status":"New Order","items":[{"id":77,"product_id":12,' ..
        '"quantity":250,"name":"Business Card"}]}}')
end
LUA

run() {  # run NAME PORT
    taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency \
        -s "$prefix/hook.lua" "http://127.0.0.1:$2/hook" \
        > "$out/hooklog-$1.txt"
    rps=$(awk '/Requests\/sec/ { print $2 }' "$out/hooklog-$1.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$out/hooklog-$1.txt")
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$out/hooklog-$1.txt")
    echo "$1 $rps $p99 ${non2xx:-0}"
}

for round in $(seq 1 "$rounds"); do
    run "base$round" "$((port + 1))"
    run "log$round" "$port"
done > "$out/hooklog-summary.txt"

logged=$(curl -s "http://127.0.0.1:$port/admin/log?storefront=logged&limit=1" \
         | grep -c '"storefront":"logged"' || true)
unlogged=$(curl -s "http://127.0.0.1:$port/admin/log?storefront=baseline&limit=1" \
           | grep -c '"storefront":"baseline"' || true)

awk -v rounds="$rounds" -v logged="$logged" -v unlogged="$unlogged" '
    { rps[$1] = $2; p99[$1] = $3; bad[$1] = $4 }
    END {
        printf "%-8s %12s %10s %8s\n", "run", "req/s", "p99", "non-2xx"
        for (i = 1; i <= rounds; i++) {
            b = "base" i; g = "log" i
            printf "%-8s %12s %10s %8s\n", b, rps[b], p99[b], bad[b]
            printf "%-8s %12s %10s %8s\n", g, rps[g], p99[g], bad[g]
            r[i] = rps[g] / rps[b]; nbad += bad[g] + bad[b]
        }
        for (i = 2; i <= rounds; i++)
            for (j = i; j > 1 && r[j - 1] > r[j]; j--) {
                t = r[j]; r[j] = r[j - 1]; r[j - 1] = t
            }
        m = (rounds % 2) ? r[(rounds + 1) / 2] \
                         : (r[rounds / 2] + r[rounds / 2 + 1]) / 2
        printf "ratio logged/baseline per round:"
        for (i = 1; i <= rounds; i++) printf " %.3f", r[i]
        printf "\nmedian ratio %.3f (target >= 0.90)\n", m
        printf "log entries of the logged server: %s, of the baseline: %s\n",
               logged ? "yes" : "none", unlogged ? "yes" : "none"
        if (nbad > 0) print "WARNING: non-2xx answers"
        if (!logged || unlogged) exit 1
    }' "$out/hooklog-summary.txt"
