package devcloud

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// This file holds the Mender-compatible device API server: its options,
// lifecycle and plumbing. mender_auth.go has device authentication and
// JWTs, mender_deploy.go artifacts, deployments, status, logs and the
// download link, mender_inventory.go the inventory.
//
// The protocol is the one in shared/reference/mender.md (§2 and the §6
// checklist); the server binds only to loopback and is for tests and
// `edgefort-dev`, never for production.

// Default lifetimes of the Mender server, used when an option is zero.
const (
	DefaultMenderJWTLifetime  = 7 * 24 * time.Hour // deviceauth jwt_exp_timeout
	DefaultMenderLinkLifetime = 24 * time.Hour     // presigned link lifetime
	menderMaxBody             = 1 << 20            // DEPLOYMENTS_REQUEST_SIZE_LIMIT
)

// Endpoint names the device endpoints, for fault injection.
type Endpoint string

// The device endpoints a fault can target.
const (
	EndpointAuth      Endpoint = "auth"
	EndpointNext      Endpoint = "next" // v1 and v2, GET and POST
	EndpointStatus    Endpoint = "status"
	EndpointLog       Endpoint = "log"
	EndpointInventory Endpoint = "inventory"
	EndpointDownload  Endpoint = "download"
)

// Endpoints are the endpoints a fault can target, in the order above.
var Endpoints = []Endpoint{EndpointAuth, EndpointNext, EndpointStatus, EndpointLog, EndpointInventory, EndpointDownload}

// MenderOptions configure a MenderServer. The zero value is a usable
// server: plain server-authenticated TLS, devices auto-accepted, v2 next on.
type MenderOptions struct {
	// CA issues the server certificate (SANs 127.0.0.1, ::1, localhost).
	// Required.
	CA *CA
	// ClientCAs, when not nil, turns on mTLS: every connection must present
	// a client certificate that verifies against this pool. In mTLS mode a
	// device whose auth-request pubkey equals its certificate's key is
	// accepted even with ManualAccept, as the Mender gateway does.
	ClientCAs *x509.CertPool
	// ManualAccept leaves new devices pending until SetAuthStatus accepts
	// them. Zero: new auth sets are accepted at once.
	ManualAccept bool
	// DisableV2 answers 404 on POST /api/devices/v2/.../next, like the
	// open-source server. Zero: v2 is served.
	DisableV2 bool
	// JWTLifetime is how long a device token is valid. Zero:
	// DefaultMenderJWTLifetime.
	JWTLifetime time.Duration
	// LinkLifetime is how long a download link is valid. Zero:
	// DefaultMenderLinkLifetime.
	LinkLifetime time.Duration
	// ManagementToken, when set, serves the management HTTP API under
	// /api/management/dev/ (see mender_manage.go) to callers presenting it
	// as a bearer token. Empty: the API is off; the Go methods still work.
	ManagementToken string
	// Logger receives request logs. Nil: discard.
	Logger *slog.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Wire, when set, counts the traffic on the listener under WireUpdateChannel
	// (devcloud/wirecount.go). Nil: nothing is counted.
	Wire *WireCounter
}

// MenderFaults are failure-injection knobs; set them with SetFaults. The
// zero value injects nothing. Each "once" fault fires on the next matching
// request and then clears itself.
type MenderFaults struct {
	// CutAfter, when > 0, cuts the connection of the next artifact
	// download after this many body bytes.
	CutAfter int64
	// Unauthorized answers the next request to this endpoint with 401
	// (EndpointAuth and EndpointDownload included). Empty: none.
	Unauthorized Endpoint
	// TooMany answers the next TooManyCount requests (zero means one, a
	// negative count every one until the faults change) to this endpoint
	// with 429 and Retry-After: RetryAfter (whole seconds, at least 1), as
	// Hosted Mender does when a device polls too often. Empty: none.
	TooMany      Endpoint
	TooManyCount int
	RetryAfter   time.Duration
}

// menderFaultsJSON is MenderFaults on the management API: RetryAfter as
// a Go duration ("30s") rather than nanoseconds.
type menderFaultsJSON struct {
	CutAfter     int64    `json:"CutAfter"`
	Unauthorized Endpoint `json:"Unauthorized"`
	TooMany      Endpoint `json:"TooMany"`
	TooManyCount int      `json:"TooManyCount"`
	RetryAfter   string   `json:"RetryAfter"`
}

// MarshalJSON writes f with RetryAfter as a duration such as "30s".
func (f MenderFaults) MarshalJSON() ([]byte, error) {
	return json.Marshal(menderFaultsJSON{f.CutAfter, f.Unauthorized, f.TooMany, f.TooManyCount, f.RetryAfter.String()})
}

