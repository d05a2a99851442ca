package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/internal/testkit"
)

// TestHangupReloadsClients: SIGHUP makes a running agent apply its file's
// clients section; a refused file is logged with FILE:LINE and the running
// virtual hosts stay.
func TestHangupReloadsClients(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "admin.sock")
	head := "version: 1\nstate_dir: " + dir + "\nmetrics: {enabled: false}\nadmin: {socket: " + socket + "}\nclients:\n  virtual_hosts:\n    - {name: hub, listen: '127.0.0.1:0'}\n"
	cfgPath := writeFile(t, "edgefort.yaml", head)
	agent := exec.Command(os.Args[0], "run", "--config", cfgPath)
	agent.Env = append(os.Environ(), "EDGEFORT_TEST_AS_MAIN=1")
	agentErr := &testkit.SyncBuffer{}
	agent.Stderr = agentErr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if agent.ProcessState == nil {
			agent.Process.Kill()
			agent.Wait()
		}
	})
	waitReady(t, socket, agent)
	client := adminclient.New(socket)
	hosts := func() map[string]string {
		st, err := client.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st.VirtualHosts
	}
	hub := hosts()["hub"]
	if err := os.WriteFile(cfgPath, []byte(head+"    - {name: hub, listen: '127.0.0.1:0'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := agent.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the refusal logged", func() bool { return strings.Contains(agentErr.String(), cfgPath+":8: clients.virtual_hosts[1].name") })
	if err := os.WriteFile(cfgPath, []byte(head+"    - {name: second, listen: '127.0.0.1:0'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := agent.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the second virtual host", func() bool { return hosts()["second"] != "" })
	if got := hosts()["hub"]; got != hub {
		t.Errorf("hub moved from %s to %s", hub, got)
	}
	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(agent, 15*time.Second); err != nil {
		t.Errorf("agent: %v; stderr:\n%s", err, agentErr)
	}
}
