package devstack

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The engine stand-in's request log, under the state directory.
const (
	EngineDir = "dev-engine"
	EngineLog = "requests.jsonl"
)

// engine stands in for the local engine, the backend of the dev virtual
// host and the target of cloud events.
//
// Webhooks: it answers every POST with {"reloaded": true} and appends the
// request to <state>/dev-engine/requests.jsonl, where the demo (and a
// developer) can see that a cloud event reached it. As a real target
// should, it applies each Idempotency-Key once: a webhook sent again after
// an agent crash is answered the same but logged with "duplicate": true.
//
// Demo backend (engine_api.go): a page, a JSON API and a WebSocket echo
// that show the identity each request brought (the node's identity
// headers, its identity JWT verified against the node's JWKS, the
// forwarding headers), and a download of any size generated on the fly.
type engine struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	opts engineOptions
	// jwks is the node's JWK Set: nil until a URL is known (opts.JWKSURL
	// or SetJWKSURL), swapped whole, so requests in flight need no lock.
	jwks atomic.Pointer[jwksCache]
	// seq counts the API requests received (received.Seq).
	seq atomic.Int64

	mu      sync.Mutex               // guards closed and sockets
	closed  bool                     // Close has begun: no new request is served
	sockets map[*websocket.Conn]bool // open WebSocket echoes, closed by Close
	running sync.WaitGroup           // requests being served, WebSockets included
}

// engineOptions are the demo backend's settings. The zero value serves
// everything but verifies no identity JWT (it reports it unverified).
type engineOptions struct {
	// JWKSURL is the node's JWK Set (https), fetched at the first token
	// and again when a token names a kid it does not hold. Empty: none
	// until SetJWKSURL (the engine starts before the agent binds the hub).
	JWKSURL string
	// RootCAs verifies the node's certificate (the dev CA). Nil: the
	// system's roots.
	RootCAs *x509.CertPool
	// Issuer and Audience, when set, are required of the token's iss and
	// aud.
	Issuer, Audience string
	// IdentityHeader carries the JWT. Default X-Edgefort-Identity.
	IdentityHeader string
}

func startEngine(dir string) (*engine, error) { return startEngineWith(dir, engineOptions{}) }

// startEngineWith starts the engine on a loopback port with opts.
func startEngineWith(dir string, opts engineOptions) (*engine, error) {
	if opts.IdentityHeader == "" {
		opts.IdentityHeader = "X-Edgefort-Identity"
	}
	e := &engine{done: make(chan struct{}), opts: opts, sockets: map[*websocket.Conn]bool{}}
	if opts.JWKSURL != "" {
		if err := e.SetJWKSURL(opts.JWKSURL); err != nil {
			return nil, err
		}
	}
	logDir := filepath.Join(dir, EngineDir)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex            // guards the log file and applied
	applied := map[string]bool{} // Idempotency-Keys seen
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		defer mu.Unlock()
		dup := key != "" && applied[key]
		applied[key] = true
		line, _ := json.Marshal(map[string]any{
			"time": time.Now().UTC(), "path": r.URL.Path, "event_id": key, "duplicate": dup,
			"event_type": r.Header.Get("X-Edgefort-Event"), "body": json.RawMessage(orEmptyJSON(body)),
		})
		f, err := os.OpenFile(filepath.Join(logDir, EngineLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			f.Write(append(line, '\n'))
			f.Close()
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"reloaded":true}`)
	})
	e.ln = ln
	e.routes(mux)
	e.srv = &http.Server{Handler: e.track(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(e.done)
		e.srv.Serve(ln)
	}()
	return e, nil
}

// SetJWKSURL points the identity checks at the node's JWK Set (https),
// with a fresh cache; requests already verifying finish with the old one.
func (e *engine) SetJWKSURL(jwksURL string) error {
	u, err := url.Parse(jwksURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("engine: JWKS URL %q: want https://HOST/PATH", jwksURL)
	}
	e.jwks.Store(newJWKSCache(jwksURL, e.opts.RootCAs))
	return nil
}

func orEmptyJSON(b []byte) []byte {
	if !json.Valid(b) {
		return []byte(`null`)
	}
	return b
}

func (e *engine) URL() string { return "http://" + e.ln.Addr().String() }

// Close stops the engine and waits for every request it was serving:
// http.Server.Close leaves hijacked connections (the WebSocket echoes)
// open, so those are closed here.
func (e *engine) Close() {
	e.srv.Close()
	<-e.done
	e.mu.Lock()
	e.closed = true
	for c := range e.sockets {
		c.Close()
	}
	e.mu.Unlock()
	e.running.Wait()
}

// track counts the requests being served so that Close can wait for them.
func (e *engine) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			http.Error(w, "engine stopping", http.StatusServiceUnavailable)
			return
		}
		e.running.Add(1)
		e.mu.Unlock()
		defer e.running.Done()
		h.ServeHTTP(w, r)
	})
}
