//go:build unix

package events

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

// The helper process: these tests re-execute the test binary, which then
// runs only TestHelperProcess, to kill it with SIGKILL at a chosen point.
const (
	helperEnv    = "EDGEFORT_EVENTS_HELPER"
	helperDirEnv = "EDGEFORT_EVENTS_DIR"

	modeInHandler = "in-handler" // print "handling" from the handler, then hang
	modeInReport  = "in-report"  // print "reporting" from the Reporter, then hang

	crashEventID = "ev-kill"
	watchdog     = time.Minute
)

// hangingReporter prints "reporting" and hangs until it is killed.
type hangingReporter struct{}

func (hangingReporter) Report(context.Context, Event, Result) error {
	fmt.Println("reporting")
	time.Sleep(watchdog)
	return nil
}

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // not a child
	}
	db, err := store.Open(os.Getenv(helperDirEnv), store.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o := Options{Store: db}
	if mode == modeInReport {
		o.Reporter = hangingReporter{}
	}
	d, err := New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	d.Register("test", func(context.Context, Event) (Result, error) {
		if mode == modeInHandler {
			fmt.Println("handling")
			time.Sleep(watchdog) // until killed
		}
		return Done(nil), nil
	})
	d.Handle(context.Background(), testTopic, payload(t, crashEventID, "test", ""))
	fmt.Fprintln(os.Stderr, "helper: Handle returned")
	os.Exit(2)
}

// killAt runs the helper in mode until it prints want, then kills it with
// SIGKILL and waits for it.
func killAt(t *testing.T, mode, dir, want string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(watchdog, func() { cmd.Process.Kill() })
	defer stop.Stop()
	sc := bufio.NewScanner(out)
	seen := false
	for !seen && sc.Scan() {
		seen = sc.Text() == want
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !seen {
		t.Fatalf("helper ended before printing %q", want)
	}
}

// TestKilled kills a process mid-handler and mid-report, then delivers the
// event again, as the broker does since it was never acknowledged.
func TestKilled(t *testing.T) {
	tests := []struct {
		mode     string
		say      string
		wantRuns int // handler runs after the restart
	}{
		{modeInHandler, "handling", 1},
		{modeInReport, "reporting", 0},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			dir := t.TempDir()
			killAt(t, tt.mode, dir, tt.say)

			db := testkit.OpenStore(t, dir)
			rep := newFakeReporter()
			c := newCounter()
			d, _ := newTestDispatcher(t, db, rep, nil)
			d.Register("test", c.handle)
			p := payload(t, crashEventID, "test", "")
			mustHandle(t, d, p)
			mustHandle(t, d, p)
			if got := c.get(crashEventID); got != tt.wantRuns {
				t.Errorf("handler ran %d times after the restart; want %d", got, tt.wantRuns)
			}
			if got := rep.get(crashEventID); len(got) != 1 || got[0].Status != StatusDone {
				t.Errorf("reports = %+v; want one done", got)
			}
		})
	}
}
