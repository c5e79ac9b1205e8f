#!/usr/bin/env bash
# The HTTP cache against Varnish (issue 14), in one run, on the same backend: `paas up` runs the
# example app with one web dyno; wrk (Debian) loads, in turn,
#   1. Varnish 7.1 (Debian; the default VCL, `-s malloc`) in front of that dyno,
#   2. our proxy + cache + routing mesh, a router line a request into the router,
# for each row:
#   hit    GET /cached (Cache-Control: public, max-age=3600) over kept-alive connections: after
#          the first, every request is answered from memory
#   miss   GET /cached?n=<a new number each request>: every request a miss, stored
# For each it prints requests/s, p50 and p99 latency, and CPU µs per request of the cache's
# process (user + system over the run / requests; Varnish: manager and child summed; paas: the
# whole `paas up` process, the dyno excluded), and the ratio of paas's to Varnish's; for the
# miss row also the proxy's own cost a request without the cache (`--cache-mb 0`, a second
# `paas up`), so that what a miss adds is seen.
#
#   bash benches/cache/wrk.sh
#   DURATION=5 RUNS=1 bash benches/cache/wrk.sh            # quick run
#
# Environment: DURATION (seconds a run, 10), CONNECTIONS (50), RUNS (3; the median is the
# figure), CARGO_TARGET_DIR (default ~/.cache/paas-target). Installs curl, jq, wrk and varnish
# from Debian when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
duration=${DURATION:-10}
connections=${CONNECTIONS:-50}
runs=${RUNS:-3}

PATH=$PATH:/usr/sbin:/sbin
source "$root/benches/lib/setup.sh"
bench_setup cache.sh wrk varnishd

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_paas NAME FLAG…: a `paas up` of the example app's web process; sets its pid and port.
start_paas() {
    local name=$1
    shift
    mkdir -p "$tmp/$name/app"
    printf 'web: paas example-app web\n' >"$tmp/$name/app/Procfile"
    local port
    port=$(free_port)
    PAAS_API_KEY=$key "$paas" up --app-dir "$tmp/$name/app" --name bench --data-dir "$tmp/$name/data" \
        --api-port 0 --syslog-port 0 --udp-port 0 --syslog-tls-port 0 --https-port 0 \
        --http-port "$port" --metrics-interval 0 --env LOG_REQUESTS=0 "$@" \
        >"$tmp/$name/up.out" 2>"$tmp/$name/up.err" &
    pids+=("$!")
    eval "${name}_pid=$!; ${name}_port=$port"
    for _ in $(seq 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ] && return
        sleep 0.05
    done
    cat "$tmp/$name/up.out" "$tmp/$name/up.err" >&2
    exit 1
}

start_paas paas
start_paas bare --cache-mb 0
dyno_port=$(curl -s -H "Authorization: Bearer $key" \
    "$(sed -n 's/.* api on \(http[^ ]*\).*/\1/p' "$tmp/paas/up.out")/apps/bench/dynos" |
    jq -r '.[] | select(.name == "web.1") | .port')

varnish_port=$(free_port)
mkdir -p "$tmp/varnish"
varnishd -F -a "127.0.0.1:$varnish_port" -b "127.0.0.1:$dyno_port" -s malloc,256m \
    -n "$tmp/varnish" >"$tmp/varnish.out" 2>&1 &
varnish_pid=$!
pids+=("$varnish_pid")
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$varnish_port/cached" && break
    sleep 0.1
done
varnish_procs() { pgrep -P "$varnish_pid" | tr '\n' ' '; echo "$varnish_pid"; }

# Each miss-row request a URL not seen before.
cat >"$tmp/miss.lua" <<'EOF'
counter = 0
request = function()
    counter = counter + 1
    return wrk.format("GET", "/cached?n=" .. counter .. "-" .. math.random(1e9))
end
EOF

# run NAME ROW PORT PID…: one run; prints `result name=… rps=… p50=… p99=… cpu_us=…`.
run() {
    local name=$1 row=$2 port=$3
    shift 3
    local args=() before after out
    [ "$row" = miss ] && args=(-s "$tmp/miss.lua")
    before=$(cpu_ticks "$@")
    out=$(wrk -t1 -c"$connections" -d"${duration}s" --latency "${args[@]}" "http://127.0.0.1:$port/cached")
    after=$(cpu_ticks "$@")
    local requests rps p50 p99 errors cpu_us
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    cpu_us=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
        'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    echo "result name=$name row=$row rps=$rps p50=$p50 p99=$p99 cpu_us=$cpu_us ${errors:+errors=\"$errors\"}"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "cache.sh: $runs runs of ${duration}s, $connections connections, on $(nproc) cores"
for port in "$varnish_port" "$paas_port" "$bare_port"; do
    wrk -t1 -c"$connections" -d1s "http://127.0.0.1:$port/cached" >/dev/null
done
declare -A cpu rps p50 p99
for i in $(seq "$runs"); do
    for row in hit miss; do
        for target in varnish paas bare; do
            [ "$target" = bare ] && [ "$row" = hit ] && continue
            case $target in
                # shellcheck disable=SC2046
                varnish) line=$(run varnish "$row" "$varnish_port" $(varnish_procs)) ;;
                paas) line=$(run paas "$row" "$paas_port" "$paas_pid") ;;
                bare) line=$(run bare "$row" "$bare_port" "$bare_pid") ;;
            esac
            echo "  run $i: $line"
            cpu[$row.$target]+="$(field cpu_us "$line") "
            rps[$row.$target]+="$(field rps "$line") "
            p50[$row.$target]+="$(field p50 "$line") "
            p99[$row.$target]+="$(field p99 "$line") "
        done
    done
done

of() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
printf '%-5s %-22s %10s %10s %24s %11s %10s\n' row target rps p50 "p99 (runs)" "CPU µs/req" "× varnish"
for row in hit miss; do
    for target in varnish paas bare; do
        [ -n "${cpu[$row.$target]:-}" ] || continue
        ratio=$(awk -v a="$(of "${cpu[$row.$target]}")" -v b="$(of "${cpu[$row.varnish]}")" \
            'BEGIN {if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-"}')
        label=$target
        [ "$target" = bare ] && label="paas, no cache (proxy)"
        [ "$target" = varnish ] && ratio=""
        printf '%-5s %-22s %10s %10s %24s %11s %10s\n' "$row" "$label" \
            "$(of "${rps[$row.$target]}")" "$(of "${p50[$row.$target]}")" \
            "$(echo "${p99[$row.$target]}" | xargs | tr ' ' '/')" \
            "$(of "${cpu[$row.$target]}")" "$ratio"
    done
done
echo
hit=$(awk -v a="$(of "${cpu[hit.paas]}")" -v b="$(of "${cpu[hit.varnish]}")" 'BEGIN {printf "%.2f", a / b}')
added=$(awk -v a="$(of "${cpu[miss.paas]}")" -v b="$(of "${cpu[miss.bare]}")" 'BEGIN {printf "%.1f", a - b}')
echo "result row=hit paas_cpu_us=$(of "${cpu[hit.paas]}") varnish_cpu_us=$(of "${cpu[hit.varnish]}") ratio=$hit target<=0.5 $(verdict "$hit" "<=" 0.5)"
echo "result row=miss paas_cpu_us=$(of "${cpu[miss.paas]}") proxy_cpu_us=$(of "${cpu[miss.bare]}") added_us=$added target<=2 $(verdict "$added" "<=" 2)"
