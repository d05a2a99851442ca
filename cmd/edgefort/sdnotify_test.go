package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
)

// TestRunNotifiesSystemd runs the agent as systemd runs packaging's unit
// (Type=notify, WatchdogSec=): $NOTIFY_SOCKET names a unix datagram socket
// this test listens on, speaking sd_notify's protocol as systemd does. The
// agent must say READY=1 only once every component is ready, describe
// itself in STATUS=, ping WATCHDOG=1 within the interval, and say
// STOPPING=1 on SIGTERM.
func TestRunNotifiesSystemd(t *testing.T) {
	// A unix socket path is at most 107 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "edgefort-notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	notifyPath := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	stateDir := filepath.Join(dir, "state")
	socket := filepath.Join(stateDir, "admin.sock")
	cfgPath := writeFile(t, "edgefort.yaml", strings.NewReplacer(
		"state_dir: /var/lib/edgefort", "state_dir: "+stateDir,
		"socket: /var/lib/edgefort/admin.sock", "socket: "+socket,
		"listen: 127.0.0.1:9273", "listen: 127.0.0.1:0",
	).Replace(string(config.Example)))

	// 200 ms: WATCHDOG=1 is due every 100 ms, so several arrive quickly.
	t.Setenv("NOTIFY_SOCKET", notifyPath)
	t.Setenv("WATCHDOG_USEC", "200000")
	agent, stderr := startEdgefort(t, "run", "--config", cfgPath)
	t.Setenv("NOTIFY_SOCKET", "") // this process itself is no service

	next := func(want string) []string {
		t.Helper()
		buf := make([]byte, 4096)
		var seen []string
		for {
			ln.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := ln.Read(buf)
			if err != nil {
				t.Fatalf("no %s from the agent (%v); received %q; stderr:\n%s", want, err, seen, stderr)
			}
			lines := strings.Split(string(buf[:n]), "\n")
			seen = append(seen, lines...)
			for _, l := range lines {
				if l == want || strings.HasPrefix(want, "STATUS=") && strings.HasPrefix(l, want) {
					return seen
				}
			}
		}
	}

	seen := next("READY=1")
	st, err := adminclient.New(socket).Status(context.Background())
	if err != nil || !st.Ready {
		t.Fatalf("after READY=1 the agent's own status says ready=%v (err %v)", st != nil && st.Ready, err)
	}
	wantStatus := "STATUS=3/3 components running" // admin, metrics, keystore
	if !slices.Contains(seen, wantStatus) {
		t.Errorf("before READY=1 the agent sent %q; want the line %q", seen, wantStatus)
	}
	if !strings.HasPrefix(seen[0], "STATUS=") {
		t.Errorf("first notification %q; want a STATUS= line before READY=1", seen[0])
	}
	for range 3 {
		next("WATCHDOG=1")
	}

	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1")
	if err := waitExit(agent, 15*time.Second); err != nil {
		t.Errorf("after SIGTERM: %v; stderr:\n%s", err, stderr)
	}
}
