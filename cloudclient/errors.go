package cloudclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinels callers branch on. Every error a call returns wraps at most one
// of them; match with errors.Is.
var (
	// ErrUnauthorized means the control plane refused the device: a call
	// still got 401 after one token refresh and retry, or the token
	// endpoint answered invalid_grant or invalid_client.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden means the control plane answered 403: the device is
	// known but may not make this call.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable means the control plane could not be reached or did
	// not answer usefully in time: connection errors, per-attempt
	// timeouts, and 429, 500, 502, 503 or 504, after the retries allowed
	// for the call.
	ErrUnavailable = errors.New("control plane unavailable")
)

// ResponseError is an answer the call did not expect: an error status not
// covered by a sentinel, or a body that does not parse. It matches the
// sentinel for its status with errors.Is (401 ErrUnauthorized, 403
// ErrForbidden, 429/500/502/503/504 ErrUnavailable).
type ResponseError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the machine-readable code of the error body ("error"), when
	// there was one.
	Code string
	// Message is the error body's human-readable text, or what went wrong
	// reading the body.
	Message string

	retryAfter time.Duration // from Retry-After on 429 and 503; zero when absent
	cause      error         // what was wrong with a 2xx body, such as *httpbody.TooLargeError
}

func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "status %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns what was wrong with a 2xx body, if anything.
func (e *ResponseError) Unwrap() error { return e.cause }

// Is maps the status to its sentinel.
func (e *ResponseError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrUnavailable:
		return transientStatus(e.Status)
	}
	return false
}

// transientStatus reports whether a status means "try again later".
func transientStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// unavailable marks a transport failure (connection refused, reset, an
// attempt's timeout) as ErrUnavailable, keeping the cause in the chain.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
