#!/usr/bin/env bash
# Benchmark: drain of a backlog in the PostgreSQL queue (siteflow_queue),
# one edge vs two edges sharing the database, same run, same machine.
#
# The backlog, made the same way before every drain so that every drain
# starts from the same state:
#   1. the queue is emptied (TRUNCATE, as t/151-pg-fleet.t) and the mock
#      nginx's logs too;
#   2. a "filler" edge (its own nginx, 2 workers) takes N hooks (wrk -c64,
#      unique order ids, id-only bodies: fetch on) and commits N order
#      jobs.  Its delivering worker cannot drain them: its PrintNow is a
#      port that takes the connection and never answers, and
#      siteflow_queue_concurrency is 1, so it claims exactly one job and
#      waits on it;
#   3. the filler is stopped, and the script waits until no lease is live
#      (the filler's lease= is 3s, the least allowed) and no job waits
#      for a next attempt, so all N jobs are due and free: no backoff
#      timer, no lease and no breaker decides when the drain starts.
#      (The one job the filler had claimed is claimed again with "a
#      create may be out" set: one GET /api/order/bysourceid look-up,
#      answered 404, before its create.)
# Why not "SiteFlow answers 503 while the hooks come in, then 201": the
# jobs would then sit at different points of their backoff (and behind a
# breaker) when the mock switches, and the delivering edge would already
# be running: the start of the drain would be blurred by up to the
# backoff's maximum and would differ between 1 and 2 edges.
# Then the clock starts, the drain edges are started (1: edge a; 2: edges
# a and b, launched one after the other), and the clock stops when
# `SELECT count(*) FROM siteflow_jobs WHERE state IN (0, 1)` says 0
# (psql \watch every 20 ms in one session).  seconds = that time (nginx
# start-up and the first connections included: the edges start on a
# backlog); orders/s = N / seconds; ratio = 2 edges / 1 edge, per round
# and the median.
#
# Edges: the same configuration (2 workers each; worker 0 of each edge
# delivers; siteflow_queue_concurrency 32; pool= BENCH_PG_POOL; lease
# 30s; siteflow_retry_backoff 100ms 500ms; error_log at info, which logs
# each created order: the split between the edges comes from there).
# Upstream: the mock nginx of spool-lib.sh (1 worker pinned to CPU 1,
# answers at once): each order job makes 3 calls (GET the PrintNow order,
# POST validate, POST create).  Checks per drain: N jobs done, none
# failed or left, N creates seen by the mock, N distinct orders fetched.
# Cost per order: CPU time (utime + stime, /proc) of the edges' workers
# over their life, of PostgreSQL (postmaster and children) and of the
# mock over the drain; commits, WAL records/bytes/syncs (pg_stat_database,
# pg_stat_wal, read with the edges stopped).
#
#   t/bench/pg-drain.sh [JOBS] [ROUNDS]        # 2000 2
#   env BENCH_JOBS, BENCH_ROUNDS, BENCH_CONCURRENCY (32), BENCH_PG_POOL
#   (2), BENCH_TIMEOUT (per drain, 300 s), BENCH_KEEP=1, SITEFLOW_MODULE,
#   BENCH_PORT_LO/HI (26000-26999)
#
# Figures: t/bench/out/pg-drain.txt

set -euo pipefail
. "$(dirname "$0")/pg-lib.sh"

n=${1:-${BENCH_JOBS:-2000}}
rounds=${2:-${BENCH_ROUNDS:-2}}
conc=${BENCH_CONCURRENCY:-32}
timeout=${BENCH_TIMEOUT:-300}

pg_port_new FILL_PORT
pg_port_new A_PORT
pg_port_new B_PORT

pg_cluster_start
sb_mock_start
pg_blackhole_start "$DEAD_PORT"
pg_hook_lua
: > "$SB/summary.txt"
: > "$SB/checks.txt"
: > "$SB/cost.txt"
mockw=$(pgrep -P "$(cat "$SB/mock/logs/nginx.pid")" | tr '\n' ' ')

