package devstack

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"
)

// Limits of the WebSocket client (`edgefort-dev ws`).
const (
	// maxWSMessage bounds one message read: the engine's hello is well
	// under 4 KiB and it echoes at most maxEchoMessage.
	maxWSMessage = maxEchoMessage
	// maxRefusalBody is how much of a refused handshake's body is kept.
	maxRefusalBody = 4 << 10
	// wsHandshakeTimeout bounds the TLS and HTTP upgrade handshake.
	wsHandshakeTimeout = 15 * time.Second
)

// RefusedError is a WebSocket handshake the server answered with an HTTP
// status instead of switching protocols (401 without a valid token, 403
// when the policy denies).
type RefusedError struct {
	Status string // "403 Forbidden"
	Code   int
	Body   string // at most maxRefusalBody bytes
}

func (e *RefusedError) Error() string {
	if e.Body == "" {
		return "refused: " + e.Status
	}
	return fmt.Sprintf("refused: %s: %s", e.Status, e.Body)
}

// WSOptions configure DialWS.
type WSOptions struct {
	// URL is wss:// (or ws://; https:// and http:// are accepted for
	// them). Required.
	URL string
	// Token is sent as Authorization: Bearer. Empty: none.
	Token string
	// RootCAs verify the server (the dev CA). Nil: the system's roots.
	RootCAs *x509.CertPool
}

// WSSession is an open WebSocket, its first message already read.
type WSSession struct {
	conn *websocket.Conn
	// Hello is the first message the server sent (the engine's identity
	// hello), as received.
	Hello []byte
}

// DialWS opens a WebSocket to opts.URL and reads the server's first
// message. A handshake answered with an HTTP status is a *RefusedError.
func DialWS(ctx context.Context, opts WSOptions) (*WSSession, error) {
	u, err := wsURL(opts.URL)
	if err != nil {
		return nil, err
	}
	d := websocket.Dialer{
		TLSClientConfig:  &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs},
		HandshakeTimeout: wsHandshakeTimeout,
		Proxy:            http.ProxyFromEnvironment,
	}
	h := http.Header{}
	if opts.Token != "" {
		h.Set("Authorization", "Bearer "+opts.Token)
	}
	conn, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody))
			return nil, &RefusedError{Status: resp.Status, Code: resp.StatusCode, Body: string(bytes.TrimSpace(body))}
		}
		return nil, fmt.Errorf("connect to %s: %w", u, err)
	}
	conn.SetReadLimit(maxWSMessage)
	s := &WSSession{conn: conn}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, s.Hello, err = conn.ReadMessage(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read the hello from %s: %w", u, err)
	}
	return s, nil
}

// wsURL checks u and turns https/http into wss/ws.
func wsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("URL %q: want wss://HOST/PATH", raw)
	}
	switch u.Scheme {
	case "wss", "ws":
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	default:
		return "", fmt.Errorf("URL %q: scheme %q, want wss (or ws)", raw, u.Scheme)
	}
	return u.String(), nil
}

// ErrEchoMismatch is an echo that differs from what was sent.
var ErrEchoMismatch = errors.New("the echo differs from the message sent")

// Echo sends msg as a text message and returns the next message
// received, which an echo server makes equal to msg (else
// ErrEchoMismatch, with the reply returned).
func (s *WSSession) Echo(ctx context.Context, msg []byte) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	if err := s.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	_, reply, err := s.conn.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("read the echo: %w", err)
	}
	if !bytes.Equal(reply, msg) {
		return reply, ErrEchoMismatch
	}
	return reply, nil
}

// Close says goodbye (a close frame) and closes the connection.
func (s *WSSession) Close() error {
	s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return s.conn.Close()
}

// HelloUser is the user the engine's hello says the upgrade request
// carried (its X-Edgefort-User header), and the verified identity JWT's
// sub ("" when it carried none or it was not verified).
func (s *WSSession) HelloUser() (header, sub string, err error) {
	var h struct {
		Identity received `json:"identity"`
	}
	if err := json.Unmarshal(s.Hello, &h); err != nil {
		return "", "", fmt.Errorf("hello is not the engine's JSON: %w", err)
	}
	if j := h.Identity.JWT; j != nil && j.Verified {
		sub, _ = j.Claims["sub"].(string)
	}
	return h.Identity.Headers.User, sub, nil
}
