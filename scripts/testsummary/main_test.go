package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// sample is a package whose tests pass, fail, skip, and skip as a peer
// test does, run for real through `go test -json`.
const sample = `package sample

import "testing"

func TestGood(t *testing.T) { t.Log("chatter of a passing test") }

func TestBad(t *testing.T) { t.Log("what went wrong") ; t.Fail() }

func TestSkipped(t *testing.T) { t.Skip("soak test: skipped in -short") }

func TestPeer(t *testing.T) { t.Skip("` + peertest.SkipPrefix + ` mosquitto not found in PATH") }

func TestTable(t *testing.T) {
	t.Run("a", func(t *testing.T) { t.Skip("case a needs root") })
}
`

func TestSummary(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"go.mod":         "module sample\n\ngo 1.22\n",
		"sample_test.go": sample,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=2", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	stream, err := cmd.Output()
	if _, failed := err.(*exec.ExitError); !failed {
		t.Fatalf("go test -json: %v, want a failing run\n%s", err, stream)
	}

	var out bytes.Buffer
	skips, err := render(bytes.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	human := out.String()
	for _, want := range []string{"--- FAIL: TestBad", "what went wrong", "FAIL\tsample"} {
		if !strings.Contains(human, want) {
			t.Errorf("output lacks %q:\n%s", want, human)
		}
	}
	if i, j := strings.Index(human, "--- FAIL: TestBad"), strings.Index(human, "what went wrong"); i > j {
		t.Errorf("the verdict comes after the test's log, unlike plain go test:\n%s", human)
	}
	for _, unwanted := range []string{"=== RUN", "chatter of a passing test", "--- PASS", "--- SKIP"} {
		if strings.Contains(human, unwanted) {
			t.Errorf("output has %q, which plain go test hides:\n%s", unwanted, human)
		}
	}

	tests := []struct {
		name         string
		requirePeers bool
		wantOK       bool
		wantLines    []string
	}{
		{"peers optional", false, true, []string{
			"== skipped tests: 6",
			"sample TestPeer (x2): sample_test.go:11: " + peertest.SkipPrefix + " mosquitto not found in PATH",
			"sample TestSkipped (x2): sample_test.go:9: soak test: skipped in -short",
			"sample TestTable/a (x2): sample_test.go:14: case a needs root",
		}},
		{"peers required", true, false, []string{
			"FAIL: 1 peer tests skipped although " + peertest.EnvRequire + "=1:",
			"  sample TestPeer",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sum bytes.Buffer
			ok := summarize(&sum, append([]skip(nil), skips...), tt.requirePeers)
			if ok != tt.wantOK {
				t.Errorf("summarize = %v, want %v", ok, tt.wantOK)
			}
			for _, want := range tt.wantLines {
				if !strings.Contains(sum.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, sum.String())
				}
			}
		})
	}
}
