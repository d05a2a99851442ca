package peertest

import (
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The browser peer: Debian's chromium, driven by npm playwright-core from
// testdata/playwright (pinned by the committed lock file; installed by npm
// ci like the other peers, with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1:
// Playwright never downloads a browser of its own here).

var playwrightInstall struct {
	once sync.Once
	err  error
}

// Playwright returns the paths of node, of the playwright project's
// directory (its scripts), and of the chromium binary, once npm ci has
// installed the project. A missing node, npm or chromium is handled by
// Require.
func Playwright(t testing.TB) (node, dir, chromium string) {
	t.Helper()
	node, npm := Require(t, "node"), Require(t, "npm")
	chromium = Require(t, "chromium")
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("peertest: cannot locate the playwright project")
	}
	dir = filepath.Join(filepath.Dir(file), "testdata", "playwright")
	playwrightInstall.once.Do(func() { playwrightInstall.err = installNPM(npm, dir, "playwright-core") })
	if playwrightInstall.err != nil {
		t.Fatal(playwrightInstall.err)
	}
	return node, dir, chromium
}
