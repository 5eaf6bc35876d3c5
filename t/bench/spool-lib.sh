# Shared helpers of the delivery-engine benchmarks (spool-*.sh, hook-e2e.sh,
# postback-bench.sh).  Sourced, not run.
#
# Each benchmark runs under its own temp dir ($SB, removed on exit unless
# BENCH_KEEP=1) with:
#   - "sf":   the nginx under test (the module, 2 workers), conf in $SB/sf;
#   - "mock": a second, plain nginx (1 worker) standing in for SiteFlow and
#             PrintNow with `return` locations: far faster than the Perl mock
#             (t/mock/mock-upstream.pl, ~3k req/s), so the module, not the
#             mock, is what a drain benchmark measures.  Its access logs
#             count the calls: creates.log (POST /api/order), fetches.log
#             (GET /api/v2/order/N), patches.log (PATCH to PrintNow).
# Ports are free ports picked at start (127.0.0.1 only).
# Every process started here is stopped by the EXIT trap, by its pid file.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
module=${SITEFLOW_MODULE:-$top/t/build/ngx_http_siteflow_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
mapping=${SITEFLOW_MAPPING:-$top/t/unit/transform/mapping.json}
order_json=$top/t/unit/transform/01-single-item.order.json
out=$top/t/bench/out
mkdir -p "$out"

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
[ -f "$module" ] || { echo "bench: $module is missing: run make build"; exit 1; }

SB=$(mktemp -d /tmp/siteflow-spoolbench.XXXXXX)
chmod 755 "$SB"      # the workers (user nobody) open the spool under it
mkdir -p "$SB/sf/logs" "$SB/mock/logs" "$SB/spool"
SB_PIDS=()          # extra processes (perl mocks) to stop

sb_cleanup() {
    local p
    [ -f "$SB/sf/logs/nginx.pid" ] && "$nginx" -p "$SB/sf/" -c nginx.conf -s stop 2>/dev/null
    [ -f "$SB/mock/logs/nginx.pid" ] && "$nginx" -p "$SB/mock/" -c nginx.conf -s stop 2>/dev/null
    for p in "${SB_PIDS[@]}" $(cat "$SB/wrk.pids" 2>/dev/null); do
        kill "$p" 2>/dev/null || true
    done
    sleep 0.2
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $SB"
    else
        rm -rf "$SB"
    fi
}
trap sb_cleanup EXIT

# a free TCP port on 127.0.0.1 (bound then released)
sb_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
                                      Listen => 1, ReuseAddr => 1) or die;
        print $s->sockport, "\n"'
}

SF_PORT=$(sb_port); SFAPI_PORT=$(sb_port); PN_PORT=$(sb_port)
# a port nothing listens on: PrintNow "down"
DEAD_PORT=$(sb_port)

now_ms() { date +%s%3N; }

# MOCK_TLS=1: the mock answers over TLS (a self-signed certificate made at
# start), and the nginx under test calls it with https, trusting it
MOCK_SCHEME=http
MOCK_TLS_TRUST=
if [ "${MOCK_TLS:-0}" = 1 ]; then
    MOCK_SCHEME=https
    MOCK_TLS_TRUST="siteflow_ssl_trusted_certificate $SB/mock/cert.pem;"
fi

