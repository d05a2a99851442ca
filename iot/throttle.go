package iot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ErrThrottled marks a connection attempt the service refused for its
// rate limits or its load, rather than for the node's credentials or the
// network. AWS IoT limits CONNECTs per second per account and per client
// ID; what an MQTT 3.1.1 client sees when it is over is not documented
// (MQTT 5 has CONNACK 0x9F, 3.1.1 has no such code), so the link counts as
// throttled every answer that says "up, but not now":
//   - the WebSocket upgrade answered 429 (Too Many Requests) or 503
//     (Service Unavailable);
//   - CONNACK 0x03, server unavailable (what devcloud's broker sends);
//   - the connection closed after a successful upgrade and before any
//     CONNACK (the "hang-up" AWS's SDK maintainers describe), unless the
//     wait for the CONNACK timed out, which a dead network also does.
//
// On such an attempt the link backs off further (backoff.Throttled)
// instead of retrying within a second. A DialFunc may wrap it too.
var ErrThrottled = errors.New("connect throttled by the service")

// throttledStatus reports whether an HTTP answer to the upgrade means the
// service is shedding load.
func throttledStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}

// classifyConnect returns err, the failure of paho's Connect, marked with
// ErrThrottled when it is one; opened says whether the WebSocket was
// upgraded for the attempt.
func classifyConnect(err error, opened bool) error {
	switch {
	case errors.Is(err, ErrThrottled):
		return err // the dial said so
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
	case opened && errors.Is(err, packets.ErrorNetworkError) &&
		!errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled):
		// Upgraded, then closed before any CONNACK.
	default:
		return err
	}
	return fmt.Errorf("%w: %w", ErrThrottled, err)
}
