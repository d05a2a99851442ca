package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/updater/artifact"
)

// localUpdateConfig is a configuration for local installs only: a device
// type, the stock modules, no update server.
func localUpdateConfig(t *testing.T) (cfgPath, state string) {
	t.Helper()
	state = t.TempDir()
	cfgPath = writeFile(t, "edgefort.yaml", fmt.Sprintf(`version: 1
device: {device_type: %s}
state_dir: %s
admin: {socket: %s}
metrics: {enabled: false}
updates:
  scripts_dir: %s
`, updateDeviceType, state, filepath.Join(state, "admin.sock"), filepath.Join(state, "no-scripts")))
	return cfgPath, state
}

func saveArtifact(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "update.mender")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUpdateInstallOffline: with no agent running, `edgefort update`
// installs, reports, rolls back and commits on the state directory, like
// `mender install|commit|rollback`.
func TestUpdateInstallOffline(t *testing.T) {
	peertest.Require(t, stockSingleFile)
	cfg, _ := localUpdateConfig(t)
	dest := t.TempDir()
	appConf := filepath.Join(dest, "app.conf")
	if err := os.WriteFile(appConf, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := saveArtifact(t, singleFileArtifact(t, "app-2", dest, []byte("v2\n")))

	code, out, errOut := edgefort(t, "update", "install", "--config", cfg, v2)
	if code != 0 || !strings.Contains(out, "app-2: installed; run 'edgefort update commit'") {
		t.Fatalf("install: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "update.mender: 100%") {
		t.Errorf("no progress lines on stderr: %q", errOut)
	}
	if got := readString(t, appConf); got != "v2\n" {
		t.Errorf("app.conf = %q after install", got)
	}
	code, out, _ = edgefort(t, "update", "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "artifact:   unknown") || !strings.Contains(out, "in flight:  app-2 at AwaitCommit") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	code, _, errOut = edgefort(t, "update", "install", "--config", cfg, v2)
	if code != 1 || !strings.Contains(errOut, "already in progress") {
		t.Errorf("second install: exit %d, stderr %q", code, errOut)
	}

	code, out, errOut = edgefort(t, "update", "rollback", "--config", cfg)
	if code != 0 || out != "app-2: rolled back\n" {
		t.Fatalf("rollback: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got := readString(t, appConf); got != "v1\n" {
		t.Errorf("app.conf = %q after rollback", got)
	}
	code, _, errOut = edgefort(t, "update", "commit", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "no installed update is waiting") {
		t.Errorf("commit with nothing installed: exit %d, stderr %q", code, errOut)
	}

	v3 := saveArtifact(t, singleFileArtifact(t, "app-3", dest, []byte("v3\n")))
	if code, out, errOut := edgefort(t, "update", "install", "--no-progress", "--config", cfg, v3); code != 0 || errOut != "" {
		t.Fatalf("install v3: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = edgefort(t, "update", "commit", "--config", cfg)
	if code != 0 || out != "app-3: installed and committed\n" {
		t.Fatalf("commit: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = edgefort(t, "update", "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "artifact:   app-3") || !strings.Contains(out, "provides:   rootfs-image.single-file.version=app-3") || strings.Contains(out, "in flight") {
		t.Errorf("status after commit: exit %d\n%s", code, out)
	}

	// Rejected Artifacts change nothing and say why.
	plain := singleFileArtifact(t, "app-4", dest, []byte("v4-payload\n"))
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"wrong device", "device type \"" + updateDeviceType + "\" is not in", wrongDevice(t, dest)},
		{"not an artifact", "artifact", []byte("hello")},
		{"truncated", "artifact", plain[:len(plain)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := edgefort(t, "update", "install", "--commit", "--no-progress", "--config", cfg, saveArtifact(t, tc.data))
			if code != 1 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "failed") {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, tc.want)
			}
			if got := readString(t, appConf); got != "v3\n" {
				t.Errorf("app.conf = %q", got)
			}
		})
	}
	if code, _, errOut := edgefort(t, "update", "install", "--config", cfg, "/nonexistent.mender"); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}

	// From a URL.
	v5 := singleFileArtifact(t, "app-5", dest, []byte("v5\n"))
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/app-5.mender" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(v5)))
		w.Write(v5)
	}))
	defer web.Close()
	code, out, errOut = edgefort(t, "update", "install", "--commit", "--config", cfg, web.URL+"/app-5.mender")
	if code != 0 || out != "app-5: installed and committed\n" || !strings.Contains(errOut, "app-5.mender: 100%") {
		t.Errorf("install from URL: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got := readString(t, appConf); got != "v5\n" {
		t.Errorf("app.conf = %q after the URL install", got)
	}
	if code, _, errOut := edgefort(t, "update", "install", "--config", cfg, web.URL+"/missing.mender"); code != 1 || !strings.Contains(errOut, "404 Not Found") {
		t.Errorf("missing URL: exit %d, stderr %q", code, errOut)
	}
}

