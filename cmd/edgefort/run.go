package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/store"
)

func newRunCmd() *command {
	c := &command{
		name:  "run",
		short: "run the agent until SIGTERM or SIGINT",
		long: `Run the agent with a configuration file until SIGTERM or SIGINT, then stop
every component gracefully within supervisor.shutdown_timeout (default 10s)
and exit 0. A second signal exits at once.

The file is --config, else $EDGEFORT_CONFIG, else ` + config.DefaultPath + `.`,
	}
	cfgPath := c.fs().String("config", configPath(), "configuration `FILE`")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		log, level, err := agent.NewLogger(st.stderr, cfg.Log.Level, cfg.Log.Format)
		if err != nil {
			return err
		}
		tr := takeTrial(log)
		err = runAgent(ctx, cfg, log, level, tr)
		switch {
		case errors.Is(err, agent.ErrRestart):
			return reexec(log, tr)
		case errors.Is(err, store.ErrLocked):
			// run has no --state-dir: the directory is the file's.
			return fmt.Errorf("%w (state_dir in %s)", err, cfg.File())
		}
		return err
	}
	return c
}

// reexec replaces this process with the agent's binary, same arguments
// and environment: a self-update installed a new binary (or put the old
// one back) and the next process verifies it. The PID stays, so a service
// manager sees one service running throughout. A new binary's first start
// is watched by a guard (trial.execEnv) that does not need it to run.
func reexec(log *slog.Logger, tr *trial) error {
	exe := agent.Executable()
	env, err := tr.execEnv(exe, log)
	if err != nil {
		// Going on unguarded beats stopping here: without a service
		// manager nothing would start the agent again.
		log.Error("the new binary's first start runs without a guard; a binary that cannot start will not be rolled back", "error", err)
		env = os.Environ()
	}
	log.Info("re-executing the agent binary", "path", exe)
	if err := syscall.Exec(exe, os.Args, env); err != nil {
		return fmt.Errorf("re-execute %s: %w", exe, err)
	}
	return nil // not reached
}

// runAgent runs an agent until SIGINT/SIGTERM.
func runAgent(ctx context.Context, cfg *config.Config, log *slog.Logger, level *slog.LevelVar, tr *trial) error {
	// Everything the agent creates (state, keys, sockets) is private to its
	// user unless a component widens it on purpose.
	syscall.Umask(0o077)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration weakens the node", "file", w.File, "line", w.Line, "field", w.Field, "warning", w.Message)
	}
	a, err := agent.New(cfg, log, agent.Build())
	if err != nil {
		return err
	}
	a.SetLevelVar(level)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, restore the default so that a second one
		// ends a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := make(chan struct{})
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		reloadOnHangup(done, hup, a, log)
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tr.watch(watchCtx, a.Ready, log)
	}()
	err = a.Run(ctx)
	stopWatch()
	<-watched
	close(done)
	<-reloaded
	return err
}

// reloadOnHangup applies the configuration file's clients section at each
// SIGHUP until done closes; a refused file is logged and changes nothing.
func reloadOnHangup(done <-chan struct{}, hup <-chan os.Signal, a *agent.Agent, log *slog.Logger) {
	for {
		select {
		case <-done:
			return
		case <-hup:
			if err := a.ReloadClients(); err != nil {
				log.Error("SIGHUP: the clients section was not reloaded; the running one stays", "error", err)
			} else {
				log.Info("SIGHUP: clients section reloaded")
			}
		}
	}
}
