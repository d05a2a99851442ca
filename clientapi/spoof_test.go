package clientapi

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// spoofMarker is in every value a client sends to pose as someone: no
// header the backend receives may hold it.
const spoofMarker = "spoofed-by-client"

// TestClientCannotSpoofIdentityBySpelling sends identity and forwarding
// headers under every spelling a client controls (case, underscores for
// dashes, duplicates, both protocols) and the hop-by-hop trick of listing
// the node's own headers in Connection: the backend sees the node's
// values only.
func TestClientCannotSpoofIdentityBySpelling(t *testing.T) {
	r := newRig(t)
	backend := &counting{h: echo()}
	srv := r.start(t, hubConfig(r.backend(t, "engine", backend)))
	r.authz.permit("alice app.read app/sales/a1")
	base := srv.URLs()["hub"]
	spellings := []string{
		"X-Edgefort-User", "x-edgefort-user", "X-EDGEFORT-USER", "X_Edgefort_User", "x_edgefort_user", "X-Edgefort_User",
		"X_Edgefort_Groups", "X_Edgefort_Directory", "X_Edgefort_Anonymous", "X_Edgefort_Identity", "X_EDGEFORT_ANYTHING",
		"X_Forwarded_For", "x_forwarded_host", "X-Forwarded_Proto", "X_Forwarded_Port", "Forwarded",
	}
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", base+"/api/v1/apps/a1/", nil)
		req.Host = "hub.example"
		req.Header.Set("Authorization", "Bearer alice-token")
		for _, k := range spellings {
			// Set in the map directly: the client sends the key as written
			// (HTTP/2 lower-cases it), twice.
			req.Header[k] = []string{spoofMarker, spoofMarker + "-2"}
		}
		if !h2 {
			req.Header["Connection"] = []string{"X-Edgefort-User, X-Edgefort-Groups, X-Forwarded-For, Forwarded, X-Request-Id"}
		}
		client := r.client("", h2)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		client.CloseIdleConnections()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("h2=%v: status %d %s", h2, resp.StatusCode, body)
		}
		if strings.Contains(string(body), spoofMarker) {
			t.Errorf("h2=%v: a client value reached the backend: %s", h2, body)
		}
		for _, want := range []string{`"X-Edgefort-User":["alice"]`, `"X-Edgefort-Groups":["g1,g2"]`, `"X-Forwarded-For":["127.0.0.1"]`, `"Forwarded":["for=127.0.0.1`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("h2=%v: the backend did not get %s: %s", h2, want, body)
			}
		}
	}
}
