package scripts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/google/go-cmp/cmp"
)

// newTestRunner returns a Runner on temp dirs with short timeouts. The
// rootfs dir exists with a version file; the Artifact dir does not.
func newTestRunner(t *testing.T) *Runner {
	t.Helper()
	base := t.TempDir()
	r := &Runner{
		RootfsDir:     filepath.Join(base, "rootfs"),
		ArtifactDir:   filepath.Join(base, "lib", "scripts"),
		Timeout:       10 * time.Second,
		RetryInterval: 50 * time.Millisecond,
		RetryTimeout:  time.Second,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if err := os.MkdirAll(r.RootfsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(r.RootfsDir, "version"), "3\n", 0o644)
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// logScript is a script that appends its name to log and exits with code.
func logScript(log string, code int) string {
	return fmt.Sprintf("#!/bin/sh\necho \"$(basename \"$0\")\" >> %q\nexit %d\n", log, code)
}

// readLog returns the names logged by logScript.
func readLog(t *testing.T, log string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

func TestRunOrder(t *testing.T) {
	r := newTestRunner(t)
	log := filepath.Join(t.TempDir(), "log")
	for _, name := range []string{
		"Download_Enter_10_b", "Download_Enter_02_a", "Download_Enter_05",
		"Download_Leave_00", "Sync_Enter_00", "DownloadX_Enter_00",
		// Invalid names: skipped.
		"Download_Enter_1", "Download_Enter_100", "download.Enter.00", "Download_Enter_01_",
	} {
		writeFile(t, filepath.Join(r.RootfsDir, name), logScript(log, 0), 0o755)
	}
	var calls []string
	r.OnScript = func(name string, finished bool) {
		calls = append(calls, fmt.Sprintf("%s:%v", name, finished))
	}
	if err := r.Run(t.Context(), StateDownload, ActionEnter); err != nil {
		t.Fatal(err)
	}
	want := []string{"Download_Enter_02_a", "Download_Enter_05", "Download_Enter_10_b"}
	if diff := cmp.Diff(want, readLog(t, log)); diff != "" {
		t.Errorf("scripts run (-want +got):\n%s", diff)
	}
	wantCalls := []string{
		"Download_Enter_02_a:false", "Download_Enter_02_a:true",
		"Download_Enter_05:false", "Download_Enter_05:true",
		"Download_Enter_10_b:false", "Download_Enter_10_b:true",
	}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("OnScript calls (-want +got):\n%s", diff)
	}
}

func TestRunArtifactScripts(t *testing.T) {
	r := newTestRunner(t)
	log := filepath.Join(t.TempDir(), "log")
	var scripts []artifact.Script
	for _, name := range []string{
		"ArtifactRollbackReboot_Enter_00", "ArtifactRollback_Enter_01_x", "ArtifactRollback_Enter_00",
		"ArtifactInstall_Enter_00",
	} {
		scripts = append(scripts, artifact.Script{Name: name, Data: []byte(logScript(log, 0))})
	}
	// No Artifact scripts stored yet: nothing runs.
	if err := r.Run(t.Context(), StateArtifactRollback, ActionEnter); err != nil {
		t.Fatal(err)
	}
	if err := r.Store(scripts); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(t.Context(), StateArtifactRollback, ActionEnter); err != nil {
		t.Fatal(err)
	}
	want := []string{"ArtifactRollback_Enter_00", "ArtifactRollback_Enter_01_x"}
	if diff := cmp.Diff(want, readLog(t, log)); diff != "" {
		t.Errorf("scripts run (-want +got):\n%s", diff)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name    string
		state   string
		action  string
		setup   func(t *testing.T, r *Runner, log string)
		wantErr string   // substring; "" = success
		wantRun []string // scripts that ran, in order
	}{
		{
			name: "no rootfs dir configured", state: StateSync, action: ActionEnter,
			setup: func(t *testing.T, r *Runner, log string) { r.RootfsDir = "" },
		},
		{
			name: "missing version file", state: StateSync, action: ActionEnter,
			setup: func(t *testing.T, r *Runner, log string) {
				os.Remove(filepath.Join(r.RootfsDir, "version"))
				writeFile(t, filepath.Join(r.RootfsDir, "Sync_Enter_00"), logScript(log, 0), 0o755)
			},
			wantErr: "refused",
		},
		{
			name: "unknown version", state: StateSync, action: ActionEnter,
			setup: func(t *testing.T, r *Runner, log string) {
				writeFile(t, filepath.Join(r.RootfsDir, "version"), "4", 0o644)
				writeFile(t, filepath.Join(r.RootfsDir, "Idle_Enter_00"), logScript(log, 0), 0o755)
			},
			wantErr: `holds "4", want 2 or 3`,
		},
		{
			name: "version 2", state: StateSync, action: ActionEnter,
			setup: func(t *testing.T, r *Runner, log string) {
				writeFile(t, filepath.Join(r.RootfsDir, "version"), "2\n", 0o644)
				writeFile(t, filepath.Join(r.RootfsDir, "Sync_Enter_00"), logScript(log, 0), 0o755)
			},
			wantRun: []string{"Sync_Enter_00"},
		},
		{
			name: "no version needed without scripts", state: StateSync, action: ActionEnter,
			setup: func(t *testing.T, r *Runner, log string) {
				os.Remove(filepath.Join(r.RootfsDir, "version"))
				writeFile(t, filepath.Join(r.RootfsDir, "README"), "hello", 0o644)
			},
		},
		{
			name: "not executable", state: StateSync, action: ActionLeave,
			setup: func(t *testing.T, r *Runner, log string) {
				writeFile(t, filepath.Join(r.RootfsDir, "Sync_Leave_00"), logScript(log, 0), 0o755)
				writeFile(t, filepath.Join(r.RootfsDir, "Sync_Leave_01"), logScript(log, 0), 0o644)
			},
			wantErr: "is not an executable file", // checked before anything runs
		},
		{
			name: "failure stops the rest", state: StateDownload, action: ActionLeave,
			setup: func(t *testing.T, r *Runner, log string) {
				writeFile(t, filepath.Join(r.RootfsDir, "Download_Leave_00"), logScript(log, 0), 0o755)
				writeFile(t, filepath.Join(r.RootfsDir, "Download_Leave_01"), "#!/bin/sh\necho Download_Leave_01 >> "+log+"\necho 'no space left' >&2\nexit 3\n", 0o755)
				writeFile(t, filepath.Join(r.RootfsDir, "Download_Leave_02"), logScript(log, 0), 0o755)
			},
			wantErr: "state script Download_Leave_01: exit status 3: no space left",
			wantRun: []string{"Download_Leave_00", "Download_Leave_01"},
		},
		{
			name: "ignored failure runs the rest", state: StateIdle, action: ActionEnter,
			setup: func(t *testing.T, r *Runner, log string) {
				writeFile(t, filepath.Join(r.RootfsDir, "Idle_Enter_00"), logScript(log, 1), 0o755)
				writeFile(t, filepath.Join(r.RootfsDir, "Idle_Enter_01"), logScript(log, 0), 0o755)
			},
			wantErr: "state script Idle_Enter_00: exit status 1",
			wantRun: []string{"Idle_Enter_00", "Idle_Enter_01"},
		},
		{name: "unknown state", state: "Bogus", action: ActionEnter, wantErr: `unknown state "Bogus"`},
		{name: "unknown action", state: StateIdle, action: "Start", wantErr: `unknown action "Start"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRunner(t)
			log := filepath.Join(t.TempDir(), "log")
			if tt.setup != nil {
				tt.setup(t, r, log)
			}
			err := r.Run(t.Context(), tt.state, tt.action)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run error = %v, want it to contain %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantRun, readLog(t, log)); diff != "" {
				t.Errorf("scripts run (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunRetryLater(t *testing.T) {
	tests := []struct {
		name    string
		fails   int // runs that exit 21 before one exits 0
		wantErr string
		minRuns int
	}{
		{name: "succeeds on the third run", fails: 2, minRuns: 3},
		{name: "gives up", fails: 1000, wantErr: "still asking to retry later (exit 21)", minRuns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRunner(t)
			r.RetryTimeout = 400 * time.Millisecond
			count := filepath.Join(t.TempDir(), "count")
			writeFile(t, filepath.Join(r.RootfsDir, "Sync_Enter_00"), fmt.Sprintf(`#!/bin/sh
n=$(cat %[1]q 2>/dev/null || echo 0)
n=$((n+1))
echo $n > %[1]q
[ $n -le %[2]d ] && exit 21
exit 0
`, count, tt.fails), 0o755)
			start := time.Now()
			err := r.Run(t.Context(), StateSync, ActionEnter)
			elapsed := time.Since(start)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Run error = %v, want %q", err, tt.wantErr)
			}
			data, _ := os.ReadFile(count)
			runs, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			if tt.wantErr == "" && runs != tt.fails+1 {
				t.Errorf("runs = %d, want %d", runs, tt.fails+1)
			}
			if runs < tt.minRuns {
				t.Errorf("runs = %d, want at least %d", runs, tt.minRuns)
			}
			if min := time.Duration(runs-1) * r.RetryInterval; elapsed < min {
				t.Errorf("Run took %v, want at least %v (interval %v)", elapsed, min, r.RetryInterval)
			}
			if elapsed > 3*time.Second {
				t.Errorf("Run took %v", elapsed)
			}
		})
	}
}

// TestRunKilled: a script that outlives its timeout, or the context, is
// killed with its whole process group.
func TestRunKilled(t *testing.T) {
	tests := []struct {
		name    string
		cancel  bool
		wantErr error
	}{
		{"timeout", false, ErrTimeout},
		{"cancelled", true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRunner(t)
			ctx := t.Context()
			if tt.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				time.AfterFunc(300*time.Millisecond, cancel)
			} else {
				r.Timeout = 300 * time.Millisecond
			}
			pidFile := filepath.Join(t.TempDir(), "child.pid")
			writeFile(t, filepath.Join(r.RootfsDir, "Sync_Enter_00"), fmt.Sprintf("#!/bin/sh\ntrap '' TERM\nsleep 1000 &\necho $! > %q\nsleep 1000\n", pidFile), 0o755)
			start := time.Now()
			err := r.Run(ctx, StateSync, ActionEnter)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run error = %v, want %v", err, tt.wantErr)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Run took %v", d)
			}
			waitGone(t, pidFile)
		})
	}
}

// waitGone waits for the process whose pid is in file to be gone (or a
// zombie left to a reaper that is not us).
func waitGone(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("child pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("child pid %q: %v", data, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background child %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIgnored(t *testing.T) {
	tests := []struct {
		state, action string
		want          bool
	}{
		{StateIdle, ActionEnter, true},
		{StateSync, ActionEnter, false},
		{StateSync, ActionError, true},
		{StateDownload, ActionLeave, false},
		{StateArtifactInstall, ActionEnter, false},
		{StateArtifactInstall, ActionError, true},
		{StateArtifactCommit, ActionLeave, false},
		{StateArtifactRollback, ActionEnter, true},
		{StateArtifactRollbackReboot, ActionLeave, true},
		{StateArtifactFailure, ActionEnter, true},
	}
	for _, tt := range tests {
		if got := Ignored(tt.state, tt.action); got != tt.want {
			t.Errorf("Ignored(%s, %s) = %v, want %v", tt.state, tt.action, got, tt.want)
		}
	}
}
