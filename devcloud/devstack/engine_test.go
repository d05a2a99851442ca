package devstack

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/backendjwt"
	"github.com/edgefort/edgefort/keystore"
)

// TestDevEngineAppliesKeyOnce: the dev engine answers every webhook but
// applies each Idempotency-Key once, as the README asks of a real target;
// a second delivery of one key is logged as a duplicate.
func TestDevEngineAppliesKeyOnce(t *testing.T) {
	dir := t.TempDir()
	e, err := startEngine(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, key := range []string{"ev-1", "ev-1", "ev-2"} {
		req, _ := http.NewRequest(http.MethodPost, e.URL()+"/reload", strings.NewReader(`{"idempotency_key":"`+key+`"}`))
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("POST %s: %s", key, resp.Status)
		}
	}
	f, err := os.Open(filepath.Join(dir, EngineDir, EngineLog))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type line struct {
		EventID   string `json:"event_id"`
		Duplicate bool   `json:"duplicate"`
	}
	var got []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		got = append(got, l)
	}
	want := []line{{"ev-1", false}, {"ev-1", true}, {"ev-2", false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("engine log (-want +got):\n%s", diff)
	}
}

// identityRig is a node's identity-token side for the engine tests: a
// Minter signing with an ECDSA key from a keystore, its JWK Set served
// over TLS (counting fetches), and the pool that trusts that server.
type identityRig struct {
	ks      *keystore.Manager
	minter  *backendjwt.Minter
	jwksURL string
	roots   *x509.CertPool
	fetches atomic.Int64
	skew    atomic.Int64 // added to the minter's clock, in nanoseconds
}

const rigIssuer = "urn:edgefort:node:dev"

func newIdentityRig(t *testing.T) *identityRig {
	t.Helper()
	ks, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.CreateStore("identity", keystore.KindKeystore); err != nil {
		t.Fatal(err)
	}
	rig := &identityRig{ks: ks}
	rig.newKey(t)
	now := func() time.Time { return time.Now().Add(time.Duration(rig.skew.Load())) }
	rig.minter, err = backendjwt.New(backendjwt.Config{Keystore: "identity", Audience: "local-engine"},
		backendjwt.Deps{Keystores: ks, Issuer: rigIssuer, Logger: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rig.fetches.Add(1)
		rig.minter.JWKS().ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the engine that does not trust it fails handshakes on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rig.jwksURL = srv.URL + "/.well-known/jwks.json"
	rig.roots = x509.NewCertPool()
	rig.roots.AddCert(srv.Certificate())
	return rig
}

// newKey puts a new signing key in the node's keystore: the next token
// has a new kid.
func (rig *identityRig) newKey(t *testing.T) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node identity"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := rig.ks.PutEntry("identity", "signer", key, []*x509.Certificate{cert}); err != nil {
		t.Fatal(err)
	}
}