// UnmarshalJSON reads what MarshalJSON writes; RetryAfter may be absent
// or empty (zero). An unknown member is refused: a misspelt knob would
// otherwise inject nothing, silently.
func (f *MenderFaults) UnmarshalJSON(b []byte) error {
	var j menderFaultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	var ra time.Duration
	if j.RetryAfter != "" {
		d, err := time.ParseDuration(j.RetryAfter)
		if err != nil {
			return fmt.Errorf("RetryAfter: %w", err)
		}
		ra = d
	}
	*f = MenderFaults{CutAfter: j.CutAfter, Unauthorized: j.Unauthorized, TooMany: j.TooMany, TooManyCount: j.TooManyCount, RetryAfter: ra}
	return nil
}

// Validate reports knobs that make no sense, naming the field.
func (f MenderFaults) Validate() error {
	var errs []error
	for _, ep := range []struct {
		field string
		ep    Endpoint
	}{{"Unauthorized", f.Unauthorized}, {"TooMany", f.TooMany}} {
		if ep.ep != "" && !slices.Contains(Endpoints, ep.ep) {
			errs = append(errs, fmt.Errorf("%s %q: not an endpoint (want one of %v)", ep.field, ep.ep, Endpoints))
		}
	}
	if f.CutAfter < 0 {
		errs = append(errs, fmt.Errorf("CutAfter %d: want 0 (off) or more bytes", f.CutAfter))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("RetryAfter %s: want 0 or more", f.RetryAfter))
	}
	return errors.Join(errs...)
}

// MenderStats count the device API's requests, for tests and
// `edgefort-dev fault mender`: whether a device waited as told.
type MenderStats struct {
	// Requests counts the requests to each endpoint, those a fault
	// answered included.
	Requests map[Endpoint]int64
	// TooMany counts the 429s the TooMany fault answered.
	TooMany int64
}

// MenderServer is a Mender-compatible device API server on loopback HTTPS.
// Create it with NewMenderServer, then Start and Close it, or Run it.
type MenderServer struct {
	opts    MenderOptions
	log     *slog.Logger
	now     func() time.Time
	tlsConf *tls.Config
	jwtKey  ed25519.PrivateKey
	linkKey []byte // keys the unguessable part of download links

	https httpsServer

	mu          sync.Mutex // guards everything below
	faults      MenderFaults
	stats       MenderStats
	authSets    map[string]*authSet // by authSetKey(id_data, pubkey)
	inventory   map[string]map[string]InventoryAttribute
	artifacts   map[string]*menderArtifact // by artifact ID
	deployments []*menderDeployment        // in creation order
	links       map[string]menderLink      // by link token
}

// NewMenderServer checks opts and prepares a server; it listens on nothing
// until Start or Run.
func NewMenderServer(opts MenderOptions) (*MenderServer, error) {
	if opts.CA == nil {
		return nil, errors.New("mender server: CA is required")
	}
	if opts.JWTLifetime < 0 || opts.LinkLifetime < 0 {
		return nil, errors.New("mender server: lifetimes must not be negative")
	}
	if opts.JWTLifetime == 0 {
		opts.JWTLifetime = DefaultMenderJWTLifetime
	}
	if opts.LinkLifetime == 0 {
		opts.LinkLifetime = DefaultMenderLinkLifetime
	}
	s := &MenderServer{
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		authSets:  make(map[string]*authSet),
		inventory: make(map[string]map[string]InventoryAttribute),
		artifacts: make(map[string]*menderArtifact),
		links:     make(map[string]menderLink),
		stats:     MenderStats{Requests: make(map[Endpoint]int64)},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	key, cert, err := opts.CA.Issue("localhost", []string{"127.0.0.1", "::1", "localhost"}, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("mender server: issue certificate: %w", err)
	}
	s.tlsConf = &tls.Config{
		MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{cert.Raw, opts.CA.Cert.Raw},
			PrivateKey:  key,
			Leaf:        cert,
		}},
	}
	if opts.ClientCAs != nil {
		s.tlsConf.ClientCAs = opts.ClientCAs
		s.tlsConf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if _, s.jwtKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, fmt.Errorf("mender server: JWT key: %w", err)
	}
	s.linkKey = make([]byte, 32)
	rand.Read(s.linkKey)
	return s, nil
}

// Start listens on 127.0.0.1 (a free port) and serves in the background
// until Close.
func (s *MenderServer) Start() error {
	s.https.wire, s.https.link = s.opts.Wire, WireUpdateChannel
	return s.https.start("mender server", s.tlsConf, s.routes(), s.log)
}

