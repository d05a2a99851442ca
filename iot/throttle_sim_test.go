package iot_test

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/iot"
)

// fleetSim is a fleet of links on a virtual clock against devcloud's model
// of AWS IoT's connect quotas (devcloud.ConnectThrottle: refused CONNECTs
// count against the rate, one CONNECT a second per client ID), each node
// running the link's own reconnect policy (iot.RetryDelay). All nodes lose
// the broker at 0; it is down until outage (attempts fail as a network
// error would), then admits what the quotas allow.
type fleetSim struct {
	nodes   int
	rate    float64       // the broker's ConnectRate
	outage  time.Duration // how long the broker is down
	horizon time.Duration // when the simulation gives up
	opts    iot.Options   // the links' reconnect options
	// lenient is the other reading of AWS's quota: a plain token bucket
	// that refused CONNECTs do not drain (for the benchmark's comparison).
	lenient bool
}

// fleetResult is what a run of fleetSim saw, by whole second from 0.
type fleetResult struct {
	accepted map[int]int // admitted CONNECTs
	attempts map[int]int // CONNECTs the broker saw (admitted or not)
	left     int         // nodes not connected at the horizon
	last     time.Duration
	maxFails int // most consecutive failures of one node
}

type simEvent struct {
	at   time.Duration
	node int
}

type simQueue []simEvent

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (s fleetSim) run(seed uint64) fleetResult {
	rng := rand.New(rand.NewPCG(seed, 7))
	th := devcloud.NewConnectThrottle(devcloud.BrokerFaults{ConnectRate: s.rate, ClientIDThrottle: true})
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	admit := func(node int, at time.Duration) bool {
		return th.Admit(fmt.Sprint("thing-", node), start.Add(at)) == ""
	}
	if s.lenient {
		lim := rate.NewLimiter(rate.Limit(s.rate), max(1, int(s.rate)))
		admit = func(_ int, at time.Duration) bool { return lim.AllowN(start.Add(at), 1) }
	}
	bos := make([]*backoff.Backoff, s.nodes)
	q := make(simQueue, 0, s.nodes)
	for i := range bos {
		bos[i] = iot.ReconnectBackoff(s.opts, rng.Float64)
		// The connection was lost: the first retry; the last CONNECT was
		// long before.
		q = append(q, simEvent{at: iot.RetryDelay(bos[i], false, 0), node: i})
	}
	heap.Init(&q)
	r := fleetResult{accepted: map[int]int{}, attempts: map[int]int{}, left: s.nodes}
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		if e.at > s.horizon {
			break
		}
		b := bos[e.node]
		if e.at < s.outage { // nothing listens: the dial fails
			heap.Push(&q, simEvent{at: e.at + iot.RetryDelay(b, false, iot.DefaultConnectInterval), node: e.node})
			continue
		}
		sec := int(e.at / time.Second)
		r.attempts[sec]++
		if !admit(e.node, e.at) {
			// CONNACK 0x03 in a few ms: ErrThrottled.
			heap.Push(&q, simEvent{at: e.at + iot.RetryDelay(b, true, iot.DefaultConnectInterval), node: e.node})
			r.maxFails = max(r.maxFails, b.Failures())
			continue
		}
		r.accepted[sec]++
		r.left--
		r.last = e.at
	}
	return r
}

