package samlauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/crewjam/saml"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Single logout (SAML profiles §4.4), when single_logout is on: the
// node's SLO endpoint (path_prefix + /slo, HTTP-Redirect and HTTP-POST)
// takes the IdP's LogoutRequests and its LogoutResponses to the node's
// own. Every message the node sends is signed with the keystore key; every
// one it takes must carry a valid signature of the IdP (the query
// signature over HTTP-Redirect, an enveloped one over POST), which
// github.com/crewjam/saml checks, with Destination, Issuer, IssueInstant
// and, for a LogoutResponse, InResponseTo against the request the node
// sent.

// Single logout refusal reasons.
const (
	ReasonLogoutUnsolicited = "saml_unsolicited_logout_response"
	ReasonLogoutFailed      = "saml_logout_failed"
	ReasonNoLogoutMessage   = "no_saml_logout_message"
)

// SessionEnder ends the node sessions of a login at the IdP: the client
// API's session store, bound to the virtual host.
type SessionEnder interface {
	EndIdPSessions(solution, nameID string, sessionIndexes []string) (int, error)
}

// SLOPath is the SLO endpoint.
func (s *Solution) SLOPath() string { return s.cfg.PathPrefix + "/slo" }

// LogoutPath is where the client API ends a session of this IdP's login
// and sends the browser to end it at the IdP (POST, with the session's
// CSRF token); empty when single logout is off.
func (s *Solution) LogoutPath() string {
	if !s.cfg.SingleLogout {
		return ""
	}
	return s.cfg.PathPrefix + "/logout"
}

// StartLogout returns the IdP's SLO URL with a signed LogoutRequest (query
// signature, HTTP-Redirect) for the login l; the request id is kept under
// an opaque RelayState until RequestTTL, for the response's InResponseTo.
func (s *Solution) StartLogout(l auth.IdPSession, returnTo string) (string, error) {
	if !s.cfg.SingleLogout {
		return "", errors.New("saml: single logout is off")
	}
	md, err := s.idp.get(context.Background())
	if err != nil {
		return "", fmt.Errorf("saml logout: %w", err)
	}
	sp, err := s.serviceProvider(md)
	if err != nil {
		return "", fmt.Errorf("saml logout: %w", err)
	}
	dest := sp.GetSLOBindingLocation(saml.HTTPRedirectBinding)
	if dest == "" {
		return "", errors.New("saml logout: the IdP metadata has no HTTP-Redirect SingleLogoutService")
	}
	req, err := sp.MakeLogoutRequest(dest, l.NameID, saml.WithSessionIndex(l.SessionIndex), func(r *saml.LogoutRequest) {
		r.NameID.Format, r.NameID.NameQualifier, r.NameID.SPNameQualifier = l.NameIDFormat, l.NameQualifier, l.SPNameQualifier
	})
	if err != nil {
		return "", fmt.Errorf("saml logout: %w", err)
	}
	relay, err := s.logouts.add(req.ID, returnTo)
	if err != nil {
		return "", fmt.Errorf("saml logout: %w", err)
	}
	u, err := sp.RedirectLogoutRequestURL(req, relay)
	if err != nil {
		return "", fmt.Errorf("saml logout: %w", err)
	}
	return u.String(), nil
}

// serveSLO answers the IdP at the SLO endpoint: a LogoutResponse ends a
// logout the node started (the browser goes on to its page), a
// LogoutRequest ends the login's node sessions and is answered with a
// signed LogoutResponse. A message that fails any check ends nothing.
func (s *Solution) serveSLO(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxPostBytes)
	}
	if err := r.ParseForm(); err != nil {
		s.sloRefused(w, http.StatusBadRequest, ReasonMalformed, fmt.Errorf("form: %w", err))
		return
	}
	md, err := s.idp.get(r.Context())
	if err != nil {
		s.sloRefused(w, http.StatusServiceUnavailable, ReasonNoMetadata, err)
		return
	}
	sp, err := s.serviceProvider(md)
	if err != nil {
		s.sloRefused(w, http.StatusServiceUnavailable, ReasonNoKey, err)
		return
	}
	switch {
	case r.Form.Get("SAMLResponse") != "":
		s.logoutResponse(w, r, sp)
	case r.Form.Get("SAMLRequest") != "":
		s.logoutRequest(w, r, sp)
	default:
		s.sloRefused(w, http.StatusBadRequest, ReasonNoLogoutMessage, errors.New("neither SAMLRequest nor SAMLResponse"))
	}
}

func (s *Solution) logoutResponse(w http.ResponseWriter, r *http.Request, sp *saml.ServiceProvider) {
	p, ok := s.logouts.take(r.Form.Get("RelayState"))
	if !ok {
		s.sloRefused(w, http.StatusBadRequest, ReasonLogoutUnsolicited, errors.New("the RelayState names no logout this node started"))
		return
	}
	if _, err := sp.ParseLogoutResponse(r, []string{p.requestID}); err != nil {
		res := refusal(err)
		s.sloRefused(w, http.StatusUnauthorized, res.Reason, res.Err)
		return
	}
	s.log.Info("saml single logout completed at the IdP")
	http.Redirect(w, r, p.returnTo, http.StatusSeeOther)
}

func (s *Solution) logoutRequest(w http.ResponseWriter, r *http.Request, sp *saml.ServiceProvider) {
	req, err := sp.ValidateLogoutRequest(r)
	if err != nil {
		res := refusal(err)
		s.sloRefused(w, http.StatusUnauthorized, res.Reason, res.Err)
		return
	}
	status := saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}}
	var indexes []string
	for _, i := range req.AllSessionIndexes() {
		indexes = append(indexes, i.Value)
	}
	n := 0
	switch {
	case req.NameID == nil || req.NameID.Value == "":
		status.StatusCode.Value = saml.StatusRequester
		err = errors.New("the LogoutRequest names no NameID")
	case s.sessions == nil:
		status.StatusCode.Value = saml.StatusResponder
		err = errors.New("no session store")
	default:
		if n, err = s.sessions.EndIdPSessions(s.cfg.Name, req.NameID.Value, indexes); err != nil {
			status.StatusCode.Value = saml.StatusResponder
		}
	}
	if err != nil {
		s.log.Error("saml single logout from the IdP failed", "error", err)
	} else {
		s.log.Info("saml single logout from the IdP", "sessions_ended", n)
	}
	u, err := sp.MakeRedirectLogoutResponseWithStatus(req.ID, r.Form.Get("RelayState"), status)
	if err != nil {
		s.sloRefused(w, http.StatusInternalServerError, ReasonLogoutFailed, err)
		return
	}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// sloRefused answers a logout message that is refused; the detail goes to
// the log only.
func (s *Solution) sloRefused(w http.ResponseWriter, code int, reason string, err error) {
	s.log.Warn("saml single logout message refused", "reason", reason, "error", err)
	http.Error(w, reason, code)
}
