// Package peertest finds the real programs that tests talk to (openssl,
// mender-artifact, node, mosquitto…). A missing peer fails the test when
// EDGEFORT_REQUIRE_PEERS=1 (CI sets it) and skips it loudly otherwise, so
// a green run never hides a peer test that did not run.
package peertest

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// EnvRequire names the variable that turns a missing peer into a failure.
const EnvRequire = "EDGEFORT_REQUIRE_PEERS"

// SkipPrefix starts the message of every skip made here, so that a run's
// summary (scripts/test.sh) can tell a skipped peer test from other skips.
const SkipPrefix = "SKIPPED (peer):"

// warned holds the programs already reported missing on stderr.
var warned sync.Map

// Require returns the path of program name. When it is not in PATH the
// test fails under EDGEFORT_REQUIRE_PEERS=1 and is skipped otherwise; the
// first skip per program is also printed to stderr so that it shows
// without -v.
func Require(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s is required (%s=1): %v", name, EnvRequire, err)
	}
	if _, seen := warned.LoadOrStore(name, true); !seen {
		fmt.Fprintf(os.Stderr, "WARNING: %s not found in PATH: tests that need it are SKIPPED (%s=1 makes them fail)\n", name, EnvRequire)
	}
	t.Skipf("%s %s not found in PATH (%s=1 makes this fail)", SkipPrefix, name, EnvRequire)
	return ""
}

// Skipf is for a peer that was found but cannot run the test (an openssl
// without a legacy algorithm, a system file the peer needs that cannot be
// written): the test fails under EDGEFORT_REQUIRE_PEERS=1 and is skipped
// with SkipPrefix otherwise.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s (%s=1)", msg, EnvRequire)
	}
	t.Skipf("%s %s (%s=1 makes this fail)", SkipPrefix, msg, EnvRequire)
}
