package packaging

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// TestReleaseArm64 runs scripts/release.sh for linux/arm64 on HEAD: it
// builds the binary twice (two directories, the second with an empty
// build cache) and fails unless both are byte-identical, then runs
// `edgefort version` under qemu-user-static and checks the version,
// commit and date it prints. The test checks what the script wrote:
// the binary, its static linking, and SHA256SUMS. (amd64 and the
// packages are the same script's other iterations; TestLintian and the
// install tests cover package.sh.)
func TestReleaseArm64(t *testing.T) {
	peertest.Require(t, "qemu-aarch64-static")
	peertest.Require(t, "git")
	if err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Run(); err != nil {
		peertest.Skipf(t, "release.sh builds a commit, and this tree is no git checkout: %v", err)
	}
	dist := t.TempDir()
	cmd := exec.Command("scripts/release.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHS=arm64", "PACKAGES=0", "VERSION=9.8.7")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"linux/arm64 reproducible: ", "linux/arm64 runs: edgefort 9.8.7 commit "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("release.sh output lacks %q:\n%s", want, out)
		}
	}
	bin := filepath.Join(dist, "edgefort-linux-arm64")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  edgefort-linux-arm64\n"; string(sums) != want {
		t.Errorf("SHA256SUMS = %q, want %q", sums, want)
	}
	// Static and stripped: no interpreter, no symbol table.
	if got := runOut(t, "file", bin); !strings.Contains(got, "ARM aarch64") || !strings.Contains(got, "statically linked") || !strings.Contains(got, "stripped") || strings.Contains(got, "not stripped") {
		t.Errorf("file %s = %q, want a static, stripped aarch64 executable", bin, got)
	}
	got := runOut(t, "qemu-aarch64-static", bin, "version")
	if !strings.HasPrefix(got, "edgefort 9.8.7\ncommit ") || !strings.Contains(got, "linux/arm64") {
		t.Errorf("edgefort version under qemu = %q", got)
	}
}
