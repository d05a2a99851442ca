package agent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/agent/config"
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
