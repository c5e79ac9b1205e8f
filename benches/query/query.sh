#!/usr/bin/env bash
# The query engine beside ripgrep (issue 11), in one run: a generated corpus of Heroku lines
# (`logplex-load corpus`: router lines over 600,000 paths, app lines with words), imported into
# a fresh release `paas logplex` with `paas import`; then the median of 5 warm runs of each
# query through the API (`GET /apps/{app}/query`, time to the whole answer) beside ripgrep doing
# the same on the raw file, and the ratio. VictoriaLogs is not run yet (its side of the script
# comes with the index).
#
#   bash benches/query/query.sh                 # 10,000,000 lines
#   LINES=1000000 RUNS=3 bash benches/query/query.sh   # a quick run
#
# Installs curl, jq and ripgrep from Debian when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lines=${LINES:-10000000}
runs=${RUNS:-5}

source "$root/benches/lib/setup.sh"
bench_setup query.sh ripgrep
command -v rg >/dev/null 2>&1 || { echo "query.sh: ripgrep (rg) is not installed" >&2; exit 1; }

corpus=$tmp/corpus.log
"$load" corpus --lines "$lines" --out "$corpus"
raw_bytes=$(stat -c %s "$corpus")
echo "corpus: $lines lines, $(awk -v b="$raw_bytes" 'BEGIN {printf "%.1f", b / 1e6}') MB"

dir=$tmp/router
mkdir -p "$dir/data"
PAAS_API_KEY=$key "$paas" logplex --api-port 0 --syslog-port 0 --udp-port 0 \
    --syslog-tls-port 0 --data-dir "$dir/data" --query-max-mb-per-app 65536 \
    >"$dir/out" 2>"$dir/err" &
router_pid=$!
pids+=("$router_pid")
for _ in $(seq 100); do
    grep -q 'data in' "$dir/out" 2>/dev/null && break
    sleep 0.1
done
api=$(sed -n 's/.*api on \(http[^ ]*\).*/\1/p' "$dir/out")
[[ -n $api ]] || { cat "$dir/out" "$dir/err" >&2; exit 1; }
curl -sS --fail-with-body -X POST -H "Authorization: Bearer $key" -d '{"name":"bench"}' "$api/apps" >/dev/null

cpu_ticks() { sed 's/^.*) //' "/proc/$router_pid/stat" | awk '{print $12 + $13}'; }
cpu0=$(cpu_ticks)
t0=$(date +%s.%N)
PAAS_API_URL=$api PAAS_API_KEY=$key "$paas" import -a bench "$corpus" 2>"$tmp/import"
t1=$(date +%s.%N)
cpu1=$(cpu_ticks)
# The indexer catches up behind the import (its last block is written 30 s after its first
# line, or at once when full): wait until no spool byte is outside a block.
lag() {
    curl -sS -H "Authorization: Bearer $key" "$api/metrics" | awk '$1 == "paas_query_index_lag_bytes" {print $2}'
}
for _ in $(seq 600); do
    [[ $(lag) == 0 ]] && break
    sleep 0.2
done
t2=$(date +%s.%N)
cpu2=$(cpu_ticks)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
indexed_secs=$(awk -v a="$t0" -v b="$t2" 'BEGIN {printf "%.2f", b - a}')
router_cpu=$(awk -v t=$((cpu2 - cpu0)) -v hz="$clk_tck" 'BEGIN {printf "%.2f", t / hz}')
index_bytes=$(du -sb "$dir/data/index" | cut -f1)
spool_bytes=$(du -sb "$dir/data/spool" | cut -f1)
kept_bytes=$((index_bytes + spool_bytes))
hwm_kb=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$router_pid/status")
rss_kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$router_pid/status")
echo "import: $(tail -1 "$tmp/import")"
echo "import: $secs s wall to send, indexed $indexed_secs s after the start ($(awk -v n="$lines" -v s="$indexed_secs" 'BEGIN {printf "%.0f", n / s}') lines/s); router CPU $router_cpu s ($(awk -v b="$raw_bytes" -v c="$router_cpu" 'BEGIN {printf "%.1f", (c > 0 ? b / 1e6 / c : 0)}') MB/s per core of router CPU, spool and index)"
echo "kept: $(awk -v k="$kept_bytes" -v r="$raw_bytes" 'BEGIN {printf "%.3f", k / r}')x the raw bytes (index $((index_bytes / 1000000)) MB, spool $((spool_bytes / 1000000)) MB); router RSS $((rss_kb / 1024)) MiB, peak $((hwm_kb / 1024)) MiB"

# A request id that exists, for the lookup.
rid=$(sed -n '1000p' "$corpus" | sed 's/.*request_id=\([^ ]*\).*/\1/')

# median_ms CMD…: the median of $runs runs of CMD (output discarded), in milliseconds.
median_ms() {
    local times=() i s e
    for i in $(seq "$runs"); do
        s=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        e=$(date +%s%N)
        times+=($(((e - s) / 1000000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

ask() {
    curl -sS -o /dev/null -G -H "Authorization: Bearer $key" --data-urlencode "q=$1" "$api/apps/bench/query"
}

names=() queries=() peers=()
row() { names+=("$1"); queries+=("$2"); peers+=("$3"); }
row "selective: status=503 path=/healthz" 'status=503 path=/healthz | count' \
    "rg -c 'path=\"/healthz\".*status=503' $corpus"
row "range: service>1000ms | count" 'service>1000ms | count' \
    "rg -c 'service=([0-9]{5,}|[1-9][0-9]{3})ms' $corpus"
row "count by path | head 10" '* | count by path | head 10' \
    "rg -o 'path=\"[^\"]*\"' $corpus | sort | uniq -c | sort -rn | head -10"
row "p50,p95,p99(service) by path" '* | p50(service),p95(service),p99(service) by path | head 10' ""
row "request_id lookup" "request_id=$rid" "rg -F 'request_id=$rid' $corpus"
row "full-text word \"timeout\"" '"timeout" | count' "rg -c -i -w timeout $corpus"
row "timechart 1m count by status" '* | timechart 1m count by status' \
    "rg -o '^[0-9T:-]{16}|status=[0-9]+' $corpus | paste - - | sort | uniq -c"
echo
printf '%-40s %12s %12s %10s\n' "query ($lines lines, median of $runs)" "paas ms" "ripgrep ms" "rg / paas"
for i in "${!names[@]}"; do
    ours=$(median_ms ask "${queries[$i]}")
    if [[ -n ${peers[$i]} ]]; then
        theirs=$(median_ms bash -c "${peers[$i]}")
        ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", (a > 0 ? b / a : 0)}')
    else
        theirs="-" ratio="-"
    fi
    printf '%-40s %12s %12s %10s\n' "${names[$i]}" "$ours" "$theirs" "$ratio"
done

# The same answer both ways (ripgrep's regex is the check, not a peer of equal meaning).
answer() {
    curl -sS -G -H "Authorization: Bearer $key" --data-urlencode "q=$1" "$api/apps/bench/query" | jq -r .count
}
echo
echo "answers: status=503 path=/healthz: paas $(answer 'status=503 path=/healthz | count'), rg $(rg -c 'path="/healthz".*status=503' "$corpus"); lines kept: paas $(answer '* | count'), file $lines"
