package iot

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/edgefort/edgefort/internal/wsconn"
)

// An MQTT link is idle most of its life (a keep-alive a minute), so its
// WebSocket holds as little as it can between packets. Its read buffer
// holds frame headers and small packets: the TLS connection below keeps a
// decrypted record of its own, and a read larger than the buffer bypasses
// it. Its write buffer is lent for one message at a time from a pool that
// every connection of the process shares (gorilla's WriteBufferPool),
// instead of 4 KiB held by each connection for its lifetime.
const wsReadBuffer = 1024

var wsWriteBuffers sync.Pool

// DialWebSocket is the default DialFunc: a gorilla/websocket client that
// offers subprotocol "mqtt" and returns the connection as a net.Conn whose
// writes are binary frames and whose reads join frames into one stream (an
// MQTT packet may span frames, and a frame may hold several packets).
func DialWebSocket(ctx context.Context, url string, tlsCfg *tls.Config) (net.Conn, error) {
	d := websocket.Dialer{
		// No TCP keep-alive: the MQTT keep-alive checks the connection
		// and keeps NATs from forgetting it. Go's default on top (a probe
		// after 15 s idle, then every 15 s) put about 240 probes and as
		// many ACKs an hour on an idle link, ten times the segments of
		// the 5-minute MQTT pings (docs/benchmarks.md, "Idle cost per
		// node").
		NetDialContext:   (&net.Dialer{KeepAlive: -1}).DialContext,
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  tlsCfg, // gorilla clones it and sets ServerName (SNI) from the URL
		HandshakeTimeout: DefaultConnectTimeout,
		Subprotocols:     []string{"mqtt"},
		ReadBufferSize:   wsReadBuffer,
		WriteBufferPool:  &wsWriteBuffers,
	}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			// The broker refused the upgrade (AWS: 403 on a bad
			// signature; 429 or 503 when it sheds load).
			if throttledStatus(resp.StatusCode) {
				return nil, fmt.Errorf("websocket upgrade: %s: %w: %w", resp.Status, ErrThrottled, err)
			}
			return nil, fmt.Errorf("websocket upgrade: %s: %w", resp.Status, err)
		}
		return nil, fmt.Errorf("websocket dial: %w", err)
	}
	// Text frames are skipped rather than refused, as the link always has.
	return wsconn.New(ws, wsconn.Options{SkipNonBinary: true}), nil
}
