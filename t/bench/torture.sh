#!/usr/bin/env bash
# The torture test of the delivery engine: ROUNDS rounds of hooks and
# postbacks under a random schedule of kill -9 (worker, master), reload,
# stop/start, SiteFlow/PrintNow 503/slow/reset/cut windows and a full
# disk, then a drain and the invariant check.  See t/bench/torture.pl and
# docs/testing.md ("The torture test").
#
#   t/bench/torture.sh                      20 rounds, a seed from the clock
#   ROUNDS=1 SEED=1234 t/bench/torture.sh   replays the round of seed 1234
#   ROUNDS=2 TORTURE_SECONDS=15 t/bench/torture.sh      (make check)
#   TORTURE_QUEUE=postgresql ROUNDS=3 t/bench/torture.sh
#                                   the queue on PostgreSQL, two edges
#                                   (TORTURE_QUEUE=postgresql make torture)
#
# Root is needed for the full-disk faults (a tmpfs is mounted for the
# spool of each round); without it they are left out, and said so.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-${NGINX_BIN:-/usr/sbin/nginx}}
export TEST_NGINX_LOAD_MODULES=${TEST_NGINX_LOAD_MODULES:-$top/t/build/ngx_http_siteflow_module.so}
exec perl "$top/t/bench/torture.pl"
