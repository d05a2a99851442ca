package cloudclient

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/prom"
)

// Sources of a Decision.
const (
	// SourceCloud: the control plane answered just now.
	SourceCloud = "cloud"
	// SourceCache: a cached answer within its TTL.
	SourceCache = "cache"
	// SourceStale: the control plane is unreachable and serve_stale served
	// an expired answer no older than MaxStaleness.
	SourceStale = "stale"
	// SourceUnreachable: the control plane is unreachable and there was no
	// answer to serve, so the request is denied (fail closed).
	SourceUnreachable = "unreachable"
	// SourceError: the call failed otherwise (refused, bad answer, the
	// caller's context cancelled); denied, and Decide returns the error.
	SourceError = "error"
)

// ReasonUnreachable is the reason of a SourceUnreachable denial.
const ReasonUnreachable = "control plane unreachable; failing closed"

// Decision is an authorization answer and where it came from.
type Decision struct {
	api.Decision
	// Source is one of the Source constants.
	Source string
}

// AuthorizeClient asks the control plane; *Client is one.
type AuthorizeClient interface {
	Authorize(ctx context.Context, r api.AuthorizeRequest) (api.Decision, error)
}

// AuthorizerOptions configures an Authorizer.
type AuthorizerOptions struct {
	// Client asks the control plane. Required.
	Client AuthorizeClient
	// Config bounds the cache and picks the policy for an unreachable
	// control plane. Zero fields take the config package's defaults.
	Config Authorization
	// Registerer receives the edgefort_cloud_authz_* metrics. Nil keeps
	// them unregistered.
	Registerer prom.Registerer
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock of cache expiry. Nil means time.Now.
	Now func() time.Time
}

// Authorizer answers authorization questions from a cache of the control
// plane's decisions: allows are kept for min(ttl_seconds, MaxTTL), denies
// for min(ttl_seconds, MaxNegativeTTL), at most CacheSize of them, least
// recently used evicted first. Concurrent misses for one question share
// one call. It is safe for concurrent use and owns no goroutines.
type Authorizer struct {
	client AuthorizeClient
	cfg    Authorization
	log    *slog.Logger
	now    func() time.Time
	m      *authzMetrics
	flight singleflight.Group // keyed by cache key
	// lastWarn is when the unreachable warning was last logged (unix ns).
	lastWarn atomic.Int64

	mu    sync.Mutex               // guards lru and items
	lru   *list.List               // of *cacheEntry, most recently used first
	items map[string]*list.Element // by cache key
}

// cacheEntry is one cached decision.
type cacheEntry struct {
	key     string
	d       api.Decision
	expires time.Time
}

