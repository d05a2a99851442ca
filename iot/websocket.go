package iot

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/edgefort/edgefort/internal/wsconn"
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
