#!/usr/bin/env bash
# Drain throughput against rsyslog as a relay (issue 4): the same frames over syslog TCP into
# `paas logplex`, out of one `syslog://` drain, into `logplex-load sink`; then through rsyslogd
# (imtcp in, omfwd octet-counted TCP out) into the same sink. Fresh processes for every run
# (temporary directories, free ports); the load and the sink are `logplex-load`
# (benches/router/load).
#
#   bash benches/drains/relay.sh                   # 2,000,000 lines, the rate search below
#   LINES=500000 RATES="max 250000" bash benches/drains/relay.sh      # quick run
#
# Ours: the sender is paced at each of RATES in turn (lines/s, fastest first; "max" = as fast
# as the router reads), each run on a fresh router with the default drain buffer, until a run
# where the drain drops nothing and the sink gets every line: that run is the figure.
# rsyslog applies back-pressure over TCP, so it is sent to as fast as it reads.
#
# Environment: LINES (2000000), RATES ("max 1500000 1000000 750000 500000 250000 125000"),
# DRAIN_BUFFER (--drain-buffer, 1024: the router's default), BIG_BUFFER (200000: one more,
# unpaced run with --drain-buffer BIG_BUFFER, reported on its own line, not as the figure; 0:
# none), QUIET_SECS (the sink stops this
# long after its last byte when lines are missing, 2), CARGO_TARGET_DIR (default
# ~/.cache/paas-target). Installs curl, jq and rsyslog from Debian when missing; reads /proc.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lines=${LINES:-2000000}
rates=${RATES:-"max 1500000 1000000 750000 500000 250000 125000"}
drain_buffer=${DRAIN_BUFFER:-1024}
big_buffer=${BIG_BUFFER:-200000}
quiet=${QUIET_SECS:-2}

# curl, jq and rsyslogd from Debian, installed when missing.
PATH=$PATH:/usr/sbin:/sbin
source "$root/benches/lib/setup.sh"
bench_setup relay.sh rsyslog

# cpu_ticks PID: its CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# wait_for FILE PATTERN PID WHAT: until FILE has a line matching PATTERN (10 s at most).
wait_for() {
    local i
    for i in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return
        kill -0 "$3" 2>/dev/null || break
        sleep 0.05
    done
    echo "relay.sh: $4 did not start:" >&2
    cat "$1" "${1%.out}.err" >&2 2>/dev/null || true
    exit 1
}

# start_sink DIR [FLAGS…]: a sink expecting $lines frames; sets sink_pid, sink_addr.
start_sink() {
    local dir=$1
    shift
    "$load" sink --listen 127.0.0.1:0 --expect "$lines" --quiet-secs "$quiet" "$@" \
        >"$dir/sink.out" 2>"$dir/sink.err" &
    sink_pid=$!
    pids+=("$sink_pid")
    wait_for "$dir/sink.out" '^sink listening on ' "$sink_pid" "the sink"
    sink_addr=$(sed -n 's/^sink listening on //p' "$dir/sink.out")
}

# send ADDR TOKEN [FLAGS…]: $lines frames; sets out (the load's output) and first_us (the
# sender's first byte, Unix µs).
send() {
    local addr=$1 token=$2
    shift 2
    out=$("$load" send --addr "$addr" --token "$token" --lines "$lines" "$@")
    first_us=$(field first_byte_unix_us "$out")
}


