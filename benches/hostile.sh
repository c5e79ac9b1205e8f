#!/usr/bin/env bash
# The router under a hostile tenant (issue 10): a fresh release `paas logplex` with its default
# limits (and loopback opened to drains, as a careless operator would) shared by two apps. The
# good tenant sends 10,000 stamped lines/s and reads them on a live tail; meanwhile the other
# tenant, with its own app key and token, runs every attack of the issue at once, bounded
# (benches/lib/attacks.py): deep filters, 3,000 sessions with 60 KB filters, 5,000 token
# creations, 200 stalled 4 MB `POST /logs` bodies, 2,000 idle API connections, 4,096 idle
# unauthenticated syslog sockets, drains aimed at the router itself.
#
#   bash benches/hostile.sh                 # 20 s under attack
#   SECONDS_UNDER=5 SCALE=0.2 bash benches/hostile.sh   # a quick run
#
# Prints the good tenant's delivered fraction (target 100 %), its tail latency p99 (<= 5 ms),
# the router's peak RSS (<= 512 MiB), what each attack got back, and the router's refusal
# counters. Installs curl, jq and python3 from Debian when missing; reads /proc (Linux).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
under=${SECONDS_UNDER:-20}
scale=${SCALE:-1.0}
rate=${RATE:-10000}

source "$root/benches/lib/setup.sh"
bench_setup hostile.sh python3

# The attacker holds thousands of sockets at once.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

dir=$tmp/router
mkdir -p "$dir/data"
PAAS_API_KEY=$key "$paas" logplex --api-port 0 --syslog-port 0 --udp-port 0 \
    --syslog-tls-port 0 --data-dir "$dir/data" --drain-allow-net 127.0.0.0/8 \
    >"$dir/out" 2>"$dir/err" &
router_pid=$!
pids+=("$router_pid")
for _ in $(seq 100); do
    grep -q 'syslog tcp on' "$dir/out" 2>/dev/null && break
    kill -0 "$router_pid" 2>/dev/null || break
    sleep 0.1
done
api=$(sed -n 's/.*api on \(http[^ ]*\).*/\1/p' "$dir/out")
syslog=$(sed -n 's/.*syslog tcp on \([^ ]*\)$/\1/p' "$dir/out")
if [[ -z $api || -z $syslog ]]; then
    echo "hostile.sh: the router did not start:" >&2
    cat "$dir/out" "$dir/err" >&2
    exit 1
fi

call() {
    curl -sS --fail-with-body -X "$1" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' ${3:+-d "$3"} "$api$2"
}
good_token=$(call POST /apps '{"name":"good"}' | jq -r .ingest_token.token)
evil_token=$(call POST /apps '{"name":"evil"}' | jq -r .ingest_token.token)
evil_key=$(call POST /apps/evil/keys | jq -r .key)

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== the good tenant: $rate lines/s for $under s on a live tail, under attack =="
"$load" tail-latency --api "$api" --key "$key" --app good --token "$good_token" \
    --syslog "$syslog" --rate "$rate" --seconds "$under" >"$tmp/good" &
good_pid=$!
pids+=("$good_pid")
sleep 0.5
python3 "$root/benches/lib/attacks.py" --api "$api" --syslog "$syslog" --key "$evil_key" \
    --app evil --token "$evil_token" --seconds "$under" --scale "$scale" >"$tmp/evil" &
evil_pid=$!
pids+=("$evil_pid")
wait "$good_pid"
good=$(grep '^result' "$tmp/good")
hwm_kb=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$router_pid/status")
wait "$evil_pid" || true
evil=$(grep '^result' "$tmp/evil" || echo "result (the attacker failed: $(tail -3 "$tmp/evil"))")
rss_after_kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$router_pid/status")
alive=yes
kill -0 "$router_pid" 2>/dev/null || alive=NO
health=$(curl -s -o /dev/null -w '%{http_code}' "$api/healthz" || true)
metrics=$(call GET /metrics || true)
evil_accepted=$(call GET /apps/evil/stats | jq .accepted || echo "?")
looped=$(awk -F'} ' '/^logplex_lines_rejected_total\{app="",reason="drain_loop"\}/ {print $2}' <<<"$metrics")

echo "attacker: ${evil#result }" | tr ' ' '\n' | sed '2,$s/^/  /'
echo "router refusals (from /metrics, non-zero):"
grep -E '^logplex_(limit_refusals|lines_rejected|connections_(refused|closed)|api_refused|drain_destinations)' \
    <<<"$metrics" | grep -v ' 0$' | sed 's/^/  /' || true

sent=$(field sent "$good")
count=$(field count "$good")
p99=$(field p99_ms "$good")
fraction=$(awk -v c="$count" -v s="$sent" 'BEGIN {printf "%.2f", s ? 100 * c / s : 0}')
mib() { awk -v kb="$1" 'BEGIN {printf "%.1f", kb / 1024}'; }
echo
echo "== summary (target beside each) =="
printf '%-36s %-26s %-14s %s\n' \
    "good tenant's lines delivered" "$fraction % ($count of $sent)" "100 %" "$(verdict "$fraction" ">=" 100)" \
    "good tenant's tail latency" "p50 $(field p50_ms "$good") ms, p99 $p99 ms" "p99 <= 5 ms" "$(verdict "$p99" "<=" 5)" \
    "router peak RSS" "$(mib "$hwm_kb") MiB" "<= 512 MiB" "$(verdict "$hwm_kb" "<=" $((512 * 1024)))" \
    "router RSS once the attack ended" "$(mib "$rss_after_kb") MiB" "" "" \
    "router alive, /healthz" "$alive, $health" "yes, 200" "" \
    "drain loop: 100 lines in, accepted" "$evil_accepted (${looped:-0} drain_loop refusals)" "100" ""
