package main

import (
	"context"
	"fmt"

	"github.com/edgefort/edgefort/agent/config"
)

func newConfigCmd() *command {
	return (&command{
		name:  "config",
		short: "check or print configuration",
		long: `Check a configuration file, or print a complete commented example to start
from:

  edgefort config example > edgefort.yaml
  edgefort config validate edgefort.yaml`,
	}).add(newConfigValidateCmd(), newConfigExampleCmd())
}

func newConfigValidateCmd() *command {
	c := &command{
		name:  "validate",
		args:  "FILE",
		short: "check a configuration file",
		long: `Check a configuration file the way 'edgefort run' would, without starting
anything. Prints "ok" and exits 0 for a valid file; otherwise prints every
problem as FILE:LINE: FIELD: message and exits 1. Settings that are valid
but weaken the node (ignore_validation_errors: true) are printed as
warnings, as 'edgefort run' logs them.`,
	}
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		cfg, err := config.Load(args[0])
		if err != nil {
			return err
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(st.stderr, "warning: %s\n", w)
		}
		fmt.Fprintln(st.stdout, "ok")
		return nil
	}
	return c
}

func newConfigExampleCmd() *command {
	c := &command{
		name:  "example",
		short: "print a complete, commented example configuration",
	}
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		_, err := st.stdout.Write(config.Example)
		return err
	}
	return c
}
