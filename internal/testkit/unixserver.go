package testkit

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// ServeUnix serves h over HTTP on a unix socket that is bound before the
// server starts (a client may dial at once), and returns the socket's
// path. The directory is a short one under the system's temp dir: a
// socket path has room for about 100 bytes, which t.TempDir() can exceed.
func ServeUnix(t testing.TB, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ef-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s.sock")
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
