package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/rootfs/rootfstest"
)

// killScript SIGKILLs the agent that runs it, once (the marker file makes
// the next run of the same script a no-op): a power cut at that point.
func killScript(marker string) []byte {
	return fmt.Appendf(nil, "#!/bin/sh\n[ -e '%s' ] && exit 0\ntouch '%s'\nkill -9 $PPID\n", marker, marker)
}

// runAgent runs the agent child on the device in dir; it returns the
// result, or nil when the agent was killed (a cut or the reboot command).
func runAgent(t *testing.T, dir, mode string, unhealthy bool) *deploy.Result {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRootfsAgentChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), agentDirEnv+"="+dir, agentModeEnv+"="+mode)
	if unhealthy {
		cmd.Env = append(cmd.Env, agentUnhealthyEnv+"=1")
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == -1 && strings.Contains(exit.String(), "killed") {
		return nil
	}
	if err != nil {
		t.Fatalf("the agent failed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, resultPrefix); ok {
			var res deploy.Result
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatal(err)
			}
			return &res
		}
	}
	t.Fatalf("the agent printed no result:\n%s", out)
	return nil
}

// TestRootfsKill9AtEachStep SIGKILLs the agent, a separate process, at
// each state script point of a rootfs-image update (a script that kills
// its parent), on the way to a commit and on the way back from a new
// system whose agent is not healthy; the device is then powered on again
// (the boot loader picks) and the next agent resumes, for as many boots as
// it takes. It must end on a partition that boots, that the boot loader
// keeps booting, and that matches what it reports.
func TestRootfsKill9AtEachStep(t *testing.T) {
	paths := []struct {
		unhealthy bool
		points    []string
	}{
		{false, []string{"Download_Enter", "Download_Leave", "ArtifactInstall_Enter", "ArtifactInstall_Leave",
			"ArtifactReboot_Enter", "ArtifactReboot_Leave", "ArtifactCommit_Enter", "ArtifactCommit_Leave"}},
		{true, []string{"ArtifactReboot_Error", "ArtifactRollback_Enter", "ArtifactRollback_Leave",
			"ArtifactRollbackReboot_Enter", "ArtifactRollbackReboot_Leave", "ArtifactFailure_Enter", "ArtifactFailure_Leave"}},
	}
	for _, path := range paths {
		for _, point := range path.points {
			name := point
			if path.unhealthy {
				name = "unhealthy/" + point
			}
			t.Run(name, func(t *testing.T) { kill9(t, point, path.unhealthy) })
		}
	}
}

func kill9(t *testing.T, point string, unhealthy bool) {
	dir := t.TempDir()
	dev, err := rootfstest.New(dir, bytes.Repeat([]byte{0xAA}, abPartSize), make([]byte, abPartSize))
	if err != nil {
		t.Fatal(err)
	}
	script := point + "_00_kill"
	kill := killScript(filepath.Join(dir, "killed"))
	spec := func(s *artifact.Spec) {}
	scriptsDir := filepath.Join(dir, "scripts")
	if err := os.MkdirAll(scriptsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scriptsDir, "version"), []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(point, "Download_") {
		if err := os.WriteFile(filepath.Join(scriptsDir, script), kill, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		spec = func(s *artifact.Spec) { s.Scripts = append(s.Scripts, artifact.Script{Name: script, Data: kill}) }
	}
	if err := os.WriteFile(filepath.Join(dir, "a.mender"), rootfsArtifactWith(t, newImage(), spec), 0o644); err != nil {
		t.Fatal(err)
	}

	res := runAgent(t, dir, "install", unhealthy)
	for boots := 0; res == nil; boots++ {
		if boots > 10 {
			t.Fatal("the device keeps rebooting")
		}
		if _, err := dev.Boot(t.Context()); err != nil {
			t.Fatal(err)
		}
		res = runAgent(t, dir, "resume", unhealthy)
	}
	running, err := dev.Running()
	if err != nil {
		t.Fatal(err)
	}
	env, err := dev.Env.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantPart, wantNum := dev.PartA, fmt.Sprint(rootfstest.NumA)
	switch {
	case res.Outcome == deploy.OutcomeSuccess && !unhealthy:
		wantPart, wantNum = dev.PartB, fmt.Sprint(rootfstest.NumB)
	case res.Outcome == deploy.OutcomeFailure && (res.RolledBack || point == "Download_Enter" || point == "Download_Leave"):
	default:
		t.Fatalf("ended with %+v", res)
	}
	if running != wantPart || env[bootenv.VarBootPart] != wantNum || env[bootenv.VarUpgradeAvailable] != "0" {
		t.Errorf("reported %s (rolled back %v), but the device runs %s with %v", res.Outcome, res.RolledBack, running, env)
	}
	if p, err := dev.Boot(t.Context()); err != nil || p != running {
		t.Errorf("the next boot picks %s (%v), not %s", p, err, running)
	}
	if _, err := os.Stat(filepath.Join(dir, "killed")); err != nil {
		t.Errorf("the agent was never killed at %s: %v", point, err)
	}
	t.Logf("killed at %s: ended %s, rolled back %v, running %s", point, res.Outcome, res.RolledBack, filepath.Base(running))
}
