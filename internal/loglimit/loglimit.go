// Package loglimit spaces out warnings that can repeat without bound (a
// broken store fails every TLS handshake; a local user can loop on the
// admin socket): each distinct warning is logged at most once per
// interval, with the number left out since.
package loglimit

import (
	"log/slog"
	"sync"
	"time"
)

// FieldSuppressed is the log key of the count of lines left out.
const FieldSuppressed = "suppressed"

// maxKeys bounds how many distinct warnings a Limiter remembers, so that
// keys built from what peers send cannot grow it without bound.
const maxKeys = 256

// Limiter logs each distinct warning at most once per interval. Only
// failures reach it, so its mutex is off any hot path.
type Limiter struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*line // by key; guarded by mu
}

type line struct {
	last       time.Time
	suppressed int
}

// New returns a Limiter logging to log at most once per every for each
// key; now is the clock (time.Now when nil).
func New(log *slog.Logger, every time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{log: log, every: every, now: now, seen: map[string]*line{}}
}

// Warn logs msg with args unless the warning keyed key was logged less
// than the interval ago; the next one logged carries the count left out.
func (l *Limiter) Warn(key, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	ln, ok := l.seen[key]
	if ok && now.Sub(ln.last) < l.every {
		ln.suppressed++
		l.mu.Unlock()
		return
	}
	if !ok {
		if len(l.seen) >= maxKeys {
			l.pruneLocked(now)
		}
		ln = &line{}
		l.seen[key] = ln
	}
	suppressed := ln.suppressed
	ln.last, ln.suppressed = now, 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, FieldSuppressed, suppressed)
	}
	l.log.Warn(msg, args...)
}

func (l *Limiter) pruneLocked(now time.Time) {
	for k, ln := range l.seen {
		if now.Sub(ln.last) >= l.every {
			delete(l.seen, k)
		}
	}
	if len(l.seen) >= maxKeys {
		clear(l.seen)
	}
}
