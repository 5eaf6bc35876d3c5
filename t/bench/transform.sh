#!/usr/bin/env bash
# Benchmark: PrintNow order -> SiteFlow order (sf_transform_order) on the
# 3-item order t/unit/transform/02-multi-item.order.json, with its
# baseline in the same run: json_loads + json_dumps of the same order.
#
#   1. wall clock: median/p90/mean microseconds per call over RUNS calls
#      (default 20000), interleaved rounds, pinned to CPU 0 when taskset
#      is there;
#   2. callgrind: instructions per call, counted only inside the loop
#      function (--toggle-collect), so start-up and loading are excluded;
#      deterministic for a given binary and input.
#
# Target: median <= 20 us per 3-item transform.
#
#   t/bench/transform.sh [RUNS] [ORDER]
#
# Figures go to t/bench/out/transform.txt.

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-20000}
order=${2:-$top/t/unit/transform/02-multi-item.order.json}
mapping=$top/t/unit/transform/mapping.json
out=$top/t/bench/out
cg_runs=2000
mkdir -p "$out"

bin=$out/transform-bench
${CC:-cc} -O2 -g -std=gnu99 -Wall -Wextra -Werror \
    -I"$top/ngx_siteflow_module" -o "$bin" "$top/t/bench/transform-bench.c" \
    "$top/ngx_siteflow_module/sf_mapping.c" \
    "$top/ngx_siteflow_module/sf_transform.c" \
    "$top/ngx_siteflow_module/sf_json.c" -ljansson

pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)

{
    echo "== wall clock ($(uname -m), $(nproc) CPUs, ${CC:-cc} -O2)"
    "${pin[@]}" "$bin" "$mapping" "$order" "$runs"

    if command -v valgrind >/dev/null; then
        echo "== callgrind, instructions per call ($cg_runs calls)"
        for what in transform baseline; do
            valgrind --tool=callgrind --toggle-collect="bench_${what}_loop" \
                --callgrind-out-file="$out/callgrind.transform-$what" \
                "$bin" "$mapping" "$order" "$cg_runs" "$what" \
                >/dev/null 2>&1
            awk '/^summary:|^totals:/ { print $2; exit }' \
                "$out/callgrind.transform-$what" > "$out/ir.$what"
        done
        awk -v t="$(cat "$out/ir.transform")" \
            -v b="$(cat "$out/ir.baseline")" -v n="$cg_runs" 'BEGIN {
            printf "transform %.0f, baseline loads+dumps %.0f; ratio %.2f\n",
                   t / n, b / n, t / b
        }'
        rm -f "$out/ir.transform" "$out/ir.baseline"
    else
        echo "== callgrind skipped: valgrind is missing"
    fi
} | tee "$out/transform.txt"
