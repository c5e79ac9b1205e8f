#!/usr/bin/env bash
# The proxy against nginx (issues 5 and 13), in one run, on the same backend: `paas up` runs the
# example app with one web dyno; wrk (Debian) loads, in turn,
#   1. the dyno directly (the backend's own ceiling; plain HTTP rows only),
#   2. nginx (Debian) as a reverse proxy to that dyno (keep-alive upstream, access log on; TLS
#      with the same certificate as paas),
#   3. our proxy + routing mesh to that dyno, with every request's router line written into the
#      router (which keeps history and serves the API as it does in production),
# for each row:
#   keepalive  GET / over kept-alive connections (the headline row)
#   body1k     POST /echo with a 1 KB body (echoed back)
#   body100k   POST /echo with a 100 KB body (echoed back)
#   close      GET / with `Connection: close` (a new connection a request)
#   tls        GET / over TLS (HTTP/1.1 by ALPN), kept alive
#   h2         GET / over TLS with HTTP/2 (h2load, Debian nghttp2-client; no percentiles: its
#              mean latency is shown as p50 and its max as p99)
# For each it prints requests/s, p50 and p99 latency, and CPU µs per request of the proxy
# process (its user + system CPU time over the run / requests; for nginx, master and worker
# summed; for paas, the whole `paas up` process, router included, the dyno excluded), and the
# ratio of paas's CPU a request to nginx's; for paas, also the CPU a request of its proxy threads
# alone (the rest is the router's work on the lines: history, spool, index, metrics). The app runs with LOG_REQUESTS=0, so that the
# router's work is the proxy's lines, not the app's own.
#
#   bash benches/proxy/wrk.sh
#   DURATION=5 RUNS=1 bash benches/proxy/wrk.sh                  # quick run
#   ROWS="keepalive close" bash benches/proxy/wrk.sh              # some rows
#
# Environment: DURATION (seconds a run, 10), CONNECTIONS (50), THREADS (wrk threads, 1),
# RUNS (3, the median is the figure), ROWS (all six), PAAS (a paas binary to measure instead
# of the tree's release build), PAAS_FLAGS (more flags for `paas up`: `--proxy-hyper` measures
# hyper's HTTP/1 path), NGINX_WORKERS (1), PROXY_THREADS (paas
# up's --proxy-threads; default one a core), CARGO_TARGET_DIR (default ~/.cache/paas-target).
# Installs curl, jq, wrk, nginx and nghttp2-client from Debian when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
duration=${DURATION:-10}
connections=${CONNECTIONS:-50}
threads=${THREADS:-1}
runs=${RUNS:-3}
rows=${ROWS:-keepalive body1k body100k close tls h2}
nginx_workers=${NGINX_WORKERS:-1}

PATH=$PATH:/usr/sbin:/sbin
source "$root/benches/lib/setup.sh"
bench_setup wrk.sh wrk nginx h2load
# Another build of paas to measure (its directory must hold nothing else called `paas`).
paas=${PAAS:-$paas}

