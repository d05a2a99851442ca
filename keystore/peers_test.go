package keystore

// requirePeer is shared by the package's tests that run a real external
// program.

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// missingPeers remembers which programs were reported missing on stderr.
var missingPeers sync.Map

// requirePeer returns the path of the program name, which the test needs.
// If it is not in PATH the test fails when EDGEFORT_REQUIRE_PEERS=1 (CI)
// and is skipped otherwise, loudly: the first skip for each program is
// also written to stderr, so it shows without -v.
func requirePeer(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("EDGEFORT_REQUIRE_PEERS") == "1" {
		t.Fatalf("%s is required (EDGEFORT_REQUIRE_PEERS=1): %v", name, err)
	}
	if _, seen := missingPeers.LoadOrStore(name, true); !seen {
		fmt.Fprintf(os.Stderr, "WARNING: %s not found in PATH: tests that need it are SKIPPED (EDGEFORT_REQUIRE_PEERS=1 makes them fail)\n", name)
	}
	t.Skipf("SKIPPED: %s not found in PATH (EDGEFORT_REQUIRE_PEERS=1 makes this fail): %v", name, err)
	return ""
}
