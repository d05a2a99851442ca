// Package procgroup holds what the update module runner and the state
// script runner share about the programs they start: each runs in its own
// process group, dies with the agent, and keeps a bounded tail of its
// stderr.
package procgroup

import (
	"sync"
	"syscall"
)

// Attr is the SysProcAttr for a child that gets its own process group (so
// that a timeout can kill everything it started) and, where the system
// allows, is killed when the agent dies: a module left running by an
// agent killed mid-install would otherwise race the restarted agent's
// rollback.
func Attr() *syscall.SysProcAttr { return attr() }

// Kill sends sig to the process group led by pid; errors (the group is
// already gone) are ignored.
func Kill(pid int, sig syscall.Signal) { _ = syscall.Kill(-pid, sig) }

// TailBuffer keeps the last Max bytes written to it.
type TailBuffer struct {
	Max int

	mu        sync.Mutex // guards the fields below
	buf       []byte
	truncated bool
}

func (b *TailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.Max {
		b.truncated = b.truncated || len(p) > b.Max || len(b.buf) > 0
		b.buf = append(b.buf[:0], p[len(p)-b.Max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.Max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// String returns the kept bytes, prefixed with "..." when earlier ones
// were dropped.
func (b *TailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.truncated {
		return "..." + string(b.buf)
	}
	return string(b.buf)
}
