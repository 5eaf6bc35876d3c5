#!/usr/bin/env bash
# Benchmark: SiteFlow postbacks accepted durably per second (issue 5), vs a
# baseline location answering the same 200 JSON with `return`, same run.
#
# Setup: M orders (hooks, unique ids 1..M) are sent and created at the
# SiteFlow stand-in (a plain nginx, see spool-lib.sh), so the sent-orders
# index knows PN-1..PN-M.  Then rounds alternate baseline, postback: wrk
# (1 thread pinned to CPU 1, 64 connections) posts {"event":E,
# "sourceOrderId":"PN-k"} cycling k over the M orders, E moving forward
# (received, printready, subbatch_scanned, batch_complete, shipped with a tracking
# number) each time the M orders have been gone through, so every postback
# (up to 5M of them: size M to the rate x SECONDS x ROUNDS)
# is a new state of its order and makes a durable job (a repeat would be
# answered "skipped").  Each postback job PATCHes PrintNow (the same
# stand-in) meanwhile.  Rate = answers carrying "job" per second; the ratio
# is that over the baseline's req/s of the same round, median over rounds.
#
#   t/bench/postback-bench.sh [SECONDS] [ORDERS] [ROUNDS]
#   env BENCH_SECONDS (default 3), BENCH_ORDERS (default 25000)
#
# Figures: t/bench/out/postback-bench.txt

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

secs=${1:-${BENCH_SECONDS:-3}}
m=${2:-${BENCH_ORDERS:-25000}}
rounds=${3:-3}

sb_mock_start
sb_sf_conf
sb_sf_start
sb_hook_lua

sb_send_hooks "$m" 0 64 "$out/postback-hooks.txt" > /dev/null
sb_wait_lines "$SB/mock/logs/creates.log" "$m" 300 > /dev/null

cat > "$SB/postback.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
local events = { "received", "printready", "subbatch_scanned", "batch_complete", "shipped" }
function init(args)
    path = args[1]
    m = tonumber(args[2])
    k = tonumber(args[3])      -- postbacks already sent by earlier rounds
    jobs = 0
    skipped = 0
    other = 0
end
function request()
    local o = k % m
    local e = events[math.floor(k / m) % #events + 1]
    k = k + 1
    local extra = ""
    if e == "shipped" then extra = ',"trackingNumber":"1Z' .. o .. '","carrier":"UPS"' end
    return wrk.format("POST", path .. "?token=T0K-bench-not-real",
        { ["Content-Type"] = "application/json" },
        '{"event":"' .. e .. '","sourceOrderId":"PN-' .. (o + 1) .. '"' .. extra .. '}')
end
function response(status, headers, body)
    if status == 200 and body:find('"job"', 1, true) then jobs = jobs + 1
    elseif status == 200 then skipped = skipped + 1
    else other = other + 1 end
end
function done(summary, latency, requests)
    local j, s, o = 0, 0, 0
    for _, t in ipairs(threads) do
        j = j + t:get("jobs"); s = s + t:get("skipped"); o = o + t:get("other")
    end
    io.write(string.format("jobs %d skipped %d other %d\n", j, s, o))
end
LUA

k=0
for r in $(seq 1 "$rounds"); do
    for what in base post; do
        path=/postback; [ "$what" = base ] && path=/postback-base
        taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency -s "$SB/postback.lua" \
            "http://127.0.0.1:$SF_PORT" -- "$path" "$m" "$k" > "$out/postback-$what$r.txt"
        read -r j s o < <(awk '/^jobs/ { print $2, $4, $6 }' "$out/postback-$what$r.txt")
        echo "$what$r $(wrk_rps "$out/postback-$what$r.txt") $(wrk_p99 "$out/postback-$what$r.txt") $j $s $o"
        # the next postback round goes on where this one stopped
        # (+64: the requests in flight when wrk stopped were handled too)
        [ "$what" = post ] && k=$(( k + j + s + o + 64 ))
    done
done > "$out/postback-summary.txt"
problems=$(sb_log_problems "$SB/sf/logs/error.log")

{
echo "== postback-bench: $(date -u +%FT%TZ), $(nproc) CPUs, $m orders indexed, wrk -t1 -c64 ${secs}s x $rounds rounds"
awk -v rounds="$rounds" -v secs="$secs" '
    { rps[$1] = $2; p99[$1] = $3; j[$1] = $4; s[$1] = $5; o[$1] = $6 }
    END {
        printf "%-7s %11s %10s %9s %8s %7s\n", "run", "req/s", "p99", "jobs", "skipped", "other"
        for (i = 1; i <= rounds; i++) {
            b = "base" i; p = "post" i
            printf "%-7s %11s %10s %9s %8s %7s\n", b, rps[b], p99[b], "-", "-", "-"
            printf "%-7s %11s %10s %9s %8s %7s\n", p, rps[p], p99[p], j[p], s[p], o[p]
            jr[i] = j[p] / secs; r[i] = jr[i] / rps[b]; bad += o[p] + s[p]
        }
        for (i = 2; i <= rounds; i++)
            for (k = i; k > 1 && r[k - 1] > r[k]; k--) { t = r[k]; r[k] = r[k - 1]; r[k - 1] = t }
        for (i = 2; i <= rounds; i++)
            for (k = i; k > 1 && jr[k - 1] > jr[k]; k--) { t = jr[k]; jr[k] = jr[k - 1]; jr[k - 1] = t }
        m = (rounds % 2) ? r[(rounds + 1) / 2] : (r[rounds / 2] + r[rounds / 2 + 1]) / 2
        mj = (rounds % 2) ? jr[(rounds + 1) / 2] : (jr[rounds / 2] + jr[rounds / 2 + 1]) / 2
        printf "postbacks accepted durably: median %.0f jobs/s; ratio postback/baseline median %.3f\n", mj, m
        if (bad > 0) printf "NOTE: %d postbacks answered without a job (skipped or error)\n", bad
    }' "$out/postback-summary.txt"
if [ -n "$problems" ]; then echo "error log problems:"; echo "$problems"; fi
} | tee "$out/postback-bench.txt"
