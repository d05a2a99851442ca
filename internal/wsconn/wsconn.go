// Package wsconn carries a byte stream over binary WebSocket messages as a
// net.Conn: MQTT over WebSocket, for the IoT link's client side and for
// devcloud's broker. Writes are binary messages; reads join messages into
// one stream, since an MQTT packet may span messages and a message may
// hold several packets (MQTT 3.1.1 §6).
package wsconn

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrNotBinary ends reading when the peer sends a text message, unless
// Options.SkipNonBinary is set: MQTT travels in binary messages only, and
// MQTT 3.1.1 §6 has the recipient close the connection on any other.
var ErrNotBinary = errors.New("websocket: MQTT needs binary messages")

// closeWait bounds how long Close tries to send its close message.
const closeWait = time.Second

// Options tunes a Conn. The zero value follows MQTT 3.1.1 §6 strictly.
type Options struct {
	// SkipNonBinary makes Read skip text messages instead of failing with
	// ErrNotBinary.
	SkipNonBinary bool
}

// Conn is a net.Conn over a *websocket.Conn. One goroutine may read while
// others write, close or set deadlines, as net.Conn allows: writes are
// serialised here because gorilla allows one writer at a time (paho's
// writer and its keep-alive may both write).
type Conn struct {
	ws   *websocket.Conn
	opts Options

	r io.Reader // the rest of the current message; only the reader touches it

	wmu sync.Mutex // serialises writes, and with them gorilla's write deadline
	// wdl is the write deadline in Unix nanoseconds, zero for none. gorilla
	// applies the deadline it holds on each write, so Write hands it over
	// under wmu; SetWriteDeadline stores it here without waiting for a
	// write in progress.
	wdl atomic.Int64
}

// New wraps ws, an upgraded or dialled WebSocket connection.
func New(ws *websocket.Conn, opts Options) *Conn {
	return &Conn{ws: ws, opts: opts}
}

// Read reads from the current binary message, moving on to the next when
// it ends. A close message from the peer reads as io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				if c.opts.SkipNonBinary {
					continue
				}
				return 0, ErrNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var dl time.Time
	if ns := c.wdl.Load(); ns != 0 {
		dl = time.Unix(0, ns)
	}
	c.ws.SetWriteDeadline(dl) // never fails
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close tells the peer, without waiting for its close message, and closes
// the connection. It may run beside a blocked Write, which it then ends.
func (c *Conn) Close() error {
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeWait))
	return c.ws.Close()
}

// LocalAddr is the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr is the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline on the network connection; it
// may run beside a Read (mochi refreshes it from its read loop).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of later writes and of one in
// progress.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.wdl.Store(ns)
	return c.ws.NetConn().SetWriteDeadline(t)
}

var _ net.Conn = (*Conn)(nil)
