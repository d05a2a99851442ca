package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/store"
)

// seedSessions opens sessions on hub in the state directory, as logins
// would have, and returns their tokens by user.
func seedSessions(t *testing.T, dir string, users ...string) map[string]string {
	t.Helper()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := session.Open(db, session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range users {
		tok, _, err := st.Create("hub", auth.Identity{UserID: u, Directory: "corp", Solution: "ticket"},
			session.Limits{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 8 * time.Hour, MaxPerUser: 10})
		if err != nil {
			t.Fatal(err)
		}
		out[u] = tok
	}
	return out
}

// startAgent runs the agent as a child process until ready and returns
// it with its stderr and the hub virtual host's URL.
func startAgent(t *testing.T, cfgPath, socket string) (*exec.Cmd, *lockedBuffer, string) {
	t.Helper()
	agent := exec.Command(os.Args[0], "run", "--config", cfgPath)
	agent.Env = append(os.Environ(), "EDGEFORT_TEST_AS_MAIN=1")
	logs := &lockedBuffer{}
	agent.Stderr = logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if agent.ProcessState == nil {
			agent.Process.Kill()
			agent.Wait()
		}
	})
	st := waitReady(t, socket, agent)
	return agent, logs, st.VirtualHosts["hub"]
}

// sessionUser is the user GET /.edgefort/session answers for the cookie,
// or "" with the status code.
func sessionUser(t *testing.T, base, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/.edgefort/session", nil)
	req.Header.Set("Cookie", session.DefaultCookiePrefix+"hub="+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != 200 {
		return resp.StatusCode, ""
	}
	_, after, _ := strings.Cut(string(body), `"user_id":"`)
	user, _, _ := strings.Cut(after, `"`)
	return resp.StatusCode, user
}

// TestSessionsSurviveKill9 runs the real agent: sessions in the state
// store sign their users in after the process is killed with SIGKILL and
// started again; `edgefort sessions revoke` through the running agent
// takes effect on the next request, and list and revoke work offline too.
// No token reaches the agent's log.
func TestSessionsSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "admin.sock")
	cfgPath := writeFile(t, "edgefort.yaml", "version: 1\nstate_dir: "+dir+"\nmetrics: {enabled: false}\nadmin: {socket: "+socket+"}\n"+
		"clients:\n  virtual_hosts:\n    - name: hub\n      listen: '127.0.0.1:0'\n      authentication:\n        - session: {}\n")
	tokens := seedSessions(t, dir, "alice", "bob")

	agent, logs, hub := startAgent(t, cfgPath, socket)
	if code, user := sessionUser(t, hub, tokens["alice"]); code != 200 || user != "alice" {
		t.Fatalf("before the kill: %d %q, want 200 alice", code, user)
	}
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()

	agent, logs2, hub := startAgent(t, cfgPath, socket)
	for _, u := range []string{"alice", "bob"} {
		if code, user := sessionUser(t, hub, tokens[u]); code != 200 || user != u {
			t.Errorf("%s after kill -9 and restart: %d %q, want 200", u, code, user)
		}
	}
	if code, out, errOut := edgefort(t, "sessions", "list", "--config", cfgPath); code != 0 || !strings.Contains(out, "corp/alice") || !strings.Contains(out, "corp/bob") {
		t.Errorf("sessions list through the agent: exit %d %q %s", code, out, errOut)
	}
	if code, out, errOut := edgefort(t, "sessions", "revoke", "--config", cfgPath, "--user", "corp/bob"); code != 0 || !strings.Contains(out, "revoked session") {
		t.Errorf("sessions revoke --user: exit %d %q %s", code, out, errOut)
	}
	if code, _ := sessionUser(t, hub, tokens["bob"]); code != http.StatusUnauthorized {
		t.Errorf("bob after revocation: %d, want 401", code)
	}
	if code, _ := sessionUser(t, hub, tokens["alice"]); code != 200 {
		t.Errorf("alice after bob's revocation: %d, want 200", code)
	}
	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(agent, 15*time.Second); err != nil {
		t.Errorf("agent: %v; stderr:\n%s", err, logs2)
	}

	// Offline: no agent holds the state directory.
	code, out, errOut := edgefort(t, "sessions", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "corp/alice") || strings.Contains(out, "corp/bob") {
		t.Fatalf("sessions list offline: exit %d %q %s", code, out, errOut)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if code, out, errOut := edgefort(t, "sessions", "revoke", "--config", cfgPath, id); code != 0 || !strings.Contains(out, "revoked session "+id) {
		t.Errorf("sessions revoke %s offline: exit %d %q %s", id, code, out, errOut)
	}
	if code, _, errOut := edgefort(t, "sessions", "revoke", "--config", cfgPath, id); code != 1 || !strings.Contains(errOut, "no such session") {
		t.Errorf("revoking it again: exit %d %s, want 1 and no such session", code, errOut)
	}
	for _, l := range []string{logs.String(), logs2.String()} {
		for _, tok := range tokens {
			if strings.Contains(l, tok) {
				t.Errorf("the agent logged a session token")
			}
		}
	}
}
