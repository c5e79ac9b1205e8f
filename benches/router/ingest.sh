#!/usr/bin/env bash
# The router's benchmarks: ingest throughput with a live tail, tail latency, and memory with
# many apps' history, each on a fresh `paas logplex` (temporary data directory, free ports,
# `--app-rate 0`), with the load from `logplex-load` (benches/router/load).
#
#   bash benches/router/ingest.sh      # 3 x 2,000,000 lines; 100K lines/s for 5 s; 100 apps
#   LINES=200000 RUNS=1 TAIL_SECONDS=1 APPS=10 bash benches/router/ingest.sh    # quick run
#
# Environment: LINES (ingest frames, 2000000), RUNS (ingest runs, the median reported, 3),
# CONNECTIONS (syslog connections for ingest, 1), TAIL (1: one live tail during ingest; 0: none), TAIL_RATE (lines/s, 100000), TAIL_SECONDS (5),
# APPS (100), HISTORY_LINES (1500 per app), CARGO_TARGET_DIR (default ~/.cache/paas-target).
# Installs curl and jq from Debian when missing; reads /proc (Linux).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lines=${LINES:-2000000}
runs=${RUNS:-3}
connections=${CONNECTIONS:-1}
tail_rate=${TAIL_RATE:-100000}
tail_seconds=${TAIL_SECONDS:-5}
# TAIL=0: ingest with no live tail (the router's own ceiling), for comparison.
with_tail=${TAIL:-1}
tail_label="1 tail open"
[[ $with_tail == 1 ]] || tail_label="no tail"
apps=${APPS:-100}
history_lines=${HISTORY_LINES:-1500}

source "$root/benches/lib/setup.sh"
bench_setup ingest.sh

# start_router NAME [FLAGS…]: a fresh router in $tmp/NAME; sets router_pid, api, syslog.
start_router() {
    local dir=$tmp/$1
    shift
    mkdir -p "$dir/data"
    PAAS_API_KEY=$key "$paas" logplex --api-port 0 --syslog-port 0 --udp-port 0 \
        --syslog-tls-port 0 --data-dir "$dir/data" --app-rate 0 "$@" >"$dir/out" 2>"$dir/err" &
    router_pid=$!
    pids+=("$router_pid")
    local i
    for i in $(seq 100); do
        if grep -q 'syslog tcp on' "$dir/out" 2>/dev/null; then
            api=$(sed -n 's/.*api on \(http[^ ]*\).*/\1/p' "$dir/out")
            syslog=$(sed -n 's/.*syslog tcp on \([^ ]*\)$/\1/p' "$dir/out")
            return
        fi
        kill -0 "$router_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "ingest.sh: the router did not start:" >&2
    cat "$dir/out" "$dir/err" >&2
    exit 1
}

stop_router() {
    kill -TERM "$router_pid" 2>/dev/null || true
    wait "$router_pid" 2>/dev/null || true
}