# the filler: hooks in, one job claimed and held, nothing delivered
PN_URL=http://127.0.0.1:$DEAD_PORT SF_CONCURRENCY=1 SF_TIMEOUT=10m \
    pg_edge_conf "$SB/fill" "$FILL_PORT" "siteflow_queue $PG_URL pool=$PG_POOL lease=3s"
for e in a b; do
    port=$A_PORT; [ "$e" = b ] && port=$B_PORT
    SF_CONCURRENCY=$conc SF_BACKOFF="100ms 500ms" SF_LOGLEVEL=info \
        pg_edge_conf "$SB/edge-$e" "$port" "siteflow_queue $PG_URL pool=$PG_POOL"
done

open_jobs() { pg_q "SELECT count(*) FROM siteflow_jobs WHERE state IN (0, 1)"; }

# prints the ms timestamp at which no job is pending or retrying
wait_drained() {
    echo "SELECT count(*) FROM siteflow_jobs WHERE state IN (0, 1) \\watch 0.02" \
    | timeout "$timeout" "$PG_BIN/psql" -X -A -t -q -h "$PG_DIR" -p "$PG_PORT" \
        -U postgres -d siteflow 2>/dev/null \
    | while read -r c; do
        if [ "$c" = 0 ]; then now_ms; break; fi
      done
}

