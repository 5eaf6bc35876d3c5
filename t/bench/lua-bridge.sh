#!/usr/bin/env bash
# Benchmark: the module against the bridge a user could write in an
# afternoon with ngx_lua (issue 13), same machine, same run.
#
# The bridge (bridge-lib.sh): an nginx with ngx_lua that maps each hook's
# order, signs and POSTs it to SiteFlow through a keep-alive proxy_pass
# before answering the hook; nothing on disk.  Two kinds:
#   bridge       create only (the issue's bridges)
#   bridge+val   validate then create (the calls the module makes)
# The module: one nginx with a spool on disk, hooks answered 202 after
# the group commit, delivered by the queue.
#
# Each run: a fresh nginx with ONE worker (as the issue's table), N hooks
# with unique order ids from wrk -t1 -c32 (pinned to CPU 1 with the mock
# nginx of spool-lib.sh), until the Nth create is seen at the mock.
#   orders/s    N / (first hook .. Nth create)
#   cpu/order   utime+stime of the worker over that span / N
#   during      for the module: creates seen when the last hook was
#               answered, per second of hooks (a bridge creates in the hook)
# Kinds alternate within each round; medians over the rounds.  Both
# fetch off (the order in the hook) and fetch on (the id in the hook).
#
#   t/bench/lua-bridge.sh [HOOKS] [ROUNDS]        (default 20000 3)
#   SITEFLOW_MODULE=...    the module under test (t/build/...)
#   KINDS="module bridge bridge+val", FETCHES="off on": a part of the runs
#
# Needs: apt-get install libnginx-mod-http-lua lua-cjson (bench only; the
# package also enables the module for /etc/nginx: remove it afterwards
# with apt-get remove libnginx-mod-http-lua libnginx-mod-http-ndk).
# Figures: t/bench/out/lua-bridge.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

n=${1:-${BENCH_JOBS:-20000}}
rounds=${2:-${BENCH_ROUNDS:-3}}
timeout=${BENCH_TIMEOUT:-300}
hz=$(getconf CLK_TCK)
. "$(dirname "$0")/bridge-lib.sh"

sb_mock_start
sb_hook_lua
sb_hook_order_lua

run() {  # run NAME KIND(module|bridge|bridge+val) FETCH(on|off)
    local name=$1 fetch=$3 lua=$SB/hook.lua
    case $2 in
    module)     SF_WORKERS=1 SF_EXTRA="siteflow_printnow_fetch $fetch;" sb_sf_conf ;;
    bridge)     sb_bridge_conf 0 ;;
    bridge+val) sb_bridge_conf 1 ;;
    esac
    [ "$fetch" = off ] && lua=$SB/hook-order.lua
    sb_order_run "$name" "bridge-$name.txt" "$lua" 32 "$n" "$timeout" \
    | awk -v name="$name" -v n="$n" -v hz="$hz" '{
        t0 = $1; th = $2; t1 = $3; u = $6 - $4; k = $7 - $5
        printf "%s %.1f %.0f %.0f %.0f %.1f %.1f\n", name,
               (u + k) * 1e6 / hz / n, n / ((t1 - t0) / 1000),
               $8 / ((th - t0) / 1000), n / ((th - t0) / 1000),
               u * 1e6 / hz / n, k * 1e6 / hz / n
    }'
}

{
for r in $(seq 1 "$rounds"); do
    for f in ${FETCHES:-off on}; do
        for k in ${KINDS:-module bridge bridge+val}; do
            run "$k-$f$r" "$k" "$f"
        done
    done
done
} > "$out/lua-bridge-runs.txt"

{
echo "== lua-bridge: $(date -u +%FT%TZ), $(nproc) CPUs, $n hooks x $rounds rounds, 1 worker, wrk -t1 -c32"
echo "module: $module"
fmt='%-16s %13s %9s %12s %9s %7s %7s\n'
printf "$fmt" run "cpu µs/order" orders/s "during/s" hooks/s user sys
awk -v fmt="$fmt" '{ printf fmt, $1, $2, $3, $4, $5, $6, $7 }' \
    "$out/lua-bridge-runs.txt"
echo "medians:"
sb_medians "$out/lua-bridge-runs.txt" | awk -v fmt="$fmt" '{ printf fmt, $1, $2, $3, $4, $5, $6, $7 }'
} | tee "$out/lua-bridge.txt"
