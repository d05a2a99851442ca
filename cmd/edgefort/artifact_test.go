package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// artifactCLI runs `edgefort artifact ARGS...` in-process.
func artifactCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return edgefort(t, append([]string{"artifact"}, args...)...)
}

// artifactTestKeys writes an ECDSA P-256 (SEC1) and an RSA (PKCS#1) key
// pair as PEM files, the forms mender-artifact 3.9 takes.
func artifactTestKeys(t *testing.T, dir string) (ecKey, ecPub, rsaKey, rsaPub string) {
	t.Helper()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	ecPKIX, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	rsaPKIX, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	put := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return put("ec.pem", "EC PRIVATE KEY", sec1), put("ec.pub.pem", "PUBLIC KEY", ecPKIX),
		put("rsa.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), put("rsa.pub.pem", "PUBLIC KEY", rsaPKIX)
}

func TestArtifactHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"read", "--help"}, {"validate", "-h"}, {"write", "--help"},
		{"write", "module-image", "--help"}, {"write", "rootfs-image", "--help"},
	} {
		code, out, errOut := artifactCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: edgefort artifact") {
			t.Errorf("artifact %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
	_, out, _ := artifactCLI(t, "write", "module-image", "--help")
	for _, flag := range []string{"-device-type", "-artifact-name", "-type", "-file", "-output-path", "-key", "-compression",
		"-provides", "-depends", "-script", "-meta-data", "-clears-provides"} {
		if !strings.Contains(out, flag) {
			t.Errorf("write module-image --help does not document %s", flag)
		}
	}
}

// TestArtifactWriteValidateRead drives the three verbs on files, as an
// operator would, including the failures they must explain.
func TestArtifactWriteValidateRead(t *testing.T) {
	dir := t.TempDir()
	ecKey, ecPub, rsaKey, rsaPub := artifactTestKeys(t, dir)
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	payload := file("app.bin", strings.Repeat("edgefort ", 5000))
	conf := file("app.conf", "key=value\n")
	script := file("ArtifactInstall_Enter_10_stop", "#!/bin/sh\nexit 0\n")
	meta := file("meta.json", `{"dest_dir": "/opt/app"}`)
	rootfs := file("rootfs.ext4", strings.Repeat("\x00\x01", 40000))
	mod := filepath.Join(dir, "mod.mender")
	rfs := filepath.Join(dir, "rootfs.mender")
	unsigned := filepath.Join(dir, "unsigned.mender")

	steps := []struct {
		args       []string
		wantCode   int
		wantOut    []string
		wantErrOut string
	}{
		{[]string{"write", "module-image", "-T", "single-file", "-t", "edge-1", "--device-type", "edge-2", "-n", "app-v2",
			"-f", payload, "--file", conf, "-o", mod, "-k", ecKey, "--compression", "lzma", "-p", "app.version:2", "-d", "hw:rev-b",
			"-d", "hw:rev-c", "-s", script, "-m", meta, "-g", "prod", "-N", "app-v1", "--clears-provides", "app.*"},
			0, []string{"wrote " + mod, `module-image "app-v2"`, "lzma", "signed with " + ecKey}, ""},
		{[]string{"validate", mod, "--key", rsaPub, "--key", ecPub}, 0, []string{"valid", "2 payload file(s), 45010 bytes", "signature: verified with " + ecPub}, ""},
		{[]string{"validate", mod}, 0, []string{"signature: signed, not checked (no --key)"}, ""},
		{[]string{"read", mod, "-k", ecPub}, 0, []string{
			"app-v2 (mender format 3, header.tar.xz)", "Device types:  edge-1, edge-2", "artifact_group=prod",
			`artifact_name in ["app-v1"]`, "ArtifactInstall_Enter_10_stop", "Payload 0000: single-file",
			"app.version=2, rootfs-image.single-file.version=app-v2", `hw in ["rev-b" "rev-c"]`,
			"app.*, rootfs-image.single-file.*", `{"dest_dir":"/opt/app"}`, "data/0000/app.bin", "45000",
			"data/0000/app.conf", "All 2 file(s) match the manifest."}, ""},
		{[]string{"validate", mod, "-k", rsaPub}, 1, nil, "signature verification failed"},
		{[]string{"write", "rootfs-image", "-t", "edge-1", "-n", "os-v2", "-f", rootfs, "-o", rfs, "-k", rsaKey, "--compression", "none"},
			0, []string{"wrote " + rfs}, ""},
		{[]string{"read", rfs, "-k", rsaPub}, 0, []string{"Payload 0000: rootfs-image", "rootfs-image.checksum=", "rootfs-image.version=os-v2",
			"artifact_group, rootfs_image_checksum, rootfs-image.*"}, ""},
		{[]string{"write", "module-image", "-T", "x", "-t", "edge-1", "-n", "u1", "-o", unsigned, "--compression", "zstd",
			"--no-default-software-version", "--no-default-clears-provides"}, 0, nil, ""},
		{[]string{"read", unsigned}, 0, []string{"Signature:     unsigned", "  Provides:        none", "(absent: all previous provides are cleared)", "Files: none"}, ""},
		{[]string{"validate", unsigned, "-k", ecPub}, 1, nil, "artifact is not signed"},
		{[]string{"validate", filepath.Join(dir, "nope.mender")}, 1, nil, "no such file"},
		{[]string{"validate", mod, "-k", ecKey}, 1, nil, "want PUBLIC KEY"},
		{[]string{"validate"}, 2, nil, "want 1 argument(s) FILE, got 0"},
		{[]string{"write", "module-image", "-f", payload}, 2, nil, "--artifact-name, --device-type, --output-path, --type required"},
		{[]string{"write", "rootfs-image", "-n", "x", "-t", "d", "-o", rfs}, 2, nil, "exactly one --file required"},
		{[]string{"write", "module-image", "-T", "x", "-t", "d", "-n", "x", "-o", unsigned, "--compression", "bzip2"}, 2, nil, `unknown compression "bzip2"`},
		{[]string{"write", "module-image", "-T", "x", "-t", "d", "-n", "x", "-o", unsigned, "-p", "novalue"}, 2, nil, `--provides "novalue": want KEY:VALUE`},
		{[]string{"write", "module-image", "-T", "x", "-t", "d", "-n", "x", "-o", unsigned, "-s", meta}, 1, nil, `"meta.json" is not State_(Enter|Leave|Error)_NN`},
		{[]string{"write", "module-image", "-T", "x", "-t", "d", "-n", "x", "-o", unsigned, "-k", ecPub}, 1, nil, "found only PUBLIC KEY"},
		{[]string{"frobnicate"}, 2, nil, `unknown command "frobnicate"`},
	}
	for _, s := range steps {
		code, out, errOut := artifactCLI(t, s.args...)
		ok := code == s.wantCode && strings.Contains(errOut, s.wantErrOut)
		for _, w := range s.wantOut {
			ok = ok && strings.Contains(out, w)
		}
		if !ok {
			t.Errorf("artifact %s:\nexit %d, stdout:\n%s\nstderr: %q\nwant exit %d, stdout with %q, stderr with %q",
				strings.Join(s.args, " "), code, out, errOut, s.wantCode, s.wantOut, s.wantErrOut)
		}
	}

	// A flipped payload byte fails validate and read, naming the file.
	b, _ := os.ReadFile(rfs)
	i := bytes.Index(b, []byte("\x00\x01\x00\x01"))
	b[i+1000] ^= 0xff
	bad := filepath.Join(dir, "bad.mender")
	os.WriteFile(bad, b, 0o644)
	if code, _, errOut := artifactCLI(t, "validate", bad, "-k", rsaPub); code != 1 || !strings.Contains(errOut, "checksum mismatch: data/0000/rootfs.ext4") {
		t.Errorf("validate tampered: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := artifactCLI(t, "read", bad, "-k", rsaPub); code != 1 || !strings.Contains(out, "FAILED") {
		t.Errorf("read tampered: exit %d, stdout %q", code, out)
	}
	// No partial Artifact is left behind by a failed write.
	if m, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(m) > 0 {
		t.Errorf("temporary files left: %q", m)
	}
}

// TestArtifactValidateMenderGolden: Artifacts made by mender-artifact 3.9
// (kept as golden files by updater/artifact) validate with the CLI.
func TestArtifactValidateMenderGolden(t *testing.T) {
	dir := filepath.Join("..", "..", "updater", "artifact", "testdata", "mender-3.9")
	for _, tt := range []struct{ file, key string }{
		{"module-ecdsa.mender", "ec.pub.pem"}, {"rootfs-rsa-lzma.mender", "rsa.pub.pem"}, {"augmented.mender", "rsa.pub.pem"},
		{"module-none-groups.mender", ""}, {"bootstrap.mender", ""},
	} {
		args := []string{"validate", filepath.Join(dir, tt.file)}
		if tt.key != "" {
			args = append(args, "--key", filepath.Join(dir, tt.key))
		}
		if code, out, errOut := artifactCLI(t, args...); code != 0 || !strings.Contains(out, "valid") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tt.file, code, out, errOut)
		}
	}
}

