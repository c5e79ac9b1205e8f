// Command go-logfmt is the Go half of benches/peers/logfmt.sh: it times go-logfmt
// (github.com/go-logfmt/logfmt) decoding a whole logfmt file held in memory, 5 passes, and
// prints "impl=go-logfmt bytes=B pairs=P median_mb_s=M" (MB = 1e6 bytes), the same line as
// the Rust harness benches/peers/logfmt-peer. Run it with GOMAXPROCS=1.
//
// Build without modules, against the Debian package's source:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=$(mktemp -d) go build -o go-logfmt-peer .
package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/go-logfmt/logfmt"
)

// passes is the number of timed passes; the median is reported.
const passes = 5

// sink keeps the touched lengths observable, so the compiler cannot drop the work.
var sink int

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-logfmt-peer FILE")
		os.Exit(1)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-logfmt-peer: %v\n", err)
		os.Exit(1)
	}

	mbs := make([]float64, 0, passes)
	pairs := 0
	for i := 0; i < passes; i++ {
		started := time.Now()
		n, touched := 0, 0
		dec := logfmt.NewDecoder(bytes.NewReader(data))
		for dec.ScanRecord() {
			for dec.ScanKeyval() {
				n++
				touched += len(dec.Key()) + len(dec.Value())
			}
		}
		if err := dec.Err(); err != nil {
			fmt.Fprintf(os.Stderr, "go-logfmt-peer: %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		secs := time.Since(started).Seconds()
		sink += touched
		pairs = n
		mbs = append(mbs, float64(len(data))/secs/1e6)
	}
	sort.Float64s(mbs)
	fmt.Printf("impl=go-logfmt bytes=%d pairs=%d median_mb_s=%.1f\n", len(data), pairs, mbs[passes/2])
}
