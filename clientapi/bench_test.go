package clientapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkRoute measures one authenticated, authorized request through a
// TLS virtual host to a plain HTTP backend over kept-alive connections
// (the test token solution and an in-memory authorizer: the chain's and
// the proxy's own cost, not the JWT check's).
func BenchmarkRoute(b *testing.B) {
	r := newRig(b)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }))
	b.Cleanup(backend.Close)
	r.authz.permit("alice app.read app/sales/a1")
	cfg := routeTo(TargetEndpoint{Name: "engine", URL: backend.URL}, time.Minute)
	deps := r.deps()
	deps.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(cfg, deps)
	if err != nil {
		b.Fatal(err)
	}
	addTokens(srv.hosts)
	runServer(b, srv)
	url := srv.URLs()["hub"] + "/x"
	client := r.client("", false)
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer alice-token")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
