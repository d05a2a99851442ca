package clientapi

import (
	"fmt"
	"net/http"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// pathServer is a solution that serves node paths of its own on the
// virtual host (an OIDC login start, its key set), outside the routes:
// they need no authentication.
type pathServer interface {
	Handlers() map[string]http.Handler
}

// callbackSolution is an interactive solution whose identity provider
// sends the browser back to a path of the node: the chain runs there as
// on a route, so that the login opens a session and redirects.
type callbackSolution interface {
	CallbackPath() string
}

// registerSolutionPaths adds the solutions' own paths to h's mux.
func (h *virtualHost) registerSolutionPaths(i int) []error {
	var errs []error
	for j, s := range h.chain.solutions {
		field := fmt.Sprintf("authentication[%d]", j)
		if ps, ok := s.(pathServer); ok {
			for pattern, handler := range ps.Handlers() {
				if err := register(h.mux, pattern, handler); err != nil {
					errs = append(errs, fieldErr(i, field, err))
				}
			}
		}
		if cs, ok := s.(callbackSolution); ok {
			rt := &route{cfg: Route{Name: s.Name() + "-callback"}}
			if err := register(h.mux, "GET "+cs.CallbackPath(), h.callbackHandler(rt, s)); err != nil {
				errs = append(errs, fieldErr(i, field, err))
			}
		}
	}
	return errs
}

// callbackHandler answers an identity provider's callback with the
// solution that started the login alone, not the chain: a browser that
// already has a session (an admin opening a verification login) must
// still complete the login. A login answers with its session and
// redirect; refusals count against the client's address as on a route.
func (h *virtualHost) callbackHandler(rt *route, s auth.Solution) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := h.proxies.clientAddr(r)
		if h.fails.blocked(client) {
			h.audit(r, rt, client, solutionNone, resultRateLimited, ReasonRateLimited, auth.Result{})
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, http.StatusTooManyRequests, ReasonRateLimited)
			return
		}
		res := s.Authenticate(r)
		if res.Outcome == auth.NoCredentials {
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
			writeProblem(w, r, http.StatusUnauthorized, res.Reason)
		}
	})
}
