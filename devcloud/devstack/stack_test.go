package devstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/agent"
)

// devStack is a dev stack started in this process, its agent running.
type devStack struct {
	*Stack
	hub string // https://127.0.0.1:PORT
	// proxied is the virtual host behind the dev "proxy" 127.0.0.2.
	proxied string
	authAPI string // the node's clients.auth_api, https://127.0.0.1:PORT
	agent   *agent.Agent
	roots   *x509.CertPool
	client  *http.Client
}

// startStack starts the dev stack on a new state directory and runs the
// agent on it until the test ends.
func startStack(t *testing.T) *devStack {
	t.Helper()
	return startStackWith(t, IdPOptions{})
}

// startStackWith is startStack with the dev IdPs as idps says.
func startStackWith(t *testing.T, idps IdPOptions) *devStack {
	t.Helper()
	// The admin socket lives in the state directory: keep its path short.
	dir, err := os.MkdirTemp("", "efdev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{StateDir: dir, LogLevel: "warn", Logger: log, IdPs: idps})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan *agent.Agent, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.RunAgent(ctx, log, new(slog.LevelVar), func(a *agent.Agent) { ready <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("agent: %v", err)
		}
		s.Close()
	})
	var a *agent.Agent
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("the agent stopped before it was ready: %v", err)
	}
	ca, err := LoadCA(filepath.Join(dir, CADir))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	hub := a.Status().VirtualHosts["hub"]
	if !strings.HasPrefix(hub, "https://") {
		t.Fatalf("hub virtual host at %q, want https://...", hub)
	}
	return &devStack{Stack: s, hub: hub, proxied: a.Status().VirtualHosts["proxied"], authAPI: a.Status().AuthAPI, agent: a, roots: roots, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
	}}}
}

// do sends a request to the hub with token (none when "") and extra
// headers, and returns the status and the body.
func (d *devStack) do(t *testing.T, method, path, token string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, d.hub+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// seen is what the engine says a request brought: the identity headers
// and the verified identity JWT's claims of interest.
type seen struct {
	User, Directory, Groups string
	Verified                bool
	Sub, Aud, Iss           string
}

func seenIn(t *testing.T, body []byte) seen {
	t.Helper()
	var rec received
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatalf("engine's answer is not its JSON: %v: %s", err, body)
	}
	s := seen{User: rec.Headers.User, Directory: rec.Headers.Directory, Groups: rec.Headers.Groups}
	if j := rec.JWT; j != nil {
		s.Verified = j.Verified
		s.Sub, _ = j.Claims["sub"].(string)
		s.Aud, _ = j.Claims["aud"].(string)
		s.Iss, _ = j.Claims["iss"].(string)
	}
	return s
}

