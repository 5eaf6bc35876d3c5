#!/usr/bin/env bash
# Instructions per order, hook -> created, counted by callgrind (the
# noise-free companion of t/bench/order-cpu.sh): a single-process nginx
# (master_process off, so the one process both takes the hooks and
# delivers) runs under valgrind --tool=callgrind with the spool on disk and
# `siteflow_printnow_fetch off` (or on with FETCH=on), its SiteFlow (and
# PrintNow) a plain nginx answering at once (spool-lib.sh's mock).  Once
# with 1 order (start-up, shutdown and what the first order sets up once)
# and once with 1 + N orders, each hook sent after the previous one was
# answered on one keep-alive connection; the run ends when the mock has
# seen every create.  Per-order cost = (total - total of the first) / N.
# Everything the process does counts: the hook, the group commit (the
# fdatasync thread included), the consumer, validate and create.
#
#   t/bench/order-callgrind.sh [N]          (default 500)
#   BEFORE_MODULE=/path/to/old.so   also counts that build ("before")
#   FETCH=on                        siteflow_printnow_fetch on
#   BRIDGE=1                        also counts the ngx_lua bridge of
#                                   bridge-lib.sh, create only ("bridge")
#                                   and validate + create ("bridge+val")
#
# The callgrind files stay in t/bench/out/callgrind.order.<build> for
# callgrind_annotate.

set -euo pipefail
. "$(dirname "$0")/spool-lib.sh"

n=${1:-500}
fetch=${FETCH:-off}
after=$module
before=${BEFORE_MODULE:-}

sb_mock_start
[ "${BRIDGE:-0}" = 1 ] && . "$(dirname "$0")/bridge-lib.sh"

conf() {  # conf MODULE
    rm -rf "$SB/spool"; mkdir -p "$SB/spool"
    cat > "$SB/sf/nginx.conf" <<CONF
load_module $1;
daemon off;
master_process off;
error_log logs/error.log notice;
pid logs/nginx.pid;
events { worker_connections 1024; }
thread_pool default threads=1;
http {
    access_log off;
    keepalive_requests 10000000;
    siteflow_zone sf:4m;
    siteflow_spool $SB/spool size=64m;
    siteflow_retry_backoff 100ms 1s;
    server {
        listen 127.0.0.1:$SF_PORT;
        server_name shop1;
        siteflow_api http://127.0.0.1:$SFAPI_PORT/api scheme=oneflow;
        siteflow_credentials 1234567890 FAKE-secret-not-real;
        siteflow_destination acme;
        siteflow_order_trigger "New Order";
        siteflow_mapping $mapping;
        siteflow_printnow_api http://127.0.0.1:$PN_PORT;
        siteflow_printnow_credentials pntoken pnkey;
        siteflow_printnow_fetch $fetch;
        location = /hook { siteflow_printnow_hook; siteflow_token T0K-bench-not-real; }
    }
}
CONF
}

client() {  # client COUNT BASE
    perl -MIO::Socket::INET -e '
        my ($port, $n, $base, $file, $fetch) = @ARGV;
        open my $fh, "<", $file or die; local $/; my $order = <$fh>;
        close $fh;
        $order =~ s/\n//g;
        my $s;
        for (1 .. 600) {
            $s = IO::Socket::INET->new("127.0.0.1:$port") and last;
            select undef, undef, undef, 0.1;
        }
        die "bench: nginx did not start under callgrind\n" unless $s;
        for my $i (1 .. $n) {
            my $id = $base + $i;
            my $body;
            if ($fetch eq "off") {
                (my $o = $order) =~ s/"id": 5001/"id": $id/;
                $body = "{\"event\":\"order_created\",\"order\":$o}";
            } else {
                $body = "{\"event\":\"order_created\",\"id\":\"$id\"}";
            }
            print $s "POST /hook?token=T0K-bench-not-real HTTP/1.1\r\n"
                   . "Host: x\r\nContent-Type: application/json\r\n"
                   . "Content-Length: " . length($body) . "\r\n\r\n$body";
            my $head = "";
            while ($head !~ /\r\n\r\n/) {
                sysread($s, $head, 1, length $head) or die "eof";
            }
            $head =~ m{^HTTP/1.1 20[02] } or die "unexpected: $head";
            my ($len) = $head =~ /Content-Length: (\d+)/i;
            my $rest = "";
            while (length($rest) < $len) {
                sysread($s, $rest, $len - length $rest, length $rest) or die;
            }
        }' "$SF_PORT" "$1" "$2" "$order_json" "$fetch"
}

measure() {  # measure NAME MODULE|bridge|bridge+val COUNT -> instructions
    local f=$out/callgrind.order.$1 vg i smc=
    [ "$3" -gt 1 ] || f=$f.idle
    # LuaJIT patches the machine code it wrote: valgrind must see that
    case $2 in bridge*) smc=--smc-check=all-non-file ;; esac
    case $2 in
    bridge)     SB_BRIDGE_MAIN="daemon off; master_process off;" sb_bridge_conf 0 ;;
    bridge+val) SB_BRIDGE_MAIN="daemon off; master_process off;" sb_bridge_conf 1 ;;
    *)          conf "$2" ;;
    esac
    rm -f "$f"
    : > "$SB/mock/logs/creates.log"
    valgrind --tool=callgrind $smc --callgrind-out-file="$f" \
        "$nginx" -p "$SB/sf/" -c nginx.conf 2>/dev/null &
    vg=$!
    if ! client "$3" 1000 || ! sb_wait_lines "$SB/mock/logs/creates.log" \
                                              "$3" 300 > /dev/null
    then
        kill -KILL "$vg"
        exit 1
    fi
    kill -QUIT "$vg"
    for i in $(seq 1 300); do
        kill -0 "$vg" 2>/dev/null || break
        if [ "$i" = 100 ] || [ "$i" = 200 ]; then kill -TERM "$vg"; fi
        sleep 0.1
    done
    wait "$vg" || true
    awk '/^summary:|^totals:/ { print $2; exit }' "$f"
}

builds="after"
[ -n "$before" ] && builds="before after"
[ "${BRIDGE:-0}" = 1 ] && builds="$builds bridge bridge+val"

{
echo "== order-callgrind: $(date -u +%FT%TZ), $n orders, fetch $fetch"
echo "after: $after${before:+; before: $before}"
for b in $builds; do
    so=$after
    [ "$b" = before ] && so=$before
    case $b in bridge*) so=$b ;; esac
    idle=$(measure "$b-$fetch" "$so" 1)
    total=$(measure "$b-$fetch" "$so" $((n + 1)))
    echo "$b $idle $total"
done | awk -v n="$n" '
    { per[$1] = ($3 - $2) / n; order[++k] = $1 }
    END {
        for (i = 1; i <= k; i++)
            printf "%-7s %9.0f instructions per order\n",
                   order[i], per[order[i]]
    }'
} | tee "$out/order-callgrind-$fetch.txt"
