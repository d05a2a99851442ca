package authapi

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/testkit"
)

func sessionSolution(t testing.TB, r *rig, vhost string) *SessionModuleSolution {
	t.Helper()
	s, err := r.api.SessionModuleSolution(SessionModuleConfig{Cookie: "portal_session"}, vhost)
	must(t, err)
	return s
}

func withCookie(tok string) *http.Request {
	req := browse("https://hub.example/apps")
	req.AddCookie(&http.Cookie{Name: "portal_session", Value: tok})
	return req
}

// register registers a session for alice through the API.
func (r *rig) register(t testing.TB, id, vhost string) SessionResponse {
	t.Helper()
	var resp SessionResponse
	req := SessionRequest{UserRequest: UserRequest{UserID: "alice", UserDirectory: "corp", Groups: []string{"sales"}, VirtualHost: vhost}, SessionID: id}
	if code := r.call(t, r.client, "POST", "/v1/sessions", req, &resp); code != http.StatusCreated {
		t.Fatalf("POST /v1/sessions: status %d, want 201", code)
	}
	return resp
}

// TestSessionModule: a portal registers, validates and deletes session
// tokens over mTLS; the node accepts them from the cookie until they are
// deleted or time out.
func TestSessionModule(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Sessions.IdleTimeout = time.Minute; c.Sessions.AbsoluteTimeout = 3 * time.Minute })
	sol := sessionSolution(t, r, "hub")

	s := r.register(t, "", "")
	if len(s.SessionID) < 22 {
		t.Fatalf("generated session id of %d characters, want at least 22", len(s.SessionID))
	}
	got := sol.Authenticate(withCookie(s.SessionID))
	want := auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: "alice", Directory: "corp", Groups: []string{"sales"},
		Solution: "session_module", Expires: r.clock.now().Add(time.Minute)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("authenticate (-want +got):\n%s", diff)
	}
	var v SessionResponse
	if code := r.call(t, r.client, "GET", "/v1/sessions/"+s.SessionID, nil, &v); code != http.StatusOK || v.UserID != "alice" || v.SessionID != "" {
		t.Errorf("GET: status %d, %+v; want 200 for alice without the id", code, v)
	}

	// Use keeps it alive past the idle timeout, up to the absolute one.
	for range 4 {
		r.clock.add(50 * time.Second)
		res := sol.Authenticate(withCookie(s.SessionID))
		if elapsed := r.clock.now().Sub(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)); elapsed < 3*time.Minute {
			if res.Outcome != auth.Authenticated {
				t.Fatalf("after %s in use: %v %q, want authenticated", elapsed, res.Outcome, res.Reason)
			}
		} else if res.Outcome != auth.Refused || res.Reason != "session_expired" {
			t.Fatalf("after %s (absolute timeout 3m): %v %q, want refused session_expired", elapsed, res.Outcome, res.Reason)
		}
	}

	idle := r.register(t, "portal-chosen-id-0123456789abcdef", "")
	r.clock.add(time.Minute)
	if res := sol.Authenticate(withCookie(idle.SessionID)); res.Outcome != auth.Refused || res.Reason != "session_expired" {
		t.Errorf("idle for 1m: %v %q, want refused session_expired", res.Outcome, res.Reason)
	}

	del := r.register(t, "", "")
	if code := r.call(t, r.client, "DELETE", "/v1/sessions/"+del.SessionID, nil, nil); code != http.StatusNoContent {
		t.Errorf("DELETE: status %d, want 204", code)
	}
	if res := sol.Authenticate(withCookie(del.SessionID)); res.Outcome != auth.Refused || res.Reason != "session_unknown" {
		t.Errorf("after DELETE: %v %q, want refused session_unknown", res.Outcome, res.Reason)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if code := r.call(t, r.client, m, "/v1/sessions/"+del.SessionID, nil, nil); code != http.StatusNotFound {
			t.Errorf("%s after DELETE: status %d, want 404", m, code)
		}
	}

	other := r.register(t, "", "other")
	if res := sol.Authenticate(withCookie(other.SessionID)); res.Outcome != auth.Refused || res.Reason != reasonWrongVirtualHost {
		t.Errorf("session of another virtual host: %v %q, want refused %s", res.Outcome, res.Reason, reasonWrongVirtualHost)
	}
	for name, c := range map[string]struct {
		req  *http.Request
		want auth.Outcome
	}{
		"no cookie": {browse("https://hub.example/"), auth.NoCredentials},
		"guessed":   {withCookie(strings.Repeat("A", 43)), auth.Refused},
		"short":     {withCookie("abc"), auth.Refused},
	} {
		if res := sol.Authenticate(c.req); res.Outcome != c.want {
			t.Errorf("%s: %v %q, want %v", name, res.Outcome, res.Reason, c.want)
		}
	}
}