// NewAuthorizer checks opts and returns an Authorizer with an empty cache.
func NewAuthorizer(opts AuthorizerOptions) (*Authorizer, error) {
	cfg := opts.Config
	cfg.CacheSize = orDefault(cfg.CacheSize, DefaultAuthzCacheSize)
	cfg.MaxTTL = orDefault(cfg.MaxTTL, DefaultAuthzMaxTTL)
	cfg.MaxNegativeTTL = orDefault(cfg.MaxNegativeTTL, DefaultAuthzMaxNegTTL)
	cfg.MaxStaleness = orDefault(cfg.MaxStaleness, DefaultAuthzMaxStaleness)
	cfg.WhenUnreachable = orDefault(cfg.WhenUnreachable, FailClosed)
	var errs []error
	if opts.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if cfg.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("cache_size %d is negative", cfg.CacheSize))
	}
	if cfg.MaxTTL < 0 || cfg.MaxNegativeTTL < 0 || cfg.MaxStaleness < 0 {
		errs = append(errs, errors.New("max_ttl, max_negative_ttl and max_staleness must not be negative"))
	}
	if cfg.WhenUnreachable != FailClosed && cfg.WhenUnreachable != ServeStale {
		errs = append(errs, fmt.Errorf("when_unreachable %q: want %s or %s", cfg.WhenUnreachable, FailClosed, ServeStale))
	}
	m := newAuthzMetrics()
	if opts.Registerer != nil {
		if err := m.register(opts.Registerer); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cloudclient: new authorizer: %w", err)
	}
	a := &Authorizer{
		client: opts.Client,
		cfg:    cfg,
		log:    opts.Logger,
		now:    opts.Now,
		m:      m,
		lru:    list.New(),
		items:  make(map[string]*list.Element),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Decide answers r. Its error is non-nil only when the control plane
// refused the call or gave a bad answer, or ctx was cancelled; the
// decision is then a denial with SourceError. An unreachable control plane
// is no error: the policy answers (SourceStale or SourceUnreachable).
func (a *Authorizer) Decide(ctx context.Context, r api.AuthorizeRequest) (Decision, error) {
	key := cacheKey(r)
	if d, ok := a.fresh(key); ok {
		return a.record(Decision{Decision: d, Source: SourceCache}), nil
	}
	// The call outlives a caller that gives up, so the others sharing it
	// (and the cache) still get its answer; the client bounds it.
	fctx := context.WithoutCancel(ctx)
	ch := a.flight.DoChan(key, func() (any, error) { return a.ask(fctx, key, r) })
	var err error
	select {
	case res := <-ch:
		if res.Err == nil {
			return a.record(res.Val.(Decision)), nil
		}
		err = res.Err
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	if errors.Is(err, ErrUnavailable) || (errors.Is(err, context.DeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled)) {
		return a.unreachable(key, err), nil
	}
	return a.record(Decision{
		Decision: api.Decision{Allow: false, Reason: "authorization failed"},
		Source:   SourceError,
	}), err
}

// ask calls the control plane once for a flight and caches the answer;
// when a flight that just ended has cached one, it uses that instead.
func (a *Authorizer) ask(ctx context.Context, key string, r api.AuthorizeRequest) (Decision, error) {
	if d, ok := a.fresh(key); ok {
		return Decision{Decision: d, Source: SourceCache}, nil
	}
	start := time.Now()
	d, err := a.client.Authorize(ctx, r)
	a.m.latency.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		a.m.calls.WithLabelValues("ok").Inc()
		a.store(key, d)
	case errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		a.m.calls.WithLabelValues("unavailable").Inc()
	default:
		a.m.calls.WithLabelValues("error").Inc()
	}
	return Decision{Decision: d, Source: SourceCloud}, err
}

// unreachable applies the policy for an unreachable control plane.
func (a *Authorizer) unreachable(key string, err error) Decision {
	if a.cfg.WhenUnreachable == ServeStale {
		if d, ok := a.stale(key); ok {
			a.m.staleServes.Inc()
			a.warn("cloudclient: control plane unreachable; serving stale authorization decisions", err)
			return a.record(Decision{Decision: d, Source: SourceStale})
		}
	}
	a.warn("cloudclient: control plane unreachable; denying", err)
	return a.record(Decision{Decision: api.Decision{Allow: false, Reason: ReasonUnreachable}, Source: SourceUnreachable})
}

// warnEvery rate-limits the unreachable warnings, one per period.
const warnEvery = 10 * time.Second

func (a *Authorizer) warn(msg string, err error) {
	now := time.Now().UnixNano()
	last := a.lastWarn.Load()
	if now-last < int64(warnEvery) || !a.lastWarn.CompareAndSwap(last, now) {
		return
	}
	a.log.Warn(msg, logKeyError, err)
}

// record counts d in the metrics and returns it.
func (a *Authorizer) record(d Decision) Decision {
	allow := "false"
	if d.Allow {
		allow = "true"
	} else {
		a.m.denials.WithLabelValues(d.Source).Inc()
	}
	a.m.decisions.WithLabelValues(d.Source, allow).Inc()
	return d
}

// fresh returns the cached decision for key if it has not expired.
func (a *Authorizer) fresh(key string) (api.Decision, bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.items[key]
	if !ok {
		return api.Decision{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		return api.Decision{}, false
	}
	a.lru.MoveToFront(el)
	return e.d, true
}

// stale returns the cached decision for key if it expired no longer than
// MaxStaleness ago (or has not expired).
func (a *Authorizer) stale(key string) (api.Decision, bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.items[key]
	if !ok {
		return api.Decision{}, false
	}
	e := el.Value.(*cacheEntry)
	if now.Sub(e.expires) > a.cfg.MaxStaleness {
		return api.Decision{}, false
	}
	return e.d, true
}

// store caches d under key for its TTL, bounded by config; a TTL of zero
// removes any older answer, so it cannot be served stale.
func (a *Authorizer) store(key string, d api.Decision) {
	limit := a.cfg.MaxTTL
	if !d.Allow {
		limit = a.cfg.MaxNegativeTTL
	}
	ttl := min(time.Duration(d.TTLSeconds)*time.Second, limit)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	defer func() { a.m.entries.Set(float64(len(a.items))) }()
	el, ok := a.items[key]
	if ttl <= 0 {
		if ok {
			a.lru.Remove(el)
			delete(a.items, key)
		}
		return
	}
	if ok {
		el.Value = &cacheEntry{key: key, d: d, expires: now.Add(ttl)}
		a.lru.MoveToFront(el)
		return
	}
	a.items[key] = a.lru.PushFront(&cacheEntry{key: key, d: d, expires: now.Add(ttl)})
	for a.lru.Len() > a.cfg.CacheSize {
		a.evictLocked()
	}
}

// evictLocked drops the least recently used entry. a.mu is held.
func (a *Authorizer) evictLocked() {
	el := a.lru.Back()
	a.lru.Remove(el)
	delete(a.items, el.Value.(*cacheEntry).key)
	a.m.evictions.Inc()
}

// Len returns the number of cached decisions, expired ones included.
func (a *Authorizer) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.items)
}

// cacheKey hashes everything the answer depends on: the user (ID,
// directory, groups and attributes, order-insensitive), the action and the
// resource. Every field is length-prefixed, so no two questions share an
// encoding.
func cacheKey(r api.AuthorizeRequest) string {
	h := sha256.New()
	put := func(s string) { putString(h, s) }
	put(r.User.ID)
	put(r.User.Directory)
	groups := slices.Clone(r.User.Groups)
	slices.Sort(groups)
	putInt(h, len(groups))
	for _, g := range groups {
		put(g)
	}
	names := make([]string, 0, len(r.User.Attributes))
	for k := range r.User.Attributes {
		names = append(names, k)
	}
	slices.Sort(names)
	putInt(h, len(names))
	for _, k := range names {
		put(k)
		vals := slices.Clone(r.User.Attributes[k])
		slices.Sort(vals)
		putInt(h, len(vals))
		for _, v := range vals {
			put(v)
		}
	}
	put(r.Action)
	put(r.Resource.Type)
	put(r.Resource.ID)
	put(r.Resource.Space)
	return string(h.Sum(nil))
}

func putInt(h hash.Hash, n int) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}

func putString(h hash.Hash, s string) {
	putInt(h, len(s))
	h.Write([]byte(s))
}
