// Package npmproject installs the npm projects under
// internal/peertest/testdata (samlify, oidc-provider, jose, playwright-core):
// npm ci from the committed lock file when node_modules lacks the package,
// under a lock so that the tests of several packages and the dev
// environment, installing at once, never pull node_modules from under
// each other. It is used by test helpers and by edgefort-dev, never by
// the product.
package npmproject

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// InstallTimeout bounds one npm ci.
const InstallTimeout = 10 * time.Minute

// Install runs npm ci in dir unless pkg is installed there. The check and
// the install happen under an exclusive flock on a file beside the
// project: npm ci first deletes node_modules, which would pull the library
// from under another process's node.
func Install(ctx context.Context, npm, dir, pkg string) error {
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%s install lock: %w", pkg, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%s install lock: %w", pkg, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, InstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--silent", "--no-audit", "--no-fund")
	cmd.Dir = dir
	// No project here may fetch a browser build of its own (playwright's
	// packages would): the browser is Debian's chromium.
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.New("npm ci in " + dir + ": " + err.Error() + "\n" + string(out))
	}
	return nil
}
