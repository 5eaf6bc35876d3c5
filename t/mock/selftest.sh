#!/usr/bin/env bash
# Self-test of t/mock/mock-upstream.pl and t/mock/MockUpstream.pm.
# Needs curl and jq; uses wrk (if installed) for the 600-connection load test.
#   t/mock/selftest.sh            exit status 0 when every check passed
#   WRK_SECONDS=10 MIN_RPS=2000 t/mock/selftest.sh
set -u
cd "$(dirname "$0")" || exit 1
TMP=$(mktemp -d)
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
ko() { FAIL=$((FAIL + 1)); echo "not ok - $1${2:+ -- $2}"; }
check() { if [[ "$2" == "$3" ]]; then ok "$1"; else ko "$1" "expected '$2', got '$3'"; fi; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
cleanup() {
    [[ -s $TMP/pid ]] && kill "$(cat "$TMP/pid")" 2>/dev/null
    [[ -s $TMP/pid2 ]] && kill "$(cat "$TMP/pid2")" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(perl mock-upstream.pl --port 0 --daemon --pidfile "$TMP/pid" --log "$TMP/log") \
    || { echo "not ok - cannot start the mock"; exit 1; }
U=http://127.0.0.1:$PORT
echo "# mock on port $PORT, pid $(cat "$TMP/pid")"

rules() { curl -sf -o /dev/null --data-binary "$1" "$U/_mock/rules" || ko "POST /_mock/rules" "$1"; }
reset() { curl -sf -o /dev/null -X POST "$U/_mock/reset" || ko "POST /_mock/reset"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
rc() { curl -s -o /dev/null "$@"; echo $?; }

# --- basics, defaults --------------------------------------------------------
check "health answers 200" 200 "$(code "$U/_mock/health")"
check "default POST answers 200" 200 "$(code -d x "$U/nothing")"
check "default POST body" '{"success":true}' "$(curl -s -d x "$U/nothing")"
check "default GET answers 404" 404 "$(code "$U/nothing")"
check "unknown action is refused" 400 "$(code --data-binary '[{"action":"explode"}]' "$U/_mock/rules")"
check "unknown rule key is refused" 400 "$(code --data-binary '[{"paht":"/x"}]' "$U/_mock/rules")"
check "invalid JSON is refused" 400 "$(code --data-binary '[{' "$U/_mock/rules")"

# --- respond: status, headers, body, placeholders ----------------------------
reset
rules '[{"method":"POST","path":"/api/order","status":201,
  "headers":{"X-Order":"{{hex24}}","Location":"/api/order/{{hex24}}"},
  "json":{"_id":"{{hex24}}","seq":"{{seq}}","path":"{{path}}",
          "orderData":{"sourceOrderId":"{{json.orderData.sourceOrderId}}"},
          "note":"{{body.note}}","first":"{{json.items.0.sku}}","missing":"{{json.nope.x}}"}},
  {"path_prefix":"/api/order/bysourceid/","body":"by {{path}}","headers":{"Content-Type":"text/x-test"}}]'
curl -s -D "$TMP/h" -o "$TMP/b" -w '%{http_code}' \
    -H 'Content-Type: application/json' \
    -d '{"orderData":{"sourceOrderId":"SRC-1"},"note":"he said \"hi\"","items":[{"sku":"S1"}]}' \
    "$U/api/order" > "$TMP/code"
check "rule status 201" 201 "$(cat "$TMP/code")"
check "rule header with {{hex24}}" "X-Order: 000000000000000000000001" "$(grep -i '^x-order' "$TMP/h" | tr -d '\r')"
check "rule json body with placeholders" \
    '{"_id":"000000000000000000000001","first":"S1","missing":"","note":"he said \"hi\"","orderData":{"sourceOrderId":"SRC-1"},"path":"/api/order","seq":"1"}' \
    "$(cat "$TMP/b")"
check "json body gets application/json" "Content-Type: application/json" "$(grep -i '^content-type' "$TMP/h" | tr -d '\r')"
check "method must match (GET on POST rule)" 404 "$(code "$U/api/order")"
check "path_prefix rule" "by /api/order/bysourceid/X-9" "$(curl -s "$U/api/order/bysourceid/X-9?x=1")"
check "rule Content-Type header wins" "Content-Type: text/x-test" \
    "$(curl -s -D - -o /dev/null "$U/api/order/bysourceid/Y" | grep -i '^content-type' | tr -d '\r')"

# --- times, append -----------------------------------------------------------
rules '[{"path":"/t","times":2,"status":503,"body":"busy"},{"path":"/t","status":202}]'
got=""
for i in 1 2 3 4; do got="$got $(code "$U/t")"; done
check "times: 2 x 503 then the next rule" " 503 503 202 202" "$got"
curl -sf -o /dev/null --data-binary '{"path":"/u","status":418}' "$U/_mock/rules/append"
check "rules/append adds a rule" 418 "$(code "$U/u")"
check "appended rule keeps the others" 202 "$(code "$U/t")"
check "GET /_mock/rules shows the spent counter" 0 "$(curl -s "$U/_mock/rules" | jq '.[0].times')"

# --- delay does not block other connections ---------------------------------
rules '[{"path":"/slow","delay_ms":1500,"body":"slow"},{"path":"/fast","body":"fast"}]'
curl -s -o "$TMP/slow.body" -w '%{time_total}' "$U/slow" > "$TMP/slow.time" &
bg=$!
fast=$(curl -s -o /dev/null -w '%{time_total}' "$U/fast")
wait $bg
slow=$(cat "$TMP/slow.time")
if lt "$fast" 0.5 && lt 1.4 "$slow"; then ok "delay 1.5 s: delayed ${slow}s, concurrent ${fast}s"
else ko "delay does not block" "slow=$slow fast=$fast"; fi
check "delayed body" slow "$(cat "$TMP/slow.body")"

# --- faults ------------------------------------------------------------------
rules '[{"path":"/close","action":"close"},{"path":"/reset","action":"reset"},
  {"path":"/partial","action":"partial","body":"0123456789"},
  {"path":"/dclose","action":"close","delay_ms":300},
  {"path":"/big","action":"oversize"},
  {"path":"/bigc","action":"oversize","size":5000000,"chunked":true},
  {"path":"/drip","action":"slow_body","body":"abcdef","delay_ms":100},
  {"path":"/hang","action":"no_response"},
  {"path":"/chunked","body":"chunky","chunked":true},
  {"path":"/hello","body":"hello"}]'
