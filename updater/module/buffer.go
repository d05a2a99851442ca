package module

import "sync"

// Output caps: stderr keeps its tail for logs and errors; stdout (query
// answers) keeps its head.
const (
	maxStderr = 10 << 10
	maxStdout = 64 << 10
)

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