# mock nginx: SiteFlow (/api/order...) and PrintNow (/api/v2/order/...) on
# both $SFAPI_PORT and $PN_PORT (one server: a wrk baseline reaches all)
sb_mock_start() {
    local order
    # the PrintNow order, one line, its id taken from the URL
    order=$(tr -d '\n' < "$order_json" | sed 's/"id": 5001/"id": $1/')
    local tls="" cert=""
    if [ "${MOCK_TLS:-0}" = 1 ]; then
        # a throw-away self-signed certificate for 127.0.0.1 (P-256)
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -nodes -days 2 -subj /CN=127.0.0.1 \
            -addext subjectAltName=IP:127.0.0.1 \
            -keyout "$SB/mock/key.pem" -out "$SB/mock/cert.pem" 2>/dev/null
        tls=" ssl"
        cert="ssl_certificate $SB/mock/cert.pem; ssl_certificate_key $SB/mock/key.pem; ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    cat > "$SB/mock/nginx.conf" <<CONF
worker_processes 1;
worker_cpu_affinity ${MOCK_CPU_MASK:-10};
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout ${MOCK_KEEPALIVE:-300s};
    server {
        listen 127.0.0.1:$SFAPI_PORT$tls backlog=4096;
        listen 127.0.0.1:$PN_PORT$tls backlog=4096;
        $cert
        # SiteFlow
        location = /api/order/validate { return 200 '{"valid":true}'; }
        location = /api/order {
            access_log logs/creates.log;
            return 201 '{"_id":"\$request_id"}';
        }
        location /api/order/bysourceid/ { return 404 '{"error":"not found"}'; }
        # PrintNow
        location ~ ^/api/v2/order/(\d+)\$ {
            access_log logs/fetches.log;
            return 200 '$order';
        }
        location /api/v2/order/ {
            access_log logs/patches.log;
            return 200 '{"success":true}';
        }
    }
}
CONF
    : > "$SB/mock/logs/creates.log"; : > "$SB/mock/logs/fetches.log"
    : > "$SB/mock/logs/patches.log"
    "$nginx" -p "$SB/mock/" -c nginx.conf
}

# the main context of a benchmark nginx's conf after its worker lines:
# error log (LEVEL), pid file, descriptors, events
sb_conf_main() {  # LEVEL
    cat <<CONF
error_log logs/error.log $1;
pid logs/nginx.pid;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
CONF
}

