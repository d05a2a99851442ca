package selfupdate

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/updater/module"
)

// ReadyWord is what the new process writes on the guard's pipe once it is
// ready.
const ReadyWord = "ready\n"

// Guard watches one trial start (see Trial). It runs in a process of its
// own, from the old binary's image, started by the old agent just before
// it re-executes into the new binary.
type Guard struct {
	// Trial is the marker the guard acts on. Required.
	Trial *Trial
	// Ready is the read end of the pipe whose write end the new process
	// holds. Required.
	Ready *os.File
	// PID is the process being tried (the guard's parent, which re-executes
	// into the new binary). The guard kills it when it is not ready by the
	// deadline, and only while it is still the guard's parent.
	PID int
	// Logger receives what the guard decides; nil discards.
	Logger *slog.Logger
}

// Result of a trial start.
type Result struct {
	// Ready is true when the new process reported ready in time.
	Ready bool
	// Reason says why not, for the record and the deployment log.
	Reason string
}

// Run waits for the trial's outcome; on failure it puts the previous
// binary back and records the reason in the payload's tree. The caller then
// starts the old binary again (or leaves that to its service manager).
func (g *Guard) Run() (Result, error) {
	log := g.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "selfupdate-guard")
	res := g.wait()
	if res.Ready {
		log.Info("new agent binary reported ready; trial start passed", logKeyBinary, g.Trial.Binary)
		return res, nil
	}
	log.Error("new agent binary failed its trial start; restoring the previous binary", logKeyBinary, g.Trial.Binary, "reason", res.Reason)
	in := &Installer{Binary: g.Trial.Binary, Logger: log}
	c, err := in.config()
	if err != nil {
		return res, err
	}
	p := module.Payload{Type: Type, Tree: g.Trial.Tree}
	rerr := c.rollback(p)
	rec, _ := jsonLine(trialFailure{Reason: res.Reason, At: time.Now().UTC()})
	werr := writeFileAtomic(filepath.Join(g.Trial.Tree, failureName), rec)
	derr := c.dropTrial()
	if err := errors.Join(rerr, werr, derr); err != nil {
		return res, fmt.Errorf("self-update guard: %w", err)
	}
	return res, nil
}

// wait returns the trial's outcome: the ready word, end of file (the
// process ended, as every holder of the write end closed it), or the
// deadline, after which the still hanging process is killed.
func (g *Guard) wait() Result {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(g.Ready, int64(len(ReadyWord))))
		got <- b
	}()
	t := time.NewTimer(g.Trial.Deadline)
	defer t.Stop()
	select {
	case b := <-got:
		if string(b) == ReadyWord {
			return Result{Ready: true}
		}
		return Result{Reason: fmt.Sprintf("the new agent binary's process (pid %d) ended before it was ready (exited or crashed at start)", g.PID)}
	case <-t.C:
	}
	if os.Getppid() == g.PID {
		syscall.Kill(g.PID, syscall.SIGKILL)
	}
	return Result{Reason: fmt.Sprintf("the new agent binary (pid %d) was not ready within %v; killed", g.PID, g.Trial.Deadline)}
}
