package devcloud

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/openapitest"
)

// newTestControlPlane starts a control plane whose every request and
// response is checked against the OpenAPI document, and closes it when the
// test ends.
func newTestControlPlane(t *testing.T, opts ControlPlaneOptions) *ControlPlane {
	t.Helper()
	if opts.CA == nil {
		ca, err := NewCA("control plane test CA")
		if err != nil {
			t.Fatal(err)
		}
		opts.CA = ca
	}
	opts.Wrap = func(h http.Handler) http.Handler { return openapitest.Handler(t, h) }
	c, err := NewControlPlane(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cpClient talks to a control plane over TLS, optionally presenting a
// client certificate.
type cpClient struct {
	t      *testing.T
	cp     *ControlPlane
	client *http.Client
}

func newCPClient(t *testing.T, cp *ControlPlane, cert *tls.Certificate) *cpClient {
	t.Helper()
	tc := &tls.Config{RootCAs: cp.ServerCA()}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &cpClient{t: t, cp: cp, client: &http.Client{Transport: tr}}
}

// cpReq is one request of a test.
type cpReq struct {
	method, path string
	bearer       string
	body         any    // JSON-encoded unless a url.Values
	invalid      string // the request breaks the contract on purpose: why
}

// do sends req and decodes a JSON answer into out (when not nil).
func (c *cpClient) do(req cpReq, out any) (*http.Response, error) {
	c.t.Helper()
	var body io.Reader
	ct := ""
	switch b := req.body.(type) {
	case nil:
	case url.Values:
		body, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		body, ct = bytes.NewReader(j), "application/json"
	}
	r, err := http.NewRequest(req.method, c.cp.URL()+req.path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if req.bearer != "" {
		r.Header.Set("Authorization", "Bearer "+req.bearer)
	}
	if req.invalid != "" {
		r.Header.Set(openapitest.HeaderExpectInvalid, req.invalid)
	}
	resp, err := c.client.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %d answer %q: %v", req.method, req.path, resp.StatusCode, b, err)
		}
	}
	return resp, nil
}

// mustDo is do that fails the test on a transport error or an unexpected
// status.
func (c *cpClient) mustDo(req cpReq, wantStatus int, out any) *http.Response {
	c.t.Helper()
	resp, err := c.do(req, out)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	if resp.StatusCode != wantStatus {
		c.t.Fatalf("%s %s: status %d, want %d", req.method, req.path, resp.StatusCode, wantStatus)
	}
	return resp
}

// testNode is an enrolled device: its key, identity and a client.
type testNode struct {
	*cpClient
	key  crypto.Signer
	id   string
	kid  string
	cert *x509.Certificate
	alg  jwt.SigningMethod
}

func makeCSR(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "edge-node"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// enrollNode generates nothing: it enrolls key (P-256 when nil) with a
// fresh token and returns the node.
func enrollNode(t *testing.T, cp *ControlPlane, key crypto.Signer) *testNode {
	t.Helper()
	if key == nil {
		key = newP256(t)
	}
	c := newCPClient(t, cp, nil)
	var resp api.EnrollResponse
	c.mustDo(cpReq{method: "POST", path: api.PathEnroll, body: api.EnrollRequest{
		Token: cp.NewEnrollmentToken(), CSR: makeCSR(t, key), Hostname: "edge-01", AgentVersion: "test",
	}}, http.StatusOK, &resp)
	block, _ := pem.Decode([]byte(resp.CertificateChain))
	if block == nil {
		t.Fatalf("no certificate in %q", resp.CertificateChain)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := keyThumbprint(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{cpClient: c, key: key, id: resp.DeviceID, kid: kid, cert: cert, alg: jwt.SigningMethodES256}
	if _, ok := key.(*rsa.PrivateKey); ok {
		n.alg = jwt.SigningMethodRS256
	}
	return n
}

// assertion signs a good assertion after edit changes its header and
// claims.
func (n *testNode) assertion(edit func(header map[string]any, claims jwt.MapClaims)) string {
	n.t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": n.id, "sub": n.id, "aud": n.cp.TokenURL(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": newID(),
	}
	tok := jwt.NewWithClaims(n.alg, claims)
	tok.Header["kid"] = n.kid
	if edit != nil {
		edit(tok.Header, claims)
	}
	s, err := tok.SignedString(n.key)
	if err != nil {
		n.t.Fatal(err)
	}
	return s
}

func grant(assertion string) url.Values {
	return url.Values{"grant_type": {api.GrantTypeJWTBearer}, "assertion": {assertion}}
}

// token gets an access token.
func (n *testNode) token() string {
	n.t.Helper()
	var tr api.TokenResponse
	n.mustDo(cpReq{method: "POST", path: api.PathToken, body: grant(n.assertion(nil))}, http.StatusOK, &tr)
	return tr.AccessToken
}

// withCert is a client of the same node presenting cert (with the node's
// key when key is nil).
func (n *testNode) withCert(cert *x509.Certificate, key crypto.Signer) *cpClient {
	if key == nil {
		key = n.key
	}
	return newCPClient(n.t, n.cp, &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert})
}

func TestControlPlaneEnroll(t *testing.T) {
	iot := &api.IoTEndpoint{Endpoint: "iot.example.com", Region: "eu-west-1"}
	cp := newTestControlPlane(t, ControlPlaneOptions{UpdateServerURL: "https://updates.example.com", IoT: iot})
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{
		{"p256", newP256(t)},
		{"rsa2048", mustRSA(t, 2048)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCPClient(t, cp, nil)
			tok := cp.NewEnrollmentToken()
			req := api.EnrollRequest{Token: tok, CSR: makeCSR(t, tc.key)}
			var resp api.EnrollResponse
			c.mustDo(cpReq{method: "POST", path: api.PathEnroll, body: req}, http.StatusOK, &resp)

			if !strings.HasPrefix(resp.DeviceID, "dev-") {
				t.Errorf("device id %q, want dev-…", resp.DeviceID)
			}
			block, _ := pem.Decode([]byte(resp.CertificateChain))
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.key.Public()) {
				t.Error("certificate is not for the CSR's key")
			}
			if cert.Subject.CommonName != resp.DeviceID {
				t.Errorf("CN %q, want %q", cert.Subject.CommonName, resp.DeviceID)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM([]byte(resp.CABundle)) {
				t.Fatal("CA bundle holds no certificate")
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("device certificate does not verify for client auth against the bundle: %v", err)
			}
			want := api.Endpoints{ControlPlaneURL: cp.URL(), TokenURL: cp.URL() + api.PathToken, UpdateServerURL: "https://updates.example.com",
				IoT: &api.IoTEndpoint{Endpoint: "iot.example.com", Region: "eu-west-1", ThingName: resp.DeviceID}}
			if got, _ := json.Marshal(resp.Endpoints); string(got) != string(mustJSON(want)) {
				t.Errorf("endpoints %s, want %s", got, mustJSON(want))
			}

			// Re-running with the same token is refused; so is the same key
			// with a new token.
			var e api.Error
			c.mustDo(cpReq{method: "POST", path: api.PathEnroll, body: req}, http.StatusUnauthorized, &e)
			if e.Code != api.CodeUnauthorized || !strings.Contains(e.Message, "already used") {
				t.Errorf("reused token: %+v", e)
			}
			req.Token = cp.NewEnrollmentToken()
			c.mustDo(cpReq{method: "POST", path: api.PathEnroll, body: req}, http.StatusConflict, &e)
			if e.Code != api.CodeConflict {
				t.Errorf("same key again: %+v", e)
			}
		})
	}
	if iot.ThingName != "" {
		t.Error("enrollment changed the IoT option")
	}
	devs := cp.Devices()
	if len(devs) != 2 || devs[0].KeyID == "" || devs[0].Certificate == nil || devs[0].Enrolled.IsZero() {
		t.Errorf("Devices() = %+v, want two complete devices", devs)
	}
	if st := cp.Stats(); st.Enrollments != 2 || st.EnrollmentsFailed != 4 {
		t.Errorf("stats %+v, want 2 enrollments and 4 failures", st)
	}
}

func TestControlPlaneEnrollRefused(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{})
	c := newCPClient(t, cp, nil)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	good := makeCSR(t, newP256(t))
	block, _ := pem.Decode([]byte(good))
	der := bytes.Clone(block.Bytes)
	der[len(der)-3] ^= 0xff // in the signature
	badSig := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))

	for _, tc := range []struct {
		name, token, csr string
		invalid          string
		status           int
		msg              string
	}{
		{name: "unknown token", token: "nope", csr: good, status: 401, msg: "invalid enrollment token"},
		{name: "no PEM", csr: "hello", invalid: "csr is not PEM", status: 400, msg: "no PEM"},
		{name: "not a CSR", csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("junk")})), status: 400, msg: "csr:"},
		{name: "bad signature", csr: badSig, status: 400, msg: "signature"},
		{name: "P-384", csr: makeCSR(t, p384), status: 400, msg: "want P-256"},
		{name: "RSA 1024", csr: makeCSR(t, mustRSA(t, 1024)), status: 400, msg: "1024 bits"},
		{name: "Ed25519", csr: makeCSR(t, ed), status: 400, msg: "want ECDSA P-256 or RSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token
			if tok == "" {
				tok = cp.NewEnrollmentToken()
			}
			var e api.Error
			c.mustDo(cpReq{method: "POST", path: api.PathEnroll, invalid: tc.invalid, body: api.EnrollRequest{Token: tok, CSR: tc.csr}}, tc.status, &e)
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q, want it to contain %q", e.Message, tc.msg)
			}
			if tc.token == "" { // a refused CSR does not use up the token
				c.mustDo(cpReq{method: "POST", path: api.PathEnroll, body: api.EnrollRequest{Token: tok, CSR: makeCSR(t, newP256(t))}}, 200, nil)
			}
		})
	}
}

