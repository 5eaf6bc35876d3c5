# The ngx_lua bridge of t/bench/lua-bridge.sh and order-callgrind.sh
# (BRIDGE=1): what a user could write in an afternoon instead of the
# module.  Sourced after spool-lib.sh, not run.
#
# For each PrintNow hook its /hook decodes the hook, (with the id only)
# fetches the order from PrintNow, maps it to a SiteFlow order in Lua (the
# fields of t/unit/transform/01-single-item.expected.json), signs the call
# (x-oneflow-* headers, HMAC-SHA256 through LuaJIT's FFI into the
# process's own libcrypto) and POSTs it to SiteFlow through a subrequest
# to a keep-alive proxy_pass, then answers the hook 200 with SiteFlow's
# answer.  It keeps nothing on disk; a hook whose create fails is answered
# 502.  Needs Debian's libnginx-mod-http-lua and lua-cjson (bench only).

luamod=/usr/lib/nginx/modules/ngx_http_lua_module.so
ndkmod=/usr/lib/nginx/modules/ndk_http_module.so
[ -f "$luamod" ] && [ -f "$ndkmod" ] || {
    echo "bench: $luamod is missing (apt-get install libnginx-mod-http-lua lua-cjson)"
    exit 1
}

# writes $SB/sf/nginx.conf: one worker (SB_BRIDGE_MAIN: lines for the main
# context, e.g. "daemon off; master_process off;")
# VALIDATE = 1 also validates before the create
sb_bridge_conf() {  # VALIDATE
    cat > "$SB/sf/nginx.conf" <<CONF
load_module $ndkmod;
load_module $luamod;
worker_processes 1;
${SB_BRIDGE_MAIN:-}
$(sb_conf_main notice)
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_buffer_size 64k;
    upstream siteflow { server 127.0.0.1:$SFAPI_PORT; keepalive 64; }
    upstream printnow { server 127.0.0.1:$PN_PORT; keepalive 64; }
    init_by_lua_block {
        bridge = { validate = ($1 == 1) }
        local cjson = require "cjson.safe"
        local ffi = require "ffi"
        ffi.cdef[[
            typedef struct evp_md_st EVP_MD;
            const EVP_MD *EVP_sha256(void);
            unsigned char *HMAC(const EVP_MD *md, const void *key, int klen,
                                const unsigned char *d, size_t n,
                                unsigned char *out, unsigned int *outlen);
        ]]
        local mac = ffi.new("unsigned char[32]")
        local maclen = ffi.new("unsigned int[1]")
        local key, secret = "1234567890", "FAKE-secret-not-real"
        local hex = {}
        for i = 0, 255 do hex[i] = string.format("%02x", i) end
        local products = {
            ["12"] = { sku = "BC-STD-85x55", code = "text",
                       path = "https://files.example.com/orders/%s/%s.pdf" },
        }
        local carriers = { ["UPS Ground"] = "ups_ground" }
        local ret = { name = "Acme Print Returns", companyName = "Acme Print Ltd",
                      address1 = "1 Print Way", town = "Springfield", state = "IL",
                      postcode = "62701", isoCountry = "US", phone = "+1 555 0100" }

        local function sign(method, path)
            local date = ngx.utctime()
            local s = method .. " " .. path .. " " .. date
            ffi.C.HMAC(ffi.C.EVP_sha256(), secret, #secret, s, #s, mac, maclen)
            local t = {}
            for i = 0, 31 do t[i + 1] = hex[mac[i]] end
            return key .. ":" .. table.concat(t), date
        end

        local function map(o)
            local a, c, items = o.shipping_address or {}, o.customer or {}, {}
            for _, it in ipairs(o.items or {}) do
                local p = products[tostring(it.product_id)]
                if p then
                    local opt = {}
                    for _, op in ipairs(it.options or {}) do opt[op.name] = op end
                    items[#items + 1] = {
                        sourceItemId = tostring(it.id), sku = p.sku,
                        quantity = tonumber(it.quantity), description = it.name,
                        shipmentIndex = 0,
                        components = { {
                            code = p.code, fetch = true,
                            path = string.format(p.path, o.id, it.id),
                            attributes = {
                                finish = opt.Finish and opt.Finish.value,
                                paperCode = opt.Paper and opt.Paper.value_integration_id,
                                copies = 1, duplex = true } } },
                        extraData = { printnowItemId = tostring(it.id) } }
                end
            end
            return { destination = { name = "acme-print" }, orderData = {
                sourceOrderId = "PN-" .. o.id,
                customerName = (c.first_name or "") .. " " .. (c.last_name or ""),
                email = c.email, items = items,
                shipments = { {
                    shipmentIndex = 0, returnAddress = ret,
                    carrier = { alias = carriers[o.shipping_service] or "standard" },
                    shipTo = {
                        name = (a.first_name or "") .. " " .. (a.last_name or ""),
                        companyName = a.company, address1 = a.line_1,
                        address2 = a.line_2, town = a.city, state = a.state,
                        postcode = a.postal_code, isoCountry = a.country_code,
                        phone = a.phone, email = a.email } } },
                extraData = { printnowOrderId = tostring(o.id) } } }
        end

        local function call(uri, path, body)
            local auth, date = sign("POST", path)
            return ngx.location.capture(uri, { method = ngx.HTTP_POST, body = body,
                vars = { sf_auth = auth, sf_date = date } })
        end

        function bridge.hook()
            if ngx.var.arg_token ~= "T0K-bench-not-real" then return ngx.exit(401) end
            ngx.req.read_body()
            local hook = cjson.decode(ngx.req.get_body_data() or "")
            if type(hook) ~= "table" then
                ngx.status = 400; ngx.say('{"error":"not JSON"}'); return
            end
            local order = hook.order
            if type(order) ~= "table" then
                local r = ngx.location.capture("/pn/" .. tostring(hook.id))
                order = r.status == 200 and cjson.decode(r.body)
                if type(order) ~= "table" then
                    ngx.status = 502; ngx.say('{"error":"fetch failed"}'); return
                end
            end
            local body = cjson.encode(map(order))
            if bridge.validate then
                local r = call("/sf/validate", "/api/order/validate", body)
                if r.status ~= 200 then
                    ngx.status = 502; ngx.say('{"error":"not valid"}'); return
                end
            end
            local r = call("/sf", "/api/order", body)
            if r.status ~= 201 then
                ngx.status = 502; ngx.say('{"error":"create failed"}'); return
            end
            ngx.status = 200
            ngx.header.content_length = #r.body
            ngx.print(r.body)
        end
    }
    server {
        listen 127.0.0.1:$SF_PORT backlog=4096;
        location = /hook { content_by_lua_block { bridge.hook() } }
        location = /ok { return 200 ok; }
        # defines \$sf_auth and \$sf_date for the subrequests' vars
        location = /vars { set \$sf_auth ""; set \$sf_date ""; return 404; }
        # /sf: create, /sf/validate: validate
        location ~ ^/sf(/validate)?\$ {
            internal;
            proxy_pass http://siteflow/api/order\$1;
            proxy_http_version 1.1;
            proxy_pass_request_headers off;
            proxy_set_header Connection "";
            proxy_set_header Content-Type application/json;
            proxy_set_header x-oneflow-authorization \$sf_auth;
            proxy_set_header x-oneflow-date \$sf_date;
            proxy_set_header x-oneflow-algorithm SHA256;
        }
        location ~ ^/pn/(\d+)\$ {
            internal;
            proxy_pass http://printnow/api/v2/order/\$1;
            proxy_http_version 1.1;
            proxy_pass_request_headers off;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Basic cG50b2tlbjpwbmtleQ==";
        }
    }
}
CONF
}
