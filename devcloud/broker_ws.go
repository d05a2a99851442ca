package devcloud

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/edgefort/edgefort/internal/wsconn"
	"github.com/edgefort/edgefort/iot/sigv4"
)

// mochi's own WebSocket listener upgrades every request and never shows
// the HTTP request to its hooks, so the broker brings its own listener: an
// http.Server on the TLS listener that checks SigV4 before upgrading and
// hands mochi the upgraded connection, tagged with the thing the
// credentials belong to, through the listener's EstablishFn.

const brokerListenerID = "sigv4-wss"

// wsListener is a mochi listeners.Listener serving GET /mqtt.
type wsListener struct {
	b        *Broker
	ln       net.Listener // TLS
	srv      *http.Server
	upgrader websocket.Upgrader
	log      *slog.Logger

	establish listeners.EstablishFn // set by Serve before the server runs
	served    chan struct{}         // closed when Serve returned
	conns     sync.WaitGroup        // connection goroutines after upgrade
	closeOnce sync.Once
}

func newWSListener(b *Broker, ln net.Listener) *wsListener {
	l := &wsListener{
		b:      b,
		ln:     ln,
		log:    b.log,
		served: make(chan struct{}),
		upgrader: websocket.Upgrader{
			Subprotocols:      []string{"mqtt"},
			HandshakeTimeout:  10 * time.Second,
			EnableCompression: false,
			// Devices are not browsers; AWS IoT does not check Origin.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", l.handle)
	if b.opts.ManagementToken != "" {
		mux.Handle("/api/management/dev/", b.requireManagementToken(b.manage))
	}
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	return l
}

func (l *wsListener) ID() string       { return brokerListenerID }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "wss" }

// Init takes mochi's logger for the listener.
func (l *wsListener) Init(log *slog.Logger) error {
	if log != nil {
		l.log = log
	}
	return nil
}

// Serve serves HTTP until Close; mochi runs it on its own goroutine.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	l.establish = establish
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("broker listener stopped", "error", err)
	}
}

// Close stops accepting and lets mochi disconnect the clients.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.shutdown()
	closeClients(l.ID())
}

func (l *wsListener) shutdown() {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.srv.Shutdown(ctx)
		l.ln.Close()
	})
}

// wait waits for Serve and every upgraded connection to end.
func (l *wsListener) wait() {
	<-l.served
	l.conns.Wait()
}

// handle verifies the presigned request, upgrades it, and runs the MQTT
// connection on this goroutine until it ends.
func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	b := l.b
	if b.refuse.Load() {
		b.stats.refuse(RefusedFault)
		l.log.Info("broker refused connection", "remote", r.RemoteAddr, "reason", RefusedFault)
		http.Error(w, "service unavailable (injected)", http.StatusServiceUnavailable)
		return
	}
	var thing string
	lookup := func(accessKeyID string) (string, string, bool) {
		secret, token, th, ok := b.opts.Lookup(accessKeyID)
		thing = th
		return secret, token, ok
	}
	akid, err := sigv4.Verify(r.Context(), r, "", b.opts.Region, lookup, b.now())
	if err != nil {
		reason := refusalFor(err)
		b.stats.refuse(reason)
		l.log.Info("broker refused connection", "remote", r.RemoteAddr, "reason", reason, "error", err)
		http.Error(w, "forbidden: "+string(reason), http.StatusForbidden)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		b.stats.refuse(RefusedMalformed)
		l.log.Info("broker refused connection", "remote", r.RemoteAddr, "reason", RefusedMalformed, "error", "not a WebSocket upgrade")
		http.Error(w, "WebSocket upgrade required", http.StatusBadRequest)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil) // answers the client itself on error
	if err != nil {
		b.stats.refuse(RefusedMalformed)
		l.log.Info("broker refused connection", "remote", r.RemoteAddr, "reason", RefusedMalformed, "error", err)
		return
	}
	b.stats.upgrades.Add(1)
	l.log.Debug("broker upgraded connection", "remote", r.RemoteAddr, "thing", thing, "access_key_id", akid)
	l.conns.Add(1)
	defer l.conns.Done()
	c := &wsConn{Conn: wsconn.New(ws, wsconn.Options{}), thing: thing, accessKeyID: akid}
	defer c.Close()
	c.SetDeadline(time.Now().Add(brokerConnectTimeout)) // mochi sets keep-alive deadlines after CONNECT
	if err := l.establish(l.ID(), c); err != nil && !errors.Is(err, io.EOF) {
		l.log.Debug("broker connection ended", "thing", thing, "error", err)
	}
}

// refusalFor maps a sigv4.Verify error to its reason.
func refusalFor(err error) BrokerRefusal {
	switch {
	case errors.Is(err, sigv4.ErrExpired):
		return RefusedExpired
	case errors.Is(err, sigv4.ErrClockSkew):
		return RefusedClockSkew
	case errors.Is(err, sigv4.ErrUnknownKey):
		return RefusedUnknownKey
	case errors.Is(err, sigv4.ErrBadToken):
		return RefusedBadToken
	case errors.Is(err, sigv4.ErrBadSignature):
		return RefusedBadSignature
	}
	return RefusedMalformed
}

// wsConn is an MQTT connection over WebSocket and the identity its
// upgrade was signed with, which the broker's hooks read.
type wsConn struct {
	*wsconn.Conn
	thing       string // the thing the signing credentials were vended to
	accessKeyID string
}

var (
	_ listeners.Listener = (*wsListener)(nil)
	_ net.Conn           = (*wsConn)(nil)
)

// BrokerPublishRequest is the body of the management publish call.
type BrokerPublishRequest struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
	QoS     byte            `json:"qos"`
}

// requireManagementToken serves h to callers presenting the management
// token.
func (b *Broker) requireManagementToken(h http.Handler) http.Handler {
	want := []byte("Bearer " + b.opts.ManagementToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, "management token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (b *Broker) handlePublish(w http.ResponseWriter, r *http.Request) {
	var req BrokerPublishRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 256<<10)).Decode(&req); err != nil || req.Topic == "" || req.QoS > 1 {
		http.Error(w, "want {\"topic\": ..., \"payload\": ..., \"qos\": 0|1}", http.StatusBadRequest)
		return
	}
	if err := b.Publish(req.Topic, req.Payload, req.QoS); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
