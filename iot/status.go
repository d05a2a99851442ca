package iot

import "time"

// State is where the link is.
type State string

const (
	StateStopped    State = "stopped"     // Run is not running
	StateConnecting State = "connecting"  // an attempt is under way
	StateConnected  State = "connected"   // connected and subscribed
	StateBackingOff State = "backing-off" // waiting before the next attempt
)

// Status is a snapshot of the link for `edgefort status`.
type Status struct {
	State       State     `json:"state"`
	Since       time.Time `json:"since"`      // when it entered State
	Reconnects  int       `json:"reconnects"` // attempts after the first one, over the link's life
	Throttled   int       `json:"throttled"`  // attempts the service throttled (ErrThrottled), over the link's life
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	MessagesIn  uint64    `json:"messages_in"`
	MessagesOut uint64    `json:"messages_out"`
}

// Status returns a snapshot of the link.
func (l *Link) Status() Status {
	l.mu.Lock()
	s := l.status
	l.mu.Unlock()
	s.MessagesIn = l.messagesIn.Load()
	s.MessagesOut = l.messagesOut.Load()
	return s
}

func (l *Link) setState(s State) {
	l.mu.Lock()
	if l.status.State != s {
		l.status.State = s
		l.status.Since = l.opts.Now()
	}
	l.mu.Unlock()
	l.metrics.setState(s)
}

func (l *Link) setError(err error) {
	l.mu.Lock()
	l.status.LastError = err.Error()
	l.status.LastErrorAt = l.opts.Now()
	l.mu.Unlock()
}

func (l *Link) countThrottled() {
	// The counter first: a reader of Status and then the counter never
	// sees the counter behind.
	l.metrics.throttled.Inc()
	l.mu.Lock()
	l.status.Throttled++
	l.mu.Unlock()
}

func (l *Link) countReconnect() {
	l.mu.Lock()
	l.status.Reconnects++
	l.mu.Unlock()
	l.metrics.reconnects.Inc()
}
