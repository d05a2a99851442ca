package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
)

// envAdminCaller, when set to a socket path, turns the test binary into a
// caller of that admin socket (TestAdminPeerCredentials runs it as other
// users): it asks for the status and prints "ok" or the error.
const envAdminCaller = "EDGEFORT_TEST_ADMIN_CALLER"

func TestMain(m *testing.M) {
	if socket := os.Getenv(envAdminCaller); socket != "" {
		if _, err := adminclient.New(socket).Status(context.Background()); err != nil {
			fmt.Println("refused:", err)
		} else {
			fmt.Println("ok")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPeerGateAllows(t *testing.T) {
	g := newPeerGate(config.Admin{AllowUIDs: []int{1000}, AllowGIDs: []int{50}}, slog.New(slog.DiscardHandler))
	g.self = 999
	tests := []struct {
		name string
		peer peer
		want bool
	}{
		{"root", peer{UID: 0, GID: 7}, true},
		{"the agent's own user", peer{UID: 999, GID: 7}, true},
		{"an allowed uid", peer{UID: 1000, GID: 7}, true},
		{"an allowed gid", peer{UID: 1234, GID: 50}, true},
		{"anyone else", peer{UID: 1001, GID: 1001}, false},
	}
	for _, tt := range tests {
		if got := g.allows(tt.peer); got != tt.want {
			t.Errorf("%s: allows(%+v) = %v, want %v", tt.name, tt.peer, got, tt.want)
		}
	}
}

// TestPeerGateWithoutCredentials: a request whose connection's
// credentials were never read is refused, not taken for root.
func TestPeerGateWithoutCredentials(t *testing.T) {
	g := newPeerGate(config.Admin{}, slog.New(slog.DiscardHandler))
	h := g.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "served") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
	if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "served") {
		t.Errorf("got %d %q, want 403 and not served", rec.Code, rec.Body)
	}
}
