#!/usr/bin/env bash
# Benchmark: p99 of an unrelated location (GET /ok, `return 200`) of the
# same nginx, idle vs while 500 deliveries wait on an upstream that answers
# after 2 s (issue 3).  Target: loaded p99 <= 2x idle p99.
#
# Upstream: the Perl mock (t/mock/mock-upstream.pl) with one rule: every
# request is answered after delay_ms 2000 (other connections are served
# meanwhile).  nginx under test: siteflow_queue_concurrency 500,
# siteflow_timeout 30s.  500 hooks are queued; each job's calls then wait
# 2 s each (3 calls: ~6 s a job).  wrk (1 thread, pinned to CPU 1, 16
# connections) measures GET /ok for SECONDS idle (no delivery in flight),
# then for SECONDS right after 500 new hooks were queued, while the
# deliveries wait; the number of connections open to the mock is sampled
# mid-run (expected 500).  ROUNDS rounds; the median of the per-round
# ratios is the figure (a sub-millisecond idle p99 is noisy on a shared
# 2-CPU VM).
#
#   t/bench/spool-latency.sh [SECONDS] [ROUNDS]
#   env BENCH_SECONDS (default 4, keep it under 6), BENCH_ROUNDS (3)
#
# Figures: t/bench/out/spool-latency.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

secs=${1:-${BENCH_SECONDS:-4}}
rounds=${2:-${BENCH_ROUNDS:-3}}
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

conns_up() { ss -Htn state established "( dport = :$PN_PORT )" | wc -l; }

for r in $(seq 1 "$rounds"); do
    # idle: no delivery in flight
    for i in $(seq 1 200); do [ "$(conns_up)" -eq 0 ] && break; sleep 0.1; done
    ok "idle$r"
    sb_send_hooks "$jobs" $(( r * 10000000 )) 64 "$out/latency-hooks$r.txt" > /dev/null
    sleep 0.3
    ( sleep "$(awk -v s="$secs" 'BEGIN { print s / 2 }')"; conns_up > "$SB/inflight$r" ) &
    ok "loaded$r"
    wait
    echo "$r $(to_ms "$(wrk_p99 "$out/latency-idle$r.txt")")" \
         "$(to_ms "$(wrk_p99 "$out/latency-loaded$r.txt")")" "$(cat "$SB/inflight$r")" \
         "$(wrk_rps "$out/latency-idle$r.txt")" "$(wrk_rps "$out/latency-loaded$r.txt")"
done > "$out/latency-summary.txt"
problems=$(sb_log_problems "$SB/sf/logs/error.log")

{
echo "== spool-latency: $(date -u +%FT%TZ), $(nproc) CPUs, GET /ok wrk -t1 -c16 ${secs}s x $rounds rounds, $jobs deliveries waiting 2 s"
awk '
    { i[NR] = $2; l[NR] = $3; n[NR] = $4; ri[NR] = $5; rl[NR] = $6; r[NR] = $3 / $2 }
    END {
        printf "%-6s %10s %10s %10s %10s %8s %s\n", "round", "idle req/s", "idle p99", "load req/s", "load p99", "ratio", "upstream conns"
        for (k = 1; k <= NR; k++)
            printf "%-6d %10s %8.3fms %10s %8.3fms %8.2f %d\n", k, ri[k], i[k], rl[k], l[k], r[k], n[k]
        for (a = 2; a <= NR; a++)
            for (k = a; k > 1 && r[k - 1] > r[k]; k--) { t = r[k]; r[k] = r[k - 1]; r[k - 1] = t }
        m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
        printf "p99 loaded/idle: median ratio %.2f over %d rounds (target <= 2)\n", m, NR
    }' "$out/latency-summary.txt"
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/spool-latency.txt"
