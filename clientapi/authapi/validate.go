package authapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/keystore"
)

// Bounds of a call to a portal's validation endpoint.
const (
	validationTimeout    = 5 * time.Second
	maxValidationBytes   = 64 << 10
	maxValidationEntries = 100_000
	reasonUnavailable    = "session_validation_unavailable"
)

// validationCache keeps the portals' answers by token hash for a short
// time; the API's DELETE drops an entry at once.
type validationCache struct {
	now func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]validated // guarded by mu
}

// validated is one answer: the user, or nothing for an invalid token.
type validated struct {
	url   string // the endpoint that answered
	id    *auth.Identity
	until time.Time
}

func (c *validationCache) get(h [sha256.Size]byte, endpoint string) (validated, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[h]
	if !ok || v.url != endpoint || !c.now().Before(v.until) {
		return validated{}, false
	}
	return v, true
}

func (c *validationCache) put(h [sha256.Size]byte, v validated) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxValidationEntries {
		now := c.now()
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxValidationEntries {
			return // full of live answers: ask again next time
		}
	}
	c.m[h] = v
}

// drop forgets tok's answer; it reports whether there was one.
func (c *validationCache) drop(tok string) bool {
	h := sha256.Sum256([]byte(tok))
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[h]
	delete(c.m, h)
	return ok
}

// validator asks a portal's validation endpoint whether a token is live.
type validator struct {
	endpoint string
	ttl      time.Duration
	client   *http.Client
	cache    *validationCache
}

// validationIdle is how long a connection to the portal may stay idle.
const validationIdle = 90 * time.Second

func newValidator(c SessionModuleConfig, stores *keystore.Manager, cache *validationCache) (*validator, error) {
	u, err := url.Parse(c.ValidationURL)
	if err != nil {
		return nil, &auth.FieldError{Field: "validation_url", Err: err}
	}
	// Idle connections end on their own: a reload builds a new validator
	// and drops this one, which must not keep connections (and their
	// goroutines) open until the portal closes them.
	tr := &http.Transport{ResponseHeaderTimeout: validationTimeout, MaxIdleConnsPerHost: 16, IdleConnTimeout: validationIdle}
	if u.Scheme == "https" {
		tlsCfg, err := stores.ClientTLS(c.ValidationSSL, u.Hostname(), keystore.Vars{})
		if err != nil {
			return nil, &auth.FieldError{Field: "validation_ssl", Err: err}
		}
		tr.TLSClientConfig = tlsCfg
	}
	client := &http.Client{Transport: tr, Timeout: validationTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &validator{endpoint: c.ValidationURL, ttl: c.ValidationCache, client: client, cache: cache}, nil
}

// check returns the user of tok, errSessionUnknown, or another error when
// the portal cannot say (the caller refuses: fail closed).
func (v *validator) check(ctx context.Context, tok string) (auth.Identity, error) {
	h := sha256.Sum256([]byte(tok))
	if c, ok := v.cache.get(h, v.endpoint); ok {
		if c.id == nil {
			return auth.Identity{}, errSessionUnknown
		}
		return *c.id, nil
	}
	id, err := v.ask(ctx, tok)
	switch {
	case errors.Is(err, errSessionUnknown):
		v.cache.put(h, validated{url: v.endpoint, until: v.cache.now().Add(v.ttl)})
	case err == nil:
		v.cache.put(h, validated{url: v.endpoint, id: &id, until: v.cache.now().Add(v.ttl)})
	}
	return id, err
}

func (v *validator) ask(ctx context.Context, tok string) (auth.Identity, error) {
	body, _ := json.Marshal(map[string]string{"session_id": tok})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.endpoint, bytes.NewReader(body))
	if err != nil {
		return auth.Identity{}, fmt.Errorf("validation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return auth.Identity{}, fmt.Errorf("validation endpoint: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return auth.Identity{}, errSessionUnknown
	case resp.StatusCode != http.StatusOK:
		return auth.Identity{}, fmt.Errorf("validation endpoint answered %s", resp.Status)
	}
	var u UserRequest
	if err := httpbody.ReadJSON(resp, maxValidationBytes, "validation answer", &u); err != nil {
		return auth.Identity{}, err
	}
	if !goodName(u.UserID) || !goodName(u.UserDirectory) {
		return auth.Identity{}, errors.New("validation answer without a valid user_id and user_directory")
	}
	return identity(u), nil
}
