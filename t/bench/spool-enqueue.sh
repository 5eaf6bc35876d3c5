#!/usr/bin/env bash
# Benchmark: durable enqueue (issue 3) -- PrintNow hooks answered 202
# {"job":"N"} only once the job is fsynced (group commit), 64 concurrent
# clients, vs a baseline location that answers the same 202 JSON with
# `return` to the same requests, in the same nginx and the same run.
#
# nginx under test: 2 workers, PrintNow pointed at a closed port with a
# long backoff, so the consumer does (almost) no work and the jobs stay
# queued.  wrk: 1 thread pinned to CPU 1, 64 connections, every hook with
# a unique order id (lua).  Rounds alternate baseline, hook; the ratio is
# hook jobs/s over baseline req/s of the same round, median over rounds.
#
# Durability check: after the runs nginx is stopped and the spool decoded
# (record headers: magic, type, length; distinct job ids of JOB records):
# hooks answered 2xx must be <= jobs on disk (a request cut off by the end
# of a wrk run may be on disk without its answer having been counted).
#
#   t/bench/spool-enqueue.sh [SECONDS] [CONNECTIONS] [ROUNDS]
#   env BENCH_SECONDS (default 5) is the same as SECONDS
#
# Target: >= 5,000 jobs/s.  Figures: t/bench/out/spool-enqueue.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

secs=${1:-${BENCH_SECONDS:-5}}
conns=${2:-64}
rounds=${3:-3}

PN_URL=http://127.0.0.1:$DEAD_PORT SF_BACKOFF="30s 5m" sb_sf_conf
sb_sf_start
sb_hook_lua

run() {  # run NAME PATH BASE
    taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$SB/hook.lua" \
        "http://127.0.0.1:$SF_PORT" -- "$2" "$3" 0 > "$out/enqueue-$1.txt"
    echo "$1 $(wrk_rps "$out/enqueue-$1.txt") $(wrk_p99 "$out/enqueue-$1.txt")" \
         "$(awk '/^accepted/ { print $2, $4 }' "$out/enqueue-$1.txt")"
}

for r in $(seq 1 "$rounds"); do
    run "base$r" /hook-base $(( r * 100000000 ))
    run "hook$r" /hook $(( r * 100000000 ))
done > "$out/enqueue-summary.txt"

sb_sf_stop stop
disk=$(sb_spool_count "$SB/spool")
problems=$(sb_log_problems "$SB/sf/logs/error.log")

{
echo "== spool-enqueue: $(date -u +%FT%TZ), $(nproc) CPUs, wrk -t1 -c$conns ${secs}s x $rounds rounds"
awk -v rounds="$rounds" -v disk="$disk" '
    { rps[$1] = $2; p99[$1] = $3; acc[$1] = $4; oth[$1] = $5 }
    END {
        printf "%-7s %11s %10s %9s %7s\n", "run", "req/s", "p99", "2xx", "other"
        for (i = 1; i <= rounds; i++) {
            b = "base" i; h = "hook" i
            printf "%-7s %11s %10s %9s %7s\n", b, rps[b], p99[b], acc[b], oth[b]
            printf "%-7s %11s %10s %9s %7s\n", h, rps[h], p99[h], acc[h], oth[h]
            r[i] = rps[h] / rps[b]; accepted += acc[h]; other += oth[h]
            j[i] = rps[h]
        }
        for (i = 2; i <= rounds; i++)
            for (k = i; k > 1 && r[k - 1] > r[k]; k--) { t = r[k]; r[k] = r[k - 1]; r[k - 1] = t }
        for (i = 2; i <= rounds; i++)
            for (k = i; k > 1 && j[k - 1] > j[k]; k--) { t = j[k]; j[k] = j[k - 1]; j[k - 1] = t }
        m = (rounds % 2) ? r[(rounds + 1) / 2] : (r[rounds / 2] + r[rounds / 2 + 1]) / 2
        mj = (rounds % 2) ? j[(rounds + 1) / 2] : (j[rounds / 2] + j[rounds / 2 + 1]) / 2
        split(disk, d, " ")
        printf "durable enqueue: median %.0f jobs/s (target >= 5000); ratio hook/baseline median %.3f\n", mj, m
        printf "accepted (2xx) %d, other answers %d, jobs on disk %d (records %d, bad %d): %s\n",
               accepted, other, d[2], d[4], d[6],
               (accepted <= d[2] && d[6] == 0) ? "OK accepted <= on disk" : "LOST JOBS"
        if (accepted > d[2] || d[6] != 0) exit 1
    }' "$out/enqueue-summary.txt"
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/spool-enqueue.txt"
