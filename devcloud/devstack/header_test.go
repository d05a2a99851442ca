package devstack

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// from is a client of the dev CA that connects from the local address
// addr.
func (d *devStack) from(addr string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     dialer.DialContext,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: d.roots},
	}}
}

// TestDevStackHeaderLogin goes through the banner's tour of the virtual
// host proxied: X-Remote-User from the dev proxy (127.0.0.2) reaches the
// engine as that user, with the Host the client sent; the same header from
// 127.0.0.1 is refused with 401 and never reaches the engine (its request
// count does not move); without the header the public route is anonymous;
// sign-in has no interactive solution to go to there.
func TestDevStackHeaderLogin(t *testing.T) {
	d := startStack(t)
	if !strings.HasPrefix(d.proxied, "https://127.0.0.1:") {
		t.Fatalf("proxied virtual host at %q, want https://127.0.0.1:PORT", d.proxied)
	}
	get := func(from, path string, header http.Header) (int, received) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", d.proxied+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := d.from(from).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var rec received
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &rec); err != nil {
				t.Fatalf("engine's answer %s: %v", body, err)
			}
		}
		return resp.StatusCode, rec
	}
	alice := http.Header{"X-Remote-User": {"alice"}, "X-Remote-Groups": {"staff"}}
	code, first := get("127.0.0.2", "/api/v1/whoami", alice)
	if code != http.StatusOK {
		t.Fatalf("from the dev proxy: %d, want 200", code)
	}
	want := identityHeaders{User: "alice", Directory: "proxy", Groups: "staff"}
	if first.Headers != want || first.JWT == nil || !first.JWT.Verified || first.JWT.Claims["sub"] != "alice" {
		t.Errorf("the engine saw %+v, jwt %+v; want %+v and a verified token for alice", first.Headers, first.JWT, want)
	}
	if host := strings.TrimPrefix(d.proxied, "https://"); first.Host != host {
		t.Errorf("the engine saw Host %q, want the client's %q", first.Host, host)
	}
	if code, _ := get("127.0.0.1", "/api/v1/whoami", alice); code != http.StatusUnauthorized {
		t.Errorf("the same header from 127.0.0.1: %d, want 401", code)
	}
	if code, _ := get("127.0.0.1", "/public/api/v1/whoami", http.Header{"X-Remote-User": {"alice"}}); code != http.StatusUnauthorized {
		t.Errorf("the same header from 127.0.0.1 on the public route: %d, want 401", code)
	}
	code, anon := get("127.0.0.1", "/public/api/v1/whoami", nil)
	if code != http.StatusOK || anon.Headers.User != "anonymous" {
		t.Errorf("the public route without the header: %d as %q, want 200 as anonymous", code, anon.Headers.User)
	}
	if anon.Seq != first.Seq+1 {
		t.Errorf("engine request %d after %d: the refused requests reached it", anon.Seq, first.Seq)
	}
	if code, _ := get("127.0.0.1", "/.edgefort/signin?return_to=/public/", nil); code != http.StatusNotFound {
		t.Errorf("sign-in without an interactive solution: %d, want 404", code)
	}
}
