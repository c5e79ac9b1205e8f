# Shared set-up of the benchmark scripts (sourced, not run): installs what the script needs
# from Debian when missing, builds `paas` and `logplex-load` in release, and gives a temporary
# directory whose processes (`pids`) are stopped and which is removed on exit.
#
#   source "$root/benches/lib/setup.sh"
#   bench_setup NAME PACKAGE…       # NAME for messages; packages beyond curl and jq
#
# Sets: paas, load (binaries), tmp, pids (append every background process), key (an API key
# for PAAS_API_KEY), clk_tck (clock ticks a second, for /proc CPU times). Defines `cpu_ticks`,
# `field` and `verdict` for measuring, reading and judging results.

bench_setup() {
    local name=$1
    shift
    local need=() tool
    for tool in curl jq; do
        command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
    done
    for tool in "$@"; do
        case $tool in
            rsyslog) command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog) ;;
            varnishd) command -v varnishd >/dev/null 2>&1 || need+=(varnish) ;;
            h2load) command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client) ;;
            *) command -v "$tool" >/dev/null 2>&1 || need+=("$tool") ;;
        esac
    done
    if [ ${#need[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo=sudo
        echo "$name: installing ${need[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi

    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/paas-target}
    (cd "$root" && cargo build --release -p paas -p logplex-load)
    paas=$CARGO_TARGET_DIR/release/paas
    load=$CARGO_TARGET_DIR/release/logplex-load

    tmp=$(mktemp -d)
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM

    key=bench-$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')
    clk_tck=$(getconf CLK_TCK)
}

bench_cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}

# cpu_ticks PID…: their CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() {
    local p total=0
    for p in "$@"; do
        total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# field NAME TEXT: the value of NAME=… in TEXT (a `result k=v …` line).
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# verdict VALUE OP TARGET (OP: >= or <=): ok or MISSED (MISSED when VALUE is not a number).
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v !~ /^[0-9]+(\.[0-9]+)?$/) ok = 0
        else if (op == ">=") ok = v + 0 >= t + 0
        else ok = v + 0 <= t + 0
        print (ok ? "ok" : "MISSED")
    }'
}
