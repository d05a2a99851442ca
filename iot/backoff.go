package iot

import (
	"github.com/edgefort/edgefort/internal/backoff"
)

// quickRetries is how many reconnect attempts come before the spread
// window: their caps are ReconnectInitial and twice that.
const quickRetries = 2

// reconnectPolicy is the reconnect curve: full jitter (each delay uniform
// in [0, cap)), caps ReconnectInitial, twice that, then ReconnectSpread
// doubling up to ReconnectMax, starting over once a connection has stayed
// up for backoffResetAfter.
//
// The jump to the spread is for the fleet. A broker restart or a network
// blip is over within the quick retries, and one node is back within a
// second or two. An outage that outlasts them has most likely dropped
// every node of the fleet at once; plain doubling from one second would
// have them waiting on caps of 4–8 s after a 10 s outage, so that a sixth
// of the fleet came back in the first second (measured:
// scripts/bench/fleet). With every node's next attempt uniform over the
// spread, N nodes return at about N/spread per second whatever the
// outage's length.
//
// A throttled attempt (ErrThrottled: AWS refused the CONNECT for its
// connect rate, or was too loaded to take it) uses backoff.Throttled: no
// quick retry, and the window doubles from the spread on every throttled
// attempt, up to ReconnectThrottledMax. Why that converges without any
// node knowing N: a node that draws its next attempt uniformly over a
// window W waits W/2 on average, so the fleet knocks at about R = Σ 2/Wᵢ
// per second. With AWS's limit at L per second, every second that R > L
// leaves refused nodes, and each of them halves its own term of the sum;
// R falls geometrically until it is under L, and from then on nearly
// every attempt is admitted and the nodes leave the sum. The fleet fits
// once the windows reach about 2N/L: one doubling per round of refusals,
// about log₂(2N/(L·spread)) rounds. The cap must allow that window: 32m
// (the default) fits N ≤ 960·L, e.g. 480,000 nodes at AWS's default
// 500/s; ReconnectMax alone (2m) would stop at N = 60·L, and past it,
// with refused requests counting against the limit (devcloud's reading,
// see devcloud/broker_throttle.go), the fleet would knock at over L for
// ever and nobody would get in.
// What the widening costs: the unluckiest node may wait out a whole
// window after the fleet has drained; the delays start over once a
// connection has stayed up. Simulated in TestThrottledFleetConverges.
func (o Options) reconnectPolicy() backoff.Policy {
	return backoff.Policy{
		Initial:      o.ReconnectInitial,
		Max:          o.ReconnectMax,
		Quick:        quickRetries,
		Spread:       o.ReconnectSpread,
		Grace:        backoffResetAfter,
		ThrottledMax: o.ReconnectThrottledMax,
	}
}

// backoff returns the reconnect backoff of one Run, on the link's clock.
func (l *Link) backoff() *backoff.Backoff {
	return &backoff.Backoff{Policy: l.opts.reconnectPolicy(), Now: l.opts.Now}
}
