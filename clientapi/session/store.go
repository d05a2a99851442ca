// Package session owns the node's own sessions: the ones an interactive
// login (ticket, SAML, OIDC) opens, persisted in the state store so that an
// agent restart keeps users signed in, and the "session" solution that
// authenticates a request by its session cookie.
//
// A session is named by a 256-bit random token from crypto/rand, which only
// the client's cookie holds: the store keys each session by the token's
// SHA-256, so a copy of the state database signs no one in. Sessions are
// looked up in memory (all of them are loaded at Open; their number is
// bounded); a login, a sign-out and a revocation are written through at
// once, while last-seen times are only marked in memory and written by Run
// at most once per TouchInterval per session, so that no request pays an
// fsync. After a crash a session may thus look up to TouchInterval older
// than it is: it ends that much sooner, never later.
//
// Bounds: each user has at most Config.MaxPerUser sessions per virtual
// host, a new login ending the user's own oldest; the node holds at most
// Options.MaxTotal sessions, and when it is full new logins are refused
// (ErrFull) rather than ending other users' sessions, so that one client
// cannot sign everyone out by logging in again and again.
//
// Nothing of a token ever reaches a log line. Sessions are shown and
// revoked by their short id, the first 12 hex digits of the token's hash.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/store"
)

// BucketName is the state store bucket of the sessions (recorded in the
// store's schema on its first write, like every component's bucket).
const BucketName = "clientapi_sessions"

const (
	tokenBytes   = 32
	shortIDLen   = 12
	minRevokeLen = 8
	// maxTokenLen bounds what a cookie may hold before it is hashed.
	maxTokenLen = 64
)

// Errors of the store.
var (
	// ErrNotFound: no session has this token or id (never existed,
	// signed out, revoked, or swept after expiring).
	ErrNotFound = errors.New("no such session")
	// ErrExpired: the session passed its idle or absolute timeout.
	ErrExpired = errors.New("session expired")
	// ErrOtherHost: the session belongs to another virtual host.
	ErrOtherHost = errors.New("session belongs to another virtual host")
	// ErrFull: the node holds Options.MaxTotal sessions; the login is
	// refused rather than ending someone else's session.
	ErrFull = errors.New("the node holds the most sessions it may")
	// ErrAmbiguous: a short id matches more than one session.
	ErrAmbiguous = errors.New("the id matches more than one session; give more of it")
)

// Options configures a Store. The zero value is valid.
type Options struct {
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives sign-ins, revocations and write errors. Nil
	// discards them.
	Logger *slog.Logger
	// MaxTotal bounds the node's sessions. Default 100000.
	MaxTotal int
	// TouchInterval is how often Run writes last-seen times and sweeps
	// expired sessions. Default 1m.
	TouchInterval time.Duration
}

