package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
)

// TestMain lets the test binary stand in for the edgefort binary, so that
// process tests run the real main without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("EDGEFORT_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// edgefort runs the CLI in-process and returns its exit status and output.
func edgefort(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, streams{stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

func TestHelpAtEveryLevel(t *testing.T) {
	tests := [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"run", "--help"}, {"dev", "--help"}, {"status", "--help"}, {"version", "--help"},
		{"config", "--help"}, {"config", "help"}, {"config", "validate", "--help"}, {"config", "example", "-h"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := edgefort(t, args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: edgefort") {
				t.Errorf("stdout does not start with usage:\n%s", out)
			}
		})
	}
	// Flags are documented where they apply.
	_, out, _ := edgefort(t, "status", "--help")
	for _, flag := range []string{"-config", "-socket", "-json"} {
		if !strings.Contains(out, flag) {
			t.Errorf("status --help does not mention %s", flag)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "\nedgefort: missing command"},
		{[]string{"keystore", "import", "a", "b", "c"}, "want 2 argument(s) STORE ALIAS, got 3"},
		{[]string{"keystore", "import", "a", "--", "--key", "x"}, "want 2 argument(s) STORE ALIAS, got 3"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"config"}, "edgefort: config: missing command"},
		{[]string{"config", "validate"}, "want 1 argument(s) FILE, got 0"},
		{[]string{"run", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"version", "extra"}, "want 0 argument(s)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := edgefort(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.want)
			}
		})
	}
}

// TestErrorPrefix: whatever fails, usage mistake or runtime error, its
// line reads "edgefort: ..." with the program name exactly once.
func TestErrorPrefix(t *testing.T) {
	noSocket := filepath.Join(t.TempDir(), "admin.sock")
	tests := []struct {
		name string
		args []string
		want string // the error line
	}{
		{"no command", nil, "edgefort: missing command"},
		{"group without command", []string{"config"}, "edgefort: config: missing command"},
		{"unknown command", []string{"bogus"}, `edgefort: unknown command "bogus" (see 'edgefort --help')`},
		{"unknown flag", []string{"run", "--nope"}, "edgefort: run: flag provided but not defined: -nope (see 'edgefort run --help')"},
		{"argument count", []string{"update", "install"}, "edgefort: update install: want 1 argument(s) FILE|URL, got 0 (see 'edgefort update install --help')"},
		{"command's own usage check", []string{"enroll", "--url", "https://x"}, "edgefort: enroll: no token (--token, --token-file or $EDGEFORT_ENROLL_TOKEN)"},
		{"missing flags", []string{"artifact", "write", "module-image"}, "edgefort: artifact write module-image: --artifact-name, --device-type, --output-path, --type required (see 'edgefort artifact write module-image --help')"},
		{"runtime error", []string{"status", "--socket", noSocket}, "edgefort: no edgefort agent is running (nothing answers on " + noSocket + "; is the agent started with the same config?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, errOut := edgefort(t, tt.args...)
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if got := lines[len(lines)-1]; got != tt.want {
				t.Errorf("error line %q, want %q", got, tt.want)
			}
			if strings.Count(errOut, "edgefort: ") != 1 {
				t.Errorf("stderr has not exactly one \"edgefort: \":\n%s", errOut)
			}
		})
	}
}

