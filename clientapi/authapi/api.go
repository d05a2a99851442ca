package authapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Bounds of the identity a module hands in.
const (
	maxNameBytes  = 256
	maxGroups     = 256
	maxAttributes = 64
	maxValues     = 64
)

// Refusal reasons the API answers with (the "error" of its JSON bodies).
const (
	reasonForbidden     = "client_certificate_not_allowed"
	reasonBadRequest    = "bad_request"
	reasonTooLarge      = "request_too_large"
	reasonMediaType     = "content_type_not_json"
	reasonTargetInvalid = "target_url_invalid"
	reasonNotFound      = "not_found"
)

// Log keys of the API's lines.
const (
	logKeyRoute  = "route"
	logKeyStatus = "status"
	logKeyClient = "client_cn"
	logKeyUser   = "user"
	logKeyReason = "reason"
)

// UserRequest is the user a ticket or session is for.
type UserRequest struct {
	UserID        string              `json:"user_id"`
	UserDirectory string              `json:"user_directory"`
	Groups        []string            `json:"groups,omitempty"`
	Attributes    map[string][]string `json:"attributes,omitempty"`
	// VirtualHost, when set, is the only virtual host that accepts the
	// ticket or session.
	VirtualHost string `json:"virtual_host,omitempty"`
}

// TicketRequest is the body of POST /v1/tickets.
type TicketRequest struct {
	UserRequest
	// TargetURL is where the browser goes once the ticket is redeemed: a
	// path or an URL on one of the node's virtual hosts or allowed
	// origins. Empty: the URL the ticket was presented on, without it.
	TargetURL string `json:"target_url,omitempty"`
}

// TicketResponse answers POST /v1/tickets.
type TicketResponse struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
	TargetURL string    `json:"target_url,omitempty"`
}

// SessionRequest is the body of POST /v1/sessions.
type SessionRequest struct {
	UserRequest
	// SessionID is the portal's token; empty: the node generates one.
	SessionID string `json:"session_id,omitempty"`
}

// SessionResponse answers POST /v1/sessions (with SessionID) and GET
// /v1/sessions/{id} (without).
type SessionResponse struct {
	SessionID     string              `json:"session_id,omitempty"`
	UserID        string              `json:"user_id"`
	UserDirectory string              `json:"user_directory"`
	Groups        []string            `json:"groups,omitempty"`
	Attributes    map[string][]string `json:"attributes,omitempty"`
	VirtualHost   string              `json:"virtual_host,omitempty"`
	CreatedAt     time.Time           `json:"created_at"`
	LastSeenAt    time.Time           `json:"last_seen_at"`
	ExpiresAt     time.Time           `json:"expires_at"`
}

type problem struct {
	Error string `json:"error"`
}

// Handler is the API's handler, for tests and fuzzing in-process; it
// expects r.TLS to carry the verified client certificate.
func (a *API) Handler() http.Handler { return a.handler }

func (a *API) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tickets", a.postTicket)
	mux.HandleFunc("POST /v1/sessions", a.postSession)
	mux.HandleFunc("GET /v1/sessions/{id}", a.getSession)
	mux.HandleFunc("DELETE /v1/sessions/{id}", a.deleteSession)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		rec := &statusWriter{ResponseWriter: w}
		// The handshake verified the certificate against the truststore;
		// the allow-list narrows who of those may call.
		if allowed := r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && (len(a.cns) == 0 || a.cns[cn]); !allowed {
			rec.reason = reasonForbidden
			writeJSON(rec, http.StatusForbidden, problem{reasonForbidden})
		} else {
			r.Body = http.MaxBytesReader(rec, r.Body, a.cfg.MaxBodyBytes)
			mux.ServeHTTP(rec, r)
		}
		// The path is not logged: it may carry a session id.
		route := routeOf(r)
		if rec.reason == reasonForbidden {
			route = "forbidden"
		}
		a.m.call(route, rec.status)
		attrs := []slog.Attr{slog.String(logKeyRoute, route), slog.Int(logKeyStatus, rec.status), slog.String(logKeyClient, cn)}
		if rec.user != "" {
			attrs = append(attrs, slog.String(logKeyUser, rec.user))
		}
		if rec.reason != "" {
			attrs = append(attrs, slog.String(logKeyReason, rec.reason))
		}
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "authentication API call", attrs...)
	})
}

// routeOf is the route pattern r matched ("POST /v1/tickets"), never its
// path.
func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

