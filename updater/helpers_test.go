package updater

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeMender is a small Mender device API on a TLS socket, following the
// published protocol: it verifies X-MEN-Signature over the raw auth body,
// issues opaque JWTs, checks them on every call, and lets tests inject the
// faults the real server produces (401, 404 on v2, 405 on inventory PUT,
// 409 on abort, 429).
type fakeMender struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex // guards everything below
	// Knobs.
	rejectAuth  bool                // answer 401 to every auth request
	expireCalls int                 // answer 401 to this many API calls, dropping tokens; -1 always
	status      map[string]int      // "METHOD path" → status to answer instead
	retryAfter  string              // with status 429
	deployment  *nextResponse       // nil → 204 from next
	abortAt     string              // status report that gets 409
	raw         map[string]rawReply // "METHOD path" → this answer instead
	// Records.
	auths     int
	authBody  authRequest
	tokens    map[string]bool
	requests  []string // "METHOD path?query", API calls only
	bodies    map[string][]byte
	reports   []statusReport
	inventory []Attribute
	logBody   []byte
}

// rawReply is an answer written as is, for replies no real server sends.
type rawReply struct {
	code    int
	body    []byte
	chunked bool // no Content-Length: the client learns the size only by reading
	header  http.Header
}

func (rr rawReply) write(w http.ResponseWriter) {
	for k, v := range rr.header {
		w.Header()[k] = v
	}
	if rr.chunked {
		w.WriteHeader(rr.code)
		w.(http.Flusher).Flush()
	} else {
		w.Header().Set("Content-Length", fmt.Sprint(len(rr.body)))
		w.WriteHeader(rr.code)
	}
	w.Write(rr.body)
}

type statusReport struct {
	Status   string `json:"status"`
	Substate string `json:"substate,omitempty"`
}

func newFakeMender(t *testing.T) *fakeMender {
	t.Helper()
	f := &fakeMender{t: t, tokens: map[string]bool{}, status: map[string]int{}, bodies: map[string][]byte{}, raw: map[string]rawReply{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathAuth, f.auth)
	mux.HandleFunc("/api/devices/", f.api)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// newTestClient returns a client of f with key (ECDSA P-256 when nil).
func newTestClient(t *testing.T, f *fakeMender, key crypto.Signer, mod func(*ClientOptions)) *Client {
	t.Helper()
	if key == nil {
		key = testKey(t, "ecdsa")
	}
	opts := ClientOptions{
		ServerURL:    f.srv.URL,
		TenantToken:  "tenant-1",
		HTTP:         f.srv.Client(),
		Key:          key,
		Identity:     map[string]any{"serial": "TEST-0001", "mac": "02:00:00:00:00:01"},
		AgentVersion: "0.1.0",
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func testKey(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ecdsa":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (f *fakeMender) writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Men-Requestid", "req-1")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":%q,"request_id":"req-1"}`, msg)
}

func (f *fakeMender) auth(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		f.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auths++
	if rr, ok := f.raw["POST "+pathAuth]; ok {
		rr.write(w)
		return
	}
	var req authRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		f.writeError(w, http.StatusBadRequest, "malformed body")
		return
	}
	f.authBody = req
	if err := verifyAuthSignature(raw, req.PubKey, r.Header.Get("X-MEN-Signature")); err != nil {
		f.writeError(w, http.StatusUnauthorized, "signature verification failed: "+err.Error())
		return
	}
	var id map[string]any
	if err := json.Unmarshal([]byte(req.IDData), &id); err != nil {
		f.writeError(w, http.StatusBadRequest, "id_data is not a JSON object string")
		return
	}
	if f.rejectAuth {
		f.writeError(w, http.StatusUnauthorized, "dev auth: unauthorized")
		return
	}
	tok := fmt.Sprintf("jwt-%d", f.auths)
	f.tokens[tok] = true
	w.Header().Set("Content-Type", "application/jwt")
	io.WriteString(w, tok)
}

// verifyAuthSignature checks sig over raw the way Mender's device auth
// service does.
func verifyAuthSignature(raw []byte, pubPEM, sig64 string) error {
	blk, _ := pem.Decode([]byte(pubPEM))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return fmt.Errorf("pubkey is not a PKIX PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, sum[:], sig) {
			return fmt.Errorf("bad ECDSA signature")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, raw, sig) {
			return fmt.Errorf("bad Ed25519 signature")
		}
	default:
		return fmt.Errorf("unsupported key %T", pub)
	}
	return nil
}

func (f *fakeMender) api(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		f.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := r.Method + " " + r.URL.Path
	req := call
	if r.URL.RawQuery != "" {
		req += "?" + r.URL.RawQuery
	}
	f.requests = append(f.requests, req)
	f.bodies[call] = raw

	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !f.tokens[tok] {
		f.writeError(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	if f.expireCalls != 0 {
		if f.expireCalls > 0 {
			f.expireCalls--
		}
		clear(f.tokens)
		f.writeError(w, http.StatusUnauthorized, "token expired")
		return
	}
	if rr, ok := f.raw[call]; ok {
		rr.write(w)
		return
	}
	if code, ok := f.status[call]; ok {
		if code == http.StatusTooManyRequests && f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		f.writeError(w, code, http.StatusText(code))
		return
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/deployments/next"):
		if f.deployment == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(f.deployment)
	case strings.HasSuffix(r.URL.Path, "/status") && r.Method == http.MethodPut:
		var s statusReport
		if err := json.Unmarshal(raw, &s); err != nil {
			f.writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if f.abortAt != "" && s.Status == f.abortAt {
			f.writeError(w, http.StatusConflict, "deployment aborted")
			return
		}
		f.reports = append(f.reports, s)
		w.WriteHeader(http.StatusNoContent)
	case strings.HasSuffix(r.URL.Path, "/log") && r.Method == http.MethodPut:
		if len(raw) > MaxLogSize {
			f.writeError(w, http.StatusRequestEntityTooLarge, "too large")
			return
		}
		f.logBody = raw
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == pathInventory && (r.Method == http.MethodPut || r.Method == http.MethodPatch):
		var attrs []Attribute
		if err := json.Unmarshal(raw, &attrs); err != nil {
			f.writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		f.inventory = attrs
		w.WriteHeader(http.StatusOK)
	default:
		f.writeError(w, http.StatusNotFound, "not found")
	}
}

func (f *fakeMender) setDeployment(id, name string, types ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &nextResponse{ID: id}
	d.Artifact.ID = "art-" + id
	d.Artifact.ArtifactName = name
	d.Artifact.Source.URI = f.srv.URL + "/artifacts/" + id
	d.Artifact.Source.Expire = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	d.Artifact.DeviceTypes = types
	f.deployment = d
}

func (f *fakeMender) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// fakeClock records the waits asked of it and advances by them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}
