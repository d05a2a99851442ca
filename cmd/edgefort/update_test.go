package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
	"github.com/edgefort/edgefort/updater/artifact"
)

const (
	updateDeviceType = "edge-test"
	stockSingleFile  = "/usr/share/mender/modules/v3/single-file"
)

// updateRig is a state directory and configuration for an agent whose
// update channel talks to a devcloud Mender server over mutual TLS.
type updateRig struct {
	t        *testing.T
	srv      *devcloud.MenderServer
	state    string
	cfgPath  string
	socket   string
	dest     string // where single-file Artifacts install app.conf
	logFile  *os.File
	extraCfg string
}

func newUpdateRig(t *testing.T, extraCfg string) *updateRig {
	t.Helper()
	ca, err := devcloud.NewCA("update test CA")
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.Cert)
	srv, err := devcloud.NewMenderServer(devcloud.MenderOptions{CA: ca, ClientCAs: clientCAs})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	r := &updateRig{t: t, srv: srv, state: t.TempDir(), dest: t.TempDir(), extraCfg: extraCfg}
	r.socket = filepath.Join(r.state, "admin.sock")

	// The device certificate in a keystore, the server's CA in a
	// truststore, as an operator would import them.
	svc, closeFn, err := agent.OpenKeystoresOffline(r.state)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.Issue("edge-1", nil, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		svc.Stores.CreateStore("device", keystore.KindKeystore),
		svc.Stores.PutEntry("device", "device", key, []*x509.Certificate{cert}),
		svc.Stores.CreateStore("mender-ca", keystore.KindTruststore),
		svc.Stores.PutTrusted("mender-ca", "ca", []*x509.Certificate{ca.Cert}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	r.cfgPath = writeFile(t, "edgefort.yaml", fmt.Sprintf(`version: 1
device: {id: edge-1, device_type: %s}
state_dir: %s
log: {level: debug}
admin: {socket: %s}
metrics: {enabled: false}
updates:
  enabled: true
  server_url: %s
  poll_interval: 1h
  inventory_interval: 1h
  retry_interval: 1s
  scripts_dir: %s
  inventory: {site: lab-7}
  ssl:
    client_auth_enabled: true
    keystore: device
    key_alias: device
    truststore: mender-ca
%s`, updateDeviceType, r.state, r.socket, srv.URL(), filepath.Join(r.state, "no-rootfs-scripts"), extraCfg))
	r.logFile, err = os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(r.logFile.Name())
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("agent log (tail):\n%s", b)
		}
	})
	return r
}

