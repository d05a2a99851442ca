package devcloud

import (
	"bytes"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// This file counts what crosses devcloud's listeners, for the idle-cost
// benchmark (scripts/bench/idlecost): TCP connections, the bytes read and
// written on them (TCP payload, so TLS records and everything under
// them), the TCP segments the kernel sent and received on them (Linux),
// HTTP requests per endpoint with the bytes of each exchange, and MQTT
// control packets each way. The servers take a *WireCounter in their
// options (nil: nothing is counted, nothing is wrapped).

// The links a WireCounter names, one per devcloud server.
const (
	WireEventLink     = "event link"     // the broker
	WireUpdateChannel = "update channel" // the Mender server
	WireCloudCalls    = "cloud calls"    // the control plane
)

// WireNoRequest is the exchange label of bytes no HTTP request accounts
// for: the TLS handshake, session tickets, alerts such as close_notify.
const WireNoRequest = "(no request: TLS handshake, tickets, alerts)"

// WireStats is what one link's listener saw.
type WireStats struct {
	// Conns is the number of TCP connections accepted.
	Conns int64
	// BytesIn and BytesOut are the TCP payload bytes read from and
	// written to the clients: TLS records with the HTTP, WebSocket and
	// MQTT under them. TCP/IP headers are not in them.
	BytesIn, BytesOut int64
	// SegsIn and SegsOut are the TCP segments the kernel received and
	// sent (TCP_INFO): data, the three-way handshake, ACKs and TCP
	// keep-alive probes, each way. Zero where the platform has no
	// TCP_INFO.
	SegsIn, SegsOut int64
	// Exchanges are the HTTP request/response exchanges by endpoint
	// ("METHOD /pattern"), each with the bytes from its request's first
	// byte to its response's last; WireNoRequest gathers the rest. Nil
	// for a link that does not track exchanges (the broker, whose
	// connections are upgraded to WebSocket).
	Exchanges map[string]WireExchange
	// PacketsIn and PacketsOut count MQTT control packets from and to
	// clients by type (CONNECT, PINGREQ, ...); nil but for the broker.
	PacketsIn, PacketsOut map[string]int64
}

// WireExchange counts the exchanges of one endpoint.
type WireExchange struct{ Count, BytesIn, BytesOut int64 }

// Messages is the number of MQTT control packets and HTTP requests from
// the clients (in) and of those and HTTP responses to them (out).
func (s WireStats) Messages() (in, out int64) {
	for _, n := range s.PacketsIn {
		in += n
	}
	for _, n := range s.PacketsOut {
		out += n
	}
	for ep, x := range s.Exchanges {
		if ep != WireNoRequest {
			in += x.Count
			out += x.Count
		}
	}
	return in, out
}

// WireCounter counts the traffic of the servers it is given to; safe for
// concurrent use. The zero value is not usable: use NewWireCounter.
type WireCounter struct {
	mu       sync.Mutex             // guards the fields below and every wireConn's counters
	links    map[string]*WireStats  // totals of closed connections, and packets
	open     map[*wireConn]struct{} // connections not yet closed
	byRemote map[string]*wireConn   // open connections by remote address, to label exchanges
}

// NewWireCounter returns a counter with nothing counted.
func NewWireCounter() *WireCounter {
	return &WireCounter{links: map[string]*WireStats{}, open: map[*wireConn]struct{}{}, byRemote: map[string]*wireConn{}}
}

// Snapshot returns each link's counts so far, open connections included.
func (w *WireCounter) Snapshot() map[string]WireStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]WireStats, len(w.links))
	for name, s := range w.links {
		c := *s
		c.Exchanges = maps.Clone(s.Exchanges) // nil stays nil
		c.PacketsIn, c.PacketsOut = maps.Clone(s.PacketsIn), maps.Clone(s.PacketsOut)
		out[name] = c
	}
	for c := range w.open {
		s := out[c.link]
		c.addToLocked(&s, true)
		out[c.link] = s
	}
	return out
}

