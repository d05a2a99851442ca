package clientapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/clientapi/upstream"
	"github.com/edgefort/edgefort/internal/prom"
)

// route is a built Route: its proxy to the target endpoint, and its
// metric series resolved once rather than looked up by label values on
// every request.
type route struct {
	cfg       Route
	target    *url.URL
	core      *upstream.Route // plain requests (see forward)
	proxy     http.Handler    // upgrades
	transport *http.Transport // the proxy's; closed idle when a reload replaces the route

	requests *prom.CounterVec // requests_total curried with the virtual host and route
	latency  prom.Observer
	codes    [600]atomic.Pointer[prom.Counter] // by status code; 0: the client left first
}

// requestCounter is rt's requests_total series for status code (0: the
// client left before an answer), created on first use.
func (rt *route) requestCounter(code int) prom.Counter {
	if code < 0 || code >= len(rt.codes) {
		return rt.requests.WithLabelValues(strconv.Itoa(code))
	}
	if c := rt.codes[code].Load(); c != nil {
		return *c
	}
	label := "client_closed"
	if code != 0 {
		label = strconv.Itoa(code)
	}
	c := rt.requests.WithLabelValues(label)
	rt.codes[code].Store(&c)
	return c
}

// resource is rt's resource with path wildcards filled in from r.
func (rt *route) resource(r *http.Request) Resource {
	return Resource{
		Type:  expandWildcard(rt.cfg.Resource.Type, r),
		ID:    expandWildcard(rt.cfg.Resource.ID, r),
		Space: expandWildcard(rt.cfg.Resource.Space, r),
	}
}

// expandWildcard returns r's path value for "{name}" (or "{name...}"),
// else v itself.
func expandWildcard(v string, r *http.Request) string {
	name, ok := wildcardName(v)
	if !ok {
		return v
	}
	return r.PathValue(name)
}

func wildcardName(v string) (string, bool) {
	if len(v) < 3 || v[0] != '{' || v[len(v)-1] != '}' {
		return "", false
	}
	return strings.TrimSuffix(v[1:len(v)-1], "..."), true
}

// CheckMatch reports whether pattern is a ServeMux pattern a route may
// use, and that the wildcards its resource names are in it.
func CheckMatch(pattern string, res Resource) error {
	mux := http.NewServeMux()
	if err := register(mux, pattern, http.NotFoundHandler()); err != nil {
		return err
	}
	for _, v := range []string{res.Type, res.ID, res.Space} {
		if name, ok := wildcardName(v); ok && !strings.Contains(pattern, "{"+name+"}") && !strings.Contains(pattern, "{"+name+"...}") {
			return fmt.Errorf("resource uses {%s}, which the pattern %q does not have", name, pattern)
		}
	}
	return nil
}

// register adds pattern to mux; ServeMux reports a bad or clashing
// pattern only by panicking, which this turns into an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// routeHandler authenticates, authorizes and proxies a request to rt, and
// counts it.
func (h *virtualHost) routeHandler(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer h.observe(rt, sw, r, start)
		id, ok := h.authenticate(sw, r, rt)
		if !ok || !h.authorize(sw, r, rt, id) {
			return
		}
		if !h.withIdentity(sw, r, rt, id) {
			return
		}
		// An HTTP/1.1 client may keep sending its body while the answer
		// streams back (HTTP/2 always may).
		http.NewResponseController(w).EnableFullDuplex()
		h.forward(sw, r, rt)
	})
}

func (h *virtualHost) observe(rt *route, sw *statusWriter, r *http.Request, start time.Time) {
	code := sw.code
	if code == 0 && r.Header.Get("Upgrade") != "" {
		code = http.StatusSwitchingProtocols
	}
	rt.requestCounter(code).Inc()
	rt.latency.Observe(time.Since(start).Seconds())
}