# the nginx under test.  Env: PN_URL (PrintNow), SF_URL (SiteFlow),
# SF_CONCURRENCY, SF_TIMEOUT, SF_BACKOFF, SF_EXTRA (more server lines),
# SF_QUEUE_WORKERS (siteflow_queue_workers, default the module's: 1),
# SF_CPU (worker_cpu_affinity, default none), SF_WORKERS (worker_processes,
# default 2)
sb_sf_conf() {
    cat > "$SB/sf/nginx.conf" <<CONF
load_module $module;
worker_processes ${SF_WORKERS:-2};
${SF_CPU:+worker_cpu_affinity $SF_CPU;}
$(sb_conf_main notice)
http {
    access_log off;
    keepalive_requests 10000000;
    siteflow_zone sf:4m;
    siteflow_spool $SB/spool size=${SF_SPOOL_SIZE:-256m};
    siteflow_retry_backoff ${SF_BACKOFF:-100ms 1s};
    siteflow_queue_concurrency ${SF_CONCURRENCY:-32};
    ${SF_QUEUE_WORKERS:+siteflow_queue_workers $SF_QUEUE_WORKERS;}
    siteflow_timeout ${SF_TIMEOUT:-10s};
    server {
        listen 127.0.0.1:$SF_PORT backlog=4096;
        server_name shop1;
        siteflow_api ${SF_URL:-$MOCK_SCHEME://127.0.0.1:$SFAPI_PORT/api} scheme=oneflow;
        siteflow_credentials 1234567890 FAKE-secret-not-real;
        siteflow_destination acme;
        siteflow_order_trigger "New Order";
        siteflow_mapping $mapping;
        siteflow_printnow_api ${PN_URL:-$MOCK_SCHEME://127.0.0.1:$PN_PORT};
        ${MOCK_TLS_TRUST:-}
        siteflow_printnow_credentials pntoken pnkey;
        location = /hook { siteflow_printnow_hook; siteflow_token T0K-bench-not-real; }
        location = /postback { siteflow_postback; siteflow_token T0K-bench-not-real; }
        # baselines: the same answers, from return
        location = /hook-base { return 202 '{"job":"1"}'; }
        location = /postback-base { return 200 '{"job":"1"}'; }
        location = /ok { return 200 ok; }
        ${SF_EXTRA:-}
    }
}
CONF
}

sb_sf_start() {
    "$nginx" -p "$SB/sf/" -c nginx.conf
    sb_sf_wait
}

sb_sf_wait() {  # until GET /ok answers
    local i
    for i in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$SF_PORT/ok" && return 0
        sleep 0.05
    done
    echo "bench: nginx under test did not answer"; exit 1
}

# stop and wait until the master has gone
sb_sf_stop() {
    local pid
    pid=$(cat "$SB/sf/logs/nginx.pid" 2>/dev/null) || return 0
    "$nginx" -p "$SB/sf/" -c nginx.conf -s "${1:-stop}" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
}

sb_workers() {  # pids of the workers of the nginx under test
    pgrep -P "$(cat "$SB/sf/logs/nginx.pid")" | sort -n
}

# "utime stime" of the workers of the nginx under test, clock ticks
# (/proc/PID/stat of each worker: its whole thread group)
sb_cpu_ticks() {
    local p u=0 k=0 s
    for p in $(sb_workers); do
        s=$(sed 's/.*) //' "/proc/$p/stat")
        u=$(( u + $(echo "$s" | awk '{ print $12 }') ))
        k=$(( k + $(echo "$s" | awk '{ print $13 }') ))
    done
    echo "$u $k"
}

# one run of the order path against the nginx under test, whose conf is
# written: a fresh spool, N hooks (quota) by wrk -t1 -cCONNS with LUA
# until the Nth create at the mock; wrk's output in $out/FILE.  Prints
# "t0 th t1 utime0 stime0 utime1 stime1 during": ms of the first hook,
# of the last hook answered and of the Nth create; the workers' clock
# ticks before and after; creates seen when the last hook was answered.
# Exits if a hook was refused, a create is missing or extra, or the error
# log has a problem.
sb_order_run() {  # NAME FILE LUA CONNS N TIMEOUT
    local name=$1 file=$out/$2 n=$5 t0 th t1 c0 c1 acc during creates problems
    rm -rf "$SB/spool"; mkdir -p "$SB/spool"
    : > "$SB/sf/logs/error.log"
    sb_sf_start
    # let the workers start (and worker 0 recover the empty spool)
    sleep 0.3
    : > "$SB/mock/logs/creates.log"
    c0=$(sb_cpu_ticks)
    t0=$(now_ms)
    th=$(sb_wrk_quota "$file" "$SB/hooks.flag" -c"$4" -s "$3" \
         "http://127.0.0.1:$SF_PORT" -- /hook 0 "$n" "$SB/hooks.flag")
    during=$(wc -l < "$SB/mock/logs/creates.log")
    t1=$(sb_wait_lines "$SB/mock/logs/creates.log" "$n" "$6")
    c1=$(sb_cpu_ticks)
    acc=$(awk '/^accepted/ { print $2 }' "$file")
    sleep 0.3
    creates=$(wc -l < "$SB/mock/logs/creates.log")
    problems=$(sb_log_problems "$SB/sf/logs/error.log")
    sb_sf_stop stop
    if [ "$acc" != "$n" ] || [ "$creates" != "$n" ] || [ -n "$problems" ]
    then
        echo "bench: $name: accepted $acc creates $creates of $n" >&2
        echo "$problems" >&2
        exit 1
    fi
    echo "$t0 $th $t1 $c0 $c1 $during"
}

# medians over the rounds: FILE has lines "NAME<round> v2 .. v7"; prints
# "NAME m2 .. m7" for each NAME (the round number taken off)
sb_medians() {  # FILE
    local k line f
    for k in $(awk '{ sub(/[0-9]+$/, "", $1); print $1 }' \
                   "$1" | sort -u); do
        line=$k
        for f in 2 3 4 5 6 7; do
            line="$line $(awk -v k="$k" -v f="$f" '
                     { n = $1; sub(/[0-9]+$/, "", n) } n == k { print $f }' \
                     "$1" | sort -n | awk '
                     { a[NR] = $1 }
                     END { m = a[(NR + 1) / 2]
                           if (NR % 2 == 0) m = (a[NR / 2] + a[NR / 2 + 1]) / 2
                           print m }')"
        done
        echo "$line"
    done
}

# wait until FILE has N lines; prints the ms timestamp at which it did;
# gives up after TIMEOUT seconds (returns 1)
sb_wait_lines() {  # FILE N TIMEOUT
    local deadline=$(( $(now_ms) + $3 * 1000 )) n
    while :; do
        n=$(wc -l < "$1")
        [ "$n" -ge "$2" ] && { now_ms; return 0; }
        [ "$(now_ms)" -gt "$deadline" ] && { echo "timeout ($n of $2)" >&2; return 1; }
        sleep 0.02
    done
}

# the lua script for hooks ($SB/hook.lua): unique numeric order ids
# BASE+1.. (per thread ranges), optional quota of hooks (QUOTA, 0 = none;
# past it the connections send GET /ok and the thread stops once QUOTA
# answers came), counts answers by status (any 2xx is accepted); args:
# PATH BASE QUOTA FLAGFILE (written when the quota is reached)
sb_hook_lua() {
    sb_hook_script "$SB/hook.lua" "" \
        "'{\"event\":\"order_created\",\"id\":\"' .. id .. '\"}'"
}

# the same with the whole order in the body ($SB/hook-order.lua, for
# siteflow_printnow_fetch off): order_json with the hook's unique id
sb_hook_order_lua() {
    local order_lua
    order_lua=$(tr -d '\n' < "$order_json" \
                | sed 's/"id": 5001/"id": ORDERID/; s/\\/\\\\/g; s/"/\\"/g')
    sb_hook_script "$SB/hook-order.lua" \
        "local tmpl = \"{\\\"event\\\":\\\"order_created\\\",\\\"order\\\":$order_lua}\"" \
        '(string.gsub(tmpl, "ORDERID", id))'
}

# writes a wrk script: FILE, PRELUDE (lua lines at the top), BODY (a lua
# expression of the hook's body, the order id in the string "id")
sb_hook_script() {  # FILE PRELUDE BODY
    cat > "$1" <<LUA
$2
local threads = {}
-- the counter of setup() (the main state); each thread's "tid" is the
-- global thread:set() gives it (a file-level "local tid" would hide it)
local next_tid = 0
function setup(thread)
    thread:set("tid", next_tid)
    next_tid = next_tid + 1
    table.insert(threads, thread)
end
function init(args)
    path = args[1]
    base = tonumber(args[2]) + tid * 10000000
    quota = tonumber(args[3])
    flag = args[4]
    sent = 0
    answered = 0
    s2xx = 0
    other = 0
    ok = wrk.format("GET", "/ok")
    -- wrk calls request() once on thread 0 to check the request and
    -- throws the result away: that call must not use up an id
    verify = (tid == 0)
end
function request()
    if verify then verify = false; return ok end
    if quota > 0 and sent >= quota then return ok end
    sent = sent + 1
    local id = tostring(base + sent)
    return wrk.format("POST", path .. "?token=T0K-bench-not-real",
        { ["Content-Type"] = "application/json" }, $3)
end
function response(status, headers, body)
    if #body == 2 then return end          -- "ok" of GET /ok
    answered = answered + 1
    if status >= 200 and status < 300 then s2xx = s2xx + 1 else other = other + 1 end
    if quota > 0 and answered >= quota then
        -- wrk's main thread sleeps for -d whatever its threads do: the
        -- caller sees this file and interrupts it (SIGINT)
        local f = io.open(flag, "w"); f:write("done\n"); f:close()
        wrk.thread:stop()
    end
end
function done(summary, latency, requests)
    local a, o = 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("s2xx"); o = o + t:get("other")
    end
    io.write(string.format("accepted %d other %d\n", a, o))
end
LUA
}

# decodes the spool: distinct job ids of JOB records (journals + snapshots)
sb_spool_count() {  # DIR -> "jobs N records R bad B"
    perl -e '
        my %jobs; my ($recs, $bad) = (0, 0);
        for my $f (sort glob("$ARGV[0]/*.sfq")) {
            open my $fh, "<:raw", $f or die "$f: $!";
            local $/; my $d = <$fh>; close $fh;
            my $o = 0;
            while ($o + 32 <= length $d) {
                my ($magic, $type, $flags, $len, $crc, $id, $t) =
                    unpack "V v v V V Q< Q<", substr($d, $o, 32);
                if ($magic != 0x31514653) { $bad++ if $magic != 0; last }
                $recs++;
                $jobs{$id} = 1 if $type == 1;
                $o += 32 + (($len + 7) & ~7);
            }
        }
        printf "jobs %d records %d bad %d\n", scalar(keys %jobs), $recs, $bad;
    ' "$1"
}

# wrk summary fields from a wrk output file
wrk_rps() { awk '/Requests\/sec/ { print $2 }' "$1"; }
wrk_p99() { awk '$1 == "99%" { print $2 }' "$1"; }
wrk_p50() { awk '$1 == "50%" { print $2 }' "$1"; }
# wrk latency "1.23ms" / "456.00us" / "1.2s" -> ms
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
        else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
        else print v }'
}

