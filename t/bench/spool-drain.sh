#!/usr/bin/env bash
# Benchmark: drain of the durable queue to a local upstream with keep-alive
# (issue 3), vs the upstream's own capacity measured in the same run.
#
# The upstream stand-in is a second, plain nginx (1 worker, pinned to CPU
# 1) answering with `return`: GET /api/v2/order/N (PrintNow, the order
# with id N, status "New Order"), POST /api/order/validate (200) and POST
# /api/order (201 {"_id":..}, counted in its access log).  Every order job
# makes those three calls.
#
#   drain:    N hooks (unique ids) sent by wrk -c64 as fast as they are
#             accepted; the clock runs from the first hook sent until the
#             mock has seen N creates.  jobs/s = N / that time.
#   baseline: the same 3N calls (GET order, POST validate, POST create with
#             the order as body) sent by wrk straight to the mock, with as
#             many keep-alive connections as the queue's concurrency cap.
#             jobs/s = N / its time: the upstream's capacity.
# Checks: exactly N creates (none lost, none duplicated) and N distinct
# orders fetched.
#
#   t/bench/spool-drain.sh [JOBS] [CONCURRENCY]
#   env BENCH_JOBS (default 20000), BENCH_CONCURRENCY
#   (siteflow_queue_concurrency, default 32)
#
# Target: >= 1,000 jobs/s.  Figures: t/bench/out/spool-drain.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

n=${1:-${BENCH_JOBS:-20000}}
conc=${2:-${BENCH_CONCURRENCY:-32}}
timeout=${BENCH_TIMEOUT:-300}

sb_mock_start
SF_CONCURRENCY=$conc sb_sf_conf
sb_sf_start
sb_hook_lua
sb_upstream_lua

t0=$(now_ms)
sb_send_hooks "$n" 0 64 "$out/drain-hooks.txt" > "$SB/enqueued.ms" &
wrkpid=$!
t1=$(sb_wait_lines "$SB/mock/logs/creates.log" "$n" "$timeout")
wait "$wrkpid"
enq_s=$(awk -v t0="$t0" '{ printf "%.3f", ($1 - t0) / 1000 }' "$SB/enqueued.ms")
accepted=$(awk '/^accepted/ { print $2 }' "$out/drain-hooks.txt")
sleep 1     # late duplicates, if any, would show up now
creates=$(wc -l < "$SB/mock/logs/creates.log")
fetched=$(awk '{ print $7 }' "$SB/mock/logs/fetches.log" | sort -u | wc -l)
problems=$(sb_log_problems "$SB/sf/logs/error.log")

# baseline: 3N calls straight to the mock
: > "$SB/mock/logs/creates.log"
b0=$(now_ms)
b1=$(sb_wrk_quota "$out/drain-base.txt" "$SB/base.flag" -c"$conc" \
     -s "$SB/upstream.lua" "$MOCK_SCHEME://127.0.0.1:$SFAPI_PORT" \
     -- $(( 3 * n )) mix "$SB/base.flag")
good=$(awk '/^good/ { print $2 }' "$out/drain-base.txt")

{
echo "== spool-drain: $(date -u +%FT%TZ), $(nproc) CPUs, $n jobs, siteflow_queue_concurrency $conc"
awk -v n="$n" -v t="$((t1 - t0))" -v b="$((b1 - b0))" -v enq="$enq_s" \
    -v acc="$accepted" -v cr="$creates" -v fe="$fetched" -v good="$good" '
BEGIN {
    d = n / (t / 1000); base = n / (b / 1000)
    printf "hooks accepted %d in %ss (%.0f/s, while draining)\n", acc, enq, acc / enq
    printf "drain: %d orders created in %d ms: %.0f jobs/s (target >= 1000)\n", n, t, d
    printf "baseline: %d upstream calls (%d 2xx answers counted) straight to the mock in %d ms: %.0f jobs/s\n",
           3 * n, good, b, base
    printf "ratio drain/baseline %.3f\n", d / base
    printf "creates seen %d, distinct orders fetched %d (expected %d each): %s\n",
           cr, fe, n, (cr == n && fe == n && acc == n) ? "OK" : "MISMATCH"
    if (cr != n || fe != n || acc != n) exit 1
}'
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/spool-drain.txt"
