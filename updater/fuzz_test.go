package updater

import (
	"errors"
	"testing"
	"time"
)

func FuzzCheckContentRange(f *testing.F) {
	f.Add("bytes 10-99/100", int64(10), int64(100))
	f.Add("bytes 0-0/1", int64(0), int64(1))
	f.Add("bytes -5-99/100", int64(10), int64(100))
	f.Fuzz(func(t *testing.T, v string, off, size int64) {
		start, err := checkContentRange(v, off, size)
		if err != nil {
			if !errors.Is(err, ErrBadRange) {
				t.Fatalf("error %v is not ErrBadRange", err)
			}
			return
		}
		if start < 0 || start > off {
			t.Fatalf("accepted start %d for offset %d", start, off)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Add("120")
	f.Add("Mon, 23 Nov 2026 12:01:30 GMT")
	f.Add("-1")
	f.Add("9999999999999")
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now); d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, negative", v, d)
		}
	})
}
