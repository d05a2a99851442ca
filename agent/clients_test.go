package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/testkit"
)

// TestReloadClients: the file's clients section is applied to the running
// agent (through the admin API); an invalid one is refused with FILE:LINE
// and changes nothing.
func TestReloadClients(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edgefort.yaml")
	write := func(vhosts string) {
		text := fmt.Sprintf("version: 1\nstate_dir: %s\nmetrics: {listen: '127.0.0.1:0'}\nclients:\n  virtual_hosts:\n%s", dir, vhosts)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("    - {name: hub, listen: '127.0.0.1:0'}\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := runAgent(t, cfg, slog.New(slog.DiscardHandler))
	hub := a.Status().VirtualHosts["hub"]

	write("    - {name: hub, listen: '127.0.0.1:0'}\n    - {name: hub, listen: '127.0.0.1:0'}\n")
	err = a.ReloadClients()
	if err == nil || !strings.Contains(err.Error(), path+":7: clients.virtual_hosts[1].name") {
		t.Fatalf("ReloadClients(invalid) = %v, want the problem at %s:7", err, path)
	}
	write("    - {name: hub, listen: '127.0.0.1:0'}\n    - {name: second, listen: '127.0.0.1:0'}\n")
	if err := adminclient.New(cfg.Admin.Socket).ReloadClients(t.Context()); err != nil {
		t.Fatalf("reload through the admin API: %v", err)
	}
	got := a.Status().VirtualHosts
	if got["hub"] != hub || !strings.HasPrefix(got["second"], "http://127.0.0.1:") || strings.HasSuffix(got["second"], ":0") {
		t.Errorf("virtual hosts after reload %v; want hub kept at %s and second bound", got, hub)
	}
}

// askCloud answers as the control plane would: alice may read app a1,
// nobody else may; it counts the calls.
type askCloud struct{ calls atomic.Int32 }

func (c *askCloud) Authorize(_ context.Context, r api.AuthorizeRequest) (api.Decision, error) {
	c.calls.Add(1)
	return api.Decision{Allow: r.User.ID == "alice", Reason: "policy", TTLSeconds: 3600}, nil
}

// TestCloudAuthorizerNeverServesOneUserToAnother: the adapter over the
// control plane's decision cache answers alice's repeat from the cache,
// and bob's identical question is asked anew and denied.
func TestCloudAuthorizerNeverServesOneUserToAnother(t *testing.T) {
	cloud := &askCloud{}
	ca, err := cloudclient.NewAuthorizer(cloudclient.AuthorizerOptions{Client: cloud})
	if err != nil {
		t.Fatal(err)
	}
	authz := cloudAuthorizer{ca}
	ask := func(user string) clientapi.Decision {
		d, err := authz.Authorize(t.Context(), clientapi.AuthzRequest{UserID: user, Directory: "corp", Groups: []string{"sales"},
			Action: "app.read", Resource: clientapi.Resource{Type: "app", ID: "a1", Space: "sales"}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := ask("alice"); !d.Allow || d.Source != cloudclient.SourceCloud {
		t.Fatalf("alice: %+v, want allowed by the cloud", d)
	}
	if d := ask("alice"); !d.Allow || d.Source != cloudclient.SourceCache {
		t.Fatalf("alice again: %+v, want allowed from the cache", d)
	}
	if d := ask("bob"); d.Allow || d.Source != cloudclient.SourceCloud {
		t.Fatalf("bob: %+v, want denied by the cloud, not alice's cached allow", d)
	}
	if n := cloud.calls.Load(); n != 2 {
		t.Errorf("control plane asked %d times, want 2", n)
	}
}

// TestClientRoutesAskTheControlPlane: a request through a virtual host's
// route is authorized by the real control plane (devcloud's policy: alice
// is a viewer in sales) and reaches the backend with the identity; a
// resource outside her space is 403; a route that does not admit the
// anonymous identity is 401.
func TestClientRoutesAskTheControlPlane(t *testing.T) {
	r := newCloudRig(t)
	dir, _ := r.enroll(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprintf(w, "%s %s", req.Header.Get("X-Edgefort-User"), req.URL.Path)
	}))
	t.Cleanup(backend.Close)
	cfg := configIn(t, dir, cloudSection()+`clients:
  target_endpoints:
    - {name: engine, url: '`+backend.URL+`'}
  virtual_hosts:
    - name: hub
      listen: 127.0.0.1:0
      authentication:
        - anonymous: {user_id: alice, directory: corp}
      routes:
        - {name: apps, match: "GET /apps/{app}/", target: engine, action: app.read, anonymous: true, resource: {type: app, id: "{app}", space: sales}}
        - {name: hr, match: "GET /hr/", target: engine, action: app.read, anonymous: true, resource: {type: app, id: payroll, space: hr}}
        - {name: private, match: "GET /private/", target: engine, action: app.read, resource: {type: app, id: x, space: sales}}
`)
	a, _ := runAgent(t, cfg, slog.New(slog.DiscardHandler))
	testkit.WaitFor(t, "every component ready", a.Ready)
	base := a.Status().VirtualHosts["hub"]
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/apps/forecast/sheet", 200, "alice /apps/forecast/sheet"},
		{"/hr/", 403, `"reason":"denied"`},
		{"/private/", 401, `"reason":"anonymous_not_allowed"`},
	}
	for _, tt := range tests {
		resp, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("GET %s: %d %q, want %d with %q", tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
		}
	}
}
