package updater

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrUnauthorized means the server answered 401 to the auth request:
	// the device is pending or rejected, or its signature did not verify.
	// It also ends a call that still got 401 after one re-authentication.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrAborted means a status report got 409: the deployment was aborted
	// on the server, so the caller stops and rolls back.
	ErrAborted = errors.New("deployment aborted by server")
	// ErrNoContentLength means the artifact response had no Content-Length,
	// so a cut download could neither be detected nor resumed.
	ErrNoContentLength = errors.New("artifact response has no Content-Length")
	// ErrBadRange means a resumed download did not get a 206 with a
	// Content-Range matching the offset asked for and the original size.
	// Continuing would corrupt the artifact.
	ErrBadRange = errors.New("server did not honour the Range request")
)

// RetryAfterError is returned when the server answered 429 Too Many
// Requests. After is how long it asked the caller to wait; zero when the
// server gave no usable Retry-After, in which case the caller uses its own
// backoff.
type RetryAfterError struct {
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	if e.After == 0 {
		return "too many requests"
	}
	return fmt.Sprintf("too many requests, retry after %s", e.After)
}

// StatusError is an HTTP answer the call did not expect. Message is the
// server's "error" field (or the start of its body).
type StatusError struct {
	Code      int
	Message   string
	RequestID string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("unexpected status %d", e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}