// URL is the server's base URL (https://127.0.0.1:PORT), the Mender
// ServerURL. Empty before Start.
func (s *MenderServer) URL() string { return s.https.url() }

// Close stops the server, cutting open connections, and waits for it.
func (s *MenderServer) Close() error { return s.https.close() }

// Run starts the server, serves until ctx ends, then closes it.
func (s *MenderServer) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// ServerCA is the pool a client should trust for this server.
func (s *MenderServer) ServerCA() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.opts.CA.Cert)
	return p
}

// SetFaults replaces the fault knobs.
func (s *MenderServer) SetFaults(f MenderFaults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the fault knobs in force (once-faults that fired are
// cleared, TooManyCount counts down).
func (s *MenderServer) Faults() MenderFaults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stats returns a snapshot of the request counters.
func (s *MenderServer) Stats() MenderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return MenderStats{Requests: maps.Clone(s.stats.Requests), TooMany: s.stats.TooMany}
}

func (s *MenderServer) routes() http.Handler {
	m := http.NewServeMux()
	const dev = "/api/devices/v1"
	m.HandleFunc("POST "+dev+"/authentication/auth_requests", s.handleAuth)
	m.HandleFunc("POST /api/devices/v2/deployments/device/deployments/next", s.device(EndpointNext, s.handleNextV2))
	m.HandleFunc("POST "+dev+"/deployments/device/deployments/next", s.device(EndpointNext, s.handleNextV1Post))
	m.HandleFunc("GET "+dev+"/deployments/device/deployments/next", s.device(EndpointNext, s.handleNextV1Get))
	m.HandleFunc("PUT "+dev+"/deployments/device/deployments/{id}/status", s.device(EndpointStatus, s.handleStatus))
	m.HandleFunc("PUT "+dev+"/deployments/device/deployments/{id}/log", s.device(EndpointLog, s.handleLog))
	m.HandleFunc("PUT "+dev+"/inventory/device/attributes", s.device(EndpointInventory, s.handleInventory))
	m.HandleFunc("PATCH "+dev+"/inventory/device/attributes", s.device(EndpointInventory, s.handleInventory))
	m.HandleFunc("GET "+menderLinkPrefix+"{token}", s.handleDownload)
	s.manageRoutes(m)
	return m
}

// injectLocked applies the 401-once and 429 faults for ep; it reports
// whether it answered the request.
func (s *MenderServer) injectLocked(w http.ResponseWriter, r *http.Request, ep Endpoint) bool {
	s.stats.Requests[ep]++
	f := &s.faults
	if f.TooMany == ep {
		if f.TooManyCount >= 0 {
			f.TooManyCount--
			if f.TooManyCount <= 0 {
				f.TooMany, f.TooManyCount = "", 0
			}
		}
		s.stats.TooMany++
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		s.errorf(w, r, http.StatusTooManyRequests, "too many requests")
		return true
	}
	if f.Unauthorized == ep {
		f.Unauthorized = ""
		s.errorf(w, r, http.StatusUnauthorized, "unauthorized (injected)")
		return true
	}
	return false
}

// inject is injectLocked taking the lock.
func (s *MenderServer) inject(w http.ResponseWriter, r *http.Request, ep Endpoint) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.injectLocked(w, r, ep)
}

// errorf answers with Mender's error shape, {"error","request_id"}, the
// ID also in X-MEN-RequestID and in the log.
func (s *MenderServer) errorf(w http.ResponseWriter, r *http.Request, code int, format string, args ...any) {
	id := newID()
	msg := fmt.Sprintf(format, args...)
	s.log.Info("mender request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", msg, "request_id", id)
	w.Header().Set("X-MEN-RequestID", id)
	writeJSON(w, code, map[string]string{"error": msg, "request_id": id})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// readBody reads a request body (chunked or not) of at most
// menderMaxBody bytes; on error it has answered (413 or 400).
func (s *MenderServer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, menderMaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.errorf(w, r, http.StatusRequestEntityTooLarge, "request body over %d bytes", menderMaxBody)
		} else {
			s.errorf(w, r, http.StatusBadRequest, "read body: %v", err)
		}
		return nil, false
	}
	return b, true
}

// decodeBody reads and decodes a JSON body into v; on error it answered.
func (s *MenderServer) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := s.readBody(w, r)
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		s.errorf(w, r, http.StatusBadRequest, "decode body: %v", err)
		return false
	}
	return true
}

// newID is a random 128-bit hex identifier.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
