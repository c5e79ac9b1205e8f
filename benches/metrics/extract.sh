#!/usr/bin/env bash
# Metric extraction's cost to ingest, and its speed alone. Part 1: the router's ingest rate and
# CPU per line with extraction off and on (`--metrics-extract false|true`), alternating runs
# on fresh `paas logplex`es (median of RUNS each), with lines that carry l2met metrics so that
# the extractor has work on every line (`logplex-load send --l2met`). Part 2: the criterion
# bench of extraction alone, one core (query/benches/metrics.rs): router lines, l2met lines,
# plain lines, beside the bare logfmt pass.
#
#   bash benches/metrics/extract.sh                  # 3 x 2,000,000 lines each way
#   LINES=300000 RUNS=1 bash benches/metrics/extract.sh    # quick run
#
# Environment: LINES (2000000), RUNS (3), L2MET (1: lines carry l2met; 0: the plain router-
# shaped lines of benches/router, which the extractor skips: a tenant's lines are never taken
# for the platform's router lines), CRITERION (1: run part 2), CARGO_TARGET_DIR.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lines=${LINES:-2000000}
runs=${RUNS:-3}
l2met=${L2MET:-1}
criterion=${CRITERION:-1}

source "$root/benches/lib/setup.sh"
bench_setup extract.sh

send_flags=()
[[ $l2met == 1 ]] && send_flags+=(--l2met)

# run MODE N: one ingest run with extraction MODE (true|false); prints "RATE CPU_US".
run() {
    local dir=$tmp/$1-$2
    mkdir -p "$dir/data"
    PAAS_API_KEY=$key "$paas" logplex --api-port 0 --syslog-port 0 --udp-port 0 \
        --syslog-tls-port 0 --data-dir "$dir/data" --app-rate 0 --metrics-extract "$1" \
        >"$dir/out" 2>"$dir/err" &
    local pid=$!
    pids+=("$pid")
    local i api="" syslog=""
    for i in $(seq 100); do
        if grep -q 'syslog tcp on' "$dir/out" 2>/dev/null; then
            api=$(sed -n 's/.*api on \(http[^ ]*\).*/\1/p' "$dir/out")
            syslog=$(sed -n 's/.*syslog tcp on \([^ ]*\)$/\1/p' "$dir/out")
            break
        fi
        sleep 0.1
    done
    [[ -n $syslog ]] || { cat "$dir/out" "$dir/err" >&2; exit 1; }
    local token
    token=$(curl -sS --fail-with-body -X POST -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' -d '{"name":"shop"}' "$api/apps" | jq -r .ingest_token.token)
    local t0 t1 out
    t0=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    out=$("$load" send --addr "$syslog" --token "$token" --lines "$lines" --api "$api" \
        --key "$key" --app shop "${send_flags[@]}")
    # Extraction is asynchronous: wait until the extractor has read every line.
    if [[ $1 == true ]]; then
        for i in $(seq 600); do
            curl -s -H "Authorization: Bearer $key" "$api/metrics" |
                grep -q "^paas_metrics_lines_total $lines\$" && break
            sleep 0.1
        done
    fi
    t1=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    if [[ $1 == true && $2 == 1 ]]; then
        curl -s -H "Authorization: Bearer $key" "$api/metrics" |
            grep -E '^paas_(metrics_lines|metrics_lines_dropped|app_requests)_total' >&2 || true
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$(field accepted_lines_per_sec "$out") $(awk -v t=$((t1 - t0)) -v hz="$clk_tck" -v n="$lines" 'BEGIN {printf "%.3f", t * 1e6 / hz / n}')"
}

median() { sort -n | sed -n "$(((runs + 1) / 2))p"; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machines make these figures noisy)"
echo "== ingest: $lines lines over syslog TCP, l2met on every line: $l2met; $runs run(s) each way, alternating =="
off_rates=() on_rates=() off_cpu=() on_cpu=()
for i in $(seq "$runs"); do
    read -r rate cpu < <(run false "$i")
    echo "run $i, extraction off: $rate lines/s, router CPU $cpu µs/line"
    off_rates+=("$rate") off_cpu+=("$cpu")
    read -r rate cpu < <(run true "$i")
    echo "run $i, extraction on:  $rate lines/s, router CPU $cpu µs/line"
    on_rates+=("$rate") on_cpu+=("$cpu")
done
off=$(printf '%s\n' "${off_rates[@]}" | median)
on=$(printf '%s\n' "${on_rates[@]}" | median)
offc=$(printf '%s\n' "${off_cpu[@]}" | median)
onc=$(printf '%s\n' "${on_cpu[@]}" | median)
echo
echo "== summary =="
echo "ingest, extraction off (median): $off lines/s, $offc µs CPU/line"
echo "ingest, extraction on  (median): $on lines/s, $onc µs CPU/line"
awk -v a="$off" -v b="$on" -v c="$offc" -v d="$onc" 'BEGIN {
    printf "throughput cost of extraction: %.1f %% (target <= 10 %%); CPU per line: +%.1f %%\n",
        (a - b) / a * 100, (d - c) / c * 100 }'

if [[ $criterion == 1 ]]; then
    echo
    echo "== extraction alone, one core (criterion, query/benches/metrics.rs) =="
    (cd "$root" && cargo bench -p query --bench metrics -- --warm-up-time 1 --measurement-time 5 2>/dev/null |
        grep -E '^extract|thrpt' | grep -v '%')
fi
