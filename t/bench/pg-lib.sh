# Shared helpers of the PostgreSQL queue benchmarks (pg-enqueue.sh,
# pg-drain.sh).  Sourced, not run.  Builds on spool-lib.sh (its temp dir
# $SB, the mock nginx, wrk helpers, the spool decoder) and adds:
#
#   - a private PostgreSQL cluster started by t/lib/Siteflow/Pg.pm (the
#     tests' own: initdb in a temp dir, fsync=on, synchronous_commit=on,
#     shared_buffers=16MB, trust on 127.0.0.1), kept alive for the whole
#     benchmark by a small Perl "holder" process in the background; when
#     the holder gets SIGTERM (the EXIT trap) or its parent shell dies,
#     Siteflow::Pg's END block stops the cluster and removes its directory;
#   - pg_q SQL: psql on the cluster's unix socket, superuser, database
#     "siteflow" (the module's role "siteflow" owns it);
#   - edges: nginx instances with a prefix and port of their own
#     ($SB/NAME), the server block of spool-lib.sh's sb_sf_conf and a
#     queue line of the caller's (siteflow_spool or siteflow_queue);
#   - a "blackhole" upstream: a port that takes TCP connections (kernel
#     backlog) and never answers, to hold a delivering worker's only
#     call (siteflow_queue_concurrency 1) for as long as siteflow_timeout;
#   - a hook lua script that counts 202, 200, 503 and other answers.
#
# Ports: every port is picked in BENCH_PORT_LO..BENCH_PORT_HI (default
# 26000-26999, 127.0.0.1 only), spool-lib.sh's ports included (they are
# picked again here).  Env: BENCH_PG_POOL (pool=, default 2, the
# module's default), SITEFLOW_MODULE (the .so; it must be built with
# libpq), SITEFLOW_PG_BINDIR (PostgreSQL's bin dir, as Siteflow::Pg).

. "$(dirname "${BASH_SOURCE[0]}")/spool-lib.sh"

grep -q PQconnectStart "$module" || {
    echo "bench: $module was built without PostgreSQL support (libpq-dev)"; exit 1; }

PG_POOL=${BENCH_PG_POOL:-2}
PORT_LO=${BENCH_PORT_LO:-26000}
PORT_HI=${BENCH_PORT_HI:-26999}
PG_TAKEN=""          # ports handed out so far (a port is free until used)
PG_HOLDER=""         # pid of the Perl process that owns the cluster
PG_EDGES=()          # prefixes of the nginx edges started here

# a free port in PORT_LO..PORT_HI, not handed out before by this script
sb_port() {
    local p
    p=$(perl -MIO::Socket::INET -e '
        my ($lo, $hi, @taken) = @ARGV;
        my %t = map { $_ => 1 } @taken;
        for (1 .. 500) {
            my $p = $lo + int rand($hi - $lo + 1);
            next if $t{$p};
            my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
                LocalPort => $p, Listen => 1, ReuseAddr => 1) or next;
            close $s;
            print "$p\n";
            exit 0;
        }
        exit 1' "$PORT_LO" "$PORT_HI" $PG_TAKEN) \
        || { echo "bench: no free port in $PORT_LO-$PORT_HI" >&2; exit 1; }
    PG_TAKEN="$PG_TAKEN $p"
    echo "$p"
}
# spool-lib.sh picked its ports from the kernel's range: pick them again
SF_PORT=$(sb_port); PG_TAKEN="$PG_TAKEN $SF_PORT"
SFAPI_PORT=$(sb_port); PG_TAKEN="$PG_TAKEN $SFAPI_PORT"
PN_PORT=$(sb_port); PG_TAKEN="$PG_TAKEN $PN_PORT"
DEAD_PORT=$(sb_port); PG_TAKEN="$PG_TAKEN $DEAD_PORT"
# (sb_port runs in $(...): the caller adds the port to PG_TAKEN)
pg_port_new() {  # VAR: a new free port into VAR
    local p
    p=$(sb_port)
    PG_TAKEN="$PG_TAKEN $p"
    printf -v "$1" '%s' "$p"
}

