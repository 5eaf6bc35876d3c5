#!/usr/bin/env bash
# Benchmark: durable enqueue, 64 clients, embedded spool vs PostgreSQL
# queue -- PrintNow hooks answered 202 {"job":"N"} only once the job is
# durable: fsynced by the spool's group commit (`siteflow_spool`), or
# committed in PostgreSQL (`siteflow_queue`, synchronous_commit on), same
# nginx configuration otherwise, same run, same machine.
#
# The PostgreSQL is private (Siteflow::Pg, as the tests: initdb in a temp
# dir, fsync on, shared_buffers 16MB, on 127.0.0.1), started once and
# kept for the whole run; the spool and the cluster's data are on the
# same file system (/tmp).
#
# Acceptance only, no delivery: the existing spool-enqueue.sh points
# PrintNow at a closed port with a long backoff, which idles the spool's
# consumer (its breaker holds the other jobs); the PostgreSQL backend as
# first written had no breaker (jobs back off one by one), so its worker
# 0 would claim and fail every new job during the run, a claim and an
# update per job on the same database, and whether a breaker opens would
# depend on timing.  Here both backends get the same frozen consumer
# instead: siteflow_queue_concurrency 1 and PrintNow pointed at a port
# that takes the connection and never answers (siteflow_timeout 10m), so
# worker 0 runs one job (the first) for the whole run and claims nothing
# else.  SiteFlow is never called.
#
# Each round: for each backend a fresh nginx (2 workers, unpinned), a
# fresh spool dir / an emptied jobs table, a warm-up of WARMUP seconds
# (its answers are counted for the durability check, not for the
# rate), then wrk -t2 -c64 for SECONDS (unpinned: 2 threads on 2 CPUs),
# every request a hook with an order id never used before (lua:
# BASE + thread * 10^7 + n).  hooks/s = 202 answers / wrk's run time;
# p50/p99 from wrk --latency (every answer); ratio = PostgreSQL hooks/s
# over spool hooks/s of the same round, median over rounds.
#
# Cost per job stored (warm-up + run): CPU time (utime + stime from /proc)
# of the nginx workers and of PostgreSQL (the postmaster and all its
# children), and for PostgreSQL the commits, WAL records, WAL bytes and
# WAL syncs (pg_stat_database, pg_stat_wal, read with nginx stopped: a
# backend flushes its counters when it ends).
#
# Durability check (after each run, nginx stopped): spool: jobs on disk
# (spool-lib.sh's decoder) >= 202 answers (warm-up + run), no bad record;
# PostgreSQL: rows of siteflow_jobs >= 202 answers, and as many distinct
# order ids as rows.  The excess is what was committed but cut off by
# the end of a wrk run before its answer was counted (at most 64 per wrk
# run: the connections in flight).
#
#   t/bench/pg-enqueue.sh [SECONDS] [CONNECTIONS] [ROUNDS]    # 10 64 2
#   env BENCH_SECONDS, BENCH_ROUNDS, BENCH_WARMUP (default 3),
#   BENCH_PG_POOL (pool=, default 2), BENCH_KEEP=1, SITEFLOW_MODULE
#   (default t/build/ngx_http_siteflow_module.so; needs libpq support),
#   BENCH_PORT_LO/HI (ports, default 26000-26999)
#
# Figures: t/bench/out/pg-enqueue.txt (wrk outputs pg-enqueue-*.txt)

set -euo pipefail
. "$(dirname "$0")/pg-lib.sh"

secs=${1:-${BENCH_SECONDS:-10}}
conns=${2:-64}
rounds=${3:-${BENCH_ROUNDS:-2}}
warm=${BENCH_WARMUP:-3}

pg_cluster_start
pg_blackhole_start "$DEAD_PORT"
pg_hook_lua
: > "$SB/summary.txt"
: > "$SB/checks.txt"
: > "$SB/cost.txt"

export PN_URL=http://127.0.0.1:$DEAD_PORT SF_CONCURRENCY=1 SF_TIMEOUT=10m \
       SF_BACKOFF="30s 5m"

