package module

import "sync"

// Output caps: stderr keeps its tail for logs and errors; stdout (query
// answers) keeps its head.
const (
	maxStderr = 10 << 10
	maxStdout = 64 << 10
)

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu        sync.Mutex // guards the fields below
	max       int
	buf       []byte
	truncated bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.truncated = b.truncated || len(p) > b.max || len(b.buf) > 0
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// String returns the kept bytes, prefixed with "..." when earlier ones
// were dropped.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.truncated {
		return "..." + string(b.buf)
	}
	return string(b.buf)
}

// capBuffer keeps the first max bytes written to it and discards the rest.
type capBuffer struct {
	mu       sync.Mutex // guards the fields below
	max      int
	buf      []byte
	overflow bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - len(b.buf)
	if len(p) > room {
		b.overflow = true
		b.buf = append(b.buf, p[:room]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Bytes returns the kept bytes and whether more were written.
func (b *capBuffer) Bytes() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, b.overflow
}