pg_cleanup() {
    local p pid i
    for p in "${PG_EDGES[@]}"; do
        pg_edge_stop "$p" stop
    done
    if [ -n "$PG_HOLDER" ] && kill -0 "$PG_HOLDER" 2>/dev/null; then
        kill -TERM "$PG_HOLDER" 2>/dev/null || true
        for i in $(seq 1 300); do     # pg_ctl stop -m fast, up to 30 s
            kill -0 "$PG_HOLDER" 2>/dev/null || break
            sleep 0.1
        done
    fi
    sb_cleanup
}
trap pg_cleanup EXIT
trap 'exit 130' INT TERM

# starts the cluster (Siteflow::Pg::pg_start, port from our range); sets
# PG_URL, PG_DIR, PG_PORT, PG_BIN
pg_cluster_start() {
    local i
    pg_port_new PG_PORT
    TEST_SITEFLOW_PG_PORT=$PG_PORT perl -I"$top/t/lib" -MSiteflow::Pg -e '
        my ($info, $parent) = @ARGV;
        my $url = pg_start();
        open my $fh, ">", "$info.tmp" or die "$info.tmp: $!";
        print $fh "$url\n", pg_dir(), "\n", pg_port(), "\n",
                  "$Siteflow::Pg::Bin\n";
        close $fh;
        rename "$info.tmp", $info or die "$info: $!";
        # until SIGTERM (Siteflow::Pg: exit, END stops the cluster) or
        # until the benchmark shell is gone
        select(undef, undef, undef, 0.2) while getppid() == $parent;
    ' "$SB/pg.info" "$$" > "$SB/pg-holder.log" 2>&1 &
    PG_HOLDER=$!
    for i in $(seq 1 600); do
        [ -f "$SB/pg.info" ] && break
        kill -0 "$PG_HOLDER" 2>/dev/null || {
            echo "bench: PostgreSQL did not start:"; cat "$SB/pg-holder.log"; exit 1; }
        sleep 0.1
    done
    [ -f "$SB/pg.info" ] || { echo "bench: PostgreSQL did not start in 60 s"; exit 1; }
    { read -r PG_URL; read -r PG_DIR; read -r PG_PORT; read -r PG_BIN; } < "$SB/pg.info"
}

pg_q() {  # SQL -> psql's unaligned, tuples-only output
    "$PG_BIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" \
        -U postgres -d siteflow -c "$1"
}

# an empty queue (as Siteflow::Pg::pg_empty(), which t/151-pg-fleet.t's
# scenario() uses); no-op before the module has created its tables;
# retried when it meets a running edge's locks in a deadlock
pg_empty() {
    "$PG_BIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" \
        -U postgres -d siteflow -f "$(dirname "${BASH_SOURCE[0]}")/../lib/Siteflow/pg-empty.sql"
}

pg_version() { pg_q "SHOW server_version" | awk '{ print $1 }'; }

