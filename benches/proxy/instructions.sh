#!/usr/bin/env bash
# The proxy's instructions a request, counted by callgrind: a figure that holds on a shared,
# noisy machine (wall-clock and CPU time do not), for comparing two builds and for seeing where
# the work goes. `paas up` (release) runs under valgrind with one proxy thread and the example
# app's one web dyno (not traced); h2load sends a warm-up, the counters are zeroed, then
# REQUESTS kept-alive `GET /` requests go through, and the counters are dumped. Every thread of
# the process is counted: the proxy's, and the router's, which takes each request's line.
#
#   bash benches/proxy/instructions.sh                  # the tree's release build
#   bash benches/proxy/instructions.sh /path/to/paas    # another build, to compare
#
# Environment: REQUESTS (5000), CONNECTIONS (10), TOP (functions shown, 25), KEEP (a path to
# keep the callgrind dump at, for callgrind_annotate or kcachegrind),
# CARGO_TARGET_DIR (default ~/.cache/paas-target). Installs valgrind and nghttp2-client from
# Debian when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
requests=${REQUESTS:-5000}
connections=${CONNECTIONS:-10}
top=${TOP:-25}

PATH=$PATH:/usr/sbin:/sbin
source "$root/benches/lib/setup.sh"
bench_setup instructions.sh valgrind h2load
paas=${1:-$paas}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

app=$tmp/app
mkdir -p "$app"
printf 'web: paas example-app web\n' >"$app/Procfile"
http_port=$(free_port)
# The dyno runs the same binary, outside valgrind: dynos find `paas` beside the running one,
# so the binary is copied in as `paas`.
mkdir -p "$tmp/bin"
cp "$paas" "$tmp/bin/paas"
paas=$tmp/bin/paas
PAAS_API_KEY=$key valgrind --tool=callgrind --trace-children=no \
    --callgrind-out-file="$tmp/callgrind.out" \
    "$paas" up --app-dir "$app" --name bench --data-dir "$tmp/data" \
    --api-port 0 --syslog-port 0 --udp-port 0 --syslog-tls-port 0 \
    --http-port "$http_port" --https-port 0 --metrics-interval 0 --env LOG_REQUESTS=0 \
    --proxy-threads 1 --boot-wait 120 >"$tmp/up.out" 2>"$tmp/up.err" &
up_pid=$!
pids+=("$up_pid")
for _ in $(seq 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$http_port/" 2>/dev/null && break
    kill -0 "$up_pid" 2>/dev/null || { cat "$tmp/up.out" "$tmp/up.err" >&2; exit 1; }
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$http_port/" ||
    { echo "instructions.sh: no answer" >&2; tail "$tmp/up.out" "$tmp/up.err" >&2; exit 1; }

h2load --h1 -n 500 -c "$connections" "http://127.0.0.1:$http_port/" >/dev/null
callgrind_control --zero "$up_pid" >/dev/null
out=$(h2load --h1 -n "$requests" -c "$connections" "http://127.0.0.1:$http_port/")
callgrind_control --dump=measured "$up_pid" >/dev/null
succeeded=$(awk '/^requests:/ {print $8}' <<<"$out")
[ "$succeeded" = "$requests" ] || { echo "instructions.sh: $out" >&2; exit 1; }

dump=$(ls "$tmp"/callgrind.out* | xargs grep -l 'measured' | head -1)
[ -z "${KEEP:-}" ] || cp "$dump" "$KEEP"
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
echo "instructions.sh: $requests requests, $connections connections, $paas"
# The functions with the most instructions, their callees included (self costs say little: in a
# release build most of a request is inlined into a few functions).
{ callgrind_annotate --inclusive=yes "$dump" 2>/dev/null || true; } |
    awk '/file:function/ {on = 1; getline; next} on && NF == 0 {exit} on' |
    head -n "$top" | cut -c1-180 || true
echo
awk -v t="$total" -v n="$requests" \
    'BEGIN {printf "result instructions_per_request=%.0f total=%d requests=%d\n", t / n, t, n}'
