package devcloud

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/updater/artifact"
)

// newTestMender starts a MenderServer with opts (CA filled in when nil)
// and closes it when the test ends.
func newTestMender(t *testing.T, opts MenderOptions) *MenderServer {
	t.Helper()
	if opts.CA == nil {
		ca, err := NewCA("mender test CA")
		if err != nil {
			t.Fatal(err)
		}
		opts.CA = ca
	}
	s, err := NewMenderServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testDevice is a protocol-following Mender client: it signs auth
// requests and sends every other JSON body chunked, as the Go client does.
type testDevice struct {
	t      *testing.T
	srv    *MenderServer
	key    crypto.Signer
	idData string
	client *http.Client
	token  string
}

func newTestDevice(t *testing.T, s *MenderServer, key crypto.Signer, cert *tls.Certificate) *testDevice {
	t.Helper()
	tc := &tls.Config{RootCAs: s.ServerCA()}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &testDevice{
		t: t, srv: s, key: key,
		idData: fmt.Sprintf(`{"serial":"%x"}`, sha256.Sum256([]byte(t.Name()))), // one identity per (sub)test
		client: &http.Client{Transport: tr},
	}
}

func (d *testDevice) id() string { return MenderDeviceID(d.idData) }

// auth sends a signed auth request; on 200 it keeps the token.
func (d *testDevice) auth() int {
	d.t.Helper()
	der, err := x509.MarshalPKIXPublicKey(d.key.Public())
	if err != nil {
		d.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{
		"id_data":      d.idData,
		"pubkey":       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"tenant_token": "",
	})
	req, _ := http.NewRequest("POST", d.srv.URL()+"/api/devices/v1/authentication/auth_requests", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-MEN-Signature", base64.StdEncoding.EncodeToString(signAuth(d.t, d.key, body)))
	resp, err := d.client.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/jwt" {
			d.t.Errorf("auth Content-Type = %q, want application/jwt", ct)
		}
		d.token = string(b)
	}
	return resp.StatusCode
}

func signAuth(t *testing.T, key crypto.Signer, body []byte) []byte {
	t.Helper()
	var sig []byte
	var err error
	if k, ok := key.(ed25519.PrivateKey); ok {
		return ed25519.Sign(k, body)
	}
	sum := sha256.Sum256(body)
	sig, err = key.Sign(rand.Reader, sum[:], crypto.SHA256) // ECDSA: ASN.1 DER
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// do sends a device API request with the JWT; a non-nil body is sent
// chunked (ContentLength unknown).
func (d *testDevice) do(method, path string, body any) (*http.Response, []byte) {
	d.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = io.MultiReader(bytes.NewReader(b)) // hides the length: chunked
	}
	req, _ := http.NewRequest(method, d.srv.URL()+path, rd)
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// A body of unknown length goes out chunked over HTTP/1.1.
	if body != nil && (req.ContentLength != 0 || resp.ProtoMajor != 1) {
		d.t.Errorf("%s %s: body was not sent chunked (length %d, %s)", method, path, req.ContentLength, resp.Proto)
	}
	return resp, b
}

const (
	nextV1 = "/api/devices/v1/deployments/device/deployments/next"
	nextV2 = "/api/devices/v2/deployments/device/deployments/next"
	invURL = "/api/devices/v1/inventory/device/attributes"
)

func statusURL(id string) string {
	return "/api/devices/v1/deployments/device/deployments/" + id + "/status"
}

