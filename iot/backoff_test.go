package iot

import (
	"testing"
	"time"
)

func TestBackoffFullJitter(t *testing.T) {
	tests := []struct {
		name string
		rand float64
		want []time.Duration // successive delays
	}{
		// The cap doubles from 1s to the 10s max; the delay is rand × cap.
		{"top of the range", 0.999999, []time.Duration{999999 * time.Microsecond, 1999998 * time.Microsecond, 3999996 * time.Microsecond, 7999992 * time.Microsecond, 9999990 * time.Microsecond, 9999990 * time.Microsecond}},
		{"half", 0.5, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"zero", 0, []time.Duration{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackoff(time.Second, 10*time.Second)
			b.rand = func() float64 { return tt.rand }
			for i, want := range tt.want {
				if got := b.next(); got != want {
					t.Errorf("delay %d = %v, want %v", i, got, want)
				}
			}
			b.reset()
			if got, want := b.next(), time.Duration(tt.rand*float64(time.Second)); got != want {
				t.Errorf("delay after reset = %v, want %v", got, want)
			}
		})
	}
}

func TestBackoffHugeMaxDoesNotOverflow(t *testing.T) {
	b := newBackoff(time.Second, time.Duration(1<<62))
	b.rand = func() float64 { return 0.999 }
	for i := range 200 {
		if d := b.next(); d < 0 {
			t.Fatalf("delay %d = %v, negative", i, d)
		}
	}
}

func TestTokenBucket(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newTokenBucket(100, 100, func() time.Time { return now })
	var ok int
	for range 150 {
		if _, took := b.take(); took {
			ok++
		}
	}
	if ok != 100 {
		t.Errorf("burst took %d tokens, want 100", ok)
	}
	wait, took := b.take()
	if took || wait != 10*time.Millisecond {
		t.Errorf("empty bucket: take = %v, %v; want 10ms, false", wait, took)
	}
	now = now.Add(250 * time.Millisecond) // refills 25
	ok = 0
	for range 100 {
		if _, took := b.take(); took {
			ok++
		}
	}
	if ok != 25 {
		t.Errorf("after 250ms took %d tokens, want 25", ok)
	}
	now = now.Add(time.Hour) // refills to the burst, not beyond
	ok = 0
	for range 150 {
		if _, took := b.take(); took {
			ok++
		}
	}
	if ok != 100 {
		t.Errorf("after an hour took %d tokens, want 100", ok)
	}
}