// start runs the agent (the given binary, or this test binary as main)
// and waits until it is ready.
func (r *updateRig) start(binary string) *execProc {
	r.t.Helper()
	p := startProc(r.t, binary, r.logFile, "run", "--config", r.cfgPath)
	deadline := time.Now().Add(20 * time.Second)
	client := adminclient.New(r.socket)
	for time.Now().Before(deadline) {
		if st, err := client.Status(context.Background()); err == nil && st.Ready {
			return p
		}
		if p.exited() {
			r.t.Fatalf("agent exited before it was ready: %v", p.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatal("agent not ready within 20 s")
	return nil
}

func (r *updateRig) admin() *adminclient.Client { return adminclient.New(r.socket) }

func (r *updateRig) deviceID() string {
	for _, s := range r.srv.AuthSets() {
		return s.DeviceID
	}
	return ""
}

func (r *updateRig) upload(data []byte) string {
	r.t.Helper()
	name, err := r.srv.UploadArtifact(bytes.NewReader(data))
	if err != nil {
		r.t.Fatal(err)
	}
	id, err := r.srv.CreateDeployment(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

// waitFinal waits until the deployment has a final status on the server
// and the agent has nothing in flight, and returns the statuses.
func (r *updateRig) waitFinal(dep string, within time.Duration) []string {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st := r.srv.Statuses(r.deviceID(), dep)
		if n := len(st); n > 0 && (st[n-1] == "success" || st[n-1] == "failure" || st[n-1] == "already-installed") {
			if us, err := r.admin().UpdateStatus(context.Background()); err == nil && us.InFlight == nil {
				return st
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("deployment %s not final within %s: statuses %q", dep, within, r.srv.Statuses(r.deviceID(), dep))
	return nil
}

// execProc is an agent process whose exit is watched.
type execProc struct {
	pid  int
	done chan struct{}
	err  error
	kill func() error
	sig  func(os.Signal) error
}

func (p *execProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *execProc) wait(within time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		p.kill()
		<-p.done
		return fmt.Errorf("did not exit within %s", within)
	}
}

func startProc(t *testing.T, binary string, log io.Writer, args ...string) *execProc {
	t.Helper()
	env := os.Environ()
	if binary == "" {
		binary = os.Args[0]
		env = append(env, "EDGEFORT_TEST_AS_MAIN=1")
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &execProc{pid: cmd.Process.Pid, done: make(chan struct{}), kill: cmd.Process.Kill, sig: cmd.Process.Signal}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.kill()
			<-p.done
		}
	})
	return p
}

// singleFileArtifact installs content as dest/app.conf through the stock
// single-file module. Its state scripts sleep, which widens the windows a
// crash can hit.
func singleFileArtifact(t *testing.T, name, dest string, content []byte) []byte {
	t.Helper()
	p := artifact.ModuleImage("single-file", name, artifact.ImageDefaults{})
	src := func(n string, b []byte) artifact.Source {
		return artifact.Source{Name: n, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	p.Files = []artifact.Source{src("app.conf", content), src("dest_dir", []byte(dest)), src("filename", []byte("app.conf")), src("permissions", []byte("0644"))}
	nap := func(n string) artifact.Script {
		return artifact.Script{Name: n, Data: []byte("#!/bin/sh\nsleep 0.1\n")}
	}
	spec := &artifact.Spec{
		Name: name, Depends: artifact.Depends{DeviceTypes: []string{updateDeviceType}}, Payloads: []artifact.PayloadSpec{p},
		Scripts: []artifact.Script{nap("ArtifactInstall_Enter_00_nap"), nap("ArtifactInstall_Leave_00_nap"), nap("ArtifactCommit_Enter_00_nap"), nap("ArtifactCommit_Leave_00_nap")},
	}
	var buf bytes.Buffer
	if err := artifact.Write(&buf, spec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestUpdateCrashSafety kills the agent (SIGKILL) at random points of
// deployments, restarts it, and checks that every trial ends with either
// the old or the new file in place, the device reporting the matching
// Artifact, and the server holding the matching final status.
func TestUpdateCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of kill -9 trials; not in -short")
	}
	peertest.Require(t, stockSingleFile)
	// A rate-limited download (~0.5 s) and napping state scripts (~0.4 s)
	// spread the kill points over download, install, commit and report.
	r := newUpdateRig(t, "  download_rate_limit: 1048576\n")
	appConf := filepath.Join(r.dest, "app.conf")
	oldContent := []byte("v-initial\n")
	if err := os.WriteFile(appConf, oldContent, 0o644); err != nil {
		t.Fatal(err)
	}
	oldName := "unknown"
	const trials = 24
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	seen := map[string]int{} // last status at the moment of the kill
	outcomes := map[string]int{}
	for i := range trials {
		name := fmt.Sprintf("app-%02d", i)
		content := bytes.Repeat([]byte(fmt.Sprintf("%s content line\n", name)), 512<<10/24)
		dep := r.upload(singleFileArtifact(t, name, r.dest, content))

		p := r.start("")
		if _, err := r.admin().CheckUpdate(context.Background()); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int64N(int64(1100 * time.Millisecond)))
		time.Sleep(delay)
		st := r.srv.Statuses(r.deviceID(), dep)
		at := "before any status"
		if len(st) > 0 {
			at = fmt.Sprintf("%d statuses, last %s", len(st), st[len(st)-1])
		}
		seen[at]++
		if err := p.kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done

		p = r.start("")
		if _, err := r.admin().CheckUpdate(context.Background()); err != nil {
			t.Fatal(err)
		}
		final := r.waitFinal(dep, 60*time.Second)
		us, err := r.admin().UpdateStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The agent sends its inventory right after a deployment ends:
		// the server learns the device's artifact before it stops.
		testkit.WaitFor(t, fmt.Sprintf("trial %d: the server's inventory naming %s", i, us.ArtifactName), func() bool {
			return string(r.srv.Inventory(r.deviceID())["artifact_name"].Value) == `"`+us.ArtifactName+`"`
		})
		if err := p.sig(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(15 * time.Second); err != nil {
			t.Fatalf("trial %d: agent did not stop cleanly: %v", i, err)
		}

		got, err := os.ReadFile(appConf)
		if err != nil {
			t.Fatal(err)
		}
		last := final[len(final)-1]
		outcomes[last]++
		wantContent, wantName := oldContent, oldName
		if last == "success" {
			wantContent, wantName = content, name
		}
		t.Logf("trial %2d: killed after %4d ms (%s); server: %q; device: %s", i, delay.Milliseconds(), at, final, us.ArtifactName)
		if sha256.Sum256(got) != sha256.Sum256(wantContent) {
			t.Errorf("trial %d: app.conf holds %.30q…, want the %s version (final status %s)", i, got, map[bool]string{true: "new", false: "old"}[last == "success"], last)
		}
		if us.ArtifactName != wantName {
			t.Errorf("trial %d: device reports %q, want %q (final status %s)", i, us.ArtifactName, wantName, last)
		}
		if strings.HasSuffix(us.ArtifactName, "_INCONSISTENT") {
			t.Errorf("trial %d: device is inconsistent", i)
		}
		oldContent, oldName = wantContent, wantName
	}
	t.Logf("kill points: %v; outcomes: %v", seen, outcomes)
	inv := r.srv.Inventory(r.deviceID())
	for name, want := range map[string]string{"site": `"lab-7"`, "device_type": `"` + updateDeviceType + `"`, "artifact_name": `"` + oldName + `"`} {
		if got := string(inv[name].Value); got != want {
			t.Errorf("inventory %s = %s, want %s", name, got, want)
		}
	}
	if outcomes["success"] == 0 || outcomes["failure"] == 0 {
		t.Errorf("outcomes %v: the trials did not hit both sides of the commit", outcomes)
	}
}
