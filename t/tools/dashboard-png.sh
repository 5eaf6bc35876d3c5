#!/usr/bin/env bash
# The picture of the Grafana dashboard in docs/admin-api.md (make
# dashboard-png), drawn from the demo's own metrics, without Grafana (not
# packaged in Debian):
#
#   1. starts the demo (t/demo/run.sh with KEEP=1: nginx on 127.0.0.1:8090
#      with the module, the mock SiteFlow and PrintNow);
#   2. t/tools/dashboard-traffic.pl sends the demo's kinds of calls for
#      DASHBOARD_SECONDS (default 240; a SiteFlow outage in the middle)
#      and scrapes /siteflow/admin/metrics every DASHBOARD_INTERVAL
#      seconds (default 5);
#   3. stops the demo;
#   4. t/tools/dashboard.html + dashboard.js, given
#      conf-examples/grafana-dashboard.json and the scrapes, evaluate each
#      panel's query and draw the panels where the dashboard's gridPos
#      puts them (see dashboard.js for the PromQL it understands; any
#      other panel says "not rendered"); headless Chromium takes the
#      screenshot.
#
#   t/tools/dashboard-png.sh [OUT.png]       (default docs/img/dashboard.png)
#   t/tools/dashboard-png.sh --scrapes FILE [OUT.png]
#                       draw from scrapes kept before (DASHBOARD_KEEP=FILE
#                       keeps them) instead of running the demo
#
# Needs the built module (make build), chromium, perl; the demo's ports
# 8090-8093 free.

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
scrapes=
dashboard=${DASHBOARD_JSON:-$top/conf-examples/grafana-dashboard.json}

if [ "${1:-}" = "--scrapes" ]; then
    scrapes=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    shift 2
fi
out=${1:-$top/docs/img/dashboard.png}

[ -x "$chromium" ] || { echo "dashboard-png: no $chromium" \
                             "(apt-get install chromium)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/siteflow-dashboard.XXXXXX)
demo=
cleanup() {
    if [ -n "$demo" ]; then
        "$top/t/demo/run.sh" --stop "$demo" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "$scrapes" ]; then
    echo "dashboard-png: starting the demo (t/demo/run.sh, KEEP=1)"
    KEEP=1 "$top/t/demo/run.sh" > "$tmp/demo.out" 2>&1 \
        || { cat "$tmp/demo.out"; exit 1; }
    demo=$(sed -n 's|.*run.sh --stop \(/[^ ]*\)$|\1|p' "$tmp/demo.out")
    [ -n "$demo" ] || { cat "$tmp/demo.out"; exit 1; }

    secs=${DASHBOARD_SECONDS:-240}
    echo "dashboard-png: $secs s of traffic, scraping the metrics"
    scrapes=$tmp/scrapes.json
    "$top/t/tools/dashboard-traffic.pl" --order "$top/t/demo/order-5001.json" \
        --out "$scrapes" --seconds "$secs" \
        --interval "${DASHBOARD_INTERVAL:-5}"

    "$top/t/demo/run.sh" --stop "$demo" >/dev/null
    demo=
    if [ -n "${DASHBOARD_KEEP:-}" ]; then
        cp "$scrapes" "$DASHBOARD_KEEP"
        echo "dashboard-png: scrapes kept in $DASHBOARD_KEEP"
    fi
fi

# the page, its script and data.js (the dashboard and the scrapes)
mkdir "$tmp/page"
cp "$top/t/tools/dashboard.html" "$top/t/tools/dashboard.js" "$tmp/page/"
height=$(perl -MJSON::PP -e '
    local $/; open my $f, "<", $ARGV[0] or die "$ARGV[0]: $!";
    my $d = decode_json(<$f>); my $b = 0;
    for my $p (map { ($_, @{ $_->{panels} || [] }) } @{ $d->{panels} }) {
        my $g = $p->{gridPos}; my $e = $g->{y} + $g->{h};
        $b = $e if $e > $b;
    }
    print 38 * $b + 80;' "$dashboard")
{
    printf 'window.SF_DASHBOARD = '
    cat "$dashboard"
    printf ';\nwindow.SF_SCRAPES = '
    cat "$scrapes"
    printf ';\n'
} > "$tmp/page/data.js"

# the profile stays under $tmp; chromium has exited when it returns
sandbox=
[ "$(id -u)" = 0 ] && sandbox=--no-sandbox
"$chromium" --headless=new $sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$tmp/profile" --no-first-run \
    --force-device-scale-factor=1 --window-size=1200,"$height" \
    --virtual-time-budget=5000 --screenshot="$tmp/shot.png" \
    "file://$tmp/page/dashboard.html" > "$tmp/chromium.log" 2>&1 \
    || { cat "$tmp/chromium.log"; exit 1; }
[ -s "$tmp/shot.png" ] || { cat "$tmp/chromium.log"; exit 1; }
# its helper processes may outlive it for a moment: wait (bounded) until
# none uses the profile, so that removing it cannot race their writes
for i in $(seq 100); do
    pgrep -f -- "--user-data-dir=$tmp/profile" >/dev/null || break
    sleep 0.1
done

mkdir -p "$(dirname "$out")"
cp "$tmp/shot.png" "$out"
echo "dashboard-png: $out ($(stat -c %s "$out") bytes)"