func mustRSA(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestControlPlaneFaults(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{})
	n := enrollNode(t, cp, nil)
	tok := n.token()
	creds := cpReq{method: "GET", path: api.DevicePath(api.PathIoTCredentials, n.id), bearer: tok}

	t.Run("down", func(t *testing.T) {
		cp.SetFaults(ControlPlaneFaults{Down: true})
		defer cp.SetFaults(ControlPlaneFaults{})
		if resp, err := n.do(creds, nil); err == nil {
			t.Fatalf("call answered %d while down", resp.StatusCode)
		}
		if _, err := n.do(cpReq{method: "GET", path: api.PathJWKS}, nil); err == nil {
			t.Fatal("JWKS answered while down")
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		cp.SetFaults(ControlPlaneFaults{Unavailable: true, RetryAfter: 1500 * time.Millisecond})
		defer cp.SetFaults(ControlPlaneFaults{})
		var e api.Error
		resp := n.mustDo(creds, http.StatusServiceUnavailable, &e)
		if e.Code != api.CodeUnavailable || resp.Header.Get("Retry-After") != "2" {
			t.Errorf("got %+v, Retry-After %q; want unavailable, 2", e, resp.Header.Get("Retry-After"))
		}
		n.mustDo(cpReq{method: "POST", path: api.PathToken, body: grant(n.assertion(nil))}, http.StatusServiceUnavailable, nil)
	})
	t.Run("slow", func(t *testing.T) {
		cp.SetFaults(ControlPlaneFaults{Slow: time.Minute})
		defer cp.SetFaults(ControlPlaneFaults{})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, "GET", cp.URL()+api.PathJWKS, nil)
		if resp, err := n.client.Do(r); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("slow call: %v, %v; want the client's deadline", resp, err)
		}
	})
	t.Run("fail500", func(t *testing.T) {
		cp.SetFaults(ControlPlaneFaults{Fail500: 2})
		var e api.Error
		for range 2 {
			n.mustDo(creds, http.StatusInternalServerError, &e)
			if e.Code != api.CodeInternal {
				t.Errorf("got %+v, want internal", e)
			}
		}
		n.mustDo(creds, http.StatusOK, nil)
	})
	t.Run("401 once", func(t *testing.T) {
		cp.SetFaults(ControlPlaneFaults{Unauthorized401Once: true})
		resp := n.mustDo(creds, http.StatusUnauthorized, nil)
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
		n.mustDo(creds, http.StatusOK, nil)
	})
	t.Run("expired tokens", func(t *testing.T) {
		cp.SetFaults(ControlPlaneFaults{ExpiredTokens: true})
		defer cp.SetFaults(ControlPlaneFaults{})
		var tr api.TokenResponse
		n.mustDo(cpReq{method: "POST", path: api.PathToken, body: grant(n.assertion(nil))}, http.StatusOK, &tr)
		if tr.ExpiresIn <= 0 {
			t.Errorf("expires_in %d, want the usual lifetime", tr.ExpiresIn)
		}
		var e api.Error
		n.mustDo(cpReq{method: "GET", path: creds.path, bearer: tr.AccessToken}, http.StatusUnauthorized, &e)
		if !strings.Contains(e.Message, "expired") {
			t.Errorf("message %q, want expired", e.Message)
		}
	})
	if st := cp.Stats(); st.FaultsInjected < 8 {
		t.Errorf("FaultsInjected = %d, want at least 8", st.FaultsInjected)
	}
}

