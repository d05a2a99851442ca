package clientapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/upstream"
	"github.com/edgefort/edgefort/keystore"
)

// target is a built TargetEndpoint.
type target struct {
	cfg    TargetEndpoint
	url    *url.URL
	tls    *tls.Config // nil for http://, and when the SSL block uses variables (each route builds its own)
	stores *keystore.Manager
}

func buildTarget(t TargetEndpoint, stores *keystore.Manager) (*target, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q is not an http or https URL with a host", t.URL)
	}
	out := &target{cfg: t, url: u, stores: stores}
	if u.Scheme == "https" && !out.usesVars() {
		if out.tls, err = stores.ClientTLS(t.SSL, u.Hostname(), keystore.Vars{}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *target) usesVars() bool {
	s := t.cfg.SSL
	return strings.Contains(s.Keystore+s.Truststore+s.KeyAlias, "{")
}

// tlsFor is the TLS configuration of a route to t: the target's, or one
// with the route's values for the SSL block's variables.
func (t *target) tlsFor(v SSLVars) (*tls.Config, error) {
	if t.url.Scheme != "https" || !t.usesVars() {
		return t.tls, nil
	}
	return t.stores.ClientTLS(t.cfg.SSL, t.url.Hostname(), keystore.Vars{Keystore: v.Keystore, Truststore: v.Truststore, KeyAlias: v.KeyAlias})
}

// newTransport is a route's connection pool to its target: HTTP/1.1 (a
// WebSocket upgrade needs it), the route's timeout for response headers.
func newTransport(tlsCfg *tls.Config, timeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   256,
		// The backend's encoding passes through untouched.
		DisableCompression: true,
	}
}

// flushLatency bounds how long a response of known length may sit in the
// server's buffer before it is flushed to the client. httputil flushes a
// streamed response (no Content-Length, or text/event-stream) on every
// write whatever this says. Not -1: that flushes the headers from a timer
// goroutine and then every body write, so a small response cost three
// TLS records and two write syscalls instead of one (a third of the
// proxy's CPU in the client API benchmark, docs/benchmarks.md).
const flushLatency = 50 * time.Millisecond

// newProxy is rt's reverse proxy to t. Bodies stream both ways (see
// flushLatency), a 101 upgrade becomes a tunnel, and hop-by-hop headers are
// dropped by httputil itself.
func (h *virtualHost) newProxy(rc Route, t *target, tr *http.Transport) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { h.rewrite(pr, rc, t.url) },
		Transport:     tr,
		BufferPool:    copyBuffers,
		FlushInterval: flushLatency,
		// The response carries the node's request id, not a second one.
		ModifyResponse: func(resp *http.Response) error { resp.Header.Del(HeaderRequestID); return nil },
		ErrorHandler:   func(w http.ResponseWriter, r *http.Request, err error) { h.proxyError(w, r, rc, err) },
		ErrorLog:       slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
}

// newCore is rt's HTTP/1.1 client core to t: the path of every request but
// upgrades (see forward).
func newCore(rc Route, t *target, tlsCfg *tls.Config) *upstream.Route {
	addr := t.url.Host
	if t.url.Port() == "" {
		port := "80"
		if t.url.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(t.url.Hostname(), port)
	}
	return &upstream.Route{
		Pool:    upstream.NewPool(upstream.PoolConfig{Addr: addr, TLS: tlsCfg}),
		Timeout: rc.Timeout,
		// The response carries the node's request id, not a second one.
		DropResponse: []string{HeaderRequestID},
	}
}

// forward proxies r to rt's target: through the HTTP/1.1 core, or through
// httputil.ReverseProxy for a protocol upgrade (WebSocket), which the core
// does not do. Both send the same rewritten request (rewrite).
func (h *virtualHost) forward(w http.ResponseWriter, r *http.Request, rt *route) {
	if !upstream.Handles(r) {
		rt.proxy.ServeHTTP(w, r)
		return
	}
	u := *r.URL
	out := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: r.Header.Clone()}
	if out.Header == nil {
		out.Header = http.Header{}
	}
	// As httputil does before a Rewrite: what the client named hop-by-hop
	// goes first (so that it cannot name the node's own headers away),
	// then the forwarding headers, which rewrite sets anew.
	upstream.RemoveHopByHop(out.Header)
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(out.Header, k)
	}
	h.rewrite(&httputil.ProxyRequest{In: r, Out: out}, rt.cfg, rt.target)
	if err := rt.core.Forward(w, r, out); err != nil {
		h.proxyError(w, r, rt.cfg, err)
	}
}

