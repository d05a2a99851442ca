package cloudclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/httpbody"
)

// plainListener is a TCP listener that records every connection made to
// it and whatever the client sent, then hangs up.
type plainListener struct {
	ln   net.Listener
	done chan struct{}

	mu    sync.Mutex // guards conns and got
	conns int
	got   []byte
}

func newPlainListener(t *testing.T) *plainListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &plainListener{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			p.mu.Unlock()
			buf := make([]byte, 64<<10)
			n, _ := c.Read(buf)
			p.mu.Lock()
			p.got = append(p.got, buf[:n]...)
			p.mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop closes the listener, waits for its goroutine, and returns the
// number of connections it accepted and the bytes it read.
func (p *plainListener) stop() (int, []byte) {
	p.ln.Close()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.got
}

// TestEnrollRefusesHTTP checks that enrolling over http:// fails before
// any connection is made, directly and through a redirect.
func TestEnrollRefusesHTTP(t *testing.T) {
	tests := []struct {
		name    string
		url     func(plain string) string // the enrollment base URL
		wantErr string
	}{
		{
			name:    "http URL",
			url:     func(plain string) string { return "http://" + plain },
			wantErr: `cloudclient: enroll: base URL "http://%s": https is required (the enrollment token must not travel in cleartext)`,
		},
		{
			name:    "upper-case scheme",
			url:     func(plain string) string { return "HTTP://" + plain + "/cloud" },
			wantErr: `cloudclient: enroll: base URL "HTTP://%s/cloud": https is required (the enrollment token must not travel in cleartext)`,
		},
		{
			name: "https redirected to http",
			url: func(plain string) string {
				srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "http://"+plain+r.URL.Path, http.StatusPermanentRedirect)
				}))
				return srv.URL
			},
			wantErr: `refusing a redirect to http://%s` + api.PathEnroll + `: https is required`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain := newPlainListener(t)
			addr := plain.ln.Addr().String()
			base := tt.url(addr)
			hc := http.DefaultClient
			if strings.HasPrefix(base, "https://") {
				hc = tlsClientFor(t, base)
			}
			_, err := Enroll(context.Background(), EnrollOptions{
				BaseURL: base, HTTP: hc, Token: "one-time-secret", Key: newTestKey(t, "ec"), Hostname: "node-1",
			})
			conns, got := plain.stop()
			if conns != 0 {
				t.Errorf("the http:// listener accepted %d connection(s) and read %q", conns, got)
			}
			want := fmt.Sprintf(tt.wantErr, addr)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Enroll: err = %v\nwant one containing %q", err, want)
			}
		})
	}
}

// tlsServers maps the URL of each TLS test server to a client trusting it.
var tlsServers sync.Map

// newTLSServer starts a TLS test server for h and remembers its client.
func newTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	tlsServers.Store(srv.URL, srv.Client())
	return srv
}

func tlsClientFor(t *testing.T, url string) *http.Client {
	t.Helper()
	c, ok := tlsServers.Load(url)
	if !ok {
		t.Fatalf("no TLS test server at %s", url)
	}
	return c.(*http.Client)
}