# figures LABEL SINK_RESULT TICKS: sets got, rate, cpu_us, and prints them.
figures() {
    local last
    got=$(field frames "$2")
    last=$(field last_frame_unix_us "$2")
    rate=$(awk -v n="$got" -v a="$first_us" -v b="$last" 'BEGIN {
        printf "%.0f", (b > a ? n / ((b - a) / 1e6) : 0) }')
    cpu_us=$(awk -v t="$3" -v hz="$clk_tck" -v n="$lines" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
    echo "$1: sink got $got of $lines lines ($(field ignored "$2") L10 notices apart), $rate msg/s from the sender's first byte to the sink's last frame; CPU $cpu_us µs/msg ($3 ticks of 1/$clk_tck s)"
}


echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (figures are noisy unless the machine is otherwise idle)"

# --- Ours: sender -> router -> syslog:// drain -> sink. --------------------------------------
# ours_run NAME RATE BUFFER: one run on a fresh router (RATE "max": unpaced); sets got, rate,
# cpu_us, lost, dropped, delivered, hwm_kb.
ours_run() {
    local dir=$tmp/$1 pace=$2 buffer=$3
    mkdir -p "$dir/data"
    start_sink "$dir" --ignore-pri 172
    PAAS_API_KEY=$key "$paas" logplex --api-port 0 --syslog-port 0 --udp-port 0 \
        --syslog-tls-port 0 --data-dir "$dir/data" --app-rate 0 --drain-buffer "$buffer" \
        --drain-allow-net 127.0.0.0/8 \
        >"$dir/router.out" 2>"$dir/router.err" &
    local router=$!
    pids+=("$router")
    wait_for "$dir/router.out" 'syslog tcp on' "$router" "the router"
    local api syslog
    api=$(sed -n 's/.*api on \(http[^ ]*\).*/\1/p' "$dir/router.out")
    syslog=$(sed -n 's/.*syslog tcp on \([^ ]*\)$/\1/p' "$dir/router.out")
    call() {
        local args=(-sS --fail-with-body -X "$1" -H "Authorization: Bearer $key")
        [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' -d "$3")
        curl "${args[@]}" "$api$2"
    }
    local token drain cpu0 cpu1 result stats
    token=$(call POST /apps '{"name":"shop"}' | jq -r .ingest_token.token)
    drain=$(call POST /apps/shop/log-drains "{\"url\":\"syslog://$sink_addr\"}" | jq -r .id)
    local paced=()
    [[ $pace != max ]] && paced=(--rate "$pace")
    cpu0=$(cpu_ticks "$router")
    send "$syslog" "$token" "${paced[@]}"
    wait "$sink_pid" || true
    cpu1=$(cpu_ticks "$router")
    hwm_kb=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$router/status")
    result=$(grep '^result' "$dir/sink.out" || echo "result frames=0")
    stats=$(call GET "/apps/shop/log-drains/$drain")
    kill -TERM "$router" 2>/dev/null || true
    wait "$router" 2>/dev/null || true
    dropped=$(jq .delivery.dropped <<<"$stats")
    delivered=$(jq .delivery.sent <<<"$stats")
    echo "  $(grep -v '^result' <<<"$out" | tail -1)"
    figures "  ours, ${pace/max/unpaced}, --drain-buffer $buffer" "$result" $((cpu1 - cpu0))
    lost=$((lines - got))
    echo "  drain: sent $delivered, dropped $dropped, last_error $(jq -c .delivery.last_error <<<"$stats"); lost (sent - received) $lost; router peak RSS $((hwm_kb / 1024)) MiB"
}

echo
echo "== ours: $lines lines -> paas logplex -> syslog:// drain -> sink, --drain-buffer $drain_buffer; rates tried fastest first: $rates =="
ours_rate="" ours_cpu="" ours_lost="" ours_dropped="" ours_pace=""
tried=()
for pace in $rates; do
    ours_run "ours-$pace" "$pace" "$drain_buffer"
    tried+=("${pace/max/unpaced}: $rate msg/s, dropped $dropped")
    ours_rate=$rate ours_cpu=$cpu_us ours_lost=$lost ours_dropped=$dropped ours_pace=$pace
    if [[ $dropped -eq 0 && $lost -eq 0 ]]; then
        break
    fi
done
if [[ $ours_dropped -eq 0 && $ours_lost -eq 0 ]]; then
    echo "highest rate without loss: ${ours_pace/max/unpaced} (lines/s sent)"
else
    echo "no rate tried was without loss; the figures below are the slowest run's"
fi

big_line=""
if [[ $big_buffer -gt 0 ]]; then
    echo
    echo "== ours, unpaced, --drain-buffer $big_buffer =="
    ours_run ours-big max "$big_buffer"
    big_rate=$rate
    big_line="$rate msg/s, CPU $cpu_us µs/msg, lost $lost, dropped $dropped"
fi

# --- rsyslog: sender -> rsyslogd (imtcp -> omfwd, octet-counted TCP) -> sink. ---------------
echo
echo "== rsyslog: $lines lines -> rsyslogd $(rsyslogd -v | sed -n '1s/^rsyslogd *\([^ ]*\).*/\1/p') (imtcp -> omfwd octet-counted TCP) -> sink =="
dir=$tmp/rsyslog
mkdir -p "$dir/work"
start_sink "$dir"
# The main queue in memory (LinkedList, 100,000 messages, batches of 1,024), the forwarding
# action run by its worker (no queue of its own: the fastest of the set-ups tried here). imtcp
# input is "delayable": a full queue holds the sender back rather than dropping.
cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir/work")
main_queue(queue.type="LinkedList" queue.size="100000" queue.dequeueBatchSize="1024")
module(load="imtcp")
input(type="imtcp" port="0" listenPortFileName="$dir/port" ruleset="relay")
ruleset(name="relay") {
  action(type="omfwd" target="127.0.0.1" port="${sink_addr##*:}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}
EOF
rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" >"$dir/rsyslogd.out" 2>"$dir/rsyslogd.err" &
rsyslogd_pid=$!
pids+=("$rsyslogd_pid")
for _ in $(seq 200); do
    [[ -s $dir/port ]] && break
    kill -0 "$rsyslogd_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ ! -s $dir/port ]]; then
    echo "relay.sh: rsyslogd did not start:" >&2
    cat "$dir/rsyslogd.out" "$dir/rsyslogd.err" >&2
    exit 1
fi
# Any frame will do for rsyslog: a token of the same length as a real one keeps the frames
# the same size as ours.
cpu0=$(cpu_ticks "$rsyslogd_pid")
send "127.0.0.1:$(cat "$dir/port")" t.00000000-0000-0000-0000-000000000000
wait "$sink_pid" || true
cpu1=$(cpu_ticks "$rsyslogd_pid")
kill -TERM "$rsyslogd_pid" 2>/dev/null || true
wait "$rsyslogd_pid" 2>/dev/null || true
result=$(grep '^result' "$dir/sink.out" || echo "result frames=0")
echo "  $(grep -v '^result' <<<"$out" | tail -1)"
figures "  rsyslog" "$result" $((cpu1 - cpu0))
rs_rate=$rate rs_cpu=$cpu_us rs_lost=$((lines - got))
echo "  lost (sent - received) $rs_lost"

# --- Summary. ---------------------------------------------------------------------------------
ratio=$(awk -v a="$ours_rate" -v b="$rs_rate" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
if [[ $ours_lost -eq 0 && $ours_dropped -eq 0 ]]; then
    zero=ok
else
    zero=MISSED
fi
echo
echo "== summary (target beside each) =="
echo "rate search (--drain-buffer $drain_buffer): ${tried[*]/%/;}"
printf '%-38s %-34s %-24s %s\n' \
    "ours, sent at ${ours_pace/max/unpaced} lines/s" "$ours_rate msg/s" "" "" \
    "rsyslog relay, unpaced" "$rs_rate msg/s" "" "" \
    "ratio ours / rsyslog" "$ratio" ">= 2" "$(verdict "$ratio" ">=" 2)" \
    "ours lost (sent - received), dropped" "$ours_lost, $ours_dropped" "0, 0" "$zero" \
    "rsyslog lost" "$rs_lost" "" "" \
    "router CPU" "$ours_cpu µs/msg" "<= 1 µs/msg" "$(verdict "$ours_cpu" "<=" 1)" \
    "rsyslogd CPU" "$rs_cpu µs/msg" "" ""
if [[ -n $big_line ]]; then
    big_ratio=$(awk -v a="$big_rate" -v b="$rs_rate" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    echo "not the figure: unpaced, --drain-buffer $big_buffer: $big_line; $big_ratio x rsyslog"
fi