func wrongDevice(t *testing.T, dest string) []byte {
	t.Helper()
	p := artifact.ModuleImage("single-file", "app-x", artifact.ImageDefaults{})
	p.Files = []artifact.Source{bytesSrc("app.conf", "x"), bytesSrc("dest_dir", dest), bytesSrc("filename", "app.conf")}
	var buf bytes.Buffer
	if err := artifact.Write(&buf, &artifact.Spec{Name: "app-x", Depends: artifact.Depends{DeviceTypes: []string{"toaster"}}, Payloads: []artifact.PayloadSpec{p}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func bytesSrc(name, content string) artifact.Source {
	return artifact.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
}

// TestUpdateInstallThroughAgent: with an agent running (it holds the state
// directory), the same commands go through its admin socket.
func TestUpdateInstallThroughAgent(t *testing.T) {
	peertest.Require(t, stockSingleFile)
	cfg, state := localUpdateConfig(t)
	dest := t.TempDir()
	p := startProc(t, "", os.Stderr, "run", "--config", cfg)
	waitSocketReady(t, filepath.Join(state, "admin.sock"), p)

	v2 := saveArtifact(t, singleFileArtifact(t, "app-2", dest, []byte("v2\n")))
	code, out, errOut := edgefort(t, "update", "install", "--commit", "--no-progress", "--config", cfg, v2)
	if code != 0 || out != "app-2: installed and committed\n" {
		t.Fatalf("install: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got := readString(t, filepath.Join(dest, "app.conf")); got != "v2\n" {
		t.Errorf("app.conf = %q", got)
	}
	code, out, _ = edgefort(t, "status", "--json", "--config", cfg)
	if code != 0 || !strings.Contains(out, `"artifact_name": "app-2"`) {
		t.Errorf("status --json lacks the installed artifact: exit %d\n%s", code, out)
	}
	code, _, errOut = edgefort(t, "update", "check", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "the update channel is off") {
		t.Errorf("check with the channel off: exit %d, stderr %q", code, errOut)
	}
	if err := p.sig(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(15 * time.Second); err != nil {
		t.Errorf("agent: %v", err)
	}
}

func waitSocketReady(t *testing.T, socket string, p *execProc) {
	t.Helper()
	r := &updateRig{t: t, socket: socket}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := r.admin().Ping(t.Context()); err == nil {
			return
		}
		if p.exited() {
			t.Fatalf("agent exited: %v", p.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("agent did not answer within 20 s")
}

// TestUpdateResumedWithoutServer: a local install killed (SIGKILL) after
// the module put the new file in place is rolled back when the agent
// starts, although no update server is configured.
func TestUpdateResumedWithoutServer(t *testing.T) {
	peertest.Require(t, stockSingleFile)
	cfg, state := localUpdateConfig(t)
	dest := t.TempDir()
	appConf := filepath.Join(dest, "app.conf")
	if err := os.WriteFile(appConf, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := artifact.ModuleImage("single-file", "app-2", artifact.ImageDefaults{})
	p.Files = []artifact.Source{bytesSrc("app.conf", "v2\n"), bytesSrc("dest_dir", dest), bytesSrc("filename", "app.conf"), bytesSrc("permissions", "0644")}
	var buf bytes.Buffer
	err := artifact.Write(&buf, &artifact.Spec{
		Name: "app-2", Depends: artifact.Depends{DeviceTypes: []string{updateDeviceType}}, Payloads: []artifact.PayloadSpec{p},
		Scripts: []artifact.Script{{Name: "ArtifactInstall_Leave_00_wait", Data: []byte("#!/bin/sh\nsleep 30\n")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	file := saveArtifact(t, buf.Bytes())

	install := startProc(t, "", io.Discard, "update", "install", "--commit", "--no-progress", "--config", cfg, file)
	deadline := time.Now().Add(20 * time.Second)
	for readString(t, appConf) != "v2\n" {
		if time.Now().After(deadline) || install.exited() {
			t.Fatalf("the module never installed v2 (exited %v: %v)", install.exited(), install.err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := install.kill(); err != nil {
		t.Fatal(err)
	}
	<-install.done
	code, out, _ := edgefort(t, "update", "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "in flight:  app-2 at ArtifactInstall") {
		t.Fatalf("status after the kill: exit %d\n%s", code, out)
	}

	agentProc := startProc(t, "", io.Discard, "run", "--config", cfg)
	waitSocketReady(t, filepath.Join(state, "admin.sock"), agentProc)
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, out, _ = edgefort(t, "update", "status", "--config", cfg)
		if code == 0 && !strings.Contains(out, "in flight") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted install was not carried on:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := readString(t, appConf); got != "v1\n" {
		t.Errorf("app.conf = %q, want v1 rolled back", got)
	}
	if !strings.Contains(out, "artifact:   unknown") {
		t.Errorf("status:\n%s", out)
	}
	if err := agentProc.sig(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := agentProc.wait(15 * time.Second); err != nil {
		t.Errorf("agent: %v", err)
	}
}
