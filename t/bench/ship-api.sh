#!/usr/bin/env bash
# Benchmark: the Ship API location as SiteFlow uses it (issue 13): a signed
# POST /shipment with a real shipment body, proxied to a shipping service.
#
# Configurations, each a fresh nginx (1 worker, pinned to CPU 0) whose one
# location proxies (keep-alive) to the same backend:
#   plain   nginx WITHOUT the module loaded              (the baseline)
#   guard   siteflow_verify_signature on
#   ship    siteflow_verify_signature on + siteflow_shipment_validate on
# and, when BEFORE_MODULE names another build of the module (for example
# the .so of an older commit), guard0 and ship0 with that build.
#
# The backend is a plain nginx (1 worker) answering a SiteFlow success body
# with "return 200"; it shares CPU 1 with wrk (1 thread).  Every request
# carries a fresh, correctly signed nonce taken from a file generated
# beforehand (wrk's Lua has no HMAC), and the body of t/unit/ship/
# seed-example.json (SiteFlow's example request, 1.7 KB); the plain
# configuration gets exactly the same requests.  nginx is restarted for
# every run, so the replay cache starts empty and one nonce file serves
# every run; a run that used up its nonces would show non-2xx answers.
#
# The machine is shared with other work: the configurations run
# interleaved (plain, guard, ship, [guard0, ship0], plain, ...) ROUNDS
# times and the report gives the median req/s of each configuration and
# the median of the per-round ratios to the plain run of the same round.
# It also gives the CPU time the worker used per request (utime + stime
# from /proc over the run, divided by the requests answered): on a busy
# machine the rate depends on what else runs, the CPU time per request
# much less.  cpu ratio = plain CPU per request / this CPU per request,
# the rate ratio a core of its own would give.
#
#   t/bench/ship-api.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (10 32 5)
#
# env: SITEFLOW_MODULE (default t/build/...so), BEFORE_MODULE, NGINX_BIN,
# BENCH_PORT (default 8290, uses it and the next one), BENCH_KEEP=1.
# Target: ship/plain >= 0.85.  Figures: t/bench/out/ship-api*.txt

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10}
conns=${2:-32}
rounds=${3:-5}
module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
before=${BEFORE_MODULE:-}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
port=${BENCH_PORT:-8290}
bport=$((port + 1))
key=0123456789abcdef0123456789abcdef01234567
out=$top/t/bench/out
mkdir -p "$out"

command -v wrk >/dev/null || { echo "bench: wrk is missing"; exit 1; }

P=$(mktemp -d /tmp/siteflow-ship-api.XXXXXX)
mkdir -p "$P/backend/logs" "$P/t/logs"

cleanup() {
    for d in "$P/t" "$P/backend"; do
        if [ -f "$d/logs/nginx.pid" ]; then
            kill -QUIT "$(cat "$d/logs/nginx.pid")" 2>/dev/null || true
        fi
    done
    if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$P"; else echo "kept $P"; fi
}
trap cleanup EXIT

cat > "$P/backend/nginx.conf" <<CONF
worker_processes 1;
worker_cpu_affinity 10;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$bport;
        location / {
            default_type application/json;
            return 200 '{"status":{"code":"ok"},"shipmentId":"5976029c770e36a13e25a85e","labels":[{"format":"pdf","url":"https://ship.example/l/1.pdf"}],"trackingNumber":"1Z999"}';
        }
    }
}
CONF
"$nginx" -p "$P/backend/" -c nginx.conf

# conf NAME: the nginx under test for one configuration
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
worker_processes 1;
worker_cpu_affinity 01;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    ${load:+siteflow_zone sf:64m; siteflow_nonce_cache 1000000;}
    upstream shipping {
        server 127.0.0.1:$bport;
        keepalive 64;
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

# nonces: enough for 10 s at 90k req/s; nginx restarts for every run
n=$(( secs * 90000 ))
perl -MDigest::SHA=hmac_sha256_base64 -e '
    my ($n, $key) = @ARGV;
    for my $i (1 .. $n) {
        my $nonce = sprintf("ship%d-%08d-%x", $$, $i, int(rand(1 << 30)));
        my $s = hmac_sha256_base64($nonce, $key); $s .= "=" while length($s) % 4;
        print "$nonce $s\n";
    }' "$n" "$key" > "$P/nonces"

cat > "$P/signed.lua" <<'LUA'
local list = {}
local idx = 0
local body
function init(args)
    local f = assert(io.open(args[1]))
    for line in f:lines() do
        local nonce, sig = line:match("^(%S+) (%S+)$")
        list[#list + 1] = { nonce, sig }
    end
    f:close()
    f = assert(io.open(args[2]))
    body = f:read("*a")
    f:close()
end
function request()
    idx = idx + 1
    if idx > #list then idx = 1 end
    local p = list[idx]
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json",
        ["X-SiteFlow-Nonce"] = p[1],
        ["X-SiteFlow-Signature"] = "p1:" .. p[2]
    }, body)
