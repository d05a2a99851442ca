package oidcauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// login is one authorization request in progress, kept until its callback
// or its expiry.
type login struct {
	state    string
	nonce    string
	verifier string // PKCE code verifier
	browser  string // the value of the browser's login cookie
	back     string // the path the login started from
	verify   bool   // a verification login of the pending key pair
	expires  time.Time
}

var (
	errLoginsFull   = errors.New("too many logins in progress")
	errUnknownState = errors.New("unknown, expired or already used state")
	errOtherBrowser = errors.New("the state belongs to a login another browser started")
)

// loginStore keeps logins in memory, bounded in number and time: a login
// lasts minutes, and a restart only makes the users in the middle of one
// start again.
type loginStore struct {
	mu      sync.Mutex
	logins  map[string]*login
	max     int
	timeout time.Duration
	now     func() time.Time
}

func newLoginStore(max int, timeout time.Duration, now func() time.Time) *loginStore {
	return &loginStore{logins: map[string]*login{}, max: max, timeout: timeout, now: now}
}

func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start records a new login and returns it with the browser's cookie value.
func (s *loginStore) start(back string, verify bool) (*login, string, error) {
	now := s.now()
	l := &login{state: random(), nonce: random(), verifier: random(), browser: random(),
		back: back, verify: verify, expires: now.Add(s.timeout)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logins) >= s.max {
		for k, v := range s.logins {
			if !now.Before(v.expires) {
				delete(s.logins, k)
			}
		}
		if len(s.logins) >= s.max {
			return nil, "", errLoginsFull
		}
	}
	s.logins[l.state] = l
	return l, l.browser, nil
}

// take removes and returns the login of state, once: a replayed state is
// unknown. It must come from the browser that started it.
func (s *loginStore) take(state, browser string) (*login, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logins[state]
	if !ok || !s.now().Before(l.expires) {
		delete(s.logins, state)
		return nil, errUnknownState
	}
	if subtle.ConstantTimeCompare([]byte(l.browser), []byte(browser)) != 1 {
		return nil, errOtherBrowser
	}
	delete(s.logins, state)
	return l, nil
}
