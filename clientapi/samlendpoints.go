package clientapi

import (
	"fmt"
	"net/http"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// ReasonNoResponse answers a request to an assertion consumer service
// that carries no SAML response.
const ReasonNoResponse = "no_saml_response"

// ReasonLoginUnavailable answers a login path whose IdP cannot be asked
// now (no metadata, too many logins in flight); the log says why.
const ReasonLoginUnavailable = "login_unavailable"

// acsSolution is a solution with endpoints of its own on the virtual
// host (package samlauth): its metadata page, and the assertion consumer
// service where IdPs send browsers back with a response. The ACS reads
// the request body, which Authenticate may not, so the client API calls
// Consume there and treats its result as the chain's: audited, counted
// against the client's failed-authentication limit, a session and a
// redirect on success.
type acsSolution interface {
	auth.Solution
	auth.Challenger
	// LoginPath starts a login with this solution's IdP (GET
	// ?return_to=/page), so that a virtual host with several can offer
	// each by a link.
	LoginPath() string
	MetadataPath() string
	ServeMetadata(w http.ResponseWriter, r *http.Request)
	ACSPath() string
	Consume(w http.ResponseWriter, r *http.Request) auth.Result
}

// registerACS serves the endpoints of the chain's acsSolutions; two
// solutions on the same paths are a configuration error.
func (h *virtualHost) registerACS(i int) []error {
	var errs []error
	for _, s := range h.chain.solutions {
		a, ok := s.(acsSolution)
		if !ok {
			continue
		}
		rt := &route{cfg: Route{Name: a.Name() + ":acs"}}
		serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serveACS(w, r, a, rt) })
		login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serveLogin(w, r, a) })
		for pattern, handler := range map[string]http.Handler{
			"GET " + a.MetadataPath(): http.HandlerFunc(a.ServeMetadata),
			"GET " + a.LoginPath():    login,
			"GET " + a.ACSPath():      serve,
			"POST " + a.ACSPath():     serve,
		} {
			if err := register(h.mux, pattern, handler); err != nil {
				errs = append(errs, fieldErr(i, "authentication", fmt.Errorf("solution %s: %w (give each its own path_prefix)", a.Name(), err)))
			}
		}
	}
	return errs
}

// serveLogin sends the browser to a's IdP, to come back to return_to.
func (h *virtualHost) serveLogin(w http.ResponseWriter, r *http.Request, a acsSolution) {
	back, err := checkReturnTo(r.URL.Query()[signInReturnParam])
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ReasonBadReturnTo)
		return
	}
	page := r.Clone(r.Context())
	page.URL = back
	page.RequestURI = back.RequestURI()
	to, ok := a.Challenge(page)
	if !ok {
		writeProblem(w, r, http.StatusServiceUnavailable, ReasonLoginUnavailable)
		return
	}
	w.Header().Set(headerCacheControl, cacheControlNoStorage)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (h *virtualHost) serveACS(w http.ResponseWriter, r *http.Request, a acsSolution, rt *route) {
	client := h.proxies.clientAddr(r)
	if h.fails.blocked(client) {
		h.audit(r, rt, client, a.Name(), resultRateLimited, ReasonRateLimited, auth.Result{})
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, http.StatusTooManyRequests, ReasonRateLimited)
		return
	}
	res := a.Consume(w, r)
	if res.Outcome == auth.NoCredentials {
		res.Reason = ReasonNoResponse
	}
	h.audit(r, rt, client, a.Name(), res.Outcome.String(), res.Reason, res)
	switch res.Outcome {
	case auth.Authenticated:
		h.login(w, r, res)
	case auth.Refused:
		h.fails.failed(client)
		writeProblem(w, r, http.StatusUnauthorized, res.Reason)
	default:
		writeProblem(w, r, http.StatusBadRequest, res.Reason)
	}
}