end
LUA

body=$top/t/unit/ship/seed-example.json
url=http://127.0.0.1:$port/siteflow/ship/shipment

cputicks() {  # utime + stime of a process, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

run() {  # run CONFIG ROUND
    local f=$out/ship-api-$1-$2.txt pid i worker t0 t1
    conf "$1"
    : > "$P/t/logs/error.log"
    "$nginx" -p "$P/t/" -c nginx.conf
    for i in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    pid=$(cat "$P/t/logs/nginx.pid")
    worker=
    for i in $(seq 1 100); do      # the master listens before it forks
        worker=$(pgrep -P "$pid" | head -1 || true)
        [ -n "$worker" ] && break
        sleep 0.05
    done
    [ -n "$worker" ] || { echo "bench: no worker for $1" >&2; exit 1; }
    t0=$(cputicks "$worker")
    taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency \
        -s "$P/signed.lua" "$url" -- "$P/nonces" "$body" > "$f"
    t1=$(cputicks "$worker")
    kill -QUIT "$pid"
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if grep -q '\[\(warn\|error\|crit\|alert\|emerg\)\]' "$P/t/logs/error.log"
    then
        echo "error log of $1 round $2:" >&2
        grep '\[\(warn\|error\|crit\|alert\|emerg\)\]' "$P/t/logs/error.log" \
            | head -5 >&2
    fi
    echo "$1 $2 $(awk '/Requests\/sec/ { print $2 }' "$f")" \
         "$(awk '$1 == "99%" { print $2 }' "$f")" \
         "$(awk '/Non-2xx/ { print $NF }' "$f" | grep . || echo 0)" \
         "$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
                '/requests in/ { printf "%.2f", t / hz * 1e6 / $1 }' "$f")"
}

configs="plain guard ship"
if [ -n "$before" ]; then configs="$configs guard0 ship0"; fi

for round in $(seq 1 "$rounds"); do
    for c in $configs; do
        run "$c" "$round"
    done
done > "$out/ship-api-runs.txt"

{
echo "== ship-api: $(date -u +%FT%TZ), $(nproc) CPUs, wrk -t1 -c$conns" \
     "${secs}s, $rounds interleaved rounds, body $(wc -c < "$body") bytes"
echo "module: $module${before:+; before: $before}"
awk -v configs="$configs" -v rounds="$rounds" '
function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ rps[$1, $2] = $3; p99[$1, $2] = $4; bad[$1] += $5; cpu[$1, $2] = $6 }
END {
    nc = split(configs, c, " ")
    printf "%-7s %-52s %9s %9s %8s\n", "config", "req/s per round", "median",
           "ratio", "non-2xx"
    for (k = 1; k <= nc; k++) {
        line = ""
        for (i = 1; i <= rounds; i++) {
            v[i] = rps[c[k], i]; r[i] = rps[c[k], i] / rps["plain", i]
            line = line sprintf(" %.0f", v[i])
        }
        printf "%-7s %-52s %9.0f %9.3f %8d\n", c[k], line, median(v, rounds),
               median(r, rounds), bad[c[k]]
        if (c[k] != "plain") {
            printf "        ratio to plain per round:"
            for (i = 1; i <= rounds; i++)
                printf " %.3f", rps[c[k], i] / rps["plain", i]
            printf "\n"
        }
        if (bad[c[k]] > 0) fail = 1
        p = ""
        for (i = 1; i <= rounds; i++) p = p " " p99[c[k], i]
        printf "        p99:%s\n", p
        line = ""
        for (i = 1; i <= rounds; i++) {
            v[i] = cpu[c[k], i]; r[i] = cpu["plain", i] / cpu[c[k], i]
            line = line sprintf(" %.1f", v[i])
        }
        printf "        worker CPU us/request:%s; median %.1f, cpu ratio %.3f\n",
               line, median(v, rounds), median(r, rounds)
    }
    print "ratio = median over rounds of (req/s / plain req/s of the same round); target ship >= 0.85"
    print "cpu ratio = median over rounds of (plain CPU/request / this CPU/request)"
    if (fail) { print "FAIL: non-2xx answers"; exit 1 }
}' "$out/ship-api-runs.txt"
} | tee "$out/ship-api.txt"
