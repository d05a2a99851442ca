package devcloud

import (
	"encoding/json"
	"io"
	"net/http"
)

// The Jobs service's routes on the broker's management API (see
// BrokerOptions.ManagementToken): how another process creates a job for a
// thing and follows its execution, as the AWS IoT console would.
//
//	POST /api/management/dev/things/{thing}/jobs/{id}   body: the job document; 201
//	GET  /api/management/dev/things/{thing}/jobs/{id}   a JobExecution; 404 if none
func (j *Jobs) mountManagement() {
	j.b.manage.HandleFunc("POST /api/management/dev/things/{thing}/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		// A job document is at most 32 KiB (AWS's limit).
		doc, err := io.ReadAll(io.LimitReader(r.Body, 32<<10+1))
		if err == nil && len(doc) > 32<<10 {
			http.Error(w, "jobs: the job document exceeds 32 KiB", http.StatusRequestEntityTooLarge)
			return
		}
		if err == nil {
			err = j.Create(r.PathValue("thing"), r.PathValue("id"), doc)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	j.b.manage.HandleFunc("GET /api/management/dev/things/{thing}/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		ex, ok := j.Execution(r.PathValue("thing"), r.PathValue("id"))
		if !ok {
			http.Error(w, "jobs: no such job for the thing", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ex)
	})
}
