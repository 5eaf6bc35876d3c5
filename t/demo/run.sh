#!/usr/bin/env bash
# Local demo of the whole bridge (make demo): nginx with the module
# (conf-examples/demo.conf) between a mock PrintNow and a mock SiteFlow
# (t/mock/mock-upstream.pl), and a sample order flowing both ways:
#
#   1. PrintNow's webhook for order 5001 -> 202, the job is on disk
#   2. the module fetches the order from PrintNow, validates and creates it
#      in SiteFlow with signed requests
#   3. SiteFlow's "shipped" postback -> PrintNow is marked shipped with the
#      tracking number
#   4. the same hook again is skipped (the order was sent once)
#   5. a signed Ship API call passes the guard, an unsigned one does not
#   6. the Site Flow Log, the queue and the metrics of the admin API
#
# Everything listens on 127.0.0.1 (ports 8090-8093); all is stopped at the
# end, unless KEEP=1 (make demo KEEP=1): then nginx and the mocks keep
# running, so the console can be opened, and the commands that stop them
# are printed (t/demo/run.sh --stop DIR runs them).  Prints what each side
# saw.

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
nginx=${NGINX_BIN:-/usr/sbin/nginx}

# t/demo/run.sh --stop DIR: stop a demo left running by KEEP=1
if [ "${1:-}" = "--stop" ]; then
    prefix=${2:?usage: run.sh --stop DIR}
    [ -f "$prefix/conf/nginx.conf" ] || { echo "demo: no demo in $prefix"; exit 1; }
    "$nginx" -p "$prefix/" -c conf/nginx.conf -s stop 2>/dev/null || true
    for m in siteflow printnow; do
        [ -f "$prefix/$m.pid" ] && kill "$(cat "$prefix/$m.pid")" 2>/dev/null
    done
    for i in $(seq 50); do
        [ -f "$prefix/logs/nginx.pid" ] || break
        sleep 0.1
    done
    rm -rf "$prefix"
    echo "demo: stopped, $prefix removed"
    exit 0
fi

module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
mock="$top/t/mock/mock-upstream.pl"
base=http://127.0.0.1:8090

[ -f "$module" ] || { echo "demo: build the module first (make build)"; exit 1; }

prefix=$(mktemp -d /tmp/siteflow-demo.XXXXXX)
chmod 755 "$prefix"     # the worker processes (user nobody) use the spool
mkdir -p "$prefix/logs" "$prefix/conf"
sed "s|__MODULE__|$module|g" "$top/conf-examples/demo.conf" \
    > "$prefix/conf/nginx.conf"
cp "$top/conf-examples/demo-mapping.json" "$prefix/conf/"

# mock SiteFlow: validate 200, create 201 with an id, look-ups 404
cat > "$prefix/siteflow.json" <<'JSON'
[{"method": "POST", "path": "/api/order/validate", "json": {"valid": true}},
 {"method": "POST", "path": "/api/order", "status": 201,
  "json": {"_id": "{{hex24}}", "timestamp": "2026-11-23T10:00:00.000Z"}},
 {"method": "GET", "path_prefix": "/api/order/bysourceid/", "status": 404,
  "json": {"error": {"message": "order not found", "code": 404}}}]
JSON

# mock PrintNow: the order, and 200 to the updates
perl -MJSON::PP -e '
    local $/; open my $f, "<", $ARGV[0] or die; my $o = decode_json(<$f>);
    print encode_json([
        { method => "GET", path => "/api/v2/order/5001", json => $o },
        { method => "PATCH", path_prefix => "/api/v2/order/",
          json => { success => JSON::PP::true } } ]);
' "$top/t/demo/order-5001.json" > "$prefix/printnow.json"

stop() {
    "$nginx" -p "$prefix/" -c conf/nginx.conf -s stop 2>/dev/null || true
    for m in siteflow printnow; do
        [ -f "$prefix/$m.pid" ] && kill "$(cat "$prefix/$m.pid")" 2>/dev/null
    done
    true
}
keep=${KEEP:-0}
# KEEP=1 keeps it running only after a complete run
trap 'rc=$?; [ "$keep" = 1 ] && [ "$rc" = 0 ] || stop' EXIT

perl "$mock" --port 8091 --daemon --pidfile "$prefix/siteflow.pid" \
     --log "$prefix/siteflow.log" --rules "$prefix/siteflow.json"
perl "$mock" --port 8092 --daemon --pidfile "$prefix/printnow.pid" \
     --log "$prefix/printnow.log" --rules "$prefix/printnow.json"

"$nginx" -p "$prefix/" -c conf/nginx.conf -t -q
"$nginx" -p "$prefix/" -c conf/nginx.conf

for i in $(seq 50); do
    curl -s -o /dev/null "$base/" && break
    sleep 0.1
done

# the requests a mock saw, one line each (no bodies)
seen() {
    curl -s "http://127.0.0.1:$1/_mock/requests" | perl -MJSON::PP -e '
        local $/; my $r = decode_json(<STDIN>);
        for (@$r) {
            my $h = $_->{headers};
            my @auth = grep { /^(x-oneflow-|authorization)/ } sort keys %$h;
            printf "    %s %s%s  [%s]\n", $_->{method}, $_->{path},
                   $_->{query} ? "?$_->{query}" : "", join(" ", @auth);
        }'
}

# wait until a mock saw a request (bounded)
wait_for() {
    for i in $(seq 100); do
        curl -s "http://127.0.0.1:$1/_mock/requests?path=$2" \
            | grep -q '"method"' && return 0
        sleep 0.1
    done
    echo "demo: timed out waiting for $2 on port $1"; exit 1
}

step() { echo; echo "==> $*"; }

