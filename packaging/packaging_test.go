// Package packaging holds the tests of the .deb and .rpm that package.sh
// builds: lintian and rpm's own view of them, and installs, upgrades,
// removals and purges in a throwaway Debian root. The packaging itself is
// files (nfpm.yaml, the unit, the maintainer scripts); see README.md.
package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// The two versions the tests install, one upgrading the other.
const (
	oldVersion = "1.0.0"
	newVersion = "1.0.1"
)

var tmpRoot string // removed after the tests

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "edgefort-packaging-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// packages are the .deb and .rpm of one version for this machine's
// architecture, built once per test binary the way release.sh builds them
// (a PIE binary, then package.sh).
type packages struct{ deb, rpm string }

var (
	builtMu sync.Mutex // guards built
	built   = map[string]packages{}
)

func build(t *testing.T, version string) packages {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if p, ok := built[version]; ok {
		return p
	}
	out := filepath.Join(tmpRoot, "pkg-"+version)
	bin := filepath.Join(out, "edgefort")
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=pie", "-ldflags",
		"-s -w -X github.com/edgefort/edgefort/agent.version="+version, "-o", bin, "./cmd/edgefort")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	run(t, cmd)
	cmd = exec.Command("./packaging/package.sh", bin, runtime.GOARCH, out)
	cmd.Dir = ".."
	// A full commit id, as release.sh passes: the changelog must fit it.
	cmd.Env = append(os.Environ(), "VERSION="+version, "SOURCE_DATE_EPOCH=1767225600",
		"COMMIT=0123456789abcdef0123456789abcdef01234567")
	var p packages
	for _, f := range strings.Fields(run(t, cmd)) {
		switch filepath.Ext(f) {
		case ".deb":
			p.deb = f
		case ".rpm":
			p.rpm = f
		}
	}
	if p.deb == "" || p.rpm == "" {
		t.Fatalf("package.sh printed no .deb and .rpm: %+v", p)
	}
	built[version] = p
	return p
}

// run runs cmd and returns its stdout; a failure ends the test with
// stderr in the message.
func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func runOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	return run(t, exec.Command(name, args...))
}

// requireRoot: installing into a chroot needs root, as in CI.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		peertest.Skipf(t, "installing into a throwaway root needs root (chroot, file owners)")
	}
}
