package clientapi

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// ReasonLoginUnavailable answers a login start whose identity provider
// cannot be asked now (no metadata, too many logins in flight); the log
// says why.
const ReasonLoginUnavailable = "login_unavailable"

// registerEndpoints serves the paths the chain's solutions have of their
// own (auth.Endpoints), and the logout path of those that end logins at
// their IdP (auth.SingleLogout); two solutions on one pattern are a
// configuration error naming both.
func (h *virtualHost) registerEndpoints(i int) []error {
	var errs []error
	owner := map[string]string{}
	for j, s := range h.chain.solutions {
		es, ok := s.(auth.Endpoints)
		if !ok {
			continue
		}
		field := fmt.Sprintf("authentication[%d]", j)
		list := es.Endpoints()
		if sl, ok := s.(auth.SingleLogout); ok && sl.LogoutPath() != "" && h.session != nil {
			name := s.Name()
			list = append(list, auth.Endpoint{Pattern: "POST " + sl.LogoutPath(),
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serveSingleLogout(w, r, name, sl) })})
		}
		for _, e := range list {
			handler, err := h.endpointHandler(s, e)
			if err == nil {
				err = register(h.mux, e.Pattern, handler)
			}
			if err != nil {
				if prev, dup := owner[e.Pattern]; dup {
					err = fmt.Errorf("%w: solution %s serves it too (give each its own path_prefix or paths)", err, prev)
				}
				errs = append(errs, fieldErr(i, field, fmt.Errorf("solution %s: %w", s.Name(), err)))
				continue
			}
			owner[e.Pattern] = s.Name()
		}
	}
	return errs
}

// endpointHandler is the handler of one of s's endpoints.
func (h *virtualHost) endpointHandler(s auth.Solution, e auth.Endpoint) (http.Handler, error) {
	switch {
	case e.Handler != nil && e.Login == nil && !e.Start:
		return e.Handler, nil
	case e.Login != nil && e.Handler == nil && !e.Start:
		rt := &route{cfg: Route{Name: s.Name() + ":login"}}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serveLoginEnd(w, r, s, e.Login, rt) }), nil
	case e.Start && e.Handler == nil && e.Login == nil:
		c, ok := s.(auth.Challenger)
		if !ok {
			return nil, fmt.Errorf("%s: a login start of a solution that sends no browser to log in", e.Pattern)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveLoginStart(w, r, c) }), nil
	}
	return nil, fmt.Errorf("%s: an endpoint sets exactly one of Handler, Login and Start", e.Pattern)
}

// serveLoginStart sends the browser to c's identity provider, to come
// back to return_to.
func serveLoginStart(w http.ResponseWriter, r *http.Request, c auth.Challenger) {
	back, err := checkReturnTo(r.URL.Query()[signInReturnParam])
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ReasonBadReturnTo)
		return
	}
	to, ok := c.Challenge(pageRequest(r, back))
	if !ok {
		writeProblem(w, r, http.StatusServiceUnavailable, ReasonLoginUnavailable)
		return
	}
	w.Header().Set(headerCacheControl, cacheControlNoStorage)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// serveLoginEnd answers the end of a login (an IdP's response, a
// provider's callback) with the solution that started it alone, not the
// chain: a browser that already has a session (an admin opening a
// verification login) must still complete the login. A login answers
// with its session and redirect; refusals count against the client's
// address as on a route.
func (h *virtualHost) serveLoginEnd(w http.ResponseWriter, r *http.Request, s auth.Solution, login func(http.ResponseWriter, *http.Request) auth.Result, rt *route) {
	client := h.proxies.clientAddr(r)
	if h.fails.blocked(client) {
		h.audit(r, rt, client, s.Name(), resultRateLimited, ReasonRateLimited, auth.Result{})
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, http.StatusTooManyRequests, ReasonRateLimited)
		return
	}
	res := login(w, r)
	if res.Outcome == auth.NoCredentials && res.Reason == "" {
		res.Reason = ReasonNoCredentials
	}
	h.audit(r, rt, client, s.Name(), res.Outcome.String(), res.Reason, res)
	w.Header().Set(headerCacheControl, cacheControlNoStorage)
	switch res.Outcome {
	case auth.Authenticated:
		if _, ok := h.login(w, r, res); ok {
			http.Redirect(w, r, "/", http.StatusSeeOther)
		}
	case auth.Refused:
		h.fails.failed(client)
		writeProblem(w, r, http.StatusUnauthorized, res.Reason)
	default:
		writeProblem(w, r, http.StatusBadRequest, res.Reason)
	}
}

// pageRequest is r as if it asked for back (a path of this virtual
// host): a Challenger builds the URL to come back to from the request it
// is given.
func pageRequest(r *http.Request, back *url.URL) *http.Request {
	page := r.Clone(r.Context())
	page.URL = back
	page.RequestURI = back.RequestURI()
	return page
}
