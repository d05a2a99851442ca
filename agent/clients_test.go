package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/api"
)

// TestReloadClients: the file's clients section is applied to the running
// agent; an invalid one is refused with FILE:LINE and changes nothing.
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
	if err := a.ReloadClients(); err != nil {
		t.Fatal(err)
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
