// Package httpbody reads the bodies of HTTP answers from servers the node
// does not control (the Mender server, the control plane) within a limit
// that fits each message, decodes them as exactly one JSON value, and checks
// the length of the fields the node keeps or echoes. Every refusal names
// what was being read and the limit it broke, so that an operator can tell
// a hostile or broken server from a bug.
//
// Callers choose the limits; each call site documents why its limit fits
// its message.
package httpbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrorLimit is how much of an error answer is read for its message. An
// error body is only shown to a person, so a longer one is cut, not
// refused.
const ErrorLimit = 4 << 10

// TooLargeError is a body, or one of its fields, longer than its limit.
type TooLargeError struct {
	// What names the body or field: "next deployment reply",
	// "artifact.artifact_name".
	What string
	// Limit is the most that is accepted, in bytes (or entries, for a
	// list: see Unit).
	Limit int64
	// Size is the length seen, when known; zero when the reading stopped
	// at the limit.
	Size int64
	// Unit is "entries" for a list; empty means bytes.
	Unit string
}

func (e *TooLargeError) Error() string {
	if e.Unit != "" {
		return fmt.Sprintf("%s has %d %s, over the limit of %d", e.What, e.Size, e.Unit, e.Limit)
	}
	if e.Size > 0 {
		return fmt.Sprintf("%s is %d bytes, over the limit of %s", e.What, e.Size, Size(e.Limit))
	}
	return fmt.Sprintf("%s exceeds the limit of %s", e.What, Size(e.Limit))
}

// Read reads the whole body of resp, at most limit bytes; what names the
// message for errors. A body longer than limit is a *TooLargeError: when
// Content-Length already says so nothing is read. It does not close the
// body.
func Read(resp *http.Response, limit int64, what string) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, &TooLargeError{What: what, Limit: limit, Size: resp.ContentLength}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{What: what, Limit: limit}
	}
	return b, nil
}

// DecodeJSON decodes b into v. b must hold exactly one JSON value, with
// nothing but white space after it; unknown object members are ignored, as
// servers add fields over time.
func DecodeJSON(b []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("decode %s: data after the JSON value", what)
	}
	return nil
}

// ReadJSON reads resp's body within limit and decodes it into v with
// DecodeJSON.
func ReadJSON(resp *http.Response, limit int64, what string, v any) error {
	b, err := Read(resp, limit, what)
	if err != nil {
		return err
	}
	return DecodeJSON(b, v, what)
}

// Message reads at most ErrorLimit bytes of an error answer, for its
// message, and reports whether the body went on. It does not close the
// body; whatever is left unread is dropped when the caller closes it.
func Message(resp *http.Response) (b []byte, cut bool) {
	b, _ = io.ReadAll(io.LimitReader(resp.Body, ErrorLimit+1))
	if len(b) > ErrorLimit {
		return b[:ErrorLimit], true
	}
	return b, false
}

// CutNote is appended to a message taken from an error body that Message
// cut.
var CutNote = fmt.Sprintf(" [error body cut at %s]", Size(ErrorLimit))

// CheckLen refuses a field longer than limit bytes, naming the field.
func CheckLen(field, value string, limit int) error {
	if len(value) > limit {
		return &TooLargeError{What: field, Limit: int64(limit), Size: int64(len(value))}
	}
	return nil
}

// CheckList refuses a list of more than limit entries, or with an entry
// longer than entryLimit bytes, naming the field (and the entry).
func CheckList(field string, list []string, limit, entryLimit int) error {
	if len(list) > limit {
		return &TooLargeError{What: field, Limit: int64(limit), Size: int64(len(list)), Unit: "entries"}
	}
	var errs []error
	for i, s := range list {
		if err := CheckLen(fmt.Sprintf("%s[%d]", field, i), s, entryLimit); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Size writes a byte count for people: "1 MiB", "64 KiB", "1000 bytes".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
