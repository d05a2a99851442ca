package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/keystore"
)

// Cloud is the control plane link's operations; only a running agent has
// the link.
type Cloud interface {
	CloudStatus(ctx context.Context) (*CloudStatus, error)
	Authorize(ctx context.Context, r api.AuthorizeRequest) (*AuthorizeReply, error)
	Report(ctx context.Context, r ReportRequest) (*ReportReply, error)
}

// Server is what the routes need from the agent. The socket's file mode
// and the agent's peer gate decide who reaches it; the routes themselves
// authenticate no one.
type Server struct {
	// AgentVersion is the agent's build version, sent with every reply.
	AgentVersion string
	// Status reports the agent. Required.
	Status func() *Status
	// Keystores performs the keystore operations. Required.
	Keystores Keystores
	// Updates performs the update operations. Required.
	Updates Updates
	// CheckUpdate asks the update server now, or once the server's last
	// Retry-After ends: then it returns when (zero: at once). It returns a
	// Conflict when the channel is off. Required.
	CheckUpdate func() (heldUntil time.Time, err error)
	// Cloud performs the control plane operations. Required.
	Cloud Cloud
	// Restart, when set, is called once the reply to an update that ended
	// with OutcomeRestarting is written.
	Restart func()
	// ReloadClients applies the configuration file's clients section to
	// the running client API; its error (a Conflict, or the file's
	// problems) answers 409. Required.
	ReloadClients func() error
	// Sessions performs the client API's session operations. Nil answers
	// 409: no sessions.
	Sessions Sessions
}

// requestLimit bounds a request body other than an Artifact: the largest
// are PKCS#12 bundles and certificate chains.
const requestLimit = 8 << 20

// Handler returns the routes, one per operation.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Liveness: answering at all means the process and its admin
		// loop are alive; a failing component is readiness, not liveness.
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := s.Status()
		if st.Ready {
			fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, c := range st.Components {
			if c.State != "running" {
				fmt.Fprintf(w, "%s: %s\n", c.Name, c.State)
			}
		}
	})
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, VersionInfo{API: Version, Agent: s.AgentVersion})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Status())
	})
	s.keystoreRoutes(mux)
	s.updateRoutes(mux)
	s.cloudRoutes(mux)
	s.sessionRoutes(mux)
	mux.HandleFunc("POST /v1/clients/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ReloadClients(); err != nil {
			WriteError(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, ReloadReply{Status: "clients section reloaded"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderAPI, strconv.Itoa(Version))
		w.Header().Set(HeaderAgent, s.AgentVersion)
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) keystoreRoutes(mux *http.ServeMux) {
	ks := s.Keystores
	kind := func(r *http.Request) keystore.Kind { return keystore.Kind(r.URL.Query().Get("kind")) }
	mux.HandleFunc("GET /v1/stores", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.ListStores(r.Context(), kind(r)))
	})
	mux.HandleFunc("POST /v1/stores", func(w http.ResponseWriter, r *http.Request) {
		var req CreateStoreRequest
		if decode(w, r, &req) {
			answer(w, keystoreStatus)(ks.CreateStore(r.Context(), req))
		}
	})
	mux.HandleFunc("DELETE /v1/stores/{store}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.DeleteStore(r.Context(), r.PathValue("store"), kind(r)))
	})
	mux.HandleFunc("PUT /v1/stores/{store}/entries/{alias}", func(w http.ResponseWriter, r *http.Request) {
		var req ImportRequest
		if decode(w, r, &req) {
			answer(w, keystoreStatus)(ks.ImportEntry(r.Context(), r.PathValue("store"), r.PathValue("alias"), req))
		}
	})
	mux.HandleFunc("DELETE /v1/stores/{store}/entries/{alias}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.DeleteEntry(r.Context(), r.PathValue("store"), r.PathValue("alias"), kind(r)))
	})
	mux.HandleFunc("GET /v1/stores/{store}/entries/{alias}/certificates", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.Certificates(r.Context(), r.PathValue("store"), r.PathValue("alias")))
	})
	mux.HandleFunc("GET /v1/refs", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.ListRefs(r.Context()))
	})
	mux.HandleFunc("PUT /v1/refs/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req SetRefRequest
		if decode(w, r, &req) {
			answer(w, keystoreStatus)(ks.SetRef(r.Context(), r.PathValue("name"), req.Store))
		}
	})
	mux.HandleFunc("DELETE /v1/refs/{name}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.DeleteRef(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("GET /v1/keypairs", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.ListKeyPairs(r.Context()))
	})
	mux.HandleFunc("POST /v1/keypairs", func(w http.ResponseWriter, r *http.Request) {
		var req GenerateKeyPairRequest
		if decode(w, r, &req) {
			answer(w, keystoreStatus)(ks.GenerateKeyPair(r.Context(), req.Bits))
		}
	})
	mux.HandleFunc("GET /v1/keypairs/public", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		answer(w, keystoreStatus)(ks.PublicKey(r.Context(), q.Get("which"), q.Get("format")))
	})
	mux.HandleFunc("POST /v1/keypairs/verify", func(w http.ResponseWriter, r *http.Request) {
		var req VerifyKeyPairRequest
		if decode(w, r, &req) {
			answer(w, keystoreStatus)(ks.VerifyKeyPair(r.Context(), req))
		}
	})
	mux.HandleFunc("DELETE /v1/keypairs/{which}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, keystoreStatus)(ks.DeleteKeyPair(r.Context(), r.PathValue("which")))
	})
}

