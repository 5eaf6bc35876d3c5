#!/usr/bin/env bash
# Probe: event-loop stalls of the nginx under test while the spool is
# compacted.  Hooks are enqueued by wrk -c64 for SECONDS (PrintNow
# unreachable, long backoff: the jobs stay live), while a probe times
# GET /ok (an unrelated `return 200`) every ~2 ms over 8 keep-alive
# connections (spread over both workers) and a watcher
# notes when journal and snapshot files appear.  Reports every /ok slower
# than 100 ms beside the file events: a stall that ends as a
# snapshot-N.tmp appears is the snapshot being built in the event loop.
# Baseline: the slowest /ok of the same probe over the first 2 s.
#
#   t/bench/spool-stall.sh [SECONDS]    env BENCH_SECONDS (default 30;
#                                       a new segment every 16 MB, ~125k jobs)
#
# Figures: t/bench/out/spool-stall.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

secs=${1:-${BENCH_SECONDS:-30}}

PN_URL=http://127.0.0.1:$DEAD_PORT SF_BACKOFF="30s 5m" sb_sf_conf
sb_sf_start
sb_hook_lua

t_start=$(now_ms)
# keep-alive probes: a stalled worker accepts no new connection, so a
# probe that connects anew would always land on the other worker; 8
# connections opened at once are spread over both, then reused in turn
perl -MIO::Socket::INET -MTime::HiRes=time,sleep -e '
    my ($port, $secs) = @ARGV; my @c;
    for (1 .. 8) {
        push @c, IO::Socket::INET->new("127.0.0.1:$port") or die "connect: $!";
    }
    $| = 1; my $end = time + $secs; my $i = 0;
    while (time < $end) {
        my $s = $c[$i++ % @c]; my $t = time;
        print $s "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
        my $buf = ""; 
        while ($buf !~ /\r\n\r\nok/) { sysread($s, $buf, 4096, length $buf) or die "read: $!" }
        printf "%d %.6f\n", $t * 1000, time - $t;
        sleep 0.002;
    }' "$SF_PORT" $(( secs + 2 )) > "$SB/probe.txt" &
( end=$(( $(now_ms) + (secs + 2) * 1000 ))
  while [ "$(now_ms)" -lt "$end" ]; do
      for f in "$SB"/spool/*.sf* "$SB"/spool/*.tmp; do if [ -e "$f" ]; then echo "$(now_ms) ${f##*/}"; fi; done
      sleep 0.02
  done | awk '!seen[$2]++' ) > "$SB/files.txt" &
sleep 2
taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency -s "$SB/hook.lua" \
    "http://127.0.0.1:$SF_PORT" -- /hook 0 0 x > "$out/stall-hooks.txt"
wait
problems=$(sb_log_problems "$SB/sf/logs/error.log")

{
echo "== spool-stall: $(date -u +%FT%TZ), $(nproc) CPUs, hooks for ${secs}s, GET /ok probed every ~2 ms on 8 keep-alive connections"
echo "hooks: $(wrk_rps "$out/stall-hooks.txt") req/s, p99 $(wrk_p99 "$out/stall-hooks.txt"), $(awk '/^accepted/ { print $2 }' "$out/stall-hooks.txt") accepted"
awk -v t0="$t_start" '$1 < t0 + 2000 && $2 > m { m = $2 } END { printf "baseline (first 2 s, no load): slowest /ok %.3f s\n", m }' "$SB/probe.txt"
{ awk -v t0="$t_start" '$2 > 0.1 { printf "%8.3f s  GET /ok answered after %.3f s\n", ($1 - t0) / 1000, $2 }' "$SB/probe.txt"
  awk -v t0="$t_start" '{ printf "%8.3f s  file %s appears\n", ($1 - t0) / 1000, $2 }' "$SB/files.txt"
} | sort -n
awk '$2 > m { m = $2 } END { printf "slowest /ok under load: %.3f s\n", m }' "$SB/probe.txt"
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/spool-stall.txt"
