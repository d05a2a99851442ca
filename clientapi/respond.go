package clientapi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Log keys.
const (
	logKeyVirtualHost = "virtual_host"
	logKeyRoute       = "route"
	logKeyRequestID   = "request_id"
	logKeyClient      = "client"
	logKeySolution    = "solution"
	logKeyResult      = "result"
	logKeyReason      = "reason"
	logKeyUser        = "user"
	logKeyDirectory   = "directory"
	logKeyError       = "error"
)

// HeaderRequestID carries a request's id in every response and to the
// backend; the same id is in the log lines about the request.
const HeaderRequestID = "X-Request-Id"

type ctxKey int

const ctxState ctxKey = 0

// reqState is what the client API keeps about a request, under one context
// key: one context value and one copy of the request per request, not one
// per fact. Only the request's own goroutine touches it (the proxy's
// Rewrite runs on it).
type reqState struct {
	id string
	// authorized: identity (and token, when the virtual host mints one)
	// go to the backend.
	authorized bool
	identity   auth.Identity
	token      string
}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(ctxState).(*reqState)
	return st
}

// newRequestID is 16 random hex digits. An id names a request in logs,
// it guards nothing: math/rand/v2's per-thread generator (seeded from the
// system) is enough and takes no system call.
func newRequestID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

func requestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// problem is the body of every error the client API answers itself: a
// stable reason id and the request id, never internal detail.
type problem struct {
	Error     string `json:"error"`
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"request_id"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, code int, reason string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(problem{Error: http.StatusText(code), Reason: reason, RequestID: requestID(r.Context())})
}

// statusWriter records the status code for the metrics. Unwrap lets
// http.ResponseController (which ReverseProxy uses to flush and to hijack
// a WebSocket upgrade) reach the server's writer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
