package adminclient

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/testkit"
)

// TestClientOversizeReply: an answer on the admin socket longer than
// the client reads is refused with the limit named, not cut and then
// misread as broken JSON.
func TestClientOversizeReply(t *testing.T) {
	socket := testkit.ServeUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"version":"`+strings.Repeat("v", 9<<20)+`"}`)
	}))
	_, err := New(socket).Status(context.Background())
	const want = "admin: GET /v1/status: agent reply exceeds the limit of 8 MiB"
	if err == nil || err.Error() != want {
		t.Fatalf("Status: err = %v, want %q", err, want)
	}
}
