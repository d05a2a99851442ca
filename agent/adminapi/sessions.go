package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edgefort/edgefort/clientapi/session"
)

// Sessions is the operations on the client API's sessions: the
// adminclient performs them in a running agent (a revocation takes effect
// on the session's next request), LocalSessions in-process on the state
// store when no agent runs.
type Sessions interface {
	ListSessions(ctx context.Context) (*SessionList, error)
	// RevokeSession ends the session whose id (the short id of the list,
	// or a longer prefix of its hash) is id.
	RevokeSession(ctx context.Context, id string) (*SessionRevoked, error)
	// RevokeUserSessions ends every session of user, given as
	// DIRECTORY/USER_ID.
	RevokeUserSessions(ctx context.Context, user string) (*SessionRevoked, error)
}

// SessionInfo is one session. It never holds the session's token.
type SessionInfo struct {
	ID          string    `json:"id"`
	VirtualHost string    `json:"virtual_host"`
	UserID      string    `json:"user_id"`
	Directory   string    `json:"directory"`
	Solution    string    `json:"solution"`
	Created     time.Time `json:"created"`
	LastSeen    time.Time `json:"last_seen"`
	// Expires is when the session ends at the latest (absolute timeout).
	Expires time.Time `json:"expires"`
	// IdleExpires is when it ends unless used before.
	IdleExpires time.Time `json:"idle_expires"`
}

// SessionList is what GET /v1/sessions answers, oldest first.
type SessionList struct {
	Sessions []SessionInfo `json:"sessions"`
}

// SessionRevoked is what a revocation answers: the sessions ended.
type SessionRevoked struct {
	Revoked []SessionInfo `json:"revoked"`
}

// ErrNoSessions is the answer when the running agent has no client API
// (and so no sessions).
var ErrNoSessions = errors.New("the client API is not running (no virtual hosts), so there are no sessions")

// LocalSessions performs the Sessions operations on a session store in
// this process.
type LocalSessions struct {
	// Store returns the session store; nil answers ErrNoSessions.
	Store func() *session.Store
}

var _ Sessions = LocalSessions{}

func (l LocalSessions) store() (*session.Store, error) {
	if l.Store == nil {
		return nil, Conflict(ErrNoSessions)
	}
	st := l.Store()
	if st == nil {
		return nil, Conflict(ErrNoSessions)
	}
	return st, nil
}

func (l LocalSessions) ListSessions(context.Context) (*SessionList, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	out := &SessionList{Sessions: []SessionInfo{}}
	for _, in := range st.List() {
		out.Sessions = append(out.Sessions, sessionInfo(in))
	}
	return out, nil
}

func (l LocalSessions) RevokeSession(_ context.Context, id string) (*SessionRevoked, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	in, err := st.Revoke(id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return nil, &StatusError{Code: http.StatusNotFound, Err: err}
	case err != nil:
		return nil, BadRequest(err)
	}
	return &SessionRevoked{Revoked: []SessionInfo{sessionInfo(in)}}, nil
}

func (l LocalSessions) RevokeUserSessions(_ context.Context, user string) (*SessionRevoked, error) {
	dir, id, ok := strings.Cut(user, "/")
	if !ok || dir == "" || id == "" {
		return nil, BadRequest(fmt.Errorf("user %q: give DIRECTORY/USER_ID", user))
	}
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	ins, err := st.RevokeUser(dir, id)
	if err != nil {
		return nil, err
	}
	out := &SessionRevoked{Revoked: []SessionInfo{}}
	for _, in := range ins {
		out.Revoked = append(out.Revoked, sessionInfo(in))
	}
	return out, nil
}

func sessionInfo(in session.Info) SessionInfo {
	return SessionInfo{ID: in.ID, VirtualHost: in.VirtualHost, UserID: in.UserID, Directory: in.Directory, Solution: in.Solution,
		Created: in.Created, LastSeen: in.LastSeen, Expires: in.Expires, IdleExpires: in.IdleExpires}
}

func (s *Server) sessionRoutes(mux *http.ServeMux) {
	internal := func(error) int { return http.StatusInternalServerError }
	mux.HandleFunc("GET /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		answer(w, internal)(s.sessions().ListSessions(r.Context()))
	})
	mux.HandleFunc("DELETE /v1/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, internal)(s.sessions().RevokeSession(r.Context(), r.PathValue("id")))
	})
	mux.HandleFunc("DELETE /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		answer(w, internal)(s.sessions().RevokeUserSessions(r.Context(), r.URL.Query().Get("user")))
	})
}

func (s *Server) sessions() Sessions {
	if s.Sessions == nil {
		return LocalSessions{}
	}
	return s.Sessions
}
