package cloudclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeAuthorize answers from a function and counts calls.
type fakeAuthorize struct {
	calls  atomic.Int64
	answer func(api.AuthorizeRequest) (api.Decision, error)
}

func (f *fakeAuthorize) Authorize(_ context.Context, r api.AuthorizeRequest) (api.Decision, error) {
	f.calls.Add(1)
	return f.answer(r)
}

func newTestAuthorizer(t testing.TB, client AuthorizeClient, cfg Authorization, clock *testClock) (*Authorizer, *prom.Registry) {
	t.Helper()
	reg := prom.NewRegistry()
	a, err := NewAuthorizer(AuthorizerOptions{Client: client, Config: cfg, Registerer: reg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a, reg
}

func userReq(user, action string) api.AuthorizeRequest {
	return api.AuthorizeRequest{
		User:     api.User{ID: user, Directory: "corp"},
		Action:   action,
		Resource: api.Resource{Type: "app", ID: "dash", Space: "sales"},
	}
}

// TestAuthorizerTTL checks how long answers are cached: the answer's TTL,
// bounded by MaxTTL for allows and MaxNegativeTTL for denies; 0 not at
// all.
func TestAuthorizerTTL(t *testing.T) {
	tests := []struct {
		name     string
		answer   api.Decision
		cachedAt []time.Duration // ages at which the answer still comes from the cache
		missAt   time.Duration   // age at which it is asked again
	}{
		{"allow within MaxTTL", api.Decision{Allow: true, TTLSeconds: 20}, []time.Duration{0, 19 * time.Second}, 20 * time.Second},
		{"allow capped at MaxTTL", api.Decision{Allow: true, TTLSeconds: 3600}, []time.Duration{29 * time.Second}, 30 * time.Second},
		{"deny capped at MaxNegativeTTL", api.Decision{Allow: false, TTLSeconds: 3600}, []time.Duration{4 * time.Second}, 5 * time.Second},
		{"ttl 0 not cached", api.Decision{Allow: true, TTLSeconds: 0}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			f := &fakeAuthorize{answer: func(api.AuthorizeRequest) (api.Decision, error) { return tt.answer, nil }}
			a, _ := newTestAuthorizer(t, f, Authorization{MaxTTL: 30 * time.Second, MaxNegativeTTL: 5 * time.Second}, clock)
			ctx := context.Background()
			start := clock.Now()
			d, err := a.Decide(ctx, userReq("u", "app.read"))
			if err != nil || d.Source != SourceCloud || d.Allow != tt.answer.Allow {
				t.Fatalf("first Decide = %+v, %v", d, err)
			}
			for _, age := range tt.cachedAt {
				clock.Set(start.Add(age))
				if d, _ := a.Decide(ctx, userReq("u", "app.read")); d.Source != SourceCache {
					t.Errorf("at %s: source %s, want cache", age, d.Source)
				}
			}
			clock.Set(start.Add(tt.missAt))
			if d, _ := a.Decide(ctx, userReq("u", "app.read")); d.Source != SourceCloud {
				t.Errorf("at %s: source %s, want cloud", tt.missAt, d.Source)
			}
			if n := f.calls.Load(); n != 2 {
				t.Errorf("%d calls, want 2", n)
			}
		})
	}
}

func TestAuthorizerCacheKey(t *testing.T) {
	base := api.AuthorizeRequest{
		User:     api.User{ID: "u", Directory: "d", Groups: []string{"a", "b"}, Attributes: map[string][]string{"x": {"1", "2"}, "y": {"3"}}},
		Action:   "app.read",
		Resource: api.Resource{Type: "app", ID: "i", Space: "s"},
	}
	same := base
	same.User.Groups = []string{"b", "a"}
	same.User.Attributes = map[string][]string{"y": {"3"}, "x": {"2", "1"}}
	if cacheKey(base) != cacheKey(same) {
		t.Error("order of groups or attributes changes the key")
	}
	edits := map[string]func(*api.AuthorizeRequest){
		"id":        func(r *api.AuthorizeRequest) { r.User.ID = "v" },
		"directory": func(r *api.AuthorizeRequest) { r.User.Directory = "e" },
		"group":     func(r *api.AuthorizeRequest) { r.User.Groups = []string{"a"} },
		"groups split": func(r *api.AuthorizeRequest) {
			r.User.Groups = []string{"ab"}
		},
		"attribute": func(r *api.AuthorizeRequest) { r.User.Attributes["y"] = []string{"4"} },
		"action":    func(r *api.AuthorizeRequest) { r.Action = "app.reload" },
		"type":      func(r *api.AuthorizeRequest) { r.Resource.Type = "space" },
		"resource":  func(r *api.AuthorizeRequest) { r.Resource.ID = "j" },
		"space":     func(r *api.AuthorizeRequest) { r.Resource.Space = "t" },
		"id/dir":    func(r *api.AuthorizeRequest) { r.User.ID, r.User.Directory = "ud", "" },
	}
	for name, edit := range edits {
		r := base
		r.User.Attributes = map[string][]string{"x": {"1", "2"}, "y": {"3"}}
		edit(&r)
		if cacheKey(r) == cacheKey(base) {
			t.Errorf("changing %s keeps the key", name)
		}
	}
}

func TestAuthorizerLRU(t *testing.T) {
	clock := newTestClock()
	f := &fakeAuthorize{answer: func(api.AuthorizeRequest) (api.Decision, error) {
		return api.Decision{Allow: true, TTLSeconds: 60}, nil
	}}
	a, reg := newTestAuthorizer(t, f, Authorization{CacheSize: 3}, clock)
	ctx := context.Background()
	for _, u := range []string{"a", "b", "c", "a", "d"} { // a is used again: b is the least recent
		a.Decide(ctx, userReq(u, "app.read"))
	}
	if a.Len() != 3 {
		t.Errorf("%d entries, want 3", a.Len())
	}
	want := map[string]string{"a": SourceCache, "c": SourceCache, "d": SourceCache, "b": SourceCloud}
	for _, u := range []string{"a", "c", "d", "b"} {
		if d, _ := a.Decide(ctx, userReq(u, "app.read")); d.Source != want[u] {
			t.Errorf("%s: source %s, want %s", u, d.Source, want[u])
		}
	}
	if got := promtest.Read(a.m.entries); got != 3 {
		t.Errorf("entries gauge %v, want 3", got)
	}
	if got := promtest.Read(a.m.evictions); got != 2 { // b, then a (least recent when b came back)
		t.Errorf("evictions %v, want 2", got)
	}
	if n, err := gatherCount(reg, "edgefort_cloud_authz_cache_entries"); n != 1 || err != nil {
		t.Errorf("gauge not registered: %d, %v", n, err)
	}
}

func TestAuthorizerSingleFlight(t *testing.T) {
	release := make(chan struct{})
	f := &fakeAuthorize{answer: func(api.AuthorizeRequest) (api.Decision, error) {
		<-release
		return api.Decision{Allow: true, TTLSeconds: 60}, nil
	}}
	a, _ := newTestAuthorizer(t, f, Authorization{}, newTestClock())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if d, err := a.Decide(context.Background(), userReq("u", "app.read")); err != nil || !d.Allow {
				t.Errorf("Decide = %+v, %v", d, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d calls for 20 concurrent misses, want 1", n)
	}
}

// TestAuthorizerErrors checks the policy for each kind of failure.
func TestAuthorizerErrors(t *testing.T) {
	unreachable := fmt.Errorf("cloudclient: authorize: %w", ErrUnavailable)
	tests := []struct {
		name       string
		policy     string
		err        error
		age        time.Duration // of the cached allow (60 s TTL) when the call fails
		wantSource string
		wantAllow  bool
		wantErr    bool
	}{
		{"fail closed", FailClosed, unreachable, 2 * time.Minute, SourceUnreachable, false, false},
		{"fail closed, slow cloud", FailClosed, context.DeadlineExceeded, 2 * time.Minute, SourceUnreachable, false, false},
		{"serve stale within bound", ServeStale, unreachable, 60*time.Second + 10*time.Minute, SourceStale, true, false},
		{"serve stale past bound", ServeStale, unreachable, 60*time.Second + 10*time.Minute + time.Second, SourceUnreachable, false, false},
		{"refused", ServeStale, fmt.Errorf("x: %w", ErrUnauthorized), 2 * time.Minute, SourceError, false, true},
		{"bad answer", ServeStale, &ResponseError{Status: 400}, 2 * time.Minute, SourceError, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			var fail atomic.Bool
			f := &fakeAuthorize{answer: func(api.AuthorizeRequest) (api.Decision, error) {
				if fail.Load() {
					return api.Decision{}, tt.err
				}
				return api.Decision{Allow: true, Reason: "member", TTLSeconds: 60}, nil
			}}
			a, _ := newTestAuthorizer(t, f, Authorization{WhenUnreachable: tt.policy, MaxStaleness: 10 * time.Minute}, clock)
			ctx := context.Background()
			a.Decide(ctx, userReq("u", "app.read"))
			fail.Store(true)
			clock.Advance(tt.age)
			d, err := a.Decide(ctx, userReq("u", "app.read"))
			if d.Source != tt.wantSource || d.Allow != tt.wantAllow || (err != nil) != tt.wantErr {
				t.Errorf("Decide = %+v, %v; want source %s allow %v error %v", d, err, tt.wantSource, tt.wantAllow, tt.wantErr)
			}
			if d.Source == SourceUnreachable && d.Reason != ReasonUnreachable {
				t.Errorf("reason %q", d.Reason)
			}
			// A question never answered has nothing stale to serve.
			if d, _ := a.Decide(ctx, userReq("v", "app.read")); d.Allow {
				t.Errorf("unknown question allowed: %+v", d)
			}
		})
	}
}

func TestAuthorizerCallerCancel(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	f := &fakeAuthorize{answer: func(api.AuthorizeRequest) (api.Decision, error) {
		<-block
		return api.Decision{Allow: true, TTLSeconds: 60}, nil
	}}
	a, _ := newTestAuthorizer(t, f, Authorization{WhenUnreachable: ServeStale}, newTestClock())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	d, err := a.Decide(ctx, userReq("u", "app.read"))
	if !errors.Is(err, context.Canceled) || d.Allow || d.Source != SourceError {
		t.Errorf("Decide = %+v, %v; want a denial with context.Canceled", d, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	d, err = a.Decide(ctx, userReq("u", "app.read"))
	if err != nil || d.Allow || d.Source != SourceUnreachable {
		t.Errorf("Decide past the caller's deadline = %+v, %v; want unreachable", d, err)
	}
}

func TestNewAuthorizerValidates(t *testing.T) {
	f := &fakeAuthorize{}
	tests := []struct {
		name string
		opts AuthorizerOptions
	}{
		{"no client", AuthorizerOptions{}},
		{"bad policy", AuthorizerOptions{Client: f, Config: Authorization{WhenUnreachable: "open"}}},
		{"negative", AuthorizerOptions{Client: f, Config: Authorization{MaxTTL: -1}}},
	}
	for _, tt := range tests {
		if _, err := NewAuthorizer(tt.opts); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	reg := prom.NewRegistry()
	if _, err := NewAuthorizer(AuthorizerOptions{Client: f, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAuthorizer(AuthorizerOptions{Client: f, Registerer: reg}); err == nil {
		t.Error("registering the metrics twice: no error")
	}
}

// TestAuthorizerDevcloud runs the Authorizer against devcloud: decisions
// per policy, hit rate under load, the unreachable policies, metrics.
func TestAuthorizerDevcloud(t *testing.T) {
	tc := newTestCloud(t, nil)
	c := tc.client(t, tc.enroll(t, "ec"), nil)
	ctx := context.Background()

	t.Run("per policy", func(t *testing.T) {
		a, _ := newTestAuthorizer(t, c, Authorization{}, newTestClock())
		tests := []struct {
			name  string
			req   api.AuthorizeRequest
			allow bool
		}{
			{"developer reads", aliceReads("sales"), true},
			{"developer reloads", func() api.AuthorizeRequest { r := aliceReads("sales"); r.Action = "app.reload"; return r }(), true},
			{"other space", aliceReads("hr"), false},
			{"static group member reads", userReq("bob", "app.read"), true},
			{"viewer reloads", userReq("bob", "app.reload"), false},
			{"group from the directory", func() api.AuthorizeRequest {
				r := userReq("carol", "app.read")
				r.User.Groups = []string{"analysts"}
				return r
			}(), true},
			{"stranger", userReq("mallory", "app.read"), false},
		}
		for _, tt := range tests {
			d, err := a.Decide(ctx, tt.req)
			if err != nil || d.Allow != tt.allow || d.Source != SourceCloud || d.Reason == "" {
				t.Errorf("%s: %+v, %v; want allow %v from the cloud with a reason", tt.name, d, err, tt.allow)
			}
		}
	})

	t.Run("hit rate under load", func(t *testing.T) {
		a, _ := newTestAuthorizer(t, c, Authorization{}, newTestClock())
		before := tc.cp.Stats().AuthorizeCalls
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				for i := range 200 {
					r := userReq(fmt.Sprintf("user-%d", (g+i)%10), "app.read")
					if _, err := a.Decide(ctx, r); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		calls := tc.cp.Stats().AuthorizeCalls - before
		hits := promtest.Read(a.m.decisions.WithLabelValues(SourceCache, "false"))
		shared := promtest.Read(a.m.decisions.WithLabelValues(SourceCloud, "false"))
		t.Logf("6400 decisions over 10 questions: %d cloud calls; %.0f cache hits, %.0f answered by a shared call", calls, hits, shared)
		if calls > 10+2 {
			t.Errorf("%d cloud calls, want about 10", calls)
		}
		if hits+shared != 6400 || hits < 0.95*6400 {
			t.Errorf("%.0f cache hits and %.0f shared answers, want 6400 in all, 95%% hits", hits, shared)
		}
	})

	for _, policy := range []string{FailClosed, ServeStale} {
		t.Run(policy+" while down", func(t *testing.T) {
			tc := newTestCloud(t, nil)
			c := tc.client(t, tc.enroll(t, "ec"), nil)
			clock := newTestClock()
			a, reg := newTestAuthorizer(t, c, Authorization{WhenUnreachable: policy, MaxStaleness: 5 * time.Minute}, clock)
			if d, err := a.Decide(ctx, aliceReads("sales")); err != nil || !d.Allow {
				t.Fatalf("warm-up: %+v, %v", d, err)
			}
			tc.cp.SetFaults(devcloud.ControlPlaneFaults{Down: true})
			steps := []struct {
				advance time.Duration
				source  string
				allow   bool
			}{
				{30 * time.Second, SourceCache, true}, // within the 60 s TTL
				{60 * time.Second, map[string]string{FailClosed: SourceUnreachable, ServeStale: SourceStale}[policy], policy == ServeStale},
				{4 * time.Minute, map[string]string{FailClosed: SourceUnreachable, ServeStale: SourceStale}[policy], policy == ServeStale}, // expired 4.5 min ago
				{time.Minute, SourceUnreachable, false}, // expired 5.5 min ago
			}
			for i, s := range steps {
				clock.Advance(s.advance)
				d, err := a.Decide(ctx, aliceReads("sales"))
				if err != nil || d.Source != s.source || d.Allow != s.allow {
					t.Errorf("step %d: %+v, %v; want source %s allow %v", i, d, err, s.source, s.allow)
				}
			}
			// Back up: fresh answers again.
			tc.cp.SetFaults(devcloud.ControlPlaneFaults{})
			if d, err := a.Decide(ctx, aliceReads("sales")); err != nil || d.Source != SourceCloud || !d.Allow {
				t.Errorf("cloud back: %+v, %v", d, err)
			}
			stale := 0.0
			if policy == ServeStale {
				stale = 2
			}
			checks := []struct {
				name string
				got  float64
				want float64
			}{
				{"stale serves", promtest.Read(a.m.staleServes), stale},
				{"unreachable denials", promtest.Read(a.m.denials.WithLabelValues(SourceUnreachable)), 3 - stale},
				{"cloud allows", promtest.Read(a.m.decisions.WithLabelValues(SourceCloud, "true")), 2},
				{"cache allows", promtest.Read(a.m.decisions.WithLabelValues(SourceCache, "true")), 1},
				{"unavailable calls", promtest.Read(a.m.calls.WithLabelValues("unavailable")), 3},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
				}
			}
			if n, _ := gatherCount(reg, "edgefort_cloud_authz_cloud_latency_seconds"); n != 1 {
				t.Errorf("latency histogram missing")
			}
		})
	}
}

// gatherCount counts the metrics of family name in reg.
func gatherCount(reg *prom.Registry, name string) (int, error) {
	families, err := reg.Gather()
	for _, f := range families {
		if f.Name == name {
			return len(f.Series), err
		}
	}
	return 0, err
}
