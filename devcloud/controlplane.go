package devcloud

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// This file holds the control plane server (the contract in
// cloudclient/api/controlplane.openapi.yaml): its options, lifecycle,
// fault knobs and plumbing. controlplane_enroll.go has enrollment and the
// device registry, controlplane_token.go the token endpoint, access tokens,
// user tokens and the JWKS, controlplane_policy.go the authorization
// policy, controlplane_calls.go authorization, IoT credentials and
// reports.
//
// It binds only to loopback and is for tests and `edgefort-dev`, never for
// production.

// Defaults of the control plane, used when an option is zero.
const (
	DefaultControlPlaneTokenLifetime       = 15 * time.Minute
	DefaultControlPlaneCredentialsLifetime = time.Hour
	cpMaxBody                              = 4 << 20 // request bodies
	cpMaxChecks                            = 100     // checks per batch
	cpMaxReports                           = 500     // reports per call
	cpAccessAudience                       = "edgefort-control-plane"
	// UserTokenAudience is the aud of user tokens from MintUserToken.
	UserTokenAudience = "edgefort"
)

// ControlPlaneOptions configure a ControlPlane.
type ControlPlaneOptions struct {
	// CA issues the server certificate (SANs 127.0.0.1, ::1, localhost) and
	// the device certificates. Required.
	CA *CA
	// Policy decides authorization checks. Nil: every check is denied with
	// reason "no policy".
	Policy *Policy
	// TokenLifetime is how long an access token is valid. Zero:
	// DefaultControlPlaneTokenLifetime.
	TokenLifetime time.Duration
	// CredentialsLifetime is how long IoT credentials are valid. Zero:
	// DefaultControlPlaneCredentialsLifetime.
	CredentialsLifetime time.Duration
	// UpdateServerURL is returned in the enrollment endpoints. Empty: none.
	UpdateServerURL string
	// IoT is returned in the enrollment endpoints, its ThingName set to
	// the device ID when empty. Nil: none.
	IoT *api.IoTEndpoint
	// ManagementToken, when set, serves GET
	// /api/management/dev/devices/{id}/reports (what the sink recorded, and
	// the deliveries per key) to callers presenting it as a bearer token,
	// for scripts in another process. It is not part of the contract.
	ManagementToken string
	// Wrap, when set, wraps the whole handler (faults included), e.g. with
	// openapitest.Handler in tests. Nil: nothing.
	Wrap func(http.Handler) http.Handler
	// Logger receives request logs (never tokens or secrets). Nil: discard.
	Logger *slog.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Wire, when set, counts the traffic on the listener under WireCloudCalls
	// (devcloud/wirecount.go). Nil: nothing is counted.
	Wire *WireCounter
}

// ControlPlaneFaults are failure-injection knobs; set them with SetFaults.
// The zero value injects nothing. JWKS requests are subject to Down,
// Unavailable, Slow and Fail500 like the rest.
type ControlPlaneFaults struct {
	// Down closes every connection without an answer, as a client sees an
	// unreachable cloud (its call fails with EOF or a reset).
	Down bool
	// Unavailable answers every call 503 {"error":"unavailable"} with
	// Retry-After: RetryAfter (whole seconds, at least 1).
	Unavailable bool
	RetryAfter  time.Duration
	// Slow delays every answer by this much (or until the client gives up).
	Slow time.Duration
	// Fail500 answers the next Fail500 calls 500 {"error":"internal"}.
	Fail500 int
	// Unauthorized401Once answers the next bearer-authenticated call 401,
	// as if its access token had expired.
	Unauthorized401Once bool
	// ExpiredTokens makes the token endpoint issue access tokens that are
	// already expired (expires_in still claims the usual lifetime), so
	// every call with them is answered 401.
	ExpiredTokens bool
}

// ControlPlaneStats count what the control plane did, for tests and
// benchmarks.
type ControlPlaneStats struct {
	Enrollments       int64 // successful enrollments
	EnrollmentsFailed int64
	TokensIssued      int64 // access tokens
	TokensRefused     int64 // token requests refused (any OAuth error)
	Unauthorized      int64 // device calls answered 401
	Forbidden         int64 // device calls answered 403
	AuthorizeCalls    int64 // POST /v1/authorize
	BatchCalls        int64 // POST /v1/authorize/batch
	Checks            int64 // decisions made, single and batched
	Allowed           int64
	Denied            int64
	IoTCredentials    int64 // credentials issued
	ReportCalls       int64 // POST .../reports answered 200
	ReportsDelivered  int64 // reports received, duplicates included
	ReportsRecorded   int64 // distinct reports recorded
	ReportsRejected   int64
	JWKSCalls         int64
	FaultsInjected    int64 // calls answered (or dropped) by a fault knob
}

