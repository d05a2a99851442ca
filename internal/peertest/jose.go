package peertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
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
	joseInstall.once.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose", "package.json")); err == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--silent", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			joseInstall.err = errors.New("npm ci in " + dir + ": " + err.Error() + "\n" + string(out))
		}
	})
	if joseInstall.err != nil {
		t.Fatal(joseInstall.err)
	}
	return node, dir
}
