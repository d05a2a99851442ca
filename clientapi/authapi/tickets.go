package authapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// tokenBytes is the entropy of a ticket or node-generated session id: 256
// bits from crypto/rand, 43 characters of base64url.
const tokenBytes = 32

var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// Redemption failures; each is a refusal reason.
var (
	errTicketUnknown = errors.New("ticket_unknown")
	errTicketUsed    = errors.New("ticket_already_used")
	errTicketExpired = errors.New("ticket_expired")
	errStoreFull     = errors.New("store_full")
)

// ticket is what a ticket stands for; the store keys it by the SHA-256 of
// the ticket, so the ticket itself is never kept.
type ticket struct {
	id          auth.Identity
	target      string // "" = the request's URL minus the ticket
	virtualHost string // "" = any
	expires     time.Time
	used        bool // kept until expiry so that a reuse says so
}

// ticketStore holds the outstanding tickets in memory, bounded: tickets
// live a minute, so a restart only makes the module ask again. Expired
// ones are dropped when the store is full.
type ticketStore struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]*ticket // guarded by mu
}

func newTicketStore(ttl time.Duration, max int, now func() time.Time) *ticketStore {
	return &ticketStore{ttl: ttl, max: max, now: now, m: map[[sha256.Size]byte]*ticket{}}
}

// newToken is a fresh random token and its hash.
func newToken() (string, [sha256.Size]byte) {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never fails (crypto/rand: it crashes the program instead)
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, sha256.Sum256([]byte(tok))
}

// issue stores t and returns its ticket.
func (s *ticketStore) issue(t ticket) (string, time.Time, error) {
	tok, h := newToken()
	t.expires = s.now().Add(s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		s.sweepLocked()
		if len(s.m) >= s.max {
			return "", time.Time{}, errStoreFull
		}
	}
	s.m[h] = &t
	return tok, t.expires, nil
}

// redeem marks the ticket used and returns what it stands for. Of any
// number of concurrent redemptions of one ticket exactly one succeeds.
func (s *ticketStore) redeem(tok string) (ticket, error) {
	if len(tok) != tokenLen {
		return ticket{}, errTicketUnknown
	}
	h := sha256.Sum256([]byte(tok))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[h]
	switch {
	case !ok:
		return ticket{}, errTicketUnknown
	case t.used:
		return ticket{}, errTicketUsed
	case !now.Before(t.expires):
		delete(s.m, h)
		return ticket{}, errTicketExpired
	}
	t.used = true
	return *t, nil
}

func (s *ticketStore) sweepLocked() {
	now := s.now()
	for h, t := range s.m {
		if !now.Before(t.expires) {
			delete(s.m, h)
		}
	}
}

func (s *ticketStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