// keystoreStatus is the status a keystore error answers with.
func keystoreStatus(err error) int {
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, keystore.ErrExists), errors.Is(err, keystore.ErrInUse):
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}

func (s *Server) updateRoutes(mux *http.ServeMux) {
	internal := func(error) int { return http.StatusInternalServerError }
	mux.HandleFunc("GET /v1/update/status", func(w http.ResponseWriter, r *http.Request) {
		answer(w, internal)(s.Updates.UpdateStatus(r.Context()))
	})
	mux.HandleFunc("POST /v1/update/check", func(w http.ResponseWriter, r *http.Request) {
		held, err := s.CheckUpdate()
		if err != nil {
			WriteError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, CheckReply{Status: "check requested", HeldUntil: held})
	})
	result := func(w http.ResponseWriter, res *UpdateResult, err error) {
		answer(w, internal)(res, err)
		if err == nil && res.Outcome == OutcomeRestarting && s.Restart != nil {
			s.Restart()
		}
	}
	mux.HandleFunc("POST /v1/update/install", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Updates.InstallUpdate(r.Context(), r.Body, r.URL.Query().Get("commit") == "true")
		result(w, res, err)
	})
	mux.HandleFunc("POST /v1/update/commit", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Updates.CommitUpdate(r.Context())
		result(w, res, err)
	})
	mux.HandleFunc("POST /v1/update/rollback", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Updates.RollbackUpdate(r.Context())
		result(w, res, err)
	})
}

func (s *Server) cloudRoutes(mux *http.ServeMux) {
	internal := func(error) int { return http.StatusInternalServerError }
	mux.HandleFunc("GET /v1/cloud/status", func(w http.ResponseWriter, r *http.Request) {
		answer(w, internal)(s.Cloud.CloudStatus(r.Context()))
	})
	mux.HandleFunc("POST /v1/cloud/authorize", func(w http.ResponseWriter, r *http.Request) {
		var req api.AuthorizeRequest
		if decode(w, r, &req) {
			answer(w, internal)(s.Cloud.Authorize(r.Context(), req))
		}
	})
	mux.HandleFunc("POST /v1/cloud/report", func(w http.ResponseWriter, r *http.Request) {
		var req ReportRequest
		if decode(w, r, &req) {
			answer(w, func(error) int { return http.StatusBadRequest })(s.Cloud.Report(r.Context(), req))
		}
	})
}

// decode reads a JSON request body into v, or answers 400 and returns
// false. Unknown fields are refused: they are a CLI and an agent that
// disagree about the request.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, requestLimit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("decode the %s %s request: %w", r.Method, r.URL.Path, err))
		return false
	}
	return true
}

// answer returns a function that writes an operation's reply, or its
// error with the status code says (unless the error carries its own).
func answer(w http.ResponseWriter, code func(error) int) func(any, error) {
	return func(v any, err error) {
		if err != nil {
			WriteError(w, code(err), err)
			return
		}
		writeJSON(w, v)
	}
}
