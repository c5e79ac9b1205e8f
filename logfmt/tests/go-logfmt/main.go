// Reads lines on stdin and decodes each with go-logfmt on its own, for the differential test
// in ../go_logfmt.rs. Prints one line per input line:
//   OK <hex key>=<hex value> ...   (a nil value prints as empty)
//   ERR <pos> <message>
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/go-logfmt/logfmt"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for _, line := range lines {
		dec := logfmt.NewDecoder(bytes.NewReader(line))
		var b bytes.Buffer
		b.WriteString("OK")
		for dec.ScanRecord() {
			for dec.ScanKeyval() {
				fmt.Fprintf(&b, " %s=%s", hex.EncodeToString(dec.Key()), hex.EncodeToString(dec.Value()))
			}
		}
		if err := dec.Err(); err != nil {
			if se, ok := err.(*logfmt.SyntaxError); ok {
				fmt.Fprintf(out, "ERR %d %s\n", se.Pos, se.Msg)
			} else {
				fmt.Fprintf(out, "ERR 0 %s\n", err)
			}
			continue
		}
		out.Write(b.Bytes())
		out.WriteByte('\n')
	}
}
