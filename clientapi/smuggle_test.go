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
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
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

// TestAmbiguousRequests: requests whose framing a proxy and a backend
// could read differently are refused by the node, or reach the backend as
// exactly the requests the node answered, each framed by the node (the
// raw backend parses what it gets with net/http and records it): never a
// request smuggled inside another's body, never a body read as a request.
// Each connection ends with "Connection: close" so that the client reads
// to the end.
func TestAmbiguousRequests(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "\r\n"
	last := "GET /last HTTP/1.1\r\nHost: hub.example\r\n" + aliceAuth + "Connection: close\r\n\r\n"
	tests := []struct {
		name        string
		raw         string
		wantBackend []string
		wantClient  []string
	}{
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
	for _, tt := range tests {
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
