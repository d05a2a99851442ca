package devcloud

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestJobsManagement drives the Jobs routes of the broker's management
// API as edgefort-dev job does: create, read the execution, and the
// refusals.
func TestJobsManagement(t *testing.T) {
	b := startManagedBroker(t)
	jobs := NewJobs(b, nil)
	defer jobs.Close()

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.ServerCA()}}}
	call := func(method, token, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+b.Host()+"/api/management/dev/things/"+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	tests := []struct {
		name, method, token, path, body string
		want                            int
	}{
		{"no token", http.MethodPost, "", "t1/jobs/j1", `{"operation":"x"}`, http.StatusUnauthorized},
		{"wrong token", http.MethodGet, "nope", "t1/jobs/j1", "", http.StatusUnauthorized},
		{"not JSON", http.MethodPost, "s3cret", "t1/jobs/j1", `{`, http.StatusBadRequest},
		{"bad job ID", http.MethodPost, "s3cret", "t1/jobs/a.b", `{}`, http.StatusBadRequest},
		{"too large", http.MethodPost, "s3cret", "t1/jobs/j1", `{"x":"` + strings.Repeat("a", 32<<10) + `"}`, http.StatusRequestEntityTooLarge},
		{"unknown job", http.MethodGet, "s3cret", "t1/jobs/j1", "", http.StatusNotFound},
		{"create", http.MethodPost, "s3cret", "t1/jobs/j1", `{"operation":"x"}`, http.StatusCreated},
		{"create again", http.MethodPost, "s3cret", "t1/jobs/j1", `{"operation":"x"}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		if code, body := call(tt.method, tt.token, tt.path, tt.body); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
	code, body := call(http.MethodGet, "s3cret", "t1/jobs/j1", "")
	var ex JobExecution
	if err := json.Unmarshal([]byte(body), &ex); code != http.StatusOK || err != nil {
		t.Fatalf("get: %d %s (%v)", code, body, err)
	}
	if ex.Status != JobQueued || ex.ThingName != "t1" || string(ex.JobDocument) != `{"operation":"x"}` {
		t.Errorf("execution %+v", ex)
	}
}
