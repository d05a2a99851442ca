package devcloud

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/internal/wsconn"
	"github.com/edgefort/edgefort/iot/sigv4"
)

// clientCount counts a client's TCP payload bytes, to hold the server's
// counts against.
type clientCount struct{ read, written atomic.Int64 }

type countedClientConn struct {
	net.Conn
	n *clientCount
}

func (c countedClientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.read.Add(int64(n))
	return n, err
}

func (c countedClientConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.written.Add(int64(n))
	return n, err
}

func (n *clientCount) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countedClientConn{c, n}, nil
}

// mqttConnect is an MQTT 3.1.1 CONNECT for client ID id, clean session,
// keep-alive 30 s.
func mqttConnect(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// TestWireCounterBroker: a client that sends CONNECT and three PINGREQs
// by hand is counted packet by packet each way, and the bytes the broker
// counts are the bytes the client wrote and read on its socket.
func TestWireCounterBroker(t *testing.T) {
	ca, err := NewCA("wirecount test CA")
	if err != nil {
		t.Fatal(err)
	}
	v := &testVault{creds: make(map[string]testCred)}
	wire := NewWireCounter()
	b, err := NewBroker(BrokerOptions{CA: ca, Lookup: v.lookup, Wire: wire})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	u, err := sigv4.Presign(context.Background(), v.vend(testThing), b.Host(), b.Region(), time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var client clientCount
	d := websocket.Dialer{NetDialContext: client.dial, TLSClientConfig: &tls.Config{RootCAs: b.ServerCA()}, Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := wsconn.New(ws, wsconn.Options{})
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	exchange := func(send, want []byte) {
		t.Helper()
		if _, err := conn.Write(send); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("answer to % x: % x, want % x", send, got, want)
		}
	}
	exchange(mqttConnect(testThing), []byte{0x20, 2, 0, 0}) // CONNACK accepted
	for range 3 {
		exchange([]byte{0xC0, 0}, []byte{0xD0, 0}) // PINGREQ, PINGRESP
	}

	// The broker has read and answered everything the client sent, and
	// the client has read every answer: the counts are exact.
	got := wire.Snapshot()[WireEventLink]
	if want := map[string]int64{"Connect": 1, "Pingreq": 3}; !cmp.Equal(got.PacketsIn, want) {
		t.Errorf("packets in: %v, want %v", got.PacketsIn, want)
	}
	if want := map[string]int64{"Connack": 1, "Pingresp": 3}; !cmp.Equal(got.PacketsOut, want) {
		t.Errorf("packets out: %v, want %v", got.PacketsOut, want)
	}
	if in, out := got.Messages(); in != 4 || out != 4 {
		t.Errorf("messages in, out: %d, %d; want 4, 4", in, out)
	}
	if got.Conns != 1 || got.BytesIn != client.written.Load() || got.BytesOut != client.read.Load() {
		t.Errorf("conns %d, bytes in %d, out %d; want 1, %d (client wrote), %d (client read)",
			got.Conns, got.BytesIn, got.BytesOut, client.written.Load(), client.read.Load())
	}
	if got.Exchanges != nil {
		t.Errorf("exchanges on the broker: %v, want none tracked", got.Exchanges)
	}
	// Each of the client's seven flights (TLS, upgrade, CONNECT, PINGREQs)
	// is at least one segment.
	if runtime.GOOS == "linux" && (got.SegsIn < 7 || got.SegsOut < 7) {
		t.Errorf("segments in %d, out %d: want at least 7 each way", got.SegsIn, got.SegsOut)
	}
}

// TestWireCounterHTTP: each request is counted under the pattern its
// route matched, with the bytes from its first byte to its response's
// last; the TLS handshake goes to WireNoRequest; a closed connection's
// counts stay in the totals.
func TestWireCounterHTTP(t *testing.T) {
	wire := NewWireCounter()
	s := newTestMender(t, MenderOptions{Wire: wire})
	var client clientCount
	pool := x509.NewCertPool()
	pool.AddCert(s.opts.CA.Cert)
	tr := &http.Transport{DialContext: client.dial, TLSClientConfig: &tls.Config{RootCAs: pool}}
	hc := &http.Client{Transport: tr}
	const next = "/api/devices/v1/deployments/device/deployments/next"
	type mark struct{ in, out int64 } // the server's view: client written, read
	var marks []mark
	for _, path := range []string{next, next, "/no/such/route"} {
		resp, err := hc.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		marks = append(marks, mark{client.written.Load(), client.read.Load()})
	}
	got := wire.Snapshot()[WireUpdateChannel]
	nextEP := "GET " + next
	if got.Conns != 1 || got.BytesIn != client.written.Load() || got.BytesOut != client.read.Load() {
		t.Errorf("conns %d, bytes in %d, out %d; want 1, %d, %d", got.Conns, got.BytesIn, got.BytesOut, client.written.Load(), client.read.Load())
	}
	// The first request's exchange also holds the client's last
	// handshake flight (sent with it); the second and third are exact.
	second := WireExchange{Count: 1, BytesIn: marks[1].in - marks[0].in, BytesOut: marks[1].out - marks[0].out}
	third := WireExchange{Count: 1, BytesIn: marks[2].in - marks[1].in, BytesOut: marks[2].out - marks[1].out}
	if x := got.Exchanges[nextEP]; x.Count != 2 || x.BytesIn < 2*second.BytesIn || x.BytesOut < second.BytesOut {
		t.Errorf("exchanges of %s: %+v, want 2 and at least twice %+v", nextEP, x, second)
	}
	if x := got.Exchanges["GET (no route)"]; x != third {
		t.Errorf("unrouted exchange: %+v, want %+v", x, third)
	}
	var sumIn, sumOut int64
	for _, x := range got.Exchanges {
		sumIn += x.BytesIn
		sumOut += x.BytesOut
	}
	if sumIn != got.BytesIn || sumOut != got.BytesOut || got.Exchanges[WireNoRequest].BytesOut == 0 {
		t.Errorf("exchanges sum to %d in, %d out, want %d, %d with the handshake's in %q: %v", sumIn, sumOut, got.BytesIn, got.BytesOut, WireNoRequest, got.Exchanges)
	}
	if in, out := got.Messages(); in != 3 || out != 3 {
		t.Errorf("messages in, out: %d, %d; want 3, 3", in, out)
	}

	// Closed: its counts move into the totals, nothing is lost.
	tr.CloseIdleConnections()
	testkit.WaitFor(t, "the server to close the connection", func() bool {
		wire.mu.Lock()
		defer wire.mu.Unlock()
		return len(wire.open) == 0
	})
	after := wire.Snapshot()[WireUpdateChannel]
	if after.Conns != 1 || after.BytesIn != client.written.Load() || after.BytesOut < got.BytesOut || after.Exchanges[nextEP] != got.Exchanges[nextEP] {
		t.Errorf("after close: %+v, want the counts of %+v and the client's close_notify (%d bytes written in all)", after, got, client.written.Load())
	}

	// Forgotten: a connection open at Forget counts no further, nor
	// what it counted before.
	other := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer other.CloseIdleConnections()
	for i := range 2 {
		if i == 1 {
			wire.Forget()
		}
		resp, err := other.Get(s.URL() + next)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if diff := cmp.Diff(after, wire.Snapshot()[WireUpdateChannel]); diff != "" {
		t.Errorf("a forgotten connection counted (-before +after):\n%s", diff)
	}
}

// TestWireCounterNil: servers without a counter are not wrapped.
func TestWireCounterNil(t *testing.T) {
	var w *WireCounter
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := w.listener(WireEventLink, ln, false); got != ln {
		t.Errorf("nil counter wrapped the listener: %T", got)
	}
	if w.hook(WireEventLink) != nil {
		t.Error("nil counter made a hook")
	}
}

// TestWireCounterLingeringHandler: a handler that sends its response and
// lingers while the client's next request comes in still gets its own
// exchange, and the next request its own.
func TestWireCounterLingeringHandler(t *testing.T) {
	wire := NewWireCounter()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /linger", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-release
	})
	mux.HandleFunc("GET /next", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "second") })
	srv := &http.Server{Handler: wire.handler(mux)}
	go srv.Serve(wire.listener("test", tcp, true))
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func(path string) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+tcp.Addr().String()+path, nil)
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		return req
	}
	read := func(req *http.Request, want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("body %q, want %q", body, want)
		}
	}
	first := get("/linger")
	// The flushed head and the body's first chunk; the chunked body ends
	// only when the handler returns.
	resp, err := http.ReadResponse(br, first)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, len("first"))
	if _, err := io.ReadFull(resp.Body, chunk); err != nil {
		t.Fatal(err)
	}
	before := wire.Snapshot()["test"].BytesIn
	second := get("/next")
	testkit.WaitFor(t, "the server to read into the second request", func() bool {
		return wire.Snapshot()["test"].BytesIn > before
	})
	close(release)
	io.ReadAll(resp.Body)
	resp.Body.Close()
	read(second, "second")

	got := wire.Snapshot()["test"]
	if got.Exchanges["GET /linger"].Count != 1 || got.Exchanges["GET /next"].Count != 1 {
		t.Errorf("exchanges %v: want GET /linger and GET /next once each", got.Exchanges)
	}
	if x := got.Exchanges["GET /linger"]; x.BytesIn != before {
		t.Errorf("GET /linger read %d bytes, want %d (its request only)", x.BytesIn, before)
	}
}
