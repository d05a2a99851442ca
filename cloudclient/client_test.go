package cloudclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// fakeCloud is a scripted control plane for unit tests of the client's
// own behaviour (retries, backoff, token caching); the contract itself is
// tested against devcloud in devcloud_test.go.
type fakeCloud struct {
	srv *httptest.Server

	tokens     atomic.Int64 // token requests
	calls      atomic.Int64 // other requests
	mu         sync.Mutex   // guards the fields below
	assertions []string
	expiresIn  int
	tokenFail  int           // answer token requests with this status while non-zero
	tokenDelay time.Duration // before answering a token request
	script     []reply       // answers to other calls, in order; the last repeats
	seenAuth   []string
}

// reply is one scripted answer.
type reply struct {
	status int
	body   string
	header http.Header
	delay  time.Duration
}

func newFakeCloud(t *testing.T, script ...reply) *fakeCloud {
	t.Helper()
	f := &fakeCloud{expiresIn: 300, script: script}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloud) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == api.PathToken {
		n := f.tokens.Add(1)
		r.ParseForm()
		f.mu.Lock()
		f.assertions = append(f.assertions, r.PostForm.Get("assertion"))
		fail, exp, delay := f.tokenFail, f.expiresIn, f.tokenDelay
		f.mu.Unlock()
		time.Sleep(delay)
		if fail != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(fail)
			json.NewEncoder(w).Encode(api.OAuthError{Code: "temporarily_unavailable"})
			return
		}
		writeTestJSON(w, 200, api.TokenResponse{AccessToken: "tok-" + strconv.FormatInt(n, 10), TokenType: "Bearer", ExpiresIn: exp})
		return
	}
	n := int(f.calls.Add(1))
	f.mu.Lock()
	f.seenAuth = append(f.seenAuth, r.Header.Get("Authorization"))
	rep := reply{status: 200, body: `{"allow":true,"reason":"ok","ttl_seconds":60}`}
	if len(f.script) > 0 {
		rep = f.script[min(n, len(f.script))-1]
	}
	f.mu.Unlock()
	if rep.delay > 0 {
		select {
		case <-time.After(rep.delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	w.Write([]byte(rep.body))
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// newTestKey makes a device key of the given kind: "ec" or "rsa".
func newTestKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "ec":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newFakeClient returns a client of f with fast retries; mod edits the
// options first.
func newFakeClient(t *testing.T, f *fakeCloud, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{
		BaseURL:  f.srv.URL,
		HTTP:     f.srv.Client(),
		DeviceID: "dev-1",
		Key:      newTestKey(t, "ec"),
		Timeout:  time.Second,
		Retry:    Retry{Attempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond},
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewValidates(t *testing.T) {
	key := newTestKey(t, "ec")
	tests := []struct {
		name string
		opts Options
		want string // substring of the error; empty: no error
	}{
		{"ok", Options{BaseURL: "https://cp.example", HTTP: http.DefaultClient, DeviceID: "d", Key: key}, ""},
		{"jwks only", Options{BaseURL: "https://cp.example", HTTP: http.DefaultClient}, ""},
		{"no URL", Options{HTTP: http.DefaultClient}, "base URL is required"},
		{"bad URL", Options{BaseURL: "cp.example", HTTP: http.DefaultClient}, "want https://host"},
		{"no HTTP", Options{BaseURL: "https://cp.example"}, "HTTP client is required"},
		{"key without ID", Options{BaseURL: "https://cp.example", HTTP: http.DefaultClient, Key: key}, "device ID is required"},
		{"ID without key", Options{BaseURL: "https://cp.example", HTTP: http.DefaultClient, DeviceID: "d"}, "device key is required"},
		{"P-384", Options{BaseURL: "https://cp.example", HTTP: http.DefaultClient, DeviceID: "d", Key: mustP384(t)}, "want P-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func mustP384(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyID checks the RFC 7638 thumbprint against go-jose's.
func TestKeyID(t *testing.T) {
	for _, kind := range []string{"ec", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			k := newTestKey(t, kind)
			got, err := KeyID(k.Public())
			if err != nil {
				t.Fatal(err)
			}
			sum, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := b64(sum); got != want {
				t.Errorf("KeyID = %s, want %s", got, want)
			}
		})
	}
}

// TestAssertion checks every claim and header of the assertions the client
// sends, and that no two share a jti.
func TestAssertion(t *testing.T) {
	for _, tt := range []struct{ kind, alg string }{{"ec", "ES256"}, {"rsa", "RS256"}} {
		t.Run(tt.kind, func(t *testing.T) {
			f := newFakeCloud(t)
			key := newTestKey(t, tt.kind)
			now := time.Now().Truncate(time.Second)
			clock := now
			c := newFakeClient(t, f, func(o *Options) {
				o.Key = key
				o.Now = func() time.Time { return clock }
			})
			ctx := context.Background()
			if _, err := c.Token(ctx); err != nil {
				t.Fatal(err)
			}
			clock = clock.Add(time.Hour) // force a second fetch
			if _, err := c.Token(ctx); err != nil {
				t.Fatal(err)
			}
			if len(f.assertions) != 2 {
				t.Fatalf("got %d assertions, want 2", len(f.assertions))
			}
			kid, _ := KeyID(key.Public())
			jtis := map[string]bool{}
			for i, a := range f.assertions {
				var claims jwt.RegisteredClaims
				tok, err := jwt.ParseWithClaims(a, &claims, func(*jwt.Token) (any, error) { return key.Public(), nil },
					jwt.WithValidMethods([]string{tt.alg}), jwt.WithTimeFunc(func() time.Time { return now }),
					jwt.WithAudience(f.srv.URL+api.PathToken), jwt.WithIssuer("dev-1"), jwt.WithSubject("dev-1"))
				if err != nil && i == 0 {
					t.Fatalf("assertion %d does not verify: %v", i, err)
				}
				if tok.Header["kid"] != kid {
					t.Errorf("kid = %v, want %s", tok.Header["kid"], kid)
				}
				iat := now.Add(time.Duration(i) * time.Hour)
				if !claims.IssuedAt.Equal(iat) || !claims.ExpiresAt.Equal(iat.Add(2*time.Minute)) {
					t.Errorf("assertion %d: iat %v exp %v, want %v and 2 minutes later", i, claims.IssuedAt, claims.ExpiresAt, iat)
				}
				if len(claims.ID) != 22 || jtis[claims.ID] {
					t.Errorf("assertion %d: jti %q: want 128 random bits, never repeated", i, claims.ID)
				}
				jtis[claims.ID] = true
			}
		})
	}
}

// TestCallErrors drives one authorize call through scripted answers and
// checks the attempts made, the tokens fetched and the error.
func TestCallErrors(t *testing.T) {
	ok := reply{status: 200, body: `{"allow":true,"reason":"ok","ttl_seconds":60}`}
	tests := []struct {
		name         string
		script       []reply
		wantCalls    int64
		wantTokens   int64
		wantSentinel error // nil: success unless wantStatus is set
		wantStatus   int   // a *ResponseError with this status
	}{
		{"ok", []reply{ok}, 1, 1, nil, 0},
		{"500s exhaust the attempts", []reply{{status: 500, body: `{"error":"internal","message":"boom"}`}}, 3, 1, ErrUnavailable, 500},
		{"503 then ok", []reply{{status: 503, body: `{"error":"unavailable","message":"x"}`}, ok}, 2, 1, nil, 0},
		{"502 504 ok", []reply{{status: 502}, {status: 504}, ok}, 3, 1, nil, 0},
		{"400 is not retried", []reply{{status: 400, body: `{"error":"bad_request","message":"no"}`}}, 1, 1, nil, 400},
		{"403 is forbidden", []reply{{status: 403, body: `{"error":"forbidden","message":"no"}`}}, 1, 1, ErrForbidden, 403},
		{"401 once: refresh and retry", []reply{{status: 401, body: `{"error":"unauthorized","message":"expired"}`}, ok}, 2, 2, nil, 0},
		{"401 twice", []reply{{status: 401, body: `{"error":"unauthorized","message":"expired"}`}}, 2, 2, ErrUnauthorized, 401},
		{"bad JSON is not retried", []reply{{status: 200, body: `{"allow":`}}, 1, 1, nil, 200},
		{"slow answers time out", []reply{{status: 200, body: ok.body, delay: time.Second}}, 3, 1, ErrUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCloud(t, tt.script...)
			c := newFakeClient(t, f, func(o *Options) { o.Timeout = 200 * time.Millisecond })
			d, err := c.Authorize(context.Background(), api.AuthorizeRequest{Action: "app.read"})
			if got := f.calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if got := f.tokens.Load(); got != tt.wantTokens {
				t.Errorf("token fetches = %d, want %d", got, tt.wantTokens)
			}
			if tt.wantSentinel == nil && tt.wantStatus == 0 {
				if err != nil || !d.Allow {
					t.Fatalf("Authorize = %+v, %v; want an allow", d, err)
				}
				return
			}
			if err == nil {
				t.Fatal("Authorize: no error")
			}
			if !strings.HasPrefix(err.Error(), "cloudclient: authorize: ") {
				t.Errorf("error %q does not name the call", err)
			}
			if tt.wantSentinel != nil && !errors.Is(err, tt.wantSentinel) {
				t.Errorf("error %v: want %v", err, tt.wantSentinel)
			}
			for _, s := range []error{ErrUnavailable, ErrForbidden, ErrUnauthorized} {
				if s != tt.wantSentinel && errors.Is(err, s) {
					t.Errorf("error %v: is also %v", err, s)
				}
			}
			var re *ResponseError
			if tt.wantStatus != 0 && (!errors.As(err, &re) || re.Status != tt.wantStatus) {
				t.Errorf("error %v: want a *ResponseError with status %d", err, tt.wantStatus)
			}
		})
	}
}

// TestRetryAfter checks that a 429's Retry-After is waited, capped at 4·Max.
func TestRetryAfter(t *testing.T) {
	f := newFakeCloud(t,
		reply{status: 429, header: http.Header{"Retry-After": {"30"}}, body: `{"error":"unavailable","message":"slow down"}`},
		reply{status: 200, body: `{"allow":false,"reason":"no","ttl_seconds":0}`})
	c := newFakeClient(t, f, func(o *Options) { o.Retry.Max = 100 * time.Millisecond })
	c.Token(context.Background())
	start := time.Now()
	if _, err := c.Authorize(context.Background(), api.AuthorizeRequest{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 400*time.Millisecond || el > 10*time.Second {
		t.Errorf("took %s, want the Retry-After capped at 400ms", el)
	}
}

func TestCallerCancelIsNotUnavailable(t *testing.T) {
	f := newFakeCloud(t, reply{status: 200, body: `{}`, delay: time.Second})
	c := newFakeClient(t, f, nil)
	c.Token(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Authorize(ctx, api.AuthorizeRequest{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v: want the caller's deadline, not ErrUnavailable", err)
	}
	if got := f.calls.Load(); got != 1 {
		t.Errorf("calls = %d, want 1 (no retry once the caller gave up)", got)
	}
}

// TestTokenLifetime moves an injected clock through a token's life:
// cached, refreshed at max(20%, 60 s) before expiry, the old one kept
// while a refresh fails, and an error once it has expired.
func TestTokenLifetime(t *testing.T) {
	f := newFakeCloud(t)
	t0 := time.Now()
	var mu sync.Mutex
	clock := t0
	c := newFakeClient(t, f, func(o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	})
	set := func(d time.Duration) { mu.Lock(); clock = t0.Add(d); mu.Unlock() }
	steps := []struct {
		at         time.Duration
		tokenFail  int
		want       string // token; empty: an error
		wantTokens int64  // token requests so far
	}{
		{0, 0, "tok-1", 1},
		{200 * time.Second, 0, "tok-1", 1},   // 300 s lifetime: refresh at 240 s
		{241 * time.Second, 0, "tok-2", 2},   // new token, expires at 541 s, refresh at 481 s
		{490 * time.Second, 503, "tok-2", 5}, // refresh fails (3 attempts): old one kept
		{492 * time.Second, 503, "tok-2", 5}, // no new try within the pause
		{542 * time.Second, 503, "", 8},      // expired: the error
		{543 * time.Second, 0, "tok-9", 9},
	}
	for _, s := range steps {
		set(s.at)
		f.mu.Lock()
		f.tokenFail = s.tokenFail
		f.mu.Unlock()
		got, err := c.Token(context.Background())
		if s.want == "" {
			if err == nil || !errors.Is(err, ErrUnavailable) {
				t.Errorf("at %s: Token = %q, %v; want ErrUnavailable", s.at, got, err)
			}
		} else if got != s.want || err != nil {
			t.Errorf("at %s: Token = %q, %v; want %q", s.at, got, err, s.want)
		}
		if n := f.tokens.Load(); n != s.wantTokens {
			t.Errorf("at %s: %d token requests, want %d", s.at, n, s.wantTokens)
		}
	}
}

func TestTokenShortLifetime(t *testing.T) {
	// A 2 s token is refreshed half-way, not on every call.
	f := newFakeCloud(t)
	f.expiresIn = 2
	t0 := time.Now()
	clock := t0
	c := newFakeClient(t, f, func(o *Options) { o.Now = func() time.Time { return clock } })
	c.Token(context.Background())
	clock = t0.Add(900 * time.Millisecond)
	c.Token(context.Background())
	if n := f.tokens.Load(); n != 1 {
		t.Errorf("%d token requests before half-life, want 1", n)
	}
	clock = t0.Add(1100 * time.Millisecond)
	c.Token(context.Background())
	if n := f.tokens.Load(); n != 2 {
		t.Errorf("%d token requests after half-life, want 2", n)
	}
}

func TestTokenSingleFlight(t *testing.T) {
	f := newFakeCloud(t)
	f.tokenDelay = 50 * time.Millisecond
	// 50 calls open their TLS connections at once: under -race on a
	// busy 2-core machine that took over the rig's 1 s per attempt (2 of
	// 4 runs). The bound is for failures only; the test is the count.
	c := newFakeClient(t, f, func(o *Options) { o.Timeout = 30 * time.Second })
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := c.Authorize(context.Background(), api.AuthorizeRequest{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.tokens.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	for i, a := range f.seenAuth {
		if a != "Bearer tok-1" {
			t.Fatalf("call %d sent Authorization %q", i, a)
		}
	}
}

func TestTokenErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		sentinel error
		status2  int // wanted *ResponseError status
	}{
		{"invalid_grant", 400, `{"error":"invalid_grant","error_description":"replayed jti"}`, ErrUnauthorized, 0},
		{"invalid_client", 401, `{"error":"invalid_client"}`, ErrUnauthorized, 0},
		{"invalid_request", 400, `{"error":"invalid_request"}`, nil, 400},
		{"not bearer", 200, `{"access_token":"x","token_type":"mac","expires_in":60}`, nil, 200},
		{"no lifetime", 200, `{"access_token":"x","token_type":"Bearer","expires_in":0}`, nil, 200},
		{"garbage", 200, `<html>`, nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := New(Options{BaseURL: srv.URL, HTTP: srv.Client(), DeviceID: "d", Key: newTestKey(t, "ec")})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Token(context.Background())
			if err == nil || !strings.HasPrefix(err.Error(), "cloudclient: token: ") {
				t.Fatalf("Token: %v", err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v: want %v", err, tt.sentinel)
			}
			var re *ResponseError
			if tt.status2 != 0 && (!errors.As(err, &re) || re.Status != tt.status2) {
				t.Errorf("error %v: want *ResponseError %d", err, tt.status2)
			}
		})
	}
}

func TestBatchAndReportsChecks(t *testing.T) {
	f := newFakeCloud(t, reply{status: 200, body: `{"decisions":[{"allow":true,"reason":"r","ttl_seconds":1}]}`})
	c := newFakeClient(t, f, nil)
	ctx := context.Background()
	if _, err := c.AuthorizeBatch(ctx, make([]api.AuthorizeRequest, 2)); err == nil || !strings.Contains(err.Error(), "1 decisions for 2 checks") {
		t.Errorf("AuthorizeBatch with a short answer: %v", err)
	}
	before := f.calls.Load()
	if _, err := c.SendReports(ctx, []api.Report{{IdempotencyKey: "k"}, {}}); err == nil || !strings.Contains(err.Error(), "report 1 has no idempotency key") {
		t.Errorf("SendReports without a key: %v", err)
	}
	if f.calls.Load() != before {
		t.Error("SendReports sent a report without an idempotency key")
	}
}

func TestResponseErrorIs(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{{401, ErrUnauthorized}, {403, ErrForbidden}, {429, ErrUnavailable}, {500, ErrUnavailable}, {503, ErrUnavailable}, {400, nil}, {404, nil}, {409, nil}}
	for _, tt := range tests {
		err := error(&ResponseError{Status: tt.status})
		for _, s := range []error{ErrUnauthorized, ErrForbidden, ErrUnavailable} {
			if got := errors.Is(err, s); got != (s == tt.want) {
				t.Errorf("status %d: errors.Is(%v) = %v", tt.status, s, got)
			}
		}
	}
}
