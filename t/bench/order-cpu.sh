#!/usr/bin/env bash
# Benchmark: the order path, PrintNow hook -> order validated and created
# at SiteFlow (issue 13), for two builds of the module in the same run.
#
# For each build and each of `siteflow_printnow_fetch off` (the hook body
# carries the whole order: validate + create) and `on` (the hook carries
# the id: fetch + validate + create), in a fresh nginx (2 workers, spool on
# disk) and a fresh spool: N hooks with unique order ids sent by wrk -c64
# (1 thread, pinned to CPU 1, as the mock nginx of spool-lib.sh), then
# wait for the Nth create at the mock.  Figures per run:
#   cpu/order  sum of utime+stime of every worker (/proc/PID/stat, whole
#              thread group) from just before the first hook to the Nth
#              create, divided by N (the machine may be shared: this is
#              the figure that does not depend on the neighbours)
#   orders/s   N / (first hook sent .. Nth create seen)
#   hooks/s    N / (first hook sent .. Nth hook answered 202), durable
#              (each 202 after the group commit's fdatasync)
#   drain      Nth hook answered .. Nth create seen, ms
# Rounds alternate the builds; the summary gives medians over the rounds.
#
#   t/bench/order-cpu.sh [HOOKS] [ROUNDS]       (default 20000 3)
#   BEFORE_MODULE=/path/to/old.so   the build to compare with (optional)
#   SITEFLOW_MODULE=...             the build under test (t/build/...)
#
# Figures: t/bench/out/order-cpu.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

n=${1:-${BENCH_JOBS:-20000}}
rounds=${2:-${BENCH_ROUNDS:-3}}
timeout=${BENCH_TIMEOUT:-300}
after=$module
before=${BEFORE_MODULE:-}
hz=$(getconf CLK_TCK)

sb_mock_start

sb_hook_order_lua
sb_hook_lua

run() {  # run NAME MODULE FETCH(on|off)
    local name=$1 fetch=$3 lua=$SB/hook.lua
    module=$2 SF_EXTRA="siteflow_printnow_fetch $fetch;" sb_sf_conf
    [ "$fetch" = off ] && lua=$SB/hook-order.lua
    sb_order_run "$name" "order-$name.txt" "$lua" 64 "$n" "$timeout" \
    | awk -v name="$name" -v n="$n" -v hz="$hz" '{
        t0 = $1; th = $2; t1 = $3; u = $6 - $4; k = $7 - $5
        printf "%s %.1f %.0f %.0f %d %.1f %.1f\n", name,
               (u + k) * 1e6 / hz / n, n / ((t1 - t0) / 1000),
               n / ((th - t0) / 1000), t1 - th,
               u * 1e6 / hz / n, k * 1e6 / hz / n
    }'
}

builds="after"
[ -n "$before" ] && builds="before after"

{
for r in $(seq 1 "$rounds"); do
    for b in $builds; do
        so=$after
        [ "$b" = before ] && so=$before
        run "$b-off$r" "$so" off
        run "$b-on$r" "$so" on
    done
done
} > "$out/order-cpu-runs.txt"

{
echo "== order-cpu: $(date -u +%FT%TZ), $(nproc) CPUs, $n hooks x $rounds rounds, wrk -t1 -c64"
echo "after:  $after"
[ -n "$before" ] && echo "before: $before"
printf "%-12s %14s %9s %9s %9s %7s %7s\n" run "cpu µs/order" orders/s \
       hooks/s "drain ms" "user" "sys"
awk '{ printf "%-12s %14s %9s %9s %9s %7s %7s\n", $1, $2, $3, $4, $5, $6, $7 }' \
    "$out/order-cpu-runs.txt"
echo "medians:"
sb_medians "$out/order-cpu-runs.txt" | awk '{ printf "%-12s %14s %9s %9s %9s %7s %7s\n", $1, $2, $3, $4, $5, $6, $7 }'
} | tee "$out/order-cpu.txt"
