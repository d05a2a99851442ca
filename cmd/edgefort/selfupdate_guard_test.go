package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/selfupdate"
)

// buildFaulty builds this command with -tags edgefort_fault_start and
// main.startFault set: "version" works (it passes the installer's
// preflight), "run" fails as fault says before any of the agent starts.
func buildFaulty(t *testing.T, dir, fault string) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(dir, "edgefort-"+fault)
	cmd := exec.Command(goBin, "build", "-o", out, "-tags", "edgefort_fault_start",
		"-ldflags", "-X github.com/edgefort/edgefort/agent.version=9.0.0-"+fault+" -X main.startFault="+fault, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", fault, err, b)
	}
	return out
}

// TestSelfUpdateStartFaults deploys new agent binaries that fail before
// the agent runs any of its own code that could roll it back: one exits 1,
// one dies of SIGSEGV, one hangs. The guard the old agent started from its
// own image before re-executing puts the previous binary back and starts
// it (no service manager here); the restarted old agent reports the
// deployment failed, with the guard's reason in the deployment log.
func TestSelfUpdateStartFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four agent binaries; not in -short")
	}
	// The guard leaves restarting to systemd when it sees it.
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("INVOCATION_ID", "")
	build := t.TempDir()
	v1 := buildEdgefort(t, build, "1.0.0-test")
	for _, tc := range []struct {
		fault  string
		exit   string // how the tried process ended, as os/exec says
		reason string // in the deployment log
	}{
		{"exit1", "exit status 1", "ended before it was ready"},
		{"segv", "signal: segmentation fault", "ended before it was ready"},
		{"hang", "signal: killed", "was not ready within 13s; killed"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			bad := buildFaulty(t, build, tc.fault)
			r := newUpdateRig(t, "  health_timeout: 3s\n")
			bin := installedAgent(t, v1)
			p := r.start(bin)
			ctx := context.Background()

			dep := r.upload(agentArtifact(t, "agent-"+tc.fault, bad))
			if _, err := r.admin().CheckUpdate(ctx); err != nil {
				t.Fatal(err)
			}
			// The process that re-executed into the bad binary ends.
			if err := p.wait(60 * time.Second); err == nil || err.Error() != tc.exit {
				t.Errorf("the tried process ended with %v, want %q", err, tc.exit)
			}
			final := r.waitFinal(dep, 90*time.Second)
			restarted := stopRestarted(t, r)
			if final[len(final)-1] != "failure" {
				t.Fatalf("statuses %q, want failure", final)
			}
			if restarted.Version != "1.0.0-test" || restarted.PID == p.pid {
				t.Errorf("running %s pid %d, want 1.0.0-test restarted under a new pid (old %d)", restarted.Version, restarted.PID, p.pid)
			}
			if fileSum(t, bin) != fileSum(t, v1) {
				t.Error("the binary on disk is not the previous one")
			}
			for _, left := range []string{bin + ".previous", selfupdate.TrialMarker(bin)} {
				if _, err := os.Stat(left); !os.IsNotExist(err) {
					t.Errorf("%s left behind: %v", left, err)
				}
			}
			var msgs []string
			for _, m := range r.srv.Logs(r.deviceID(), dep) {
				msgs = append(msgs, m.Message)
			}
			log := strings.Join(msgs, "\n")
			t.Logf("deployment log:\n%s", log)
			if !strings.Contains(log, "trial start: the new agent binary") || !strings.Contains(log, tc.reason) {
				t.Errorf("deployment log does not say why (want %q):\n%s", tc.reason, log)
			}
		})
	}
}

// restartedAgent is what stopRestarted saw.
type restartedAgent struct {
	Version string
	PID     int
}

// stopRestarted stops the agent the guard started (not this test's child)
// after noting its version and PID.
func stopRestarted(t *testing.T, r *updateRig) restartedAgent {
	t.Helper()
	st, err := r.admin().Status(context.Background())
	if err != nil {
		t.Fatalf("no agent answers after the rollback: %v", err)
	}
	got := restartedAgent{Version: st.Version, PID: st.PID}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for alive(st.PID) {
		if time.Now().After(deadline) {
			syscall.Kill(st.PID, syscall.SIGKILL)
			t.Fatalf("restarted agent %d did not stop", st.PID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return got
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
