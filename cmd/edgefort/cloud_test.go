package main

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/testkit"
)

const testPolicy = `version: 1
roles: {developer: [app.read, app.reload], viewer: [app.read]}
spaces:
  sales: {members: {"user:alice": developer, "user:bob": viewer}}
`

// cloudRig is an agent configuration with the control plane link on,
// against a devcloud control plane in this process.
type cloudRig struct {
	ca      *devcloud.CA
	cp      *devcloud.ControlPlane
	caFile  string
	cfgPath string
	state   string
	socket  string
}

func newCloudRig(t *testing.T) *cloudRig {
	t.Helper()
	ca, err := devcloud.NewCA("cloud test CA")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := devcloud.ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := devcloud.NewControlPlane(devcloud.ControlPlaneOptions{CA: ca, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	caDir := t.TempDir()
	if err := ca.WriteFiles(caDir); err != nil {
		t.Fatal(err)
	}
	r := &cloudRig{ca: ca, cp: cp, caFile: filepath.Join(caDir, devcloud.CACertFile), state: t.TempDir()}
	r.socket = filepath.Join(r.state, "admin.sock")
	r.cfgPath = writeFile(t, "edgefort.yaml", fmt.Sprintf(`version: 1
state_dir: %s
admin: {socket: %s}
metrics: {enabled: false}
cloud:
  enabled: true
`, r.state, r.socket))
	return r
}

// TestEnroll: `edgefort enroll` makes the key here, gets a certificate for
// it, keeps everything behind the references, refuses to enroll twice
// without --force, and a new enrollment replaces the identity.
func TestEnroll(t *testing.T) {
	r := newCloudRig(t)
	tok := r.cp.NewEnrollmentToken()
	code, out, errOut := edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token", tok, "--ca-file", r.caFile)
	if code != 0 || !strings.HasPrefix(out, "enrolled as dev-") || !strings.Contains(out, "ecdsa-p256 key") {
		t.Fatalf("enroll: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	devs := r.cp.Devices()
	if len(devs) != 1 {
		t.Fatalf("control plane has %d devices", len(devs))
	}
	first := devs[0].ID
	// The key on disk is the one the certificate is for.
	svc, closeFn, err := agent.OpenKeystoresOffline(r.state)
	if err != nil {
		t.Fatal(err)
	}
	st, err := svc.Stores.Resolve("ref://"+agent.RefDeviceTLS, "keystore")
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.Entry(agent.DeviceAlias)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(e.Leaf().PublicKey) || e.Leaf().Subject.CommonName != first {
		t.Errorf("the stored key and certificate do not match (CN %q)", e.Leaf().Subject.CommonName)
	}
	closeFn()
	keyFile := filepath.Join(r.state, "keystores", "stores", "device-"+first, agent.DeviceAlias+".pem")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("device key file %s: %v, mode %v", keyFile, err, fi.Mode())
	}

	code, _, errOut = edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token", r.cp.NewEnrollmentToken(), "--ca-file", r.caFile)
	if code != 1 || !strings.Contains(errOut, "already enrolled as "+first) || !strings.Contains(errOut, "--force") {
		t.Errorf("second enroll: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token", tok, "--ca-file", r.caFile, "--force")
	if code != 1 || !strings.Contains(errOut, "401") && !strings.Contains(strings.ToLower(errOut), "unauthorized") {
		t.Errorf("enroll with a used token: exit %d, stderr %q", code, errOut)
	}
	tokFile := writeFile(t, "token", r.cp.NewEnrollmentToken()+"\n")
	code, out, errOut = edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token-file", tokFile, "--ca-file", r.caFile, "--force", "--key-type", "rsa")
	if code != 0 || strings.Contains(out, first) || !strings.Contains(out, "rsa-3072 key") {
		t.Fatalf("forced enroll: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = edgefort(t, "ref", "list", "--state-dir", r.state)
	if code != 0 || strings.Contains(out, first) || !strings.Contains(out, "device-dev-") {
		t.Errorf("references after re-enrollment:\n%s", out)
	}
	if code, _, errOut := edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL()); code != 2 || !strings.Contains(errOut, "no token") {
		t.Errorf("no token: exit %d, stderr %q", code, errOut)
	}
}

// TestEnrollStateDir: enroll takes --state-dir like the keystore
// commands: it overrides the configuration's state directory, and with it
// no configuration file is needed.
func TestEnrollStateDir(t *testing.T) {
	r := newCloudRig(t)
	for _, tc := range []struct {
		name   string
		config string // --config
	}{
		{"overrides the file's", r.cfgPath},
		{"without a file", filepath.Join(t.TempDir(), "none.yaml")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			code, out, errOut := edgefort(t, "enroll", "--config", tc.config, "--state-dir", dir, "--url", r.cp.URL(), "--token", r.cp.NewEnrollmentToken(), "--ca-file", r.caFile)
			if code != 0 || !strings.HasPrefix(out, "enrolled as dev-") {
				t.Fatalf("enroll: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			device := strings.Fields(out)[2]
			code, out, errOut = edgefort(t, "ref", "list", "--config", tc.config, "--state-dir", dir)
			if code != 0 || !strings.Contains(out, "device-"+device) {
				t.Errorf("references in --state-dir: exit %d, stdout %q, stderr %q; want device-%s", code, out, errOut, device)
			}
		})
	}
	if ents, err := os.ReadDir(r.state); err != nil || len(ents) != 0 {
		t.Errorf("the configuration's state directory: %v, %v; want it untouched", ents, err)
	}
	code, _, errOut := edgefort(t, "enroll", "--config", filepath.Join(t.TempDir(), "none.yaml"), "--url", r.cp.URL(), "--token", "x")
	if code != 1 || !strings.Contains(errOut, "pass --state-dir, or --config naming it") {
		t.Errorf("neither file nor --state-dir: exit %d, stderr %q", code, errOut)
	}
}

// TestEnrollRefusesHTTP: `enroll --url http://…` is refused before any
// byte is sent (a plain TCP listener on that address accepts no
// connection) and before the state directory is touched.
func TestEnrollRefusesHTTP(t *testing.T) {
	r := newCloudRig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	for _, url := range []string{"http://" + ln.Addr().String(), "HTTP://" + ln.Addr().String() + "/cloud", ln.Addr().String()} {
		code, out, errOut := edgefort(t, "enroll", "--config", r.cfgPath, "--url", url, "--token", r.cp.NewEnrollmentToken(), "--ca-file", r.caFile)
		want := fmt.Sprintf("enroll: --url %q: want https://host; https is required", url)
		if code != 2 || out != "" || !strings.Contains(errOut, want) {
			t.Errorf("enroll --url %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", url, code, out, errOut, want)
		}
	}
	ln.Close()
	<-done
	if n := conns.Load(); n != 0 {
		t.Errorf("the http:// address got %d connection(s)", n)
	}
	if ents, err := os.ReadDir(r.state); err != nil || len(ents) != 0 {
		t.Errorf("state directory after refused enrollments: %v, %v; want it untouched", ents, err)
	}
	if n := len(r.cp.Devices()); n != 0 {
		t.Errorf("control plane has %d devices", n)
	}
}

// TestCloudLinkAndOutboxCrash: the running agent asks the control plane
// for decisions through its cache; 1,000 reports queued while the cloud is
// down all reach the devcloud sink although the agent is killed (SIGKILL)
// twice during delivery; duplicates carry the same idempotency key.
func TestCloudLinkAndOutboxCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("queues 1,000 reports and kills the agent twice; not in -short")
	}
	r := newCloudRig(t)
	if code, out, errOut := edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token", r.cp.NewEnrollmentToken(), "--ca-file", r.caFile); code != 0 {
		t.Fatalf("enroll: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	dev := r.cp.Devices()[0].ID
	log, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	p := startProc(t, "", log, "run", "--config", r.cfgPath)
	waitSocketReady(t, r.socket, p)

	for _, tc := range []struct {
		user string
		code int
		want string
	}{
		{"alice", 0, "ALLOW alice has role developer in space sales (cloud)\n"},
		{"alice", 0, "ALLOW alice has role developer in space sales (cache)\n"},
		{"bob", 1, "DENY "},
	} {
		code, out, errOut := edgefort(t, "cloud", "authorize", "--config", r.cfgPath, "--user", tc.user, "--action", "app.reload", "--space", "sales", "--app", "q3")
		if code != tc.code || !strings.HasPrefix(out, tc.want) {
			t.Errorf("authorize %s: exit %d, stdout %q, stderr %q; want %d and %q", tc.user, code, out, errOut, tc.code, tc.want)
		}
	}

	// The cloud goes down; 1,000 reports are queued.
	r.cp.SetFaults(devcloud.ControlPlaneFaults{Down: true})
	admin := adminclient.New(r.socket)
	const n = 1000
	keys := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				body, _ := json.Marshal(map[string]int{"n": i})
				reply, err := admin.Report(context.Background(), adminapi.ReportRequest{Stream: fmt.Sprintf("s%d", w), Type: "test.report", Body: body})
				if err != nil {
					errs <- err
					return
				}
				keys[i] = reply.IdempotencyKey
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Back up; kill the agent twice while it delivers.
	r.cp.SetFaults(devcloud.ControlPlaneFaults{})
	for kill := range 2 {
		target := int64(250 * (kill + 1))
		deadline := time.Now().Add(60 * time.Second)
		for r.cp.Stats().ReportsRecorded < target && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := p.kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done
		t.Logf("kill %d at %d reports recorded", kill+1, r.cp.Stats().ReportsRecorded)
		p = startProc(t, "", log, "run", "--config", r.cfgPath)
		waitSocketReady(t, r.socket, p)
	}
	deadline := time.Now().Add(60 * time.Second)
	for r.cp.Stats().ReportsRecorded < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := map[string]bool{}
	for _, rep := range r.cp.Reports(dev) {
		got[rep.IdempotencyKey] = true
	}
	dups := 0
	for i, k := range keys {
		if !got[k] {
			t.Errorf("report %d (key %s) never arrived", i, k)
		}
		if d := r.cp.Deliveries(dev, k); d > 1 {
			dups += d - 1
		}
	}
	st := r.cp.Stats()
	t.Logf("recorded %d distinct reports in %d deliveries: %d duplicates, each under the key of its original", st.ReportsRecorded, st.ReportsDelivered, dups)
	if st.ReportsRecorded != n {
		t.Errorf("recorded %d reports, want %d", st.ReportsRecorded, n)
	}
	// The control plane records a batch before its answer reaches the
	// agent, which then removes the batch from its queue: wait for that.
	var out string
	defer func() {
		if t.Failed() {
			t.Logf("last cloud status:\n%s", out)
		}
	}()
	testkit.WaitForWithin(t, 30*time.Second, "cloud status to show an empty outbox", func() bool {
		var code int
		code, out, _ = edgefort(t, "cloud", "status", "--config", r.cfgPath)
		return code == 0 && strings.Contains(out, "outbox         0 queued")
	})
	if err := p.sig(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(15 * time.Second); err != nil {
		t.Errorf("agent: %v", err)
	}
}
