package openapitest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// recordingT keeps the errors a helper reports instead of failing.
type recordingT struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingT) Helper() {}

func (r *recordingT) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs
}

// fixed answers every request with status and body.
func fixed(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the handler sees the body validation read
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

const goodCheck = `{"user":{"id":"alice","directory":"corp"},"action":"app.read","resource":{"type":"app","id":"a","space":"s"}}`

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name         string
		method, path string
		header       map[string]string
		body         string
		status       int
		resp         string
		wantErr      string // "" means no error
	}{
		{name: "good JWKS", method: "GET", path: api.PathJWKS, status: 200, resp: `{"keys":[]}`},
		{name: "good decision", method: "POST", path: api.PathAuthorize, header: map[string]string{"Authorization": "Bearer x"},
			body: goodCheck, status: 200, resp: `{"allow":true,"reason":"r","ttl_seconds":60}`},
		{name: "response misses a field", method: "POST", path: api.PathAuthorize, header: map[string]string{"Authorization": "Bearer x"},
			body: goodCheck, status: 200, resp: `{"allow":true,"reason":"r"}`, wantErr: "response breaks the contract"},
		{name: "undocumented status", method: "GET", path: api.PathJWKS, status: 418, resp: `{}`, wantErr: "response breaks the contract"},
		{name: "no bearer", method: "POST", path: api.PathAuthorize, body: goodCheck, status: 401,
			resp: `{"error":"unauthorized","message":"m"}`, wantErr: "request breaks the contract"},
		{name: "bad request body", method: "POST", path: api.PathAuthorize, header: map[string]string{"Authorization": "Bearer x"},
			body: `{"action":"x"}`, status: 400, resp: `{"error":"bad_request","message":"m"}`, wantErr: "request breaks the contract"},
		{name: "expected invalid and is", method: "POST", path: api.PathAuthorize, header: map[string]string{"Authorization": "Bearer x", HeaderExpectInvalid: "no user"},
			body: `{"action":"x"}`, status: 400, resp: `{"error":"bad_request","message":"m"}`},
		{name: "expected invalid but is not", method: "POST", path: api.PathAuthorize, header: map[string]string{"Authorization": "Bearer x", HeaderExpectInvalid: "?"},
			body: goodCheck, status: 200, resp: `{"allow":true,"reason":"r","ttl_seconds":60}`, wantErr: "passed validation"},
		{name: "unknown path", method: "GET", path: "/v1/nope", status: 404, resp: `{}`, wantErr: "not in the document"},
		{name: "bad device id", method: "GET", path: "/v1/devices/a%20b/iot-credentials", header: map[string]string{"Authorization": "Bearer x"},
			status: 403, resp: `{"error":"forbidden","message":"m"}`, wantErr: "request breaks the contract"},
		{name: "good form", method: "POST", path: api.PathToken, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			body: "grant_type=" + strings.ReplaceAll(api.GrantTypeJWTBearer, ":", "%3A") + "&assertion=a.b.c", status: 200,
			resp: `{"access_token":"t","token_type":"Bearer","expires_in":60}`},
		{name: "bad token type", method: "POST", path: api.PathToken, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			body: "grant_type=" + api.GrantTypeJWTBearer + "&assertion=a.b.c", status: 200,
			resp: `{"access_token":"t","token_type":"mac","expires_in":60}`, wantErr: "response breaks the contract"},
	} {
		for _, side := range []string{"Handler", "Transport"} {
			t.Run(tc.name+"/"+side, func(t *testing.T) {
				rt := &recordingT{TB: t}
				var srv *httptest.Server
				client := http.DefaultClient
				if side == "Handler" {
					srv = httptest.NewServer(Handler(rt, fixed(tc.status, tc.resp)))
				} else {
					srv = httptest.NewServer(fixed(tc.status, tc.resp))
					client = &http.Client{Transport: Transport(rt, nil)}
				}
				defer srv.Close()
				req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tc.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != tc.resp {
					t.Errorf("body passed through as %q, want %q", got, tc.resp)
				}
				errs := rt.errors()
				switch {
				case tc.wantErr == "" && len(errs) > 0:
					t.Errorf("unexpected validation errors: %q", errs)
				case tc.wantErr != "" && (len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), tc.wantErr)):
					t.Errorf("errors %q, want one containing %q", errs, tc.wantErr)
				}
			})
		}
	}
}

// TestHandlerBodyReachesHandler checks that validation leaves the request
// body for the handler.
func TestHandlerBodyReachesHandler(t *testing.T) {
	var got string
	h := Handler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"allow":false,"reason":"r","ttl_seconds":0}`)
	}))
	req := httptest.NewRequest("POST", api.PathAuthorize, strings.NewReader(goodCheck))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer x")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got != goodCheck {
		t.Errorf("handler read %q, want %q", got, goodCheck)
	}
}
