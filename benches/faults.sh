#!/usr/bin/env bash
# The fault suite (issue 17), in full: what a crash costs the router. A fresh release
# `paas logplex` in a temporary data directory.
#
#   bash benches/faults.sh                   # every phase
#   PHASES=restart bash benches/faults.sh    # one phase
#
# Phases:
#   restart  100 apps × 1500 history lines (APPS, LINES), then SIGKILL 500 ms after the last
#            was accepted, and a restart on the same data directory: how long until the API
#            answers, and how many of each app's lines survived (target: all, < 1 s).
#   clean    the same after a clean stop (SIGTERM).
#   outage   a drain's receiver down for OUTAGE_SECONDS (300) at RATE (50,000) lines/s, default
#            and durable mode; then SIGKILL under load (tests/faults.rs, in release).
#   soak     SOAK_SECONDS (1800) of steady mixed load (ingest, a live tail, a steady and a
#            flapping drain, API reads): RSS, file descriptors and CPU every 10 s; fails on
#            growth past the bound the test states (tests/faults.rs, in release).
#
# Prints one `result k=v …` line per phase. Installs curl, jq and python3 when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
phases=${PHASES:-"restart clean outage soak"}
apps=${APPS:-100}
lines=${LINES:-1500}

source "$root/benches/lib/setup.sh"
bench_setup faults.sh python3

dir=$tmp/data
mkdir -p "$dir"
failed=()

# start_router: starts `paas logplex` on $dir; sets router_pid, api, and started_ms (how long
# until it said where its data is: its restore is done and the API listens by then).
start_router() {
    local t0 t1
    t0=$(date +%s%N)
    PAAS_API_KEY=$key "$paas" logplex --api-port 0 --syslog-port 0 --udp-port 0 \
        --syslog-tls-port 0 --data-dir "$dir" --history-lines "$lines" \
        >"$tmp/out" 2>"$tmp/err" &
    router_pid=$!
    pids+=("$router_pid")
    for _ in $(seq 1000); do
        grep -q 'data in' "$tmp/out" 2>/dev/null && break
        kill -0 "$router_pid" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
        sleep 0.005
    done
    t1=$(date +%s%N)
    api=$(sed -n 's/.*api on \(http[^ ]*\).*/\1/p' "$tmp/out")
    started_ms=$(((t1 - t0) / 1000000))
}

# load: makes the apps (first run only) and sends LINES lines to each through POST /logs.
load() {
    API=$api KEY=$key APPS=$apps LINES=$lines TMP=$tmp python3 - <<'EOF'
import json, os, urllib.request, base64
api, key, apps, lines = os.environ["API"], os.environ["KEY"], int(os.environ["APPS"]), int(os.environ["LINES"])
tokens_file = os.path.join(os.environ["TMP"], "tokens.json")
def call(method, path, body=None, headers=None):
    req = urllib.request.Request(api + path, data=body, method=method, headers=headers or {})
    req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()
tokens = {}
for i in range(apps):
    _, body = call("POST", "/apps", json.dumps({"name": f"app-{i}"}).encode(), {"Content-Type": "application/json"})
    tokens[f"app-{i}"] = json.loads(body)["ingest_token"]["token"]
json.dump(tokens, open(tokens_file, "w"))
for name, token in tokens.items():
    for start in range(0, lines, 500):
        frames = []
        for n in range(start, min(lines, start + 500)):
            msg = f"<190>1 2026-11-21T12:00:00.123456+00:00 host {token} web.1 - at=info method=GET path=/items/{n} status=200 service=12ms bytes=512 n={n}".encode()
            frames.append(str(len(msg)).encode() + b" " + msg)
        body = b"".join(frames)
        auth = base64.b64encode(f"token:{token}".encode()).decode()
        req = urllib.request.Request(api + "/logs", data=body, method="POST", headers={
            "Content-Type": "application/logplex-1", "Authorization": "Basic " + auth,
            "Logplex-Msg-Count": str(len(frames))})
        urllib.request.urlopen(req, timeout=30).read()
EOF
}

# survived: how many of each app's last LINES lines the history has (min and total).
survived() {
    API=$api KEY=$key APPS=$apps LINES=$lines python3 - <<'EOF'
import json, os, urllib.request
api, key, apps, lines = os.environ["API"], os.environ["KEY"], int(os.environ["APPS"]), int(os.environ["LINES"])
least, total = None, 0
for i in range(apps):
    req = urllib.request.Request(api + f"/apps/app-{i}/log-sessions", method="POST",
        data=json.dumps({"lines": lines, "source": "app"}).encode(),
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    url = json.loads(urllib.request.urlopen(req, timeout=30).read())["logplex_url"]
    got = urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Bearer " + key}), timeout=30).read()
    n = sum(1 for l in got.decode(errors="replace").splitlines() if " n=" in l)
    least = n if least is None else min(least, n)
    total += n
print(least, total)
EOF
}

for phase in $phases; do
    case $phase in
        outage)
            # One at a time, so that each has the machine to itself; a failure is reported and
            # the next phase still runs.
            (cd "$root" && FAULTS_SECONDS=${OUTAGE_SECONDS:-300} FAULTS_RATE=${RATE:-50000} \
                cargo test --release --test faults -- --nocapture --test-threads=1 \
                receiver_down sigkill) || failed+=(outage)
            continue ;;
        soak)
            (cd "$root" && FAULTS_SOAK_SECONDS=${SOAK_SECONDS:-1800} \
                cargo test --release --test faults -- --nocapture soak 2>&1 |
                grep -E '^soak|test |panicked|RSS|fds') || failed+=(soak)
            continue ;;
    esac
    rm -rf "$dir" && mkdir -p "$dir"
    start_router
    load
    sleep 0.5
    case $phase in
        restart) kill -KILL "$router_pid" ;;
        clean) kill -TERM "$router_pid" ;;
        *) echo "unknown phase $phase" >&2; exit 2 ;;
    esac
    wait "$router_pid" 2>/dev/null || true
    bytes=$(du -sb "$dir/history" | cut -f1)
    start_router
    read -r least total <<<"$(survived)"
    echo "result phase=$phase apps=$apps lines=$lines restart_ms=$started_ms history_bytes=$bytes least_lines_kept=$least total_kept=$total of=$((apps * lines))"
    kill -TERM "$router_pid"
    wait "$router_pid" 2>/dev/null || true
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "faults.sh: failed: ${failed[*]}" >&2
    exit 1
fi
