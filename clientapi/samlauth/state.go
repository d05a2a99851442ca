package samlauth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crewjam/saml"

	"github.com/edgefort/edgefort/internal/store"
)

// pendingLogin is an AuthnRequest the node sent, under its RelayState.
type pendingLogin struct {
	requestID string
	returnTo  string
	expires   time.Time
}

// pendingLogins are the logins in flight, bounded; each is taken once.
// They live in memory: a restart only makes users in the middle of a
// login start again.
type pendingLogins struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	now func() time.Time
	m   map[string]pendingLogin
}

func (p *pendingLogins) add(requestID, returnTo string) (string, error) {
	if p.max < 1 {
		return "", fmt.Errorf("max_pending is %d", p.max)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if len(p.m) >= p.max {
		// Full: drop the expired, else the oldest. Refusing instead would
		// let anyone who sends max_pending page requests per request_ttl
		// stop every login; this way they must outpace real logins.
		oldest, first := "", time.Time{}
		for k, v := range p.m {
			switch {
			case !now.Before(v.expires):
				delete(p.m, k)
			case oldest == "" || v.expires.Before(first):
				oldest, first = k, v.expires
			}
		}
		if len(p.m) >= p.max {
			delete(p.m, oldest)
		}
	}
	token := newToken()
	p.m[token] = pendingLogin{requestID: requestID, returnTo: returnTo, expires: now.Add(p.ttl)}
	return token, nil
}

func (p *pendingLogins) take(token string) (pendingLogin, bool) {
	if token == "" {
		return pendingLogin{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[token]
	if !ok {
		return pendingLogin{}, false
	}
	delete(p.m, token)
	return v, p.now().Before(v.expires)
}

var errReplayFull = errors.New("the replay cache is full (max_replay_ids)")

// ReplayBucket is the state store bucket of the assertion ids accepted,
// so that a restart or a reload does not make a used assertion good again.
const ReplayBucket = "clientapi_saml_replay"

// replayCache keeps the ids of accepted assertions until they expire, so
// that each is accepted once (saml.AssertionReplayCache): in the state
// store when there is one (the check and the write in one transaction),
// else in memory. Keys are hashes of the SP's entity id and the assertion
// id, so that two SAML solutions of a node keep apart.
type replayCache struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	db    *store.DB // nil: memory only
	scope string
	count int                  // entries in the bucket, as this cache knows
	m     map[string]time.Time // when db is nil
}

func newReplayCache(db *store.DB, scope string, max int, now func() time.Time) (*replayCache, error) {
	c := &replayCache{max: max, now: now, db: db, scope: scope, m: map[string]time.Time{}}
	if db == nil {
		return c, nil
	}
	err := db.Bucket(ReplayBucket).ForEach(func(string, json.RawMessage) error {
		c.count++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("saml replay cache: load: %w", err)
	}
	return c, nil
}

func (c *replayCache) key(id string) string {
	h := sha256.Sum256([]byte(c.scope + "\x00" + id))
	return hex.EncodeToString(h[:])
}

func (c *replayCache) Consume(id string, expires time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return c.consumeMemory(id, expires)
	}
	now, key := c.now(), c.key(id)
	return c.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(ReplayBucket)
		var exp time.Time
		found, err := b.Get(key, &exp)
		if err != nil {
			return fmt.Errorf("saml replay cache: %w", err)
		}
		if found && now.Before(exp) {
			return saml.ErrAssertionReplayed
		}
		if !found && c.count >= c.max {
			if err := c.prune(b, now); err != nil {
				return err
			}
			if c.count >= c.max {
				return errReplayFull
			}
		}
		if err := b.Put(key, expires); err != nil {
			return fmt.Errorf("saml replay cache: %w", err)
		}
		if !found {
			c.count++
		}
		return nil
	})
}

// prune deletes the expired ids from the bucket and recounts it.
func (c *replayCache) prune(b *store.TxBucket, now time.Time) error {
	var expired []string
	n := 0
	err := b.ForEach(func(key string, raw json.RawMessage) error {
		n++
		var exp time.Time
		if json.Unmarshal(raw, &exp) != nil || !now.Before(exp) {
			expired = append(expired, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("saml replay cache: %w", err)
	}
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("saml replay cache: %w", err)
		}
	}
	c.count = n - len(expired)
	return nil
}

func (c *replayCache) consumeMemory(id string, expires time.Time) error {
	now := c.now()
	if exp, ok := c.m[id]; ok && now.Before(exp) {
		return saml.ErrAssertionReplayed
	}
	if len(c.m) >= c.max {
		for k, exp := range c.m {
			if !now.Before(exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			return errReplayFull
		}
	}
	c.m[id] = expires
	return nil
}
