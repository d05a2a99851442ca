package clientapi

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
)

// TestFailedAuthenticationsAreRateLimitedPerAddress: after its burst of
// refused tokens an address gets 429, even with a good token, while another
// address goes on unaffected; both are counted and logged.
func TestFailedAuthenticationsAreRateLimitedPerAddress(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	cfg := routeTo(r.backend(t, "engine", echo()), time.Minute)
	cfg.VirtualHosts[0].FailedAuthLimit = RateLimit{PerSecond: 0.001, Burst: 3}
	srv := r.start(t, cfg)
	url := srv.URLs()["hub"] + "/"
	do := func(local, token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := r.client(local, false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var got []int
	for range 4 {
		got = append(got, do("127.0.0.1", "forged"))
	}
	got = append(got, do("127.0.0.1", "alice-token"), do("127.0.0.2", "alice-token"), do("127.0.0.2", "forged"))
	want := []int{401, 401, 401, 429, 429, 200, 401}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
	auth := r.reg
	if n := counterValue(srv.m.auth.WithLabelValues("hub", solutionNone, resultRateLimited)); n != 2 {
		t.Errorf("rate_limited count %v, want 2", n)
	}
	if n := counterValue(srv.m.auth.WithLabelValues("hub", "tokens", "refused")); n != 4 {
		t.Errorf("refused count %v, want 4", n)
	}
	if names := promtest.Names(t, auth); len(names) != 3 {
		t.Errorf("registered metrics: %v; want the auth, requests and latency families", names)
	}
	lines := r.logs.lines("authentication")
	if len(lines) != 7 {
		t.Errorf("%d authentication log lines, want 7", len(lines))
	}
	for _, l := range lines {
		if l[logKeyVirtualHost] != "hub" || l[logKeyRoute] != "all" || l[logKeyResult] == nil || l[logKeyRequestID] == nil {
			t.Errorf("audit line %v lacks a field", l)
		}
	}
}

// TestAuditLogsDecisionsNotRepeats: a verification and a refusal are
// audit lines at info level; a request authenticated from the solution's
// cache, or anonymously, is one at debug level only; the metrics count
// all of them.
func TestAuditLogsDecisionsNotRepeats(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	r.authz.permit("anonymous app.read app/sales/a1")
	cfg := routeTo(r.backend(t, "engine", echo()), time.Minute)
	cfg.VirtualHosts[0].Routes[0].Anonymous = true
	cfg.VirtualHosts[0].Authentication = append(cfg.VirtualHosts[0].Authentication, Solution{Anonymous: &Anonymous{}})
	srv := r.start(t, cfg)
	tests := []struct {
		token       string // "" sends none
		status      int
		level, user string
	}{
		{token: "alice-token", status: 200, level: "INFO", user: "alice"},
		{token: "alice-cached", status: 200, level: "DEBUG", user: "alice"},
		{token: "forged", status: 401, level: "INFO"},
		{token: "", status: 200, level: "DEBUG", user: DefaultAnonymousUserID},
	}
	for i, tt := range tests {
		req, _ := http.NewRequest("GET", srv.URLs()["hub"]+"/", nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := r.client("", false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Fatalf("%q: status %d, want %d", tt.token, resp.StatusCode, tt.status)
		}
		lines := r.logs.lines("authentication")
		if len(lines) != i+1 {
			t.Fatalf("%q: %d authentication lines in all, want %d", tt.token, len(lines), i+1)
		}
		l := lines[i]
		if l["level"] != tt.level || l[logKeyRequestID] != resp.Header.Get(HeaderRequestID) || (tt.user != "" && l[logKeyUser] != tt.user) {
			t.Errorf("%q: audit line %v, want level %s, user %q and the response's request id", tt.token, l, tt.level, tt.user)
		}
	}
	if n := counterValue(srv.m.auth.WithLabelValues("hub", "tokens", "authenticated")); n != 2 {
		t.Errorf("authenticated count %v, want 2 (the cached one too)", n)
	}
}

// TestFailLimiterStaysBounded: an attack from many addresses never grows
// the map past its bound.
func TestFailLimiterStaysBounded(t *testing.T) {
	now := time.Unix(0, 0)
	f := newFailLimiter(RateLimit{PerSecond: 1, Burst: 1}, func() time.Time { return now })
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range maxLimitedAddrs + 500 {
		f.failed(addr(i))
	}
	if n := len(f.addrs); n > maxLimitedAddrs {
		t.Errorf("%d addresses tracked, bound %d", n, maxLimitedAddrs)
	}
	if !f.blocked(addr(maxLimitedAddrs + 499)) {
		t.Errorf("the latest failing address is not blocked")
	}
	now = now.Add(time.Hour)
	f.mu.Lock()
	f.sweepLocked()
	f.mu.Unlock()
	if n := len(f.addrs); n != 0 {
		t.Errorf("after an hour the idle addresses were not swept: %d left", n)
	}
}

// TestFailLimiterCountsAnIPv6SubnetAsOneClient: the addresses of one /64
// share one budget (an attacker cannot draw a fresh burst per address),
// another /64 and IPv4 clients keep theirs.
func TestFailLimiterCountsAnIPv6SubnetAsOneClient(t *testing.T) {
	now := time.Unix(0, 0)
	f := newFailLimiter(RateLimit{PerSecond: 0.001, Burst: 2}, func() time.Time { return now })
	f.failed(netip.MustParseAddr("2001:db8:1:2::1"))
	f.failed(netip.MustParseAddr("2001:db8:1:2:ffff:ffff:ffff:ffff"))
	for _, tt := range []struct {
		addr    string
		blocked bool
	}{
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2:dead:beef:0:7", true},
		{"2001:db8:1:3::1", false},
		{"192.0.2.1", false},
		{"::ffff:192.0.2.2", false},
	} {
		if got := f.blocked(netip.MustParseAddr(tt.addr)); got != tt.blocked {
			t.Errorf("blocked(%s) = %v, want %v", tt.addr, got, tt.blocked)
		}
	}
	if n := len(f.addrs); n != 1 {
		t.Errorf("%d keys tracked for one /64, want 1", n)
	}
}

// counterValue reads one of the client API's counters.
func counterValue(c prom.Counter) float64 { return promtest.Read(c) }

// FuzzClientAddr: whatever X-Forwarded-For a trusted proxy passes on, the
// client address is the peer or one of the header's addresses, never a
// trusted proxy unless every hop is one, and parsing never panics.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"", "203.0.113.7", "203.0.113.7, 10.0.0.1", "::1,,garbage", "1.2.3.4 , [::1]", strings.Repeat("1.1.1.1,", 100)} {
		f.Add(s)
	}
	ps, _ := parseProxies([]string{"127.0.0.1/32", "10.0.0.0/8"})
	f.Fuzz(func(t *testing.T, xff string) {
		r := &http.Request{RemoteAddr: "127.0.0.1:5000", Header: http.Header{"X-Forwarded-For": {xff}}}
		a := ps.clientAddr(r)
		if !a.IsValid() {
			t.Fatalf("clientAddr(%q) = invalid", xff)
		}
		from := map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}
		for _, h := range strings.Split(xff, ",") {
			if p, err := netip.ParseAddr(strings.TrimSpace(h)); err == nil {
				from[p.Unmap()] = true
			}
		}
		if !from[a] {
			t.Fatalf("clientAddr(%q) = %s, from neither the peer nor the header", xff, a)
		}
	})
}
