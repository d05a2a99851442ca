package clientapi

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/testkit"
)

// rawBackend is a plain-HTTP backend over a bare TCP listener that parses
// each request with net/http's parser and records it, and answers with
// the raw bytes reply gives: it counts what reached it, and can answer
// what no well-behaved server would.
type rawBackend struct {
	ln    net.Listener
	reply func(req *http.Request) (raw string, hangUp bool)

	mu    sync.Mutex
	reqs  []string // "METHOD PATH body=..." or "... INCOMPLETE"
	conns int
	open  map[net.Conn]bool
}

func newRawBackend(t *testing.T, reply func(req *http.Request) (string, bool)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln, reply: reply, open: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	// The connections the node keeps idle end with the test.
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for c := range b.open {
			c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns++
			b.open[c] = true
			b.mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); b.serve(c) }()
		}
	}()
	return b
}

func (b *rawBackend) serve(c net.Conn) {
	defer func() {
		b.mu.Lock()
		delete(b.open, c)
		b.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			// The node closing a connection is no request; anything
			// else it sent that does not parse is.
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				b.record("MALFORMED: " + err.Error())
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		rec := fmt.Sprintf("%s %s body=%q", req.Method, req.URL.Path, body)
		if v := req.Header.Get("X-Fold"); v != "" {
			rec += " x-fold=" + v
		}
		if _, ok := req.Header["Expect"]; ok {
			rec += " expect"
		}
		if err != nil {
			b.record(rec + " INCOMPLETE")
			return
		}
		b.record(rec)
		raw, hangUp := b.reply(req)
		io.WriteString(c, raw)
		if hangUp {
			return
		}
	}
}

func (b *rawBackend) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = append(b.reqs, s)
}

func (b *rawBackend) seen() ([]string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.reqs...), b.conns
}

func (b *rawBackend) target() TargetEndpoint {
	return TargetEndpoint{Name: "raw", URL: "http://" + b.ln.Addr().String()}
}

// okReply answers every request 200 with its path as the body, framed
// by Content-Length.
func okReply(req *http.Request) (string, bool) {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path), false
}

// rawTLS is a TLS connection to a virtual host for bytes no HTTP client
// would send.
func (r *rig) rawTLS(t *testing.T, url string) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	c, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{RootCAs: pool, ServerName: "hub.example", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound for a broken proxy only; no test waits on it.
	c.SetDeadline(time.Now().Add(time.Minute))
	return c
}

// answer is a response as the client read it: "STATUS body", or
// "TRUNCATED" when the connection ended inside the body.
func readAnswers(br *bufio.Reader, method string) []string {
	var out []string
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return out
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return append(out, fmt.Sprintf("%d TRUNCATED", resp.StatusCode))
		}
		if resp.StatusCode != http.StatusOK {
			body = nil // the node's problem documents carry request ids
		}
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, body))
		if resp.Close {
			return out
		}
	}
}

const aliceAuth = "Authorization: Bearer alice-token\r\n"

// ambiguousRequest is a connection's worth of bytes a client sends, and
// what the node does with them: the backend's record of what reached it
// (rawBackend) and the answers the client reads.
type ambiguousRequest struct {
	name        string
	raw         string
	wantBackend []string
	wantClient  []string
}

// ambiguousRequests are requests whose framing a proxy and a backend
// could read differently. Each connection ends with "Connection: close" so
// that the client reads to the end.
func ambiguousRequests() []ambiguousRequest {
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "\r\n"
	last := "GET /last HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Connection: close\r\n\r\n"
	return []ambiguousRequest{
		{"content-length and chunked: chunked wins, the rest is the next request",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled + last,
			[]string{`POST /a body=""`, `GET /smuggled body=""`, `GET /last body=""`}, []string{"200 /a", "200 /smuggled", "200 /last"}},
		{"two different content-lengths",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello" + smuggled + last,
			nil, []string{"400 "}},
		{"chunked after another coding",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled + last,
			nil, []string{"501 "}},
		{"chunked twice",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled + last,
			nil, []string{"501 "}},
		{"space before the colon of content-length",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Content-Length : 5\r\n\r\nhello" + last,
			nil, []string{"400 "}},
		{"chunk size overflow",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n" + smuggled + last,
			[]string{`POST /a body="" INCOMPLETE`}, []string{"400 "}},
		{"chunk extensions are dropped",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Transfer-Encoding: chunked\r\n\r\n5;ext=1;name=\"GET /x\"\r\nhello\r\n0\r\n\r\n" + last,
			[]string{`POST /a body="hello"`, `GET /last body=""`}, []string{"200 /a", "200 /last"}},
		{"bare LF ends a chunk line",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n" + smuggled + last,
			[]string{`POST /a body="" INCOMPLETE`}, []string{"400 "}},
		{"obs-fold header: one line at the backend",
			"GET /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "X-Fold: one\r\n two\r\n\r\n" + last,
			[]string{`GET /a body="" x-fold=one two`, `GET /last body=""`}, []string{"200 /a", "200 /last"}},
		{"GET with a body",
			"GET /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Content-Length: 5\r\n\r\nhello" + last,
			[]string{`GET /a body="hello"`, `GET /last body=""`}, []string{"200 /a", "200 /last"}},
		{"pipelined requests",
			"GET /p1 HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "\r\nGET /p2 HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "\r\n" + last,
			[]string{`GET /p1 body=""`, `GET /p2 body=""`, `GET /last body=""`}, []string{"200 /p1", "200 /p2", "200 /last"}},
		{"content-length shorter than the data: the rest is the next request",
			"POST /a HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Content-Length: 5\r\n\r\nhello" + smuggled + last,
			[]string{`POST /a body="hello"`, `GET /smuggled body=""`, `GET /last body=""`}, []string{"200 /a", "200 /smuggled", "200 /last"}},
	}
}

