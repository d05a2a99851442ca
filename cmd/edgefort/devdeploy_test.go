package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/keystore"
)

// TestDevDeployProcess runs `edgefort dev` as a real process and deploys
// files to it over the update channel, as the banner suggests: one that
// installs (exit 0, the file in place, update status names the Artifact),
// the same Artifact name again (already-installed), and one whose
// destination cannot be made (failure, with the module's reason).
func TestDevDeployProcess(t *testing.T) {
	stateDir := t.TempDir()
	dev, devErr := startEdgefort(t, "dev", "--state-dir", stateDir)
	waitReady(t, filepath.Join(stateDir, "admin.sock"), dev)
	cfgPath := filepath.Join(stateDir, devConfigFile)
	info := filepath.Join(stateDir, devCloudDir, devMenderFile)
	if fi, err := os.Stat(info); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want a 0600 file", info, err, fi)
	}

	file := filepath.Join(t.TempDir(), "greeting.txt")
	if err := os.WriteFile(file, []byte("hello from dev deploy\n"), 0o640); err != nil {
		t.Fatal(err)
	}

	t.Run("installs", func(t *testing.T) {
		code, out, errOut := edgefort(t, "dev", "deploy", "--config", cfgPath, "--name", "greeting-1", file)
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{"  downloading\n", "  success\n", "greeting-1: installed"} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		got, err := os.ReadFile(filepath.Join(stateDir, devDeployedDir, "greeting.txt"))
		if err != nil || string(got) != "hello from dev deploy\n" {
			t.Errorf("deployed file: %q, %v", got, err)
		}
		code, out, _ = edgefort(t, "update", "status", "--config", cfgPath)
		if code != 0 || !strings.Contains(out, "artifact:   greeting-1\n") {
			t.Errorf("update status: exit %d:\n%s", code, out)
		}
	})

	t.Run("same name again", func(t *testing.T) {
		code, out, errOut := edgefort(t, "dev", "deploy", "--config", cfgPath, "--name", "greeting-1", file)
		if code != 1 || !strings.Contains(out, "  already-installed\n") || !strings.Contains(errOut, "ended already-installed") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("destination cannot be written", func(t *testing.T) {
		blocker := filepath.Join(t.TempDir(), "regular-file")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := edgefort(t, "dev", "deploy", "--config", cfgPath, "--dest", filepath.Join(blocker, "sub"), file)
		if code != 1 || !strings.Contains(out, "  failure\n") {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{"ended failure", "ArtifactInstall", "regular-file"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q: %s", want, errOut)
			}
		}
		code, out, _ = edgefort(t, "update", "status", "--config", cfgPath)
		if code != 0 || !strings.Contains(out, "artifact:   greeting-1\n") {
			t.Errorf("after a failed deployment, update status: exit %d:\n%s", code, out)
		}
	})

	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(dev, 15*time.Second); err != nil {
		t.Errorf("after SIGINT: %v; stderr:\n%s", err, devErr)
	}
	if _, err := os.Stat(info); err == nil {
		t.Errorf("%s outlived the update server", info)
	}
	code, _, errOut := edgefort(t, "dev", "deploy", "--config", cfgPath, file)
	if code != 1 || !strings.Contains(errOut, "edgefort dev is not running") {
		t.Errorf("deploy with dev stopped: exit %d, stderr %q", code, errOut)
	}
}

func TestDevDeployUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"dev", "deploy"}, "want 1 argument(s) FILE, got 0"},
		{[]string{"dev", "deploy", "--artifact", "a.mender", "file"}, "--artifact takes no FILE"},
		{[]string{"dev", "bogus"}, `edgefort: dev: unknown command "bogus"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := edgefort(t, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
		})
	}
	code, out, _ := edgefort(t, "dev", "--help")
	if code != 0 || !strings.Contains(out, "Usage: edgefort dev [flags] [COMMAND]") || !strings.Contains(out, "deploy") {
		t.Errorf("dev --help: exit %d:\n%s", code, out)
	}
	code, _, errOut := edgefort(t, "dev", "deploy", "--config", filepath.Join(t.TempDir(), "none.yaml"), "x")
	if code != 1 || !strings.Contains(errOut, "no configuration at") {
		t.Errorf("no config: exit %d, stderr %q", code, errOut)
	}
}

// TestPrepareDevStateUpgrades checks that a state directory prepared
// before the update channel (no device keystore) gets one, with the same
// CA.
func TestPrepareDevStateUpgrades(t *testing.T) {
	dir := t.TempDir()
	if err := prepareDevState(dir); err != nil {
		t.Fatal(err)
	}
	caCert := filepath.Join(dir, devCADir, "ca.crt")
	before, err := os.ReadFile(caCert)
	if err != nil {
		t.Fatal(err)
	}
	withStores(t, dir, func(ks *keystore.Manager) {
		if err := ks.DeleteStore(devDeviceStore); err != nil {
			t.Fatal(err)
		}
	})
	if err := prepareDevState(dir); err != nil {
		t.Fatalf("second prepare: %v", err)
	}
	withStores(t, dir, func(ks *keystore.Manager) {
		st, err := ks.Resolve(devDeviceStore, keystore.KindKeystore)
		if err != nil {
			t.Fatal(err)
		}
		e := st.Entries[devDeviceAlias]
		if len(st.Entries) != 1 || e == nil {
			t.Fatalf("device keystore entries: %+v", st.Entries)
		}
		ca, err := loadDevCA(filepath.Join(dir, devCADir))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Leaf().CheckSignatureFrom(ca.Cert); err != nil {
			t.Errorf("device certificate not issued by the dev CA: %v", err)
		}
	})
	if after, _ := os.ReadFile(caCert); !bytes.Equal(before, after) {
		t.Error("the dev CA changed")
	}
}

func withStores(t *testing.T, dir string, f func(*keystore.Manager)) {
	t.Helper()
	svc, closeFn, err := agent.OpenKeystoresOffline(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	f(svc.Stores)
}

// TestDevSingleFileModule runs dev's own single-file module (used where
// the stock one is not installed) through the calls the agent makes.
func TestDevSingleFileModule(t *testing.T) {
	dir := t.TempDir()
	module := filepath.Join(dir, "single-file")
	if err := os.WriteFile(module, []byte(devSingleFileModule), 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "dest", "deeper")
	newTree := func(t *testing.T, content, destDir string) string {
		t.Helper()
		tree := t.TempDir()
		files := map[string]string{"app.conf": content, "dest_dir": destDir, "filename": "app.conf", "permissions": "640"}
		for _, d := range []string{"files", "tmp"} {
			if err := os.Mkdir(filepath.Join(tree, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(tree, "files", name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return tree
	}
	call := func(t *testing.T, state, tree string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := exec.Command(module, state, tree)
		cmd.Dir, cmd.Stdout, cmd.Stderr = tree, &out, &errOut
		err := cmd.Run()
		if err != nil {
			return errOut.String(), err
		}
		return out.String(), nil
	}
	target := filepath.Join(dest, "app.conf")
	read := func() string {
		b, err := os.ReadFile(target)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}

	tree := newTree(t, "v1", dest)
	for state, want := range map[string]string{"SupportsRollback": "Yes\n", "NeedsArtifactReboot": "No\n", "ArtifactCommit": "", "Cleanup": "", "Download": ""} {
		if out, err := call(t, state, tree); err != nil || out != want {
			t.Errorf("%s: %q, %v; want %q", state, out, err, want)
		}
	}
	// A first install, then its rollback removes the file it put there.
	if out, err := call(t, "ArtifactInstall", tree); err != nil {
		t.Fatalf("install v1: %v: %s", err, out)
	}
	if fi, err := os.Stat(target); err != nil || read() != "v1" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("after install v1: %q, %v", read(), fi)
	}
	if out, err := call(t, "ArtifactRollback", tree); err != nil {
		t.Fatalf("rollback v1: %v: %s", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("rollback of a first install left %s: %v", target, err)
	}
	// Install v1 for good, then v2 over it and roll v2 back: v1 returns.
	if out, err := call(t, "ArtifactInstall", newTree(t, "v1", dest)); err != nil {
		t.Fatalf("install v1: %v: %s", err, out)
	}
	tree2 := newTree(t, "v2", dest)
	if out, err := call(t, "ArtifactInstall", tree2); err != nil || read() != "v2" {
		t.Fatalf("install v2: %v: %s; file %q", err, out, read())
	}
	if out, err := call(t, "ArtifactRollback", tree2); err != nil || read() != "v1" {
		t.Fatalf("rollback v2: %v: %s; file %q", err, out, read())
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only app.conf (no leftovers)", dest, len(entries))
	}

	// A destination under a regular file fails with a reason.
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := call(t, "ArtifactInstall", newTree(t, "v3", filepath.Join(blocker, "sub")))
	if err == nil || !strings.Contains(out, "cannot create the destination directory") {
		t.Errorf("install under a regular file: %v, stderr %q", err, out)
	}
	// A file name that climbs out of dest_dir is refused.
	bad := newTree(t, "x", dest)
	os.WriteFile(filepath.Join(bad, "files", "filename"), []byte("../escape"), 0o600)
	if out, err := call(t, "ArtifactInstall", bad); err == nil || !strings.Contains(out, "not a plain file name") {
		t.Errorf("install of ../escape: %v, stderr %q", err, out)
	}
}

// TestDevSingleFileModuleInstall installs an Artifact `dev deploy` builds
// with dev's own module through the real update machine (offline `update
// install`), as a machine without the stock module does.
func TestDevSingleFileModuleInstall(t *testing.T) {
	stateDir, modules, dest := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(filepath.Join(modules, "single-file"), []byte(devSingleFileModule), 0o700); err != nil {
		t.Fatal(err)
	}
	cfgText := strings.NewReplacer(
		"state_dir: /var/lib/edgefort", "state_dir: "+stateDir,
		"socket: /var/lib/edgefort/admin.sock", "socket: "+filepath.Join(stateDir, "admin.sock"),
		`device_type: ""`, "device_type: "+devDeviceType,
		"modules_dir: /usr/share/mender/modules/v3", "modules_dir: "+modules,
		"scripts_dir: /etc/edgefort/scripts", "scripts_dir: "+filepath.Join(stateDir, "scripts"),
	).Replace(string(config.Example))
	cfgPath := writeFile(t, "edgefort.yaml", cfgText)
	file := writeFile(t, "tool.sh", "#!/bin/sh\necho tool\n")
	if err := os.Chmod(file, 0o750); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "tool.mender")
	if err := writeSingleFileArtifact(art, file, dest, "tool-1", t.TempDir()); err != nil {
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
