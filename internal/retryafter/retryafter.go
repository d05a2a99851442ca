// Package retryafter reads the HTTP Retry-After header (RFC 9110 §10.2.3)
// for every client in edgefort that honours it: the Mender device API
// client and the control-plane client.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxSeconds is the largest whole number of seconds a time.Duration holds.
const maxSeconds = int64(1<<63-1) / int64(time.Second)

// Parse reads a Retry-After value, delay seconds or an HTTP date, as a
// wait from now. An empty, malformed, negative or past value gives zero,
// meaning "no advice": the caller keeps its own backoff. A delay too large
// for a time.Duration is clamped, never wrapped.
func Parse(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, maxSeconds)) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(t.Sub(now), 0)
}

// FromHeader is Parse of h's Retry-After.
func FromHeader(h http.Header, now time.Time) time.Duration {
	return Parse(h.Get("Retry-After"), now)
}
