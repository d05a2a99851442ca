package artifact

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// warnedPeers holds the programs already reported missing on stderr.
var warnedPeers sync.Map

// requirePeer returns the path of the external program name that the test
// runs. When it is not in PATH the test fails under EDGEFORT_REQUIRE_PEERS=1
// (CI) and is skipped otherwise, loudly: the first skip per program is also
// printed to stderr so that it shows without -v.
func requirePeer(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("EDGEFORT_REQUIRE_PEERS") == "1" {
		t.Fatalf("%s is required (EDGEFORT_REQUIRE_PEERS=1): %v", name, err)
	}
	if _, seen := warnedPeers.LoadOrStore(name, true); !seen {
		fmt.Fprintf(os.Stderr, "WARNING: %s not found in PATH: tests that need it are SKIPPED (EDGEFORT_REQUIRE_PEERS=1 makes them fail)\n", name)
	}
	t.Skipf("SKIPPED: %s not found in PATH (EDGEFORT_REQUIRE_PEERS=1 makes this fail)", name)
	return ""
}
