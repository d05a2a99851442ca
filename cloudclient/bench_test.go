package cloudclient

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// benchAuthorizer is an Authorizer over a real client to devcloud on
// loopback TLS (traffic not validated, so that validation is not timed).
func benchAuthorizer(b *testing.B) *Authorizer {
	tc := newTestCloud(b, nil)
	dev := tc.enroll(b, "ec")
	c := tc.client(b, dev, func(o *Options) { o.HTTP = tc.raw })
	a, err := NewAuthorizer(AuthorizerOptions{Client: c, Config: Authorization{CacheSize: 1 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	return a
}

// runDecisions runs b.N decisions in parallel, next(i) giving the i-th
// question, and reports decisions/s and the p99 latency.
func runDecisions(b *testing.B, a *Authorizer, next func(i int64) api.AuthorizeRequest, wantSource string) {
	var (
		n   atomic.Int64
		mu  sync.Mutex
		all []time.Duration
	)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			r := next(n.Add(1))
			t0 := time.Now()
			d, err := a.Decide(ctx, r)
			lat = append(lat, time.Since(t0))
			if err != nil || d.Source != wantSource || !d.Allow {
				b.Errorf("Decide = %+v, %v; want an allow from %s", d, err, wantSource)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "decisions/s")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkAuthorizeWarm: every decision a cache hit.
func BenchmarkAuthorizeWarm(b *testing.B) {
	a := benchAuthorizer(b)
	qs := make([]api.AuthorizeRequest, 100)
	for i := range qs {
		qs[i] = userReq(fmt.Sprintf("warm-%d", i), "app.read")
		qs[i].User.Groups = []string{"analysts"}
		if _, err := a.Decide(context.Background(), qs[i]); err != nil {
			b.Fatal(err)
		}
	}
	runDecisions(b, a, func(i int64) api.AuthorizeRequest { return qs[i%int64(len(qs))] }, SourceCache)
}

// BenchmarkAuthorizeCold: every decision a new question, asked of devcloud
// over TLS.
func BenchmarkAuthorizeCold(b *testing.B) {
	a := benchAuthorizer(b)
	runDecisions(b, a, func(i int64) api.AuthorizeRequest {
		r := userReq(fmt.Sprintf("cold-%d", i), "app.read")
		r.User.Groups = []string{"analysts"}
		return r
	}, SourceCloud)
}

// BenchmarkRoundTripFloor is the peer of BenchmarkAuthorizeCold in the same
// run: a bare HTTPS GET of devcloud's JWKS over the same keep-alive TLS
// client, no token, no JSON request, no policy. A cold decision cannot be
// faster than this; the gap is edgefort's and the policy's cost.
func BenchmarkRoundTripFloor(b *testing.B) {
	tc := newTestCloud(b, nil)
	url := tc.cp.URL() + api.PathJWKS
	var (
		mu  sync.Mutex
		all []time.Duration
	)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			resp, err := tc.raw.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(t0))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "requests/s")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}
