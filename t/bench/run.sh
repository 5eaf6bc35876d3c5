#!/usr/bin/env bash
# Runs every benchmark under t/bench/; figures go to t/bench/out/.
set -euo pipefail
cd "$(dirname "$0")"
./ship-guard.sh
./ship-api.sh
./ship-callgrind.sh
./guard-callgrind.sh
./transform.sh
./hook-log.sh
# delivery engine (issues 3, 4, 5): each starts its own nginx and mocks
./spool-enqueue.sh
./spool-drain.sh
./spool-latency.sh
./spool-rss.sh
./hook-e2e.sh
./postback-bench.sh
./spool-stall.sh
# the order path (issue 13): CPU per order, orders/s, drain; instructions
./order-cpu.sh
./order-callgrind.sh
FETCH=on ./order-callgrind.sh
MOCK_TLS=1 ./order-cpu.sh          # the same over TLS (connections kept)
# against an ngx_lua bridge, same run: Debian's libnginx-mod-http-lua and
# lua-cjson (bench only; skipped without them)
if [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
    ./lua-bridge.sh
    BRIDGE=1 ./order-callgrind.sh
    BRIDGE=1 FETCH=on ./order-callgrind.sh
else
    echo "bench: lua-bridge.sh skipped (apt-get install libnginx-mod-http-lua lua-cjson)"
fi
# the PostgreSQL queue (siteflow_queue): PostgreSQL's server package and a
# module built with libpq
./pg-enqueue.sh
./pg-drain.sh
