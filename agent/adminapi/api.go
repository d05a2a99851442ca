// Package adminapi is the agent's local admin API: its version, its wire
// types, one route per operation, and the in-process operations that both
// the agent's routes and the CLI's offline path (no agent running) run.
//
// The CLI reaches the operations through the interfaces Keystores and
// Updates: over the admin socket (package adminclient) when an agent
// runs, or in-process (LocalKeystores, LocalUpdates) on the state
// directory when none does. Either way one function per operation calls
// the keystore and updater methods.
//
// Every JSON key is snake_case; durations are strings ("30s") or
// explicit _seconds fields.
package adminapi

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Version is the admin API version this build speaks. Raise it when a
// route is added, removed or changes meaning, so that a CLI and an agent
// of different builds can tell which of them is behind. 2 added the
// client API's reload and the sessions.
const Version = 2

// Headers every reply carries.
const (
	// HeaderAPI is the agent's admin API version, a decimal integer.
	HeaderAPI = "Edgefort-Api"
	// HeaderAgent is the agent's build version.
	HeaderAgent = "Edgefort-Version"
)

// VersionInfo is what GET /v1/version answers.
type VersionInfo struct {
	// API is the admin API version the agent speaks.
	API int `json:"api"`
	// Agent is the agent's build version.
	Agent string `json:"agent"`
}

// ErrorReply is the body of every reply that is not 200.
type ErrorReply struct {
	// Error is phrased for the operator; the CLI prints it as is.
	Error string `json:"error"`
}

// StatusError makes an operation's error answer with Code rather than
// the route's default.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// Conflict wraps err to answer 409: the operation cannot run in the
// agent's present state (a link is off, an update is in progress).
func Conflict(err error) error { return &StatusError{Code: http.StatusConflict, Err: err} }

// BadRequest wraps err to answer 400.
func BadRequest(err error) error { return &StatusError{Code: http.StatusBadRequest, Err: err} }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "a -> b" reads better than "a -\u003e b"
	enc.Encode(v)
}

// WriteError answers code with err's message as an ErrorReply.
func WriteError(w http.ResponseWriter, code int, err error) {
	var se *StatusError
	if errors.As(err, &se) {
		code = se.Code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(ErrorReply{Error: err.Error()})
}
