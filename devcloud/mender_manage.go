package devcloud

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// The management HTTP API, for `edgefort-dev` and scripts in another
// process. It serves only when MenderOptions.ManagementToken is set, and
// every call needs "Authorization: Bearer <ManagementToken>":
//
//	POST /api/management/dev/artifacts                 body: the .mender → {"name"}
//	POST /api/management/dev/deployments               {"artifact_name","devices":[…]} → {"id"}
//	POST /api/management/dev/deployments/{id}/abort    → 204
//	GET  /api/management/dev/deployments/{id}/devices/{device}/statuses → ["downloading",…]
//	GET  /api/management/dev/devices/{device}/inventory → {name: attribute}
//	GET  /api/management/dev/authsets                  → [AuthSet…]
//	PUT  /api/management/dev/devices/{device}/status   {"status":"accepted"} → 204
//	GET, PUT /api/management/dev/faults, GET /api/management/dev/stats: see faults_manage.go
const menderManagePrefix = "/api/management/dev/"

// maxArtifactUpload bounds an artifact upload through the management API.
const maxArtifactUpload = 4 << 30

func (s *MenderServer) manageRoutes(m *http.ServeMux) {
	if s.opts.ManagementToken == "" {
		return
	}
	p := menderManagePrefix
	s.faultRoutes(m)
	m.HandleFunc("POST "+p+"artifacts", s.manage(func(w http.ResponseWriter, r *http.Request) {
		name, err := s.UploadArtifact(http.MaxBytesReader(w, r.Body, maxArtifactUpload))
		if errors.Is(err, ErrArtifactExists) {
			s.errorf(w, r, http.StatusConflict, "%v", err)
			return
		}
		if err != nil {
			s.errorf(w, r, http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"name": name})
	}))
	m.HandleFunc("POST "+p+"deployments", s.manage(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ArtifactName string   `json:"artifact_name"`
			Devices      []string `json:"devices"`
		}
		if !s.decodeBody(w, r, &req) {
			return
		}
		id, err := s.CreateDeployment(req.ArtifactName, req.Devices...)
		if err != nil {
			s.errorf(w, r, http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	}))
	m.HandleFunc("POST "+p+"deployments/{id}/abort", s.manage(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Abort(r.PathValue("id")); err != nil {
			s.errorf(w, r, http.StatusNotFound, "%v", err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	m.HandleFunc("GET "+p+"deployments/{id}/devices/{device}/statuses", s.manage(func(w http.ResponseWriter, r *http.Request) {
		st := s.Statuses(r.PathValue("device"), r.PathValue("id"))
		if st == nil {
			st = []string{}
		}
		writeJSON(w, http.StatusOK, st)
	}))
	m.HandleFunc("GET "+p+"devices/{device}/inventory", s.manage(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Inventory(r.PathValue("device")))
	}))
	m.HandleFunc("GET "+p+"authsets", s.manage(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.AuthSets())
	}))
	m.HandleFunc("PUT "+p+"devices/{device}/status", s.manage(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Status AuthStatus `json:"status"`
		}
		if !s.decodeBody(w, r, &req) {
			return
		}
		if err := s.SetAuthStatus(r.PathValue("device"), req.Status); err != nil {
			s.errorf(w, r, http.StatusBadRequest, "%v", err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}

// manage checks the management token before h.
func (s *MenderServer) manage(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.ManagementToken)) != 1 {
			s.errorf(w, r, http.StatusUnauthorized, "bad management token")
			return
		}
		h(w, r)
	}
}