// TestSessionRegistration: the portal's own ids must be long enough and
// not taken.
func TestSessionRegistration(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Sessions.Max = 2 })
	r.register(t, "portal-chosen-id-0123456789abcdef", "")
	cases := []struct {
		name string
		id   string
		want int
	}{
		{"taken", "portal-chosen-id-0123456789abcdef", http.StatusConflict},
		{"short", "0123456789", http.StatusBadRequest},
		{"semicolon", "0123456789012345678901;x", http.StatusBadRequest},
		{"fine", "another-portal-id-0123456789abcdef", http.StatusCreated},
		{"full", "", http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		req := SessionRequest{UserRequest: UserRequest{UserID: "alice", UserDirectory: "corp"}, SessionID: c.id}
		if code := r.call(t, r.client, "POST", "/v1/sessions", req, nil); code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, code, c.want)
		}
	}
}

// TestSessionsSurviveRestart: with a state store, registered sessions and
// their last use outlive the API (the agent's restart); a deleted one
// stays deleted, and one that went idle meanwhile is purged. Only hashes
// are written.
func TestSessionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	r := newRigWith(t, func(c *Config) { c.Sessions.IdleTimeout = time.Minute }, db)
	sol := sessionSolution(t, r, "hub")
	kept, deleted, idle := r.register(t, "", ""), r.register(t, "", ""), r.register(t, "", "")
	r.clock.add(40 * time.Second)
	if res := sol.Authenticate(withCookie(kept.SessionID)); res.Outcome != auth.Authenticated {
		t.Fatalf("before the restart: %v %q", res.Outcome, res.Reason)
	}
	if code := r.call(t, r.client, "DELETE", "/v1/sessions/"+deleted.SessionID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	r.stop()
	r.clock.add(30 * time.Second) // idle has been unused 70s, kept 30s

	r.start(t)
	sol = sessionSolution(t, r, "hub")
	for _, c := range []struct {
		name, id, reason string
	}{
		{"kept", kept.SessionID, ""},
		{"deleted", deleted.SessionID, "session_unknown"},
		{"idle", idle.SessionID, "session_unknown"},
	} {
		res := sol.Authenticate(withCookie(c.id))
		if c.reason == "" && res.Outcome != auth.Authenticated || c.reason != "" && (res.Outcome != auth.Refused || res.Reason != c.reason) {
			t.Errorf("%s after the restart: %v %q, want %q", c.name, res.Outcome, res.Reason, c.reason)
		}
	}
	keys, err := db.Bucket(sessionsBucket).Keys()
	must(t, err)
	if len(keys) != 1 {
		t.Errorf("state store holds %d sessions, want 1 (kept)", len(keys))
	}
	raw, err := os.ReadFile(filepath.Join(dir, "state.db"))
	must(t, err)
	for _, s := range []SessionResponse{kept, deleted, idle} {
		if bytes.Contains(raw, []byte(s.SessionID)) {
			t.Errorf("the state store holds a session id in clear")
		}
	}
}

// TestUnreadableStoredSessions: a damaged session record costs its user a
// sign-in, not the API its start.
func TestUnreadableStoredSessions(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	must(t, db.Bucket(sessionsBucket).Put("not-a-hash", "x"))
	must(t, db.Bucket(sessionsBucket).Put(strings.Repeat("ab", 32), []int{1}))
	r := newRigWith(t, nil, db)
	keys, err := db.Bucket(sessionsBucket).Keys()
	must(t, err)
	if len(keys) != 0 {
		t.Errorf("state store keeps %v, want the unreadable records deleted", keys)
	}
	if !strings.Contains(r.logs.String(), `"count":2`) {
		t.Errorf("no warning counting 2 unreadable sessions:\n%s", r.logs)
	}
	r.register(t, "", "")
}