// TestOversizeReplies has a TLS control plane answer each call with a
// reply past its limit, and checks that the call fails at once, naming
// the limit, without retrying.
func TestOversizeReplies(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("x", n) }
	call := func(name string) func(*Client) error {
		return func(c *Client) error {
			ctx := context.Background()
			var err error
			switch name {
			case "authorize":
				_, err = c.Authorize(ctx, api.AuthorizeRequest{Action: "app.read"})
			case "authorize batch":
				_, err = c.AuthorizeBatch(ctx, []api.AuthorizeRequest{{Action: "app.read"}})
			case "iot credentials":
				_, err = c.IoTCredentials(ctx)
			case "send reports":
				_, err = c.SendReports(ctx, []api.Report{{IdempotencyKey: "k1", Stream: "s", Type: "t"}})
			case "jwks":
				_, err = c.JWKS(ctx)
			default:
				t.Fatalf("unknown call %q", name)
			}
			return err
		}
	}
	tests := []struct {
		name    string
		call    string
		body    string
		status  int
		wantErr string
		wantAs  *httpbody.TooLargeError
	}{
		{
			name: "authorize", call: "authorize",
			body:    `{"allow":true,"reason":"` + pad(64<<10) + `","ttl_seconds":60}`,
			wantErr: "cloudclient: authorize: status 200: reply exceeds the limit of 64 KiB",
			wantAs:  &httpbody.TooLargeError{What: "reply", Limit: 64 << 10},
		},
		{
			name: "authorize reason", call: "authorize",
			body:    `{"allow":true,"reason":"` + pad(2000) + `","ttl_seconds":60}`,
			wantErr: "cloudclient: authorize: status 200: reply: reason is 2000 bytes, over the limit of 1 KiB",
			wantAs:  &httpbody.TooLargeError{What: "reason", Limit: 1 << 10, Size: 2000},
		},
		{
			name: "authorize batch", call: "authorize batch",
			body:    `{"decisions":[{"allow":true,"reason":"` + pad(1<<20) + `","ttl_seconds":60}]}`,
			wantErr: "cloudclient: authorize batch: status 200: reply exceeds the limit of 1 MiB",
		},
		{
			name: "authorize batch reason", call: "authorize batch",
			body:    `{"decisions":[{"allow":true,"reason":"` + pad(1025) + `","ttl_seconds":60}]}`,
			wantErr: "cloudclient: authorize batch: status 200: reply: decisions[0].reason is 1025 bytes, over the limit of 1 KiB",
		},
		{
			name: "iot credentials", call: "iot credentials",
			body:    `{"access_key_id":"ASIA0000000000000000","secret_access_key":"s","session_token":"` + pad(64<<10) + `","expiration":"2030-01-01T00:00:00Z"}`,
			wantErr: "cloudclient: iot credentials: status 200: reply exceeds the limit of 64 KiB",
		},
		{
			name: "send reports", call: "send reports",
			body:    `{"acknowledged":["k1"],"rejected":[{"idempotency_key":"k2","reason":"` + pad(1<<20) + `"}]}`,
			wantErr: "cloudclient: send reports: status 200: reply exceeds the limit of 1 MiB",
		},
		{
			name: "send reports key and reason", call: "send reports",
			body:    `{"acknowledged":["` + pad(201) + `"],"rejected":[{"idempotency_key":"k2","reason":"` + pad(1025) + `"}]}`,
			wantErr: "cloudclient: send reports: status 200: reply: acknowledged[0] is 201 bytes, over the limit of 200 bytes\nrejected[0].reason is 1025 bytes, over the limit of 1 KiB",
		},
		{
			name: "jwks", call: "jwks",
			body:    `{"keys":[{"kty":"RSA","n":"` + pad(1<<20) + `"}]}`,
			wantErr: "cloudclient: jwks: status 200: reply exceeds the limit of 1 MiB",
		},
		{
			name: "trailing data", call: "authorize",
			body:    `{"allow":true,"reason":"ok","ttl_seconds":60}{"allow":false}`,
			wantErr: "cloudclient: authorize: status 200: decode reply: data after the JSON value",
		},
		{
			name: "error body", call: "authorize", status: http.StatusBadRequest,
			body:    pad(1 << 20),
			wantErr: "cloudclient: authorize: status 400: " + pad(200) + " [error body cut at 4 KiB]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := tt.status
			if status == 0 {
				status = http.StatusOK
			}
			f := newFakeCloud(t, reply{status: status, body: tt.body})
			c := newFakeClient(t, f, nil)
			err := call(tt.call)(c)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %.300v\nwant  %.300s", err, tt.wantErr)
			}
			if n := f.calls.Load(); n != 1 {
				t.Errorf("%d calls, want 1: a reply that is too large is not retried", n)
			}
			if tt.wantAs != nil {
				var tl *httpbody.TooLargeError
				if !errors.As(err, &tl) {
					t.Fatalf("err %v is not a *httpbody.TooLargeError", err)
				}
				if diff := cmp.Diff(tt.wantAs, tl); diff != "" {
					t.Errorf("TooLargeError (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestOversizeTokenAndEnrollReplies covers the two answers read outside
// Client.do: the token endpoint's and enrollment's.
func TestOversizeTokenAndEnrollReplies(t *testing.T) {
	long := strings.Repeat("x", 300)
	enrollWith := func(mod func(*api.EnrollResponse)) string {
		er := api.EnrollResponse{DeviceID: "dev-1", CertificateChain: "-", CABundle: "-",
			Endpoints: api.Endpoints{ControlPlaneURL: "https://cp.example.com", TokenURL: "https://cp.example.com/token"}}
		mod(&er)
		b, err := json.Marshal(er)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name    string
		body    string
		enroll  bool // call Enroll, else Token
		wantErr string
	}{
		{name: "token", body: `{"access_token":"` + strings.Repeat("t", 64<<10) + `","token_type":"Bearer","expires_in":60}`,
			wantErr: "cloudclient: token: status 200: token reply exceeds the limit of 64 KiB"},
		{name: "enroll", enroll: true, body: `{"device_id":"dev-1","certificate_chain":"` + strings.Repeat("c", 1<<20) + `"}`,
			wantErr: "cloudclient: enroll: status 200: reply exceeds the limit of 1 MiB"},
		{name: "enroll device_id", enroll: true, body: enrollWith(func(er *api.EnrollResponse) { er.DeviceID = long }),
			wantErr: "cloudclient: enroll: status 200: device_id is 300 bytes, over the limit of 128 bytes"},
		{name: "enroll device_id characters", enroll: true, body: enrollWith(func(er *api.EnrollResponse) { er.DeviceID = "../dev" }),
			wantErr: `cloudclient: enroll: status 200: device_id "../dev": want letters, digits, '-' and '_'`},
		{name: "enroll control plane URL", enroll: true, body: enrollWith(func(er *api.EnrollResponse) { er.Endpoints.ControlPlaneURL += "/" + strings.Repeat("p", 4<<10) }),
			wantErr: "cloudclient: enroll: status 200: endpoints.control_plane_url is 4119 bytes, over the limit of 4 KiB"},
		{name: "enroll control plane over http", enroll: true, body: enrollWith(func(er *api.EnrollResponse) { er.Endpoints.ControlPlaneURL = "http://cp.example.com" }),
			wantErr: `cloudclient: enroll: status 200: endpoints.control_plane_url "http://cp.example.com": https is required`},
		{name: "enroll thing name", enroll: true, body: enrollWith(func(er *api.EnrollResponse) {
			er.Endpoints.IoT = &api.IoTEndpoint{Endpoint: "a1-ats.iot.eu-west-1.amazonaws.com", Region: "eu-west-1", ThingName: long}
		}),
			wantErr: "cloudclient: enroll: status 200: endpoints.iot.thing_name is 300 bytes, over the limit of 128 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tt.body)
			}))
			var err error
			if tt.enroll {
				_, err = Enroll(context.Background(), EnrollOptions{
					BaseURL: srv.URL, HTTP: srv.Client(), Token: "t", Key: newTestKey(t, "ec"), Hostname: "node-1",
				})
			} else {
				var c *Client
				c, err = New(Options{BaseURL: srv.URL, HTTP: srv.Client(), DeviceID: "d", Key: newTestKey(t, "ec"), Retry: Retry{Attempts: 1}})
				if err != nil {
					t.Fatal(err)
				}
				_, err = c.Token(context.Background())
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %.300v\nwant  %.300s", err, tt.wantErr)
			}
		})
	}
}
