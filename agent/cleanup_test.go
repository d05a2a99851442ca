package agent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/internal/testkit"
)

// freePort is a loopback address nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestFailedBuildIsUndone: when a component cannot be built (or the
// process cannot be set up), Run returns an error that names what is
// wrong, and everything set up before it is undone: the admin socket and
// the metrics port can be bound again, the state store opened again (its
// lock released), and no goroutine is left behind. The cases fail at each
// step of the build, in order; the ones that depend on another link show
// the build order (the event link's credentials from the control plane
// need the control plane link).
func TestFailedBuildIsUndone(t *testing.T) {
	r := newCloudRig(t)
	tests := []struct {
		name     string
		enrolled bool
		state    func(t *testing.T, dir string) string // the state_dir to configure
		section  func(r *cloudRig, thing string) string
		wantErr  []string
	}{
		{
			name: "state directory is a file",
			state: func(t *testing.T, dir string) string {
				return writeFile(t, filepath.Join(dir, "file"), "not a directory")
			},
			wantErr: []string{"file"},
		},
		{
			name:    "reference to a missing keystore",
			section: func(*cloudRig, string) string { return "keystores:\n  references: {edge-tls: no-such-store}\n" },
			wantErr: []string{"test.yaml:", "keystores.references.edge-tls", "no-such-store"},
		},
		{
			name: "virtual host with a missing keystore",
			section: func(*cloudRig, string) string {
				return "clients:\n  virtual_hosts:\n    - {name: hub, listen: '127.0.0.1:0', ssl: {enabled: true, keystore: no-such-store, key_alias: hub}}\n"
			},
			wantErr: []string{"test.yaml:", "clients.virtual_hosts[0].ssl", "no-such-store"},
		},
		{
			name:     "update channel with a missing keystore",
			enrolled: true,
			section: func(r *cloudRig, _ string) string {
				return strings.Replace(r.updatesSection(), "ref://device-tls", "ref://no-such-ref", 1)
			},
			wantErr: []string{"updates.ssl", "no-such-ref"},
		},
		{
			name:    "control plane link on a node never enrolled",
			section: func(*cloudRig, string) string { return cloudSection() },
			wantErr: []string{"test.yaml:", "cloud.enabled", "not enrolled"},
		},
		{
			name:     "event link with credentials from the control plane, its link off",
			enrolled: true,
			section: func(r *cloudRig, thing string) string {
				return r.updatesSection() + r.iotSection(thing, "{source: cloud}")
			},
			wantErr: []string{"test.yaml:", "iot.credentials.source", "cloud.enabled"},
		},
		{
			name:     "event link with a missing truststore, after the other links",
			enrolled: true,
			section: func(r *cloudRig, thing string) string {
				return r.updatesSection() + cloudSection() + strings.Replace(r.iotSection(thing, "{source: cloud}"), "ref://cloud-trust", "ref://no-such-ref", 1)
			},
			wantErr: []string{"iot.ssl", "no-such-ref"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, thing := t.TempDir(), "none"
			if tt.enrolled {
				var e *Enrollment
				dir, e = r.enroll(t)
				thing = e.DeviceID
			}
			stateDir := dir
			if tt.state != nil {
				stateDir = tt.state(t, dir)
			}
			var section string
			if tt.section != nil {
				section = tt.section(r, thing)
			}
			cfg := configIn(t, stateDir, section)
			cfg.Admin.Socket = filepath.Join(t.TempDir(), "admin.sock")
			cfg.Metrics.Listen = freePort(t)
			goroutines := runtime.NumGoroutine()

			a, err := New(cfg, slog.New(slog.DiscardHandler), BuildInfo{Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			err = a.Run(context.Background())
			if err == nil {
				t.Fatal("Run = nil, want a build error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Run = %q, want it to name %q", err, want)
				}
			}
			checkUndone(t, cfg.Admin.Socket, cfg.Metrics.Listen, stateDir, goroutines)
		})
	}
}

// TestBusyMetricsPortIsUndone: the metrics port is bound after the admin
// socket; when it is taken, the admin socket is released again.
func TestBusyMetricsPortIsUndone(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cfg := configIn(t, dir, "")
	cfg.Metrics.Listen = busy.Addr().String()
	goroutines := runtime.NumGoroutine()
	a, err := New(cfg, slog.New(slog.DiscardHandler), BuildInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics: listen "+cfg.Metrics.Listen) {
		t.Fatalf("Run = %v, want the metrics listen error", err)
	}
	checkUndone(t, cfg.Admin.Socket, "", dir, goroutines)
}

// checkUndone checks that a Run that failed left nothing behind.
func checkUndone(t *testing.T, socket, metrics, stateDir string, goroutines int) {
	t.Helper()
	if _, err := os.Lstat(socket); err == nil {
		t.Errorf("admin socket %s left behind", socket)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Errorf("admin socket cannot be bound again: %v", err)
	} else {
		ln.Close()
	}
	if metrics != "" {
		ln, err := net.Listen("tcp", metrics)
		if err != nil {
			t.Errorf("metrics port cannot be bound again: %v", err)
		} else {
			ln.Close()
		}
	}
	if fi, err := os.Stat(stateDir); err == nil && fi.IsDir() {
		testkit.OpenStore(t, stateDir) // fails the test while the lock is held
	}
	waitGoroutines(t, goroutines)
}

// waitGoroutines waits for the goroutine count to fall back to n: what
// the agent started must end, though not necessarily at once (an HTTP
// server's connection goroutines notice a close a little later).
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			buf := make([]byte, 1<<20)
			t.Logf("%d goroutines, %d before Run:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
	})
	testkit.WaitFor(t, "the goroutines Run started to end", func() bool { return runtime.NumGoroutine() <= n })
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBusyVirtualHostPortAtStart: a virtual host binds its port when it
// starts, under the supervisor, so a busy port is not a build error: the
// agent runs, reports the component failing with the address and is not
// ready; once the port is free the component comes up on a restart. After
// the agent stops, nothing is left behind.
func TestBusyVirtualHostPortAtStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cfg := configIn(t, dir, "clients:\n  virtual_hosts:\n    - {name: hub, listen: '"+busy.Addr().String()+"'}\n")
	cfg.Metrics.Listen = freePort(t)
	goroutines := runtime.NumGoroutine()
	a, stop := runAgent(t, cfg, slog.New(slog.DiscardHandler))
	clientapi := func() adminapi.Component {
		for _, c := range a.Status().Components {
			if c.Name == "clientapi" {
				return c
			}
		}
		t.Fatalf("no clientapi component in %v", componentNames(a))
		return adminapi.Component{}
	}
	testkit.WaitFor(t, "the virtual host's start to fail", func() bool { return clientapi().Restarts > 0 })
	if c := clientapi(); !strings.Contains(c.LastError, busy.Addr().String()) || a.Ready() {
		t.Errorf("clientapi = %+v, ready %v; want its error naming %s, not ready", c, a.Ready(), busy.Addr())
	}
	busy.Close()
	testkit.WaitFor(t, "the virtual host up once its port is free", a.Ready)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	checkUndone(t, cfg.Admin.Socket, cfg.Metrics.Listen, dir, goroutines)
	if ln, err := net.Listen("tcp", busy.Addr().String()); err != nil {
		t.Errorf("the virtual host's port cannot be bound again: %v", err)
	} else {
		ln.Close()
	}
}

// TestSupervisorRefusalIsUndone: the supervisor checks the component list
// after the listeners are bound (here a second component named "admin");
// its refusal releases them too.
func TestSupervisorRefusalIsUndone(t *testing.T) {
	dir := t.TempDir()
	cfg := configIn(t, dir, "")
	cfg.Metrics.Listen = freePort(t)
	goroutines := runtime.NumGoroutine()
	a, err := New(cfg, slog.New(slog.DiscardHandler), BuildInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	a.extra = []supervisor.Spec{{Name: "admin", Runner: runnerFunc(func(ctx context.Context) error { <-ctx.Done(); return nil })}}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), `duplicate "admin"`) {
		t.Fatalf("Run = %v, want the supervisor's duplicate name error", err)
	}
	checkUndone(t, cfg.Admin.Socket, cfg.Metrics.Listen, dir, goroutines)
}