// rewrite builds the outbound request: the target's URL, the forwarding
// headers from the real peer, and the identity in place of whatever the
// client sent.
func (h *virtualHost) rewrite(pr *httputil.ProxyRequest, rc Route, base *url.URL) {
	if p := rc.StripPrefix; p != "" {
		pr.Out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(pr.Out.URL.Path, p), "/")
		pr.Out.URL.RawPath = ""
	}
	pr.SetURL(base)
	// The Host the client asked for reaches the backend unchanged (SetURL
	// put the target's there): backends build their links and check
	// their origin from it, as behind any reverse proxy.
	pr.Out.Host = pr.In.Host
	peer := peerAddr(pr.In)
	trusted := h.proxies.trusts(peer)
	h.stripIdentity(pr.Out.Header, trusted)
	if trusted {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetXForwarded()
	pr.Out.Header.Set("Forwarded", forwarded(pr.In, peer, trusted))
	pr.Out.Header.Set(HeaderRequestID, requestID(pr.In.Context()))
	h.setIdentity(pr.In.Context(), pr.Out.Header)
}

// forwarded is the RFC 7239 Forwarded value for this hop, after a trusted
// proxy's own.
func forwarded(in *http.Request, peer netip.Addr, trusted bool) string {
	node := peer.String()
	if peer.Is6() {
		node = `"[` + node + `]"`
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	v := "for=" + node + ";host=" + quoteForwarded(in.Host) + ";proto=" + proto
	if prev := strings.Join(in.Header.Values("Forwarded"), ", "); trusted && prev != "" {
		v = prev + ", " + v
	}
	return v
}

// quotedPairs escapes a Forwarded quoted-string; built once (it builds its
// tables on first use).
var quotedPairs = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// quoteForwarded quotes a value that is not a plain token (a host with a
// port has a colon).
func quoteForwarded(v string) string {
	if strings.ContainsAny(v, ":[]\" ") || v == "" {
		return `"` + quotedPairs.Replace(v) + `"`
	}
	return v
}

// proxyError answers a failed proxy call: 413 for a body over the limit,
// 400 for a body that could not be read, 504 when the backend did not
// answer in time, else 502; the cause goes to
// the log with the request id, never to the client.
func (h *virtualHost) proxyError(w http.ResponseWriter, r *http.Request, rc Route, err error) {
	code, reason := http.StatusBadGateway, "backend_unavailable"
	var tooBig *http.MaxBytesError
	var netErr net.Error
	var badBody *upstream.RequestBodyError
	switch {
	case errors.As(err, &tooBig):
		code, reason = http.StatusRequestEntityTooLarge, "request_body_too_large"
	case errors.Is(r.Context().Err(), context.Canceled):
		return // the client left; nobody to answer
	case errors.As(err, &badBody):
		// Bad chunked framing: what follows on the connection is no
		// request to read.
		code, reason = http.StatusBadRequest, "bad_request_body"
		w.Header().Set("Connection", "close")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		code, reason = http.StatusGatewayTimeout, "backend_timeout"
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "proxying failed",
		slog.String(logKeyRoute, rc.Name),
		slog.String(logKeyRequestID, requestID(r.Context())), slog.Int("status", code),
		slog.String(logKeyError, err.Error()))
	writeProblem(w, r, code, reason)
}

// copyBuffers are the proxies' copy buffers, shared so that a response
// does not allocate its own 32 KiB.
var copyBuffers httputil.BufferPool = bufferPool{&sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p *sync.Pool }

func (b bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b bufferPool) Put(p []byte) { b.p.Put(&p) }
