package clientapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// route is a built Route: its proxy to the target endpoint.
type route struct {
	cfg       Route
	proxy     http.Handler
	transport *http.Transport // closed idle when a reload replaces the route
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
		ctx, ok := h.withIdentity(sw, r, rt, id)
		if !ok {
			return
		}
		// An HTTP/1.1 client may keep sending its body while the answer
		// streams back (HTTP/2 always may).
		http.NewResponseController(w).EnableFullDuplex()
		rt.proxy.ServeHTTP(sw, r.WithContext(ctx))
	})
}

func (h *virtualHost) observe(rt *route, sw *statusWriter, r *http.Request, start time.Time) {
	code := "client_closed"
	switch {
	case sw.code != 0:
		code = fmt.Sprint(sw.code)
	case r.Header.Get("Upgrade") != "":
		code = "101"
	}
	h.m.requests.WithLabelValues(h.cfg.Name, rt.cfg.Name, code).Inc()
	h.m.latency.WithLabelValues(h.cfg.Name, rt.cfg.Name).Observe(time.Since(start).Seconds())
}
