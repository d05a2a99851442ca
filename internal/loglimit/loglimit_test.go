package loglimit

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now time.Time
	l := New(log, 10*time.Second, func() time.Time { return now })
	for _, step := range []struct {
		at  time.Duration
		key string
	}{
		{0, "a"}, {time.Second, "a"}, {2 * time.Second, "b"}, {9 * time.Second, "a"},
		{10 * time.Second, "a"}, {11 * time.Second, "a"}, {30 * time.Second, "a"},
	} {
		now = t0.Add(step.at)
		l.Warn(step.key, "refused", "key", step.key, "at", step.at.String())
	}
	want := []string{
		"level=WARN msg=refused key=a at=0s",
		"level=WARN msg=refused key=b at=2s",
		"level=WARN msg=refused key=a at=10s suppressed=2",
		"level=WARN msg=refused key=a at=30s suppressed=1",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(buf.String()), "\n")); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// TestLimiterBoundsKeys: keys that peers choose cannot grow it past
// maxKeys.
func TestLimiterBoundsKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(slog.New(slog.DiscardHandler), time.Hour, func() time.Time { return now })
	for i := range 10 * maxKeys {
		l.Warn(fmt.Sprint(i), "x")
	}
	if n := len(l.seen); n > maxKeys {
		t.Errorf("remembers %d keys, want at most %d", n, maxKeys)
	}
}