// cpStats are the live counters behind ControlPlaneStats.
type cpStats struct {
	enrollments, enrollmentsFailed, tokensIssued, tokensRefused atomic.Int64
	unauthorized, forbidden, authorizeCalls, batchCalls, checks atomic.Int64
	allowed, denied, iotCredentials, reportCalls, delivered     atomic.Int64
	recorded, rejected, jwksCalls, faultsInjected               atomic.Int64
}

// ControlPlane is the control plane API on loopback HTTPS. Create it with
// NewControlPlane, then Start and Close it, or Run it.
type ControlPlane struct {
	opts    ControlPlaneOptions
	log     *slog.Logger
	now     func() time.Time
	tlsConf *tls.Config
	// accessKey signs access tokens; userKey signs user tokens and is the
	// one key of the JWKS.
	accessKey, userKey *ecdsa.PrivateKey
	userKID            string
	stats              cpStats

	https httpsServer

	mu         sync.Mutex // guards everything below
	faults     ControlPlaneFaults
	enrollTok  map[string]bool              // enrollment token → used
	devices    map[string]*EnrolledDevice   // by device ID
	byKID      map[string]*EnrolledDevice   // by key thumbprint
	jtis       map[string]time.Time         // device ID + "\x00" + assertion jti → exp
	creds      map[string]issuedCredentials // by access key ID
	reports    map[string][]api.Report      // by device, distinct, in arrival order
	deliveries map[string]map[string]int    // device → key → deliveries
}

// NewControlPlane checks opts and prepares a control plane; it listens on
// nothing until Start or Run.
func NewControlPlane(opts ControlPlaneOptions) (*ControlPlane, error) {
	if opts.CA == nil {
		return nil, errors.New("control plane: CA is required")
	}
	if opts.TokenLifetime < 0 || opts.CredentialsLifetime < 0 {
		return nil, errors.New("control plane: lifetimes must not be negative")
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = DefaultControlPlaneTokenLifetime
	}
	if opts.CredentialsLifetime == 0 {
		opts.CredentialsLifetime = DefaultControlPlaneCredentialsLifetime
	}
	c := &ControlPlane{
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Now,
		enrollTok:  make(map[string]bool),
		devices:    make(map[string]*EnrolledDevice),
		byKID:      make(map[string]*EnrolledDevice),
		jtis:       make(map[string]time.Time),
		creds:      make(map[string]issuedCredentials),
		reports:    make(map[string][]api.Report),
		deliveries: make(map[string]map[string]int),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	key, cert, err := opts.CA.Issue("localhost", []string{"127.0.0.1", "::1", "localhost"}, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("control plane: issue certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(opts.CA.Cert)
	c.tlsConf = &tls.Config{
		MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{cert.Raw, opts.CA.Cert.Raw},
			PrivateKey:  key,
			Leaf:        cert,
		}},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
	}
	if c.accessKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("control plane: access token key: %w", err)
	}
	if c.userKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("control plane: user token key: %w", err)
	}
	if c.userKID, err = keyThumbprint(&c.userKey.PublicKey); err != nil {
		return nil, fmt.Errorf("control plane: user token key: %w", err)
	}
	return c, nil
}

// Start listens on 127.0.0.1 (a free port) and serves in the background
// until Close.
func (c *ControlPlane) Start() error {
	var h http.Handler = c.routes()
	h = c.injectFaults(h)
	if c.opts.Wrap != nil {
		h = c.opts.Wrap(h)
	}
	c.https.wire, c.https.link = c.opts.Wire, WireCloudCalls
	return c.https.start("control plane", c.tlsConf, h, c.log)
}

// URL is the base URL (https://127.0.0.1:PORT), the node's
// ControlPlaneURL. Empty before Start.
func (c *ControlPlane) URL() string { return c.https.url() }

// TokenURL is URL() + api.PathToken, the audience of assertions.
func (c *ControlPlane) TokenURL() string { return c.URL() + api.PathToken }

// Close stops the server, cutting open connections, and waits for it.
func (c *ControlPlane) Close() error { return c.https.close() }

// Run starts the server, serves until ctx ends, then closes it.
func (c *ControlPlane) Run(ctx context.Context) error {
	if err := c.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return c.Close()
}

// ServerCA is the pool a client should trust for this server; it also
// verifies device certificates.
func (c *ControlPlane) ServerCA() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.opts.CA.Cert)
	return p
}

// SetFaults replaces the fault knobs.
func (c *ControlPlane) SetFaults(f ControlPlaneFaults) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = f
}

