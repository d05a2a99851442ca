package procgroup

import "syscall"

func attr() *syscall.SysProcAttr {
	// Pdeathsig fires when the thread that started the child exits; the
	// Go runtime keeps its threads for the life of the process unless a
	// goroutine exits while locked to one, which the agent never does.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