// TestPrintErrorEveryLine: each line of a joined error gets the prefix;
// configuration problems keep their FILE:LINE form for editors.
func TestPrintErrorEveryLine(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"joined", errors.Join(errors.New("close a: broken"), errors.New("close b: broken")), "edgefort: close a: broken\nedgefort: close b: broken\n"},
		{"config", &config.Error{Problems: []config.Problem{{File: "e.yaml", Line: 3, Field: "state_dir", Message: "required"}}}, "e.yaml:3: state_dir: required\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			printError(&b, tt.err)
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("printError (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := edgefort(t, "version")
	if code != 0 || !strings.Contains(out, "edgefort ") || !strings.Contains(out, "go1.") || !strings.Contains(out, "commit ") {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
}

func TestConfigExampleValidates(t *testing.T) {
	code, example, _ := edgefort(t, "config", "example")
	if code != 0 {
		t.Fatalf("config example: exit %d", code)
	}
	path := writeFile(t, "x.yaml", example)
	code, out, errOut := edgefort(t, "config", "validate", path)
	if code != 0 || out != "ok\n" {
		t.Fatalf("config validate example: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	path := writeFile(t, "bad.yaml", `version: 1
device:
  colour: blue
metrics:
  enabled: "maybe"
  listen: 127.0.0.1:70000
updates:
  enabled: true
  server_url: https://mender.example.com
device_type: x
`)
	code, out, errOut := edgefort(t, "config", "validate", path)
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	want := []string{
		path + ":2: device.device_type: required when updates are enabled (artifacts name the device types they install on)",
		path + ":3: device.colour: unknown field (device accepts: device_type, hostnames, id)",
		path + `:5: metrics.enabled: expected true or false, got "maybe"`,
		path + `:6: metrics.listen: port "70000" is out of range (0 to 65535)`,
		path + ":10: device_type: unknown field (the top level accepts: admin, clients, cloud, device, iot, keystores, log, metrics, state_dir, supervisor, updates, version)",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(errOut), "\n")); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

// TestConfigValidateWarns: a valid file with ignore_validation_errors
// passes with a warning on stderr, the one run logs.
func TestConfigValidateWarns(t *testing.T) {
	path := writeFile(t, "w.yaml", "version: 1\nupdates:\n  ssl:\n    ignore_validation_errors: true\n")
	code, out, errOut := edgefort(t, "config", "validate", path)
	want := "warning: " + path + ":4: updates.ssl.ignore_validation_errors: true: a server whose certificate fails verification is accepted (logged at each such handshake); use it only for testing\n"
	if code != 0 || out != "ok\n" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, ok and %q", code, out, errOut, want)
	}
}

func TestConfigValidateMissingFile(t *testing.T) {
	code, _, errOut := edgefort(t, "config", "validate", "/nonexistent/edgefort.yaml")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/edgefort.yaml: configuration file not found") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestStatusWithoutAgent(t *testing.T) {
	code, _, errOut := edgefort(t, "status", "--socket", filepath.Join(t.TempDir(), "admin.sock"))
	if code != 1 || !strings.Contains(errOut, "no edgefort agent is running") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestRunProcess runs `edgefort run` as a real process on the example
// configuration (moved into a temporary state directory) and checks what an
// operator would: status lists the components, readyz answers 200, metrics
// are scrapeable on loopback, a second agent on the same state directory is
// refused, and SIGTERM stops it with exit status 0.
func TestRunProcess(t *testing.T) {
	stateDir := t.TempDir()
	cfgText := strings.NewReplacer(
		"state_dir: /var/lib/edgefort", "state_dir: "+stateDir,
		"socket: /var/lib/edgefort/admin.sock", "socket: "+filepath.Join(stateDir, "admin.sock"),
		"listen: 127.0.0.1:9273", "listen: 127.0.0.1:0",
	).Replace(string(config.Example))
	// The first one is cloud.ssl's: run warns about it at start.
	cfgText = strings.Replace(cfgText, "ignore_validation_errors: false", "ignore_validation_errors: true", 1)
	cfgPath := writeFile(t, "edgefort.yaml", cfgText)
	socket := filepath.Join(stateDir, "admin.sock")

	first, firstErr := startEdgefort(t, "run", "--config", cfgPath)
	status := waitReady(t, socket, first)

	code, out, errOut := edgefort(t, "status", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	// This test binary is an unreleased build: version "dev", which must
	// not read as the `edgefort dev` command.
	if want := "edgefort version dev, pid "; !strings.HasPrefix(out, want) || strings.Contains(out, "edgefort dev") {
		t.Errorf("status against `edgefort run` does not start %q or names `edgefort dev`:\n%s", want, out)
	}
	for _, name := range []string{"admin", "metrics"} {
		if !regexp.MustCompile(`(?m)^` + name + ` +running `).MatchString(out) {
			t.Errorf("status does not list %s running:\n%s", name, out)
		}
	}

	if got := httpStatus(t, unixClient(socket), "http://edgefort/readyz"); got != http.StatusOK {
		t.Errorf("readyz = %d, want 200", got)
	}
	if !strings.HasPrefix(status.MetricsURL, "http://127.0.0.1:") {
		t.Fatalf("metrics URL %q is not on loopback", status.MetricsURL)
	}
	metrics := httpBody(t, http.DefaultClient, status.MetricsURL)
	for _, want := range []string{`edgefort_supervisor_component_up{component="metrics"} 1`, "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	second, secondErr := startEdgefort(t, "run", "--config", cfgPath)
	if err := waitExit(second, 10*time.Second); exitCode(err) != 1 {
		t.Errorf("second agent exit = %v, want status 1", err)
	}
	// The hint names what moves run's state directory: run has no flag.
	if want := "is in use by another edgefort process"; !strings.Contains(secondErr.String(), want) ||
		!strings.Contains(secondErr.String(), "(state_dir in "+cfgPath+")") || strings.Contains(secondErr.String(), "--state-dir") {
		t.Errorf("second agent's error is unclear: %q", secondErr.String())
	}

	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The shutdown bound is 10 s; give the process a little more to exit.
	if err := waitExit(first, 15*time.Second); err != nil {
		t.Errorf("after SIGTERM: %v; stderr:\n%s", err, firstErr.String())
	}
	if _, err := os.Stat(socket); err == nil {
		t.Errorf("admin socket %s still present after a clean stop", socket)
	}
	if want := `msg="configuration weakens the node" file=` + cfgPath + ` line=62 field=cloud.ssl.ignore_validation_errors warning="true: a server`; !strings.Contains(firstErr.String(), want) {
		t.Errorf("run did not warn %s; stderr:\n%s", want, firstErr)
	}
}

func startEdgefort(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EDGEFORT_TEST_AS_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stderr
}

func waitReady(t *testing.T, socket string, cmd *exec.Cmd) *adminapi.Status {
	t.Helper()
	client := adminclient.New(socket)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, err := client.Status(context.Background())
		if err == nil && st.Ready {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("agent not ready within 20 s")
	return nil
}

func waitExit(cmd *exec.Cmd, within time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		return errors.New("did not exit in time")
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

func unixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
}

func httpStatus(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpBody(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
