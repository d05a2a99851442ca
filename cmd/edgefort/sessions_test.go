package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/edgefort/edgefort/internal/testkit"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/keystore"
)

// ticketRig is what a ticket login on the agent needs: a CA whose
// certificates the auth API serves and trusts, and the module's client
// certificate.
type ticketRig struct {
	roots  *x509.CertPool
	module tls.Certificate
}

// newTicketRig puts the auth API's keystore "api" (a certificate for
// 127.0.0.1) and truststore "modules" (the CA) in the state directory,
// and makes the module's certificate (CN auth-module) from the same CA.
func newTicketRig(t *testing.T, stateDir string) *ticketRig {
	t.Helper()
	m, err := keystore.Open(keystore.Options{Dir: filepath.Join(stateDir, "keystores"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := devcloud.NewCA("auth modules test CA")
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.Issue("auth-api", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mkey, mcert, err := ca.Issue("auth-module", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		m.CreateStore("api", keystore.KindKeystore),
		m.PutEntry("api", "tls", key, []*x509.Certificate{cert}),
		m.CreateStore("modules", keystore.KindTruststore),
		m.PutTrusted("modules", "ca", []*x509.Certificate{ca.Cert}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &ticketRig{roots: pool, module: tls.Certificate{Certificate: [][]byte{mcert.Raw}, PrivateKey: mkey}}
}

// ticket asks the agent's auth API for a ticket for user, over mutual TLS
// with the module's certificate.
func (r *ticketRig) ticket(t *testing.T, authAPI, user string) string {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.roots, Certificates: []tls.Certificate{r.module}}}}
	body, _ := json.Marshal(authapi.TicketRequest{UserRequest: authapi.UserRequest{UserID: user, UserDirectory: "corp"}})
	resp, err := c.Post(authAPI+"/v1/tickets", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tk authapi.TicketResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&tk); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/tickets for %s: %d %v", user, resp.StatusCode, err)
	}
	return tk.Ticket
}

// redeem presents the ticket on hub as a browser would and returns the
// status and the session cookie's value ("" without one).
func redeem(t *testing.T, hub, ticket string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(hub + "/apps/report?qlikTicket=" + ticket)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == session.DefaultCookiePrefix+"hub" {
			return resp.StatusCode, ck.Value
		}
	}
	return resp.StatusCode, ""
}

// startAgent runs the agent as a child process until ready and returns
// it with its stderr and its status (the hub's and the auth API's URLs).
func startAgent(t *testing.T, cfgPath, socket string) (*exec.Cmd, *testkit.SyncBuffer, *adminapi.Status) {
	t.Helper()
	agent := exec.Command(os.Args[0], "run", "--config", cfgPath)
	agent.Env = append(os.Environ(), "EDGEFORT_TEST_AS_MAIN=1")
	logs := &testkit.SyncBuffer{}
	agent.Stderr = logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent stderr:\n%s", logs)
		}
		if agent.ProcessState == nil {
			agent.Process.Kill()
			agent.Wait()
		}
	})
	return agent, logs, waitReady(t, socket, agent)
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

// appAs requests an app on hub with the session cookie token and returns
// the status and the body (the user the backend was sent, when 200).
func appAs(t *testing.T, hub, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", hub+"/apps/report", nil)
	req.Header.Set("Cookie", session.DefaultCookiePrefix+"hub="+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body)
}

// TestSessionsSurviveKill9 runs the real agent: alice and bob sign in
// through ticket logins (a module asks the auth API over mutual TLS, the
// browser presents the ticket once and gets a session cookie); their
// sessions sign them in after the process is killed with SIGKILL and
// started again; `edgefort sessions revoke` through the running agent
// takes effect on the next request, and list and revoke work offline too.
// No ticket or session token reaches the agent's log.
func TestSessionsSurviveKill9(t *testing.T) {
	// Routes are authorized by the control plane: a devcloud one in this
	// process, which the node enrolls with.
	r := newCloudRig(t)
	if code, out, errOut := edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token", r.cp.NewEnrollmentToken(), "--ca-file", r.caFile); code != 0 {
		t.Fatalf("enroll: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	dir, socket := r.state, r.socket
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprint(w, req.Header.Get("X-Edgefort-User"))
	}))
	t.Cleanup(backend.Close)
	base, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeFile(t, "edgefort.yaml", string(base)+`clients:
  auth_api:
    listen: 127.0.0.1:0
    ssl: {client_auth_enabled: true, keystore: api, key_alias: tls, truststore: modules}
    allowed_common_names: [auth-module]
  target_endpoints:
    - {name: app, url: '`+backend.URL+`'}
  virtual_hosts:
    - name: hub
      listen: '127.0.0.1:0'
      authentication:
        - session: {}
        - ticket: {}
      routes:
        - {name: apps, match: "GET /apps/{app}", target: app, action: app.read, resource: {type: app, id: "{app}", space: sales}}
`)
	rig := newTicketRig(t, dir)

	agent, logs, st := startAgent(t, cfgPath, socket)
	hub := st.VirtualHosts["hub"]
	tokens, tickets := map[string]string{}, []string{}
	for _, u := range []string{"alice", "bob"} {
		tk := rig.ticket(t, st.AuthAPI, u)
		tickets = append(tickets, tk)
		code, tok := redeem(t, hub, tk)
		if code != http.StatusSeeOther || tok == "" {
			t.Fatalf("%s's ticket: %d, cookie %t; want 303 with the session cookie", u, code, tok != "")
		}
		tokens[u] = tok
	}
	if code, tok := redeem(t, hub, tickets[0]); code != http.StatusUnauthorized || tok != "" {
		t.Errorf("alice's ticket again: %d, cookie %t; want 401 and none", code, tok != "")
	}
	if code, user := sessionUser(t, hub, tokens["alice"]); code != 200 || user != "alice" {
		t.Fatalf("before the kill: %d %q, want 200 alice", code, user)
	}
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()

	agent, logs2, st := startAgent(t, cfgPath, socket)
	hub = st.VirtualHosts["hub"]
	for _, u := range []string{"alice", "bob"} {
		if code, user := sessionUser(t, hub, tokens[u]); code != 200 || user != u {
			t.Errorf("%s after kill -9 and restart: %d %q, want 200", u, code, user)
		}
		if code, body := appAs(t, hub, tokens[u]); code != 200 || body != u {
			t.Errorf("%s's app request after the restart: %d %q, want 200 and the backend seeing %s", u, code, body, u)
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
	if code, body := appAs(t, hub, tokens["bob"]); code != http.StatusUnauthorized {
		t.Errorf("bob's app request after revocation: %d %q, want 401", code, body)
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
		for _, tok := range append(tickets, tokens["alice"], tokens["bob"]) {
			if strings.Contains(l, tok) {
				t.Errorf("the agent logged a ticket or session token")
			}
		}
	}
}