# api_call METHOD PATH [JSON]: the response body; fails on an HTTP error.
api_call() {
    local args=(-sS --fail-with-body -X "$1" -H "Authorization: Bearer $key")
    if [[ $# -ge 3 ]]; then
        args+=(-H 'Content-Type: application/json' -d "$3")
    fi
    curl "${args[@]}" "$api$2"
}

# create_app NAME: its ingest token.
create_app() {
    api_call POST /apps "{\"name\":\"$1\"}" | jq -r .ingest_token.token
}

# The router's CPU time so far (user + system), in clock ticks. Fields after "(comm) ".
cpu_ticks() {
    sed 's/^.*) //' "/proc/$router_pid/stat" | awk '{print $12 + $13}'
}

# status_kb FIELD: VmHWM, VmRSS, … of the router, in kB.
status_kb() {
    awk -v f="$1:" '$1 == f {print $2}' "/proc/$router_pid/status"
}

mib() { awk -v kb="$1" 'BEGIN {printf "%.1f", kb / 1024}'; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (figures are noisy unless the machine is otherwise idle)"

# --- 1. Ingest: $lines frames over syslog TCP into one app with one live tail open. ---------
# ingest_run N: one run on a fresh router; appends to rates, cpus, drops, hwms.
rates=() cpus=() drops=() hwms=()
ingest_run() {
    start_router "ingest-$1"
    local token url tail_pid cpu0 cpu1 send_out stats hwm_kb cpu_us dropped
    token=$(create_app shop)
    tail_pid=""
    if [[ $with_tail == 1 ]]; then
        url=$(api_call POST /apps/shop/log-sessions '{"lines":0,"tail":true}' | jq -r .logplex_url)
        curl -sN "$url" >/dev/null &
        tail_pid=$!
        pids+=("$tail_pid")
        for _ in $(seq 100); do
            [[ $(api_call GET /apps/shop/stats | jq .tails) -ge 1 ]] && break
            sleep 0.05
        done
    fi
    cpu0=$(cpu_ticks)
    send_out=$("$load" send --addr "$syslog" --token "$token" --lines "$lines" \
        --connections "$connections" --api "$api" --key "$key" --app shop)
    cpu1=$(cpu_ticks)
    hwm_kb=$(status_kb VmHWM)
    # The tail's counters leave the stats with the tail: read them while it is open.
    stats=$(api_call GET /apps/shop/stats)
    [[ -n $tail_pid ]] && kill "$tail_pid" 2>/dev/null || true
    stop_router
    cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v n="$lines" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
    dropped=$(jq '[.consumers[] | select(.kind == "tail") | .dropped] | add // 0' <<<"$stats")
    echo "run $1: $(grep -v '^result' <<<"$send_out" | tail -1)"
    echo "run $1: router accepted $(jq .accepted <<<"$stats"), rejected $(jq '[.rejected[]] | add' <<<"$stats"); CPU $cpu_us µs/line ($((cpu1 - cpu0)) ticks of 1/$clk_tck s); peak RSS $(mib "$hwm_kb") MiB; tail delivered $(jq '[.consumers[] | select(.kind == "tail") | .delivered] | add // 0' <<<"$stats"), dropped $dropped (L11)"
    rates+=("$(field accepted_lines_per_sec "$send_out")")
    cpus+=("$cpu_us")
    drops+=("$dropped")
    hwms+=("$hwm_kb")
}

echo
echo "== ingest: $lines frames over $connections syslog TCP connection(s), $tail_label; $runs run(s) =="
for run in $(seq "$runs"); do
    ingest_run "$run"
done
# The run with the median rate stands for all; peak RSS is the highest of any run.
median=$(for i in "${!rates[@]}"; do echo "${rates[$i]} $i"; done | sort -n | sed -n "$(((runs + 1) / 2))p" | cut -d' ' -f2)
ingest_rate=${rates[$median]}
cpu_us=${cpus[$median]}
tail_dropped=${drops[$median]}
hwm_kb=$(printf '%s\n' "${hwms[@]}" | sort -n | tail -1)
echo "median: run $((median + 1)), $ingest_rate lines/s (all runs: ${rates[*]})"

# --- 2. Tail latency: $tail_rate lines/s for $tail_seconds s, one tail. ----------------------
echo
echo "== tail latency: $tail_rate lines/s for $tail_seconds s =="
start_router latency
token=$(create_app shop)
lat_out=$("$load" tail-latency --api "$api" --key "$key" --app shop --token "$token" \
    --syslog "$syslog" --rate "$tail_rate" --seconds "$tail_seconds")
echo "$lat_out"
stop_router

# --- 3. Memory: $apps apps with $history_lines lines of history each. -----------------------
echo
echo "== memory: $apps apps x $history_lines history lines =="
start_router memory --history-lines "$history_lines"
tokens=()
names=()
for i in $(seq -f '%03g' 0 $((apps - 1))); do
    names+=("mem-$i")
    tokens+=("$(create_app "mem-$i")")
done
empty_kb=$(status_kb VmRSS)
send_args=()
for i in "${!names[@]}"; do
    send_args+=(--token "${tokens[$i]}" --app "${names[$i]}")
done
mem_out=$("$load" send --addr "$syslog" --lines $((apps * history_lines)) --api "$api" --key "$key" "${send_args[@]}")
echo "$mem_out"
kept=0
for name in "${names[@]}"; do
    kept=$((kept + $(api_call GET "/apps/$name/stats" | jq .history.lines)))
done
rss_kb=$(status_kb VmRSS)
mem_hwm_kb=$(status_kb VmHWM)
stop_router
echo "router: $kept history lines kept over $apps apps; RSS $(mib "$empty_kb") MiB with the apps empty, $(mib "$rss_kb") MiB full (peak $(mib "$mem_hwm_kb") MiB)"

# --- Summary. ---------------------------------------------------------------------------------
p50=$(field p50_ms "$lat_out")
p99=$(field p99_ms "$lat_out")
echo
echo "== summary (target beside each) =="
printf '%-34s %-30s %-22s %s\n' \
    "ingest, $tail_label (median)" "$ingest_rate lines/s" ">= 2000000 lines/s" "$(verdict "$ingest_rate" ">=" 2000000)" \
    "router CPU" "$cpu_us µs/line" "" "" \
    "peak RSS during ingest" "$(mib "$hwm_kb") MiB" "" "" \
    "tail drops during ingest" "$tail_dropped of $lines (L11)" "" "" \
    "tail latency at $tail_rate lines/s" "p50 $p50 ms, p99 $p99 ms" "p99 <= 5 ms" "$(verdict "$p99" "<=" 5)" \
    "RSS, $apps apps x $history_lines lines" "$(mib "$rss_kb") MiB" "<= 256 MiB" "$(verdict "$rss_kb" "<=" $((256 * 1024)))"
