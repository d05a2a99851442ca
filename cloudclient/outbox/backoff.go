package outbox

import "github.com/edgefort/edgefort/internal/backoff"

// policy is b's curve for internal/backoff: full jitter, and no grace
// period, since Run starts over on progress (Reset), not on uptime.
func (b Backoff) policy() backoff.Policy {
	return backoff.Policy{Initial: b.Initial, Max: b.Max}
}
