#!/usr/bin/env bash
# The proxy against nginx (issue 5), in one run, on the same backend: `paas up` runs the example
# app with one web dyno; wrk (Debian) loads, in turn,
#   1. the dyno directly (the backend's own ceiling),
#   2. nginx (Debian) as a reverse proxy to that dyno (keep-alive upstream, access log on),
#   3. our proxy + routing mesh to that dyno, with every request's router line written into the
#      router (which keeps history and serves the API as it does in production).
# For each it prints requests/s, p50 and p99 latency, and CPU µs per request of the proxy
# process (its user + system CPU time over the run / requests; for nginx, master and worker
# summed; for paas, the whole `paas up` process, router included, the dyno excluded). The app
# runs with LOG_REQUESTS=0, so that the router's work is the proxy's lines, not the app's own.
#
#   bash benches/proxy/wrk.sh
#   DURATION=5 CONNECTIONS=20 bash benches/proxy/wrk.sh     # quick run
#
# Environment: DURATION (seconds a run, 10), CONNECTIONS (50), THREADS (wrk threads, 1),
# RUNS (3, the median is the figure), NGINX_WORKERS (1), PROXY_THREADS (paas up's
# --proxy-threads; default one a core), CARGO_TARGET_DIR (default ~/.cache/paas-target).
# Installs curl, jq, wrk and nginx from Debian when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
duration=${DURATION:-10}
connections=${CONNECTIONS:-50}
threads=${THREADS:-1}
runs=${RUNS:-3}
nginx_workers=${NGINX_WORKERS:-1}

PATH=$PATH:/usr/sbin:/sbin
source "$root/benches/lib/setup.sh"
bench_setup wrk.sh wrk nginx

# cpu_ticks PID…: their CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() {
    local p total=0
    for p in "$@"; do
        total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

# The app: the example app's web process alone.
app=$tmp/app
mkdir -p "$app"
printf 'web: paas example-app web\n' >"$app/Procfile"
http_port=$(free_port)
PAAS_API_KEY=$key "$paas" up --app-dir "$app" --name bench --data-dir "$tmp/data" \
    --api-port 0 --syslog-port 0 --udp-port 0 --syslog-tls-port 0 \
    --http-port "$http_port" --https-port 0 --metrics-interval 0 --env LOG_REQUESTS=0 \
    ${PROXY_THREADS:+--proxy-threads "$PROXY_THREADS"} \
    >"$tmp/up.out" 2>"$tmp/up.err" &
up_pid=$!
pids+=("$up_pid")
for _ in $(seq 200); do
    grep -q "see the router's lines" "$tmp/up.out" 2>/dev/null && break
    kill -0 "$up_pid" 2>/dev/null || { cat "$tmp/up.out" "$tmp/up.err" >&2; exit 1; }
    sleep 0.05
done
api=$(sed -n 's/.* api on \(http[^ ]*\).*/\1/p' "$tmp/up.out")
dyno_port=""
for _ in $(seq 200); do
    dyno_port=$(curl -s -H "Authorization: Bearer $key" "$api/apps/bench/dynos" |
        jq -r '.[] | select(.name == "web.1" and .state == "up") | .port' 2>/dev/null || true)
    [ -n "$dyno_port" ] && break
    sleep 0.05
done
[ -n "$dyno_port" ] || { echo "wrk.sh: web.1 did not come up" >&2; exit 1; }

# nginx as a reverse proxy to the same dyno.
nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes $nginx_workers;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log $tmp/nginx/access.log combined buffer=64k;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    upstream dyno { server 127.0.0.1:$dyno_port; keepalive 64; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://dyno;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Request-Id \$request_id;
        }
    }
}
EOF
nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" &
nginx_pid=$!
pids+=("$nginx_pid")
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$nginx_port/" >/dev/null 2>&1 && break
    sleep 0.05
done

# run NAME URL PID…: one wrk run; prints `result name=… rps=… p50=… p99=… cpu_us=…`.
run() {
    local name=$1 url=$2
    shift 2
    local before after out rps p50 p99 requests cpu_us
    before=$(cpu_ticks "$@")
    out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$url")
    after=$(cpu_ticks "$@")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    if [ "$#" -gt 0 ]; then
        cpu_us=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
            'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    else
        cpu_us=-
    fi
    echo "result name=$name rps=$rps p50=$p50 p99=$p99 cpu_us=$cpu_us ${errors:+errors=\"$errors\"}"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

nginx_procs() { pgrep -P "$nginx_pid" | tr '\n' ' '; echo "$nginx_pid"; }

echo "wrk.sh: $runs runs of ${duration}s, $connections connections, $threads wrk thread(s), on $(nproc) cores"
declare -A cpu rps p99
for i in $(seq "$runs"); do
    for target in direct nginx paas; do
        case $target in
            direct) line=$(run direct "http://127.0.0.1:$dyno_port/") ;;
            # shellcheck disable=SC2046
            nginx) line=$(run nginx "http://127.0.0.1:$nginx_port/" $(nginx_procs)) ;;
            paas) line=$(run paas "http://127.0.0.1:$http_port/" "$up_pid") ;;
        esac
        echo "  run $i: $line"
        cpu[$target]+="$(field cpu_us "$line") "
        rps[$target]+="$(field rps "$line") "
        p99[$target]+="$(field p99 "$line") "
    done
done

lines=$(curl -s -H "Authorization: Bearer $key" "$api/apps/bench/stats" | jq -r '.ingest.accepted // .accepted // empty' 2>/dev/null || true)
nginx_cpu=$(tr ' ' '\n' <<<"${cpu[nginx]}" | grep . | median)
paas_cpu=$(tr ' ' '\n' <<<"${cpu[paas]}" | grep . | median)
ratio=$(awk -v a="$paas_cpu" -v b="$nginx_cpu" 'BEGIN {printf "%.2f", a / b}')
echo
printf '%-8s %10s %12s %14s\n' target "rps (median)" "p99 (runs)" "CPU µs/req"
for target in direct nginx paas; do
    printf '%-8s %10s %12s %14s\n' "$target" \
        "$(tr ' ' '\n' <<<"${rps[$target]}" | grep . | median)" \
        "$(echo "${p99[$target]}" | xargs | tr ' ' '/')" \
        "$(tr ' ' '\n' <<<"${cpu[$target]}" | grep . | median)"
done
echo
echo "router lines written by paas during the runs: ${lines:-?}"
echo "result paas_cpu_us=$paas_cpu nginx_cpu_us=$nginx_cpu ratio=$ratio target<=0.75 $(verdict "$ratio" "<=" 0.75)"
