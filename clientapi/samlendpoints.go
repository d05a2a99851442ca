package clientapi

import (
	"net/http"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// ReasonNoResponse answers a request to an assertion consumer service
// that carries no SAML response.
const ReasonNoResponse = "no_saml_response"

// acsSolution is a solution with endpoints of its own on the virtual
// host (package samlauth): its metadata page, and the assertion consumer
// service where IdPs send browsers back with a response. The ACS reads
// the request body, which Authenticate may not, so the client API calls
// Consume there and treats its result as the chain's: audited, counted
// against the client's failed-authentication limit, a session and a
// redirect on success.
type acsSolution interface {
	auth.Solution
	MetadataPath() string
	ServeMetadata(w http.ResponseWriter, r *http.Request)
	ACSPath() string
	Consume(w http.ResponseWriter, r *http.Request) auth.Result
}

// registerACS serves the endpoints of the chain's acsSolutions.
func (h *virtualHost) registerACS() {
	for _, s := range h.chain.solutions {
		a, ok := s.(acsSolution)
		if !ok {
			continue
		}
		h.mux.HandleFunc("GET "+a.MetadataPath(), a.ServeMetadata)
		rt := &route{cfg: Route{Name: a.Name() + ":acs"}}
		serve := func(w http.ResponseWriter, r *http.Request) { h.serveACS(w, r, a, rt) }
		h.mux.HandleFunc("POST "+a.ACSPath(), serve)
		h.mux.HandleFunc("GET "+a.ACSPath(), serve)
	}
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
