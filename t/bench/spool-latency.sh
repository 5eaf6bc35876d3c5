#!/usr/bin/env bash
# Benchmark: p99 of an unrelated location (GET /ok, `return 200`) of the
# same nginx, idle vs while 500 deliveries wait on an upstream that answers
# after 2 s (issue 3).  Target: loaded p99 <= 2x idle p99.
#
# Upstream: the Perl mock (t/mock/mock-upstream.pl) with one rule: every
# request is answered after delay_ms 2000 (other connections are served
# meanwhile).  nginx under test: siteflow_queue_concurrency 500,
# siteflow_timeout 30s.  500 hooks are queued; each job's calls then wait
# 2 s each.  wrk (1 thread, pinned to CPU 1, 16 connections) measures
# GET /ok for SECONDS idle (before the hooks), then while the deliveries
# wait; the number of connections open to the mock is sampled during the
# loaded run (expected ~500).
#
#   t/bench/spool-latency.sh [SECONDS]    env BENCH_SECONDS (default 5)
#
# Figures: t/bench/out/spool-latency.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

secs=${1:-${BENCH_SECONDS:-5}}
jobs=${BENCH_JOBS:-500}

perl -MJSON::PP -e '
    local $/; open my $f, "<", $ARGV[0] or die; my $o = decode_json(<$f>);
    print encode_json([{ delay_ms => 2000, method => "GET", json => $o },
                       { delay_ms => 2000, status => 201,
                         json => { _id => "000000000000000000000001" } }]);
' "$order_json" > "$SB/rules.json"
taskset -c 1 perl "$top/t/mock/mock-upstream.pl" --port "$PN_PORT" \
    --rules "$SB/rules.json" --pidfile "$SB/mock.pid" --daemon > /dev/null
SB_PIDS+=("$(cat "$SB/mock.pid")")

PN_URL=http://127.0.0.1:$PN_PORT SF_URL=http://127.0.0.1:$PN_PORT/api \
    SF_CONCURRENCY=$jobs SF_TIMEOUT=30s sb_sf_conf
sb_sf_start
sb_hook_lua

ok() {  # ok NAME
    taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency \
        "http://127.0.0.1:$SF_PORT/ok" > "$out/latency-$1.txt"
}

ok idle
sb_send_hooks "$jobs" 0 64 "$out/latency-hooks.txt" > /dev/null
sleep 0.3
( sleep "$(awk -v s="$secs" 'BEGIN { print s / 2 }')"
  ss -Htn state established "( dport = :$PN_PORT )" | wc -l > "$SB/inflight" ) &
ok loaded
wait
inflight=$(cat "$SB/inflight")
ok idle2 || true
problems=$(sb_log_problems "$SB/sf/logs/error.log")

{
echo "== spool-latency: $(date -u +%FT%TZ), $(nproc) CPUs, GET /ok wrk -t1 -c16 ${secs}s, $jobs deliveries waiting 2 s"
for r in idle loaded idle2; do
    printf "%-7s %11s req/s  p50 %9s  p99 %9s\n" "$r" "$(wrk_rps "$out/latency-$r.txt")" \
        "$(wrk_p50 "$out/latency-$r.txt")" "$(wrk_p99 "$out/latency-$r.txt")"
done
awk -v i="$(to_ms "$(wrk_p99 "$out/latency-idle.txt")")" \
    -v l="$(to_ms "$(wrk_p99 "$out/latency-loaded.txt")")" -v n="$inflight" 'BEGIN {
    printf "connections open to the upstream mid-run: %d\n", n
    printf "p99 loaded/idle ratio %.2f (target <= 2)\n", l / i
}'
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/spool-latency.txt"
