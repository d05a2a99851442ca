package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact/artifacttest"
)

// TestArtifactValidateRefusesAppendedStreams runs the real `edgefort
// artifact validate --key` in a child process on signed Artifacts whose
// data member has a compressed stream appended after its tar (bytes the
// signature does not cover), and checks that each is refused before
// "valid" and that the child's peak RSS stays under 64 MiB.
func TestArtifactValidateRefusesAppendedStreams(t *testing.T) {
	const maxRSS = 64 << 20
	dir := t.TempDir()
	ecKey, ecPub, _, _ := artifactTestKeys(t, dir)
	payload := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(payload, bytes.Repeat([]byte("edgefort payload "), 15<<10/17), 0o600); err != nil {
		t.Fatal(err)
	}
	// A second xz stream whose block asks for a 1 GiB dictionary.
	bigDict, err := artifacttest.XZ(make([]byte, 1<<20), 0, 1, 36)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, comp, member string
		tail               []byte
		wantErr            string
	}{
		{"xz stream with a 1 GiB dictionary", "lzma", "data/0000.tar.xz", bigDict, "xz: unexpected data after stream"},
		{"zstd frame of 64 GiB of zeros", "zstd", "data/0000.tar.zst", artifacttest.ZstdZeros(64 << 30),
			"more than 65536 decompressed bytes after the end of its tar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := filepath.Join(dir, "good-"+tt.comp+".mender")
			if code, _, errOut := artifactCLI(t, "write", "module-image", "-T", "single-file", "-t", "edge-1", "-n", "app-1",
				"--compression", tt.comp, "-k", ecKey, "-f", payload, "-o", good); code != 0 {
				t.Fatalf("write: exit %d: %s", code, errOut)
			}
			b, err := os.ReadFile(good)
			if err != nil {
				t.Fatal(err)
			}
			evil, err := artifacttest.AppendToMember(b, tt.member, tt.tail)
			if err != nil {
				t.Fatal(err)
			}
			bad := filepath.Join(dir, "bad-"+tt.comp+".mender")
			if err := os.WriteFile(bad, evil, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				file  string
				valid bool
			}{{good, true}, {bad, false}} {
				rss, code, stdout, stderr := runMeasured(t, "artifact", "validate", "--key", ecPub, c.file)
				t.Logf("validate %s: exit %d, peak RSS %.1f MiB", filepath.Base(c.file), code, float64(rss)/(1<<20))
				if rss >= maxRSS {
					t.Errorf("validate %s: peak RSS %d bytes, want under %d", c.file, rss, maxRSS)
				}
				if c.valid {
					if code != 0 || !strings.Contains(stdout, "valid: ") {
						t.Errorf("validate %s: exit %d, stdout %q, stderr %q; want valid", c.file, code, stdout, stderr)
					}
					continue
				}
				if code != 1 || strings.Contains(stdout, "valid") ||
					!strings.Contains(stderr, "not valid") || !strings.Contains(stderr, tt.wantErr) {
					t.Errorf("validate %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", c.file, code, stdout, stderr, tt.wantErr)
				}
			}
		})
	}
}

// envMaxRSSFile makes the test binary a launcher (see init): it runs its
// arguments as the edgefort CLI in a child and writes the child's peak RSS
// in bytes to the file named.
const envMaxRSSFile = "EDGEFORT_TEST_MAXRSS_FILE"

// runMeasured runs the edgefort CLI in a grandchild and returns its peak
// RSS (rusage MaxRSS), exit status and output. The launcher in between is
// needed because Linux charges a process exec'd straight from the test,
// which os/exec starts with vfork in the test's address space, with the
// test's own peak RSS; the launcher's is that of a fresh process.
func runMeasured(t *testing.T, args ...string) (rss int64, code int, stdout, stderr string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "maxrss")
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMaxRSSFile+"="+out)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %q: %v", args, err)
	}
	b, rerr := os.ReadFile(out)
	if rerr != nil {
		t.Fatalf("run %q: no peak RSS from the launcher: %v; stderr %q", args, rerr, e.String())
	}
	if rss, err = strconv.ParseInt(string(b), 10, 64); err != nil {
		t.Fatal(err)
	}
	return rss, cmd.ProcessState.ExitCode(), o.String(), e.String()
}

func init() {
	out := os.Getenv(envMaxRSSFile)
	if out == "" {
		return
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), envMaxRSSFile+"=", "EDGEFORT_TEST_AS_MAIN=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(125)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	if err := os.WriteFile(out, []byte(strconv.FormatInt(rss, 10)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(125)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