// Stats returns the counters so far.
func (c *ControlPlane) Stats() ControlPlaneStats {
	s := &c.stats
	return ControlPlaneStats{
		Enrollments:       s.enrollments.Load(),
		EnrollmentsFailed: s.enrollmentsFailed.Load(),
		TokensIssued:      s.tokensIssued.Load(),
		TokensRefused:     s.tokensRefused.Load(),
		Unauthorized:      s.unauthorized.Load(),
		Forbidden:         s.forbidden.Load(),
		AuthorizeCalls:    s.authorizeCalls.Load(),
		BatchCalls:        s.batchCalls.Load(),
		Checks:            s.checks.Load(),
		Allowed:           s.allowed.Load(),
		Denied:            s.denied.Load(),
		IoTCredentials:    s.iotCredentials.Load(),
		ReportCalls:       s.reportCalls.Load(),
		ReportsDelivered:  s.delivered.Load(),
		ReportsRecorded:   s.recorded.Load(),
		ReportsRejected:   s.rejected.Load(),
		JWKSCalls:         s.jwksCalls.Load(),
		FaultsInjected:    s.faultsInjected.Load(),
	}
}

func (c *ControlPlane) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST "+api.PathEnroll, c.handleEnroll)
	m.HandleFunc("POST "+api.PathToken, c.handleToken)
	m.HandleFunc("POST "+api.PathAuthorize, c.device(c.handleAuthorize))
	m.HandleFunc("POST "+api.PathAuthorizeBatch, c.device(c.handleAuthorizeBatch))
	m.HandleFunc("GET "+api.PathIoTCredentials, c.device(c.handleIoTCredentials))
	m.HandleFunc("POST "+api.PathReports, c.device(c.handleReports))
	m.HandleFunc("GET "+api.PathJWKS, c.handleJWKS)
	if c.opts.ManagementToken != "" {
		m.HandleFunc("GET /api/management/dev/devices/{id}/reports", c.handleManageReports)
	}
	return m
}

// ManagedReports is the answer of the management reports call.
type ManagedReports struct {
	Reports    []api.Report   `json:"reports"`
	Deliveries map[string]int `json:"deliveries"` // per idempotency key
}

func (c *ControlPlane) handleManageReports(w http.ResponseWriter, r *http.Request) {
	want := "Bearer " + c.opts.ManagementToken
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
		c.fail(w, r, http.StatusUnauthorized, api.CodeUnauthorized, "management token required")
		return
	}
	dev := r.PathValue("id")
	out := ManagedReports{Reports: c.Reports(dev), Deliveries: map[string]int{}}
	if out.Reports == nil {
		out.Reports = []api.Report{}
	}
	for _, rep := range out.Reports {
		out.Deliveries[rep.IdempotencyKey] = c.Deliveries(dev, rep.IdempotencyKey)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// injectFaults applies the knobs that hit every call: Down, Slow,
// Unavailable and Fail500, in that order.
func (c *ControlPlane) injectFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		f := c.faults
		fail := c.faults.Fail500 > 0 && !f.Down && !f.Unavailable
		if fail {
			c.faults.Fail500--
		}
		c.mu.Unlock()
		if f.Down {
			c.stats.faultsInjected.Add(1)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
				return
			}
			panic(http.ErrAbortHandler) // HTTP/2: reset the stream
		}
		if f.Slow > 0 {
			t := time.NewTimer(f.Slow)
			select {
			case <-t.C:
			case <-r.Context().Done():
				// The client gave up: no answer at all. Returning would
				// send an empty 200, which a client can still read when
				// its own deadline and this one race (1 in ~30 runs).
				t.Stop()
				panic(http.ErrAbortHandler)
			}
		}
		if f.Unavailable {
			c.stats.faultsInjected.Add(1)
			secs := int((f.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			c.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, "control plane unavailable (injected)")
			return
		}
		if fail {
			c.stats.faultsInjected.Add(1)
			c.fail(w, r, http.StatusInternalServerError, api.CodeInternal, "internal error (injected)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// fail answers with an api.Error; 5xx and 429 messages carry a request ID
// that is also logged.
func (c *ControlPlane) fail(w http.ResponseWriter, r *http.Request, status int, code, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	id := newID()
	c.log.Info("control plane request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", msg, "request_id", id)
	if status >= 500 || status == http.StatusTooManyRequests {
		msg += " (request " + id + ")"
	}
	writeJSON(w, status, api.Error{Code: code, Message: msg})
}

// decode reads a JSON body of at most cpMaxBody bytes into v; on error it
// has answered (413 or 400).
func (c *ControlPlane) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cpMaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.fail(w, r, http.StatusRequestEntityTooLarge, api.CodeTooLarge, "request body over %d bytes", cpMaxBody)
		} else {
			c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "read body: %v", err)
		}
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "decode body: %v", err)
		return false
	}
	return true
}
