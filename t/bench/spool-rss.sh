#!/usr/bin/env bash
# Benchmark: worker memory after 1k vs after 100k delivered jobs, and
# start-up with 100k pending jobs (issue 3).
#
# Part 1 (memory): fast nginx stand-in for SiteFlow/PrintNow (see
# spool-lib.sh).  1k hooks are sent and delivered (1k creates seen), then
# RssAnon and RssShmem of each worker are read from /proc/PID/status; then
# the rest up to 100k in 5 stages, read again after each (the highest is
# reported too).  Target: RssAnon (the heap; shared memory
# pages only count once touched) grows by <= 5 MB.  RssShmem is reported
# apart: it is the job table zone (siteflow_spool size=) being touched.
#
# Part 2 (start-up): a fresh spool, PrintNow pointed at a closed port with
# a 1 h backoff, 100k hooks queued (pending), nginx stopped, then started
# again: the wall time of the `nginx` command (the master recovers the
# spool before it forks) and the recovery time nginx logs ("siteflow: spool
# ... recovered: N jobs ... in M ms").  Baseline: the same nginx started on
# an empty spool, same run.
#
#   t/bench/spool-rss.sh [JOBS]       env BENCH_JOBS (default 100000)
#
# Figures: t/bench/out/spool-rss.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

n=${1:-${BENCH_JOBS:-100000}}
first=1000
timeout=${BENCH_TIMEOUT:-600}

rss() {  # "anon_kB shmem_kB" summed over the workers
    local p a=0 s=0 x y
    for p in $(sb_workers); do
        x=$(awk '/^RssAnon/ { print $2 }' "/proc/$p/status")
        y=$(awk '/^RssShmem/ { print $2 }' "/proc/$p/status")
        a=$((a + x)); s=$((s + y))
        echo "  worker $p RssAnon $x kB RssShmem $y kB" >> "$SB/rss.detail"
    done
    echo "$a $s"
}

# -- part 1
sb_mock_start
sb_sf_conf
sb_sf_start
sb_hook_lua
sb_send_hooks "$first" 0 64 "$out/rss-hooks1.txt" > /dev/null
sb_wait_lines "$SB/mock/logs/creates.log" "$first" "$timeout" > /dev/null
sleep 1
echo "after $first:" >> "$SB/rss.detail"
read -r a1 s1 < <(rss)
# the rest in 5 stages, sampled after each: a compaction's transient
# memory (it runs in worker 0 as the index grows) shows at the stage it
# falls in, not necessarily at the end
sent=$first; stage=0; amax=$a1; busy=0
while [ "$sent" -lt "$n" ]; do
    k=$(( (n - first + 4) / 5 )); [ $((sent + k)) -gt "$n" ] && k=$((n - sent))
    s0=$(now_ms)
    sb_send_hooks "$k" $((10000000 + stage * 1000000)) 64 "$out/rss-hooks2.txt" > /dev/null
    sent=$((sent + k)); stage=$((stage + 1))
    t1=$(sb_wait_lines "$SB/mock/logs/creates.log" "$sent" "$timeout")
    busy=$((busy + t1 - s0))
    sleep 2
    echo "after $sent:" >> "$SB/rss.detail"
    read -r a2 s2 < <(rss)
    [ "$a2" -gt "$amax" ] && amax=$a2
done
creates=$(wc -l < "$SB/mock/logs/creates.log")
problems=$(sb_log_problems "$SB/sf/logs/error.log")
sb_sf_stop

# -- part 2
rm -rf "$SB/spool"; mkdir "$SB/spool"
mv "$SB/sf/logs/error.log" "$SB/sf/logs/error.part1.log"
PN_URL=http://127.0.0.1:$DEAD_PORT SF_BACKOFF="1h 1h" sb_sf_conf

start() {  # wall ms of the nginx command
    local s e
    s=$(now_ms); "$nginx" -p "$SB/sf/" -c nginx.conf; e=$(now_ms)
    sb_sf_wait
    echo $((e - s))
}
recovered() { grep 'recovered:' "$SB/sf/logs/error.log" | tail -1 | sed 's/.*siteflow: //'; }

empty_ms=$(start)
empty_log=$(recovered)
sb_send_hooks "$n" 20000000 64 "$out/rss-hooks3.txt" > /dev/null
pending_acc=$(awk '/^accepted/ { print $2 }' "$out/rss-hooks3.txt")
sb_sf_stop
disk=$(sb_spool_count "$SB/spool")
full_ms=$(start)
full_log=$(recovered)
problems="$problems$(sb_log_problems "$SB/sf/logs/error.log")"

{
echo "== spool-rss: $(date -u +%FT%TZ), $(nproc) CPUs, $first then $n jobs delivered"
cat "$SB/rss.detail"
awk -v a1="$a1" -v s1="$s1" -v a2="$a2" -v s2="$s2" -v n="$n" -v f="$first" \
    -v cr="$creates" -v t="$busy" -v am="$amax" 'BEGIN {
    printf "workers RssAnon  after %d: %d kB, after %d: %d kB: %+.2f MB (target <= +5 MB)\n", f, a1, n, a2, (a2 - a1) / 1024
    printf "workers RssAnon  highest of the 5 stages: %d kB: %+.2f MB\n", am, (am - a1) / 1024
    printf "workers RssShmem after %d: %d kB, after %d: %d kB: %+.2f MB (the job table zone)\n", f, s1, n, s2, (s2 - s1) / 1024
    printf "delivered %d of %d (%d in %d ms, %.0f jobs/s)\n", cr, n, n - f, t, (n - f) / (t / 1000)
}'
echo "start-up, empty spool (baseline): nginx command $empty_ms ms; $empty_log"
echo "start-up, $pending_acc pending accepted ($disk): nginx command $full_ms ms; $full_log"
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/spool-rss.txt"
