package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/internal/testkit"
)

// testConfig is a valid configuration on a fresh state directory with
// metrics on a free loopback port.
func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf("version: 1\nstate_dir: %s\nmetrics: {listen: '127.0.0.1:0'}\nsupervisor:\n  restart_initial: 1ms\n  restart_max: 10ms\n  shutdown_timeout: 1s\n%s", dir, extra)
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startAgent runs an agent until the test ends and waits for it to be
// running (not necessarily ready: extra components may never be).
func startAgent(t *testing.T, cfg *config.Config, extra ...supervisor.Spec) (*Agent, <-chan error) {
	t.Helper()
	return startAgentLog(t, cfg, slog.New(slog.DiscardHandler), extra...)
}

// startAgentLog is startAgent with the agent logging to log.
func startAgentLog(t *testing.T, cfg *config.Config, log *slog.Logger, extra ...supervisor.Spec) (*Agent, <-chan error) {
	t.Helper()
	a, err := New(cfg, log, BuildInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	a.extra = extra
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	testkit.WaitFor(t, "the agent's admin API", func() bool {
		_, err := adminclient.New(cfg.Admin.Socket).Status(context.Background())
		return err == nil
	})
	return a, done
}

type runnerFunc func(ctx context.Context) error

func (f runnerFunc) Run(ctx context.Context) error { return f(ctx) }

func adminGet(t *testing.T, socket, method, path string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest(method, "http://edgefort"+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminAPI(t *testing.T) {
	cfg := testConfig(t, "")
	broken := supervisor.Spec{Name: "broken", Runner: runnerFunc(func(ctx context.Context) error {
		return errors.New("backend unreachable")
	})}
	a, _ := startAgent(t, cfg, broken)
	testkit.WaitFor(t, "a restart of the broken component", func() bool {
		for _, c := range a.Status().Components {
			if c.Name == "broken" && c.Restarts > 0 {
				return true
			}
		}
		return false
	})

	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string
	}{
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/readyz", 503, "broken: "},
		{"GET", "/v1/status", 200, `"name": "admin"`},
		{"POST", "/v1/status", 405, ""},
		{"GET", "/nope", 404, ""},
	}
	for _, tt := range tests {
		code, body := adminGet(t, cfg.Admin.Socket, tt.method, tt.path)
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}

	_, body := adminGet(t, cfg.Admin.Socket, "GET", "/v1/status")
	var st adminapi.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	names := map[string]adminapi.Component{}
	for _, c := range st.Components {
		names[c.Name] = c
	}
	if st.Ready || names["broken"].LastError != "backend unreachable" || names["admin"].State != string(supervisor.StateRunning) {
		t.Errorf("status = %+v; want not ready, admin running, the broken component's error", st)
	}
	if !strings.HasPrefix(st.MetricsURL, "http://127.0.0.1:") {
		t.Errorf("metrics URL %q", st.MetricsURL)
	}
}

func TestAdminSocketIsPrivate(t *testing.T) {
	cfg := testConfig(t, "")
	startAgent(t, cfg)
	fi, err := statMode(cfg.Admin.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi != 0o600 {
		t.Errorf("admin socket mode = %o, want 600", fi)
	}
}

func TestSecondAgentOnSameStateDir(t *testing.T) {
	cfg := testConfig(t, "")
	startAgent(t, cfg)
	second, err := New(cfg, slog.New(slog.DiscardHandler), BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Run(context.Background())
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second agent: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), cfg.StateDir) {
		t.Errorf("error %q does not name the state directory", err)
	}
	// The first agent's socket must still answer.
	if code, _ := adminGet(t, cfg.Admin.Socket, "GET", "/healthz"); code != 200 {
		t.Errorf("first agent's healthz = %d after the refused second start", code)
	}
}

func TestBusyMetricsPortFailsStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, "")
	cfg.Metrics.Listen = ln.Addr().String()
	a, err := New(cfg, slog.New(slog.DiscardHandler), BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "metrics: listen "+ln.Addr().String()) {
		t.Fatalf("Run = %v, want a metrics listen error", err)
	}
}

func TestShutdownIsBounded(t *testing.T) {
	cfg := testConfig(t, "")
	release := make(chan struct{})
	defer close(release)
	stubborn := supervisor.Spec{Name: "stubborn", Runner: runnerFunc(func(ctx context.Context) error {
		<-release // ignores ctx: the agent must give up on it
		return nil
	})}
	a, err := New(cfg, slog.New(slog.DiscardHandler), BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	a.extra = []supervisor.Spec{stubborn}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	testkit.WaitFor(t, "ready", a.Ready)
	cancel()
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "shutdown timed out after 1s; still running: stubborn") {
		t.Fatalf("Run = %v, want a timeout naming stubborn", err)
	}
}

// TestIoTCloudCredentialsNeedCloud: source cloud without the control
// plane link is a problem of the file, at the line of the field.
func TestIoTCloudCredentialsNeedCloud(t *testing.T) {
	cfg, err := config.Parse("iot.yaml", []byte("version: 1\niot:\n  enabled: true\n  endpoint: a1-ats.iot.eu-west-1.amazonaws.com\n  region: eu-west-1\n  thing_name: edge-1\n  credentials: {source: cloud}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), keystores: &adminapi.LocalKeystores{}}
	_, err = a.iotComponents(nil, nil)
	var ce *config.Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Line != 7 || !strings.Contains(err.Error(), "cloud.enabled") {
		t.Errorf("source cloud without the control plane link: %v", err)
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	log, level, err := NewLogger(&buf, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.With(LogKeyComponent, "iot").Info("hidden")
	log.With(LogKeyComponent, "iot").Warn("shown")
	level.Set(slog.LevelDebug)
	log.Debug("now shown")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["component"] != "iot" || rec["msg"] != "shown" {
		t.Errorf("first line %q: want JSON with component=iot", lines[0])
	}
	for _, bad := range [][2]string{{"loud", "text"}, {"info", "xml"}} {
		if _, _, err := NewLogger(&buf, bad[0], bad[1]); err == nil {
			t.Errorf("NewLogger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func statMode(path string) (uint32, error) {
	fi, err := lstat(path)
	if err != nil {
		return 0, err
	}
	return uint32(fi.Mode().Perm()), nil
}

var lstat = os.Lstat
