#!/usr/bin/env bash
# The console in headless Chromium against a running nginx: starts nginx
# with the module (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES) on PORT,
# makes two guarded Ship API calls so the log has entries, and runs
# t/browser/console-cdp.js, which prints TAP lines.
#
#   t/browser/console-test.sh PORT [SCREENSHOT]     (default docs/console.png)

set -euo pipefail
cd "$(dirname "$0")/../.."

port=${1:?usage: console-test.sh PORT [SCREENSHOT]}
shot=${2:-docs/console.png}
nginx=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
module=${TEST_NGINX_LOAD_MODULES:-$PWD/t/build/ngx_http_siteflow_module.so}
key=0123456789abcdef0123456789abcdef01234567

dir=$(mktemp -d)
cleanup() {
    local rc=$? pid
    if [ -f "$dir/nginx.pid" ]; then
        pid=$(cat "$dir/nginx.pid")
        kill "$pid" 2>/dev/null || true
        # nginx has exited (and written its last byte) before its files go
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$dir" || true
    exit "$rc"
}
trap cleanup EXIT

cat > "$dir/nginx.conf" << END
load_module $module;
daemon on;
master_process off;
error_log $dir/error.log info;
pid $dir/nginx.pid;
events { }
http {
    access_log off;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
    siteflow_zone console:1m;
    siteflow_spool $dir/spool;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        siteflow_storefront acme;

        # a storefront whose orders SiteFlow refuses: a real failed job
        siteflow_api http://127.0.0.1:$port/sf/api scheme=oneflow;
        siteflow_credentials 0123456789 FAKE-secret-not-real;
        siteflow_destination acme;
        siteflow_order_trigger "New Order";
        siteflow_mapping $PWD/t/unit/transform/mapping.json;
        siteflow_printnow_api http://127.0.0.1:$port/pn;
        siteflow_printnow_credentials pntoken pnkey;

        location = /hook {
            siteflow_printnow_hook;
            siteflow_token hook-token-example;
        }
        location /pn/api/v2/order/ {
            default_type application/json;
            alias $dir/orders/;
        }
        location = /sf/api/order/validate {
            default_type application/json;
            return 400 '{"success":false,"error":{"code":208,"message":"unknown sku BC-XX","validations":[]}}';
        }
        location /ship/ {
            siteflow_verify_signature on;
            siteflow_partner p1 $key;
            proxy_pass http://127.0.0.1:$port/backend/;
        }
        location /backend/ {
            default_type application/json;
            return 200 '{"shipped": true, "trackingNumber": "1Z999"}';
        }
        location /admin/ {
            siteflow_admin;
        }
    }
}
END

mkdir -p "$dir/orders"
sed 's/"id": 5001/"id": 1001/' t/unit/transform/01-single-item.order.json \
    > "$dir/orders/1001"

"$nginx" -p "$dir" -c "$dir/nginx.conf"

# the order job: fetched, validated, refused by SiteFlow: failed
job=$(curl -sf -H "Content-Type: application/json" \
           --data '{"event":"order_created","id":1001}' \
           "http://127.0.0.1:$port/hook?token=hook-token-example" \
      | sed -n 's/.*"job":"\([0-9]*\)".*/\1/p')

for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/admin/queue?state=failed" \
        | grep -q "\"id\":\"$job\"" && break
    sleep 0.1
done

for i in 1 2; do
    nonce="n$$-$i-$RANDOM$RANDOM"
    sig=$(printf %s "$nonce" \
          | openssl dgst -sha256 -hmac "$key" -binary | base64)
    q=""
    [ "$i" = 2 ] && q="?token=s3cr3t"
    curl -sf -o /dev/null -H "X-SiteFlow-Nonce: $nonce" \
         -H "X-SiteFlow-Signature: p1:$sig" \
         -H "Content-Type: application/json" \
         --data "{\"orderNumber\":\"100$i\",\"shipTo\":{\"name\":\"A\"}}" \
         "http://127.0.0.1:$port/ship/shipment$q"
done

SF_PROFILE_DIR=$dir node --experimental-websocket --no-warnings t/browser/console-cdp.js \
     "http://127.0.0.1:$port/admin/" "$shot" "$job"

if grep -E '\[(alert|crit|emerg)\]' "$dir/error.log"; then
    echo "not ok - nginx logged alerts"
    exit 1
fi
