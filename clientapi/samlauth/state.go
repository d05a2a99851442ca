package samlauth

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crewjam/saml"
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
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if len(p.m) >= p.max {
		for k, v := range p.m {
			if !now.Before(v.expires) {
				delete(p.m, k)
			}
		}
		if len(p.m) >= p.max {
			return "", fmt.Errorf("%d logins in flight, the limit (max_pending)", p.max)
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

// replayCache keeps the ids of accepted assertions until they expire, so
// that each is accepted once (saml.AssertionReplayCache).
type replayCache struct {
	mu  sync.Mutex
	max int
	now func() time.Time
	m   map[string]time.Time
}

func (c *replayCache) Consume(id string, expires time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
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