check "close -> curl 52 (empty reply)" 52 "$(rc "$U/close")"
check "reset -> curl 56 (connection reset)" 56 "$(rc "$U/reset")"
check "partial -> curl 18 (partial file)" 18 "$(rc "$U/partial")"
check "partial sends half the body" 01234 "$(curl -s "$U/partial")"
t=$(curl -s -o /dev/null -w '%{time_total}' "$U/dclose")
if lt 0.29 "$t"; then ok "close after delay_ms (${t}s)"; else ko "close after delay_ms" "$t"; fi
check "oversize streams 20 MB" "20971520 0" "$(curl -s -o /dev/null -w '%{size_download}' "$U/big"; echo " $?")"
check "oversize vs --max-filesize -> curl 63" 63 "$(rc --max-filesize 1000000 "$U/big")"
check "chunked oversize 5 MB" "5000000 chunked" \
    "$(curl -s -D "$TMP/h" -o /dev/null -w '%{size_download}' "$U/bigc"; echo " $(grep -io 'transfer-encoding: chunked' "$TMP/h" | cut -c20-)")"
check "chunked response" chunky "$(curl -s "$U/chunked")"
t=$(curl -s -o "$TMP/drip" -w '%{time_total}' "$U/drip")
if [[ "$(cat "$TMP/drip")" == abcdef ]] && lt 0.55 "$t"; then ok "slow_body: 6 bytes in ${t}s"
else ko "slow_body" "body=$(cat "$TMP/drip") t=$t"; fi
check "no_response -> curl 28 (timeout)" 28 "$(rc -m 1 "$U/hang")"
check "server still serves after faults" 200 "$(code "$U/_mock/health")"
check "HEAD: Content-Length of the body" "Content-Length: 5" \
    "$(curl -s -I "$U/hello" | grep -i '^content-length' | tr -d '\r')"
check "HEAD: no body" 0 "$(curl -s -I -o /dev/null -w '%{size_download}' "$U/hello")"

# --- keep-alive, Connection: close, pipelining -------------------------------
reset
check "keep-alive: 2 requests, 1 connection" "1 0" \
    "$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' "$U/ka1" "$U/ka2" | xargs)"
check "keep-alive: same conn in the log" 1 \
    "$(curl -s "$U/_mock/requests?path=/ka" | jq '[.[].conn] | unique | length')"
check "Connection: close honoured" "Connection: close" \
    "$(curl -s -D - -o /dev/null -H 'Connection: close' "$U/hello" | grep -i '^connection' | tr -d '\r')"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
check "pipelined requests answered in order" "404 404" "$(timeout 5 cat <&3 | grep -ao 'HTTP/1.1 [0-9]*' | cut -d' ' -f2 | xargs)"
exec 3<&-

