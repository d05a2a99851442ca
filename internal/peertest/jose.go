package peertest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/npmproject"
)

// The jose peer: the npm package jose, an independent JOSE implementation,
// driven by the scripts in the npm project testdata/jose (one
// dependency, pinned by the committed lock file; node_modules is not
// committed). Every package's tests share it: its scripts encrypt (JWE, the
// keystore tests) and sign (JWS, the JWT solution's tests).

var joseInstall struct {
	once sync.Once
	err  error
}

// Jose returns the paths of node and of the jose project's directory, once
// npm ci has installed it (once per test binary, and only when
// node_modules lacks jose). Missing node or npm is handled by Require.
func Jose(t testing.TB) (node, dir string) {
	t.Helper()
	node, npm := Require(t, "node"), Require(t, "npm")
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("peertest: cannot locate the jose project")
	}
	dir = filepath.Join(filepath.Dir(file), "testdata", "jose")
	joseInstall.once.Do(func() { joseInstall.err = installNPM(npm, dir, "jose") })
	if joseInstall.err != nil {
		t.Fatal(joseInstall.err)
	}
	return node, dir
}

// installNPM runs npm ci in dir unless pkg is installed there (see
// npmproject.Install, which the dev environment shares).
func installNPM(npm, dir, pkg string) error {
	if err := npmproject.Install(context.Background(), npm, dir, pkg); err != nil {
		return fmt.Errorf("peertest: %w", err)
	}
	return nil
}

// JoseSign has the jose library (sign.mjs) sign claims with key under alg
// and returns the compact JWS; kid "" leaves kid out of the header.
func JoseSign(t testing.TB, key crypto.Signer, alg, kid string, claims map[string]any) string {
	t.Helper()
	node, dir := Jose(t)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sign.mjs", keyFile, alg, kid)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peertest: node sign.mjs %s: %v\n%s", alg, err, stderr.Bytes())
	}
	return string(bytes.TrimSpace(out))
}
