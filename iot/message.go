package iot

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Message is one PUBLISH received from the broker.
type Message struct {
	Topic   string
	Payload []byte
	// Duplicate is the DUP flag: the broker may have delivered it before
	// (typically after a reconnect, when it was not acknowledged).
	Duplicate bool

	ack func()
}

// Ack sends the PUBACK. The link calls it when the handler returns nil; a
// handler that has recorded the message durably may call it earlier. Later
// calls do nothing. An Ack after the connection it came on was lost is
// dropped, and the broker redelivers the message.
func (m Message) Ack() {
	if m.ack != nil {
		m.ack()
	}
}

// inbox hands messages from paho's callback goroutines to the link's
// workers. paho (OrderMatters false) calls the callback on a goroutine of
// its own per message, so a full queue blocks only that goroutine; the
// backpressure reaches the broker because messages are acknowledged only
// after the handler ran: once the broker's in-flight window is full of
// unacknowledged messages (AWS: 100 per connection), it stops sending.
type inbox struct {
	queue chan paho.Message // bounded: Workers long

	mu     sync.RWMutex // guards closed and orders every wg.Add before wg.Wait
	closed bool
	wg     sync.WaitGroup // paho callbacks inside deliver
}

func newInbox(n int) *inbox { return &inbox{queue: make(chan paho.Message, n)} }

// deliver queues m until a worker is free or ctx ends. It runs on paho's
// goroutines.
func (b *inbox) deliver(ctx context.Context, m paho.Message) {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return // not acknowledged: the broker redelivers it
	}
	b.wg.Add(1)
	b.mu.RUnlock()
	defer b.wg.Done()
	select {
	case b.queue <- m:
	case <-ctx.Done():
	}
}

// close refuses further deliveries and waits for those under way; ctx of
// deliver must have ended.
func (b *inbox) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// work runs the handler for queued messages until ctx ends.
func (l *Link) work(ctx context.Context, in *inbox) {
	for {
		select {
		case <-ctx.Done():
			return
		case pm := <-in.queue:
			l.handle(ctx, pm)
		}
	}
}

func (l *Link) handle(ctx context.Context, pm paho.Message) {
	m := Message{Topic: pm.Topic(), Payload: pm.Payload(), Duplicate: pm.Duplicate(), ack: pm.Ack}
	start := time.Now()
	err := l.callHandler(ctx, m)
	result := "ok"
	if err != nil {
		result = "error"
	}
	l.metrics.handlerSeconds.WithLabelValues(result).Observe(time.Since(start).Seconds())
	if err != nil {
		l.log.Warn("message not acknowledged: handler failed",
			slog.String(logKeyTopic, m.Topic), slog.Bool(logKeyDuplicate, m.Duplicate), slog.Any(logKeyError, err))
		return
	}
	m.Ack()
}

// callHandler runs the handler, turning a panic into an error so that one
// bad message does not take the agent down.
func (l *Link) callHandler(ctx context.Context, m Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return l.opts.Handler(ctx, m)
}