# --- request bodies: chunked, 100-continue, limits, binary -------------------
reset
head -c 300000 /dev/urandom | base64 -w 76 > "$TMP/up"
curl -s -o /dev/null -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/up" "$U/up/chunked"
curl -s "$U/_mock/requests?path=/up/chunked" | jq -j '.[0].body' > "$TMP/up.got"
if cmp -s "$TMP/up" "$TMP/up.got"; then ok "chunked upload logged byte for byte ($(wc -c < "$TMP/up") bytes)"
else ko "chunked upload" "$(wc -c < "$TMP/up.got") bytes logged"; fi
check "chunked upload: header logged" chunked \
    "$(curl -s "$U/_mock/requests?path=/up/chunked" | jq -r '.[0].headers["transfer-encoding"]')"
t=$(curl -s -v -o /dev/null -w '%{time_total}' -H 'Expect: 100-continue' --data-binary @"$TMP/up" "$U/up/expect" 2> "$TMP/err")
if grep -q '< HTTP/1.1 100 Continue' "$TMP/err" && lt "$t" 0.9; then ok "Expect: 100-continue answered (${t}s)"
else ko "Expect: 100-continue" "t=$t"; fi
check "100-continue body logged" "$(wc -c < "$TMP/up")" \
    "$(curl -s "$U/_mock/requests?path=/up/expect" | jq '.[0].body | length')"
head -c 10485760 /dev/zero | tr '\0' a > "$TMP/10m"
check "10 MB body accepted" 200 "$(code --data-binary @"$TMP/10m" "$U/up/10m")"
check "10 MB body logged" 10485760 "$(curl -s "$U/_mock/requests?path=/up/10m" | jq '.[0].body | length')"
echo b >> "$TMP/10m"
check "10 MB + 1 byte -> 413" 413 "$(code --data-binary @"$TMP/10m" "$U/up/11m")"
check "10 MB + 1 byte chunked -> 413" 413 "$(code -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/10m" "$U/up/11m")"
printf '\xff\x00\xfe' > "$TMP/bin"
curl -s -o /dev/null --data-binary @"$TMP/bin" "$U/up/bin"
check "binary body -> body_base64" "$(base64 < "$TMP/bin")" \
    "$(curl -s "$U/_mock/requests?path=/up/bin" | jq -r '.[0].body_base64')"

# --- the request log ---------------------------------------------------------
reset
curl -s -o /dev/null -H 'X-Mixed-Case: V1' -H 'Content-Type: application/json' -d '{"k":"é"}' "$U/log/a?x=1&y=2"
curl -s -o /dev/null -X PUT -d 'z' "$U/log/b"
curl -s -o /dev/null "$U/other"
check "log file: one line per request" 3 "$(wc -l < "$TMP/log")"
check "log file: lines are JSON with every field" true \
    "$(jq -s 'map(has("seq") and has("time") and has("method") and has("path") and has("query") and has("headers") and has("body") and has("conn")) | all' "$TMP/log")"
check "log: seq, method, path, query" "1 POST /log/a x=1&y=2" \
    "$(head -1 "$TMP/log" | jq -r '"\(.seq) \(.method) \(.path) \(.query)"')"
check "log: lowercased header names" V1 "$(head -1 "$TMP/log" | jq -r '.headers["x-mixed-case"]')"
check "log: UTF-8 body" '{"k":"é"}' "$(head -1 "$TMP/log" | jq -r '.body')"
check "log: time in ms" 1 "$(head -1 "$TMP/log" | jq "(.time - $(date +%s%3N)) | fabs < 10000 | if . then 1 else 0 end")"
check "/_mock/requests = log file" "$(jq -sc . "$TMP/log")" "$(curl -s "$U/_mock/requests" | jq -c .)"
check "/_mock/requests?path= prefix filter" '["/log/a","/log/b"]' "$(curl -s "$U/_mock/requests?path=/log/" | jq -c 'map(.path)')"
check "/_mock/requests?since=" '[3]' "$(curl -s "$U/_mock/requests?since=2" | jq -c 'map(.seq)')"
check "control requests are not logged" 3 "$(curl -s "$U/_mock/requests" | jq length)"
reset
check "reset clears the log" "0 0" "$(curl -s "$U/_mock/requests" | jq length) $(wc -c < "$TMP/log")"
check "reset clears the rules" '[]' "$(curl -s "$U/_mock/rules" | jq -c .)"

# --- stateful rules: remember / if_known, comment in the log -----------------
rules '[{"method":"GET","path_prefix":"/api/order/bysourceid/","if_known":"{{path_last}}","json":{"found":"{{path_last}}"},"comment":"hit"},
  {"method":"GET","path_prefix":"/api/order/bysourceid/","status":404,"comment":"miss"},
  {"method":"POST","path":"/api/order","status":201,"remember":"{{json.orderData.sourceOrderId}}","comment":"create"}]'
