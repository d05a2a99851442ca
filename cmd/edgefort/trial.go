package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/updater/selfupdate"
)

// The environment a trial start passes across exec: the write end of the
// guard's readiness pipe, and the guard's PID (the agent reaps it).
const (
	envReadyFD  = "EDGEFORT_SELFUPDATE_READY_FD"
	envGuardPID = "EDGEFORT_SELFUPDATE_GUARD_PID"
)

// readyPoll is how often a trial start asks whether the agent is ready.
const readyPoll = 50 * time.Millisecond

// trial is this process's side of a trial start: the pipe to the guard
// until the agent is ready. The zero value (no trial) does nothing.
type trial struct {
	mu       sync.Mutex
	ready    *os.File
	guardPID int
}

// takeTrial picks up what a trial start left in the environment and
// removes it, so that no child of the agent inherits the pipe.
func takeTrial(log *slog.Logger) *trial {
	t := &trial{}
	fdText, pidText := os.Getenv(envReadyFD), os.Getenv(envGuardPID)
	os.Unsetenv(envReadyFD)
	os.Unsetenv(envGuardPID)
	if fdText == "" {
		return t
	}
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 3 {
		log.Warn("ignoring a malformed self-update readiness descriptor", "env", envReadyFD, "value", fdText)
		return t
	}
	syscall.CloseOnExec(fd)
	t.ready = os.NewFile(uintptr(fd), "selfupdate-ready")
	if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 {
		t.guardPID = pid
		go func() {
			// The guard is this process's child (started before exec):
			// reap it when it is done.
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}()
	}
	return t
}

// watch tells the guard once ready reports true, polling until ctx ends.
func (t *trial) watch(ctx context.Context, ready func() bool, log *slog.Logger) {
	t.mu.Lock()
	pending := t.ready != nil
	t.mu.Unlock()
	if !pending {
		return
	}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !ready() {
			continue
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.ready == nil {
			return
		}
		_, err := t.ready.WriteString(selfupdate.ReadyWord)
		t.ready.Close()
		t.ready = nil
		if err != nil {
			log.Warn("cannot tell the self-update guard the agent is ready", "error", err)
		} else {
			log.Info("told the self-update guard the agent is ready")
		}
		return
	}
}

// execEnv prepares a re-exec of binary: a trial still waiting for ready
// passes its pipe on (the next binary may be the old one, put back by the
// update's own rollback, and its ready counts); otherwise, when the
// updater marked the binary for a trial start, a guard is started now,
// from this process's (old) executable image. It returns the environment
// for exec.
func (t *trial) execEnv(binary string, log *slog.Logger) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	env := os.Environ()
	if t.ready != nil {
		if err := inherit(t.ready); err != nil {
			// The pipe closes at exec: stop the guard, or it would take
			// that for a crash and start a second agent.
			stopGuard(t.guardPID)
			return nil, err
		}
		return append(env, envReadyFD+"="+strconv.Itoa(int(t.ready.Fd())), envGuardPID+"="+strconv.Itoa(t.guardPID)), nil
	}
	tr, err := selfupdate.LoadTrial(binary)
	if err != nil || tr == nil {
		return env, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("self-update guard pipe: %w", err)
	}
	defer r.Close()
	// /proc/self/exe is resolved in the child before its exec: the image
	// this process runs, whatever the binary's path holds now.
	cmd := exec.Command("/proc/self/exe", guardArgs(binary)...)
	cmd.ExtraFiles = []*os.File{r} // guardFD
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start the self-update guard: %w", err)
	}
	if err := inherit(w); err != nil {
		w.Close()
		stopGuard(cmd.Process.Pid)
		return nil, err
	}
	log.Info("started the self-update guard for the new binary's first start", "guard_pid", cmd.Process.Pid, "deadline", tr.Deadline)
	return append(env, envReadyFD+"="+strconv.Itoa(int(w.Fd())), envGuardPID+"="+strconv.Itoa(cmd.Process.Pid)), nil
}

// inherit lets f survive exec.
func inherit(f *os.File) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_SETFD, 0); errno != 0 {
		return fmt.Errorf("keep the self-update pipe across exec: %w", errno)
	}
	return nil
}

// stopGuard ends a guard that must not act (it ignores SIGTERM) and reaps
// it.
func stopGuard(pid int) {
	if pid <= 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
}