// TestDevStackClientAPI runs the dev stack as edgefort-dev does and goes
// through the banner's tour of the client API: alice's token reaches the
// engine with her identity (headers and an identity JWT the engine
// verifies against the node's JWKS), a client-sent identity header does
// not; bob (a viewer) reads but may not reload; no token is 401 and a bad
// one too; the public route admits the anonymous user.
func TestDevStackClientAPI(t *testing.T) {
	d := startStack(t)
	alice, bob := d.Info.ControlPlane.UserToken, d.Info.ControlPlane.ViewerToken
	iss := "edgefort:" + d.Config.Device.ID
	aliceSeen := seen{User: "alice", Directory: "dev", Groups: "staff", Verified: true, Sub: "alice", Aud: identityAudience, Iss: iss}
	bobSeen := seen{User: "bob", Directory: "dev", Groups: "analysts", Verified: true, Sub: "bob", Aud: identityAudience, Iss: iss}
	anonSeen := seen{User: "anonymous", Directory: "anonymous", Verified: true, Sub: "anonymous", Aud: identityAudience, Iss: iss}
	forged := http.Header{"X-Edgefort-User": {"admin"}, "X-Edgefort-Identity": {"forged"}}
	tests := []struct {
		name, method, path, token string
		header                    http.Header
		status                    int
		want                      *seen // what the engine saw; nil: not checked (refused)
	}{
		{"alice reads an app", "GET", "/api/v1/apps/q3-report", alice, nil, 200, &aliceSeen},
		{"alice's forged identity headers are replaced", "GET", "/api/v1/apps/q3-report", alice, forged, 200, &aliceSeen},
		{"alice reloads an app", "POST", "/api/v1/apps/q3-report/reload", alice, nil, 200, nil},
		{"alice sees the engine page", "GET", "/", alice, nil, 200, nil},
		{"bob reads an app", "GET", "/api/v1/apps/q3-report", bob, nil, 200, &bobSeen},
		{"bob may not reload", "POST", "/api/v1/apps/q3-report/reload", bob, nil, 403, nil},
		{"no token", "GET", "/api/v1/apps/q3-report", "", nil, 401, nil},
		{"no token, forged identity headers", "GET", "/api/v1/apps/q3-report", "", forged, 401, nil},
		{"a token whose signature does not verify", "GET", "/api/v1/apps/q3-report", alice[:len(alice)-4] + "AAAA", nil, 401, nil},
		{"the public route, anonymous", "GET", "/public/api/v1/whoami", "", nil, 200, &anonSeen},
		{"the public route, forged identity headers", "GET", "/public/api/v1/whoami", "", forged, 200, &anonSeen},
		{"the node's JWKS", "GET", "/.well-known/jwks.json", "", nil, 200, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := d.do(t, tc.method, tc.path, tc.token, tc.header)
			if status != tc.status {
				t.Fatalf("%s %s: %d, want %d; body: %s", tc.method, tc.path, status, tc.status, body)
			}
			if tc.want == nil {
				return
			}
			if diff := cmp.Diff(*tc.want, seenIn(t, body)); diff != "" {
				t.Errorf("%s %s: what the engine saw (-want +got):\n%s", tc.method, tc.path, diff)
			}
		})
	}
}

// TestDevStackWebSocket opens the engine's WebSocket echo through the
// node as alice: the hello carries her identity (header and verified
// identity JWT) and messages come back as sent; without a token the
// handshake is refused with 401, and a client without the dev CA does
// not connect.
func TestDevStackWebSocket(t *testing.T) {
	d := startStack(t)
	wss := "wss://" + strings.TrimPrefix(d.hub, "https://")
	s, err := DialWS(t.Context(), WSOptions{URL: wss + "/api/v1/apps/q3-report/ws", Token: d.Info.ControlPlane.UserToken, RootCAs: d.roots})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	user, sub, err := s.HelloUser()
	if err != nil {
		t.Fatal(err)
	}
	if user != "alice" || sub != "alice" {
		t.Errorf("hello: user %q, identity JWT sub %q; want alice, alice: %s", user, sub, s.Hello)
	}
	for _, msg := range []string{"hello engine", strings.Repeat("x", 100<<10)} {
		got, err := s.Echo(t.Context(), []byte(msg))
		if err != nil {
			t.Fatalf("echo of %d bytes: %v", len(msg), err)
		}
		if string(got) != msg {
			t.Errorf("echo of %d bytes: got %d bytes back, differing", len(msg), len(got))
		}
	}

	_, err = DialWS(t.Context(), WSOptions{URL: wss + "/api/v1/apps/q3-report/ws", RootCAs: d.roots})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Code != http.StatusUnauthorized {
		t.Errorf("no token: %v; want refused with 401", err)
	}
	// The dev CA is not trusted by default: no connection at all.
	_, err = DialWS(t.Context(), WSOptions{URL: wss + "/api/v1/apps/q3-report/ws", Token: d.Info.ControlPlane.UserToken, RootCAs: x509.NewCertPool()})
	if err == nil || errors.As(err, &refused) {
		t.Errorf("untrusted server: %v; want a TLS failure", err)
	}
}
