package module

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/internal/procgroup"
)

// pipeDrain is how long Wait waits, after the module has exited, for
// children it left behind to close its stdout and stderr.
const pipeDrain = 2 * time.Second

// ErrTimeout is wrapped by the error of a call that ran longer than
// Runner.Timeout and was killed.
var ErrTimeout = errors.New("timed out")

// proc is one running module process in its own process group. A
// supervising goroutine waits for it, and on timeout, context end or
// kill sends SIGTERM to the group, then SIGKILL after the grace period.
type proc struct {
	cmd    *exec.Cmd
	stderr *procgroup.TailBuffer
	stdout *capBuffer // nil unless stdout is captured

	exited chan struct{} // closed once the process has exited and been reaped
	done   chan struct{} // closed once the supervisor has finished
	killc  chan struct{} // closed by kill
	once   sync.Once

	timeout time.Duration

	// Set before exited is closed.
	waitErr error
	// Set before done is closed: why we killed it (ErrTimeout, ctx.Err()
	// or errKilled), nil when it exited by itself.
	cause error
}

// errKilled is the cause recorded when kill was called.
var errKilled = errors.New("killed")

// startProc starts cmd in a new process group, stdin /dev/null, and
// supervises it.
func startProc(ctx context.Context, cmd *exec.Cmd, captureStdout bool, timeout, grace time.Duration) (*proc, error) {
	p := &proc{
		cmd:    cmd,
		stderr: &procgroup.TailBuffer{Max: maxStderr},
		exited: make(chan struct{}),
		done:   make(chan struct{}),
		killc:  make(chan struct{}),

		timeout: timeout,
	}
	cmd.Stdin = nil // /dev/null
	cmd.Stderr = p.stderr
	if captureStdout {
		p.stdout = &capBuffer{max: maxStdout}
		cmd.Stdout = p.stdout
	}
	cmd.SysProcAttr = procgroup.Attr()
	cmd.WaitDelay = pipeDrain
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	go p.supervise(ctx, timeout, grace)
	return p, nil
}

func (p *proc) supervise(ctx context.Context, timeout, grace time.Duration) {
	defer close(p.done)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var sig syscall.Signal = syscall.SIGTERM
	select {
	case <-p.exited:
		return
	case <-timer.C:
		p.cause = ErrTimeout
	case <-ctx.Done():
		p.cause = ctx.Err()
	case <-p.killc:
		p.cause = errKilled
		sig = syscall.SIGKILL
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	if sig != syscall.SIGKILL {
		graceTimer := time.NewTimer(grace)
		select {
		case <-p.exited:
		case <-p.killc:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		case <-graceTimer.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		graceTimer.Stop()
	}
	<-p.exited
	// Sweep what is left of the group: the leader is gone, but children
	// that ignored SIGTERM may still run.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// kill sends SIGKILL to the process group and waits for the supervisor.
// Safe to call more than once, and after the process has exited.
func (p *proc) kill() {
	p.once.Do(func() { close(p.killc) })
	<-p.done
}

// hasExited reports whether the process has exited.
func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// wait waits for the process and returns nil for exit status 0, or why
// it failed: the exit status, or the timeout/cancellation that killed it.
func (p *proc) wait() error {
	<-p.done
	return p.result()
}

// result is wait's answer; call only after done is closed.
func (p *proc) result() error {
	if p.cause == ErrTimeout {
		return fmt.Errorf("%w after %v (process group killed)", ErrTimeout, p.timeout)
	}
	if p.cause != nil {
		return fmt.Errorf("%w (process group killed)", p.cause)
	}
	if errors.Is(p.waitErr, exec.ErrWaitDelay) {
		// Exited 0, but a child it left behind kept its output open.
		return nil
	}
	return p.waitErr
}