func (rig *identityRig) mint(t *testing.T, id auth.Identity) string {
	t.Helper()
	tok, err := rig.minter.Mint(id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newTestEngine(t *testing.T, opts engineOptions) *engine {
	t.Helper()
	e, err := startEngineWith(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

var alice = auth.Identity{UserID: "alice", Directory: "devcloud", Groups: []string{"analysts"}, Solution: "jwt"}

// get sends a GET with headers and returns the status and body.
func get(t *testing.T, url string, headers map[string]string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestDevEngineEchoesIdentity: the JSON API shows the identity headers,
// the forwarding headers and the identity JWT's claims, verified against
// the node's JWKS, fetched over TLS only once a token arrives.
func TestDevEngineEchoesIdentity(t *testing.T) {
	rig := newIdentityRig(t)
	e := newTestEngine(t, engineOptions{JWKSURL: rig.jwksURL, RootCAs: rig.roots, Issuer: rigIssuer, Audience: "local-engine"})
	headers := map[string]string{
		"X-Edgefort-User": "alice", "X-Edgefort-Directory": "devcloud", "X-Edgefort-Groups": "analysts",
		"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "node.local:8443",
		"Forwarded": `for=192.0.2.7;proto=https;host="node.local:8443"`,
	}
	status, body := get(t, e.URL()+"/api/v1/apps/sales", headers)
	if status != http.StatusOK || rig.fetches.Load() != 0 {
		t.Fatalf("without a token: %d, %d JWKS fetches: %s; want 200 and none", status, rig.fetches.Load(), body)
	}

	headers["X-Edgefort-Identity"] = rig.mint(t, alice)
	for range 2 {
		status, body = get(t, e.URL()+"/api/v1/apps/sales", headers)
		if status != http.StatusOK {
			t.Fatalf("with alice's token: %d %s", status, body)
		}
	}
	if n := rig.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times for two tokens of one key; want 1", n)
	}
	var got received
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.JWT == nil || !got.JWT.Verified {
		t.Fatalf("jwt = %+v; want verified", got.JWT)
	}
	claims := got.JWT.Claims
	got.JWT = nil
	want := received{
		App: "sales", Method: "GET", Path: "/api/v1/apps/sales", RemoteAddr: got.RemoteAddr,
		Host: strings.TrimPrefix(e.URL(), "http://"), Seq: 3, // the third API request
		Headers: identityHeaders{User: "alice", Directory: "devcloud", Groups: "analysts"},
		Forwarded: map[string]string{"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https",
			"X-Forwarded-Host": "node.local:8443", "Forwarded": `for=192.0.2.7;proto=https;host="node.local:8443"`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("echo (-want +got):\n%s", diff)
	}
	wantClaims := map[string]any{"iss": rigIssuer, "sub": "alice", "aud": "local-engine", "directory": "devcloud",
		"groups": []any{"analysts"}, "solution": "jwt"}
	for k, v := range wantClaims {
		if !cmp.Equal(v, claims[k]) {
			t.Errorf("claim %s = %v; want %v", k, claims[k], v)
		}
	}

	status, body = get(t, e.URL()+"/", headers)
	if status != http.StatusOK || !bytes.Contains(body, []byte("local engine")) || !bytes.Contains(body, []byte("<td>alice</td>")) ||
		!bytes.Contains(body, []byte("verified, kid")) {
		t.Errorf("page: %d\n%s\nwant the local engine page showing alice and a verified token", status, body)
	}
	status, body = get(t, e.URL()+"/", map[string]string{"X-Edgefort-User": "<script>alert(1)</script>"})
	if status != http.StatusOK || bytes.Contains(body, []byte("<script>")) || !bytes.Contains(body, []byte("&lt;script&gt;")) {
		t.Errorf("page with markup in a header: %d\n%s\nwant it escaped", status, body)
	}
	status, body = get(t, e.URL()+"/api/v1/apps", headers)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"sales"`)) || !bytes.Contains(body, []byte(`"sub": "alice"`)) {
		t.Errorf("apps: %d %s", status, body)
	}
}

// TestDevEngineRefusesBadTokens: a token that does not verify is refused
// with 401, as a real backend would; a JWKS that cannot be fetched is 503;
// without a JWKS URL the token is shown unverified.
func TestDevEngineRefusesBadTokens(t *testing.T) {
	rig := newIdentityRig(t)
	stranger := newIdentityRig(t)
	good := rig.mint(t, alice)
	rig.skew.Store(int64(-time.Hour))
	expired := rig.mint(t, auth.Identity{UserID: "bob"})
	rig.skew.Store(0)
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+rigIssuer+`","sub":"mallory","exp":9999999999}`)) + "." + parts[2]

	verifying := newTestEngine(t, engineOptions{JWKSURL: rig.jwksURL, RootCAs: rig.roots, Issuer: rigIssuer, Audience: "local-engine"})
	otherAud := newTestEngine(t, engineOptions{JWKSURL: rig.jwksURL, RootCAs: rig.roots, Audience: "billing"})
	untrusted := newTestEngine(t, engineOptions{JWKSURL: rig.jwksURL}) // system roots: the test CA is not among them
	plain := newTestEngine(t, engineOptions{})

	tests := []struct {
		name       string
		e          *engine
		token      string
		wantStatus int
		wantBody   string
	}{
		{"good", verifying, good, http.StatusOK, `"verified": true`},
		{"expired", verifying, expired, http.StatusUnauthorized, "token is expired"},
		{"unknown key", verifying, stranger.mint(t, alice), http.StatusUnauthorized, "is not in the node's JWKS"},
		{"payload forged", verifying, forged, http.StatusUnauthorized, "identity token"},
		{"not a JWT", verifying, "garbage", http.StatusUnauthorized, "identity token"},
		{"oversize", verifying, strings.Repeat("a", maxIdentityToken+1), http.StatusUnauthorized, "over the limit"},
		{"wrong audience", otherAud, good, http.StatusUnauthorized, "audience"},
		{"JWKS over untrusted TLS", untrusted, good, http.StatusServiceUnavailable, "JWKS unavailable"},
		{"no JWKS configured", plain, good, http.StatusOK, "not verified: the engine was given no JWKS URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, tt.e.URL()+"/api/v1/whoami", map[string]string{"X-Edgefort-Identity": tt.token})
			if status != tt.wantStatus || !bytes.Contains(body, []byte(tt.wantBody)) {
				t.Errorf("GET whoami: %d %s; want %d containing %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// TestDevEngineWebSocketEcho: gorilla's client gets a hello with the
// identity of the upgrade request, then its messages back; a foreign
// Origin is refused; Close ends an open echo.
func TestDevEngineWebSocketEcho(t *testing.T) {
	rig := newIdentityRig(t)
	e, err := startEngineWith(t.TempDir(), engineOptions{JWKSURL: rig.jwksURL, RootCAs: rig.roots})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			e.Close()
		}
	}()
	wsURL := "ws" + strings.TrimPrefix(e.URL(), "http") + "/api/v1/apps/sales/ws"
	h := http.Header{}
	h.Set("X-Edgefort-User", "alice")
	h.Set("X-Edgefort-Identity", rig.mint(t, alice))
	conn, resp, err := websocket.DefaultDialer.Dial(wsURL, h)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	resp.Body.Close()
	defer conn.Close()
	var hi hello
	if err := conn.ReadJSON(&hi); err != nil {
		t.Fatal(err)
	}
	if hi.Hello != "local engine" || hi.Identity.App != "sales" || hi.Identity.Headers.User != "alice" ||
		hi.Identity.JWT == nil || !hi.Identity.JWT.Verified || hi.Identity.JWT.Claims["sub"] != "alice" {
		t.Fatalf("hello = %+v; want the local engine greeting alice, token verified", hi)
	}
	for _, m := range []struct {
		kind int
		data []byte
	}{{websocket.TextMessage, []byte("ping 1")}, {websocket.BinaryMessage, []byte{0, 1, 2, 255}}, {websocket.TextMessage, bytes.Repeat([]byte("x"), 100<<10)}} {
		if err := conn.WriteMessage(m.kind, m.data); err != nil {
			t.Fatal(err)
		}
		kind, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if kind != m.kind || !bytes.Equal(data, m.data) {
			t.Errorf("echo of a %d-byte message (type %d): type %d, %d bytes differ", len(m.data), m.kind, kind, len(data))
		}
	}

	h.Set("Origin", "https://evil.example")
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, h); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("dial from a foreign origin: %v, %v; want 403", err, resp)
	}

	e.Close() // returns only once the open echo has ended
	closed = true
	if _, _, err := conn.ReadMessage(); err == nil {
		t.Errorf("read after the engine closed: no error")
	}
}

// TestDevEngineDownload streams the bytes asked for, the pattern intact,
// and refuses sizes it does not serve.
func TestDevEngineDownload(t *testing.T) {
	e := newTestEngine(t, engineOptions{})
	const n = 3<<20 + 7
	resp, err := http.Get(fmt.Sprintf("%s/download?bytes=%d", e.URL(), n))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != n {
		t.Fatalf("download: %s, Content-Length %d; want 200, %d", resp.Status, resp.ContentLength, n)
	}
	buf := make([]byte, 32<<10)
	var off int64
	for {
		k, err := resp.Body.Read(buf)
		for i := range k {
			if buf[i] != byte(off+int64(i)) {
				t.Fatalf("byte %d = %d; want %d", off+int64(i), buf[i], byte(off+int64(i)))
			}
		}
		off += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if off != n {
		t.Fatalf("read %d bytes; want %d", off, n)
	}

	head, err := http.Head(e.URL() + "/download?bytes=4294967296")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != http.StatusOK || head.ContentLength != 4<<30 {
		t.Errorf("HEAD 4 GiB: %s, Content-Length %d", head.Status, head.ContentLength)
	}
	for _, q := range []string{"bytes=4294967297", "bytes=-1", "bytes=lots", ""} {
		status, body := get(t, e.URL()+"/download?"+q, nil)
		if status != http.StatusBadRequest || !bytes.Contains(body, []byte("4 GiB")) {
			t.Errorf("download?%s: %d %s; want 400 naming the limit", q, status, body)
		}
	}
}

// TestDevEngineFollowsKeyRotation: a token with a kid the engine does not
// hold makes it fetch the node's JWKS again, at most every jwksRefetch.
func TestDevEngineFollowsKeyRotation(t *testing.T) {
	rig := newIdentityRig(t)
	e := newTestEngine(t, engineOptions{JWKSURL: rig.jwksURL, RootCAs: rig.roots})
	var skew atomic.Int64
	e.jwks.Load().now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	whoami := func(tok string) int {
		status, _ := get(t, e.URL()+"/api/v1/whoami", map[string]string{"X-Edgefort-Identity": tok})
		return status
	}
	if got := whoami(rig.mint(t, alice)); got != http.StatusOK {
		t.Fatalf("first key: %d", got)
	}
	rig.newKey(t)
	rotated := rig.mint(t, alice)
	if got, n := whoami(rotated), rig.fetches.Load(); got != http.StatusUnauthorized || n != 1 {
		t.Errorf("new kid right after a fetch: %d, %d fetches; want 401 and no new fetch", got, n)
	}
	skew.Store(int64(jwksRefetch))
	if got, n := whoami(rotated), rig.fetches.Load(); got != http.StatusOK || n != 2 {
		t.Errorf("new kid %s later: %d, %d fetches; want 200 after a second fetch", jwksRefetch, got, n)
	}
}