func mustKey(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ecdsa":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeClock is a settable clock for expiry tests.
// testArtifact writes a module-image Artifact named name for device type
// "edge-1" with a payload of size random bytes.
func testArtifact(t *testing.T, name string, size int) []byte {
	t.Helper()
	payload := make([]byte, size)
	rand.Read(payload)
	return testkit.Artifact{
		Name: name, DeviceType: "edge-1", Module: "single-file", Compression: artifact.None,
		Files: []testkit.File{{Name: "blob", Data: payload}},
	}.Bytes(t)
}

type nextResponse struct {
	ID       string `json:"id"`
	Artifact struct {
		ID           string `json:"id"`
		ArtifactName string `json:"artifact_name"`
		Source       struct {
			URI    string `json:"uri"`
			Expire string `json:"expire"`
		} `json:"source"`
		DeviceTypesCompatible []string `json:"device_types_compatible"`
	} `json:"artifact"`
}

// acceptedDevice is a device that authenticated on s.
func acceptedDevice(t *testing.T, s *MenderServer) *testDevice {
	t.Helper()
	d := newTestDevice(t, s, mustKey(t, "ecdsa"), nil)
	if got := d.auth(); got != http.StatusOK {
		t.Fatalf("auth = %d", got)
	}
	return d
}

func TestMenderDeploymentFlow(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d := acceptedDevice(t, s)
	provides := map[string]string{"artifact_name": "app-v1", "device_type": "edge-1"}
	if resp, _ := d.do("POST", nextV2, map[string]any{"device_provides": provides}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("next before any deployment = %d, want 204", resp.StatusCode)
	}
	name, err := s.UploadArtifact(bytes.NewReader(testArtifact(t, "app-v2", 4096)))
	if err != nil || name != "app-v2" {
		t.Fatalf("UploadArtifact = %q, %v", name, err)
	}
	depID, err := s.CreateDeployment(name, d.id())
	if err != nil {
		t.Fatal(err)
	}
	forms := []struct {
		name, method, path string
		body               any
	}{
		{"v2 POST", "POST", nextV2, map[string]any{"device_provides": provides, "update_control_map": true}},
		{"v1 POST flat", "POST", nextV1, provides},
		{"v1 POST nested", "POST", nextV1, map[string]any{"artifact_name": "app-v1", "device_type": "edge-1", "artifact_provides": map[string]string{"x": "y"}}},
		{"v1 GET", "GET", nextV1 + "?artifact_name=app-v1&device_type=edge-1", nil},
	}
	for _, f := range forms {
		resp, b := d.do(f.method, f.path, f.body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d %s, want 200", f.name, resp.StatusCode, b)
		}
		var nr nextResponse
		if err := json.Unmarshal(b, &nr); err != nil {
			t.Fatal(err)
		}
		if nr.ID != depID || nr.Artifact.ArtifactName != "app-v2" || nr.Artifact.ID == "" ||
			!strings.HasPrefix(nr.Artifact.Source.URI, s.URL()+"/") || nr.Artifact.Source.Expire == "" ||
			!cmp.Equal(nr.Artifact.DeviceTypesCompatible, []string{"edge-1"}) {
			t.Errorf("%s: response %s", f.name, b)
		}
	}
	if resp, _ := d.do("GET", nextV1+"?artifact_name=app-v1", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET next without device_type = %d, want 400", resp.StatusCode)
	}

	for _, st := range []map[string]string{{"status": "downloading"}, {"status": "installing", "substate": "Executing script: x"}} {
		if resp, b := d.do("PUT", statusURL(depID), st); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %v = %d %s, want 204", st, resp.StatusCode, b)
		}
	}
	if resp, _ := d.do("PUT", statusURL(depID), map[string]string{"status": "bogus"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bogus status = %d, want 400", resp.StatusCode)
	}
	if resp, _ := d.do("PUT", statusURL("nope"), map[string]string{"status": "downloading"}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("status of unknown deployment = %d, want 404", resp.StatusCode)
	}
	msgs := []LogMessage{{Timestamp: "2026-11-23T03:41:14Z", Level: "error", Message: "install failed"}}
	if resp, _ := d.do("PUT", "/api/devices/v1/deployments/device/deployments/"+depID+"/log", map[string]any{"messages": msgs}); resp.StatusCode != http.StatusNoContent {
		t.Errorf("log = %d, want 204", resp.StatusCode)
	}
	if diff := cmp.Diff(msgs, s.Logs(d.id(), depID)); diff != "" {
		t.Errorf("Logs (-want +got):\n%s", diff)
	}
	if err := s.Abort(depID); err != nil {
		t.Fatal(err)
	}
	if resp, _ := d.do("PUT", statusURL(depID), map[string]string{"status": "installing"}); resp.StatusCode != http.StatusConflict {
		t.Errorf("status after abort = %d, want 409", resp.StatusCode)
	}
	if diff := cmp.Diff([]string{"downloading", "installing"}, s.Statuses(d.id(), depID)); diff != "" {
		t.Errorf("Statuses (-want +got):\n%s", diff)
	}
	if resp, _ := d.do("GET", nextV1+"?artifact_name=app-v1&device_type=edge-1", nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("next after abort = %d, want 204", resp.StatusCode)
	}
}

func TestMenderFinalStatus(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d := acceptedDevice(t, s)
	name, err := s.UploadArtifact(bytes.NewReader(testArtifact(t, "app-v2", 10)))
	if err != nil {
		t.Fatal(err)
	}
	depID, _ := s.CreateDeployment(name)
	if resp, _ := d.do("PUT", statusURL(depID), map[string]string{"status": "success"}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("success = %d", resp.StatusCode)
	}
	if resp, _ := d.do("PUT", statusURL(depID), map[string]string{"status": "failure"}); resp.StatusCode != http.StatusConflict {
		t.Errorf("status after success = %d, want 409", resp.StatusCode)
	}
	if resp, _ := d.do("GET", nextV1+"?artifact_name=app-v1&device_type=edge-1", nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("next after success = %d, want 204", resp.StatusCode)
	}
}

func TestMenderNextDecisions(t *testing.T) {
	tests := []struct {
		name, artifactName, deviceType string
		wantStatuses                   []string
	}{
		{"already installed", "app-v2", "edge-1", []string{"already-installed"}},
		{"incompatible device type", "app-v1", "other", []string{"noartifact"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestMender(t, MenderOptions{})
			d := acceptedDevice(t, s)
			name, err := s.UploadArtifact(bytes.NewReader(testArtifact(t, "app-v2", 10)))
			if err != nil {
				t.Fatal(err)
			}
			depID, _ := s.CreateDeployment(name)
			q := "?artifact_name=" + tt.artifactName + "&device_type=" + tt.deviceType
			for range 2 {
				if resp, _ := d.do("GET", nextV1+q, nil); resp.StatusCode != http.StatusNoContent {
					t.Errorf("next = %d, want 204", resp.StatusCode)
				}
			}
			if diff := cmp.Diff(tt.wantStatuses, s.Statuses(d.id(), depID)); diff != "" {
				t.Errorf("Statuses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMenderDeploymentTargets(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d1, d2 := acceptedDevice(t, s), newTestDevice(t, s, mustKey(t, "rsa"), nil)
	d2.idData = `{"mac":"other"}`
	if d2.auth() != http.StatusOK {
		t.Fatal("auth d2")
	}
	name, _ := s.UploadArtifact(bytes.NewReader(testArtifact(t, "app-v2", 10)))
	if _, err := s.CreateDeployment(name, d1.id()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDeployment("missing"); err == nil {
		t.Error("CreateDeployment of a missing artifact succeeded")
	}
	q := nextV1 + "?artifact_name=app-v1&device_type=edge-1"
	if resp, _ := d1.do("GET", q, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("targeted device next = %d, want 200", resp.StatusCode)
	}
	if resp, _ := d2.do("GET", q, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("other device next = %d, want 204", resp.StatusCode)
	}
}

func TestMenderInventory(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d := acceptedDevice(t, s)
	put := []map[string]any{{"name": "kernel", "value": "6.1"}, {"name": "ip", "value": []string{"127.0.0.1", "::1"}}}
	if resp, _ := d.do("PUT", invURL, put); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	if resp, _ := d.do("PATCH", invURL, []map[string]any{{"name": "kernel", "value": "6.6"}, {"name": "artifact_name", "value": "app-v1"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH = %d", resp.StatusCode)
	}
	got := map[string]string{}
	for k, v := range s.Inventory(d.id()) {
		got[k] = string(v.Value)
	}
	want := map[string]string{"kernel": `"6.6"`, "ip": `["127.0.0.1","::1"]`, "artifact_name": `"app-v1"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after PUT+PATCH (-want +got):\n%s", diff)
	}
	if resp, _ := d.do("PUT", invURL, []map[string]any{{"name": "only", "value": "x"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	if inv := s.Inventory(d.id()); len(inv) != 1 {
		t.Errorf("after second PUT: %d attributes, want 1 (PUT replaces)", len(inv))
	}
	if resp, _ := d.do("PUT", invURL, map[string]string{"not": "a list"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad inventory = %d, want 400", resp.StatusCode)
	}
}

// deployTo uploads an artifact of size bytes, deploys it to d and returns
// the artifact bytes and the next response.
func deployTo(t *testing.T, s *MenderServer, d *testDevice, size int) ([]byte, nextResponse) {
	t.Helper()
	art := testArtifact(t, "app-v2", size)
	name, err := s.UploadArtifact(bytes.NewReader(art))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDeployment(name, d.id()); err != nil {
		t.Fatal(err)
	}
	resp, b := d.do("GET", nextV1+"?artifact_name=app-v1&device_type=edge-1", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("next = %d", resp.StatusCode)
	}
	var nr nextResponse
	if err := json.Unmarshal(b, &nr); err != nil {
		t.Fatal(err)
	}
	return art, nr
}

func TestMenderDownloadResume(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d := acceptedDevice(t, s)
	art, nr := deployTo(t, s, d, 256<<10)
	const cut = 100_000
	s.SetFaults(MenderFaults{CutAfter: cut})

	// The link needs no JWT; the client asks for gzip as Go's does.
	get := func(rangeHdr string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", nr.Artifact.Source.URI, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		if rangeHdr != "" {
			req.Header.Set("Range", rangeHdr)
		}
		resp, err := d.client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, first, err := get("")
	if err == nil {
		t.Fatalf("first download was not cut (%d bytes)", len(first))
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(art)) || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("first GET: %d, Content-Length %d (want %d), Content-Encoding %q", resp.StatusCode, resp.ContentLength, len(art), resp.Header.Get("Content-Encoding"))
	}
	if len(first) != cut {
		t.Fatalf("got %d bytes before the cut, want %d", len(first), cut)
	}
	resp, rest, err := get(fmt.Sprintf("bytes=%d-", len(first)))
	if err != nil {
		t.Fatal(err)
	}
	wantCR := fmt.Sprintf("bytes %d-%d/%d", cut, len(art)-1, len(art))
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != wantCR || resp.ContentLength != int64(len(art)-cut) {
		t.Errorf("resume: %d, Content-Range %q (want %q), Content-Length %d", resp.StatusCode, resp.Header.Get("Content-Range"), wantCR, resp.ContentLength)
	}
	if !bytes.Equal(append(first, rest...), art) {
		t.Error("resumed download differs from the artifact")
	}
	resp, _, err = get(fmt.Sprintf("bytes=%d-", len(art)+10))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end = %d, want 416", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", s.URL()+menderLinkPrefix+"0123456789abcdef", nil)
	resp, err = d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("guessed link = %d, want 404", resp.StatusCode)
	}
}

func TestMenderDownloadExpired(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	s := newTestMender(t, MenderOptions{Now: clk.Now, LinkLifetime: time.Minute})
	d := acceptedDevice(t, s)
	_, nr := deployTo(t, s, d, 10)
	clk.Advance(2 * time.Minute)
	resp, err := d.client.Get(nr.Artifact.Source.URI)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("expired link = %d, want 403", resp.StatusCode)
	}
}

func TestMenderV2Disabled(t *testing.T) {
	s := newTestMender(t, MenderOptions{DisableV2: true})
	d := acceptedDevice(t, s)
	body := map[string]any{"device_provides": map[string]string{"artifact_name": "a", "device_type": "t"}}
	if resp, _ := d.do("POST", nextV2, body); resp.StatusCode != http.StatusNotFound {
		t.Errorf("v2 next = %d, want 404", resp.StatusCode)
	}
	if resp, _ := d.do("POST", nextV1, map[string]string{"artifact_name": "a", "device_type": "t"}); resp.StatusCode != http.StatusNoContent {
		t.Errorf("v1 next = %d, want 204", resp.StatusCode)
	}
}

func TestMenderFaults(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d := acceptedDevice(t, s)
	q := nextV1 + "?artifact_name=a&device_type=t"

	s.SetFaults(MenderFaults{TooMany: EndpointNext, TooManyCount: 2, RetryAfter: 1500 * time.Millisecond})
	for i := range 2 {
		resp, _ := d.do("GET", q, nil)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
			t.Errorf("request %d: %d Retry-After %q, want 429 and 2", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if resp, _ := d.do("GET", q, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("after 429s = %d, want 204", resp.StatusCode)
	}

	s.SetFaults(MenderFaults{Unauthorized: EndpointInventory})
	inv := []map[string]string{{"name": "a", "value": "b"}}
	if resp, b := d.do("PUT", invURL, inv); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-MEN-RequestID") == "" || !bytes.Contains(b, []byte(`"request_id"`)) {
		t.Errorf("injected 401: %d %s", resp.StatusCode, b)
	}
	if resp, _ := d.do("PUT", invURL, inv); resp.StatusCode != http.StatusOK {
		t.Errorf("after one 401 = %d, want 200", resp.StatusCode)
	}

	s.SetFaults(MenderFaults{Unauthorized: EndpointAuth})
	if got := d.auth(); got != http.StatusUnauthorized {
		t.Errorf("auth with injected 401 = %d", got)
	}
	if got := d.auth(); got != http.StatusOK {
		t.Errorf("auth after injected 401 = %d", got)
	}
}

func TestMenderMTLS(t *testing.T) {
	ca, err := NewCA("mender mtls CA")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	s := newTestMender(t, MenderOptions{CA: ca, ClientCAs: pool, ManualAccept: true})
	key, cert, err := ca.Issue("device-1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}

	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ServerCA()}}}
	if resp, err := noCert.Get(s.URL() + nextV1); err == nil {
		resp.Body.Close()
		t.Errorf("request without client certificate succeeded: %d", resp.StatusCode)
	}

	// The certificate's own key is accepted at once, even with ManualAccept.
	d := newTestDevice(t, s, key, tc)
	if got := d.auth(); got != http.StatusOK {
		t.Errorf("auth with the certificate key = %d, want 200", got)
	}
	// Another key over the same certificate stays pending.
	d2 := newTestDevice(t, s, mustKey(t, "ed25519"), tc)
	d2.idData = `{"mac":"other"}`
	if got := d2.auth(); got != http.StatusUnauthorized {
		t.Errorf("auth with another key = %d, want 401", got)
	}
}

func TestNewMenderServerValidates(t *testing.T) {
	if _, err := NewMenderServer(MenderOptions{}); err == nil {
		t.Error("NewMenderServer without CA succeeded")
	}
}

func TestMenderUploadArtifact(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	art := testArtifact(t, "app-v2", 10)
	if _, err := s.UploadArtifact(bytes.NewReader(art)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadArtifact(bytes.NewReader(art)); !errors.Is(err, ErrArtifactExists) {
		t.Errorf("second upload: %v, want ErrArtifactExists", err)
	}
	if _, err := s.UploadArtifact(strings.NewReader("not an artifact")); err == nil {
		t.Error("upload of garbage succeeded")
	}
	if _, err := s.UploadArtifactFile(t.TempDir() + "/missing.mender"); err == nil {
		t.Error("upload of a missing file succeeded")
	}
}

func TestMenderLogTooLarge(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d := acceptedDevice(t, s)
	name, _ := s.UploadArtifact(bytes.NewReader(testArtifact(t, "app-v2", 10)))
	depID, _ := s.CreateDeployment(name)
	big := []LogMessage{{Timestamp: "t", Level: "info", Message: strings.Repeat("x", menderMaxBody)}}
	if resp, _ := d.do("PUT", "/api/devices/v1/deployments/device/deployments/"+depID+"/log", map[string]any{"messages": big}); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("log over 1 MiB = %d, want 413", resp.StatusCode)
	}
}

// FuzzMenderVerifyJWT checks that the token parser never panics and never
// accepts a token the server did not sign.
func TestMenderManagementAPI(t *testing.T) {
	s := newTestMender(t, MenderOptions{ManagementToken: "secret", ManualAccept: true})
	d := newTestDevice(t, s, mustKey(t, "ecdsa"), nil)
	if d.auth() != http.StatusUnauthorized {
		t.Fatal("device not pending")
	}
	call := func(method, path, token string, body io.Reader) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL()+menderManagePrefix+path, body)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := d.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := call("GET", "authsets", "wrong", nil); code != http.StatusUnauthorized {
		t.Errorf("wrong token = %d, want 401", code)
	}
	if code, b := call("GET", "authsets", "secret", nil); code != http.StatusOK || !bytes.Contains(b, []byte(`"pending"`)) {
		t.Errorf("authsets = %d %s", code, b)
	}
	if code, _ := call("PUT", "devices/"+d.id()+"/status", "secret", strings.NewReader(`{"status":"accepted"}`)); code != http.StatusNoContent {
		t.Fatalf("accept = %d", code)
	}
	if d.auth() != http.StatusOK {
		t.Fatal("device not accepted")
	}
	code, b := call("POST", "artifacts", "secret", bytes.NewReader(testArtifact(t, "app-v2", 10)))
	if code != http.StatusCreated || !bytes.Contains(b, []byte(`"app-v2"`)) {
		t.Fatalf("upload = %d %s", code, b)
	}
	code, b = call("POST", "deployments", "secret", strings.NewReader(`{"artifact_name":"app-v2"}`))
	var dep struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal(b, &dep) != nil || dep.ID == "" {
		t.Fatalf("deploy = %d %s", code, b)
	}
	if resp, _ := d.do("PUT", statusURL(dep.ID), map[string]string{"status": "downloading"}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if code, b := call("GET", "deployments/"+dep.ID+"/devices/"+d.id()+"/statuses", "secret", nil); code != http.StatusOK || string(b) != `["downloading"]` {
		t.Errorf("statuses = %d %s", code, b)
	}
	if code, _ := call("POST", "deployments/"+dep.ID+"/abort", "secret", nil); code != http.StatusNoContent {
		t.Errorf("abort = %d", code)
	}
	if resp, _ := d.do("PUT", statusURL(dep.ID), map[string]string{"status": "installing"}); resp.StatusCode != http.StatusConflict {
		t.Errorf("status after abort = %d, want 409", resp.StatusCode)
	}
	off := newTestMender(t, MenderOptions{})
	req, _ := http.NewRequest("GET", off.URL()+menderManagePrefix+"authsets", nil)
	resp, err := newTestDevice(t, off, mustKey(t, "ecdsa"), nil).client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("management API without a token configured = %d, want 404", resp.StatusCode)
	}
}