// TestAmbiguousRequests: the ambiguousRequests are refused by the node, or
// reach the backend as exactly the requests the node answered, each framed
// by the node (the raw backend parses what it gets with net/http and
// records it): never a request smuggled inside another's body, never a
// body read as a request.
func TestAmbiguousRequests(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	for _, tt := range ambiguousRequests() {
		t.Run(tt.name, func(t *testing.T) {
			backend := newRawBackend(t, okReply)
			srv := r.start(t, routeTo(backend.target(), time.Minute))
			c := r.rawTLS(t, srv.URLs()["hub"])
			if _, err := io.WriteString(c, tt.raw); err != nil {
				t.Fatal(err)
			}
			got := readAnswers(bufio.NewReader(c), "GET")
			if diff := cmp.Diff(tt.wantClient, got); diff != "" {
				t.Errorf("client read (-want +got):\n%s", diff)
			}
			// The node has answered: what the backend got by then (an
			// aborted request shows once the node has closed it) is all
			// it gets.
			testkit.WaitFor(t, "the backend's requests", func() bool { reqs, _ := backend.seen(); return len(reqs) >= len(tt.wantBackend) })
			reqs, _ := backend.seen()
			if diff := cmp.Diff(tt.wantBackend, reqs); diff != "" {
				t.Errorf("backend got (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBackendResponseFraming: a backend's response is passed on as the
// node read it with net/http's parser, and a backend connection is used
// again only when that response ended cleanly: bytes a backend sends past
// its response never reach another request's client, and a body cut
// short reaches the client cut short (its connection aborted), never as a
// complete response.
func TestBackendResponseFraming(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	tests := []struct {
		name   string
		method string
		raw    string // the backend's answer to the first request
		hangUp bool
		want   string // what the client reads
		// reused: the second request went on the first's connection.
		reused bool
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", false, "200 first", true},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", false, "200 first", true},
		{"content-length and chunked, then a response nobody asked for", "GET",
			"HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled", false, "200 first", false},
		{"a second response after a content-length one", "GET",
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled", false, "200 first", false},
		{"closed mid-body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst", true, "200 TRUNCATED", false},
		{"closed mid-chunk", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nfirst", true, "200 TRUNCATED", false},
		{"no framing: read to the close", "GET", "HTTP/1.1 200 OK\r\n\r\nfirst", true, "200 first", false},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfirst", false, "200 first", false},
		{"HEAD answered with a length and no body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false, "200 ", true},
		{"HEAD answered with a body it should not have", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled", false, "200 ", false},
		{"interim responses before the final one", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", false, "200 first", true},
		{"204 with a length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n", false, "204 ", true},
		{"response header over the bound", "GET", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\nContent-Length: 5\r\n\r\nfirst", false, "502 ", false},
		{"content-length and chunked with another coding", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n", false, "502 ", false},
		{"two different content-lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 13\r\n\r\nfirstsmuggled", false, "502 ", false},
		{"a status below 100", "GET", "HTTP/1.1 042 Odd\r\nContent-Length: 5\r\n\r\nfirst", false, "502 ", false},
		{"switching protocols unasked", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", false, "502 ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n sync.Mutex
			count := 0
			backend := newRawBackend(t, func(req *http.Request) (string, bool) {
				n.Lock()
				defer n.Unlock()
				count++
				if count == 1 {
					return tt.raw, tt.hangUp
				}
				return okReply(req)
			})
			srv := r.start(t, routeTo(backend.target(), time.Minute))
			first := r.rawTLS(t, srv.URLs()["hub"])
			io.WriteString(first, tt.method+" /first HTTP/1.1\r\nHost: hub.example\r\n"+aliceAuth+"Connection: close\r\n\r\n")
			if got := readAnswers(bufio.NewReader(first), tt.method); !cmp.Equal(got, []string{tt.want}) {
				t.Errorf("first client read %q, want %q", got, tt.want)
			}
			// Another client, another connection to the node: its answer
			// is its own, whatever the backend sent before.
			second := r.rawTLS(t, srv.URLs()["hub"])
			io.WriteString(second, "GET /second HTTP/1.1\r\nHost: hub.example\r\n"+aliceAuth+"Connection: close\r\n\r\n")
			if got := readAnswers(bufio.NewReader(second), "GET"); !cmp.Equal(got, []string{"200 /second"}) {
				t.Errorf("second client read %q, want [200 /second]", got)
			}
			reqs, conns := backend.seen()
			want := []string{tt.method + ` /first body=""`, `GET /second body=""`}
			if diff := cmp.Diff(want, reqs); diff != "" {
				t.Errorf("backend got (-want +got):\n%s", diff)
			}
			if wantConns := map[bool]int{true: 1, false: 2}[tt.reused]; conns != wantConns {
				t.Errorf("backend connections: %d, want %d (reused: %t)", conns, wantConns, tt.reused)
			}
		})
	}
}

// TestStaleBackendConnection: a kept-alive backend connection that the
// backend has closed while it sat idle is not used (a POST, which is never
// sent twice, would fail on it), and one that fails before any byte of an
// answer is retried once on a new connection for a GET, never for a POST.
func TestStaleBackendConnection(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	var mu sync.Mutex
	script := map[string][]string{} // path: the next answers, "" hangs up without one
	backend := newRawBackend(t, func(req *http.Request) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if s := script[req.URL.Path]; len(s) > 0 {
			script[req.URL.Path] = s[1:]
			if s[0] == "" {
				return "", true
			}
			return s[0], true // answered, then the connection closed as if idle too long
		}
		return okReply(req)
	})
	srv := r.start(t, routeTo(backend.target(), time.Minute))
	client := r.client("", false)
	do := func(method, path, body string) string {
		req, _ := http.NewRequest(method, srv.URLs()["hub"]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer alice-token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			b = nil
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	idle := func() {
		testkit.WaitFor(t, "the backend closed its connections", func() bool {
			backend.mu.Lock()
			defer backend.mu.Unlock()
			return len(backend.open) == 0
		})
	}
	mu.Lock()
	script["/closes"] = []string{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ncloses", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ncloses"}
	script["/drop-get"] = []string{""}
	script["/drop-post"] = []string{""}
	mu.Unlock()
	steps := []struct {
		method, path, body string
		want               string
		idle               bool // wait until the backend closed the pooled connection
	}{
		{"GET", "/closes", "", "200 closes", true},
		{"POST", "/after-close", "data", "200 /after-close", false},
		{"GET", "/closes", "", "200 closes", true},
		{"GET", "/warm", "", "200 /warm", false}, // a kept-alive connection for the next
		{"GET", "/drop-get", "", "200 /drop-get", false},
		{"POST", "/drop-post", "data", "502 ", false},
	}
	for _, s := range steps {
		if got := do(s.method, s.path, s.body); got != s.want {
			t.Errorf("%s %s: %q, want %q", s.method, s.path, got, s.want)
		}
		if s.idle {
			idle()
		}
	}
	reqs, _ := backend.seen()
	want := []string{`GET /closes body=""`, `POST /after-close body="data"`, `GET /closes body=""`,
		`GET /warm body=""`, `GET /drop-get body=""`, `GET /drop-get body=""`, `POST /drop-post body="data"`}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("backend got (-want +got):\n%s", diff)
	}
}

// TestExpectContinue: the node answers a client's 100-continue itself
// when it reads the body (after authentication), and the backend gets one
// request with the whole body, no Expect.
func TestExpectContinue(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	backend := newRawBackend(t, okReply)
	srv := r.start(t, routeTo(backend.target(), time.Minute))
	c := r.rawTLS(t, srv.URLs()["hub"])
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: hub.example\r\n"+aliceAuth+"Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
	interim, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil || interim.StatusCode != http.StatusContinue {
		t.Fatalf("first answer %v, %v; want 100 Continue", interim, err)
	}
	io.WriteString(c, "hello")
	if got := readAnswers(br, "POST"); !cmp.Equal(got, []string{"200 /a"}) {
		t.Errorf("client read %q, want [200 /a]", got)
	}
	reqs, _ := backend.seen()
	if diff := cmp.Diff([]string{`POST /a body="hello"`}, reqs); diff != "" {
		t.Errorf("backend got (-want +got):\n%s", diff)
	}
}
