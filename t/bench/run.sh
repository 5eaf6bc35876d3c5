#!/usr/bin/env bash
# Runs every benchmark under t/bench/; figures go to t/bench/out/.
set -euo pipefail
cd "$(dirname "$0")"
./ship-guard.sh
./guard-callgrind.sh
./transform.sh
./hook-log.sh