// statusWriter keeps what the call's log line says.
type statusWriter struct {
	http.ResponseWriter
	status int
	user   string
	reason string
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (a *API) postTicket(w http.ResponseWriter, r *http.Request) {
	var req TicketRequest
	if !decode(w, r, &req) || !checkUser(w, req.UserRequest) {
		return
	}
	target := ""
	if req.TargetURL != "" {
		var ok bool
		if target, ok = a.targetAllowed(req.TargetURL, req.VirtualHost); !ok {
			fail(w, http.StatusBadRequest, reasonTargetInvalid)
			return
		}
	}
	tok, exp, err := a.tickets.issue(ticket{id: identity(req.UserRequest), target: target, virtualHost: req.VirtualHost})
	if err != nil {
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	note(w, req.UserID)
	writeJSON(w, http.StatusCreated, TicketResponse{Ticket: tok, ExpiresAt: exp.UTC(), TargetURL: target})
}

func (a *API) postSession(w http.ResponseWriter, r *http.Request) {
	var req SessionRequest
	if !decode(w, r, &req) || !checkUser(w, req.UserRequest) {
		return
	}
	if req.SessionID != "" && !validSessionID(req.SessionID) {
		fail(w, http.StatusBadRequest, "session_id_invalid")
		return
	}
	tok, err := a.sessions.register(req.SessionID, moduleSession{id: identity(req.UserRequest), virtualHost: req.VirtualHost})
	switch {
	case errors.Is(err, errSessionExists):
		fail(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, errStoreFull):
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		a.log.Warn("writing a session to the state store failed", "error", err)
		fail(w, http.StatusServiceUnavailable, "state_store_unavailable")
		return
	}
	s, _ := a.sessions.lookup(tok, false)
	note(w, req.UserID)
	resp := a.sessionResponse(s)
	resp.SessionID = tok
	writeJSON(w, http.StatusCreated, resp)
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) {
	s, err := a.sessions.lookup(r.PathValue("id"), false)
	if err != nil {
		fail(w, http.StatusNotFound, err.Error())
		return
	}
	note(w, s.id.UserID)
	writeJSON(w, http.StatusOK, a.sessionResponse(s))
}

func (a *API) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cached := a.validations.drop(id)
	stored, err := a.sessions.remove(id)
	switch {
	case err != nil:
		// Gone from memory already; the state store forgets it with its
		// next write.
		a.log.Warn("deleting a session from the state store failed", "error", err)
		fail(w, http.StatusServiceUnavailable, "state_store_unavailable")
		return
	case !cached && !stored:
		fail(w, http.StatusNotFound, errSessionUnknown.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) sessionResponse(s moduleSession) SessionResponse {
	return SessionResponse{UserID: s.id.UserID, UserDirectory: s.id.Directory, Groups: s.id.Groups, Attributes: s.id.Attributes,
		VirtualHost: s.virtualHost, CreatedAt: s.created.UTC(), LastSeenAt: s.lastSeen.UTC(), ExpiresAt: a.sessions.expires(s).UTC()}
}

// decode reads r's JSON body strictly into v: application/json, within
// the size limit, known fields only, one value.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, reasonMediaType)
		return false
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(w, http.StatusRequestEntityTooLarge, reasonTooLarge)
		} else {
			fail(w, http.StatusBadRequest, reasonBadRequest)
		}
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, reasonBadRequest)
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		fail(w, http.StatusBadRequest, reasonBadRequest)
		return false
	}
	return true
}

// checkUser bounds the identity a module hands in.
func checkUser(w http.ResponseWriter, u UserRequest) bool {
	ok := goodName(u.UserID) && goodName(u.UserDirectory) && len(u.Groups) <= maxGroups &&
		len(u.Attributes) <= maxAttributes && (u.VirtualHost == "" || goodName(u.VirtualHost))
	for _, g := range u.Groups {
		ok = ok && goodName(g)
	}
	for k, vs := range u.Attributes {
		ok = ok && goodName(k) && len(vs) <= maxValues
		for _, v := range vs {
			ok = ok && len(v) <= maxNameBytes && !unsafeControl(v)
		}
	}
	if !ok {
		fail(w, http.StatusBadRequest, "user_invalid")
	}
	return ok
}

// goodName is a non-empty, bounded name without control characters.
func goodName(s string) bool { return s != "" && len(s) <= maxNameBytes && !unsafeControl(s) }

func unsafeControl(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

func identity(u UserRequest) auth.Identity {
	return auth.Identity{UserID: u.UserID, Directory: u.UserDirectory, Groups: u.Groups, Attributes: u.Attributes}
}

// note records the user for the call's log line.
func note(w http.ResponseWriter, user string) {
	if s, ok := w.(*statusWriter); ok {
		s.user = user
	}
}

func fail(w http.ResponseWriter, code int, reason string) {
	if s, ok := w.(*statusWriter); ok {
		s.reason = reason
	}
	writeJSON(w, code, problem{reason})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// targetAllowed checks a ticket's target when the ticket is issued, with
// the rules its redemption applies: a path, or a URL on one of the node's
// virtual hosts or an allowed origin of the ticket solution of vhost (any
// ticket solution's when vhost is not named). A module that sends the
// browser on to the target it asked for can then never carry a live
// ticket to another site.
func (a *API) targetAllowed(raw, vhost string) (string, bool) {
	u, err := parseTarget(raw)
	if err != nil {
		return "", false
	}
	if u.Host == "" {
		return u.String(), true
	}
	ok := false
	a.policies.Range(func(k, v any) bool {
		if vhost == "" || k.(string) == vhost {
			if _, err := v.(*redirects).check(raw); err == nil {
				ok = true
			}
		}
		return !ok
	})
	return u.String(), ok
}
