package cloudclient

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/openapitest"
)

// testPolicy: alice develops in sales, analysts (bob, and anyone who
// arrives in the group) view it, nobody else may do anything.
const testPolicy = `
version: 1
ttl: {allow: 60s, deny: 10s}
roles:
  viewer: [app.read]
  developer: [app.read, app.reload]
groups:
  analysts: [bob]
spaces:
  sales:
    members:
      user:alice: developer
      group:analysts: viewer
`

// testCloud is a devcloud control plane on loopback TLS, and HTTP clients
// that trust it and check every exchange against the OpenAPI document.
type testCloud struct {
	cp *devcloud.ControlPlane
	// http validates traffic with openapitest; raw does not (benchmarks).
	http, raw *http.Client
}

func newTestCloud(t testing.TB, mod func(*devcloud.ControlPlaneOptions)) *testCloud {
	t.Helper()
	ca, err := devcloud.NewCA("cloudclient test")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := devcloud.ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	opts := devcloud.ControlPlaneOptions{CA: ca, Policy: pol}
	if mod != nil {
		mod(&opts)
	}
	cp, err := devcloud.NewControlPlane(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: cp.ServerCA(), MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &testCloud{
		cp:   cp,
		http: &http.Client{Transport: openapitest.Transport(t, tr)},
		raw:  &http.Client{Transport: tr},
	}
}

// device is an enrolled device: its key and identity.
type device struct {
	key crypto.Signer
	id  string
}

// enroll makes a key of kind ("ec" or "rsa") and enrolls it.
func (tc *testCloud) enroll(t testing.TB, kind string) device {
	t.Helper()
	key := newTestKey(t, kind)
	resp, err := Enroll(context.Background(), EnrollOptions{
		BaseURL: tc.cp.URL(), HTTP: tc.http, Token: tc.cp.NewEnrollmentToken(), Key: key, Hostname: "node-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return device{key: key, id: resp.DeviceID}
}

// client returns a client for dev with fast retries; mod edits the options.
func (tc *testCloud) client(t testing.TB, dev device, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{
		BaseURL:  tc.cp.URL(),
		HTTP:     tc.http,
		DeviceID: dev.id,
		Key:      dev.key,
		Timeout:  2 * time.Second,
		Retry:    Retry{Attempts: 3, Initial: time.Millisecond, Max: 10 * time.Millisecond},
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

func TestEnrollDevcloud(t *testing.T) {
	for _, kind := range []string{"ec", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			tc := newTestCloud(t, nil)
			key := newTestKey(t, kind)
			opts := EnrollOptions{
				BaseURL: tc.cp.URL(), HTTP: tc.http, Token: tc.cp.NewEnrollmentToken(),
				Key: key, Hostname: "node-1", AgentVersion: "test",
			}
			resp, err := Enroll(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			chain, err := parseCertificates([]byte(resp.CertificateChain))
			if err != nil {
				t.Fatal(err)
			}
			if !chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Error("the device certificate is not for the local key")
			}
			roots := x509.NewCertPool()
			cas, _ := parseCertificates([]byte(resp.CABundle))
			for _, c := range cas {
				roots.AddCert(c)
			}
			if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("device certificate does not verify for client auth: %v", err)
			}
			if got := resp.Endpoints.TokenURL; got != tc.cp.TokenURL() {
				t.Errorf("token URL %q, want %q", got, tc.cp.TokenURL())
			}
			// The identity works: the device gets a token.
			if _, err := tc.client(t, device{key, resp.DeviceID}, nil).Token(context.Background()); err != nil {
				t.Errorf("token after enrollment: %v", err)
			}
			// Re-running with the same token is refused.
			_, err = Enroll(context.Background(), opts)
			if !errors.Is(err, ErrUnauthorized) || !strings.HasPrefix(err.Error(), "cloudclient: enroll: ") {
				t.Errorf("second enrollment with the same token: %v, want ErrUnauthorized", err)
			}
			if s := tc.cp.Stats(); s.Enrollments != 1 || s.EnrollmentsFailed != 1 {
				t.Errorf("enrollments %d, failed %d; want 1 and 1", s.Enrollments, s.EnrollmentsFailed)
			}
		})
	}
}

func TestEnrollChecksAnswer(t *testing.T) {
	key := newTestKey(t, "ec")
	other := newTestKey(t, "ec")
	tc := newTestCloud(t, nil)
	resp, err := Enroll(context.Background(), EnrollOptions{BaseURL: tc.cp.URL(), HTTP: tc.http, Token: tc.cp.NewEnrollmentToken(), Key: key, Hostname: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkEnrollment(resp, other.Public()); err == nil || !strings.Contains(err.Error(), "not for the device key") {
		t.Errorf("certificate for another key: %v", err)
	}
	bad := *resp
	bad.CertificateChain += "garbage"
	if err := checkEnrollment(&bad, key.Public()); err == nil {
		t.Error("trailing garbage in the chain accepted")
	}
	bad = *resp
	bad.DeviceID = "dev-someone-else"
	if err := checkEnrollment(&bad, key.Public()); err == nil {
		t.Error("certificate for another device ID accepted")
	}
}

func TestTokenDevcloud(t *testing.T) {
	t.Run("50 concurrent callers, one token", func(t *testing.T) {
		tc := newTestCloud(t, nil)
		c := tc.client(t, tc.enroll(t, "ec"), nil)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 50 {
			wg.Go(func() {
				if _, err := c.Token(context.Background()); err != nil {
					failed.Add(1)
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := tc.cp.Stats().TokensIssued; n != 1 {
			t.Errorf("%d tokens issued, want 1", n)
		}
	})
	t.Run("refreshed before expiry", func(t *testing.T) {
		// A 2 s token is refreshed half-way; the client's clock is moved
		// (within the server's leeway for assertions).
		tc := newTestCloud(t, func(o *devcloud.ControlPlaneOptions) { o.TokenLifetime = 2 * time.Second })
		var offset atomic.Int64
		c := tc.client(t, tc.enroll(t, "ec"), func(o *Options) {
			o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		})
		ctx := context.Background()
		t1, err := c.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if t2, _ := c.Token(ctx); t2 != t1 {
			t.Error("token not cached")
		}
		offset.Store(int64(1500 * time.Millisecond))
		t3, err := c.Token(ctx)
		if err != nil || t3 == t1 {
			t.Errorf("after 1.5 s of a 2 s token: %v, same token %v", err, t3 == t1)
		}
		if n := tc.cp.Stats().TokensIssued; n != 2 {
			t.Errorf("%d tokens issued, want 2", n)
		}
	})
	t.Run("401 once: one refresh and retry", func(t *testing.T) {
		tc := newTestCloud(t, nil)
		c := tc.client(t, tc.enroll(t, "ec"), nil)
		c.Token(context.Background())
		tc.cp.SetFaults(devcloud.ControlPlaneFaults{Unauthorized401Once: true})
		d, err := c.Authorize(context.Background(), aliceReads("sales"))
		if err != nil || !d.Allow {
			t.Fatalf("Authorize = %+v, %v; want an allow", d, err)
		}
		s := tc.cp.Stats()
		if s.TokensIssued != 2 || s.Unauthorized != 1 || s.AuthorizeCalls != 1 {
			t.Errorf("tokens %d, 401s %d, authorize calls %d; want 2, 1, 1", s.TokensIssued, s.Unauthorized, s.AuthorizeCalls)
		}
	})
	t.Run("expired tokens: ErrUnauthorized after one refresh", func(t *testing.T) {
		tc := newTestCloud(t, nil)
		c := tc.client(t, tc.enroll(t, "ec"), nil)
		tc.cp.SetFaults(devcloud.ControlPlaneFaults{ExpiredTokens: true})
		_, err := c.Authorize(context.Background(), aliceReads("sales"))
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Authorize: %v, want ErrUnauthorized", err)
		}
		if s := tc.cp.Stats(); s.TokensIssued != 2 || s.Unauthorized != 2 {
			t.Errorf("tokens %d, 401s %d; want 2 and 2", s.TokensIssued, s.Unauthorized)
		}
	})
}

// TestAssertionsRefused posts hand-made assertions signed with an enrolled
// device key: a good one is accepted once and refused when replayed; bad
// ones are refused.
func TestAssertionsRefused(t *testing.T) {
	tc := newTestCloud(t, nil)
	dev := tc.enroll(t, "ec")
	kid, _ := KeyID(dev.key.Public())
	now := time.Now()
	claims := func(mod func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{
			Issuer: dev.id, Subject: dev.id, Audience: jwt.ClaimStrings{tc.cp.TokenURL()},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
			ID: b64([]byte(now.String())),
		}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	tests := []struct {
		name   string
		claims jwt.RegisteredClaims
		sends  []int // statuses of successive sends of the same assertion
		reason string
	}{
		{"good, then replayed", claims(nil), []int{200, 400}, "jti already used"},
		{"expired", claims(func(c *jwt.RegisteredClaims) {
			c.IssuedAt, c.ExpiresAt, c.ID = jwt.NewNumericDate(now.Add(-10*time.Minute)), jwt.NewNumericDate(now.Add(-8*time.Minute)), "expired"
		}), []int{400}, "expired"},
		{"wrong audience", claims(func(c *jwt.RegisteredClaims) {
			c.Audience, c.ID = jwt.ClaimStrings{tc.cp.URL() + "/other"}, "aud"
		}), []int{400}, "aud"},
		{"another issuer", claims(func(c *jwt.RegisteredClaims) { c.Issuer, c.ID = "dev-other", "iss" }), []int{400}, "iss"},
		{"too long-lived", claims(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt, c.ID = jwt.NewNumericDate(now.Add(time.Hour)), "long"
		}), []int{400}, "lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := signJWT(dev.key, jwt.SigningMethodES256, kid, tt.claims)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.sends {
				resp, err := tc.http.PostForm(tc.cp.TokenURL(), url.Values{"grant_type": {api.GrantTypeJWTBearer}, "assertion": {a}})
				if err != nil {
					t.Fatal(err)
				}
				var oe api.OAuthError
				json.NewDecoder(resp.Body).Decode(&oe)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("send %d: status %d, want %d", i+1, resp.StatusCode, want)
				}
				if want == 400 && (oe.Code != "invalid_grant" || !strings.Contains(oe.Description, tt.reason)) {
					t.Errorf("send %d: %+v, want invalid_grant about %q", i+1, oe, tt.reason)
				}
			}
		})
	}
}

func aliceReads(space string) api.AuthorizeRequest {
	return api.AuthorizeRequest{
		User:     api.User{ID: "alice", Directory: "corp"},
		Action:   "app.read",
		Resource: api.Resource{Type: "app", ID: "dash", Space: space},
	}
}

// expectInvalid marks every request but token requests as breaking the contract on purpose.
type expectInvalid struct{ next http.RoundTripper }

func (e expectInvalid) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == api.PathToken {
		return e.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set(openapitest.HeaderExpectInvalid, "test sends a bad request")
	return e.next.RoundTrip(r)
}

func TestRetriesDevcloud(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		faults     devcloud.ControlPlaneFaults
		call       func(*Client) error
		wantErr    error // nil: success
		wantFaults int64 // answers the faults made
		want       func(devcloud.ControlPlaneStats) bool
	}{
		{
			name:   "500s: authorize gives up after the attempts",
			faults: devcloud.ControlPlaneFaults{Fail500: 100},
			call: func(c *Client) error {
				_, err := c.Authorize(ctx, aliceReads("sales"))
				return err
			},
			wantErr: ErrUnavailable, wantFaults: 3,
		},
		{
			name:   "down: authorize gives up after the attempts",
			faults: devcloud.ControlPlaneFaults{Down: true},
			call: func(c *Client) error {
				_, err := c.AuthorizeBatch(ctx, []api.AuthorizeRequest{aliceReads("sales")})
				return err
			},
			wantErr: ErrUnavailable, wantFaults: 3,
		},
		{
			name:   "503 with Retry-After: iot credentials give up",
			faults: devcloud.ControlPlaneFaults{Unavailable: true, RetryAfter: time.Second},
			call: func(c *Client) error {
				_, err := c.IoTCredentials(ctx)
				return err
			},
			wantErr: ErrUnavailable, wantFaults: 3,
		},
		{
			name:   "reports are retried through 500s",
			faults: devcloud.ControlPlaneFaults{Fail500: 2},
			call: func(c *Client) error {
				r, err := c.SendReports(ctx, []api.Report{{IdempotencyKey: "k1", Stream: "s", Type: "t", Time: time.Now()}})
				if err == nil && (len(r.Acknowledged) != 1 || r.Acknowledged[0] != "k1") {
					err = errors.New("k1 not acknowledged")
				}
				return err
			},
			wantFaults: 2,
			want:       func(s devcloud.ControlPlaneStats) bool { return s.ReportCalls == 1 && s.ReportsRecorded == 1 },
		},
		{
			name:   "jwks is retried through 500s",
			faults: devcloud.ControlPlaneFaults{Fail500: 1},
			call: func(c *Client) error {
				b, err := c.JWKS(ctx)
				if err == nil && !json.Valid(b) {
					err = errors.New("jwks not JSON")
				}
				return err
			},
			wantFaults: 1,
			want:       func(s devcloud.ControlPlaneStats) bool { return s.JWKSCalls == 1 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCloud(t, nil)
			c := tc.client(t, tc.enroll(t, "ec"), func(o *Options) { o.Retry.Max = 50 * time.Millisecond })
			if _, err := c.Token(ctx); err != nil {
				t.Fatal(err)
			}
			tc.cp.SetFaults(tt.faults)
			err := tt.call(c)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			s := tc.cp.Stats()
			if s.FaultsInjected != tt.wantFaults {
				t.Errorf("%d faulty answers, want %d", s.FaultsInjected, tt.wantFaults)
			}
			if tt.want != nil && !tt.want(s) {
				t.Errorf("stats %+v", s)
			}
		})
	}
	t.Run("400 is not retried", func(t *testing.T) {
		tc := newTestCloud(t, nil)
		dev := tc.enroll(t, "ec")
		bad := &http.Client{Transport: expectInvalid{tc.http.Transport}}
		c := tc.client(t, dev, func(o *Options) { o.HTTP = bad })
		c.Token(ctx)
		r := aliceReads("sales")
		r.Resource.Type = "folder"
		_, err := c.Authorize(ctx, r)
		var re *ResponseError
		if !errors.As(err, &re) || re.Status != 400 || re.Code != "bad_request" || errors.Is(err, ErrUnavailable) {
			t.Fatalf("error %v, want a 400 bad_request", err)
		}
		if n := tc.cp.Stats().AuthorizeCalls; n != 1 {
			t.Errorf("%d authorize calls, want 1", n)
		}
	})
}

func TestCredentialsDevcloud(t *testing.T) {
	// Credentials live 5 min 2 s: the cache keeps them about 2 s, then
	// replaces them while they are still valid.
	tc := newTestCloud(t, func(o *devcloud.ControlPlaneOptions) { o.CredentialsLifetime = 5*time.Minute + 2*time.Second })
	c := tc.client(t, tc.enroll(t, "ec"), nil)
	p := NewIoTCredentials(c)
	ctx := context.Background()
	cr, err := p.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Source != CredentialsSource || !cr.CanExpire || cr.AccessKeyID == "" || cr.SecretAccessKey == "" || cr.SessionToken == "" {
		t.Errorf("credentials %+v", cr)
	}
	issued, _, ok := tc.cp.LookupIoTCredentials(cr.AccessKeyID)
	if !ok {
		t.Fatal("devcloud does not know the credentials")
	}
	// The cache reports them expiring ExpiryWindow early.
	if want := issued.Expiration.Add(-CredentialsExpiryWindow); !cr.Expires.Equal(want) {
		t.Errorf("Expires %v, want %v", cr.Expires, want)
	}
	cr2, err := p.Retrieve(ctx)
	if err != nil || cr2.AccessKeyID != cr.AccessKeyID {
		t.Errorf("second Retrieve: %v, same key %v; want the cached credentials", err, cr2.AccessKeyID == cr.AccessKeyID)
	}
	if n := tc.cp.Stats().IoTCredentials; n != 1 {
		t.Errorf("%d credentials issued, want 1", n)
	}
	time.Sleep(2100 * time.Millisecond)
	cr3, err := p.Retrieve(ctx)
	if err != nil || cr3.AccessKeyID == cr.AccessKeyID {
		t.Errorf("Retrieve within 5 min of expiry: %v, same key %v; want new credentials", err, cr3.AccessKeyID == cr.AccessKeyID)
	}
	if n := tc.cp.Stats().IoTCredentials; n != 2 {
		t.Errorf("%d credentials issued, want 2", n)
	}
}
