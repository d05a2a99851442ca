package supervisor

import (
	"errors"
	"fmt"
	"time"

	"github.com/edgefort/edgefort/internal/backoff"
)

// Backoff sets how long a failed component waits before it starts again.
//
// The nominal delay is Initial after a first failure and doubles with each
// consecutive failure up to Max. The delay used is drawn uniformly from
// [nominal/2, nominal] ("equal jitter"): a fleet of nodes spreads its
// restarts, yet each still waits at least half the nominal delay, so a
// component never restarts in a tight loop. A component that stayed up at
// least ResetAfter before it failed starts again from Initial; one that flaps
// keeps slowing down.
type Backoff struct {
	// Initial is the nominal delay after a first failure. Zero means 1s.
	Initial time.Duration
	// Max caps the nominal delay; at least Initial. Zero means 2m.
	Max time.Duration
	// ResetAfter is how long a component must have stayed up for its
	// failure count to start over. Zero means 1m.
	ResetAfter time.Duration
}

// Backoff defaults.
const (
	defaultBackoffInitial    = time.Second
	defaultBackoffMax        = 2 * time.Minute
	defaultBackoffResetAfter = time.Minute
)

// withDefaults returns b with its zero fields set to the defaults.
func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = defaultBackoffInitial
	}
	if b.Max == 0 {
		b.Max = defaultBackoffMax
	}
	if b.ResetAfter == 0 {
		b.ResetAfter = defaultBackoffResetAfter
	}
	return b
}

// validate checks b once defaults are set.
func (b Backoff) validate() error {
	var errs []error
	if b.Initial < 0 {
		errs = append(errs, fmt.Errorf("backoff.initial: negative (%v)", b.Initial))
	}
	if b.Max < 0 {
		errs = append(errs, fmt.Errorf("backoff.max: negative (%v)", b.Max))
	}
	if b.ResetAfter < 0 {
		errs = append(errs, fmt.Errorf("backoff.reset_after: negative (%v)", b.ResetAfter))
	}
	if b.Initial > b.Max {
		errs = append(errs, fmt.Errorf("backoff.max: %v is less than backoff.initial %v", b.Max, b.Initial))
	}
	return errors.Join(errs...)
}

// policy is b's curve for internal/backoff: equal jitter (a floor of half
// the cap) and the grace period ResetAfter.
func (b Backoff) policy() backoff.Policy {
	return backoff.Policy{Initial: b.Initial, Max: b.Max, Floor: 0.5, Grace: b.ResetAfter}
}
