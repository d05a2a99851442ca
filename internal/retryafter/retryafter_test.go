package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"empty", "", 0},
		{"blank", "  ", 0},
		{"seconds", "120", 2 * time.Minute},
		{"seconds with spaces", " 3 ", 3 * time.Second},
		{"zero", "0", 0},
		{"negative", "-1", 0},
		{"fraction is not a delay", "1.5", 0},
		{"garbage", "soon", 0},
		{"too large for a Duration is clamped", "9999999999999", time.Duration(maxSeconds) * time.Second},
		{"beyond int64", "99999999999999999999", 0},
		{"HTTP date ahead", "Mon, 23 Nov 2026 12:01:30 GMT", 90 * time.Second},
		{"HTTP date past", now.Add(-10 * time.Second).Format(http.TimeFormat), 0},
		{"RFC 850 date", "Monday, 23-Nov-26 12:00:10 GMT", 10 * time.Second},
		{"asctime date", "Mon Nov 23 12:00:05 2026", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Parse(tt.in, now); got != tt.want {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFromHeader(t *testing.T) {
	h := http.Header{}
	if got := FromHeader(h, now); got != 0 {
		t.Errorf("no header: %v, want 0", got)
	}
	h.Set("Retry-After", "7")
	if got := FromHeader(h, now); got != 7*time.Second {
		t.Errorf("Retry-After: 7 gave %v, want 7s", got)
	}
}

// FuzzParse checks that no value gives a negative wait, and that a plain
// positive number of seconds is read as exactly that.
func FuzzParse(f *testing.F) {
	f.Add("120")
	f.Add("Mon, 23 Nov 2026 12:01:30 GMT")
	f.Add("-1")
	f.Add("9999999999999")
	f.Add("99999999999999999999")
	f.Add(now.Add(time.Hour).Format(http.TimeFormat))
	f.Fuzz(func(t *testing.T, v string) {
		d := Parse(v, now)
		if d < 0 {
			t.Fatalf("Parse(%q) = %v, negative", v, d)
		}
		if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && s > 0 && s <= maxSeconds {
			if want := time.Duration(s) * time.Second; d != want {
				t.Fatalf("Parse(%q) = %v, want %v", v, d, want)
			}
		}
	})
}
