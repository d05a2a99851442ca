package packaging

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// TestReleaseArm64 runs scripts/release.sh for linux/arm64 on HEAD: it
// builds the binary twice (two directories, the second with an empty
// build cache) and fails unless both are byte-identical, then runs
// `edgefort version` under qemu-user-static and checks the version,
// commit and date it prints, and writes the agent's own signed Mender
// Artifact. The test checks what the script wrote: the binary, its static
// linking, the Artifact as Debian's mender-artifact reads and verifies it,
// and SHA256SUMS. (amd64 and the packages are the same script's other
// iterations; TestLintian and the install tests cover package.sh.)
func TestReleaseArm64(t *testing.T) {
	peertest.Require(t, "qemu-aarch64-static")
	peertest.Require(t, "git")
	menderArtifact := peertest.Require(t, "mender-artifact")
	if err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Run(); err != nil {
		peertest.Skipf(t, "release.sh builds a commit, and this tree is no git checkout: %v", err)
	}
	dist := t.TempDir()
	key, pub := signingKey(t)
	cmd := exec.Command("scripts/release.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHS=arm64", "PACKAGES=0", "VERSION=9.8.7",
		"DEVICE_TYPES_arm64=edge-arm64 edge-arm64-b", "ARTIFACT_KEY="+key)
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
	artifact := filepath.Join(dist, "edgefort-9.8.7-linux-arm64.mender")
	a, err := os.ReadFile(artifact)
	if err != nil {
		t.Fatal(err)
	}
	asum := sha256.Sum256(a)
	if want := hex.EncodeToString(sum[:]) + "  edgefort-linux-arm64\n" +
		hex.EncodeToString(asum[:]) + "  edgefort-9.8.7-linux-arm64.mender\n"; string(sums) != want {
		t.Errorf("SHA256SUMS = %q, want %q", sums, want)
	}
	runOut(t, menderArtifact, "validate", "-k", pub, artifact)
	read := runOut(t, menderArtifact, "read", artifact)
	for _, want := range []string{"Name: edgefort-9.8.7", "Compatible devices: '[edge-arm64 edge-arm64-b]'",
		"Type:   edgefort-agent", "name:     edgefort\n", "size:     " + strconv.Itoa(len(b)), "checksum: " + hex.EncodeToString(sum[:])} {
		if !strings.Contains(read, want) {
			t.Errorf("mender-artifact read lacks %q:\n%s", want, read)
		}
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

// signingKey writes an ECDSA P-256 key pair as PEM files and returns their
// paths (private, public).
func signingKey(t *testing.T) (key, pub string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, pub = filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
	for path, block := range map[string]*pem.Block{key: {Type: "PRIVATE KEY", Bytes: der}, pub: {Type: "PUBLIC KEY", Bytes: pubDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return key, pub
}
