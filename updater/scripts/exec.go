package scripts

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/internal/procgroup"
)

// maxStderr is how much of a script's stderr is kept: its tail.
const maxStderr = 10 << 10

// pipeDrain is how long to wait, after a script has exited, for children
// it left behind to close its stderr.
const pipeDrain = 2 * time.Second

// ErrTimeout is wrapped by the error of a script that ran longer than
// Runner.Timeout and was killed.
var ErrTimeout = errors.New("timed out")

// execScript runs path in dir, in its own process group with stdin and
// stdout on /dev/null, and returns the tail of its stderr. When timeout
// expires or ctx ends, the whole group is SIGKILLed.
func execScript(ctx context.Context, path, dir string, timeout time.Duration) (string, error) {
	stderr := &procgroup.TailBuffer{Max: maxStderr}
	cmd := exec.Command(path)
	cmd.Dir = dir
	cmd.Stderr = stderr
	cmd.SysProcAttr = procgroup.Attr()
	cmd.WaitDelay = pipeDrain
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err, cause error
	select {
	case err = <-exited:
	case <-timer.C:
		cause = fmt.Errorf("%w after %v (process group killed)", ErrTimeout, timeout)
	case <-ctx.Done():
		cause = fmt.Errorf("%w (process group killed)", ctx.Err())
	}
	if cause != nil {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // children started meanwhile
		return stderr.String(), cause
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // exited 0; a child it left behind kept stderr open
	}
	return stderr.String(), err
}
