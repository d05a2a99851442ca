package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/session"
)

// The node's own endpoints on a virtual host with a session solution.
const (
	// PathSession answers GET with the signed-in user, the session's CSRF
	// token and its ends (sessionInfo), or 401.
	PathSession = "/.edgefort/session"
	// PathLogout ends the session on POST (with the CSRF token in
	// session.HeaderCSRF) and clears its cookie.
	PathLogout = "/.edgefort/logout"
)

// Reason ids of the session side.
const (
	ReasonSessionsFull      = "too_many_sessions"
	ReasonSessionFailed     = "session_unavailable"
	ReasonNoSessionSolution = "no_session_solution"
)

// sessionStarter is implemented by solutions whose results may ask for a
// session (ticket, SAML, OIDC): a virtual host with one must also have a
// session solution, which names the cookie and the timeouts, or the
// configuration is refused. A solution that does not implement it and
// still asks for a session is answered 500 (no_session_solution) and
// logged: the node never sets a cookie no solution of the chain reads.
type sessionStarter interface {
	StartsSessions() bool
}

// checkSessionStarters refuses a chain whose solutions open sessions
// that no session solution reads.
func (h *virtualHost) checkSessionStarters(i int) error {
	if h.session != nil {
		return nil
	}
	for _, s := range h.chain.solutions {
		if st, ok := s.(sessionStarter); ok && st.StartsSessions() {
			return fieldErr(i, "authentication", errors.New("solution "+s.Name()+" opens sessions: add a session solution (- session: {}) to the chain"))
		}
	}
	return nil
}

// login finishes an interactive login: a new session and its cookie when
// the solution asks for one (never the session the request came with: no
// fixation), then the redirect, if any, else the request goes on as the
// user.
func (h *virtualHost) login(w http.ResponseWriter, r *http.Request, res auth.Result) (auth.Identity, bool) {
	if res.StartSession {
		if h.session == nil {
			h.log.Error("a solution asked for a session but the virtual host has no session solution; add `- session: {}` to its authentication",
				logKeySolution, res.Identity.Solution, logKeyRequestID, requestID(r.Context()))
			writeProblem(w, r, http.StatusInternalServerError, ReasonNoSessionSolution)
			return auth.Identity{}, false
		}
		if _, err := h.session.Start(w, res.Identity); err != nil {
			code, reason := http.StatusInternalServerError, ReasonSessionFailed
			if errors.Is(err, session.ErrFull) {
				code, reason = http.StatusServiceUnavailable, ReasonSessionsFull
				w.Header().Set("Retry-After", "60")
			} else {
				h.log.Error("session could not be started", logKeyRequestID, requestID(r.Context()), logKeyError, err)
			}
			writeProblem(w, r, code, reason)
			return auth.Identity{}, false
		}
	}
	if res.Redirect != "" {
		w.Header().Set("Location", res.Redirect)
		w.WriteHeader(http.StatusSeeOther)
		return auth.Identity{}, false
	}
	return res.Identity, true
}

// sessionInfo is the body of GET /.edgefort/session.
type sessionInfo struct {
	UserID      string    `json:"user_id"`
	Directory   string    `json:"directory"`
	CSRFToken   string    `json:"csrf_token"`
	CSRFHeader  string    `json:"csrf_header"`
	Expires     time.Time `json:"expires"`
	IdleExpires time.Time `json:"idle_expires"`
}

func (h *virtualHost) serveSession(w http.ResponseWriter, r *http.Request) {
	sess, err := h.session.Current(r)
	if err != nil {
		writeProblem(w, r, http.StatusUnauthorized, ReasonNoCredentials)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	json.NewEncoder(w).Encode(sessionInfo{UserID: sess.UserID, Directory: sess.Directory, CSRFToken: sess.CSRF,
		CSRFHeader: session.HeaderCSRF, Expires: sess.Expires, IdleExpires: sess.IdleExpires})
}

// serveLogout ends the session. It needs the CSRF token, so that another
// site cannot sign the user out; without a valid session it only clears
// the cookie.
func (h *virtualHost) serveLogout(w http.ResponseWriter, r *http.Request) {
	if sess, err := h.session.Current(r); err == nil && !session.CheckCSRF(r, sess.CSRF) {
		writeProblem(w, r, http.StatusForbidden, session.ReasonCSRF)
		return
	}
	if err := h.session.SignOut(w, r); err != nil && !errors.Is(err, session.ErrNotFound) {
		h.log.Error("sign-out failed", logKeyRequestID, requestID(r.Context()), logKeyError, err)
		writeProblem(w, r, http.StatusInternalServerError, ReasonSessionFailed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// stripCookie removes the cookies names from the Cookie headers of a
// request to a backend: the session token is the node's, and a backend
// that saw it could act as the user on every route of the virtual host.
func stripCookie(out http.Header, names []string) {
	vs := out.Values("Cookie")
	if len(vs) == 0 {
		return
	}
	var keep []string
	for _, v := range vs {
		for _, part := range strings.Split(v, ";") {
			n, _, _ := strings.Cut(part, "=")
			n = strings.TrimSpace(n) // as net/http reads a cookie name
			if !slices.Contains(names, n) && strings.TrimSpace(part) != "" {
				keep = append(keep, strings.TrimSpace(part))
			}
		}
	}
	out.Del("Cookie")
	if len(keep) > 0 {
		out.Set("Cookie", strings.Join(keep, "; "))
	}
}
