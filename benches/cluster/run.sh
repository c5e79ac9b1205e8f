#!/usr/bin/env bash
# The cluster's benchmark: `paas logplex` nodes on NATS JetStream (the machine's, on
# 127.0.0.1:4222) and PostgreSQL (127.0.0.1:5432), against the embedded default.
#
#   bash benches/cluster/run.sh                 # 1,000,000 lines a run
#   LINES=100000 bash benches/cluster/run.sh    # quick run
#
# 1. embedded: one `paas logplex` without --nats, LINES frames over one syslog TCP connection
#    (logplex-load send), waited for until the router accepted them all.
# 2. cluster of 1, 2, 3 nodes: LINES frames split over the nodes, one sender each (a
#    round-robin sender); a node takes the next read only once JetStream acknowledged the
#    last, so "acked" is the rate senders were acknowledged at; "everywhere" is when every
#    node's bus reader had them all (its heartbeat, at most 1 s late).
#    CPU µs/line counts the nodes and the nats-server.
# 2b. at one offered rate (FIXED_RATE, 150,000 lines/s; FIXED_LINES 1,500,000): embedded and
#    one cluster node, where every router-wide consumer (history file, spool and index,
#    metrics) keeps up in both: the CPU a line each costs. At full speed the embedded router's
#    consumers fall behind and drop (counted in logplex_lines_dropped_total), so its rate
#    there is not the same work as the cluster's; this row is.
# 3. failover: 3 nodes, one syslog drain (logplex-load sink) shared by all, --drain-ack-wait
#    ACK_WAIT (2 s); lines sent to nodes 0 and 2, node 1 killed with SIGKILL mid-delivery;
#    reported: the time from the kill until the drain had every acknowledged line.
#
# Every node, the senders, NATS and PostgreSQL share this machine's cores: the curve is the
# cost of the hop, not the scaling N machines would give.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lines=${LINES:-1000000}
ack_wait=${ACK_WAIT:-2}
nats_url=${NATS_URL:-nats://127.0.0.1:4222}

source "$root/benches/lib/setup.sh"
bench_setup cluster/run.sh psql

db=paas_bench_$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null
streams=()
# delete_streams NAME…: the run's JetStream streams go (NATS's protocol, by python3).
delete_streams() {
    [[ $# -gt 0 ]] || return 0
    python3 - "$nats_url" "$@" <<'PY' || true
import json, socket, sys
host, port = sys.argv[1].removeprefix("nats://").rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
f = s.makefile("rb")
f.readline()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _r 1\r\n')
for name in sys.argv[2:]:
    s.sendall(f"PUB $JS.API.STREAM.DELETE.{name} _r 0\r\n\r\n".encode())
    while not f.readline().startswith(b"MSG"):
        pass
    f.readline()
PY
}
cleanup() {
    bench_cleanup
    delete_streams "${streams[@]}"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
nats_pid=$(pgrep -f 'nats-server.*-p 4222' | head -1 || true)
[[ -n $nats_pid ]] || echo "cluster/run.sh: no nats-server process found on 4222; its CPU is not counted" >&2

# start_node NAME [FLAGS…]: a node in $tmp/NAME; sets node_pid, api, syslog.
start_node() {
    local dir=$tmp/$1
    shift
    mkdir -p "$dir/data"
    PAAS_API_KEY=$key "$paas" logplex --api-port 0 --syslog-port 0 --udp-port 0 \
        --syslog-tls-port 0 --data-dir "$dir/data" --app-rate 0 \
        --drain-allow-net 127.0.0.0/8 "$@" >"$dir/out" 2>"$dir/err" &
    node_pid=$!
    pids+=("$node_pid")
    local i
    for i in $(seq 200); do
        if grep -q 'data in' "$dir/out" 2>/dev/null; then
            api=$(sed -n 's/.*api on \(http[^ ]*\).*/\1/p' "$dir/out")
            syslog=$(sed -n 's/.*syslog tcp on \([^ ]*\)$/\1/p' "$dir/out")
            return
        fi
        kill -0 "$node_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "cluster/run.sh: a node did not start:" >&2
    cat "$dir/out" "$dir/err" >&2
    exit 1
}

# cluster_flags STREAM ID
cluster_flags() {
    echo --nats "$nats_url" --database-url "postgres://postgres@127.0.0.1:5432/$db" \
        --nats-stream "$1" --nats-prefix "$(tr 'A-Z' 'a-z' <<<"$1")" --bus-max-mb 2048 \
        --bus-max-age 1h --node-id "$2" --drain-ack-wait "$ack_wait"
}

call() { # call API METHOD PATH [JSON]
    local args=(-sS --fail-with-body -X "$2" -H "Authorization: Bearer $key")
    [[ $# -ge 4 ]] && args+=(-H 'Content-Type: application/json' -d "$4")
    curl "${args[@]}" "$1$3"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); NATS $nats_url, PostgreSQL 127.0.0.1:5432"

# --- 1. embedded ----------------------------------------------------------------------------
start_node embedded
token=$(call "$api" POST /apps '{"name":"shop"}' | jq -r .ingest_token.token)
cpu0=$(cpu_ticks "$node_pid")
out=$("$load" send --addr "$syslog" --token "$token" --lines "$lines" --api "$api" --key "$key" --app shop)
cpu1=$(cpu_ticks "$node_pid")
embedded_rate=$(field accepted_lines_per_sec "$out")
embedded_cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v n="$lines" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true
echo "embedded, 1 node: $embedded_rate lines/s, router CPU $embedded_cpu µs/line"

# --- 2. clusters of 1, 2, 3 -----------------------------------------------------------------
declare -A rate_of cpu_of node_cpu_of everywhere_of
for n in 1 2 3; do
    stream=BENCH_$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')_$n
    streams+=("$stream")
    apis=() syslogs=() nodes=()
    for i in $(seq 0 $((n - 1))); do
        # shellcheck disable=SC2046
        start_node "c$n-$i" $(cluster_flags "$stream" "n$i")
        apis+=("$api") syslogs+=("$syslog") nodes+=("$node_pid")
    done
    app=shop$n
    token=$(call "${apis[0]}" POST /apps "{\"name\":\"$app\"}" | jq -r .ingest_token.token)
    for a in "${apis[@]}"; do
        until call "$a" GET "/apps/$app" >/dev/null 2>&1; do sleep 0.05; done
    done
    share=$((lines / n))
    total=$((share * n))
    cpus=("${nodes[@]}")
    [[ -n $nats_pid ]] && cpus+=("$nats_pid")
    cpu0=$(cpu_ticks "${cpus[@]}")
    node_cpu0=$(cpu_ticks "${nodes[@]}")
    t0=$(now)
    senders=()
    for i in $(seq 0 $((n - 1))); do
        "$load" send --addr "${syslogs[$i]}" --token "$token" --lines "$share" \
            --api "${apis[$i]}" --key "$key" --app "$app" >"$tmp/send-$n-$i" &
        senders+=($!)
    done
    for s in "${senders[@]}"; do wait "$s"; done
    t1=$(now)
    cpu1=$(cpu_ticks "${cpus[@]}")
    node_cpu1=$(cpu_ticks "${nodes[@]}")
    # Every node's bus reader has read them all (heartbeats: at most a second late).
    until call "${apis[0]}" GET /cluster | jq -e --argjson t "$total" \
        '[.nodes[] | select(.alive) | .status.consumers["bus-reader"].lines >= $t] | (length == '"$n"' and all)' >/dev/null; do
        sleep 0.1
    done
    t2=$(now)
    rate_of[$n]=$(awk -v l="$total" -v s="$(elapsed "$t0" "$t1")" 'BEGIN {printf "%.0f", l / s}')
    cpu_of[$n]=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v l="$total" 'BEGIN {printf "%.2f", t * 1e6 / hz / l}')
    node_cpu_of[$n]=$(awk -v t=$((node_cpu1 - node_cpu0)) -v hz="$clk_tck" -v l="$total" 'BEGIN {printf "%.2f", t * 1e6 / hz / l}')
    everywhere_of[$n]=$(awk -v l="$total" -v s="$(elapsed "$t0" "$t2")" 'BEGIN {printf "%.0f", l / s}')
    echo "cluster of $n: $total lines acked at ${rate_of[$n]} lines/s (read by every node at ${everywhere_of[$n]} lines/s); nodes + nats-server CPU ${cpu_of[$n]} µs/line (the nodes ${node_cpu_of[$n]})"
    for p in "${nodes[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${nodes[@]}"; do wait "$p" 2>/dev/null || true; done
done

# --- 2b. the same offered rate, every consumer fed -----------------------------------------
fixed_rate=${FIXED_RATE:-150000}
fixed_lines=${FIXED_LINES:-1500000}
declare -A fixed_node_of fixed_nats_of fixed_drops_of
for mode in embedded cluster; do
    flags=()
    if [[ $mode == cluster ]]; then
        stream=BENCH_$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')_fixed
        streams+=("$stream")
        # shellcheck disable=SC2207
        flags=($(cluster_flags "$stream" fixed))
    fi
    start_node "fixed-$mode" "${flags[@]}"
    app=fixed$mode
    token=$(call "$api" POST /apps "{\"name\":\"$app\"}" | jq -r .ingest_token.token)
    cpu0=$(cpu_ticks "$node_pid")
    nats0=0
    [[ -n $nats_pid ]] && nats0=$(cpu_ticks "$nats_pid")
    "$load" send --addr "$syslog" --token "$token" --lines "$fixed_lines" --rate "$fixed_rate" \
        --api "$api" --key "$key" --app "$app" >/dev/null
    sleep 2 # the consumers finish what they hold
    cpu1=$(cpu_ticks "$node_pid")
    nats1=0
    [[ -n $nats_pid ]] && nats1=$(cpu_ticks "$nats_pid")
    fixed_node_of[$mode]=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v n="$fixed_lines" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
    fixed_nats_of[$mode]=$(awk -v t=$((nats1 - nats0)) -v hz="$clk_tck" -v n="$fixed_lines" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
    fixed_drops_of[$mode]=$(call "$api" GET /metrics | awk '/^logplex_lines_dropped_total/ {s += $2} END {print s + 0}')
    echo "$mode at $fixed_rate lines/s: the node ${fixed_node_of[$mode]} µs/line, nats-server ${fixed_nats_of[$mode]} µs/line; consumers dropped ${fixed_drops_of[$mode]} lines"
    kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true
done

# --- 3. failover ----------------------------------------------------------------------------
stream=BENCH_$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')_fail
streams+=("$stream")
fail_lines=${FAIL_LINES:-60000}
"$load" sink --expect "$fail_lines" --quiet-secs 60 >"$tmp/sink" &
sink_pid=$!
pids+=("$sink_pid")
until grep -q 'sink listening on' "$tmp/sink"; do sleep 0.05; done
sink_addr=$(sed -n 's/.*sink listening on \([^ ]*\).*/\1/p' "$tmp/sink")
apis=() syslogs=() nodes=()
for i in 0 1 2; do
    # shellcheck disable=SC2046
    start_node "f-$i" $(cluster_flags "$stream" "f$i")
    apis+=("$api") syslogs+=("$syslog") nodes+=("$node_pid")
done
token=$(call "${apis[0]}" POST /apps '{"name":"failover"}' | jq -r .ingest_token.token)
for a in "${apis[@]}"; do
    until call "$a" GET /apps/failover >/dev/null 2>&1; do sleep 0.05; done
done
call "${apis[1]}" POST /apps/failover/log-drains "{\"url\":\"syslog://$sink_addr\"}" >/dev/null
for a in "${apis[@]}"; do
    until call "$a" GET /apps/failover/log-drains | jq -e 'length == 1' >/dev/null; do sleep 0.05; done
done
half=$((fail_lines / 2))
"$load" send --addr "${syslogs[0]}" --token "$token" --lines "$half" --rate 20000 \
    --api "${apis[0]}" --key "$key" --app failover >/dev/null &
s0=$!
"$load" send --addr "${syslogs[2]}" --token "$token" --lines "$half" --rate 20000 \
    --api "${apis[2]}" --key "$key" --app failover >/dev/null &
s2=$!
sleep 1
kill -KILL "${nodes[1]}"
t_kill=$(now)
wait "$s0" "$s2"
t_sent=$(now)
until grep -q '^result' "$tmp/sink"; do sleep 0.05; done
t_done=$(now)
got=$(field frames "$(grep '^result' "$tmp/sink")")
failover=$(elapsed "$t_kill" "$t_done")
echo "failover: node f1 killed mid-delivery (ack wait ${ack_wait} s); the drain had all $got of $fail_lines lines $failover s after the kill (the senders, at 20,000 lines/s each to the two other nodes, were acknowledged their last line $(elapsed "$t_kill" "$t_sent") s after it)"
for p in "${nodes[0]}" "${nodes[2]}"; do kill -TERM "$p" 2>/dev/null || true; done

echo
echo "== summary ($lines lines a run; every process on one machine of $(nproc) cores) =="
printf '%-22s %14s %16s %14s %14s\n' setup "acked lines/s" "read everywhere" "CPU µs/line" "of it, nodes"
printf '%-22s %14s %16s %14s %14s\n' "embedded, 1 node" "$embedded_rate" "-" "$embedded_cpu" "$embedded_cpu"
for n in 1 2 3; do
    printf '%-22s %14s %16s %14s %14s\n' "cluster, $n node(s)" "${rate_of[$n]}" "${everywhere_of[$n]}" "${cpu_of[$n]}" "${node_cpu_of[$n]}"
done
hop=$(awk -v c="${cpu_of[1]}" -v e="$embedded_cpu" 'BEGIN {printf "%.2f", c - e}')
ratio=$(awk -v c="${rate_of[1]}" -v e="$embedded_rate" 'BEGIN {printf "%.0f", 100 * c / e}')
echo "the JetStream hop: +$hop µs of CPU a line (node + nats-server), one node keeps $ratio % of the embedded rate (target >= 50 %: $(verdict "$ratio" '>=' 50))"
fixed_total=$(awk -v n="${fixed_node_of[cluster]}" -v s="${fixed_nats_of[cluster]}" 'BEGIN {printf "%.2f", n + s}')
fixed_ratio=$(awk -v c="$fixed_total" -v e="${fixed_node_of[embedded]}" 'BEGIN {printf "%.0f", 100 * e / c}')
echo "at $fixed_rate lines/s with every consumer fed: embedded ${fixed_node_of[embedded]} µs/line, one cluster node ${fixed_node_of[cluster]} + nats-server ${fixed_nats_of[cluster]} = $fixed_total µs/line: the clustered path does $fixed_ratio % of the embedded work per CPU second (target >= 50 %: $(verdict "$fixed_ratio" '>=' 50))"
echo "failover after kill -9: $failover s until the drain had every line (target <= 5 s: $(verdict "$failover" '<=' 5))"
