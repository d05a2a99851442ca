package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/rootfs"
	"github.com/edgefort/edgefort/updater/rootfs/rootfstest"
)

const abPartSize = 256 << 10

// statusRecorder is the server's side of the reports: the statuses of a
// deployment and its uploaded log.
type statusRecorder struct {
	mu       sync.Mutex
	statuses []string
	log      []updater.LogEntry
}

func (r *statusRecorder) ReportStatus(_ context.Context, _, status, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.statuses); n == 0 || r.statuses[n-1] != status {
		r.statuses = append(r.statuses, status)
	}
	return nil
}

func (r *statusRecorder) UploadLog(_ context.Context, _ string, entries []updater.LogEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = entries
	return nil
}

// abDevice is a simulated A/B device running the agent's state machine:
// every run is one agent process, and a reboot request ends it, as the
// host going down would.
type abDevice struct {
	t      *testing.T
	dev    *rootfstest.Device
	db     *store.DB
	work   string
	rep    *statusRecorder
	oldImg []byte
	// health is what the agent's health check answers in the next run.
	health error
	// cut, when set, is asked before and after each installer call of the
	// next run; true cuts the power there.
	cut func(state string, after bool) bool
}

func newABDevice(t *testing.T) *abDevice {
	t.Helper()
	old := bytes.Repeat([]byte("rootfs-v1 "), abPartSize/10)
	old = append(old, make([]byte, abPartSize-len(old))...)
	dev, err := rootfstest.New(t.TempDir(), old, make([]byte, abPartSize))
	if err != nil {
		t.Fatal(err)
	}
	return &abDevice{t: t, dev: dev, db: testkit.OpenStore(t, ""), work: t.TempDir(), rep: &statusRecorder{}, oldImg: old}
}

// cutInstaller passes calls on to the rootfs installer, cutting the power
// (ending the process's context) where the device's cut says.
type cutInstaller struct {
	module.Installer
	cut    func(state string, after bool) bool
	cancel context.CancelFunc
}

func (c cutInstaller) Call(ctx context.Context, p module.Payload, state string) error {
	if c.cut != nil && c.cut(state, false) {
		c.cancel()
		return ctx.Err()
	}
	err := c.Installer.Call(ctx, p, state)
	if c.cut != nil && c.cut(state, true) {
		c.cancel()
		return ctx.Err()
	}
	return err
}

// run is one agent process on the device: fn on a new machine. It
// returns fn's result and whether the process ended in a reboot or a power
// cut (the host goes down either way).
func (a *abDevice) run(fn func(context.Context, *deploy.Machine) (deploy.Result, error)) (deploy.Result, bool) {
	a.t.Helper()
	ctx, cancel := context.WithCancel(a.t.Context())
	defer cancel()
	health := a.health
	in, err := rootfs.New(rootfs.Options{
		PartA: a.dev.PartA, PartB: a.dev.PartB, Env: a.dev.Env, ReadBack: true,
		MountInfo: a.dev.MountInfo, Cmdline: a.dev.Cmdline,
		Ready: func(context.Context) error { return health },
	})
	if err != nil {
		a.t.Fatal(err)
	}
	down := false
	m, err := deploy.New(deploy.Options{
		Store: a.db, DeviceType: deviceType, WorkDir: a.work, Reporter: a.rep,
		Installers: func(typ string) (module.Installer, error) {
			if typ != rootfs.Type {
				return nil, fmt.Errorf("no installer for %s", typ)
			}
			return cutInstaller{Installer: in, cut: a.cut, cancel: func() { down = true; cancel() }}, nil
		},
		HostReboot: func(context.Context) error { down = true; cancel(); return nil },
	})
	if err != nil {
		a.t.Fatal(err)
	}
	res, err := fn(ctx, m)
	if down {
		if !errors.Is(err, context.Canceled) {
			a.t.Fatalf("the host went down but the machine returned %v", err)
		}
		return res, true
	}
	if err != nil {
		a.t.Fatal(err)
	}
	return res, false
}

