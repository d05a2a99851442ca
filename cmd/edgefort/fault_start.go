//go:build edgefort_fault_start

package main

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// startFault is set with -ldflags "-X main.startFault=exit1|segv|hang" in
// binaries built with -tags edgefort_fault_start: "run" then fails before
// anything of the agent starts. The self-update tests install such
// binaries to prove that a new binary which cannot even roll itself back
// is rolled back by the guard. Release builds never carry this file.
var startFault string

func init() {
	if len(os.Args) < 2 || os.Args[1] != "run" {
		return // "version" (the installer's preflight) still works
	}
	switch startFault {
	case "exit1":
		os.Exit(1)
	case "segv":
		// Go catches SIGSEGV to turn faults into panics; put back the
		// default action (a zeroed sigaction: SIG_DFL) so the process dies
		// by the signal as a C program would.
		var act [4]uint64
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
		syscall.Kill(os.Getpid(), syscall.SIGSEGV)
		time.Sleep(time.Minute)
	case "hang":
		for {
			time.Sleep(time.Hour)
		}
	}
}
