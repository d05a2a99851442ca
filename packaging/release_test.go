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
// builds the static binary and the PIE twice each (two directories, the
// second with an empty build cache) and fails unless each pair is
// byte-identical, runs `edgefort version` of both under qemu-user-static
// and checks the version, commit and date they print, packages the PIE,
// and writes the agent's own signed Mender Artifact of the static binary.
// The test checks what the script wrote: the static binary, the .deb's
// binary (a PIE), the Artifact as Debian's mender-artifact reads and
// verifies it, and SHA256SUMS. (amd64 is the same script's other
// iteration; TestLintian and the install tests cover package.sh.)
func TestReleaseArm64(t *testing.T) {
	peertest.Require(t, "qemu-aarch64-static")
	peertest.Require(t, "git")
	peertest.Require(t, "dpkg-deb")
	// The arm64 PIE starts under qemu through Debian's arm64 loader.
	peertest.Require(t, "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1")
	menderArtifact := peertest.Require(t, "mender-artifact")
	if err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Run(); err != nil {
		peertest.Skipf(t, "release.sh builds a commit, and this tree is no git checkout: %v", err)
	}
	dist := t.TempDir()
	key, pub := signingKey(t)
	cmd := exec.Command("scripts/release.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHS=arm64", "VERSION=9.8.7",
		"DEVICE_TYPES_arm64=edge-arm64 edge-arm64-b", "ARTIFACT_KEY="+key)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"linux/arm64 exe reproducible: ", "linux/arm64 exe runs: edgefort 9.8.7 commit ",
		"linux/arm64 pie reproducible: ", "linux/arm64 pie runs: edgefort 9.8.7 commit ",
		"linux/arm64 packages reproducible",
	} {
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
	var want string // in the order package.sh lists them: the .rpm, then the .deb
	for _, f := range []string{"edgefort-linux-arm64", "edgefort-9.8.7-1.aarch64.rpm", "edgefort_9.8.7-1_arm64.deb", "edgefort-9.8.7-linux-arm64.mender"} {
		b, err := os.ReadFile(filepath.Join(dist, f))
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		want += hex.EncodeToString(s[:]) + "  " + f + "\n"
	}
	if string(sums) != want {
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
	// The packages carry the PIE: position-independent, loaded through
	// the C library's loader, stripped.
	pkgRoot := t.TempDir()
	runOut(t, "dpkg-deb", "-x", filepath.Join(dist, "edgefort_9.8.7-1_arm64.deb"), pkgRoot)
	if got := runOut(t, "file", filepath.Join(pkgRoot, "usr/bin/edgefort")); !strings.Contains(got, "ARM aarch64") || !strings.Contains(got, "pie executable") || !strings.Contains(got, "interpreter /lib/ld-linux-aarch64.so.1") || strings.Contains(got, "not stripped") {
		t.Errorf("the .deb's binary: file = %q, want a stripped aarch64 PIE", got)
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
