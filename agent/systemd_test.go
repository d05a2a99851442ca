package agent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/supervisor"
)

// blockRunner runs until its context ends.
type blockRunner struct{}

func (blockRunner) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// TestSystemdNotifierLastWord: a shutdown ends with STOPPING=1, but a
// re-exec (a self-update, ErrRestart) with RELOADING=1: systemd kills a
// service that said STOPPING=1 and keeps running, and the re-executed
// binary says READY=1 again under the same pid.
func TestSystemdNotifierLastWord(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		want  []string
	}{
		{"shutdown", context.Canceled, []string{"STOPPING=1", "STATUS=stopping"}},
		{"re-exec", ErrRestart, []string{"RELOADING=1", "STATUS=re-executing the agent binary"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "edgefort-notify")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			name := filepath.Join(dir, "notify")
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			t.Setenv("NOTIFY_SOCKET", name)
			t.Setenv("WATCHDOG_USEC", "")

			sup, err := supervisor.New(supervisor.Options{Logger: slog.New(slog.DiscardHandler)},
				supervisor.Spec{Name: "one", Runner: blockRunner{}})
			if err != nil {
				t.Fatal(err)
			}
			supCtx, stopSup := context.WithCancel(context.Background())
			supDone := make(chan error, 1)
			go func() { supDone <- sup.Run(supCtx) }()
			defer func() { stopSup(); <-supDone }()

			sn, err := newSystemdNotifier(sup)
			if err != nil || sn == nil {
				t.Fatalf("newSystemdNotifier = %v, %v", sn, err)
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error, 1)
			go func() { done <- sn.run(ctx) }()

			var got []string
			read := func() []string {
				buf := make([]byte, 4096)
				ln.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := ln.Read(buf)
				if err != nil {
					t.Fatalf("no notification after %q: %v", got, err)
				}
				return strings.Split(string(buf[:n]), "\n")
			}
			for !strings.Contains(strings.Join(got, "\n"), "READY=1") {
				got = append(got, read()...)
			}
			cancel(tc.cause)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, read()); diff != "" {
				t.Errorf("last notification (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		states []supervisor.State
		want   string
	}{
		{[]supervisor.State{supervisor.StateRunning, supervisor.StateRunning}, "2/2 components running"},
		{[]supervisor.State{supervisor.StateRunning, supervisor.StateBackingOff, supervisor.StateStarting},
			"1/3 components running; c1 backing-off, c2 starting"},
	} {
		var st []supervisor.Status
		for i, s := range tc.states {
			st = append(st, supervisor.Status{Name: "c" + string(rune('0'+i)), State: s})
		}
		if got := statusLine(st); got != tc.want {
			t.Errorf("statusLine(%v) = %q, want %q", tc.states, got, tc.want)
		}
	}
}
