package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/iot"
)

// The wiring tests build a real Agent from a configuration and run it
// against devcloud's servers in this process: the Mender server (update
// channel, mutual TLS), the control plane (enrollment, authorization,
// credentials, reports) and the SigV4-checking broker (event link).

const (
	wiringDeviceType = "wiring-test"
	// The broker also accepts this long-term key, for the event link with
	// static credentials (no control plane link to vend any).
	staticKeyID     = "AKIDWIRINGSTATIC"
	staticKeySecret = "wiring-static-secret"
)

// cloudRig is devcloud's three servers on one dev CA.
type cloudRig struct {
	caFile string
	cp     *devcloud.ControlPlane
	mender *devcloud.MenderServer
	broker *devcloud.Broker

	mu    sync.Mutex // guards thing
	thing string     // the thing the static key belongs to: the last enrolled device
}

func newCloudRig(t *testing.T) *cloudRig {
	t.Helper()
	ca, err := devcloud.NewCA("wiring test CA")
	if err != nil {
		t.Fatal(err)
	}
	caDir := t.TempDir()
	if err := ca.WriteFiles(caDir); err != nil {
		t.Fatal(err)
	}
	policy, err := devcloud.ParsePolicy([]byte("version: 1\nroles:\n  viewer: [app.read]\nspaces:\n  sales:\n    members:\n      user:alice: viewer\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &cloudRig{caFile: filepath.Join(caDir, devcloud.CACertFile)}
	if r.cp, err = devcloud.NewControlPlane(devcloud.ControlPlaneOptions{CA: ca, Policy: policy}); err != nil {
		t.Fatal(err)
	}
	start(t, r.cp.Start, r.cp.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if r.mender, err = devcloud.NewMenderServer(devcloud.MenderOptions{CA: ca, ClientCAs: pool}); err != nil {
		t.Fatal(err)
	}
	start(t, r.mender.Start, r.mender.Close)
	cpLookup := devcloud.ControlPlaneLookup(r.cp)
	lookup := func(id string) (string, string, string, bool) {
		if id == staticKeyID {
			r.mu.Lock()
			defer r.mu.Unlock()
			return staticKeySecret, "", r.thing, true
		}
		return cpLookup(id)
	}
	if r.broker, err = devcloud.NewBroker(devcloud.BrokerOptions{CA: ca, Lookup: lookup}); err != nil {
		t.Fatal(err)
	}
	start(t, r.broker.Start, r.broker.Close)
	return r
}

func start(t *testing.T, startFn func() error, closeFn func() error) {
	t.Helper()
	if err := startFn(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
}

// enroll enrolls a fresh state directory with the control plane, as
// `edgefort enroll` does, and returns it with the enrollment.
func (r *cloudRig) enroll(t *testing.T) (string, *Enrollment) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("enroll.yaml", []byte("version: 1\nstate_dir: "+dir+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := EnrollOffline(t.Context(), cfg, EnrollOptions{URL: r.cp.URL(), Token: r.cp.NewEnrollmentToken(), CAFile: r.caFile}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.thing = e.DeviceID
	r.mu.Unlock()
	return dir, e
}

// Each link's configuration section, pointed at the rig.
func (r *cloudRig) updatesSection() string {
	return fmt.Sprintf(`device: {id: node-1, device_type: %s}
updates:
  enabled: true
  server_url: %s
  poll_interval: 1h
  ssl: {client_auth_enabled: true, keystore: ref://device-tls, key_alias: device, truststore: ref://cloud-trust}
`, wiringDeviceType, r.mender.URL())
}

func cloudSection() string { return "cloud: {enabled: true}\n" }

func (r *cloudRig) iotSection(thing, credentials string) string {
	return fmt.Sprintf(`iot:
  enabled: true
  endpoint: %s
  region: %s
  thing_name: %s
  credentials: %s
  ssl: {truststore: ref://cloud-trust}
`, r.broker.Host(), r.broker.Region(), thing, credentials)
}

func staticCredentials() string {
	return fmt.Sprintf("{source: static, access_key_id: %s, secret_access_key: %s}", staticKeyID, staticKeySecret)
}

// configIn is testConfig on a given state directory.
func configIn(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	text := fmt.Sprintf("version: 1\nstate_dir: %s\nmetrics: {listen: '127.0.0.1:0'}\nsupervisor:\n  restart_initial: 1ms\n  restart_max: 10ms\n  shutdown_timeout: 5s\n%s", dir, extra)
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", text, err)
	}
	return cfg
}

// deployElsewhere deploys, to every device, an Artifact for another
// device type: each update check that reaches the server records
// "noartifact" for the device, and the node installs nothing.
func (r *cloudRig) deployElsewhere(t *testing.T, name string) string {
	t.Helper()
	art := testkit.SingleFile(name, "not-"+wiringDeviceType, t.TempDir(), "f", []byte("x"))
	if _, err := r.mender.UploadArtifact(bytes.NewReader(art.Bytes(t))); err != nil {
		t.Fatal(err)
	}
	id, err := r.mender.CreateDeployment(name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// checks is how many update checks of the (one) device reached the
// server for the deployment.
func (r *cloudRig) checks(deployment string) int {
	sets := r.mender.AuthSets()
	if len(sets) != 1 {
		return 0
	}
	return len(r.mender.Statuses(sets[0].DeviceID, deployment))
}

func (r *cloudRig) publishEvent(t *testing.T, thing, id, typ, body string) {
	t.Helper()
	ev := fmt.Sprintf(`{"id":%q,"type":%q,"time":"2026-12-06T01:00:00Z","body":%s}`, id, typ, body)
	if err := r.broker.Publish("edgefort/"+thing+"/events", []byte(ev), 1); err != nil {
		t.Fatal(err)
	}
}

// componentNames is the Status's components, in order.
func componentNames(a *Agent) []string {
	var names []string
	for _, c := range a.Status().Components {
		names = append(names, c.Name)
	}
	return names
}

// waitLinkConnected waits for the event link to be connected (which, in
// the agent's status, means subscribed) and the broker to see it.
func (r *cloudRig) waitLinkConnected(t *testing.T, a *Agent) {
	t.Helper()
	testkit.WaitFor(t, "the event link connected and subscribed", func() bool {
		st := a.Status()
		return st.IoT != nil && st.IoT.State == string(iot.StateConnected) && r.broker.Connections() == 1
	})
}

// TestLinks runs the agent with each link on, alone and all together:
// the components are listed in Status in build order and all become
// ready, and each link works end to end against its devcloud peer.
func TestLinks(t *testing.T) {
	base := []string{"admin", "metrics", "keystore"}
	tests := []struct {
		name    string
		section func(r *cloudRig, thing string) string
		want    []string
		check   func(t *testing.T, r *cloudRig, a *Agent, e *Enrollment, deployment string)
	}{
		{
			name:    "updates",
			section: func(r *cloudRig, _ string) string { return r.updatesSection() },
			want:    append(slices.Clone(base), "updates"),
			check:   checkUpdates,
		},
		{
			name:    "cloud",
			section: func(*cloudRig, string) string { return cloudSection() },
			want:    append(slices.Clone(base), "outbox"),
			check:   checkCloud,
		},
		{
			name:    "iot with static credentials",
			section: func(r *cloudRig, thing string) string { return r.iotSection(thing, staticCredentials()) },
			want:    append(slices.Clone(base), "iot", "iot-jobs", "iot-shadow"),
			check:   checkIoT,
		},
		{
			name: "all links, iot credentials from the control plane",
			section: func(r *cloudRig, thing string) string {
				return r.updatesSection() + cloudSection() + r.iotSection(thing, "{source: cloud}")
			},
			want:  append(slices.Clone(base), "updates", "outbox", "iot", "iot-jobs", "iot-shadow"),
			check: checkAllLinks,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newCloudRig(t)
			dir, e := r.enroll(t)
			deployment := r.deployElsewhere(t, "elsewhere-1")
			cfg := configIn(t, dir, tt.section(r, e.DeviceID))
			rec := newStopRecorder()
			a, stop := runAgent(t, cfg, slog.New(rec))
			if diff := cmp.Diff(tt.want, componentNames(a)); diff != "" {
				t.Errorf("Status components (-want +got):\n%s", diff)
			}
			testkit.WaitFor(t, "every component ready", a.Ready)
			for _, c := range a.Status().Components {
				if c.State != "running" || c.Restarts != 0 {
					t.Errorf("component %s: state %s after %d restarts (%s), want running, none", c.Name, c.State, c.Restarts, c.LastError)
				}
			}
			tt.check(t, r, a, e, deployment)
			checkStopOrder(t, a, stop, rec, tt.want)
		})
	}
}

// checkUpdates: the poller's first check reaches the Mender server (over
// mutual TLS with the enrolled device certificate).
func checkUpdates(t *testing.T, r *cloudRig, _ *Agent, _ *Enrollment, deployment string) {
	testkit.WaitFor(t, "an update check at the Mender server", func() bool { return r.checks(deployment) == 1 })
	if got := r.mender.Statuses(r.mender.AuthSets()[0].DeviceID, deployment); !slices.Equal(got, []string{"noartifact"}) {
		t.Errorf("deployment statuses = %q, want the one check's noartifact", got)
	}
}

// checkCloud: an authorization asked through the admin API is decided by
// the control plane.
func checkCloud(t *testing.T, r *cloudRig, a *Agent, _ *Enrollment, _ string) {
	before := r.cp.Stats().AuthorizeCalls
	reply, err := adminclient.New(a.cfg.Admin.Socket).Authorize(t.Context(), api.AuthorizeRequest{
		User: api.User{ID: "alice", Directory: "test"}, Action: "app.read", Resource: api.Resource{Type: "space", ID: "sales"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reply.Decision.Allow || reply.Decision.Source != "cloud" {
		t.Errorf("authorize = %+v, want allowed by the cloud", reply)
	}
	if got := r.cp.Stats().AuthorizeCalls - before; got != 1 {
		t.Errorf("the control plane answered %d authorize calls, want 1", got)
	}
}

// checkIoT: the link connects to the broker and a cloud event
// (keystore.repoint) published to the node's topic is handled.
func checkIoT(t *testing.T, r *cloudRig, a *Agent, e *Enrollment, _ string) {
	r.waitLinkConnected(t, a)
	r.publishEvent(t, e.DeviceID, "ev-repoint", "keystore.repoint", fmt.Sprintf(`{"ref":"spare-trust","store":%q}`, e.Truststore))
	testkit.WaitFor(t, "the keystore.repoint event handled", func() bool {
		return a.keystores.Stores.Refs()["spare-trust"] == e.Truststore
	})
}

// checkAllLinks: each link works, and the links work through each other:
// the event link signs with credentials the control plane vends, an
// update.check event makes the poller check at once, and event results
// reach the control plane through the outbox.
func checkAllLinks(t *testing.T, r *cloudRig, a *Agent, e *Enrollment, deployment string) {
	checkUpdates(t, r, a, e, deployment)
	checkCloud(t, r, a, e, deployment)
	if r.cp.Stats().IoTCredentials == 0 {
		r.waitLinkConnected(t, a) // the credentials are fetched on connecting
	}
	checkIoT(t, r, a, e, deployment)
	if got := r.cp.Stats().IoTCredentials; got == 0 {
		t.Errorf("the control plane vended no IoT credentials; the link signed with something else")
	}
	second := r.deployElsewhere(t, "elsewhere-2")
	r.publishEvent(t, e.DeviceID, "ev-check", "update.check", "{}")
	testkit.WaitFor(t, "the update.check event's check at the Mender server", func() bool { return r.checks(second) == 1 })
	testkit.WaitFor(t, "both event results reported to the control plane", func() bool {
		var ids []string
		for _, rep := range r.cp.Reports(e.DeviceID) {
			if rep.Type == "event.result" && (strings.Contains(string(rep.Body), `"ev-check"`) || strings.Contains(string(rep.Body), `"ev-repoint"`)) {
				ids = append(ids, string(rep.Body))
			}
		}
		return len(ids) == 2
	})
}

// runAgent runs an agent until stop is called or the test ends, and
// waits for its admin API. stop cancels Run and returns its error.
func runAgent(t *testing.T, cfg *config.Config, log *slog.Logger) (a *Agent, stop func() error) {
	t.Helper()
	a, err := New(cfg, log, BuildInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	testkit.WaitFor(t, "the agent's admin API", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run = %v before the admin API answered", err)
		default:
		}
		_, err := adminclient.New(cfg.Admin.Socket).Status(context.Background())
		return err == nil
	})
	return a, stop
}

// checkStopOrder stops the agent and checks that its components stopped
// in the reverse of their start order.
func checkStopOrder(t *testing.T, a *Agent, stop func() error, rec *stopRecorder, started []string) {
	t.Helper()
	if err := stop(); err != nil {
		t.Errorf("Run = %v after a clean stop", err)
	}
	want := slices.Clone(started)
	slices.Reverse(want)
	if diff := cmp.Diff(want, rec.stopped()); diff != "" {
		t.Errorf("stop order (-want +got):\n%s", diff)
	}
	for _, c := range a.Status().Components {
		if c.State != "stopped" {
			t.Errorf("component %s: %s after Run returned, want stopped", c.Name, c.State)
		}
	}
}

// stopRecorder is a slog handler that keeps the order of the
// supervisor's "component stopped" records.
type stopRecorder struct {
	attrs []slog.Attr
	all   *recorded // shared by the handlers With makes
}

type recorded struct {
	mu    sync.Mutex // guards names
	names []string
}

func newStopRecorder() *stopRecorder { return &stopRecorder{all: &recorded{}} }

func (h *stopRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *stopRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "component stopped" && r.Message != "component stopped with error" {
		return nil
	}
	for _, a := range h.attrs {
		if a.Key == LogKeyComponent {
			h.all.mu.Lock()
			h.all.names = append(h.all.names, a.Value.String())
			h.all.mu.Unlock()
		}
	}
	return nil
}

func (h *stopRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &stopRecorder{attrs: append(slices.Clone(h.attrs), as...), all: h.all}
}

func (h *stopRecorder) WithGroup(string) slog.Handler { return h }

func (h *stopRecorder) stopped() []string {
	h.all.mu.Lock()
	defer h.all.mu.Unlock()
	return slices.Clone(h.all.names)
}
