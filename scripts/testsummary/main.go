// Command testsummary reads `go test -json` on stdin and prints what a
// plain `go test` prints (package results, and the output of failing tests
// only), then a summary of every skipped test with its reason, which plain
// `go test` hides. scripts/test.sh runs the suite through it.
//
// With EDGEFORT_REQUIRE_PEERS=1 a skip whose reason carries
// peertest.SkipPrefix (a test whose real peer was missing or unable) makes
// it exit 1: CI must run every peer test. Otherwise it exits 0; go test's
// own exit status reports failures.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/edgefort/edgefort/internal/peertest"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// skip is a skipped test and why, counted over -count runs.
type skip struct {
	pkg, test, reason string
	n                 int
}

func main() {
	skips, err := render(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if !summarize(os.Stdout, skips, os.Getenv(peertest.EnvRequire) == "1") {
		os.Exit(1)
	}
}

// render copies the human part of the stream to w and returns the skips in
// the order they happened.
func render(r io.Reader, w io.Writer) ([]skip, error) {
	type key struct{ pkg, test string }
	buf := map[key][]string{} // output of running tests
	var skips []skip
	seen := map[skip]int{} // skip without n -> index in skips
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintf(w, "%s\n", line) // not JSON: pass it on
			continue
		}
		k := key{ev.Package, ev.Test}
		switch {
		case ev.Action == "build-output":
			io.WriteString(w, ev.Output)
		case ev.Test == "" && ev.Action == "output":
			if ev.Output != "PASS\n" { // plain go test prints only "ok pkg"
				io.WriteString(w, ev.Output)
			}
		case ev.Test == "" && ev.Action == "fail":
			// Tests cut short (a timeout, a panic) never ended: show them.
			for bk, lines := range buf {
				if bk.pkg == ev.Package {
					writeLines(w, lines)
					delete(buf, bk)
				}
			}
		case ev.Test == "":
		case ev.Action == "output":
			buf[k] = append(buf[k], ev.Output)
		case ev.Action == "fail":
			writeLines(w, buf[k])
			delete(buf, k)
		case ev.Action == "skip":
			s := skip{pkg: ev.Package, test: ev.Test, reason: skipReason(buf[k])}
			if i, ok := seen[s]; ok {
				skips[i].n++
			} else {
				s.n = 1
				seen[skip{pkg: s.pkg, test: s.test, reason: s.reason}] = len(skips)
				skips = append(skips, s)
			}
			delete(buf, k)
		case ev.Action == "pass":
			delete(buf, k)
		}
	}
	return skips, sc.Err()
}

// writeLines prints a failed test's output as plain go test does, without
// the framing lines of -v.
func writeLines(w io.Writer, lines []string) {
	var rest []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "=== "):
		case strings.HasPrefix(l, "--- "): // the verdict first, its log after
			io.WriteString(w, l)
		default:
			rest = append(rest, l)
		}
	}
	for _, l := range rest {
		io.WriteString(w, l)
	}
}

// skipReason is what the test said when it skipped: its log lines, without
// the framing, joined.
func skipReason(lines []string) string {
	var out []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		// peertest's one-time WARNING on stderr lands in the first
		// test that hits it; the skip message says the same.
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") || strings.HasPrefix(t, "WARNING: ") {
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return "(no reason given)"
	}
	return strings.Join(out, " | ")
}

// summarize prints the skips and reports whether the run may pass: false
// when requirePeers is set and a peer test was skipped.
func summarize(w io.Writer, skips []skip, requirePeers bool) bool {
	sort.SliceStable(skips, func(i, j int) bool {
		if skips[i].pkg != skips[j].pkg {
			return skips[i].pkg < skips[j].pkg
		}
		return skips[i].test < skips[j].test
	})
	total := 0
	var peer []skip
	for _, s := range skips {
		total += s.n
		if strings.Contains(s.reason, peertest.SkipPrefix) {
			peer = append(peer, s)
		}
	}
	fmt.Fprintf(w, "\n== skipped tests: %d\n", total)
	for _, s := range skips {
		times := ""
		if s.n > 1 {
			times = fmt.Sprintf(" (x%d)", s.n)
		}
		fmt.Fprintf(w, "  %s %s%s: %s\n", s.pkg, s.test, times, s.reason)
	}
	if requirePeers && len(peer) > 0 {
		fmt.Fprintf(w, "FAIL: %d peer tests skipped although %s=1:\n", len(peer), peertest.EnvRequire)
		for _, s := range peer {
			fmt.Fprintf(w, "  %s %s\n", s.pkg, s.test)
		}
		return false
	}
	return true
}
