package clientapi

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestStreamingBothWays: the proxy passes each part of a response on before
// the backend has written the next, and a request body reaches the backend
// before the client has finished sending it; neither side is buffered.
func TestStreamingBothWays(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	backend := r.backend(t, "engine", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		in := bufio.NewReader(req.Body)
		for i := 0; i < 3; i++ {
			line, err := in.ReadString('\n') // the client sends the next line only after it got our answer
			if err != nil {
				return
			}
			io.WriteString(w, "got "+line)
			w.(http.Flusher).Flush()
		}
	}))
	srv := r.start(t, routeTo(backend, time.Minute))
	for _, h2 := range []bool{true, false} {
		streamLines(t, srv.URLs()["hub"], r.client("", h2))
	}
}

// TestKnownLengthResponseIsNotHeldBack: a response with a Content-Length
// whose backend pauses mid-body reaches the client up to the pause (the
// proxy flushes within flushLatency), not only once the body is complete.
// The backend waits for the client to confirm the first part; the timer is
// a guard against a hang, not a measurement.
func TestKnownLengthResponseIsNotHeldBack(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	gotFirst := make(chan struct{})
	held := make(chan bool, 1)
	backend := r.backend(t, "engine", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-gotFirst:
			held <- false
		case <-time.After(30 * time.Second):
			held <- true
		}
		io.WriteString(w, "later")
	}))
	srv := r.start(t, routeTo(backend, time.Minute))
	for _, h2 := range []bool{true, false} {
		req, _ := http.NewRequest("GET", srv.URLs()["hub"]+"/", nil)
		req.Header.Set("Authorization", "Bearer alice-token")
		resp, err := r.client("", h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		first := make([]byte, 5)
		_, err = io.ReadFull(resp.Body, first)
		close(gotFirst)
		if err != nil || string(first) != "first" {
			t.Fatalf("h2=%t: read %q, %v; want %q", h2, first, err, "first")
		}
		if <-held {
			t.Fatalf("h2=%t: the first part reached the client only with the rest", h2)
		}
		rest, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(rest) != "later" {
			t.Fatalf("h2=%t: rest %q, %v; want %q", h2, rest, err, "later")
		}
		gotFirst = make(chan struct{})
	}
}

func streamLines(t *testing.T, base string, client *http.Client) {
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/", pr)
	req.Header.Set("Authorization", "Bearer alice-token")
	type result struct {
		resp *http.Response
		err  error
	}
	rc := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		rc <- result{resp, err}
	}()
	io.WriteString(pw, "line 0\n")
	res := <-rc
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.resp.Body.Close()
	out := bufio.NewReader(res.resp.Body)
	for i := 0; i < 3; i++ {
		got, err := out.ReadString('\n')
		if want := "got line " + string(rune('0'+i)) + "\n"; err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
		if i < 2 {
			io.WriteString(pw, "line "+string(rune('1'+i))+"\n")
		}
	}
	pw.Close()
}

// TestWebSocketThroughTheNode: a WebSocket upgrade reaches the backend with
// the user's identity and messages go both ways.
func TestWebSocketThroughTheNode(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	users := make(chan string, 1)
	upgrader := websocket.Upgrader{}
	backend := r.backend(t, "engine", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		users <- req.Header.Get("X-Edgefort-User") + " " + req.Header.Get("X-Forwarded-For")
		c, err := upgrader.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, append([]byte("echo: "), msg...))
		}
	}))
	srv := r.start(t, routeTo(backend, time.Minute))
	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hub.example"}}
	url := "wss://" + strings.TrimPrefix(srv.URLs()["hub"], "https://") + "/ws"
	// Without credentials the upgrade is refused before the backend.
	if _, resp, err := d.Dial(url, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("dial without a token: %v, %v; want 401", resp, err)
	}
	c, resp, err := d.Dial(url, http.Header{"Authorization": {"Bearer alice-token"}, "X-Edgefort-User": {"admin"}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer c.Close()
	if got := <-users; got != "alice 127.0.0.1" {
		t.Errorf("backend saw user and peer %q, want alice 127.0.0.1", got)
	}
	for _, m := range []string{"hello", "again"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != "echo: "+m {
			t.Fatalf("read %q, %v; want echo of %q", got, err, m)
		}
	}
}

// TestStopEndsWebSocketTunnels: an upgraded connection is not a request
// Shutdown waits for; once the drain is over the tunnel is closed, so the
// client sees its connection end and nothing is left open.
func TestStopEndsWebSocketTunnels(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	upgrader := websocket.Upgrader{}
	backend := r.backend(t, "engine", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := upgrader.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	srv, err := New(routeTo(backend, time.Minute), r.deps())
	if err != nil {
		t.Fatal(err)
	}
	addTokens(srv.hosts)
	stop := runServer(t, srv)
	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hub.example"}}
	c, _, err := d.Dial("wss://"+strings.TrimPrefix(srv.URLs()["hub"], "https://")+"/ws", http.Header{"Authorization": {"Bearer alice-token"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop()
	c.SetReadDeadline(time.Now().Add(time.Minute)) // a bound for a broken server only
	if _, _, err := c.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after stop: %v, want the tunnel closed", err)
	}
}
