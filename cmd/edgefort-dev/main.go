// Command edgefort-dev is the dev environment: it runs the agent against
// devcloud's servers on loopback, with nothing to write first (start
// here), and drives it from another terminal: deploy, event, job. Its
// logic lives in devcloud/devstack; this file parses and dispatches. The
// product binary, cmd/edgefort, links none of it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edgefort/edgefort/agent/config"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// command is a subcommand: its flags, and what it does with the rest.
type command struct {
	// name is the command's words after edgefort-dev: "deploy", or
	// "fault broker" for a subcommand of fault.
	name, args, short, long string
	flags                   *flag.FlagSet
	exec                    func(ctx context.Context, stdout io.Writer, args []string) error
	// subs are the commands under this one, chosen by the next argument.
	subs []*command
}

// sub returns c's subcommand whose last word is word, or nil.
func (c *command) sub(word string) *command {
	for _, s := range c.subs {
		if s.word() == word {
			return s
		}
	}
	return nil
}

// word is the last word of c's name.
func (c *command) word() string { return c.name[strings.LastIndex(c.name, " ")+1:] }

// usageError marks a mistake in how a command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errQuiet is a failure the command printed already (exit status 1).
var errQuiet = errors.New("failed")

// exitError ends with a command's own exit status, after what err says
// (nothing when nil: the command printed it).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func commands() []*command {
	return []*command{newDeployCmd(), newEventCmd(), newFaultCmd(), newJobCmd(), newLoginCmd(), newWSCmd()}
}

// run executes the CLI and returns the exit status: 0 success, 1 failure,
// 2 a usage mistake. Without a command it runs the stack.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	subs := commands()
	c := newStackCmd(stderr)
	if len(args) > 0 && args[0] == "help" {
		usage(stdout, c, subs)
		return 0
	}
	root := &command{subs: subs}
	for len(args) > 0 {
		s := root.sub(args[0])
		if s == nil {
			break
		}
		c, root, args = s, s, args[1:]
	}
	err := c.run(ctx, stdout, args)
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "edgefort-dev: %v\n", ee.err)
		}
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		if c.name != "edgefort-dev" {
			subs = c.subs
		}
		usage(stdout, c, subs)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, err)
		return 2
	case errors.Is(err, errQuiet):
		return 1
	default:
		fmt.Fprintf(stderr, "edgefort-dev: %v\n", err)
		return 1
	}
}

func (c *command) path() string {
	if c.name == "edgefort-dev" {
		return c.name
	}
	return "edgefort-dev " + c.name
}

// run parses flags, taken anywhere among the arguments ("deploy FILE
// --dest d"); "--" ends them.
func (c *command) run(ctx context.Context, stdout io.Writer, args []string) error {
	c.flags.SetOutput(io.Discard)
	c.flags.Usage = func() {}
	var positional []string
	for {
		if err := c.flags.Parse(args); errors.Is(err, flag.ErrHelp) {
			return err
		} else if err != nil {
			return usageError{fmt.Sprintf("%s: %v (see '%s --help')", c.path(), err, c.path())}
		}
		rest := c.flags.Args()
		consumed := len(args) - len(rest)
		if len(rest) == 0 || (consumed > 0 && args[consumed-1] == "--") {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return c.exec(ctx, stdout, positional)
}

func usage(w io.Writer, c *command, subs []*command) {
	line := c.path() + " [flags]"
	if len(subs) > 0 {
		line += " [COMMAND]"
	}
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", line, strings.TrimSpace(c.long))
	if len(subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		for _, s := range subs {
			fmt.Fprintf(w, "  %-10s %s\n", s.word(), s.short)
		}
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags and arguments.\n", c.path())
	}
	fmt.Fprintf(w, "\nFlags:\n")
	c.flags.SetOutput(w)
	c.flags.PrintDefaults()
}

func (c *command) wantArgs(args []string, n int) error {
	if len(args) != n {
		return usageError{fmt.Sprintf("%s: want %d argument(s) %s, got %d (see '%s --help')", c.path(), n, c.args, len(args), c.path())}
	}
	return nil
}

// configPath is the --config default of the commands that reach a running
// stack: $EDGEFORT_CONFIG, as the banner suggests exporting.
func configPath() string {
	if p := os.Getenv(config.EnvConfig); p != "" {
		return p
	}
	return config.DefaultPath
}