# drain ROUND EDGES(1|2)
drain() {
    local r=$1 k=$2 name=e$2-r$1 base acc t0 t1 i open live e done failed
    local creates fetched split="" ok c0 c1 d0 d1 m0 m1 w
    base=$(( (r * 10 + k) * 100000000 ))
    for e in fill edge-a edge-b; do : > "$SB/$e/logs/error.log" 2>/dev/null || true; done
    pg_empty
    : > "$SB/mock/logs/creates.log"; : > "$SB/mock/logs/fetches.log"
    : > "$SB/mock/logs/patches.log"

    # 1-3: the backlog
    pg_edge_launch "$SB/fill"
    pg_edge_wait "$FILL_PORT"
    sb_wrk_quota "$out/pg-drain-$name-fill.txt" "$SB/fill.flag" -c64 \
        -s "$SB/pghook.lua" "http://127.0.0.1:$FILL_PORT" \
        -- /hook "$base" "$n" "$SB/fill.flag" > /dev/null
    acc=$(pg_wrk_count "$out/pg-drain-$name-fill.txt" 202)
    sleep 0.5
    pg_edge_stop "$SB/fill" stop
    for i in $(seq 1 200); do
        live=$(pg_q "SELECT count(*) FROM siteflow_jobs
                     WHERE lease_until > siteflow_now_ms()
                        OR next_ms > siteflow_now_ms()")
        [ "$live" = 0 ] && break
        sleep 0.05
    done
    open=$(open_jobs)
    if [ "$acc" != "$n" ] || [ "$open" != "$n" ] || [ "$live" != 0 ]; then
        echo "$name: backlog not as expected: $acc hooks accepted, $open jobs open, $live leased or not yet due" \
            | tee -a "$SB/checks.txt"
        return 1
    fi

    # the drain
    c0=$(pg_counters)
    d0=$(pg_cpu_us $(pg_server_pids)); m0=$(pg_cpu_us $mockw)
    t0=$(now_ms)
    pg_edge_launch "$SB/edge-a"
    [ "$k" = 2 ] && pg_edge_launch "$SB/edge-b"
    t1=$(wait_drained)
    [ -n "$t1" ] || { echo "$name: not drained in $timeout s ($(open_jobs) open)" \
                      | tee -a "$SB/checks.txt"; return 1; }
    d1=$(pg_cpu_us $(pg_server_pids)); m1=$(pg_cpu_us $mockw)
    w=$(pg_cpu_us $(pg_edge_workers "$SB/edge-a") \
                  $([ "$k" = 2 ] && pg_edge_workers "$SB/edge-b"))
    pg_edge_stop "$SB/edge-a" quit
    [ "$k" = 2 ] && pg_edge_stop "$SB/edge-b" quit
    c1=$(pg_counters)
    # CPU per order: the edges' workers over their whole life (start-up
    # included), the server (postmaster and children) and the mock over
    # the drain; the server's counters with the edges stopped
    awk -v name="$name" -v n="$n" -v w="$w" -v d="$(( d1 - d0 ))" -v m="$(( m1 - m0 ))" \
        -v c0="$c0" -v c1="$c1" 'BEGIN {
        split(c0, a, " "); split(c1, z, " ")
        printf "%s cpu per order: edge workers %.0f us, PostgreSQL %.0f us, mock %.0f us; per order: %.2f commits, %.1f WAL records, %.0f WAL bytes, %.2f WAL syncs\n",
               name, w / n, d / n, m / n, (z[1] - a[1]) / n, (z[2] - a[2]) / n,
               (z[3] - a[3]) / n, (z[4] - a[4]) / n }' >> "$SB/cost.txt"

    sleep 0.2
    IFS='|' read -r done failed < <(pg_q "SELECT count(*) FILTER (WHERE state = 2),
                                          count(*) FILTER (WHERE state = 3) FROM siteflow_jobs")
    creates=$(wc -l < "$SB/mock/logs/creates.log")
    fetched=$(awk '{ print $7 }' "$SB/mock/logs/fetches.log" | sort -u | wc -l)
    for e in a b; do
        [ "$e" = b ] && [ "$k" = 1 ] && continue
        split="$split edge $e $(grep -c 'in SiteFlow as' "$SB/edge-$e/logs/error.log" || true)"
    done
    [ "$done" = "$n" ] && [ "$failed" = 0 ] && [ "$creates" = "$n" ] && [ "$fetched" = "$n" ] \
        && ok=OK || ok=MISMATCH
    echo "$name $k $(( t1 - t0 ))" >> "$SB/summary.txt"
    {
    echo "$name: backlog $acc accepted by the filler; drained: $done done, $failed failed, $creates creates, $fetched distinct orders fetched (expected $n each): $ok; orders created by$split"
    for e in a b; do
        [ "$e" = b ] && [ "$k" = 1 ] && continue
        echo "$name edge $e error log: $(pg_log_summary "$SB/edge-$e/logs/error.log")"
    done
    echo "$name filler error log: $(pg_log_summary "$SB/fill/logs/error.log")"
    } >> "$SB/checks.txt"
    [ "$ok" = OK ]
}

status=0
for r in $(seq 1 "$rounds"); do
    drain "$r" 1 || status=1
    drain "$r" 2 || status=1
done

{
echo "== pg-drain: $(date -u +%FT%TZ), $(nproc) CPUs (load $(cut -d' ' -f1-3 /proc/loadavg)), $n orders (3 calls each), PostgreSQL $(pg_version), 2 workers per edge, siteflow_queue_concurrency $conc, pool=$PG_POOL"
echo "module: $(pg_module_id)"
awk -v n="$n" -v rounds="$rounds" '
    { ms[$1] = $3 }
    function median(a, k,   i, j, t) {
        for (i = 2; i <= k; i++)
            for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    END {
        printf "%-7s %9s %9s %9s %9s %8s\n", "round", "1 edge s", "orders/s", "2 edges s", "orders/s", "ratio"
        for (i = 1; i <= rounds; i++) {
            a = ms["e1-r" i] / 1000; b = ms["e2-r" i] / 1000
            if (a <= 0 || b <= 0) continue
            r1[i] = n / a; r2[i] = n / b; q[i] = r2[i] / r1[i]
            printf "%-7s %9.3f %9.0f %9.3f %9.0f %8.3f\n", i, a, r1[i], b, r2[i], q[i]
            m++
        }
        if (m == rounds)
            printf "median orders/s: 1 edge %.0f, 2 edges %.0f; ratio 2 edges/1 edge median %.3f\n",
                   median(r1, rounds), median(r2, rounds), median(q, rounds)
    }' "$SB/summary.txt"
cat "$SB/cost.txt" "$SB/checks.txt"
} | tee "$out/pg-drain.txt"
exit "$status"
