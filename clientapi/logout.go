package clientapi

import (
	"errors"
	"net/http"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/session"
)

// serveSingleLogout ends the request's session and, when the session came
// from sl's identity provider, sends the browser there to end that login
// too (SAML single logout), to come back to return_to. Like POST
// /.edgefort/logout it needs the session's CSRF token (header or form
// field session.FormCSRF), so that another site cannot sign the user out; without a valid
// session it only goes back to return_to.
func (h *virtualHost) serveSingleLogout(w http.ResponseWriter, r *http.Request, name string, sl auth.SingleLogout) {
	if err := r.ParseForm(); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "bad_form")
		return
	}
	back, err := checkReturnTo(r.Form[signInReturnParam])
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ReasonBadReturnTo)
		return
	}
	w.Header().Set(headerCacheControl, cacheControlNoStorage)
	sess, err := h.session.Current(r)
	if err != nil {
		http.Redirect(w, r, back.RequestURI(), http.StatusSeeOther)
		return
	}
	if !session.CheckCSRFForm(r, sess.CSRF) {
		writeProblem(w, r, http.StatusForbidden, session.ReasonCSRF)
		return
	}
	if err := h.session.SignOut(w, r); err != nil && !errors.Is(err, session.ErrNotFound) {
		h.log.Error("sign-out failed", logKeyRequestID, requestID(r.Context()), logKeyError, err)
		writeProblem(w, r, http.StatusInternalServerError, ReasonSessionFailed)
		return
	}
	to := back.RequestURI()
	if l := sess.Identity.IdPSession; l != nil && l.Solution == name {
		u, err := sl.StartLogout(*l, to)
		if err != nil {
			// The node session is over; the IdP's goes on until it ends.
			h.log.Warn("single logout not sent to the identity provider", logKeySolution, name,
				logKeyRequestID, requestID(r.Context()), logKeyError, err)
		} else {
			to = u
		}
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// idpSessionEnder ends a virtual host's sessions of a login at an IdP,
// for a SAML solution's single logout.
type idpSessionEnder struct {
	store *session.Store
	vhost string
}

func (e idpSessionEnder) EndIdPSessions(solution, nameID string, sessionIndexes []string) (int, error) {
	ended, err := e.store.EndIdPSessions(e.vhost, solution, nameID, sessionIndexes)
	return len(ended), err
}