// TestThrottledFleetConverges simulates 10,000 links reconnecting after a
// 10s outage to a broker that admits 100 CONNECTs a second (refused ones
// counting against it): the busiest second after the first few stays
// within the limit, every node gets in, none has given up, and the
// service sees a bounded number of attempts. The same fleet with the
// throttled window capped at ReconnectMax knocks at over the limit for
// ever and nearly nobody gets in: the widening is what converges.
func TestThrottledFleetConverges(t *testing.T) {
	const (
		nodes = 10000
		rate  = 100
	)
	sim := fleetSim{nodes: nodes, rate: rate, outage: 10 * time.Second, horizon: 3 * time.Hour}
	r := sim.run(1)
	settled := int(sim.outage/time.Second) + 3 // the bucket's first burst may add a second's worth
	for sec, n := range r.accepted {
		if sec >= settled && n > rate {
			t.Errorf("second %d admitted %d connects, over the limit of %d", sec, n, rate)
		}
	}
	if r.left != 0 {
		t.Fatalf("%d of %d nodes not connected after %v", r.left, nodes, sim.horizon)
	}
	total := 0
	for _, n := range r.attempts {
		total += n
	}
	t.Logf("all %d connected by %v (ideal %v after the outage); %d CONNECTs seen, at most %d consecutive failures",
		nodes, r.last.Round(time.Second), time.Duration(nodes/rate)*time.Second, total, r.maxFails)
	if total > 5*nodes {
		t.Errorf("the broker saw %d CONNECTs for %d nodes, want at most 5 per node", total, nodes)
	}
	// Converged within a few windows of the fleet's size: N/L is 100s.
	if limit := time.Hour; r.last > limit {
		t.Errorf("last node connected at %v, want within %v", r.last, limit)
	}

	capped := sim
	capped.horizon = time.Hour
	capped.opts.ReconnectThrottledMax = iot.DefaultReconnectMax
	c := capped.run(1)
	t.Logf("throttled window capped at %v: %d of %d connected within %v", iot.DefaultReconnectMax, nodes-c.left, nodes, capped.horizon)
	if c.left < nodes/2 {
		t.Errorf("with the throttled window capped at %v, %d of %d nodes still connected within %v; the simulation no longer shows the fleet starving itself",
			iot.DefaultReconnectMax, nodes-c.left, nodes, capped.horizon)
	}
}

// TestThrottledBacksOffFurther: for the same jitter draw, the delay after
// a throttled attempt is longer than after any other failure, at every
// step of the curve, and no delay brings two attempts closer than AWS's
// one CONNECT a second per client ID allows.
func TestThrottledBacksOffFurther(t *testing.T) {
	for _, r := range []float64{0.1, 0.5, 0.99} {
		plain := iot.ReconnectBackoff(iot.Options{}, func() float64 { return r })
		throttled := iot.ReconnectBackoff(iot.Options{}, func() float64 { return r })
		for step := range 8 {
			p := iot.RetryDelay(plain, false, iot.DefaultConnectInterval)
			th := iot.RetryDelay(throttled, true, iot.DefaultConnectInterval)
			if th <= p {
				t.Errorf("draw %v, failure %d: throttled delay %v, plain %v; want the throttled one longer", r, step, th, p)
			}
			if p < iot.DefaultConnectInterval || th < iot.DefaultConnectInterval {
				t.Errorf("draw %v, failure %d: delays %v and %v, want at least %v", r, step, p, th, iot.DefaultConnectInterval)
			}
		}
	}
}

// BenchmarkThrottledFleet runs the fleet simulation for fleet sizes,
// connect rates and caps of the throttled window (as multiples of
// ReconnectMax; 16 is the link's default), under both readings of the
// quota, and reports when the last node connected and how many CONNECTs
// the broker saw per node. One iteration is enough: the clock is virtual.
//
//	go test -run '^$' -bench ThrottledFleet -benchtime 1x ./iot/
func BenchmarkThrottledFleet(b *testing.B) {
	for _, fleet := range []struct {
		nodes int
		rate  float64
	}{{2000, 100}, {10000, 100}, {10000, 50}, {50000, 100}} {
		for _, factor := range []int{1, 4, 16} {
			for _, lenient := range []bool{false, true} {
				reading := "strict"
				if lenient {
					reading = "lenient"
				}
				name := fmt.Sprintf("N=%d/L=%.0f/cap=%dx/%s", fleet.nodes, fleet.rate, factor, reading)
				b.Run(name, func(b *testing.B) {
					sim := fleetSim{nodes: fleet.nodes, rate: fleet.rate, outage: 10 * time.Second, horizon: 4 * time.Hour, lenient: lenient}
					sim.opts.ReconnectThrottledMax = time.Duration(factor) * iot.DefaultReconnectMax
					var r fleetResult
					for range b.N {
						r = sim.run(1)
					}
					total := 0
					for _, n := range r.attempts {
						total += n
					}
					b.ReportMetric(r.last.Seconds(), "s-last-connect")
					b.ReportMetric(float64(r.left), "nodes-left")
					b.ReportMetric(float64(total)/float64(fleet.nodes), "connects/node")
				})
			}
		}
	}
}
