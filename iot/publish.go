package iot

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Errors Publish returns; callers may branch on them with errors.Is.
var (
	// ErrPayloadTooLarge: the payload is over MaxPayload, which AWS refuses.
	ErrPayloadTooLarge = errors.New("payload over AWS IoT's 128 KiB limit")
	// ErrNotConnected: the link is not connected; try again later.
	ErrNotConnected = errors.New("link not connected")
)

// Publish sends payload to topic with QoS 1 and waits for the PUBACK or ctx.
// It refuses payloads over MaxPayload and topics AWS would refuse without
// sending anything, and waits as needed to stay within PublishRate. A
// message whose PUBACK did not arrive before the connection was lost is
// resent after the reconnect (the session is persistent), so an error after
// it was handed to the connection does not mean it was not delivered.
func (l *Link) Publish(ctx context.Context, topic string, payload []byte) error {
	if len(payload) > MaxPayload {
		l.metrics.publishRefused.WithLabelValues(refusedTooLarge).Inc()
		return fmt.Errorf("iot: publish to %q: %d bytes: %w", topic, len(payload), ErrPayloadTooLarge)
	}
	if err := checkTopic(topic); err != nil {
		l.metrics.publishRefused.WithLabelValues(refusedInvalidTopic).Inc()
		return fmt.Errorf("iot: publish to %q: %w", topic, err)
	}
	c := l.client.Load()
	if c == nil || !(*c).IsConnectionOpen() {
		l.metrics.publishRefused.WithLabelValues(refusedNotConnected).Inc()
		return fmt.Errorf("iot: publish to %q: %w", topic, ErrNotConnected)
	}
	if err := waitToken(ctx, l.limiter, l.opts.Now); err != nil {
		l.metrics.publishRefused.WithLabelValues(refusedRateLimited).Inc()
		return fmt.Errorf("iot: publish to %q: waiting for the rate limit: %w", topic, err)
	}
	tok := (*c).Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		l.metrics.publishRefused.WithLabelValues(refusedFailed).Inc()
		return fmt.Errorf("iot: publish to %q: waiting for puback: %w", topic, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		l.metrics.publishRefused.WithLabelValues(refusedFailed).Inc()
		return fmt.Errorf("iot: publish to %q: %w", topic, err)
	}
	l.messagesOut.Add(1)
	l.metrics.messagesOut.Inc()
	return nil
}

// checkTopic refuses what AWS IoT refuses in a publish topic.
func checkTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("empty topic")
	case strings.ContainsAny(topic, "+#"):
		return errors.New("wildcards in a publish topic")
	case len(topic) > 256:
		return fmt.Errorf("topic of %d bytes, AWS allows 256", len(topic))
	}
	return nil
}
