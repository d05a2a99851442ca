package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/internal/testkit"
)

// TestCommandsMeetAnotherAdminAPI: a command that meets an agent of
// another admin API version lacking its route exits 1 saying which side
// is older and what to do, not with a bare 404.
func TestCommandsMeetAnotherAdminAPI(t *testing.T) {
	healthz := func(mux *http.ServeMux) {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	}
	// An agent from before the versioned API: one POST /v1/keystore.
	older := http.NewServeMux()
	healthz(older)
	older.HandleFunc("POST /v1/keystore", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "{}") })
	// A newer agent whose API 2 moved every route.
	newerMux := http.NewServeMux()
	healthz(newerMux)
	newer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(adminapi.HeaderAPI, strconv.Itoa(adminapi.Version+1))
		w.Header().Set(adminapi.HeaderAgent, "9.0.0")
		newerMux.ServeHTTP(w, r)
	})

	// An agent of the API before this one: routes this build added are
	// missing (admin API 2 added the sessions and the clients reload).
	previousMux := http.NewServeMux()
	healthz(previousMux)
	previous := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(adminapi.HeaderAPI, strconv.Itoa(adminapi.Version-1))
		w.Header().Set(adminapi.HeaderAgent, "0.5.0")
		previousMux.ServeHTTP(w, r)
	})
	self := fmt.Sprintf("this edgefort (version %s) speaks admin API %d", agent.Version(), adminapi.Version)
	newerAPI := fmt.Sprintf("speaks admin API %d", adminapi.Version+1)
	tests := []struct {
		name  string
		agent http.Handler
		args  []string
		want  []string
	}{
		{"ref set, older agent", older, []string{"ref", "set", "hub-tls", "hub-2"},
			[]string{fmt.Sprintf("edgefort: admin API version mismatch: the running agent speaks an admin API older than version %d and has no PUT /v1/refs/hub-tls", adminapi.Version), self, "use the edgefort binary that came with the agent, or upgrade the agent"}},
		{"keystore list, newer agent", newer, []string{"keystore", "list"},
			[]string{"the running agent (version 9.0.0) " + newerAPI + " and has no GET /v1/stores", self, "use the edgefort binary that came with the agent\n"}},
		{"update status, newer agent", newer, []string{"update", "status"},
			[]string{newerAPI + " and has no GET /v1/update/status"}},
		{"cloud status, older agent", older, []string{"cloud", "status"},
			[]string{"has no GET /v1/cloud/status"}},
		{"sessions list, an agent of the API before sessions", previous, []string{"sessions", "list"},
			[]string{fmt.Sprintf("the running agent (version 0.5.0) speaks admin API %d and has no GET /v1/sessions", adminapi.Version-1), self, "upgrade the agent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := testkit.ServeUnix(t, tt.agent)
			code, _, errOut := edgefort(t, append(tt.args, "--socket", socket, "--config", filepath.Join(t.TempDir(), "none.yaml"))...)
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr %q", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
}
