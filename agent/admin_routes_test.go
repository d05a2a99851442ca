package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
)

// TestAdminRoutes drives every admin route of a running agent over its
// unix socket, in an order in which each one has what it needs, and walks
// the JSON of every reply: snake_case keys and no duration in
// nanoseconds.
func TestAdminRoutes(t *testing.T) {
	cfg := testConfig(t, "device: {device_type: test-device}\nupdates: {enabled: true, server_url: 'https://127.0.0.1:9', poll_interval: 30s}\n")
	startAgent(t, cfg)
	keyPEM, certPEM := selfSignedPEM(t, "hub.example")
	importBody := mustJSON(t, adminapi.ImportRequest{Kind: "keystore", KeyPEM: keyPEM, CertPEM: certPEM})

	tests := []struct {
		method, path string
		body         []byte
		wantCode     int
		wantBody     string
	}{
		{"GET", "/v1/version", nil, 200, `"api": 2`},
		{"GET", "/v1/status", nil, 200, `"state_dir": `},
		{"POST", "/v1/stores", mustJSON(t, adminapi.CreateStoreRequest{Name: "hub-1", Kind: "keystore"}), 200, `created keystore \"hub-1\"`},
		{"POST", "/v1/stores", mustJSON(t, adminapi.CreateStoreRequest{Name: "hub-1", Kind: "keystore"}), 409, `"error":`},
		{"POST", "/v1/stores", []byte(`{"name": "x", "kind": "keystore", "colour": "red"}`), 400, `unknown field`},
		{"POST", "/v1/stores", mustJSON(t, adminapi.CreateStoreRequest{Name: "ca", Kind: "truststore"}), 200, `created truststore`},
		{"PUT", "/v1/stores/hub-1/entries/hub", importBody, 200, `imported \"hub\" into keystore \"hub-1\"`},
		{"PUT", "/v1/stores/ca/entries/hub", importBody, 422, `not a keystore`},
		{"PUT", "/v1/stores/ca/entries/root", mustJSON(t, adminapi.ImportRequest{Kind: "truststore", CertPEM: certPEM}), 200, `"aliases": [`},
		{"GET", "/v1/stores", nil, 200, `"sha256_fingerprint": `},
		{"GET", "/v1/stores?kind=truststore", nil, 200, `"name": "ca"`},
		{"PUT", "/v1/refs/hub-tls", mustJSON(t, adminapi.SetRefRequest{Store: "hub-1"}), 200, `ref://hub-tls -> hub-1`},
		{"GET", "/v1/refs", nil, 200, `"hub-tls": "hub-1"`},
		// A store named by reference, escaped into one path segment.
		{"GET", "/v1/stores/ref:%2F%2Fhub-tls/entries/hub/certificates", nil, 200, `BEGIN CERTIFICATE`},
		{"GET", "/v1/stores/hub-1/entries/nope/certificates", nil, 404, `"error":`},
		{"DELETE", "/v1/stores/hub-1", nil, 409, `"error":`}, // referenced
		{"DELETE", "/v1/refs/hub-tls", nil, 200, `deleted ref://hub-tls`},
		{"DELETE", "/v1/stores/hub-1/entries/hub?kind=keystore", nil, 200, `deleted alias`},
		{"DELETE", "/v1/stores/hub-1?kind=truststore", nil, 422, `not a truststore`},
		{"DELETE", "/v1/stores/hub-1?kind=keystore", nil, 200, `deleted keystore \"hub-1\"`},
		{"GET", "/v1/keypairs", nil, 200, `"key_pairs": []`},
		{"POST", "/v1/keypairs", mustJSON(t, adminapi.GenerateKeyPairRequest{Bits: 2048}), 200, `"state": "active"`},
		{"GET", "/v1/keypairs", nil, 200, `"kid": `},
		{"GET", "/v1/keypairs/public?which=active&format=pem", nil, 200, `BEGIN PUBLIC KEY`},
		{"GET", "/v1/keypairs/public?which=active&format=jwks", nil, 200, `\"keys\"`},
		{"GET", "/v1/keypairs/public?which=active&format=der", nil, 400, `want pem, cert or jwks`},
		{"POST", "/v1/keypairs/verify", mustJSON(t, adminapi.VerifyKeyPairRequest{Token: []byte("not.a.token")}), 404, `"error":`},
		{"DELETE", "/v1/keypairs/active", nil, 200, `deleted the active key pair`},
		{"GET", "/v1/update/status", nil, 200, `"poll_interval": "30s"`},
		{"POST", "/v1/update/check", nil, 200, `"status": "check requested"`},
		{"POST", "/v1/update/install", []byte("not an artifact"), 200, `"outcome": "failure"`},
		{"POST", "/v1/update/commit", nil, 409, `"error":`},
		{"POST", "/v1/update/rollback", nil, 409, `"error":`},
		{"GET", "/v1/cloud/status", nil, 409, `the control plane link is off`},
		{"POST", "/v1/cloud/authorize", []byte(`{"user": {"id": "alice"}, "action": "app.read", "resource": {"type": "space", "id": "s"}}`), 409, `the control plane link is off`},
		{"POST", "/v1/cloud/report", []byte(`{"stream": "s", "type": "t"}`), 409, `the control plane link is off`},
		{"POST", "/v1/clients/reload", nil, 409, `the client API is not running`},
		{"GET", "/v1/sessions", nil, 409, `no sessions`},
		{"DELETE", "/v1/sessions/0123456789ab", nil, 409, `no sessions`},
		{"DELETE", "/v1/sessions?user=nodir", nil, 400, `give DIRECTORY/USER_ID`},
		{"PUT", "/v1/status", nil, 405, ""},
		{"POST", "/v1/keystore", nil, 404, ""}, // the single route of before
	}
	for _, tt := range tests {
		code, header, body := adminCall(t, cfg.Admin.Socket, tt.method, tt.path, tt.body)
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s %s = %d %s, want %d containing %s", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
		}
		if got := header.Get(adminapi.HeaderAPI); got != strconv.Itoa(adminapi.Version) {
			t.Errorf("%s %s: %s header %q, want %d", tt.method, tt.path, adminapi.HeaderAPI, got, adminapi.Version)
		}
		if header.Get("Content-Type") != "application/json" {
			continue
		}
		for _, p := range jsonProblems(t, body) {
			t.Errorf("%s %s: %s", tt.method, tt.path, p)
		}
	}
}