// Forget stops counting the connections open now, and drops what they
// counted so far: what a measurement starts from when the set-up left
// connections open that are not the measured node's (devstack enrolls
// the node from its own process, whose client keeps the connection).
// MQTT packets are counted per link, not per connection: those already
// counted stay.
func (w *WireCounter) Forget() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.open {
		c.forgotten = true
		delete(w.open, c)
		if w.byRemote[c.remote] == c {
			delete(w.byRemote, c.remote)
		}
		w.links[c.link].Conns--
	}
}

// linkLocked returns the totals of link, made on first use.
func (w *WireCounter) linkLocked(link string, exchanges bool) *WireStats {
	s := w.links[link]
	if s == nil {
		s = &WireStats{}
		w.links[link] = s
	}
	if exchanges && s.Exchanges == nil {
		s.Exchanges = map[string]WireExchange{}
	}
	return s
}

// listener wraps ln so that its connections are counted under link;
// exchanges says whether they carry HTTP/1.1 exchanges to tell apart. A
// nil counter returns ln.
func (w *WireCounter) listener(link string, ln net.Listener, exchanges bool) net.Listener {
	if w == nil {
		return ln
	}
	w.mu.Lock()
	w.linkLocked(link, exchanges)
	w.mu.Unlock()
	return &wireListener{Listener: ln, w: w, link: link, exchanges: exchanges}
}

// handler labels each request's exchange with its endpoint, the pattern
// the ServeMux under h matched (set on the request as it is routed). A nil
// counter returns h.
func (w *WireCounter) handler(h http.Handler) http.Handler {
	if w == nil {
		return h
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		// The request's exchange is the connection's current one now,
		// when its head has been read; the pattern is known only once
		// routed, and by then the response may be out and the next
		// request in (a handler that flushes, then lingers).
		w.mu.Lock()
		var ex *wireExchange
		if c := w.byRemote[r.RemoteAddr]; c != nil && c.cur != nil {
			ex = c.cur
			ex.claimed = true
		}
		w.mu.Unlock()
		h.ServeHTTP(rw, r)
		if ex == nil {
			return
		}
		ep := r.Pattern
		switch {
		case ep == "":
			ep = r.Method + " (no route)"
		case !strings.Contains(ep, " "):
			ep = r.Method + " " + ep
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		ex.label = ep
		if ex.ended && !ex.c.forgotten {
			ex.c.foldLocked(ex)
		}
	})
}

type wireListener struct {
	net.Listener
	w         *WireCounter
	link      string
	exchanges bool
}

func (l *wireListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// Go turns TCP keep-alive on for accepted connections (15 s); off
	// here, the segments counted on an idle connection are the client's
	// doing, not devcloud's (a real endpoint's keep-alive is its own).
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAlive(false)
	}
	wc := &wireConn{Conn: c, w: l.w, link: l.link, exchanges: l.exchanges, remote: c.RemoteAddr().String()}
	l.w.mu.Lock()
	l.w.linkLocked(l.link, l.exchanges).Conns++
	l.w.open[wc] = struct{}{}
	l.w.byRemote[wc.remote] = wc
	l.w.mu.Unlock()
	return wc, nil
}

// wireConn counts one connection. An HTTP/1.1 exchange is a run of reads
// (the request) followed by a run of writes (the response): the first
// read after a write starts the next one.
type wireConn struct {
	net.Conn
	w         *WireCounter
	link      string
	exchanges bool
	remote    string

	// Guarded by w.mu.
	in, out int64
	cur     *wireExchange           // the exchange under way; nil before the first byte
	done    map[string]WireExchange // ended exchanges, into the totals at close
	closed  bool
	// forgotten: Forget dropped it; nothing more is counted.
	forgotten bool
}

// wireExchange is one exchange on a connection, guarded by w.mu. A
// handler that claimed it labels it when done, and adds it to the totals
// if it has ended by then; otherwise it is added when it ends.
type wireExchange struct {
	c                     *wireConn
	in, out               int64
	wrote, claimed, ended bool
	label                 string // empty: WireNoRequest
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.w.mu.Lock()
		if c.forgotten {
			c.w.mu.Unlock()
			return n, err
		}
		if c.cur != nil && c.cur.wrote {
			c.endLocked()
		}
		c.currentLocked().in += int64(n)
		c.in += int64(n)
		c.w.mu.Unlock()
	}
	return n, err
}

