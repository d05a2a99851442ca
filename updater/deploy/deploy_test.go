package deploy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/scripts"
)

const (
	deviceType     = "edge-test"
	stockModules   = "/usr/share/mender/modules/v3"
	stockSingleFil = stockModules + "/single-file"
)

// env is one device against a devcloud Mender server over mTLS.
type env struct {
	t       *testing.T
	srv     *devcloud.MenderServer
	client  *updater.Client
	db      *store.DB
	m       *deploy.Machine
	dest    string // where the single-file module installs app.conf
	modules string
	reg     *prom.Registry
	metrics *deploy.Metrics
	// download tunes the artifact download; resumes wait 10 ms.
	download updater.DownloadOptions
	ranges   *rangeCounter
}

// rangeCounter counts the requests that resume a download.
type rangeCounter struct {
	next http.RoundTripper
	n    atomic.Int32
}

func (c *rangeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Range") != "" {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// metric returns the value of a counter or gauge with the given labels.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	return promtest.Value(e.t, e.reg, name, labels...)
}

type envOptions struct {
	// wrap lets a test see or alter status reports on their way.
	wrap func(deploy.Reporter) deploy.Reporter
	// modules is the modules directory; default the stock one.
	modules string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	peertest.Require(t, stockSingleFil)
	srv, tlsCfg := startMenderServer(t)
	tr := &http.Transport{TLSClientConfig: tlsCfg, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	authKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rt := &rangeCounter{next: tr}
	client, err := updater.NewClient(updater.ClientOptions{
		ServerURL: srv.URL(), HTTP: &http.Client{Transport: rt}, Key: authKey,
		Identity: map[string]any{"edgefort_id": t.Name()}, AgentVersion: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, client: client, ranges: rt, dest: t.TempDir(), modules: o.modules, download: updater.DownloadOptions{InitialDelay: 10 * time.Millisecond}}
	if e.modules == "" {
		e.modules = stockModules
	}
	state := t.TempDir()
	e.db = testkit.OpenStore(t, state)
	var rep deploy.Reporter = client
	if o.wrap != nil {
		rep = o.wrap(client)
	}
	runner := &module.Runner{Dir: e.modules, Timeout: time.Minute, KillGrace: time.Second}
	e.m, err = deploy.New(deploy.Options{
		Store:       e.db,
		DeviceType:  deviceType,
		WorkDir:     filepath.Join(state, "updates"),
		Installers:  runner.Lookup,
		Scripts:     &scripts.Runner{ArtifactDir: filepath.Join(state, "updates", "scripts")},
		Reporter:    rep,
		ReportRetry: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The currently installed version of the file.
	if err := os.WriteFile(e.appConf(), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) appConf() string { return filepath.Join(e.dest, "app.conf") }

func (e *env) content() string {
	e.t.Helper()
	b, err := os.ReadFile(e.appConf())
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// singleFile builds a single-file Artifact installing app.conf in dest.
func singleFile(t *testing.T, name, dest, content string, extra ...func(*artifact.Spec)) []byte {
	t.Helper()
	a := testkit.SingleFile(name, deviceType, dest, "app.conf", []byte(content))
	a.Edit = func(spec *artifact.Spec) {
		for _, f := range extra {
			f(spec)
		}
	}
	return a.Bytes(t)
}

// deploy uploads an Artifact and creates a deployment for every device.
func (e *env) deploy(data []byte) string {
	e.t.Helper()
	name, err := e.srv.UploadArtifact(bytes.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := e.srv.CreateDeployment(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// runPoller runs the update loop until the deployment has a final status
// on the server, and returns the statuses.
func (e *env) runPoller(depID string) []string {
	e.t.Helper()
	if e.reg == nil {
		e.reg = prom.NewRegistry()
		var err error
		if e.metrics, err = deploy.NewMetrics(e.reg); err != nil {
			e.t.Fatal(err)
		}
	}
	p, err := deploy.NewPoller(deploy.PollerOptions{Client: e.client, Machine: e.m, PollInterval: time.Hour, RetryInterval: 50 * time.Millisecond, Metrics: e.metrics, Download: e.download})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() {
		defer wg.Done()
		runErr = p.Run(ctx)
	}()
	defer func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			e.t.Errorf("poller: %v", runErr)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st := e.statuses(depID); len(st) > 0 && final(st[len(st)-1]) {
			// Let the machine finish its bookkeeping after the report.
			for time.Now().Before(deadline) {
				if rec, _ := e.m.InFlight(); rec == nil {
					return st
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if rec, _ := e.m.InFlight(); rec == nil && p.Status().LastResult != nil && p.Status().LastResult.Outcome == deploy.OutcomeAborted {
			return e.statuses(depID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("deployment %s did not end; statuses %q, poller %+v", depID, e.statuses(depID), p.Status())
	return nil
}

func final(s string) bool {
	return s == updater.StatusSuccess || s == updater.StatusFailure || s == updater.StatusAlreadyInstalled
}

func (e *env) deviceID() string {
	sets := e.srv.AuthSets()
	if len(sets) == 0 {
		return ""
	}
	return sets[0].DeviceID
}

func (e *env) statuses(depID string) []string { return e.srv.Statuses(e.deviceID(), depID) }

func (e *env) device() deploy.Device {
	e.t.Helper()
	d, err := e.m.Device()
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func TestDeploymentSingleFile(t *testing.T) {
	e := newEnv(t, envOptions{})
	dep := e.deploy(singleFile(t, "app-v2", e.dest, "v2\n"))
	got := e.runPoller(dep)
	want := []string{"downloading", "installing", "installing", "success"}
	if !slices.Equal(got, want) {
		t.Errorf("statuses = %q, want %q", got, want)
	}
	if c := e.content(); c != "v2\n" {
		t.Errorf("app.conf = %q, want v2", c)
	}
	dev := e.device()
	if dev.ArtifactName != "app-v2" || dev.Provides["rootfs-image.single-file.version"] != "app-v2" {
		t.Errorf("device = %+v, want app-v2 with its provides", dev)
	}
	inv := e.srv.Inventory(e.deviceID())
	if string(inv["device_type"].Value) != `"`+deviceType+`"` || string(inv["edgefort_version"].Value) != `"test"` {
		t.Errorf("inventory = %+v", inv)
	}

	// The same Artifact again: the server sees it is installed.
	dep2, err := e.srv.CreateDeployment("app-v2")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.runPoller(dep2); !slices.Equal(got, []string{"already-installed"}) {
		t.Errorf("second deployment statuses = %q, want already-installed", got)
	}
	if c := e.content(); c != "v2\n" {
		t.Errorf("app.conf = %q after already-installed", c)
	}
	if n := e.metric("edgefort_updates_deployments_total", "outcome", "success"); n != 1 {
		t.Errorf("deployments_total{success} = %v, want 1", n)
	}
	if n := e.metric("edgefort_updates_checks_total", "result", "deployment"); n != 1 {
		t.Errorf("checks_total{deployment} = %v, want 1", n)
	}
	if e.metric("edgefort_updates_last_check_timestamp_seconds") == 0 {
		t.Error("last check timestamp not set")
	}
}

// abortAfterFirstInstalling aborts the deployment on the server right
// after the device's first "installing" report got through, so that the
// abort is found by the check before the commit.
type abortAfterFirstInstalling struct {
	deploy.Reporter
	srv  *devcloud.MenderServer
	once sync.Once
}

func (a *abortAfterFirstInstalling) ReportStatus(ctx context.Context, id, status, sub string) error {
	err := a.Reporter.ReportStatus(ctx, id, status, sub)
	if err == nil && status == updater.StatusInstalling {
		a.once.Do(func() {
			if aerr := a.srv.Abort(id); aerr != nil {
				panic(aerr)
			}
		})
	}
	return err
}

func TestDeploymentAbortedMidwayRollsBack(t *testing.T) {
	var ab *abortAfterFirstInstalling
	e := newEnv(t, envOptions{wrap: func(r deploy.Reporter) deploy.Reporter {
		ab = &abortAfterFirstInstalling{Reporter: r}
		return ab
	}})
	ab.srv = e.srv
	dep := e.deploy(singleFile(t, "app-v2", e.dest, "v2\n"))
	got := e.runPoller(dep)
	if want := []string{"downloading", "installing"}; !slices.Equal(got, want) {
		t.Errorf("statuses = %q, want %q (the commit check got 409)", got, want)
	}
	if c := e.content(); c != "v1\n" {
		t.Errorf("app.conf = %q, want the rolled back v1", c)
	}
	if dev := e.device(); dev.ArtifactName != deploy.UnknownArtifact {
		t.Errorf("device artifact = %q, want it unchanged", dev.ArtifactName)
	}
}

// flakyModule delegates to the stock single-file module but fails its
// ArtifactInstall after the file was put in place.
const flakyModule = `#!/bin/sh
if [ "$1" = ArtifactInstall ]; then
	` + stockSingleFil + ` "$@" || exit $?
	echo "simulated failure: disk full" >&2
	exit 3
fi
exec ` + stockSingleFil + ` "$@"
`

func TestDeploymentFailedModuleRollsBackAndUploadsLog(t *testing.T) {
	mods := t.TempDir()
	if err := os.WriteFile(filepath.Join(mods, "single-file"), []byte(flakyModule), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{modules: mods})
	dep := e.deploy(singleFile(t, "app-v2", e.dest, "v2\n"))
	got := e.runPoller(dep)
	if want := []string{"downloading", "installing", "failure"}; !slices.Equal(got, want) {
		t.Errorf("statuses = %q, want %q", got, want)
	}
	if c := e.content(); c != "v1\n" {
		t.Errorf("app.conf = %q, want the rolled back v1", c)
	}
	logs := e.srv.Logs(e.deviceID(), dep)
	var all []string
	for _, l := range logs {
		all = append(all, l.Level+": "+l.Message)
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"simulated failure: disk full", "rolling back", "deployment failed"} {
		if !strings.Contains(joined, want) {
			t.Errorf("uploaded log lacks %q:\n%s", want, joined)
		}
	}
	if dev := e.device(); dev.ArtifactName != deploy.UnknownArtifact {
		t.Errorf("device artifact = %q, want it unchanged", dev.ArtifactName)
	}
}

// TestRejectedBeforeInstall: Artifacts that must not install fail in
// Download, with the file untouched and the reason in the log.
func TestRejectedBeforeInstall(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := singleFile(t, "app-v2", e.dest, "v2\n")
	plain := singleFile(t, "app-v3", e.dest, "v3\n", func(s *artifact.Spec) { s.Compression = artifact.None })
	tampered := bytes.Replace(plain, []byte("v3\n"), []byte("v4\n"), 1)
	if bytes.Equal(plain, tampered) {
		t.Fatal("the payload was not found to tamper with")
	}
	otherType := singleFile(t, "app-v5", e.dest, "v5\n", func(s *artifact.Spec) { s.Depends.DeviceTypes = []string{"other"} })
	for _, tc := range []struct {
		name, reason string
		data         []byte
		job          deploy.Job
	}{
		{"tampered payload", "checksum", tampered, deploy.Job{}},
		{"wrong device type", "device type", otherType, deploy.Job{}},
		{"name mismatch", "announced artifact", good, deploy.Job{ArtifactName: "app-v9"}},
		{"garbage", "artifact", []byte("not a tar at all"), deploy.Job{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.m.Install(context.Background(), bytes.NewReader(tc.data), tc.job)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != deploy.OutcomeFailure || !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("result = %+v, want failure mentioning %q", res, tc.reason)
			}
			if c := e.content(); c != "v1\n" {
				t.Errorf("app.conf = %q, want v1 untouched", c)
			}
			if rec, _ := e.m.InFlight(); rec != nil {
				t.Errorf("record left behind: %+v", rec)
			}
		})
	}
}

func TestStandaloneInstallCommitRollback(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	res, err := e.m.Install(ctx, bytes.NewReader(singleFile(t, "app-v2", e.dest, "v2\n")), deploy.Job{Standalone: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != deploy.OutcomeInstalled || e.content() != "v2\n" {
		t.Fatalf("install: %+v, content %q", res, e.content())
	}
	// A restart keeps it waiting.
	if res, err := e.m.Resume(ctx); err != nil || res.Outcome != deploy.OutcomeInstalled {
		t.Fatalf("resume = %+v, %v", res, err)
	}
	if _, err := e.m.Install(ctx, bytes.NewReader(nil), deploy.Job{}); !errors.Is(err, deploy.ErrBusy) {
		t.Errorf("second install: %v, want ErrBusy", err)
	}
	if e.device().ArtifactName != deploy.UnknownArtifact {
		t.Errorf("device changed before commit: %+v", e.device())
	}
	res, err = e.m.Rollback(ctx)
	if err != nil || res.Outcome != deploy.OutcomeFailure || !res.RolledBack {
		t.Fatalf("rollback = %+v, %v", res, err)
	}
	if c := e.content(); c != "v1\n" {
		t.Errorf("after rollback app.conf = %q", c)
	}
	if _, err := e.m.Commit(ctx); !errors.Is(err, deploy.ErrNothingToCommit) {
		t.Errorf("commit with nothing installed: %v", err)
	}

	res, err = e.m.Install(ctx, bytes.NewReader(singleFile(t, "app-v3", e.dest, "v3\n")), deploy.Job{Standalone: true})
	if err != nil || res.Outcome != deploy.OutcomeInstalled {
		t.Fatalf("install v3 = %+v, %v", res, err)
	}
	res, err = e.m.Commit(ctx)
	if err != nil || res.Outcome != deploy.OutcomeSuccess {
		t.Fatalf("commit = %+v, %v", res, err)
	}
	if c := e.content(); c != "v3\n" || e.device().ArtifactName != "app-v3" {
		t.Errorf("after commit: content %q, device %+v", c, e.device())
	}
}

// TestStateScriptsRun: Artifact state scripts run around the module's
// states, in order, and a failing Leave script rolls the install back.
func TestStateScriptsRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	trace := filepath.Join(t.TempDir(), "trace")
	script := func(name string, exit int) artifact.Script {
		return artifact.Script{Name: name, Data: []byte(fmt.Sprintf("#!/bin/sh\necho %s >> %s\nexit %d\n", name, trace, exit))}
	}
	ok := singleFile(t, "app-v2", e.dest, "v2\n", func(s *artifact.Spec) {
		s.Scripts = []artifact.Script{script("ArtifactCommit_Enter_00", 0), script("ArtifactInstall_Enter_00", 0), script("ArtifactInstall_Leave_00", 0)}
	})
	res, err := e.m.Install(context.Background(), bytes.NewReader(ok), deploy.Job{})
	if err != nil || res.Outcome != deploy.OutcomeSuccess {
		t.Fatalf("install = %+v, %v", res, err)
	}
	b, _ := os.ReadFile(trace)
	if got, want := strings.Fields(string(b)), []string{"ArtifactInstall_Enter_00", "ArtifactInstall_Leave_00", "ArtifactCommit_Enter_00"}; !slices.Equal(got, want) {
		t.Errorf("scripts ran %q, want %q", got, want)
	}

	os.Remove(trace)
	bad := singleFile(t, "app-v3", e.dest, "v3\n", func(s *artifact.Spec) {
		s.Scripts = []artifact.Script{script("ArtifactInstall_Leave_00", 1), script("ArtifactRollback_Enter_00", 0), script("ArtifactFailure_Enter_00", 0)}
	})
	res, err = e.m.Install(context.Background(), bytes.NewReader(bad), deploy.Job{})
	if err != nil || res.Outcome != deploy.OutcomeFailure || !strings.Contains(res.Reason, "ArtifactInstall_Leave") {
		t.Fatalf("install = %+v, %v", res, err)
	}
	if c := e.content(); c != "v2\n" {
		t.Errorf("app.conf = %q, want v2 restored", c)
	}
	b, _ = os.ReadFile(trace)
	if got, want := strings.Fields(string(b)), []string{"ArtifactInstall_Leave_00", "ArtifactRollback_Enter_00", "ArtifactFailure_Enter_00"}; !slices.Equal(got, want) {
		t.Errorf("scripts ran %q, want %q", got, want)
	}
}

// TestPollerHonoursRetryAfterAndCutDownloads: a 429 on the deployment
// check is waited out as the server asks, and a download cut mid-way
// resumes; the deployment still succeeds.
func TestPollerHonoursRetryAfterAndCutDownloads(t *testing.T) {
	e := newEnv(t, envOptions{})
	var bulk strings.Builder
	for i := range 40000 {
		fmt.Fprintf(&bulk, "line %d of v2\n", i)
	}
	big := bulk.String()
	data := singleFile(t, "app-v2", e.dest, big, func(s *artifact.Spec) { s.Compression = artifact.None })
	dep := e.deploy(data)
	e.srv.SetFaults(devcloud.MenderFaults{TooMany: devcloud.EndpointNext, RetryAfter: time.Second, CutAfter: int64(len(data) / 2)})
	start := time.Now()
	got := e.runPoller(dep)
	if want := []string{"downloading", "installing", "installing", "success"}; !slices.Equal(got, want) {
		t.Errorf("statuses = %q, want %q", got, want)
	}
	if c := e.content(); c != big {
		t.Errorf("app.conf has %d bytes, want %d", len(c), len(big))
	}
	if n := e.ranges.n.Load(); n != 1 {
		t.Errorf("%d resumed requests, want 1 after the cut", n)
	}
	// The poller's own retry interval is 50 ms: only the server's
	// Retry-After explains a second of waiting.
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("deployment done %v after the 429 asked for 1 s", waited)
	}
	if n := e.metric("edgefort_updates_checks_total", "result", "error"); n != 1 {
		t.Errorf("checks_total{error} = %v, want 1 (the 429)", n)
	}
}

// TestWriteGuard: a deployment that keeps being resumed (a crash loop) is
// forced to its end once the record was written too often: rolled back and
// reported as a failure, once, with no further forcing on the way out.
func TestWriteGuard(t *testing.T) {
	e := newEnv(t, envOptions{})
	rec := deploy.Record{DeploymentID: "", ArtifactName: "app-v9", Step: deploy.StepInstall, Installed: true, Writes: 29}
	if err := e.db.Bucket("updates").Put("inflight", rec); err != nil {
		t.Fatal(err)
	}
	res, err := e.m.Resume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != deploy.OutcomeFailure || !res.RolledBack || res.Inconsistent || !strings.Contains(res.Reason, "interrupted during ArtifactInstall") {
		t.Errorf("result = %+v, want a rolled back failure", res)
	}
	if left, _ := e.m.InFlight(); left != nil {
		t.Errorf("record left: %+v", left)
	}
	if dev := e.device(); dev.ArtifactName != deploy.UnknownArtifact {
		t.Errorf("device = %q", dev.ArtifactName)
	}

	// At the limit during the rollback: marked inconsistent, ended.
	rec = deploy.Record{ArtifactName: "app-v9", Step: deploy.StepRollback, Installed: true, Writes: 31}
	if err := e.db.Bucket("updates").Put("inflight", rec); err != nil {
		t.Fatal(err)
	}
	res, err = e.m.Resume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != deploy.OutcomeFailure || !res.Inconsistent || !strings.Contains(res.Reason, "looped") {
		t.Errorf("result = %+v, want an inconsistent failure", res)
	}
	if dev := e.device(); dev.ArtifactName != "app-v9_INCONSISTENT" {
		t.Errorf("device = %q, want app-v9_INCONSISTENT", dev.ArtifactName)
	}
}

func TestSetPollInterval(t *testing.T) {
	e := newEnv(t, envOptions{})
	p, err := deploy.NewPoller(deploy.PollerOptions{Client: e.client, Machine: e.m, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Status().PollInterval; got != time.Hour {
		t.Errorf("poll interval = %v, want 1h", got)
	}
	for _, bad := range []time.Duration{time.Second, 8 * 24 * time.Hour} {
		if err := p.SetPollInterval(bad); err == nil {
			t.Errorf("SetPollInterval(%v) accepted", bad)
		}
	}
	if err := p.SetPollInterval(10 * time.Second); err != nil || p.Status().PollInterval != 10*time.Second {
		t.Errorf("SetPollInterval(10s) = %v, interval %v", err, p.Status().PollInterval)
	}
}

// TestCheckNowWaitsForRetryAfter: a check asked for by hand or by the
// cloud (CheckNow) while the server's Retry-After runs is held until it
// ends, instead of asking a server that has just said 429 again; the
// server sees one request, and the poller says when it will check.
func TestCheckNowWaitsForRetryAfter(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.srv.SetFaults(devcloud.MenderFaults{TooMany: devcloud.EndpointNext, TooManyCount: -1, RetryAfter: time.Hour})
	logs := &testkit.SyncBuffer{}
	p, err := deploy.NewPoller(deploy.PollerOptions{Client: e.client, Machine: e.m, PollInterval: time.Hour,
		RetryInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("poller: %v", err)
		}
	}()
	testkit.WaitFor(t, "the first check answered 429", func() bool { return e.srv.Stats().TooMany == 1 })
	testkit.WaitFor(t, "the 429 recorded", func() bool { return p.Status().LastCheckErr != "" })
	asked := time.Now()
	p.CheckNow()
	testkit.WaitFor(t, "the check held", func() bool { return strings.Contains(logs.String(), "Retry-After holds it") })
	if n := e.srv.Stats().Requests[devcloud.EndpointNext]; n != 1 {
		t.Errorf("deployment checks on the server = %d, want 1: the check asked for went to a server inside its Retry-After", n)
	}
	if next := p.Status().NextCheck; next.Before(asked.Add(59 * time.Minute)) {
		t.Errorf("next check at %v, want the end of the hour's Retry-After", next)
	}
}
