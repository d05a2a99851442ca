package authapi

import (
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Session token bounds: a portal's own id must carry at least 128 bits as
// base64 (22 characters) and stay short enough for a cookie.
const (
	minSessionIDLen = 22
	maxSessionIDLen = 256
)

// Session failures; each is a refusal reason or an API answer.
var (
	errSessionUnknown = errors.New("session_unknown")
	errSessionExpired = errors.New("session_expired")
	errSessionExists  = errors.New("session_exists")
)

// moduleSession is a session token a portal registered, keyed by the
// token's SHA-256.
type moduleSession struct {
	id          auth.Identity
	virtualHost string // "" = any
	created     time.Time
	lastSeen    time.Time
}

// sessionStore holds the portal-registered sessions in memory, bounded.
// After an agent restart the portal registers them again (its users are
// sent to it by the ticket or session-module flow).
type sessionStore struct {
	idle, absolute time.Duration
	max            int
	now            func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]*moduleSession // guarded by mu
}

func newSessionStore(c Sessions, now func() time.Time) *sessionStore {
	return &sessionStore{idle: c.IdleTimeout, absolute: c.AbsoluteTimeout, max: c.Max, now: now, m: map[[sha256.Size]byte]*moduleSession{}}
}

// validSessionID reports whether tok may be a session token: its length
// and characters (those of a cookie value, no quote, comma, semicolon or
// backslash).
func validSessionID(tok string) bool {
	if len(tok) < minSessionIDLen || len(tok) > maxSessionIDLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// register stores s under tok, or under a fresh token when tok is "".
func (st *sessionStore) register(tok string, s moduleSession) (string, error) {
	var h [sha256.Size]byte
	if tok == "" {
		tok, h = newToken()
	} else {
		h = sha256.Sum256([]byte(tok))
	}
	now := st.now()
	s.created, s.lastSeen = now, now
	st.mu.Lock()
	defer st.mu.Unlock()
	if old, ok := st.m[h]; ok && !st.expiredLocked(old, now) {
		return "", errSessionExists
	}
	if len(st.m) >= st.max {
		st.sweepLocked(now)
		if len(st.m) >= st.max {
			return "", errStoreFull
		}
	}
	st.m[h] = &s
	return tok, nil
}

// lookup returns the live session of tok; touch marks it used now (the
// solution does, the portal's validation does not).
func (st *sessionStore) lookup(tok string, touch bool) (moduleSession, error) {
	if !validSessionID(tok) {
		return moduleSession{}, errSessionUnknown
	}
	h := sha256.Sum256([]byte(tok))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.m[h]
	if !ok {
		return moduleSession{}, errSessionUnknown
	}
	if st.expiredLocked(s, now) {
		delete(st.m, h)
		return moduleSession{}, errSessionExpired
	}
	if touch {
		s.lastSeen = now
	}
	return *s, nil
}

// remove revokes tok; it reports whether a session was there.
func (st *sessionStore) remove(tok string) bool {
	if !validSessionID(tok) {
		return false
	}
	h := sha256.Sum256([]byte(tok))
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.m[h]
	delete(st.m, h)
	return ok
}

func (st *sessionStore) expiredLocked(s *moduleSession, now time.Time) bool {
	return !now.Before(st.expires(*s))
}

// expires is when s ends unless used again: the earlier of its idle and
// absolute ends.
func (st *sessionStore) expires(s moduleSession) time.Time {
	idle, abs := s.lastSeen.Add(st.idle), s.created.Add(st.absolute)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

func (st *sessionStore) sweepLocked(now time.Time) {
	for h, s := range st.m {
		if st.expiredLocked(s, now) {
			delete(st.m, h)
		}
	}
}
