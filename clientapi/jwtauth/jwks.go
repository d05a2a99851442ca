package jwtauth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/internal/loglimit"
)

// The JWK Set fetcher. There is no goroutine: the request that finds the
// set missing or stale fetches it, under fetchMu, so that concurrent
// requests share one fetch (as singleflight would) and the others either
// wait for it (no usable set yet, or an unknown kid) or go on with the
// set they have (a scheduled refresh).

const (
	// jwksMaxBytes bounds a JWK Set reply: a set of 64 RSA-4096 keys with
	// certificate chains stays well under it.
	jwksMaxBytes = 256 << 10
	// jwksTimeout bounds one fetch, connection included; the requests
	// waiting for it wait no longer.
	jwksTimeout = 10 * time.Second
	// logEvery spaces out repeated fetch failures in the log.
	logEvery = time.Minute
)

// Log keys.
const (
	logFieldURL     = "url"
	logFieldError   = "error"
	logFieldKeys    = "keys"
	logFieldSkipped = "skipped"
)

type jwksFetcher struct {
	url         string
	client      *http.Client
	refresh     time.Duration
	minInterval time.Duration
	now         func() time.Time
	log         *slog.Logger
	warn        *loglimit.Limiter
	// fileKeys are merged ahead of the fetched keys in every set.
	fileKeys []*verifyKey
	// publish receives each new set.
	publish func(*keySet)

	fetchMu sync.Mutex // held for a whole fetch; guards the fields below
	// lastAttempt is when the last fetch started (rate limit);
	// lastSuccess when a set was last taken.
	lastAttempt, lastSuccess time.Time
	// good is true once a set was taken; read without fetchMu too.
	good atomic.Bool
	// nextCheck (unix ns) is when ensure next looks at the set: refresh
	// after a success, minInterval after a failure. Read without fetchMu,
	// so that the hot path takes no lock.
	nextCheck atomic.Int64
	// generation counts fetch attempts, so that a request that waited on
	// fetchMu can tell that a fetch happened meanwhile.
	generation atomic.Uint64
	// fetches counts HTTP requests made, for tests.
	fetches atomic.Int64
}

// ensure makes sure a set was fetched and refreshes a stale one. It waits
// only when no set was ever taken.
func (f *jwksFetcher) ensure() {
	now := f.now()
	if now.UnixNano() < f.nextCheck.Load() {
		return
	}
	if !f.fetchMu.TryLock() {
		if f.good.Load() {
			return // someone refreshes; go on with the current set
		}
		f.fetchMu.Lock()
	}
	defer f.fetchMu.Unlock()
	if f.good.Load() && now.Sub(f.lastSuccess) < f.refresh {
		return
	}
	if !f.lastAttempt.IsZero() && now.Sub(f.lastAttempt) < f.minInterval {
		return // the last attempt failed recently: keep what we have
	}
	f.fetchLocked()
}

// unknownKID fetches again because a token named a kid not in the set,
// at most every minInterval. seen is the generation the caller looked up
// in; when a fetch happened since, the caller just looks again.
func (f *jwksFetcher) unknownKID(seen uint64) {
	f.fetchMu.Lock()
	defer f.fetchMu.Unlock()
	if f.generation.Load() != seen {
		return
	}
	if !f.lastAttempt.IsZero() && f.now().Sub(f.lastAttempt) < f.minInterval {
		return
	}
	f.fetchLocked()
}

func (f *jwksFetcher) fetchLocked() {
	f.lastAttempt = f.now()
	defer f.generation.Add(1)
	keys, skipped, err := f.get()
	if err != nil {
		if f.good.Load() {
			f.nextCheck.Store(f.lastAttempt.Add(f.minInterval).UnixNano())
		}
		f.warn.Warn("fetch", "jwt: fetching the JWK set failed; keeping the last good set", logFieldURL, f.url, logFieldError, err)
		return
	}
	if len(skipped) > 0 {
		f.warn.Warn("skipped", "jwt: JWK set keys skipped", logFieldURL, f.url, logFieldSkipped, strings.Join(skipped, "; "))
	}
	f.publish(newKeySet(f.fileKeys, keys))
	f.good.Store(true)
	f.lastSuccess = f.lastAttempt
	f.nextCheck.Store(f.lastSuccess.Add(f.refresh).UnixNano())
	f.log.Debug("jwt: JWK set fetched", logFieldURL, f.url, logFieldKeys, len(keys))
}

func (f *jwksFetcher) get() ([]*verifyKey, []string, error) {
	f.fetches.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", f.url, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", f.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", f.url, resp.Status)
	}
	body, err := httpbody.Read(resp, jwksMaxBytes, "JWK set")
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", f.url, err)
	}
	return parseJWKS(body, f.url)
}
