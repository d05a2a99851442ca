package adminclient

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientOversizeReply: an answer on the admin socket longer than
// the client reads is refused with the limit named, not cut and then
// misread as broken JSON.
func TestClientOversizeReply(t *testing.T) {
	socket := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"version":"`+strings.Repeat("v", 9<<20)+`"}`)
	}))
	_, err := New(socket).Status(context.Background())
	const want = "admin: GET /v1/status: agent reply exceeds the limit of 8 MiB"
	if err == nil || err.Error() != want {
		t.Fatalf("Status: err = %v, want %q", err, want)
	}
}

// serveUnix serves h on a unix socket bound before the server starts, and
// returns the socket's path.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ef-admin") // short: a socket path has ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return socket
}
