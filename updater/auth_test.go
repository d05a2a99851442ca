package updater

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAuthenticateSignature(t *testing.T) {
	for _, kind := range []string{"rsa", "ecdsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			f := newFakeMender(t)
			c := newTestClient(t, f, testKey(t, kind), nil)
			if err := c.Authenticate(context.Background()); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !c.HasToken() {
				t.Fatal("no token after a successful Authenticate")
			}
			want := authRequest{
				// A JSON string holding the identity object, keys sorted.
				IDData:      `{"mac":"02:00:00:00:00:01","serial":"TEST-0001"}`,
				TenantToken: "tenant-1",
				PubKey:      c.pubPEM,
			}
			if diff := cmp.Diff(want, f.authBody); diff != "" {
				t.Errorf("auth body (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(f.authBody.PubKey, "-----BEGIN PUBLIC KEY-----\n") {
				t.Errorf("pubkey = %q, want a PKIX PEM", f.authBody.PubKey)
			}
		})
	}
}

func TestAuthenticateRejected(t *testing.T) {
	f := newFakeMender(t)
	f.rejectAuth = true
	c := newTestClient(t, f, nil, nil)
	err := c.Authenticate(context.Background())
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Authenticate = %v, want ErrUnauthorized", err)
	}
	for _, want := range []string{"updater: authenticate:", "dev auth: unauthorized"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// A later call gives the same typed error, without calling the API.
	_, err = c.NextDeployment(context.Background(), DeviceState{ArtifactName: "a", DeviceType: "t"})
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("NextDeployment = %v, want ErrUnauthorized", err)
	}
	if got := f.calls(); len(got) != 0 {
		t.Errorf("API calls without a token: %q", got)
	}
}

func TestReauthenticate(t *testing.T) {
	tests := []struct {
		name        string
		expireCalls int
		wantErr     error
		wantAuths   int
		wantCalls   int
	}{
		{name: "ok", expireCalls: 0, wantAuths: 1, wantCalls: 1},
		{name: "401 once", expireCalls: 1, wantAuths: 2, wantCalls: 2},
		{name: "401 always", expireCalls: -1, wantErr: ErrUnauthorized, wantAuths: 2, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeMender(t)
			f.expireCalls = tt.expireCalls
			c := newTestClient(t, f, nil, nil)
			err := c.ReportStatus(context.Background(), "d1", StatusDownloading, "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReportStatus = %v, want %v", err, tt.wantErr)
			}
			if f.auths != tt.wantAuths {
				t.Errorf("auth requests = %d, want %d", f.auths, tt.wantAuths)
			}
			if got := len(f.calls()); got != tt.wantCalls {
				t.Errorf("status calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestNewClientChecks(t *testing.T) {
	_, err := NewClient(ClientOptions{})
	if err == nil {
		t.Fatal("NewClient with no options succeeded")
	}
	for _, want := range []string{"server URL is required", "HTTP client is required", "device key is required", "identity is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	_, err = NewClient(ClientOptions{ServerURL: "ftp://x", HTTP: http.DefaultClient, Key: testKey(t, "ed25519"), Identity: map[string]any{"a": "b"}})
	if err == nil || !strings.Contains(err.Error(), "want https://host") {
		t.Errorf("NewClient(ftp://x) = %v, want a URL error", err)
	}
}

// Concurrent calls that all meet an expired token re-authenticate without
// racing on the token.
func TestConcurrentReauthenticate(t *testing.T) {
	f := newFakeMender(t)
	c := newTestClient(t, f, nil, nil)
	if err := c.Authenticate(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.expireCalls = 1
	f.mu.Unlock()
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- c.ReportStatus(context.Background(), "d1", StatusDownloading, "") }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