// record is a session as stored: the bucket's value, keyed by the hex
// SHA-256 of the token.
type record struct {
	VirtualHost string              `json:"virtual_host"`
	UserID      string              `json:"user_id"`
	Directory   string              `json:"directory"`
	Groups      []string            `json:"groups,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
	Solution    string              `json:"solution"`
	Created     time.Time           `json:"created"`
	LastSeen    time.Time           `json:"last_seen"`
	Expires     time.Time           `json:"expires"`
	IdleTimeout time.Duration       `json:"idle_timeout_ns"`
	CSRF        string              `json:"csrf"`
	// IdPSession names the login at the identity provider the session
	// came from, for single logout; absent for other logins.
	IdPSession *auth.IdPSession `json:"idp_session,omitempty"`
}

// entry is a session in memory. rec is never changed once the entry is in
// the map; lastSeen moves with each request, saved (guarded by
// Store.writeMu) is the last-seen time on disk.
type entry struct {
	key      string
	rec      record
	lastSeen atomic.Int64 // unix nanoseconds
	saved    int64
}

func (e *entry) seen() time.Time { return time.Unix(0, e.lastSeen.Load()).UTC() }

// idleEnd is when the session ends unless used again.
func (e *entry) idleEnd() time.Time { return e.seen().Add(e.rec.IdleTimeout) }

func (e *entry) expired(now time.Time) bool {
	return !now.Before(e.rec.Expires) || !now.Before(e.idleEnd())
}

// Info describes a session to the node's operator; it holds no token.
type Info struct {
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

func (e *entry) info() Info {
	return Info{ID: e.key[:shortIDLen], VirtualHost: e.rec.VirtualHost, UserID: e.rec.UserID, Directory: e.rec.Directory,
		Solution: e.rec.Solution, Created: e.rec.Created, LastSeen: e.seen(), Expires: e.rec.Expires, IdleExpires: e.idleEnd()}
}

// Session is a session found by its token.
type Session struct {
	Info
	Identity auth.Identity
	// CSRF is the token state-changing requests must carry.
	CSRF string
}

// Store holds the node's sessions. Its methods are safe for concurrent use.
type Store struct {
	db   *store.DB
	opts Options
	log  *slog.Logger

	writeMu sync.Mutex // serialises writes to the bucket (and the bounds checks before them)
	mu      sync.Mutex // guards byKey
	byKey   map[string]*entry
}

// Open loads the sessions stored in db.
func Open(db *store.DB, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxTotal <= 0 {
		opts.MaxTotal = DefaultMaxTotal
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = DefaultTouchInterval
	}
	s := &Store{db: db, opts: opts, log: opts.Logger, byKey: map[string]*entry{}}
	err := db.Bucket(BucketName).ForEach(func(key string, raw json.RawMessage) error {
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil || len(key) != 2*sha256.Size {
			// A damaged entry signs no one in; it is dropped at the next sweep.
			s.log.Warn("session store: unreadable session dropped", "id", shortID(key))
			return nil
		}
		e := &entry{key: key, rec: rec, saved: rec.LastSeen.UnixNano()}
		e.lastSeen.Store(rec.LastSeen.UnixNano())
		s.byKey[key] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("session store: load: %w", err)
	}
	return s, nil
}

func shortID(key string) string {
	if len(key) > shortIDLen {
		return key[:shortIDLen]
	}
	return key
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Limits are a virtual host's session settings Create applies.
type Limits struct {
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	MaxPerUser      int
}

// Create opens a session for id on vhost and returns its token (for the
// cookie, never to be logged) with the session. It always makes a new
// token: a login never keeps a session id the client had (no fixation).
// Past lim.MaxPerUser the user's own oldest sessions on vhost end; at
// Options.MaxTotal it fails with ErrFull.
func (s *Store) Create(vhost string, id auth.Identity, lim Limits) (token string, sess Session, err error) {
	if id.UserID == "" {
		return "", Session{}, errors.New("session store: create: the identity has no user id")
	}
	now := s.opts.Now().UTC()
	token = randomToken()
	key := hashToken(token)
	e := &entry{key: key, rec: record{
		VirtualHost: vhost, UserID: id.UserID, Directory: id.Directory, Groups: id.Groups, Attributes: id.Attributes,
		Solution: id.Solution, Created: now, LastSeen: now, Expires: now.Add(lim.AbsoluteTimeout),
		IdleTimeout: lim.IdleTimeout, CSRF: randomToken(), IdPSession: id.IdPSession,
	}, saved: now.UnixNano()}
	e.lastSeen.Store(now.UnixNano())

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	drop := s.userOverflow(e, lim.MaxPerUser)
	if s.count()-len(drop) >= s.opts.MaxTotal {
		if err := s.sweepLocked(now); err != nil {
			return "", Session{}, err
		}
		if s.count()-len(drop) >= s.opts.MaxTotal {
			s.log.Warn("session store: full, login refused", "virtual_host", vhost, "user", id.UserID, "directory", id.Directory, "max_total", s.opts.MaxTotal)
			return "", Session{}, ErrFull
		}
	}
	err = s.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(BucketName)
		for _, d := range drop {
			if err := b.Delete(d.key); err != nil {
				return err
			}
		}
		return b.Put(key, e.rec)
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("session store: create: %w", err)
	}
	s.mu.Lock()
	for _, d := range drop {
		delete(s.byKey, d.key)
	}
	s.byKey[key] = e
	s.mu.Unlock()
	for _, d := range drop {
		s.log.Info("session ended: the user's oldest, past max_per_user", "id", shortID(d.key), "virtual_host", vhost, "user", id.UserID, "directory", id.Directory)
	}
	s.log.Info("session started", "id", shortID(key), "virtual_host", vhost, "user", id.UserID, "directory", id.Directory, "solution", id.Solution)
	return token, e.session(), nil
}

func (e *entry) session() Session {
	r := e.rec
	return Session{Info: e.info(), CSRF: r.CSRF, Identity: auth.Identity{
		UserID: r.UserID, Directory: r.Directory, Groups: r.Groups, Attributes: r.Attributes, Solution: r.Solution,
		Expires: minTime(r.Expires, e.idleEnd()), IdPSession: r.IdPSession,
	}}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (s *Store) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}

// userOverflow returns the sessions of e's user on e's virtual host to end
// so that, with e, there are at most max: the oldest first.
func (s *Store) userOverflow(e *entry, max int) []*entry {
	if max <= 0 {
		return nil
	}
	s.mu.Lock()
	var mine []*entry
	for _, o := range s.byKey {
		if o.rec.VirtualHost == e.rec.VirtualHost && o.rec.UserID == e.rec.UserID && o.rec.Directory == e.rec.Directory {
			mine = append(mine, o)
		}
	}
	s.mu.Unlock()
	if len(mine) < max {
		return nil
	}
	slices.SortFunc(mine, func(a, b *entry) int { return a.rec.Created.Compare(b.rec.Created) })
	return mine[:len(mine)-max+1]
}

// Lookup finds the session of token on vhost and marks it used now. It
// fails with ErrNotFound, ErrOtherHost or ErrExpired.
func (s *Store) Lookup(vhost, token string) (Session, error) {
	if token == "" || len(token) > maxTokenLen {
		return Session{}, ErrNotFound
	}
	key := hashToken(token)
	s.mu.Lock()
	e := s.byKey[key]
	s.mu.Unlock()
	switch now := s.opts.Now(); {
	case e == nil:
		return Session{}, ErrNotFound
	case e.rec.VirtualHost != vhost:
		return Session{}, ErrOtherHost
	case e.expired(now):
		return Session{}, ErrExpired
	default:
		e.lastSeen.Store(now.UnixNano())
	}
	return e.session(), nil
}

// SignOut ends the session of token (the user's own sign-out).
func (s *Store) SignOut(vhost, token string) error {
	if token == "" || len(token) > maxTokenLen {
		return ErrNotFound
	}
	key := hashToken(token)
	s.mu.Lock()
	e := s.byKey[key]
	s.mu.Unlock()
	if e == nil || e.rec.VirtualHost != vhost {
		return ErrNotFound
	}
	if err := s.remove([]*entry{e}); err != nil {
		return err
	}
	s.log.Info("session signed out", "id", shortID(key), "virtual_host", vhost, "user", e.rec.UserID, "directory", e.rec.Directory)
	return nil
}

// List returns every session, oldest first.
func (s *Store) List() []Info {
	s.mu.Lock()
	out := make([]Info, 0, len(s.byKey))
	for _, e := range s.byKey {
		out = append(out, e.info())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Revoke ends the session whose short id (or a prefix of its hash of at
// least 8 hex digits) is id.
func (s *Store) Revoke(id string) (Info, error) {
	id = strings.ToLower(id)
	if len(id) < minRevokeLen || len(id) > 2*sha256.Size {
		return Info{}, fmt.Errorf("session id %q: give %d to %d hex digits", id, minRevokeLen, 2*sha256.Size)
	}
	var found []*entry
	s.mu.Lock()
	for k, e := range s.byKey {
		if strings.HasPrefix(k, id) {
			found = append(found, e)
		}
	}
	s.mu.Unlock()
	switch len(found) {
	case 0:
		return Info{}, fmt.Errorf("session %s: %w", id, ErrNotFound)
	case 1:
	default:
		return Info{}, fmt.Errorf("session %s: %w", id, ErrAmbiguous)
	}
	if err := s.remove(found); err != nil {
		return Info{}, err
	}
	e := found[0]
	s.log.Info("session revoked", "id", shortID(e.key), "virtual_host", e.rec.VirtualHost, "user", e.rec.UserID, "directory", e.rec.Directory)
	return e.info(), nil
}

// RevokeUser ends every session of the user (on every virtual host) and
// returns them.
func (s *Store) RevokeUser(directory, userID string) ([]Info, error) {
	found, err := s.removeWhere(func(e *entry) bool {
		return e.rec.UserID == userID && e.rec.Directory == directory
	})
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(found))
	for _, e := range found {
		out = append(out, e.info())
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID) // a stable order for equal times
	})
	s.log.Info("sessions of a user revoked", "user", userID, "directory", directory, "count", len(found))
	return out, nil
}

// EndIdPSessions ends the sessions on vhost that came from the login of
// nameID at the identity provider of solution (single logout started by
// the IdP): those of one of sessionIndexes, or every one of nameID's when
// none is given. It returns them.
func (s *Store) EndIdPSessions(vhost, solution, nameID string, sessionIndexes []string) ([]Info, error) {
	if nameID == "" {
		return nil, nil
	}
	found, err := s.removeWhere(func(e *entry) bool {
		l := e.rec.IdPSession
		if e.rec.VirtualHost != vhost || l == nil || l.Solution != solution || l.NameID != nameID {
			return false
		}
		return len(sessionIndexes) == 0 || slices.Contains(sessionIndexes, l.SessionIndex)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(found))
	for _, e := range found {
		out = append(out, e.info())
		s.log.Info("session ended by the identity provider (single logout)", "id", shortID(e.key), "virtual_host", vhost,
			"user", e.rec.UserID, "directory", e.rec.Directory, "solution", solution)
	}
	return out, nil
}

// removeWhere removes the sessions match selects and returns them.
func (s *Store) removeWhere(match func(*entry) bool) ([]*entry, error) {
	var found []*entry
	s.mu.Lock()
	for _, e := range s.byKey {
		if match(e) {
			found = append(found, e)
		}
	}
	s.mu.Unlock()
	if err := s.remove(found); err != nil {
		return nil, err
	}
	return found, nil
}

// remove deletes entries from the bucket, then from memory.
func (s *Store) remove(es []*entry) error {
	if len(es) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(BucketName)
		for _, e := range es {
			if err := b.Delete(e.key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("session store: delete: %w", err)
	}
	s.mu.Lock()
	for _, e := range es {
		delete(s.byKey, e.key)
	}
	s.mu.Unlock()
	return nil
}

// Flush writes the last-seen times that changed since they were last
// written, and drops expired sessions, in one transaction.
func (s *Store) Flush() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.sweepLocked(s.opts.Now()); err != nil {
		return err
	}
	type dirty struct {
		e    *entry
		seen int64
	}
	var ds []dirty
	s.mu.Lock()
	for _, e := range s.byKey {
		if seen := e.lastSeen.Load(); seen > e.saved {
			ds = append(ds, dirty{e, seen})
		}
	}
	s.mu.Unlock()
	if len(ds) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(BucketName)
		for _, d := range ds {
			rec := d.e.rec
			rec.LastSeen = time.Unix(0, d.seen).UTC()
			if err := b.Put(d.e.key, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("session store: write last-seen times: %w", err)
	}
	for _, d := range ds {
		d.e.saved = d.seen
	}
	return nil
}

// sweepLocked deletes expired sessions. The caller holds writeMu.
func (s *Store) sweepLocked(now time.Time) error {
	var gone []*entry
	s.mu.Lock()
	for _, e := range s.byKey {
		if e.expired(now) {
			gone = append(gone, e)
		}
	}
	s.mu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(BucketName)
		for _, e := range gone {
			if err := b.Delete(e.key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("session store: sweep expired sessions: %w", err)
	}
	s.mu.Lock()
	for _, e := range gone {
		delete(s.byKey, e.key)
	}
	s.mu.Unlock()
	s.log.Debug("expired sessions swept", "count", len(gone))
	return nil
}

// Run writes last-seen times and sweeps expired sessions every
// TouchInterval until ctx ends, then writes them a last time.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.TouchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.Flush(); err != nil {
				s.log.Error("session store: final write failed", "error", err)
			}
			return nil
		case <-t.C:
			if err := s.Flush(); err != nil {
				s.log.Warn("session store: write failed; retried at the next interval", "error", err)
			}
		}
	}
}