// TestControlPlaneOneTimeUnderRace sends the same enrollment token, and
// the same assertion, from many goroutines: exactly one of each succeeds.
func TestControlPlaneOneTimeUnderRace(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{})
	n := enrollNode(t, cp, nil)
	const callers = 16
	race := func(req func(i int) cpReq) map[int]int {
		statuses := make(chan int, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				resp, err := n.do(req(i), nil)
				if err != nil {
					t.Error(err)
					return
				}
				statuses <- resp.StatusCode
			})
		}
		wg.Wait()
		close(statuses)
		count := make(map[int]int)
		for s := range statuses {
			count[s]++
		}
		return count
	}
	tok := cp.NewEnrollmentToken()
	keys := make([]crypto.Signer, callers)
	for i := range keys {
		keys[i] = newP256(t)
	}
	got := race(func(i int) cpReq {
		return cpReq{method: "POST", path: api.PathEnroll, body: api.EnrollRequest{Token: tok, CSR: makeCSR(t, keys[i])}}
	})
	if got[200] != 1 || got[401] != callers-1 {
		t.Errorf("one token, %d enrollments: statuses %v, want one 200", callers, got)
	}
	assertion := n.assertion(nil)
	got = race(func(int) cpReq { return cpReq{method: "POST", path: api.PathToken, body: grant(assertion)} })
	if got[200] != 1 || got[400] != callers-1 {
		t.Errorf("one assertion, %d token requests: statuses %v, want one 200", callers, got)
	}
}