# an edge's nginx.conf: PREFIX PORT QUEUE-LINE (without the ";").  Env as
# sb_sf_conf: PN_URL, SF_URL, SF_CONCURRENCY, SF_TIMEOUT, SF_BACKOFF, and
# SF_WORKERS (default 2)
pg_edge_conf() {
    local p=$1 port=$2 queue=$3
    mkdir -p "$p/logs"
    cat > "$p/nginx.conf" <<CONF
load_module $module;
worker_processes ${SF_WORKERS:-2};
$(sb_conf_main "${SF_LOGLEVEL:-notice}")
http {
    access_log off;
    keepalive_requests 10000000;
    siteflow_zone sf:4m;
    $queue;
    siteflow_retry_backoff ${SF_BACKOFF:-100ms 1s};
    siteflow_queue_concurrency ${SF_CONCURRENCY:-32};
    siteflow_timeout ${SF_TIMEOUT:-10s};
    server {
        listen 127.0.0.1:$port backlog=4096;
        server_name shop1;
        siteflow_api ${SF_URL:-http://127.0.0.1:$SFAPI_PORT/api} scheme=oneflow;
        siteflow_credentials 1234567890 FAKE-secret-not-real;
        siteflow_destination acme;
        siteflow_order_trigger "New Order";
        siteflow_mapping $mapping;
        siteflow_printnow_api ${PN_URL:-http://127.0.0.1:$PN_PORT};
        siteflow_printnow_credentials pntoken pnkey;
        location = /hook { siteflow_printnow_hook; siteflow_token T0K-bench-not-real; }
        location = /ok { return 200 ok; }
    }
}
CONF
}

# starts the edge (does not wait: see pg_edge_wait)
pg_edge_launch() {  # PREFIX
    case " ${PG_EDGES[*]} " in *" $1 "*) ;; *) PG_EDGES+=("$1") ;; esac
    rm -f "$1/logs/nginx.pid"
    "$nginx" -p "$1/" -c nginx.conf
}

pg_edge_wait() {  # PORT: until GET /ok answers
    local i
    for i in $(seq 1 200); do
        curl -s -o /dev/null "http://127.0.0.1:$1/ok" && return 0
        sleep 0.05
    done
    echo "bench: the edge on port $1 did not answer"; exit 1
}

# stop (TERM, default) or quit (QUIT), and wait until the master has gone
pg_edge_stop() {  # PREFIX [stop|quit]
    local pid i
    pid=$(cat "$1/logs/nginx.pid" 2>/dev/null) || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    "$nginx" -p "$1/" -c nginx.conf -s "${2:-stop}" 2>/dev/null || true
    for i in $(seq 1 1500); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.02
    done
    echo "bench: nginx $1 did not stop in 30 s: SIGKILL" >&2
    kill -KILL $(pgrep -P "$pid") 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
}

# a port that accepts connections (kernel backlog) and never answers
pg_blackhole_start() {  # PORT
    perl -MIO::Socket::INET -e '
        my ($port, $parent) = @ARGV;
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
            LocalPort => $port, Listen => 128, ReuseAddr => 1) or die "$port: $!";
        sleep 1 while getppid() == $parent;' "$1" "$$" &
    SB_PIDS+=($!)
}

# [error] lines and alerts of an error log: "N errors, M alerts; first: ..."
pg_log_summary() {  # LOGFILE
    local f=$1 ne na first
    ne=$(grep -c '\[error\]' "$f" || true)
    na=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal|segfault' "$f" || true)
    first=$(grep -E '\[(error|alert|crit|emerg)\]|exited on signal' "$f" \
            | sed -E 's/^[0-9\/: ]+\[([a-z]+)\] [0-9#]+: (\*[0-9]+ )?/[\1] /; s/, client: .*//' \
            | sort | uniq -c | sort -rn | head -3 | sed 's/^ */    /')
    echo "$ne errors, $na alerts/crits"
    [ -n "$first" ] && echo "$first"
    return 0
}