func (c *wireConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.w.mu.Lock()
		if c.forgotten {
			c.w.mu.Unlock()
			return n, err
		}
		ex := c.currentLocked()
		ex.out += int64(n)
		ex.wrote = true
		c.out += int64(n)
		c.w.mu.Unlock()
	}
	return n, err
}

func (c *wireConn) currentLocked() *wireExchange {
	if c.cur == nil {
		c.cur = &wireExchange{c: c}
	}
	return c.cur
}

// endLocked ends the current exchange: into the totals, unless a handler
// still has to label it.
func (c *wireConn) endLocked() {
	ex := c.cur
	c.cur = nil
	if ex == nil || !c.exchanges {
		return
	}
	ex.ended = true
	if !ex.claimed || ex.label != "" {
		c.foldLocked(ex)
	}
}

// foldLocked adds an ended exchange to the connection's, or to the
// link's totals once the connection is closed.
func (c *wireConn) foldLocked(ex *wireExchange) {
	if c.closed {
		addExchange(c.w.links[c.link].Exchanges, ex)
		return
	}
	if c.done == nil {
		c.done = map[string]WireExchange{}
	}
	addExchange(c.done, ex)
}

func addExchange(m map[string]WireExchange, ex *wireExchange) {
	label := ex.label
	if label == "" {
		label = WireNoRequest
	}
	x := m[label]
	if label != WireNoRequest {
		x.Count++
	}
	x.BytesIn += ex.in
	x.BytesOut += ex.out
	m[label] = x
}

// addToLocked adds the connection's counts to s; live adds the exchange
// under way too (a snapshot), as it stands.
func (c *wireConn) addToLocked(s *WireStats, live bool) {
	s.BytesIn += c.in
	s.BytesOut += c.out
	if in, out, ok := tcpSegments(c.Conn); ok {
		s.SegsIn += in
		s.SegsOut += out
	}
	if !c.exchanges {
		return
	}
	for label, x := range c.done {
		y := s.Exchanges[label]
		s.Exchanges[label] = WireExchange{Count: x.Count + y.Count, BytesIn: x.BytesIn + y.BytesIn, BytesOut: x.BytesOut + y.BytesOut}
	}
	if live && c.cur != nil {
		addExchange(s.Exchanges, c.cur)
	}
}

// Close folds the connection into its link's totals, its segment counts
// read from the kernel before the socket goes.
func (c *wireConn) Close() error {
	c.w.mu.Lock()
	if !c.closed && !c.forgotten {
		c.endLocked()
		c.closed = true
		c.addToLocked(c.w.links[c.link], false)
		delete(c.w.open, c)
		if c.w.byRemote[c.remote] == c {
			delete(c.w.byRemote, c.remote)
		}
	}
	c.w.mu.Unlock()
	return c.Conn.Close()
}

// packetHook counts the broker's MQTT control packets to and from network
// clients (not the broker's own inline client, whose packets never cross
// a socket).
type packetHook struct {
	mqtt.HookBase
	w    *WireCounter
	link string
}

func (h *packetHook) ID() string { return "edgefort-wirecount" }

func (h *packetHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPacketRead, mqtt.OnPacketSent}, []byte{b})
}

func (h *packetHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !cl.Net.Inline {
		h.count(pk, true)
	}
	return pk, nil
}

func (h *packetHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if !cl.Net.Inline {
		h.count(pk, false)
	}
}

func (h *packetHook) count(pk packets.Packet, in bool) {
	name := packets.PacketNames[pk.FixedHeader.Type]
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	s := h.w.linkLocked(h.link, false)
	m := &s.PacketsOut
	if in {
		m = &s.PacketsIn
	}
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[name]++
}

// hook returns the broker hook that counts packets under link; nil for a
// nil counter.
func (w *WireCounter) hook(link string) mqtt.Hook {
	if w == nil {
		return nil
	}
	return &packetHook{w: w, link: link}
}
