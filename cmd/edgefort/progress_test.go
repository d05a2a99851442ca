package main

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// TestUpdateInstallGarbageDrawsNo100: a file refused before any payload
// was read draws no 100% (it was read whole, but nothing was installed),
// and the error is the last line.
func TestUpdateInstallGarbageDrawsNo100(t *testing.T) {
	cfg, _ := localUpdateConfig(t)
	big := make([]byte, 256<<10)
	rand.Read(big)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"five bytes", []byte("hello")},
		{"256 KiB of noise", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := edgefort(t, "update", "install", "--config", cfg, saveArtifact(t, tc.data))
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if code != 1 || !strings.HasPrefix(lines[len(lines)-1], "edgefort: ") {
				t.Fatalf("exit %d, stderr %q; want 1 and the error last", code, errOut)
			}
			if strings.Contains(errOut, "100%") {
				t.Errorf("a refused file drew 100%%:\n%s", errOut)
			}
		})
	}
}

// TestProgressDraws100OnlyWhenInstalled: on a terminal and in a log,
// having read every byte shows at most 99%; done draws 100%, end after a
// failure ends the bar's line and draws nothing more.
func TestProgressDraws100OnlyWhenInstalled(t *testing.T) {
	for _, tc := range []struct {
		name           string
		tty, installed bool
		want, wantNot  string
		wantTrailingNL bool
	}{
		{"log, refused", false, false, "f.mender:  50%", "100%", true},
		{"log, installed", false, true, "f.mender: 100%", "", true},
		{"terminal, refused", true, false, " 99% ", "100%", true},
		{"terminal, installed", true, true, "100% ", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newProgress(&b, "/tmp/f.mender", 1000)
			p.tty = tc.tty
			for range 2 {
				p.lastDraw = time.Time{} // draw at this read, as after the redraw interval
				p.add(500)
			}
			if tc.installed {
				p.done()
			}
			p.end()
			out := b.String()
			if !strings.Contains(out, tc.want) || (tc.wantNot != "" && strings.Contains(out, tc.wantNot)) {
				t.Errorf("output %q: want %q, not %q", out, tc.want, tc.wantNot)
			}
			if tc.wantTrailingNL && !strings.HasSuffix(out, "\n") {
				t.Errorf("output %q does not end its line", out)
			}
		})
	}
}
