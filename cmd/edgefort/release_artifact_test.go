package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/peertest"
)

// releaseBuild runs scripts/release.sh for this machine's architecture
// with the given version (the static binary and the agent's own Artifact
// for updateDeviceType, no packages) and returns the binary and the
// Artifact it wrote.
func releaseBuild(t *testing.T, version string) (binary, artifact string) {
	t.Helper()
	dist := t.TempDir()
	cmd := exec.Command("scripts/release.sh")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHS="+runtime.GOARCH, "PACKAGES=0",
		"VERSION="+version, "DEVICE_TYPES_"+runtime.GOARCH+"="+updateDeviceType)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh VERSION=%s: %v\n%s", version, err, out)
	}
	return filepath.Join(dist, "edgefort-linux-"+runtime.GOARCH),
		filepath.Join(dist, "edgefort-"+version+"-linux-"+runtime.GOARCH+".mender")
}

// TestReleaseArtifactSelfUpdate: the agent's own Mender Artifact as
// scripts/release.sh writes it (edgefort's writer, payload type
// edgefort-agent, the static release binary) passes Debian's
// mender-artifact validate, and deployed through devcloud's update server
// to an agent running the previous release it installs through the
// agent's own updater: the deployment reports success, the binary on disk
// is the new release's, and the agent runs it (same PID, re-executed in
// place), says so over the admin socket and in `edgefort version`, and
// reports the new artifact_name and version in its inventory.
func TestReleaseArtifactSelfUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scripts/release.sh twice (four agent builds); not in -short")
	}
	peertest.Require(t, "git")
	menderArtifact := peertest.Require(t, "mender-artifact")
	if err := exec.Command("git", "-C", filepath.Join("..", ".."), "rev-parse", "HEAD").Run(); err != nil {
		peertest.Skipf(t, "release.sh builds a commit, and this tree is no git checkout: %v", err)
	}
	const oldV, newV = "1.0.0", "1.0.1"
	oldBin, _ := releaseBuild(t, oldV)
	newBin, newArtifact := releaseBuild(t, newV)
	if out, err := exec.Command(menderArtifact, "validate", newArtifact).CombinedOutput(); err != nil {
		t.Fatalf("mender-artifact validate %s: %v\n%s", newArtifact, err, out)
	}

	r := newUpdateRig(t, "  health_timeout: 30s\n")
	bin := installedAgent(t, oldBin)
	p := r.start(bin)
	ctx := context.Background()
	if st, err := r.admin().Status(ctx); err != nil || st.Version != oldV {
		t.Fatalf("the agent runs %+v (%v), want version %s", st, err, oldV)
	}

	name, err := r.srv.UploadArtifactFile(newArtifact)
	if err != nil {
		t.Fatal(err)
	}
	if name != "edgefort-"+newV {
		t.Errorf("the release Artifact is named %q, want edgefort-%s", name, newV)
	}
	dep, err := r.srv.CreateDeployment(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin().CheckUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if final := r.waitFinal(dep, 90*time.Second); final[len(final)-1] != "success" {
		t.Fatalf("deployment statuses %q, want success", final)
	}
	if fileSum(t, bin) != fileSum(t, newBin) {
		t.Error("the binary on disk is not the new release's")
	}
	waitVersion(t, r, newV, p.pid)
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(out), "edgefort "+newV+"\n") {
		t.Errorf("%s version = %q, %v; want edgefort %s", bin, out, err, newV)
	}
	waitInventory(t, r, map[string]string{"artifact_name": name, "edgefort_version": newV})

	if err := p.sig(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(15 * time.Second); err != nil {
		t.Errorf("agent did not stop cleanly: %v", err)
	}
}

// waitInventory waits until the device's inventory on the server holds
// each of the given string attributes.
func waitInventory(t *testing.T, r *updateRig, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	got := map[string]string{}
	for time.Now().Before(deadline) {
		inv := r.srv.Inventory(r.deviceID())
		match := true
		for k, v := range want {
			var s string
			if a, ok := inv[k]; ok && json.Unmarshal(a.Value, &s) == nil {
				got[k] = s
			}
			match = match && got[k] == v
		}
		if match {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("inventory %q, want %q", got, want)
}
