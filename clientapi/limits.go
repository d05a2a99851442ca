package clientapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimitedAddrs bounds the addresses whose failed authentications are
// tracked; an address that fails only rarely costs nothing once swept.
const maxLimitedAddrs = 10_000

// failLimiter rate-limits failed authentications per client address: an
// address that used up its burst gets 429 until its bucket refills, while
// every other address is unaffected. The map is bounded: when full, the
// addresses whose bucket is full again (idle ones) are swept, and if none
// are, an arbitrary one is dropped. It owns no goroutine.
type failLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu    sync.Mutex                   // guards addrs
	addrs map[netip.Addr]*rate.Limiter // by limitKey of the client address
}

func newFailLimiter(c RateLimit, now func() time.Time) *failLimiter {
	return &failLimiter{
		limit: rate.Limit(orDefault(c.PerSecond, DefaultFailedAuthPerSecond)),
		burst: orDefault(c.Burst, DefaultFailedAuthBurst),
		now:   now,
		addrs: map[netip.Addr]*rate.Limiter{},
	}
}

// ipv6ClientBits is the IPv6 prefix counted as one client: a host or a
// site is routinely given a whole /64, so an attacker could otherwise
// draw a fresh address (and a fresh burst) for every attempt, and push
// every other client out of the bounded map.
const ipv6ClientBits = 64

// limitKey is the key addr's failures are counted under: the address,
// or its /64 for IPv6.
func limitKey(addr netip.Addr) netip.Addr {
	if addr.Is6() && !addr.Is4In6() {
		if p, err := addr.Prefix(ipv6ClientBits); err == nil {
			return p.Addr()
		}
	}
	return addr
}

// blocked reports whether addr has used up its failures for now.
func (f *failLimiter) blocked(addr netip.Addr) bool {
	addr = limitKey(addr)
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.addrs[addr]
	return ok && l.TokensAt(f.now()) < 1
}

// failed counts one failed authentication from addr.
func (f *failLimiter) failed(addr netip.Addr) {
	addr = limitKey(addr)
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.addrs[addr]
	if !ok {
		if len(f.addrs) >= maxLimitedAddrs {
			f.sweepLocked()
		}
		l = rate.NewLimiter(f.limit, f.burst)
		f.addrs[addr] = l
	}
	l.AllowN(f.now(), 1)
}

// sweepLocked forgets addresses whose bucket is full; if that frees too
// little, arbitrary ones down to nine tenths of the bound, so that the map
// stays bounded under a spread attack and sweeps stay rare.
func (f *failLimiter) sweepLocked() {
	now := f.now()
	for a, l := range f.addrs {
		if l.TokensAt(now) >= float64(f.burst) {
			delete(f.addrs, a)
		}
	}
	for a := range f.addrs {
		if len(f.addrs) <= maxLimitedAddrs*9/10 {
			break
		}
		delete(f.addrs, a)
	}
}

// proxies are the trusted reverse proxies of a virtual host.
type proxies []netip.Prefix

func parseProxies(cidrs []string) (proxies, error) {
	var out proxies
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, err
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (ps proxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the connection's peer.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a
	}
	return ap.Addr().Unmap()
}

// clientAddr is the address a request comes from: the peer, or, when the
// peer is a trusted proxy, the nearest address in X-Forwarded-For that is
// not one.
func (ps proxies) clientAddr(r *http.Request) netip.Addr {
	a := peerAddr(r)
	if !ps.trusts(a) {
		return a
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return a
		}
		if a = h.Unmap(); !ps.trusts(a) {
			return a
		}
	}
	return a
}
