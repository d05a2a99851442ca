package devcloud

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMenderAuthKeyTypes(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	for _, kind := range []string{"rsa", "ecdsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			d := newTestDevice(t, s, mustKey(t, kind), nil)
			if got := d.auth(); got != http.StatusOK {
				t.Fatalf("auth = %d, want 200", got)
			}
			parts := strings.Split(d.token, ".")
			if len(parts) != 3 {
				t.Fatalf("token %q is not a JWS", d.token)
			}
			raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var c map[string]any
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			if c["sub"] != d.id() || c["mender.device"] != true || c["exp"] == nil {
				t.Errorf("claims = %v, want sub=%s, mender.device=true, exp", c, d.id())
			}
			if resp, _ := d.do("GET", nextV1+"?artifact_name=a&device_type=t", nil); resp.StatusCode != http.StatusNoContent {
				t.Errorf("next with token = %d, want 204", resp.StatusCode)
			}
		})
	}
}

func TestMenderAuthBadSignature(t *testing.T) {
	s := newTestMender(t, MenderOptions{})
	d := newTestDevice(t, s, mustKey(t, "ecdsa"), nil)
	other := mustKey(t, "ecdsa")
	d.key, other = other, d.key // sign with one key, send the other's pubkey
	body := `{"id_data":"{\"mac\":\"x\"}","pubkey":` + string(mustJSON(pemOf(t, other.Public()))) + `}`
	req, _ := http.NewRequest("POST", s.URL()+"/api/devices/v1/authentication/auth_requests", strings.NewReader(body))
	req.Header.Set("X-MEN-Signature", base64.StdEncoding.EncodeToString(signAuth(t, d.key, []byte(body))))
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad signature = %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", s.URL()+"/api/devices/v1/authentication/auth_requests", strings.NewReader(body))
	resp, err = d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no signature = %d, want 400", resp.StatusCode)
	}
}

func pemOf(t *testing.T, pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestMenderAuthPendingAcceptReject(t *testing.T) {
	s := newTestMender(t, MenderOptions{ManualAccept: true})
	d := newTestDevice(t, s, mustKey(t, "ed25519"), nil)
	if got := d.auth(); got != http.StatusUnauthorized {
		t.Fatalf("first auth = %d, want 401 (pending)", got)
	}
	sets := s.AuthSets()
	if len(sets) != 1 || sets[0].Status != AuthPending || sets[0].DeviceID != d.id() {
		t.Fatalf("AuthSets = %+v, want one pending set for %s", sets, d.id())
	}
	if err := s.SetAuthStatus(d.id(), AuthAccepted); err != nil {
		t.Fatal(err)
	}
	if got := d.auth(); got != http.StatusOK {
		t.Fatalf("auth after accept = %d, want 200", got)
	}
	if resp, _ := d.do("PUT", invURL, []map[string]string{{"name": "a", "value": "b"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("inventory = %d, want 200", resp.StatusCode)
	}
	if err := s.SetAuthStatus(d.id(), AuthRejected); err != nil {
		t.Fatal(err)
	}
	if resp, _ := d.do("PUT", invURL, []map[string]string{{"name": "a", "value": "b"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("inventory after reject = %d, want 401", resp.StatusCode)
	}
	if got := d.auth(); got != http.StatusUnauthorized {
		t.Errorf("auth after reject = %d, want 401", got)
	}
	if err := s.SetAuthStatus("nobody", AuthAccepted); err == nil {
		t.Error("SetAuthStatus of an unknown device succeeded")
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestMenderJWTRequired(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	s := newTestMender(t, MenderOptions{Now: clk.Now, JWTLifetime: time.Hour})
	d := newTestDevice(t, s, mustKey(t, "ecdsa"), nil)
	if got := d.auth(); got != http.StatusOK {
		t.Fatalf("auth = %d", got)
	}
	good := d.token
	other := newTestMender(t, MenderOptions{})
	od := newTestDevice(t, other, mustKey(t, "ecdsa"), nil)
	if got := od.auth(); got != http.StatusOK {
		t.Fatalf("auth = %d", got)
	}
	tests := []struct {
		name, token string
		advance     time.Duration
		want        int
	}{
		{"none", "", 0, http.StatusUnauthorized},
		{"garbage", "abc.def.ghi", 0, http.StatusUnauthorized},
		{"other server", od.token, 0, http.StatusUnauthorized},
		{"tampered", good[:len(good)-4] + "AAAA", 0, http.StatusUnauthorized},
		{"good", good, 0, http.StatusNoContent},
		{"expired", good, 2 * time.Hour, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.advance)
			d.token = tt.token
			for _, path := range []string{nextV1 + "?artifact_name=a&device_type=t"} {
				if resp, _ := d.do("GET", path, nil); resp.StatusCode != tt.want {
					t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, tt.want)
				}
			}
			for _, c := range []struct{ method, path string }{{"PUT", invURL}, {"PATCH", invURL}, {"POST", nextV1}, {"POST", nextV2}, {"PUT", statusURL("x")}} {
				resp, _ := d.do(c.method, c.path, map[string]string{})
				if tt.want == http.StatusUnauthorized && resp.StatusCode != tt.want {
					t.Errorf("%s %s = %d, want 401", c.method, c.path, resp.StatusCode)
				}
			}
		})
	}
}

func FuzzMenderVerifyJWT(f *testing.F) {
	ca, err := NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewMenderServer(MenderOptions{CA: ca})
	if err != nil {
		f.Fatal(err)
	}
	good, err := s.signJWT("dev", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	// Tokens differing only in the unused low bits of the signature's last
	// base64 character must be refused too (strict decoding).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, c := range alphabet {
		f.Add(good[:len(good)-1] + string(c))
	}
	f.Add("a.b.c")
	f.Add(jwtHeader + ".e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := s.verifyJWT(tok); err == nil && tok != good {
			t.Errorf("accepted a token the server did not sign: %q", tok)
		}
	})
}
