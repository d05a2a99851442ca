package artifact

import (
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// requirePeer returns the path of the program a test talks to; see
// peertest.Require.
func requirePeer(t testing.TB, name string) string {
	t.Helper()
	return peertest.Require(t, name)
}