func (a *abDevice) boot() string {
	a.t.Helper()
	p, err := a.dev.Boot(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	return p
}

func (a *abDevice) env() bootenv.Vars {
	a.t.Helper()
	v, err := a.dev.Env.Read(context.Background(), bootenv.VarUpgradeAvailable, bootenv.VarBootPart)
	if err != nil {
		a.t.Fatal(err)
	}
	return v
}

func (a *abDevice) install(art []byte) (deploy.Result, bool) {
	return a.run(func(ctx context.Context, m *deploy.Machine) (deploy.Result, error) {
		return m.Install(ctx, bytes.NewReader(art), deploy.Job{DeploymentID: "dep-1", ArtifactName: "rootfs-v2"})
	})
}

func (a *abDevice) resume() (deploy.Result, bool) {
	return a.run(func(ctx context.Context, m *deploy.Machine) (deploy.Result, error) { return m.Resume(ctx) })
}

func (a *abDevice) device() deploy.Device {
	a.t.Helper()
	d, found, err := store.Get[deploy.Device](a.db.Bucket("updates"), "device")
	if err != nil {
		a.t.Fatal(err)
	}
	if !found {
		d.ArtifactName = deploy.UnknownArtifact
	}
	return d
}

// rootfsArtifact is a rootfs-image Artifact written by edgefort's writer.
func rootfsArtifact(t *testing.T, img []byte) []byte {
	t.Helper()
	return rootfsArtifactWith(t, img, func(*artifact.Spec) {})
}

// rootfsArtifactWith is rootfsArtifact with edit applied to the spec.
func rootfsArtifactWith(t *testing.T, img []byte, edit func(*artifact.Spec)) []byte {
	t.Helper()
	p := artifact.RootfsImage("rootfs-v2", artifact.ImageDefaults{})
	p.Files = append(p.Files, testkit.Source("rootfs.ext4", img))
	var buf bytes.Buffer
	spec := &artifact.Spec{Name: "rootfs-v2", Depends: artifact.Depends{DeviceTypes: []string{deviceType}}, Payloads: []artifact.PayloadSpec{p}}
	edit(spec)
	if err := artifact.Write(&buf, spec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newImage() []byte { return bytes.Repeat([]byte("rootfs-v2 "), abPartSize/20) }

// TestRootfsRebootCommit: install, reboot into the new partition on trial,
// verify, commit: the device runs B for good and provides the new
// rootfs-image.version.
func TestRootfsRebootCommit(t *testing.T) {
	a := newABDevice(t)
	img := newImage()
	if _, down := a.install(rootfsArtifact(t, img)); !down {
		t.Fatal("the install did not reboot the host")
	}
	if got := a.env(); got[bootenv.VarUpgradeAvailable] != "1" || got[bootenv.VarBootPart] != "3" {
		t.Fatalf("boot environment before the reboot: %v", got)
	}
	if p := a.boot(); p != a.dev.PartB {
		t.Fatalf("booted %s, want the new partition", p)
	}
	res, down := a.resume()
	if down || res.Outcome != deploy.OutcomeSuccess {
		t.Fatalf("after the reboot: %+v (host down %v), want success", res, down)
	}
	if diff := cmp.Diff(bootenv.Vars{bootenv.VarUpgradeAvailable: "0", bootenv.VarBootPart: "3"}, a.env()); diff != "" {
		t.Errorf("boot environment after the commit (-want +got):\n%s", diff)
	}
	dev := a.device()
	if dev.ArtifactName != "rootfs-v2" || dev.Provides["rootfs-image.version"] != "rootfs-v2" {
		t.Errorf("device after the commit: %+v", dev)
	}
	part, err := os.ReadFile(a.dev.PartB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part[:len(img)], img) {
		t.Error("partition B does not hold the image")
	}
	want := []string{updater.StatusDownloading, updater.StatusInstalling, updater.StatusRebooting, updater.StatusInstalling, updater.StatusSuccess}
	if diff := cmp.Diff(want, a.rep.statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if p := a.boot(); p != a.dev.PartB {
		t.Errorf("the next boot picked %s, want B for good", p)
	}
}

// TestRootfsRollbacks: the new system never comes up (the boot loader
// falls back on the next boot), or it comes up but the agent fails its
// health check; either way the device ends on A, reported as a failure
// rolled back, with the reason in the log.
func TestRootfsRollbacks(t *testing.T) {
	tests := []struct {
		name string
		// trial is what happens after the reboot into the new partition:
		// it returns the partition the agent then runs on.
		trial      func(a *abDevice) string
		wantReason string
	}{
		{
			name: "the boot loader fell back",
			trial: func(a *abDevice) string {
				a.boot()        // B on trial: it hangs before the agent runs
				return a.boot() // the watchdog resets; bootcount=1 rolls back
			},
			wantReason: "came up on " + "", // completed below
		},
		{
			name: "the new agent is not healthy",
			trial: func(a *abDevice) string {
				a.health = errors.New("clientapi is not ready")
				return a.boot()
			},
			wantReason: "the agent in the new system is not healthy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newABDevice(t)
			if _, down := a.install(rootfsArtifact(t, newImage())); !down {
				t.Fatal("the install did not reboot the host")
			}
			tt.trial(a)
			res, down := a.resume()
			if !down {
				t.Fatalf("the rollback did not reboot: %+v", res)
			}
			a.health = nil
			if p := a.boot(); p != a.dev.PartA {
				t.Fatalf("after the rollback reboot the device runs %s, want A", p)
			}
			res, down = a.resume()
			if down || res.Outcome != deploy.OutcomeFailure || !res.RolledBack || res.Inconsistent {
				t.Fatalf("result %+v (host down %v), want a failure rolled back", res, down)
			}
			want := tt.wantReason
			if want == "came up on " {
				want = "came up on " + a.dev.PartA
			}
			if !strings.Contains(res.Reason, want) {
				t.Errorf("reason %q, want it to say %q", res.Reason, want)
			}
			if diff := cmp.Diff(bootenv.Vars{bootenv.VarUpgradeAvailable: "0", bootenv.VarBootPart: "2"}, a.env()); diff != "" {
				t.Errorf("boot environment after the rollback (-want +got):\n%s", diff)
			}
			if dev := a.device(); dev.ArtifactName != deploy.UnknownArtifact {
				t.Errorf("device after the rollback: %+v", dev)
			}
			if n := len(a.rep.statuses); n == 0 || a.rep.statuses[n-1] != updater.StatusFailure {
				t.Errorf("statuses %q, want failure last", a.rep.statuses)
			}
			if !logHas(a.rep.log, want) {
				t.Errorf("the uploaded log does not say %q", want)
			}
			part, err := os.ReadFile(a.dev.PartA)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(part, a.oldImg) {
				t.Error("partition A changed")
			}
		})
	}
}

func logHas(log []updater.LogEntry, s string) bool {
	for _, e := range log {
		if strings.Contains(e.Message, s) {
			return true
		}
	}
	return false
}

// TestRootfsPowerCutAtEachCall cuts the power before and after every call
// the state machine makes into the rootfs installer, then powers the
// device on again (the boot loader picks the partition) and lets the next
// agent resume, as many times as it reboots: the device must end on a
// bootable partition that matches what it reports, with the boot
// environment settled.
func TestRootfsPowerCutAtEachCall(t *testing.T) {
	// The calls of the way to a commit, and of the way back after the new
	// system's agent failed its health check.
	paths := []struct {
		unhealthy bool
		states    []string
	}{
		{false, []string{module.StateArtifactInstall, module.StateArtifactVerifyReboot, module.StateArtifactCommit, module.StateCleanup}},
		{true, []string{module.StateArtifactVerifyReboot, module.StateArtifactRollback, module.StateArtifactRollbackVerifyReboot, module.StateArtifactFailure, module.StateCleanup}},
	}
	for _, path := range paths {
		for _, state := range path.states {
			for _, after := range []bool{false, true} {
				name := "before " + state
				if after {
					name = "after " + state
				}
				if path.unhealthy {
					name = "unhealthy/" + name
				}
				t.Run(name, func(t *testing.T) { powerCut(t, state, after, path.unhealthy) })
			}
		}
	}
}

func powerCut(t *testing.T, state string, after, unhealthy bool) {
	a := newABDevice(t)
	if unhealthy {
		a.health = errors.New("clientapi is not ready")
	}
	fired := false
	a.cut = func(s string, aft bool) bool {
		if fired || s != state || aft != after {
			return false
		}
		fired = true
		return true
	}
	_, down := a.install(rootfsArtifact(t, newImage()))
	var res deploy.Result
	for boots := 0; down; boots++ {
		if boots > 10 {
			t.Fatal("the device keeps rebooting")
		}
		a.boot()
		res, down = a.resume()
	}
	if !fired {
		t.Fatalf("the cut %s %v never fired", state, after)
	}
	running, err := a.dev.Running()
	if err != nil {
		t.Fatal(err)
	}
	env, dev := a.env(), a.device()
	switch {
	case res.Outcome == deploy.OutcomeSuccess && !unhealthy:
		if running != a.dev.PartB || env[bootenv.VarBootPart] != "3" || dev.ArtifactName != "rootfs-v2" {
			t.Errorf("success reported, but the device runs %s, env %v, reports %q", running, env, dev.ArtifactName)
		}
	case res.Outcome == deploy.OutcomeFailure && res.RolledBack:
		if running != a.dev.PartA || env[bootenv.VarBootPart] != "2" || dev.ArtifactName != deploy.UnknownArtifact {
			t.Errorf("rollback reported, but the device runs %s, env %v, reports %q", running, env, dev.ArtifactName)
		}
	default:
		t.Fatalf("ended with %+v", res)
	}
	if env[bootenv.VarUpgradeAvailable] != "0" {
		t.Errorf("upgrade_available is %q at the end", env[bootenv.VarUpgradeAvailable])
	}
	if p := a.boot(); p != running {
		t.Errorf("the next boot picks %s, not the partition %s the device settled on", p, running)
	}
	t.Logf("ended %s, running %s", res.Outcome, filepath.Base(running))
}