# proxy_ticks PID: the CPU time so far of PID's proxy threads (`proxy-N`), in clock ticks: the
# part of paas's CPU that is the proxy itself, without the router's work on the lines.
proxy_ticks() {
    local f stat total=0
    for f in /proc/"$1"/task/*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        case $stat in
            *"(proxy-"*) total=$((total + $(sed 's/^.*) //' <<<"$stat" | awk '{print $12 + $13}'))) ;;
        esac
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
https_port=$(free_port)
PAAS_API_KEY=$key "$paas" up --app-dir "$app" --name bench --data-dir "$tmp/data" \
    --api-port 0 --syslog-port 0 --udp-port 0 --syslog-tls-port 0 \
    --http-port "$http_port" --https-port "$https_port" --metrics-interval 0 --env LOG_REQUESTS=0 \
    ${PROXY_THREADS:+--proxy-threads "$PROXY_THREADS"} ${PAAS_FLAGS:-} \
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
nginx_tls_port=$(free_port)
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
    # Bodies and responses of the body rows in memory (nginx's workers cannot write its temp
    # directories here, and paas streams them).
    client_body_buffer_size 128k;
    # As paas, no limit on the requests of a kept-alive connection (h2load does not reconnect).
    keepalive_requests 1000000;
    proxy_buffers 16 16k;
    upstream dyno { server 127.0.0.1:$dyno_port; keepalive 64; }
    server {
        listen 127.0.0.1:$nginx_port;
        listen 127.0.0.1:$nginx_tls_port ssl http2;
        ssl_certificate $tmp/data/tls/localhost.pem;
        ssl_certificate_key $tmp/data/tls/localhost-key.pem;
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

# The request bodies of the body rows, as wrk scripts.
for kb in 1 100; do
    printf 'wrk.method = "POST"\nwrk.body = string.rep("a", %d)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' \
        $((kb * 1024)) >"$tmp/post${kb}k.lua"
done

# run NAME ROW URL PID…: one run of ROW's load; prints `result name=… rps=… p50=… p99=… cpu_us=…`.
run() {
    local name=$1 row=$2 url=$3
    shift 3
    local before after out rps p50 p99 requests cpu_us errors args=() pbefore=0 pafter=0 proxy_us=-
    case $row in
        body1k) url+=echo args=(-s "$tmp/post1k.lua") ;;
        body100k) url+=echo args=(-s "$tmp/post100k.lua") ;;
        close) args=(-H "Connection: close") ;;
    esac
    before=$(cpu_ticks "$@")
    [ "$name" != paas ] || pbefore=$(proxy_ticks "$1")
    if [ "$row" = h2 ]; then
        out=$(h2load -c"$connections" -m1 -D"$duration" "$url" 2>&1 || true)
        after=$(cpu_ticks "$@")
        requests=$(awk '/^requests:/ {print $8}' <<<"$out")
        rps=$(awk '/^finished in/ {gsub(",", "", $4); printf "%.0f", $4}' <<<"$out")
        p50=$(awk '/^time for request:/ {print $6}' <<<"$out")
        p99=$(awk '/^time for request:/ {print $5}' <<<"$out")
        errors=$(awk '/^requests:/ && ($10 + $12 > 0) {print}' <<<"$out")
    else
        out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "${args[@]}" "$url")
        after=$(cpu_ticks "$@")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    fi
    [ "$name" != paas ] || pafter=$(proxy_ticks "$1")
    if [ "$#" -gt 0 ] && [ "${requests:-0}" -gt 0 ]; then
        cpu_us=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
            'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        [ "$name" != paas ] || proxy_us=$(awk -v t=$((pafter - pbefore)) -v hz="$clk_tck" \
            -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    else
        cpu_us=-
    fi
    echo "result name=$name row=$row rps=$rps p50=$p50 p99=$p99 cpu_us=$cpu_us proxy_us=$proxy_us ${errors:+errors=\"$errors\"}"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

nginx_procs() { pgrep -P "$nginx_pid" | tr '\n' ' '; echo "$nginx_pid"; }

echo "wrk.sh: $runs runs of ${duration}s, $connections connections, $threads wrk thread(s), rows: $rows, on $(nproc) cores"
# A short warm-up of each (connections, pools, caches), not counted.
for target in "http://127.0.0.1:$dyno_port/" "http://127.0.0.1:$nginx_port/" "http://127.0.0.1:$http_port/"; do
    wrk -t1 -c"$connections" -d1s "$target" >/dev/null
done
declare -A cpu rps p50 p99 pcpu
for i in $(seq "$runs"); do
    for row in $rows; do
        case $row in
            tls | h2) targets="nginx paas" scheme=https nport=$nginx_tls_port pport=$https_port ;;
            *) targets="direct nginx paas" scheme=http nport=$nginx_port pport=$http_port ;;
        esac
        for target in $targets; do
            case $target in
                direct) line=$(run direct "$row" "http://127.0.0.1:$dyno_port/") ;;
                # shellcheck disable=SC2046
                nginx) line=$(run nginx "$row" "$scheme://127.0.0.1:$nport/" $(nginx_procs)) ;;
                paas) line=$(run paas "$row" "$scheme://127.0.0.1:$pport/" "$up_pid") ;;
            esac
            echo "  run $i: $line"
            cpu[$row.$target]+="$(field cpu_us "$line") "
            pcpu[$row.$target]+="$(field proxy_us "$line") "
            rps[$row.$target]+="$(field rps "$line") "
            p50[$row.$target]+="$(field p50 "$line") "
            p99[$row.$target]+="$(field p99 "$line") "
        done
    done
done

lines=$(curl -s -H "Authorization: Bearer $key" "$api/apps/bench/stats" | jq -r '.ingest.accepted // .accepted // empty' 2>/dev/null || true)
of() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
printf '%-9s %-7s %10s %10s %16s %11s %9s %13s\n' row target "rps" "p50" "p99 (runs)" "CPU µs/req" "× nginx" "proxy threads"
for row in $rows; do
    for target in direct nginx paas; do
        [ -n "${cpu[$row.$target]:-}" ] || continue
        ratio=$(awk -v a="$(of "${cpu[$row.$target]}")" -v b="$(of "${cpu[$row.nginx]}")" \
            'BEGIN {if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-"}')
        [ "$target" = paas ] || ratio=""
        printf '%-9s %-7s %10s %10s %16s %11s %9s %13s\n' "$row" "$target" \
            "$(of "${rps[$row.$target]}")" "$(of "${p50[$row.$target]}")" \
            "$(echo "${p99[$row.$target]}" | xargs | tr ' ' '/')" \
            "$(of "${cpu[$row.$target]}")" "$ratio" "$(of "${pcpu[$row.$target]:-}")"
    done
done
echo
echo "router lines written by paas during the runs: ${lines:-?}"
for row in $rows; do
    [ -n "${cpu[$row.paas]:-}" ] || continue
    ratio=$(awk -v a="$(of "${cpu[$row.paas]}")" -v b="$(of "${cpu[$row.nginx]}")" \
        'BEGIN {if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-"}')
    target=1.0
    [ "$row" = keepalive ] && target=0.75
    echo "result row=$row paas_cpu_us=$(of "${cpu[$row.paas]}") nginx_cpu_us=$(of "${cpu[$row.nginx]}") ratio=$ratio target<=$target $(verdict "$ratio" "<=" "$target")"
done
