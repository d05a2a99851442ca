package adminclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// TestVersionMismatch: a client that meets an agent lacking a route says
// which side is older and what to do, naming both admin API versions,
// instead of printing a bare 404; against an agent of its own version a
// 404 stays what the agent said.
func TestVersionMismatch(t *testing.T) {
	older, newer := olderAgent(), newerAgent()

	same := sameAgent(t)

	tests := []struct {
		name        string
		agent       http.Handler
		call        func(c *Client) error
		wantVersion bool   // errors.Is ErrVersion
		want        string // the error, or "" for none
	}{
		{
			name:  "an older agent lacks the route",
			agent: older,
			call: func(c *Client) error {
				_, err := c.SetRef(context.Background(), "ref://hub-tls", "hub-2")
				return err
			},
			wantVersion: true,
			want:        fmt.Sprintf("admin API version mismatch: the running agent speaks an admin API older than version %d and has no PUT /v1/refs/hub-tls; this edgefort (version 1.0.0) speaks admin API %[1]d: use the edgefort binary that came with the agent, or upgrade the agent", adminapi.Version),
		},
		{
			name:  "a newer agent lacks the route",
			agent: newer,
			call: func(c *Client) error {
				_, err := c.DeleteStore(context.Background(), "hub-1", keystore.KindKeystore)
				return err
			},
			wantVersion: true,
			want:        fmt.Sprintf("admin API version mismatch: the running agent (version 2.0.0) speaks admin API %d and has no DELETE /v1/stores/hub-1; this edgefort (version 1.0.0) speaks admin API %d: use the edgefort binary that came with the agent", adminapi.Version+1, adminapi.Version),
		},
		{
			name:  "a newer agent that still has the route answers",
			agent: newer,
			call: func(c *Client) error {
				_, err := c.Status(context.Background())
				return err
			},
		},
		{
			name:  "this version's agent: a 404 of the operation is the agent's own words",
			agent: same,
			call: func(c *Client) error {
				_, err := c.SetRef(context.Background(), "hub-tls", "nope")
				return err
			},
			want: `store "nope": not found`,
		},
		{
			name:  "this version's agent without the route: a plain 404",
			agent: same,
			call: func(c *Client) error {
				_, err := get[adminapi.Status](context.Background(), c, "/v1/nope")
				return err
			},
			want: "admin: GET /v1/nope: 404 Not Found: 404 page not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(testkit.ServeUnix(t, tt.agent))
			c.Version = "1.0.0"
			err := tt.call(c)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want && !(tt.want != "" && strings.Contains(got, tt.want)) {
				t.Errorf("error %q, want %q", got, tt.want)
			}
			if errors.Is(err, ErrVersion) != tt.wantVersion {
				t.Errorf("errors.Is(%v, ErrVersion) = %v, want %v", err, !tt.wantVersion, tt.wantVersion)
			}
		})
	}
}

// olderAgent is an agent from before the versioned API: one POST
// /v1/keystore, no version header.
func olderAgent() http.Handler {
	older := http.NewServeMux()
	older.HandleFunc("POST /v1/keystore", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "{}") })
	older.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"version": "0.9.0"}`) })
	return older
}

// newerAgent is an agent of the next admin API, which dropped every route
// but GET /v1/status.
func newerAgent() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(adminapi.HeaderAPI, strconv.Itoa(adminapi.Version+1))
		w.Header().Set(adminapi.HeaderAgent, "2.0.0")
		if r.URL.Path == "/v1/status" {
			fmt.Fprintln(w, `{"version": "2.0.0", "ready": true}`)
			return
		}
		http.NotFound(w, r)
	})
}

// sameAgent is this build's routes on real keystores.
func sameAgent(t *testing.T) http.Handler {
	stores, err := keystore.Open(keystore.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return (&adminapi.Server{AgentVersion: "1.0.0", Keystores: &adminapi.LocalKeystores{Stores: stores}}).Handler()
}
