package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingBackend is an HTTP backend that counts the connections it
// accepted.
func countingBackend(t testing.TB) (addr string, conns func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, strings.Repeat("x", 1024))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func forward(t testing.TB, rt *Route, addr, method, body string) *httptest.ResponseRecorder {
	t.Helper()
	in := httptest.NewRequest(method, "http://node.example/x", strings.NewReader(body))
	if body == "" {
		in.Body, in.ContentLength = http.NoBody, 0
	}
	out := &http.Request{Method: method, URL: &url.URL{Path: "/x"}, Host: addr, Header: http.Header{}}
	rec := httptest.NewRecorder()
	if err := rt.Forward(rec, in, out); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestPoolKeepsAndBounds: requests in sequence share one connection; the
// idle connections kept are bounded by MaxIdle; after CloseIdle nothing is
// kept.
func TestPoolKeepsAndBounds(t *testing.T) {
	addr, conns := countingBackend(t)
	rt := &Route{Pool: NewPool(PoolConfig{Addr: addr, MaxIdle: 1})}
	for i := 0; i < 3; i++ {
		if rec := forward(t, rt, addr, "GET", ""); rec.Code != 200 || rec.Body.Len() != 1024 {
			t.Fatalf("request %d: %d, %d bytes", i, rec.Code, rec.Body.Len())
		}
		if rec := forward(t, rt, addr, "POST", "data"); rec.Code != 200 {
			t.Fatalf("post %d: %d", i, rec.Code)
		}
	}
	if n := conns(); n != 1 {
		t.Errorf("sequential requests used %d connections, want 1", n)
	}
	// Two connections in use at once; only one is kept.
	a, _, _ := rt.Pool.get(t.Context(), true)
	b, _, _ := rt.Pool.get(t.Context(), true)
	rt.Pool.put(a)
	rt.Pool.put(b)
	if n := len(rt.Pool.idle); n != 1 {
		t.Errorf("%d idle connections kept, want MaxIdle 1", n)
	}
	rt.Pool.CloseIdle()
	forward(t, rt, addr, "GET", "")
	if n := len(rt.Pool.idle); n != 0 {
		t.Errorf("%d idle connections kept after CloseIdle, want 0", n)
	}
}

// TestPoolIdleTimeout: a connection idle past IdleTimeout is not used
// again.
func TestPoolIdleTimeout(t *testing.T) {
	addr, conns := countingBackend(t)
	rt := &Route{Pool: NewPool(PoolConfig{Addr: addr})}
	forward(t, rt, addr, "GET", "")
	rt.Pool.idle[0].used = time.Now().Add(-DefaultIdleTimeout - time.Second)
	forward(t, rt, addr, "GET", "")
	if n := conns(); n != 2 {
		t.Errorf("%d connections, want 2 (the idle one too old)", n)
	}
}

// BenchmarkForward and BenchmarkReverseProxy: one 1 KiB GET through the
// core and through httputil.ReverseProxy with http.Transport (the path it
// replaced), to a local backend over kept-alive connections; the proxy's
// handler called directly, no client connection.
func BenchmarkForward(b *testing.B) {
	addr, _ := countingBackend(b)
	rt := &Route{Pool: NewPool(PoolConfig{Addr: addr}), Timeout: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		forward(b, rt, addr, "GET", "")
	}
}

func BenchmarkReverseProxy(b *testing.B) {
	addr, _ := countingBackend(b)
	target := &url.URL{Scheme: "http", Host: addr}
	p := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: time.Minute},
	}
	b.ReportAllocs()
	for b.Loop() {
		in := httptest.NewRequest("GET", "http://node.example/x", nil)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, in)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