check "if_known: unknown key falls through" 404 "$(code "$U/api/order/bysourceid/K-1")"
code -d '{"orderData":{"sourceOrderId":"K-1"}}' "$U/api/order" > /dev/null
code -d '{"orderData":{"sourceOrderId":"K-1"}}' "$U/api/order" > /dev/null
check "if_known: a remembered key matches" '200 {"found":"K-1"}' "$(curl -s -w '%{http_code} ' -o "$TMP/b" "$U/api/order/bysourceid/K-1"; cat "$TMP/b")"
check "/_mock/known counts" '{"K-1":2}' "$(curl -s "$U/_mock/known" | jq -c .)"
check "log: the rule's comment" 'miss create create hit' "$(curl -s "$U/_mock/requests" | jq -r 'map(.comment) | join(" ")')"
reset
check "reset clears the known keys" '{}' "$(curl -s "$U/_mock/known" | jq -c .)"

# --- --rules FILE, foreground pidfile, SIGTERM -------------------------------
echo '[{"path":"/boot","status":299,"body":"from file"}]' > "$TMP/rules.json"
P2=$(perl mock-upstream.pl --port 0 --daemon --pidfile "$TMP/pid2" --rules "$TMP/rules.json")
check "--rules FILE at startup" "299 from file" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$P2/boot" | awk '{print $3, $1, $2}')"
pid2=$(cat "$TMP/pid2")
kill "$pid2"
for _ in $(seq 100); do [[ -e $TMP/pid2 ]] || break; sleep 0.05; done
if [[ ! -e $TMP/pid2 ]] && [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/_mock/health")" == 000 ]]
then ok "SIGTERM: clean exit, pidfile removed"; else ko "SIGTERM"; fi
perl mock-upstream.pl --port "$PORT" --daemon --pidfile "$TMP/pid3" 2>/dev/null
check "port in use -> start fails" "1 no-pidfile" "$(($? != 0)) $([[ -e $TMP/pid3 ]] && echo pidfile || echo no-pidfile)"

# --- MockUpstream.pm ----------------------------------------------------------
out=$(perl -I. -MMockUpstream -e '
    use v5.36;
    my $m = MockUpstream->start(log => $ARGV[0],
        rules => [{ path => "/pm", status => 201, json => { id => "{{hex24}}" } }]);
    system("for i in 1 2 3; do curl -s -o /dev/null -d {} " . $m->url("/pm") . "; done &");
    my $r = $m->wait_requests(count => 3, path => "/pm", timeout => 10);
    print scalar(@$r), " ";
    $m->append_rule({ path => "/pm2", status => 204 });
    print scalar(@{ $m->requests(path => "/pm") }), " ";
    print eval { $m->wait_requests(count => 1, path => "/never", timeout => 0.3); 1 } ? "no-die " : "died ";
    my ($st) = $m->http(GET => "/pm2"); print "$st ";
    $m->rules([]); $m->reset;
    print scalar(@{ $m->requests }), " ";
    my $pid = $m->pid; $m->stop; print MockUpstream::_alive($pid) ? "alive" : "stopped";   # a zombie counts as stopped
' "$TMP/pm.log" 2>&1)
check "MockUpstream.pm start/wait_requests/requests/rules/stop" "3 3 died 204 0 stopped" "$out"

# --- 600 concurrent keep-alive connections -----------------------------------
reset
rules '[{"method":"GET","path":"/bench","body":"ok"}]'
if command -v wrk > /dev/null; then
    wrk -t2 -c600 -d"${WRK_SECONDS:-3}s" --latency "$U/bench" > "$TMP/wrk" 2>&1
    rps=$(awk '/^Requests\/sec/ { print int($2) }' "$TMP/wrk")
    errs=$(grep -E 'Socket errors|Non-2xx' "$TMP/wrk" | tr -s ' ' | xargs)
    sed 's/^/#   /' "$TMP/wrk"
    if [[ -n "$rps" ]] && ((rps >= ${MIN_RPS:-2000})) && [[ -z "$errs" ]]
    then ok "wrk -c600: $rps requests/s, no socket errors"
    else ko "wrk -c600" "rps=${rps:-?} ${errs}"; fi
    logged=$(curl -s "$U/_mock/health" | jq .requests)
    check "every wrk request logged" "$logged" "$(wc -l < "$TMP/log")"
else
    echo "# wrk not installed: 600 parallel curls instead"
    for i in $(seq 600); do curl -s -o /dev/null -w '%{http_code}\n' "$U/bench" & done > "$TMP/par"
    wait
    check "600 parallel connections" 600 "$(grep -c 200 "$TMP/par")"
fi

echo "# $PASS passed, $FAIL failed"
((FAIL == 0))
