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
func (o Options) reconnectPolicy() backoff.Policy {
	return backoff.Policy{
		Initial: o.ReconnectInitial,
		Max:     o.ReconnectMax,
		Quick:   quickRetries,
		Spread:  o.ReconnectSpread,
		Grace:   backoffResetAfter,
	}
}

// backoff returns the reconnect backoff of one Run, on the link's clock.
func (l *Link) backoff() *backoff.Backoff {
	return &backoff.Backoff{Policy: l.opts.reconnectPolicy(), Now: l.opts.Now}
}
