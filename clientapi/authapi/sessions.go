package authapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/store"
)

// sessionsBucket holds the registered sessions in the state store, keyed
// by the hex SHA-256 of the token.
const sessionsBucket = "authapi_sessions"

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

// storedSession is a session as the state store keeps it. LastSeen is
// written in batches (flush, about once a minute), so that no request pays
// a write; after a crash a session may end up to that much early.
type storedSession struct {
	LastSeen    time.Time           `json:"last_seen"`
	UserID      string              `json:"user_id"`
	Directory   string              `json:"directory"`
	Groups      []string            `json:"groups,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
	VirtualHost string              `json:"virtual_host,omitempty"`
	Created     time.Time           `json:"created"`
}

// sessionStore holds the portal-registered sessions in memory, bounded,
// and, with a state store, written there on registration and deletion so
// that an agent restart keeps them.
type sessionStore struct {
	idle, absolute time.Duration
	max            int
	now            func() time.Time
	db             *store.DB // nil: memory only

	mu      sync.Mutex
	m       map[[sha256.Size]byte]*moduleSession // guarded by mu
	expired [][sha256.Size]byte                  // dropped from m, still in db: deleted with the next write; guarded by mu
	touched map[[sha256.Size]byte]bool           // used since the last flush; guarded by mu
}

// newSessionStore loads the sessions of db that are still live; it
// deletes the others, and any record it cannot read (counted in bad).
func newSessionStore(c Sessions, now func() time.Time, db *store.DB) (st *sessionStore, bad int, err error) {
	st = &sessionStore{idle: c.IdleTimeout, absolute: c.AbsoluteTimeout, max: c.Max, now: now, db: db,
		m: map[[sha256.Size]byte]*moduleSession{}, touched: map[[sha256.Size]byte]bool{}}
	if db == nil {
		return st, 0, nil
	}
	now0 := now()
	var drop []string
	err = db.Bucket(sessionsBucket).ForEach(func(key string, raw json.RawMessage) error {
		var h [sha256.Size]byte
		var ss storedSession
		if n, err := hex.Decode(h[:], []byte(key)); err != nil || n != sha256.Size || len(key) != 2*sha256.Size || json.Unmarshal(raw, &ss) != nil {
			bad++
			drop = append(drop, key)
			return nil
		}
		s := &moduleSession{id: auth.Identity{UserID: ss.UserID, Directory: ss.Directory, Groups: ss.Groups, Attributes: ss.Attributes},
			virtualHost: ss.VirtualHost, created: ss.Created, lastSeen: ss.LastSeen}
		if st.expiredLocked(s, now0) || len(st.m) >= st.max {
			drop = append(drop, key)
			return nil
		}
		st.m[h] = s
		return nil
	})
	if err == nil && len(drop) > 0 {
		err = db.Update(func(tx *store.Tx) error {
			b := tx.Bucket(sessionsBucket)
			for _, k := range drop {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("authapi: load the sessions from the state store: %w", err)
	}
	return st, bad, nil
}

// write stores put (under its hash) and deletes the expired sessions, in
// one transaction; a no-op without a state store.
func (st *sessionStore) write(put *moduleSession, h *[sha256.Size]byte) error {
	if st.db == nil {
		return nil
	}
	st.mu.Lock()
	gone := st.expired
	st.expired = nil
	st.mu.Unlock()
	if put == nil && h == nil && len(gone) == 0 {
		return nil
	}
	err := st.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(sessionsBucket)
		for _, g := range gone {
			if err := b.Delete(hex.EncodeToString(g[:])); err != nil {
				return err
			}
		}
		switch {
		case put != nil:
			return b.Put(hex.EncodeToString(h[:]), stored(put))
		case h != nil:
			return b.Delete(hex.EncodeToString(h[:]))
		}
		return nil
	})
	if err != nil {
		st.mu.Lock()
		st.expired = append(st.expired, gone...)
		st.mu.Unlock()
		return fmt.Errorf("authapi: state store: %w", err)
	}
	return nil
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
	if old, ok := st.m[h]; ok && !st.expiredLocked(old, now) {
		st.mu.Unlock()
		return "", errSessionExists
	}
	if len(st.m) >= st.max {
		st.sweepLocked(now)
		if len(st.m) >= st.max {
			st.mu.Unlock()
			return "", errStoreFull
		}
	}
	rec := s // the stored copy: requests may touch the live one
	st.m[h] = &s
	st.mu.Unlock()
	// Written before the portal hears of it; undone if it cannot be.
	if err := st.write(&rec, &h); err != nil {
		st.mu.Lock()
		delete(st.m, h)
		st.mu.Unlock()
		return "", err
	}
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
		st.dropLocked(h)
		return moduleSession{}, errSessionExpired
	}
	if touch {
		s.lastSeen = now
		if st.db != nil {
			st.touched[h] = true
		}
	}
	return *s, nil
}

func stored(s *moduleSession) storedSession {
	return storedSession{UserID: s.id.UserID, Directory: s.id.Directory, Groups: s.id.Groups,
		Attributes: s.id.Attributes, VirtualHost: s.virtualHost, Created: s.created, LastSeen: s.lastSeen}
}

// flush writes the last use of the sessions used since the previous
// flush, and deletes the expired ones, in one transaction.
func (st *sessionStore) flush() error {
	if st.db == nil {
		return nil
	}
	st.mu.Lock()
	put := map[string]storedSession{}
	for h := range st.touched {
		if s, ok := st.m[h]; ok {
			put[hex.EncodeToString(h[:])] = stored(s)
		}
	}
	st.touched = map[[sha256.Size]byte]bool{}
	gone := st.expired
	st.expired = nil
	st.mu.Unlock()
	if len(put) == 0 && len(gone) == 0 {
		return nil
	}
	err := st.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(sessionsBucket)
		for _, g := range gone {
			if err := b.Delete(hex.EncodeToString(g[:])); err != nil {
				return err
			}
		}
		for k, v := range put {
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		st.mu.Lock()
		st.expired = append(st.expired, gone...)
		st.mu.Unlock()
		return fmt.Errorf("authapi: state store: %w", err)
	}
	return nil
}

// remove revokes tok; it reports whether a session was there. The
// session is gone from memory at once, whatever the state store says.
func (st *sessionStore) remove(tok string) (bool, error) {
	if !validSessionID(tok) {
		return false, nil
	}
	h := sha256.Sum256([]byte(tok))
	st.mu.Lock()
	_, ok := st.m[h]
	delete(st.m, h)
	st.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := st.write(nil, &h); err != nil {
		st.mu.Lock()
		st.expired = append(st.expired, h) // deleted by the next write that succeeds
		st.mu.Unlock()
		return true, err
	}
	return true, nil
}

// dropLocked forgets h; the state store forgets it with the next write.
func (st *sessionStore) dropLocked(h [sha256.Size]byte) {
	delete(st.m, h)
	delete(st.touched, h)
	if st.db != nil {
		st.expired = append(st.expired, h)
	}
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
			st.dropLocked(h)
		}
	}
}

func (st *sessionStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.m)
}
