package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgefort/edgefort/internal/sdnotify"
	"github.com/edgefort/edgefort/internal/supervisor"
)

// How often the systemd notifier looks at the supervisor: often until
// READY=1, since readiness is local (listeners bound, the store open) and
// arrives within tens of milliseconds, and each poll is a lock and a scan;
// then only for STATUS= changes, which need not be prompt.
const (
	readyPoll  = 10 * time.Millisecond
	statusPoll = time.Second
)

// systemdNotifier tells systemd (Type=notify, packaging/edgefort.service)
// how the agent is doing: READY=1 once every component is ready, a STATUS=
// line whenever the components' states change, and WATCHDOG=1 at half the
// watchdog interval for as long as the supervisor answers. The watchdog
// is liveness, not readiness: a component that is backing off (a cloud
// link that is down) is the supervisor's to restart, and killing the
// whole process for it would take the client API down too; a supervisor
// whose lock is wedged, or a process that no longer runs this loop, stops
// the pings and systemd restarts the agent.
type systemdNotifier struct {
	n        *sdnotify.Notifier
	sup      *supervisor.Supervisor
	watchdog time.Duration // 0: none
}

// notifySystemd starts notifying systemd when the agent runs under its
// notify protocol and returns the func that stops the notifier (STOPPING=1
// is its last word) and waits for it. A bad $NOTIFY_SOCKET is logged: the
// agent serves regardless, and systemd's start timeout reports the rest.
func (a *Agent) notifySystemd(ctx context.Context, sup *supervisor.Supervisor) (stop func()) {
	sn, err := newSystemdNotifier(sup)
	if err != nil {
		a.log.Error("systemd notification off", "error", err)
	}
	if sn == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sn.run(ctx); err != nil {
			a.log.Error("systemd notification stopped", "error", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// newSystemdNotifier reads $NOTIFY_SOCKET and $WATCHDOG_USEC; it returns
// nil when the agent does not run under systemd's notify protocol.
func newSystemdNotifier(sup *supervisor.Supervisor) (*systemdNotifier, error) {
	n, err := sdnotify.FromEnv()
	if err != nil || n == nil {
		return nil, err
	}
	wd, err := sdnotify.WatchdogInterval()
	if err != nil {
		n.Close()
		return nil, err
	}
	return &systemdNotifier{n: n, sup: sup, watchdog: wd}, nil
}

// run notifies until ctx ends, then sends STOPPING=1, or RELOADING=1 when
// the agent is about to re-execute itself.
func (s *systemdNotifier) run(ctx context.Context) error {
	defer s.n.Close()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var ping <-chan time.Time
	if s.watchdog > 0 {
		t := time.NewTicker(s.watchdog / 2)
		defer t.Stop()
		ping = t.C
	}
	ready, last := false, ""
	for {
		// Status takes the supervisor's lock: a wedged supervisor blocks
		// here, and no WATCHDOG=1 follows.
		st := s.sup.Status()
		lines := []string{}
		if status := statusLine(st); status != last {
			last = status
			lines = append(lines, "STATUS="+status)
		}
		if !ready && allRunning(st) {
			ready = true
			lines = append(lines, "READY=1")
			tick.Reset(statusPoll)
		}
		if len(lines) > 0 {
			if err := s.n.Notify(lines...); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrRestart) {
				// The process re-executes itself under the same pid (a
				// self-update) and the new binary sends READY=1 again.
				// STOPPING=1 would make systemd kill it at
				// TimeoutStopSec; a reload is what this is to systemd.
				return s.n.Notify("RELOADING=1", "STATUS=re-executing the agent binary")
			}
			return s.n.Notify("STOPPING=1", "STATUS=stopping")
		case <-tick.C:
		case <-ping:
			if err := s.n.Notify("WATCHDOG=1"); err != nil {
				return err
			}
		}
	}
}

func allRunning(st []supervisor.Status) bool {
	for _, c := range st {
		if c.State != supervisor.StateRunning {
			return false
		}
	}
	return true
}

// statusLine is what `systemctl status` shows: how many components run,
// and the others with their state.
func statusLine(st []supervisor.Status) string {
	running := 0
	var others []string
	for _, c := range st {
		if c.State == supervisor.StateRunning {
			running++
			continue
		}
		others = append(others, fmt.Sprintf("%s %s", c.Name, c.State))
	}
	line := fmt.Sprintf("%d/%d components running", running, len(st))
	if len(others) > 0 {
		line += "; " + strings.Join(others, ", ")
	}
	return line
}
