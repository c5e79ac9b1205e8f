#!/usr/bin/env bash
# Side-by-side logfmt parsing throughput: our `logfmt` crate against go-logfmt and the
# crates.io `logfmt` crate, on one generated corpus of Heroku router lines.
#
#   bash benches/peers/logfmt.sh            # 2,000,000 lines (~400 MB)
#   LINES=100000 bash benches/peers/logfmt.sh
#
# Installs Go and go-logfmt from Debian when missing, builds the Rust harness
# (benches/peers/logfmt-peer) and the Go program (benches/peers/go-logfmt), generates the corpus
# once, times each implementation on one core (5 passes each, median MB/s, MB = 1e6 bytes) and
# prints the ratios of our MB/s over each peer's.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lines=${LINES:-2000000}
gosrc=/usr/share/gocode/src/github.com/go-logfmt/logfmt

if ! command -v go >/dev/null 2>&1 || [[ ! -d $gosrc ]]; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    echo "installing golang-go and golang-github-go-logfmt-logfmt-dev" >&2
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go golang-github-go-logfmt-logfmt-dev
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/paas-target}
(cd "$root" && cargo build --release -p logfmt-peer)
peer=$CARGO_TARGET_DIR/release/logfmt-peer

(cd "$root/benches/peers/go-logfmt" &&
    GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=${GOCACHE:-$tmp/gocache} \
        go build -o "$tmp/go-logfmt-peer" .)

corpus=$tmp/router.log
echo "generating $lines router lines" >&2
"$peer" gen "$lines" "$corpus"

# One core for every run: core 1 when there is one, so core 0 keeps the rest of the machine.
pin=()
if command -v taskset >/dev/null 2>&1; then
    pin=(taskset -c "$(($(nproc) > 1 ? 1 : 0))")
fi

ours=$("${pin[@]}" "$peer" bench ours "$corpus")
echo "$ours"
ours_iter=$("${pin[@]}" "$peer" bench ours-iter "$corpus")
echo "$ours_iter"
crates=$("${pin[@]}" "$peer" bench crates "$corpus")
echo "$crates"
golf=$(GOMAXPROCS=1 "${pin[@]}" "$tmp/go-logfmt-peer" "$corpus")
echo "$golf"

field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# All three read the router corpus the same way; a different count means a different parse.
for other in "$ours_iter" "$crates" "$golf"; do
    if [[ $(field pairs "$other") != $(field pairs "$ours") ]]; then
        echo "warning: pair counts differ: ${ours%% *} $(field pairs "$ours"), ${other%% *} $(field pairs "$other")" >&2
    fi
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }
echo "ratio vs go-logfmt: $(ratio "$(field median_mb_s "$ours")" "$(field median_mb_s "$golf")")"
echo "ratio vs logfmt crate: $(ratio "$(field median_mb_s "$ours")" "$(field median_mb_s "$crates")")"
echo "ratio vs go-logfmt, with the pair iterator: $(ratio "$(field median_mb_s "$ours_iter")" "$(field median_mb_s "$golf")")"
