package testkit

import (
	"runtime"
	"testing"
	"time"
)

// Patience is how long WaitFor waits before it fails the test. Tests never
// assert durations; patience only bounds a wait that would otherwise hang.
const Patience = 10 * time.Second

// maxPoll caps the pause between two checks of a condition.
const maxPoll = 20 * time.Millisecond

// WaitFor checks cond until it holds. After Patience it fails the test
// with what it was waiting for and every goroutine's stack.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, Patience, what, cond)
}

// WaitForWithin is WaitFor with its own patience, for waits known to take
// longer (a peer process starting) or a test that fails faster.
func WaitForWithin(t testing.TB, patience time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(patience, cond) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("timed out after %v waiting for %s\n%s", patience, what, buf[:n])
	}
}

// poll checks cond, pausing 1ms and then longer up to maxPoll between
// checks, until it holds (true) or patience has passed (false).
func poll(patience time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(patience)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPoll)
	}
	return true
}
