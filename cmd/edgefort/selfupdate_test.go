package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/artifact"
)

// buildEdgefort builds this command with the given version and build
// tags into dir.
func buildEdgefort(t *testing.T, dir, version string, tags ...string) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(dir, "edgefort-"+version)
	args := []string{"build", "-o", out, "-ldflags", "-X github.com/edgefort/edgefort/agent.version=" + version}
	if len(tags) > 0 {
		args = append(args, "-tags", tags[0])
	}
	cmd := exec.Command(goBin, append(args, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", version, err, b)
	}
	return out
}

func agentArtifact(t *testing.T, name, binary string) []byte {
	t.Helper()
	p := artifact.ModuleImage("edgefort-agent", name, artifact.ImageDefaults{})
	p.Files = []artifact.Source{{Name: "edgefort", Open: func() (io.ReadCloser, error) { return os.Open(binary) }}}
	var buf bytes.Buffer
	spec := &artifact.Spec{Name: name, Depends: artifact.Depends{DeviceTypes: []string{updateDeviceType}}, Payloads: []artifact.PayloadSpec{p}, Compression: artifact.Zstd}
	if err := artifact.Write(&buf, spec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestSelfUpdate deploys new agent binaries through the built-in
// edgefort-agent installer: a healthy one is swapped in, re-executed in
// place (same PID) and committed; one that never gets ready within
// updates.health_timeout is rolled back to the previous binary, which runs
// again and reports the failure.
func TestSelfUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three agent binaries; not in -short")
	}
	build := t.TempDir()
	v1 := buildEdgefort(t, build, "1.0.0-test")
	v2 := buildEdgefort(t, build, "2.0.0-test")
	v3 := buildEdgefort(t, build, "3.0.0-unready", "edgefort_fault_unready")

	r := newUpdateRig(t, "  health_timeout: 3s\n")
	bin := installedAgent(t, v1)
	p := r.start(bin)
	ctx := context.Background()
	version := func() (string, int) {
		t.Helper()
		st, err := r.admin().Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Version, st.PID
	}
	if v, pid := version(); v != "1.0.0-test" || pid != p.pid {
		t.Fatalf("running %s pid %d, want 1.0.0-test pid %d", v, pid, p.pid)
	}

	// A healthy new version.
	dep := r.upload(agentArtifact(t, "agent-2", v2))
	if code, out, errOut := edgefort(t, "update", "check", "--config", r.cfgPath); code != 0 || out != "update check requested\n" {
		t.Fatalf("update check: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	final := r.waitFinal(dep, 60*time.Second)
	if final[len(final)-1] != "success" {
		t.Fatalf("statuses %q, want success", final)
	}
	if fileSum(t, bin) != fileSum(t, v2) {
		t.Error("the binary on disk is not version 2")
	}
	if _, err := os.Stat(bin + ".previous"); !os.IsNotExist(err) {
		t.Errorf("the previous binary is kept after the commit: %v", err)
	}
	waitVersion(t, r, "2.0.0-test", p.pid)

	// A new version that never becomes ready: rolled back.
	dep = r.upload(agentArtifact(t, "agent-3", v3))
	if _, err := r.admin().CheckUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	final = r.waitFinal(dep, 90*time.Second)
	if final[len(final)-1] != "failure" {
		t.Fatalf("statuses %q, want failure", final)
	}
	if fileSum(t, bin) != fileSum(t, v2) {
		t.Error("the binary on disk is not version 2 after the rollback")
	}
	waitVersion(t, r, "2.0.0-test", p.pid)
	us, err := r.admin().UpdateStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if us.ArtifactName != "agent-2" {
		t.Errorf("device reports %q, want agent-2", us.ArtifactName)
	}

	// A local install through the running agent's admin API (no server):
	// the agent restarts into the new binary, verifies it and commits.
	local := saveArtifact(t, agentArtifact(t, "agent-4", v1))
	code, out, errOut := edgefort(t, "update", "install", "--commit", "--no-progress", "--config", r.cfgPath, local)
	if code != 0 || !strings.Contains(out, "agent-4: the agent restarts to finish the update") {
		t.Fatalf("local install: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitVersion(t, r, "1.0.0-test", p.pid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		us, err := r.admin().UpdateStatus(ctx)
		if err == nil && us.InFlight == nil && us.ArtifactName == "agent-4" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("local self-update not committed: %+v, %v", us, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fileSum(t, bin) != fileSum(t, v1) {
		t.Error("the binary on disk is not the one installed locally")
	}

	if err := p.sig(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(15 * time.Second); err != nil {
		t.Errorf("agent did not stop cleanly: %v", err)
	}
}

// waitVersion waits until the agent answering on the socket runs version
// with the given PID (a self-update re-executes in place).
func waitVersion(t *testing.T, r *updateRig, version string, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		st, err := r.admin().Status(context.Background())
		if err == nil && st.Ready {
			last = st.Version
			if st.Version == version && st.PID == pid {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent runs %q, want %q with pid %d", last, version, pid)
}

// installedAgent copies the agent binary src to a fresh bin directory, as
// an installed agent that a self-update then replaces in place.
func installedAgent(t *testing.T, src string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin", "edgefort")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
