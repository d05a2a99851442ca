package devcloud

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// The fault knobs on the management APIs, so that another process
// (`edgefort-dev fault`, a script) plays the cloud's limits against a
// running stack. Both servers take the same three routes, under their own
// management token:
//
//	GET /api/management/dev/faults   → the knobs in force (BrokerFaults or MenderFaults as JSON)
//	PUT /api/management/dev/faults   body: the knobs, all of them (absent fields are zero) → the knobs in force
//	GET /api/management/dev/stats    → BrokerStats or MenderStats
//
// A PUT replaces every knob: read, change, write. Its body is one JSON
// object of at most maxFaultsBody bytes with no unknown field; a knob out
// of range is refused with 400 naming it, and nothing changes.

// maxFaultsBody bounds a PUT of faults: a few fields.
const maxFaultsBody = 4 << 10

// decodeFaults reads r's body into v (one JSON object, no unknown field,
// nothing after it) and checks it with validate.
func decodeFaults(w http.ResponseWriter, r *http.Request, v any, validate func() error) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultsBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("faults: the body exceeds %d bytes", maxFaultsBody)
	}
	if err != nil {
		return fmt.Errorf("faults: read the body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	if dec.More() {
		return errors.New("faults: trailing data after the JSON object")
	}
	if err := validate(); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return nil
}

// mountFaults adds the fault routes to the broker's management API.
func (b *Broker) mountFaults() {
	const p = "/api/management/dev/"
	b.manage.HandleFunc("GET "+p+"faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Faults())
	})
	b.manage.HandleFunc("PUT "+p+"faults", func(w http.ResponseWriter, r *http.Request) {
		var f BrokerFaults
		if err := decodeFaults(w, r, &f, func() error { return f.Validate() }); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.SetFaults(f)
		b.log.Info("broker faults set", "faults", fmt.Sprintf("%+v", f))
		writeJSON(w, http.StatusOK, b.Faults())
	})
	b.manage.HandleFunc("GET "+p+"stats", func(w http.ResponseWriter, r *http.Request) {
		st := b.Stats()
		writeJSON(w, http.StatusOK, struct {
			BrokerStats
			Connections int
		}{st, b.Connections()})
	})
}

// faultRoutes adds the fault routes to the Mender server's management API.
func (s *MenderServer) faultRoutes(m *http.ServeMux) {
	p := menderManagePrefix
	m.HandleFunc("GET "+p+"faults", s.manage(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	}))
	m.HandleFunc("PUT "+p+"faults", s.manage(func(w http.ResponseWriter, r *http.Request) {
		var f MenderFaults
		if err := decodeFaults(w, r, &f, func() error { return f.Validate() }); err != nil {
			s.errorf(w, r, http.StatusBadRequest, "%v", err)
			return
		}
		s.SetFaults(f)
		s.log.Info("mender faults set", "faults", fmt.Sprintf("%+v", f))
		writeJSON(w, http.StatusOK, s.Faults())
	}))
	m.HandleFunc("GET "+p+"stats", s.manage(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	}))
}
