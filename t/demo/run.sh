#!/usr/bin/env bash
# Local demo of the Ship API guard: nginx with the module in front of a
# small shipping backend (conf-examples/demo-ship.conf), then three calls as
# SiteFlow would make them: a signed one that passes, an unsigned one and a
# replayed one that are refused.  Each is printed with its response.
#
# Everything listens on 127.0.0.1; nginx is stopped at the end.

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
url=http://127.0.0.1:8090/ship/shipment
partner=demo-partner
key=0123456789abcdef0123456789abcdef01234567   # the public test vector key

[ -f "$module" ] || { echo "demo: build the module first (make build)"; exit 1; }

prefix=$(mktemp -d /tmp/siteflow-demo.XXXXXX)
mkdir -p "$prefix/logs" "$prefix/conf"
sed "s|__MODULE__|$module|g" "$top/conf-examples/demo-ship.conf" \
    > "$prefix/conf/nginx.conf"

stop() {
    "$nginx" -p "$prefix/" -c conf/nginx.conf -s stop 2>/dev/null || true
}
trap stop EXIT

"$nginx" -p "$prefix/" -c conf/nginx.conf -t -q
"$nginx" -p "$prefix/" -c conf/nginx.conf

for i in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:8090/" && break
    sleep 0.1
done

body='{"shipmentId":"demo-1","orderNumber":"PN-5001",
  "shipTo":{"name":"Jane Smith","address1":"123 Main St","town":"New York",
            "postcode":"10001","isoCountry":"US"},
  "return":{"name":"Acme Print","address1":"1 Print Way","town":"Newark",
            "postcode":"07102","isoCountry":"US"},
  "shipper":{"name":"Acme Print","address1":"1 Print Way","town":"Newark",
             "postcode":"07102","isoCountry":"US"},
  "packages":[{"weight":120,"items":[{"type":"production",
               "sourceItemId":"PN-5001-77","count":1}]}]}'

nonce=$(openssl rand -hex 24)
sig=$(printf '%s' "$nonce" \
      | openssl dgst -sha256 -hmac "$key" -binary | openssl base64 -A)

call() {
    echo "==> $1"
    shift
    echo "    curl $url $*" | sed 's/-H /\n      -H /g'
    echo "<== response:"
    curl -s -i "$url" -H 'Content-Type: application/json' "$@" \
        --data-binary "$body" | tr -d '\r' | sed 's/^/    /'
    echo
    echo
}

call "1. signed by SiteFlow (partner $partner): passes to the shipping backend" \
     -H "X-SiteFlow-Nonce: $nonce" -H "X-SiteFlow-Signature: $partner:$sig"

call "2. unsigned: refused with 401 in SiteFlow's error shape"

call "3. the first request replayed (same nonce): refused" \
     -H "X-SiteFlow-Nonce: $nonce" -H "X-SiteFlow-Signature: $partner:$sig"

echo "Every response carries a fresh X-SiteFlow-Nonce and its signature,"
echo "as SiteFlow requires.  nginx error log: $prefix/logs/error.log"
grep -E '\[(error|warn)\]' "$prefix/logs/error.log" | sed 's/^/    /' || true
