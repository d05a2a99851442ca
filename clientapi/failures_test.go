package clientapi

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// routeTo is a virtual host with one route, "/", to target, open to
// alice.
func routeTo(target TargetEndpoint, timeout time.Duration) Config {
	vh := tlsHost("hub")
	vh.Limits.MaxRequestBodyBytes = 1000
	vh.Routes = []Route{{Name: "all", Match: "/", Target: target.Name, Timeout: timeout, Action: "app.read", Resource: Resource{Type: "app", ID: "a1", Space: "sales"}}}
	return Config{VirtualHosts: []VirtualHost{vh}, TargetEndpoints: []TargetEndpoint{target}}
}

func TestBackendFailures(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	release := make(chan struct{})
	slow := r.backend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/slow" {
			<-release
		}
		io.Copy(io.Discard, req.Body)
	}))
	t.Cleanup(func() { close(release) }) // before the backend's Close, which waits for its handlers
	down := TargetEndpoint{Name: "down", URL: "https://127.0.0.1:1", SSL: keystore.SSL{Enabled: on(), Truststore: "ca", MinVersion: "1.2"}}
	untrusted := r.backend(t, "untrusted", echo())
	untrusted.SSL.Truststore = ""
	tests := []struct {
		name     string
		target   TargetEndpoint
		path     string
		body     io.Reader
		wantCode int
		reason   string
	}{
		{"backend down", down, "/", nil, 502, "backend_unavailable"},
		{"backend slow past the route timeout", slow, "/slow", nil, 504, "backend_timeout"},
		{"backend certificate not trusted", untrusted, "/", nil, 502, "backend_unavailable"},
		{"declared body over the limit", slow, "/", strings.NewReader(strings.Repeat("x", 1001)), 413, "request_body_too_large"},
		{"streamed body over the limit", slow, "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 1001))), 413, "request_body_too_large"},
		{"body at the limit", slow, "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 1000))), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := r.start(t, routeTo(tt.target, 300*time.Millisecond))
			req, _ := http.NewRequest("POST", srv.URLs()["hub"]+tt.path, tt.body)
			req.Header.Set("Authorization", "Bearer alice-token")
			resp, err := r.client("", false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.wantCode)
			}
			checkProblem(t, body, tt.reason, resp.Header.Get(HeaderRequestID))
			if tt.wantCode == 502 || tt.wantCode == 504 {
				id := resp.Header.Get(HeaderRequestID)
				logged := false
				for _, l := range r.logs.lines("proxying failed") {
					logged = logged || l[logKeyRequestID] == id
				}
				if !logged {
					t.Errorf("no proxying failed line with request id %s", id)
				}
			}
		})
	}
}

// TestDrain: on stop, a request in flight finishes; new connections are
// refused at once.
func TestDrain(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	arrived, release := make(chan struct{}), make(chan struct{})
	backend := r.backend(t, "engine", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "finished")
	}))
	srv, err := New(routeTo(backend, time.Minute), r.deps())
	if err != nil {
		t.Fatal(err)
	}
	addTokens(srv.hosts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	srv.deps.Ready = func() { close(ready) }
	go func() { done <- srv.Run(ctx) }()
	<-ready
	url := srv.URLs()["hub"]
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", url+"/", nil)
		req.Header.Set("Authorization", "Bearer alice-token")
		resp, err := r.client("", false).Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-arrived
	cancel()
	testkit.WaitFor(t, "the listener closed", func() bool {
		_, err := r.client("", false).Get(url + "/healthz")
		return err != nil
	})
	close(release)
	if b := <-got; b != "finished" {
		t.Errorf("in-flight request got %q, want it finished", b)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