// TestArtifactWriteAcceptedByMender: what 'edgefort artifact write' makes
// passes 'mender-artifact validate' with the key. Skipped loudly without
// the peer, failed under EDGEFORT_REQUIRE_PEERS=1.
func TestArtifactWriteAcceptedByMender(t *testing.T) {
	peertest.Require(t, "mender-artifact")
	dir := t.TempDir()
	ecKey, ecPub, rsaKey, rsaPub := artifactTestKeys(t, dir)
	payload := filepath.Join(dir, "p.txt")
	os.WriteFile(payload, []byte("payload\n"), 0o644)
	for _, tt := range []struct{ kind, key, pub, comp string }{
		{"module-image", ecKey, ecPub, "gzip"}, {"rootfs-image", rsaKey, rsaPub, "lzma"}, {"module-image", rsaKey, rsaPub, "none"},
	} {
		out := filepath.Join(dir, tt.kind+"-"+tt.comp+".mender")
		args := []string{"write", tt.kind, "-t", "edge-1", "-n", "v1", "-f", payload, "-o", out, "-k", tt.key, "--compression", tt.comp, "-p", "k:v"}
		if tt.kind == "module-image" {
			args = append(args, "-T", "single-file")
		}
		if code, _, errOut := artifactCLI(t, args...); code != 0 {
			t.Fatalf("write: %s", errOut)
		}
		if b, err := exec.Command("mender-artifact", "validate", "-k", tt.pub, out).CombinedOutput(); err != nil {
			t.Errorf("mender-artifact validate %s: %v\n%s", out, err, b)
		}
		if b, _ := exec.Command("mender-artifact", "read", "-k", tt.pub, out).CombinedOutput(); !strings.Contains(string(b), "k: v") {
			t.Errorf("mender-artifact read %s does not show the provides:\n%s", out, b)
		}
	}
}