# alerts / crits / emergs and worker exits in the error log
sb_log_problems() {  # LOGFILE
    grep -E '\[(alert|crit|emerg)\]|exited on signal|segfault' "$1" | head -20 || true
}

# the lua script of the upstream-capacity baselines: cycles through the
# three calls of an order job (GET the PrintNow order, POST validate, POST
# create, each with keep-alive) or, with MIX=create, only POST /api/order;
# stops once QUOTA answers came.  args: QUOTA MIX FLAGFILE
sb_upstream_lua() {
    local body
    body=$(tr -d '\n' < "$order_json" | sed 's/\\/\\\\/g; s/"/\\"/g')
    cat > "$SB/upstream.lua" <<LUA
local threads = {}
function setup(thread) table.insert(threads, thread) end
local body = "$body"
function init(args)
    quota = tonumber(args[1])
    mix = args[2]
    flag = args[3]
    sent = 0
    answered = 0
    good = 0
end
function request()
    sent = sent + 1
    local k = (mix == "create") and 2 or (sent % 3)
    if k == 0 then
        return wrk.format("GET", "/api/v2/order/" .. sent)
    elseif k == 1 then
        return wrk.format("POST", "/api/order/validate",
            { ["Content-Type"] = "application/json" }, body)
    end
    return wrk.format("POST", "/api/order",
        { ["Content-Type"] = "application/json" }, body)
end
function response(status, headers, body)
    answered = answered + 1
    if status < 300 then good = good + 1 end
    if answered >= quota then
        local f = io.open(flag, "w"); f:write("done"); f:close()
        wrk.thread:stop()
    end
end
function done(summary, latency, requests)
    local g = 0
    for _, t in ipairs(threads) do g = g + t:get("good") end
    io.write(string.format("good %d\n", g))
end
LUA
}

