package deploy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/deploy"
)

// deviceTLS hands the node the device certificate and the server's trust,
// as the keystore manager does, and records the server name asked for.
type deviceTLS struct {
	cfg        *tls.Config
	serverName atomic.Value
}

func (d *deviceTLS) ClientTLS(_ keystore.SSL, serverName string, _ keystore.Vars) (*tls.Config, error) {
	d.serverName.Store(serverName)
	return d.cfg.Clone(), nil
}

// menderServer starts a devcloud Mender server requiring client
// certificates, and the device TLS that it accepts.
func menderServer(t *testing.T) (*devcloud.MenderServer, *deviceTLS) {
	t.Helper()
	srv, tlsCfg := startMenderServer(t)
	return srv, &deviceTLS{cfg: tlsCfg}
}

// startMenderServer starts a devcloud Mender server that requires client
// certificates from its own CA, and returns it with a device TLS config it
// accepts (a certificate for "edge-1", its CA trusted).
func startMenderServer(t *testing.T) (*devcloud.MenderServer, *tls.Config) {
	t.Helper()
	ca, err := devcloud.NewCA("deploy test CA")
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
	key, cert, err := ca.Issue("edge-1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return srv, &tls.Config{
		RootCAs:      srv.ServerCA(),
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
}

// runNode runs n until the test ends.
func runNode(t *testing.T, n *deploy.Node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := n.Run(ctx); err != nil {
			t.Errorf("node: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestNodeFromSection builds the update side from its section and the
// agent's dependencies alone, and runs a deployment through it: the
// keystores' TLS reaches the server (mutual TLS), the device id and the
// configured inventory are sent, the auth key is kept in the work
// directory, the metrics land on the registerer and Ready is called.
func TestNodeFromSection(t *testing.T) {
	peertest.Require(t, stockSingleFil)
	srv, ks := menderServer(t)
	state, dest := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "app.conf"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prom.NewRegistry()
	var ready atomic.Bool
	work := filepath.Join(state, "updates")
	n, err := deploy.NewNode(deploy.Config{
		Enabled: true, ServerURL: srv.URL(), PollInterval: time.Hour, InventoryInterval: time.Hour,
		RetryInterval: 50 * time.Millisecond, ModulesDir: stockModules, ModuleTimeout: time.Minute,
		HealthTimeout: time.Minute, Inventory: map[string]string{"site": "lab-2"},
	}, deploy.NodeDeps{
		Store: testkit.OpenStore(t, state), DeviceType: deviceType, DeviceID: "edge-node-7", WorkDir: work,
		Keystores: ks, AgentVersion: "test", Registerer: reg, Ready: func() { ready.Store(true) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.Poller() == nil || n.Machine() == nil {
		t.Fatalf("enabled channel: poller %v, machine %v; want both", n.Poller(), n.Machine())
	}
	depID, err := srv.CreateDeployment(uploadSingleFile(t, srv, dest))
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)
	devID := func() string {
		if sets := srv.AuthSets(); len(sets) > 0 {
			return sets[0].DeviceID
		}
		return ""
	}
	testkit.WaitFor(t, "the deployment to succeed", func() bool {
		st := srv.Statuses(devID(), depID)
		return len(st) > 0 && st[len(st)-1] == updater.StatusSuccess
	})
	testkit.WaitFor(t, "the inventory", func() bool { return srv.Inventory(devID())["site"].Name != "" })

	u, _ := url.Parse(srv.URL())
	if got := ks.serverName.Load(); got != u.Hostname() {
		t.Errorf("keystores asked for server name %v, want %s", got, u.Hostname())
	}
	if sets := srv.AuthSets(); !strings.Contains(sets[0].IDData, `"edgefort_id":"edge-node-7"`) {
		t.Errorf("id_data %s does not carry the device id edge-node-7", sets[0].IDData)
	}
	if diff := cmp.Diff(`"lab-2"`, string(srv.Inventory(devID())["site"].Value)); diff != "" {
		t.Errorf("inventory site (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(work, "auth-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("auth key in the work directory: %v, %v; want a 0600 file", fi, err)
	}
	if !ready.Load() {
		t.Error("Ready was not called")
	}
	// A check is counted when it returns, which is after the deployment it
	// found has run and reported: wait for it.
	testkit.WaitFor(t, "edgefort_updates_checks_total on the registerer", func() bool {
		return gathered(t, reg, "edgefort_updates_checks_total")
	})
}

func uploadSingleFile(t *testing.T, srv *devcloud.MenderServer, dest string) string {
	t.Helper()
	name, err := srv.UploadArtifact(strings.NewReader(string(singleFile(t, "app-v2", dest, "v2\n"))))
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func gathered(t *testing.T, reg *prom.Registry, name string) bool {
	t.Helper()
	return slices.Contains(promtest.Names(t, reg), name)
}

// TestNodeWithoutChannel: with the channel off the node has no poller and
// touches no server (no auth key is made), yet signals ready and runs
// until stopped, carrying on whatever update a crash interrupted.
func TestNodeWithoutChannel(t *testing.T) {
	state := t.TempDir()
	work := filepath.Join(state, "updates")
	ready := make(chan struct{})
	n, err := deploy.NewNode(deploy.Config{ModuleTimeout: time.Minute, HealthTimeout: time.Minute}, deploy.NodeDeps{
		Store: testkit.OpenStore(t, state), DeviceType: deviceType, WorkDir: work,
		Ready: func() { close(ready) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.Poller() != nil || n.Machine() == nil {
		t.Fatalf("disabled channel: poller %v, machine %v; want only a machine", n.Poller(), n.Machine())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	<-ready
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v, want nil after a stop", err)
	}
	if _, err := os.Stat(filepath.Join(work, "auth-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("auth key: %v; want none without a server", err)
	}
}

// TestNewNodeRefuses: what the section and the dependencies cannot build
// is an error naming the field.
func TestNewNodeRefuses(t *testing.T) {
	state := t.TempDir()
	db := testkit.OpenStore(t, state)
	tests := []struct {
		name string
		cfg  deploy.Config
		deps deploy.NodeDeps
		want string
	}{
		{"no device type", deploy.Config{}, deploy.NodeDeps{Store: db}, "device.device_type is not set"},
		{"missing verify key", deploy.Config{VerifyKeys: []string{filepath.Join(state, "nope.pem")}}, deploy.NodeDeps{Store: db, DeviceType: deviceType}, "updates.verify_keys[0]"},
		{"mutual TLS without keystores", deploy.Config{Enabled: true, ServerURL: "https://mender.example"}, deploy.NodeDeps{Store: db, DeviceType: deviceType, WorkDir: filepath.Join(state, "updates")}, "updates.ssl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deploy.NewNode(tt.cfg, tt.deps)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewNode: %v; want an error containing %q", err, tt.want)
			}
		})
	}
}
