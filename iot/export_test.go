package iot

import (
	"time"

	"github.com/edgefort/edgefort/internal/backoff"
)

// Exported for the tests in package iot_test (the fleet simulation), which
// devcloud's import of iot keeps out of package iot.

// ReconnectBackoff is the reconnect backoff a link built from o uses.
func ReconnectBackoff(o Options, rand func() float64) *backoff.Backoff {
	return &backoff.Backoff{Policy: o.withDefaults().reconnectPolicy(), Rand: rand}
}

// RetryDelay is the link's reconnect policy for one failure.
var RetryDelay = retryDelay

// Keep the signature checked.
var _ func(*backoff.Backoff, bool, time.Duration) time.Duration = RetryDelay
