package iot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// DialWebSocket is the default DialFunc: a gorilla/websocket client that
// offers subprotocol "mqtt" and returns the connection as a net.Conn whose
// writes are binary frames and whose reads join frames into one stream (an
// MQTT packet may span frames, and a frame may hold several packets).
func DialWebSocket(ctx context.Context, url string, tlsCfg *tls.Config) (net.Conn, error) {
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  tlsCfg, // gorilla clones it and sets ServerName (SNI) from the URL
		HandshakeTimeout: DefaultConnectTimeout,
		Subprotocols:     []string{"mqtt"},
	}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			// The broker refused the upgrade (AWS: 403 on a bad signature).
			return nil, fmt.Errorf("websocket upgrade: %s: %w", resp.Status, err)
		}
		return nil, fmt.Errorf("websocket dial: %w", err)
	}
	return &wsConn{ws: ws}, nil
}

// wsConn adapts a *websocket.Conn to net.Conn. paho reads from one
// goroutine; writes are serialised by wmu because paho's writer and its
// keep-alive may both write.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader // the rest of the current frame; only the reader touches it

	wmu sync.Mutex // serialises writes
}

func (c *wsConn) Read(p []byte) (int, error) {
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
				continue // MQTT travels in binary frames only; ignore others
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

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	// Best effort: tell the peer, without waiting for its close frame.
	// WriteControl may run beside a blocked Write, which Close then ends.
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

var _ net.Conn = (*wsConn)(nil)