// dataMaps are the keys whose values are maps keyed by data (names the
// operator chose), not by field names.
var dataMaps = map[string]bool{"refs": true, "provides": true, "virtual_hosts": true}

var (
	snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// durationKey names a key whose number would be a duration.
	durationKey = regexp.MustCompile(`interval|timeout|duration|delay|backoff|ttl|uptime|_after$`)
)

// jsonProblems walks a JSON document and lists each key that is not
// snake_case and each number under a duration's key that is not an
// explicit _seconds field.
func jsonProblems(t *testing.T, doc string) []string {
	t.Helper()
	var v any
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, doc)
	}
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !snakeCase.MatchString(k) {
					out = append(out, fmt.Sprintf("key %s.%s is not snake_case", path, k))
				}
				if _, isNum := e.(json.Number); isNum && durationKey.MatchString(k) && !strings.HasSuffix(k, "_seconds") {
					out = append(out, fmt.Sprintf("%s.%s = %v: a duration must be a string or a _seconds field", path, k, e))
				}
				if dataMaps[k] {
					continue
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", v)
	return out
}

func adminCall(t *testing.T, socket, method, path string, body []byte) (int, http.Header, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, err := http.NewRequest(method, "http://edgefort"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(data)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// selfSignedPEM makes a P-256 key and a self-signed certificate for name.
func selfSignedPEM(t *testing.T, name string) (keyPEM, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