# run ROUND BACKEND(spool|pg): one fresh nginx, warm-up, measured run,
# stop, durability check
run() {
    local r=$1 b=$2 name=$2$1 p=$SB/$2$1 base queue warm202 run202 ok
    local workers n0 n1 d0 d1 c0 c1 jobs
    base=$(( r * 1000000000 ))
    [ "$b" = pg ] && base=$(( base + 500000000 ))
    rm -rf "$p"; mkdir -p "$p/spool"
    if [ "$b" = spool ]; then
        queue="siteflow_spool $p/spool size=${SF_SPOOL_SIZE:-512m}"
    else
        pg_empty
        queue="siteflow_queue $PG_URL pool=$PG_POOL"
    fi
    pg_edge_conf "$p" "$SF_PORT" "$queue"
    [ "$b" = pg ] && c0=$(pg_counters)
    pg_edge_launch "$p"
    pg_edge_wait "$SF_PORT"
    workers=$(pg_edge_workers "$p")
    n0=$(pg_cpu_us $workers); d0=$(pg_cpu_us $(pg_server_pids))

    wrk -t2 -c"$conns" -d"${warm}s" --latency -s "$SB/pghook.lua" \
        "http://127.0.0.1:$SF_PORT" -- /hook "$base" 0 - > "$out/pg-enqueue-$name-warm.txt"
    wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$SB/pghook.lua" \
        "http://127.0.0.1:$SF_PORT" -- /hook $(( base + 100000000 )) 0 - \
        > "$out/pg-enqueue-$name.txt"
    # hooks whose client wrk has dropped at its end are still queued for
    # a connection of the pool: let them finish (a fast stop would log
    # "... from PostgreSQL: exiting" for each).  Not QUIT: worker 0
    # would wait for its call to the blackhole (siteflow_timeout).
    sleep 1
    n1=$(pg_cpu_us $workers); d1=$(pg_cpu_us $(pg_server_pids))
    pg_edge_stop "$p" stop

    local f=$out/pg-enqueue-$name.txt
    run202=$(pg_wrk_count "$f" 202)
    warm202=$(pg_wrk_count "$out/pg-enqueue-$name-warm.txt" 202)
    echo "$name $(awk -v a="$run202" -v t="$(pg_wrk_secs "$f")" 'BEGIN { printf "%.0f", a / t }')" \
         "$(wrk_p50 "$f") $(wrk_p99 "$f") $run202 $(pg_wrk_count "$f" 200)" \
         "$(pg_wrk_count "$f" 503) $(pg_wrk_count "$f" other) $(pg_wrk_non2xx "$f")" \
         >> "$SB/summary.txt"

    local acc=$(( warm202 + run202 )) rows distinct d
    if [ "$b" = spool ]; then
        d=$(sb_spool_count "$p/spool")         # jobs N records R bad B
        set -- $d
        jobs=$2
        [ "$acc" -le "$2" ] && [ "$6" -eq 0 ] && ok=OK || ok=LOST
        echo "$name: 202 answered $acc (warm-up $warm202 + run $run202), jobs on disk $2 (records $4, bad $6): +$(( $2 - acc )) not counted by wrk: $ok" \
            >> "$SB/checks.txt"
    else
        IFS='|' read -r rows distinct < <(pg_q "SELECT count(*), count(DISTINCT order_id) FROM siteflow_jobs")
        jobs=$rows
        [ "$acc" -le "$rows" ] && [ "$rows" -eq "$distinct" ] && ok=OK || ok=LOST
        c1=$(pg_counters)
        echo "$name: 202 answered $acc (warm-up $warm202 + run $run202), rows in siteflow_jobs $rows (distinct orders $distinct): +$(( rows - acc )) not counted by wrk: $ok" \
            >> "$SB/checks.txt"
    fi
    # cost per job stored, over warm-up + run (the server's CPU: the
    # postmaster and all its children; idle it is ~0)
    awk -v name="$name" -v j="$jobs" -v n="$(( n1 - n0 ))" -v d="$(( d1 - d0 ))" \
        -v c0="${c0:-}" -v c1="${c1:-}" 'BEGIN {
        printf "%s cpu per job: nginx workers %.1f us, PostgreSQL %.1f us", name, n / j, d / j
        if (c0 != "") {
            split(c0, a, " "); split(c1, z, " ")
            printf "; per job: %.2f commits, %.1f WAL records, %.0f WAL bytes, %.2f WAL syncs",
                   (z[1] - a[1]) / j, (z[2] - a[2]) / j, (z[3] - a[3]) / j, (z[4] - a[4]) / j
        }
        printf "\n" }' >> "$SB/cost.txt"
    echo "$name error log: $(pg_log_summary "$p/logs/error.log")" >> "$SB/checks.txt"
    [ "$ok" = OK ]
}

status=0
for r in $(seq 1 "$rounds"); do
    run "$r" spool || status=1
    run "$r" pg || status=1
done

{
echo "== pg-enqueue: $(date -u +%FT%TZ), $(nproc) CPUs (load $(cut -d' ' -f1-3 /proc/loadavg)), wrk -t2 -c$conns ${secs}s after ${warm}s warm-up x $rounds rounds; PostgreSQL $(pg_version) (fsync on, synchronous_commit on), siteflow_queue pool=$PG_POOL; 2 workers"
echo "module: $(pg_module_id)"
awk -v rounds="$rounds" '
    { rps[$1] = $2; p50[$1] = $3; p99[$1] = $4; c202[$1] = $5; c200[$1] = $6
      c503[$1] = $7; oth[$1] = $8; n2[$1] = $9 }
    function median(a, n,   i, k, t) {
        for (i = 2; i <= n; i++)
            for (k = i; k > 1 && a[k - 1] > a[k]; k--) { t = a[k]; a[k] = a[k - 1]; a[k - 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
        printf "%-7s %9s %9s %9s %8s %5s %5s %5s %11s\n", "run", "hooks/s", "p50", "p99",
               "202", "200", "503", "other", "wrk non-2xx"
        for (i = 1; i <= rounds; i++) {
            s = "spool" i; g = "pg" i
            printf "%-7s %9s %9s %9s %8s %5s %5s %5s %11s\n", s, rps[s], p50[s], p99[s],
                   c202[s], c200[s], c503[s], oth[s], n2[s]
            printf "%-7s %9s %9s %9s %8s %5s %5s %5s %11s\n", g, rps[g], p50[g], p99[g],
                   c202[g], c200[g], c503[g], oth[g], n2[g]
            r[i] = rps[g] / rps[s]; rs = rs sprintf(" %.3f", r[i])
            sp[i] = rps[s]; pg[i] = rps[g]
        }
        printf "durable hooks/s: spool median %.0f, PostgreSQL median %.0f; ratio PostgreSQL/spool per round:%s, median %.3f\n",
               median(sp, rounds), median(pg, rounds), rs, median(r, rounds)
    }' "$SB/summary.txt"
cat "$SB/cost.txt" "$SB/checks.txt"
} | tee "$out/pg-enqueue.txt"
exit "$status"