step "1. PrintNow calls the webhook: order 5001 was created"
curl -s -i "$base/siteflow/hook?token=demo-hook-token-not-real" \
     -H 'Content-Type: application/json' \
     --data '{"event": "order_created", "id": 5001}' | tr -d '\r' \
     | sed -n '1p;$p' | sed 's/^/    /'

step "2. the order reaches SiteFlow (signed OneFlow requests)"
wait_for 8091 /api/order
sleep 0.2
echo "    PrintNow saw:"; seen 8092
echo "    SiteFlow saw:"; seen 8091
echo "    the order as SiteFlow received it (orderData):"
curl -s "http://127.0.0.1:8091/_mock/requests?path=/api/order" \
    | perl -MJSON::PP -e '
        local $/; my $r = decode_json(<STDIN>);
        my ($c) = grep { $_->{path} eq "/api/order" } @$r;
        my $o = decode_json($c->{body});
        my $d = $o->{orderData};
        printf "      sourceOrderId %s, customer %s, %d item(s): %s\n",
            $d->{sourceOrderId}, $d->{customerName}, scalar @{$d->{items}},
            join(", ", map { "$_->{sku} x $_->{quantity}" } @{$d->{items}});
        printf "      ship to %s, %s %s, %s\n",
            @{$d->{shipments}[0]{shipTo}}{qw(name town postcode isoCountry)};'

step "3. SiteFlow posts back: shipped, with a tracking number"
curl -s -i "$base/siteflow/postback?token=demo-postback-token-not-real" \
     -H 'Content-Type: application/json' \
     --data '{"event": "shipped", "sourceOrderId": "PN-5001",
              "trackingNumber": "1Z999AA10123456784", "carrier": "UPS",
              "shipDate": "2026-11-23"}' | tr -d '\r' \
     | sed -n '1p;$p' | sed 's/^/    /'
wait_for 8092 /api/v2/order/5001/shipped
echo "    PrintNow saw:"; seen 8092 | tail -1
curl -s "http://127.0.0.1:8092/_mock/requests?path=/api/v2/order/5001/shipped" \
    | perl -MJSON::PP -e 'local $/; my $r = decode_json(<STDIN>);
                          print "      body: $r->[0]{body}\n"'

step "4. the same webhook again (and PrintNow's echo): nothing is sent twice"
curl -s "$base/siteflow/hook?token=demo-hook-token-not-real" \
     -H 'Content-Type: application/json' \
     --data '{"event": "order_updated", "id": 5001}' | sed 's/^/    /'

step "5. the Ship API guard: a signed call passes, an unsigned one does not"
nonce=$(openssl rand -hex 24)
sig=$(printf '%s' "$nonce" \
      | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef01234567 \
                     -binary | openssl base64 -A)
ship='{"shipmentId":"demo-1","orderNumber":"PN-5001",
  "shipTo":{"name":"Jane Smith","address1":"123 Main St","town":"New York",
            "postcode":"10001","isoCountry":"US"},
  "return":{"name":"Acme Print","address1":"1 Print Way","town":"Newark",
            "postcode":"07102","isoCountry":"US"},
  "shipper":{"name":"Acme Print","address1":"1 Print Way","town":"Newark",
             "postcode":"07102","isoCountry":"US"},
  "packages":[{"weight":120,"items":[{"type":"production",
               "sourceItemId":"PN-5001-77","count":1}]}]}'
curl -s -i "$base/ship/shipment" -H 'Content-Type: application/json' \
     -H "X-SiteFlow-Nonce: $nonce" \
     -H "X-SiteFlow-Signature: demo-partner:$sig" --data-binary "$ship" \
     | tr -d '\r' | grep -E '^HTTP|^X-SiteFlow|^\{' | sed 's/^/    /'
curl -s -i "$base/ship/shipment" -H 'Content-Type: application/json' \
     --data-binary "$ship" | tr -d '\r' | grep -E '^HTTP|^\{' \
     | sed 's/^/    /'

step "6. the admin API: the queue, the Site Flow Log, the metrics"
curl -s "$base/siteflow/admin/queue" | perl -MJSON::PP -e '
    local $/; my $q = decode_json(<STDIN>);
    printf "    job %s %-6s order %s: %s (%d attempt(s))%s\n",
        $_->{id}, $_->{kind}, $_->{order_id}, $_->{state}, $_->{attempts},
        $_->{last_error} ? " - $_->{last_error}" : ""
        for reverse @{$q->{jobs}};'
curl -s "$base/siteflow/admin/log" | perl -MJSON::PP -e '
    local $/; my $l = decode_json(<STDIN>);
    printf "    %s %-3s %-6s %-48s %s\n", $_->{time}, $_->{direction} eq "in"
        ? "in" : "out", $_->{method}, substr($_->{url}, 0, 48),
        $_->{status} // "-" for reverse @{$l->{entries}};'
curl -s "$base/siteflow/admin/metrics" \
    | grep -E '^siteflow_(hooks|postbacks|deliveries|jobs)' | sed 's/^/    /'

echo
echo "Console: $base/siteflow/admin/ (while the demo runs).  nginx error log:"
echo "$prefix/logs/error.log"
grep -E '\[(alert|crit|emerg)\]' "$prefix/logs/error.log" | sed 's/^/    /' \
    || true

if [ "$keep" = 1 ]; then
    echo
    echo "KEEP=1: the demo keeps running (nginx on 127.0.0.1:8090 and 8093, the"
    echo "mocks on 8091 and 8092).  Open $base/siteflow/admin/ in a browser."
    echo "To stop it:"
    echo
    echo "    $top/t/demo/run.sh --stop $prefix"
    echo
    echo "(which runs: $nginx -p $prefix/ -c conf/nginx.conf -s stop;"
    echo " kill \$(cat $prefix/siteflow.pid) \$(cat $prefix/printnow.pid))"
fi