# (the baseline script needs no such care: its requests are all alike)

# runs wrk (pinned to CPU 1, 1 thread, output in FILE) with a quota script
# until the script writes its flag file, then interrupts it; prints the ms
# timestamp at which the quota was reached.  wrk ARGS... must end with
# the flag file as the script's last argument.
sb_wrk_quota() {  # FILE FLAG WRK-ARGS...
    local file=$1 flag=$2 pid t
    shift 2
    rm -f "$flag"
    taskset -c 1 wrk -t1 -d600s "$@" > "$file" &
    pid=$!
    echo "$pid" >> "$SB/wrk.pids"     # may run in a subshell: the trap reads this
    while [ ! -e "$flag" ]; do
        kill -0 "$pid" 2>/dev/null || { echo "bench: wrk ended early" >&2; return 1; }
        sleep 0.01
    done
    t=$(now_ms)
    kill -INT "$pid"
    wait "$pid" || true
    echo "$t"
}

# sends exactly QUOTA hooks (unique ids from BASE+1) over CONNS
# connections; prints the ms timestamp when the last was answered
sb_send_hooks() {  # QUOTA BASE CONNS FILE
    sb_wrk_quota "$4" "$SB/hooks.flag" -c"$3" --latency -s "$SB/hook.lua" \
        "http://127.0.0.1:$SF_PORT" -- /hook "$2" "$1" "$SB/hooks.flag"
}
