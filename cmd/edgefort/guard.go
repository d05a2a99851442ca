package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/edgefort/edgefort/updater/selfupdate"
)

// guardFD is where a guard finds the read end of the readiness pipe (the
// first of exec.Cmd.ExtraFiles).
const guardFD = 3

// newGuardCmd is the internal command a re-executing agent starts, from
// its own (old) executable image, to watch a new binary's trial start
// (updater/selfupdate, Trial).
func newGuardCmd() *command {
	c := &command{
		name:   "selfupdate-guard",
		short:  "internal: watch a self-updated binary's first start",
		hidden: true,
		args:   "-- RUN-ARGS...",
	}
	binary := c.fs().String("binary", "", "the agent binary on `PATH`")
	pid := c.fs().Int("pid", 0, "the `PID` being tried")
	restart := c.fs().Bool("restart", false, "start the restored binary with RUN-ARGS on failure (no service manager restarts it)")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		log := slog.New(slog.NewTextHandler(st.stderr, nil))
		t, err := selfupdate.LoadTrial(*binary)
		if err != nil {
			return err
		}
		if t == nil || *pid <= 0 {
			return c.errorf("no trial marker for %q or no --pid", *binary)
		}
		// The service manager stops what is left of the service when its
		// main process ends: finish the restore first.
		sigs := []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}
		signal.Ignore(sigs...)
		g := &selfupdate.Guard{Trial: t, Ready: os.NewFile(guardFD, "selfupdate-ready"), PID: *pid, Logger: log}
		res, err := g.Run()
		if err != nil || res.Ready || !*restart || len(args) == 0 {
			return err
		}
		signal.Reset(sigs...)
		log.Info("starting the restored agent binary", "binary", t.Binary)
		if err := syscall.Exec(t.Binary, args, os.Environ()); err != nil {
			return fmt.Errorf("start the restored binary %s: %w", t.Binary, err)
		}
		return nil
	}
	return c
}

// guardArgs are the guard's arguments for this process about to
// re-execute.
func guardArgs(binary string) []string {
	args := []string{"selfupdate-guard", "--binary", binary, "--pid", strconv.Itoa(os.Getpid())}
	// Under systemd (the packaged unit is Type=notify) the service manager
	// restarts the unit once its main process is gone; a second agent
	// started by the guard would race it for the state directory.
	if os.Getenv("NOTIFY_SOCKET") == "" && os.Getenv("INVOCATION_ID") == "" {
		args = append(args, "--restart")
	}
	return append(append(args, "--"), os.Args...)
}
