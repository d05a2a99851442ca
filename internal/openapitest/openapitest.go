// Package openapitest checks real HTTP traffic against the control plane
// contract, cloudclient/api/controlplane.openapi.yaml (api.OpenAPI), in
// tests. Handler wraps a server's handler and Transport a client's round
// tripper; both validate every request and response that passes through
// them with kin-openapi's openapi3filter and report each mismatch with
// t.Errorf, so a server or client that drifts from the document fails its
// own tests.
//
// A test that sends a request breaking the contract on purpose (to see the
// server refuse it) sets the HeaderExpectInvalid header on it: the request
// must then fail validation, which also checks that the document is strict
// enough to catch it. Responses are always validated, including that their
// status is one the document lists.
package openapitest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// HeaderExpectInvalid, set on a request (any value, e.g. what is wrong
// with it), says the request breaks the contract on purpose.
const HeaderExpectInvalid = "Openapitest-Expect-Invalid"

// maxBody bounds the bodies kept for validation.
const maxBody = 16 << 20

var (
	loadOnce sync.Once
	loaded   *openapi3.T
	router   routers.Router
	loadErr  error
)

// Load parses api.OpenAPI and validates it as an OpenAPI 3 document.
func Load(ctx context.Context) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("openapitest: load document: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapitest: invalid document: %w", err)
	}
	return doc, nil
}

// Doc returns the document, loaded and validated once per test binary; it
// stops the test when the document is invalid.
func Doc(t testing.TB) *openapi3.T {
	t.Helper()
	doc, _ := shared(t)
	return doc
}

func shared(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	loadOnce.Do(func() {
		loaded, loadErr = Load(context.Background())
		if loadErr != nil {
			return
		}
		// Route on paths alone: the document's server is an example host,
		// tests talk to loopback.
		noServers := *loaded
		noServers.Servers = nil
		router, loadErr = legacy.NewRouter(&noServers)
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded, router
}

// Handler returns h wrapped so that every request it serves and every
// response it writes are checked against the document.
func Handler(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	_, rt := shared(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, ok := checkRequest(t, rt, r)
		rec := &recorder{inner: w}
		h.ServeHTTP(rec, r)
		if !ok || rec.hijacked || (rec.status == 0 && r.Context().Err() != nil) {
			return // no answer to check: the connection was taken over or the client left
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		header := rec.header
		if header == nil {
			header = w.Header().Clone()
		}
		checkResponse(t, in, status, header, rec.body.Bytes())
	})
}

// Transport returns next (http.DefaultTransport when nil) wrapped so that
// every request sent and every response received are checked against the
// document.
func Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	t.Helper()
	_, rt := shared(t)
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		// Validate a copy so that the caller's request stays untouched.
		body, err := readAll(r.Body)
		if err != nil {
			return nil, fmt.Errorf("openapitest: read request body: %w", err)
		}
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		in, ok := checkRequest(t, rt, r2)
		r3 := r.Clone(r.Context())
		if r.Body != nil {
			r3.Body = io.NopCloser(bytes.NewReader(body))
			r3.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		resp, err := next.RoundTrip(r3)
		if err != nil || !ok {
			return resp, err
		}
		rb, err := readAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("openapitest: read response body: %w", err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(rb))
		checkResponse(t, in, resp.StatusCode, resp.Header, rb)
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// options are the validation options of both directions: security schemes
// are checked for shape only (a bearer token is present), and a response
// status the document does not list is an error.
func options() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    authenticate,
	}
}

// authenticate accepts any credentials of the right shape; whether they
// are good is the server's business, and tested there.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return nil
	}
	auth := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return errors.New("no bearer token in Authorization")
	}
	return nil
}

// checkRequest validates r (leaving its body readable again) and returns
// the input for validating the response; ok is false when r matches no
// operation, in which case there is nothing to check the response against.
func checkRequest(t testing.TB, rt routers.Router, r *http.Request) (in *openapi3filter.RequestValidationInput, ok bool) {
	t.Helper()
	expectInvalid := r.Header.Get(HeaderExpectInvalid) != ""
	body, err := readAll(r.Body)
	if err != nil {
		t.Errorf("openapitest: %s %s: read request body: %v", r.Method, r.URL.Path, err)
		return nil, false
	}
	reset := func() {
		if r.Body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	reset()
	defer reset()

	route, params, err := rt.FindRoute(r)
	if err != nil {
		if !expectInvalid {
			t.Errorf("openapitest: %s %s: not in the document: %v", r.Method, r.URL.Path, err)
		}
		return nil, false
	}
	in = &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: options()}
	err = openapi3filter.ValidateRequest(r.Context(), in)
	switch {
	case err != nil && !expectInvalid:
		t.Errorf("openapitest: %s %s: request breaks the contract: %v", r.Method, r.URL.Path, err)
	case err == nil && expectInvalid:
		t.Errorf("openapitest: %s %s: request expected to break the contract (%s) passed validation", r.Method, r.URL.Path, r.Header.Get(HeaderExpectInvalid))
	}
	return in, true
}

func checkResponse(t testing.TB, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) {
	t.Helper()
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options:                options(),
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(in.Request.Context(), out); err != nil {
		t.Errorf("openapitest: %s %s: %d response breaks the contract: %v\nbody: %.2000s", in.Request.Method, in.Request.URL.Path, status, err, body)
	}
}

func readAll(rc io.ReadCloser) ([]byte, error) {
	if rc == nil || rc == http.NoBody {
		return nil, nil
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxBody))
}

// recorder passes a response through, keeping a copy of its status,
// header and body.
type recorder struct {
	inner    http.ResponseWriter
	status   int
	header   http.Header // snapshot at WriteHeader
	body     bytes.Buffer
	hijacked bool
}

func (w *recorder) Header() http.Header { return w.inner.Header() }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.header = w.inner.Header().Clone()
	}
	w.inner.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.body.Len()+len(b) <= maxBody {
		w.body.Write(b)
	}
	return w.inner.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.inner }

func (w *recorder) Flush() { http.NewResponseController(w.inner).Flush() }

var (
	_ http.Flusher  = (*recorder)(nil)
	_ http.Hijacker = (*recorder)(nil)
)

// Hijack hands the connection over; nothing is validated afterwards.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return http.NewResponseController(w.inner).Hijack()
}
