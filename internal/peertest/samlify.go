package peertest

import (
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The samlify peer: the npm package samlify, an independent SAML 2.0
// implementation, run as an identity provider by testdata/samlify/idp.js
// (dependencies pinned by the committed lock file; node_modules is not
// committed; XML schema validation by the pure-JS xmllint-wasm).

var samlifyInstall struct {
	once sync.Once
	err  error
}

// Samlify returns the paths of node and of the samlify project's
// directory, once npm ci has installed it (as Jose does).
func Samlify(t testing.TB) (node, dir string) {
	t.Helper()
	node, npm := Require(t, "node"), Require(t, "npm")
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("peertest: cannot locate the samlify project")
	}
	dir = filepath.Join(filepath.Dir(file), "testdata", "samlify")
	samlifyInstall.once.Do(func() { samlifyInstall.err = installNPM(npm, dir, "samlify") })
	if samlifyInstall.err != nil {
		t.Fatal(samlifyInstall.err)
	}
	return node, dir
}
