#!/usr/bin/env bash
# Benchmark: end to end PrintNow hook -> order accepted by SiteFlow (issue
# 4), vs the same number of orders POSTed straight to the mock, same run.
#
# N hooks (unique order ids) are sent by wrk -c64; each job fetches the
# order from the PrintNow stand-in, transforms it with the mapping,
# validates it and creates it at the SiteFlow stand-in (a plain nginx, see
# spool-lib.sh).  hooks/s = N / (time from the first hook sent to the Nth
# create seen by the mock).  Baseline: N POST /api/order (the order as
# body) sent by wrk -c64 straight to the mock.  Checks: N creates, N
# distinct orders fetched, and a repeated hook of a sent order answered
# 200 "skipped" (the duplicate guard) without a new create.
#
#   t/bench/hook-e2e.sh [HOOKS]        env BENCH_JOBS (default 20000)
#
# Target: >= 1,000 hooks/s.  Figures: t/bench/out/hook-e2e.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

n=${1:-${BENCH_JOBS:-20000}}
timeout=${BENCH_TIMEOUT:-300}

sb_mock_start
sb_sf_conf
sb_sf_start
sb_hook_lua
sb_upstream_lua

t0=$(now_ms)
sb_send_hooks "$n" 0 64 "$out/e2e-hooks.txt" > "$SB/enqueued.ms" &
wrkpid=$!
t1=$(sb_wait_lines "$SB/mock/logs/creates.log" "$n" "$timeout")
wait "$wrkpid"
accepted=$(awk '/^accepted/ { print $2 }' "$out/e2e-hooks.txt")
hook_p99=$(wrk_p99 "$out/e2e-hooks.txt")
dup=$(curl -s -X POST -H 'Content-Type: application/json' \
      -d '{"event":"order_created","id":"1"}' "http://127.0.0.1:$SF_PORT/hook?token=T0K-bench-not-real")
sleep 1
creates=$(wc -l < "$SB/mock/logs/creates.log")
fetched=$(awk '{ print $7 }' "$SB/mock/logs/fetches.log" | sort -u | wc -l)
problems=$(sb_log_problems "$SB/sf/logs/error.log")

: > "$SB/mock/logs/creates.log"
b0=$(now_ms)
b1=$(sb_wrk_quota "$out/e2e-base.txt" "$SB/base.flag" -c64 \
     -s "$SB/upstream.lua" "$MOCK_SCHEME://127.0.0.1:$SFAPI_PORT" \
     -- "$n" create "$SB/base.flag")

{
echo "== hook-e2e: $(date -u +%FT%TZ), $(nproc) CPUs, $n hooks, wrk -t1 -c64"
DUP="$dup" awk -v n="$n" -v t="$((t1 - t0))" -v b="$((b1 - b0))" -v acc="$accepted" \
    -v cr="$creates" -v fe="$fetched" -v p99="$hook_p99" '
BEGIN {
    dup = ENVIRON["DUP"]   # not -v: awk would unescape its \"
    e = n / (t / 1000); base = n / (b / 1000)
    printf "end to end: %d hooks -> %d orders created in %d ms: %.0f hooks/s (target >= 1000); hook answer p99 %s\n",
           acc, n, t, e, p99
    printf "baseline: %d POST /api/order straight to the mock in %d ms: %.0f orders/s\n", n, b, base
    printf "ratio end-to-end/baseline %.3f\n", e / base
    printf "repeated hook of a sent order: %s\n", dup
    ok = (cr == n && fe == n && acc == n && dup ~ /skipped/)
    printf "creates %d, distinct orders fetched %d (expected %d each): %s\n",
           cr, fe, n, ok ? "OK" : "MISMATCH"
    if (!ok) exit 1
}'
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/hook-e2e.txt"