# the hook lua script: POST /hook with a unique numeric order id per
# request (BASE + thread * 10^7 + n), optional quota as sb_hook_lua (past
# it: GET /ok, the thread stops once QUOTA answers came, FLAG written);
# counts 202, 200, 503 and other answers.  args: PATH BASE QUOTA FLAG
pg_hook_lua() {
    cat > "$SB/pghook.lua" <<'LUA'
-- thread_no: a global set by setup() in the thread's own state before
-- its init() (a file-level "local" would shadow it there: every thread
-- would see 0 and send the same ids, as spool-lib.sh's sb_hook_lua does
-- with more than one wrk thread)
local threads = {}
local nthreads = 0
function setup(thread)
    thread:set("thread_no", nthreads)
    nthreads = nthreads + 1
    table.insert(threads, thread)
end
function init(args)
    path = args[1]
    base = tonumber(args[2]) + thread_no * 10000000
    quota = tonumber(args[3])
    flag = args[4]
    sent = 0
    answered = 0
    c202 = 0; c200 = 0; c503 = 0; other = 0
    ok = wrk.format("GET", "/ok")
    -- wrk calls request() once on thread 0 to check the request and
    -- throws the result away: that call must not use up an id
    verify = (thread_no == 0)
end
function request()
    if verify then verify = false; return ok end
    if quota > 0 and sent >= quota then return ok end
    sent = sent + 1
    return wrk.format("POST", path .. "?token=T0K-bench-not-real",
        { ["Content-Type"] = "application/json" },
        '{"event":"order_created","id":"' .. string.format("%d", base + sent) .. '"}')
end
function response(status, headers, body)
    if status == 200 and #body == 2 then return end     -- "ok" of GET /ok
    answered = answered + 1
    if status == 202 then c202 = c202 + 1
    elseif status == 200 then c200 = c200 + 1
    elseif status == 503 then c503 = c503 + 1
    else other = other + 1 end
    if quota > 0 and answered >= quota then
        local f = io.open(flag, "w"); f:write("done\n"); f:close()
        wrk.thread:stop()
    end
end
function done(summary, latency, requests)
    local a, b, c, o = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("c202"); b = b + t:get("c200")
        c = c + t:get("c503"); o = o + t:get("other")
    end
    io.write(string.format("answers 202 %d 200 %d 503 %d other %d\n", a, b, c, o))
end
LUA
}

# fields of a wrk output file written with pghook.lua
pg_wrk_count() {  # FILE STATUS(202|200|503|other)
    awk -v s="$2" '/^answers 202/ {
        for (i = 2; i < NF; i += 2) if ($i == s) print $(i + 1) }' "$1"
}
pg_wrk_secs() {  # FILE: the run's duration in seconds ("N requests in 10.01s")
    awk '/requests in/ { v = $4; sub(/,$/, "", v)
        if (v ~ /ms$/) { sub(/ms$/, "", v); v /= 1000 }
        else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60 }
        else sub(/s$/, "", v)
        print v }' "$1"
}
pg_wrk_non2xx() { awk '/Non-2xx or 3xx responses/ { print $NF; f = 1 } END { if (!f) print 0 }' "$1"; }
pg_wrk_errors() {  # socket errors line, or "none"
    awk '/Socket errors/ { sub(/^ *Socket errors: */, ""); print; f = 1 } END { if (!f) print "none" }' "$1"
}

# CPU time (utime + stime, all threads) of processes, in microseconds
pg_cpu_us() {  # PIDS...
    local p t=0 hz
    hz=$(getconf CLK_TCK)
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        t=$(( t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0) ))
    done
    echo $(( t * 1000000 / hz ))
}
pg_server_pids() {  # the postmaster and its children (backends, writers)
    local m
    m=$(head -1 "$PG_DIR/data/postmaster.pid")
    echo "$m" $(pgrep -P "$m")
}
pg_edge_workers() {  # PREFIX
    pgrep -P "$(cat "$1/logs/nginx.pid")" | tr '\n' ' '
}
# the server's counters (flushed by a backend when it ends, so read them
# with the edges stopped): "commits WAL-records WAL-bytes WAL-syncs"
pg_counters() {
    pg_q "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = 'siteflow'),
                 wal_records, wal_bytes, wal_sync FROM pg_stat_wal" | tr '|' ' '
}

# which module: "FILE (md5 12345678, mtime YYYY-mm-dd HH:MM UTC)"
pg_module_id() {
    echo "$module (md5 $(md5sum < "$module" | cut -c1-8), mtime $(date -u -r "$module" '+%F %H:%M') UTC)"
}
