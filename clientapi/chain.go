package clientapi

import (
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/session"
)

// Reason ids of the refusals the chain and the authorization step give.
const (
	ReasonNoCredentials     = "no_credentials"
	ReasonAnonymousRefused  = "anonymous_not_allowed"
	ReasonRateLimited       = "too_many_failed_authentications"
	ReasonDenied            = "denied"
	ReasonAuthzUnavailable  = "authorization_unavailable"
	resultRateLimited       = "rate_limited"
	solutionNone            = "none"
	wwwAuthenticateJWTKind  = "jwt"
	headerWWWAuthenticate   = "WWW-Authenticate"
	bearerChallenge         = `Bearer realm="edgefort"`
	bearerChallengeRejected = `Bearer realm="edgefort", error="invalid_token"`
)

// chain is a virtual host's ordered authentication solutions.
type chain struct {
	solutions []auth.Solution
	bearer    bool // a JWT solution is in the chain: 401s carry a Bearer challenge
}

// outcome is what the chain made of a request.
type outcome struct {
	res      auth.Result
	solution auth.Solution // nil when no solution found credentials
}

// run asks each solution in order; the first that finds credentials
// decides. The anonymous identity is kept aside, for when no other
// solution finds any, so that its place in the chain does not shadow the
// solutions after it.
func (c *chain) run(r *http.Request) outcome {
	var anon *outcome
	for _, s := range c.solutions {
		res := s.Authenticate(r)
		switch {
		case res.Outcome == auth.NoCredentials:
			continue
		case res.Outcome == auth.Authenticated && res.Identity.Anonymous:
			if anon == nil {
				anon = &outcome{res: res, solution: s}
			}
			continue
		}
		if res.Outcome == auth.Authenticated && res.Identity.Solution == "" {
			res.Identity.Solution = s.Name()
		}
		return outcome{res: res, solution: s}
	}
	if anon != nil {
		return *anon
	}
	return outcome{res: auth.Result{Outcome: auth.NoCredentials, Reason: ReasonNoCredentials}}
}

// authenticate runs the chain for a request to rt and answers 401 or 429
// itself; ok reports whether the request may go on as id.
func (h *virtualHost) authenticate(w http.ResponseWriter, r *http.Request, rt *route) (id auth.Identity, ok bool) {
	client := h.proxies.clientAddr(r)
	if h.fails.blocked(client) {
		h.audit(r, rt, client, solutionNone, resultRateLimited, ReasonRateLimited, auth.Result{})
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, http.StatusTooManyRequests, ReasonRateLimited)
		return auth.Identity{}, false
	}
	o := h.chain.run(r)
	name := solutionNone
	if o.solution != nil {
		name = o.solution.Name()
	}
	res := o.res
	if res.Outcome == auth.Authenticated {
		if err := checkIdentity(res.Identity, h.cfg.Identity.Headers.Groups != ""); err != nil {
			res = auth.Result{Outcome: auth.Refused, Reason: ReasonBadIdentity, Err: err}
		}
	}
	switch {
	case res.Outcome == auth.Authenticated && res.Identity.Anonymous && !rt.cfg.Anonymous:
		res = auth.Result{Outcome: auth.NoCredentials, Reason: ReasonAnonymousRefused}
	case res.Outcome == auth.Refused && res.Reason != session.ReasonCSRF:
		h.fails.failed(client)
	}
	h.audit(r, rt, client, name, res.Outcome.String(), res.Reason, res)
	if res.Outcome == auth.Authenticated {
		if res.StartSession || res.Redirect != "" {
			return h.login(w, r, res)
		}
		return res.Identity, true
	}
	if res.Reason == session.ReasonCSRF {
		writeProblem(w, r, http.StatusForbidden, res.Reason)
		return auth.Identity{}, false
	}
	// A browser with no credentials at all is sent to log in (a ticket
	// module, an IdP) and brought back here; refused credentials stay a
	// 401, so that a bad ticket is not answered with a new login loop.
	if res.Outcome == auth.NoCredentials && wantsPage(r) && h.challenge(w, r, r) {
		return auth.Identity{}, false
	}
	if h.chain.bearer {
		challenge := bearerChallenge
		if res.Outcome == auth.Refused && o.solution != nil && o.solution.Kind() == wwwAuthenticateJWTKind {
			challenge = bearerChallengeRejected
		}
		w.Header().Set(headerWWWAuthenticate, challenge)
	}
	writeProblem(w, r, http.StatusUnauthorized, res.Reason)
	return auth.Identity{}, false
}

// audit counts one authentication and logs it when it is a decision:
// a verification, a refusal, a rate limit, no credentials. A request
// authenticated from a solution's cache of verified credentials repeats
// the decision logged at verification, and an anonymous one verifies
// nothing: those are logged at debug level only (the metrics count every
// request), so that the audit log grows with decisions, not with traffic.
// It never logs a credential: solutions keep tokens out of Reason and Err.
func (h *virtualHost) audit(r *http.Request, rt *route, client netip.Addr, solution, result, reason string, res auth.Result) {
	h.m.auth.WithLabelValues(h.cfg.Name, solution, result).Inc()
	level := slog.LevelInfo
	if res.Outcome == auth.Authenticated && (res.Cached || res.Identity.Anonymous) {
		level = slog.LevelDebug
	}
	if !h.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String(logKeyRoute, rt.cfg.Name),
		slog.String(logKeyRequestID, requestID(r.Context())), slog.String(logKeyClient, client.String()),
		slog.String(logKeySolution, solution), slog.String(logKeyResult, result),
	}
	if reason != "" {
		attrs = append(attrs, slog.String(logKeyReason, reason))
	}
	if id := res.Identity; id.UserID != "" {
		attrs = append(attrs, slog.String(logKeyUser, id.UserID), slog.String(logKeyDirectory, id.Directory))
	}
	if res.Err != nil {
		attrs = append(attrs, slog.String(logKeyError, res.Err.Error()))
	}
	if res.Cached {
		attrs = append(attrs, slog.Bool("cached", true))
	}
	h.log.LogAttrs(r.Context(), level, "authentication", attrs...)
}
