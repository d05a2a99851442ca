package peertest

import (
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The OpenID provider peer: npm oidc-provider (a certified implementation)
// driven by testdata/oidcprovider/provider.mjs, installed like the jose
// peer (pinned lock file, npm ci under a flock).

var oidcProviderInstall struct {
	once sync.Once
	err  error
}

// OIDCProvider returns the paths of node and of the oidc-provider
// project's directory (with provider.mjs), once npm ci has installed it.
func OIDCProvider(t testing.TB) (node, dir string) {
	t.Helper()
	node, npm := Require(t, "node"), Require(t, "npm")
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("peertest: cannot locate the oidc-provider project")
	}
	dir = filepath.Join(filepath.Dir(file), "testdata", "oidcprovider")
	oidcProviderInstall.once.Do(func() { oidcProviderInstall.err = installNPM(npm, dir, "oidc-provider") })
	if oidcProviderInstall.err != nil {
		t.Fatal(oidcProviderInstall.err)
	}
	return node, dir
}
