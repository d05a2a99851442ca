package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud/devstack"
)

// TestDevSingleFileModuleInstall installs an Artifact `edgefort-dev
// deploy` builds with dev's own module through the real update machine
// (offline `update install`), as a machine without the stock module does.
func TestDevSingleFileModuleInstall(t *testing.T) {
	stateDir, modules, dest := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(filepath.Join(modules, "single-file"), devstack.SingleFileModule, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgText := strings.NewReplacer(
		"state_dir: /var/lib/edgefort", "state_dir: "+stateDir,
		"socket: /var/lib/edgefort/admin.sock", "socket: "+filepath.Join(stateDir, "admin.sock"),
		`device_type: ""`, "device_type: "+devstack.DeviceType,
		"modules_dir: /usr/share/mender/modules/v3", "modules_dir: "+modules,
		"scripts_dir: /etc/edgefort/scripts", "scripts_dir: "+filepath.Join(stateDir, "scripts"),
	).Replace(string(config.Example))
	cfgPath := writeFile(t, "edgefort.yaml", cfgText)
	file := writeFile(t, "tool.sh", "#!/bin/sh\necho tool\n")
	if err := os.Chmod(file, 0o750); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "tool.mender")
	if err := devstack.WriteSingleFileArtifact(art, file, dest, "tool-1", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := edgefort(t, "update", "install", "--config", cfgPath, "--commit", "--no-progress", art)
	if code != 0 {
		t.Fatalf("install: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	fi, err := os.Stat(filepath.Join(dest, "tool.sh"))
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("installed file: %v, %v; want mode 0750", fi, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "tool.sh")); string(got) != "#!/bin/sh\necho tool\n" {
		t.Errorf("installed content %q", got)
	}
}
