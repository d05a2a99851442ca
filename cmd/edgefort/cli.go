package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one verb of the CLI. A command runs (exec), groups
// subcommands, or both: then it runs when no subcommand is named. Every
// level answers -h/--help.
type command struct {
	name   string
	args   string // usage of the positional arguments, e.g. "FILE"
	short  string // one line for the parent's list
	long   string // paragraph(s) for this command's help
	flags  *flag.FlagSet
	hidden bool // internal: left out of the parent's list (and the man page)
	exec   func(ctx context.Context, st streams, args []string) error
	subs   []*command
	parent *command
}

// streams are where commands write; tests capture them.
type streams struct {
	stdout, stderr io.Writer
}

// usageError marks a mistake in how a command was called (exit status 2).
// Its message names the command without the program name ("update
// install: ..."): main prefixes every error line with "edgefort: ".
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func (c *command) path() string {
	if c.parent == nil {
		return c.name
	}
	return c.parent.path() + " " + c.name
}

// where names the command in an error message: its path without the
// program name, which main prints before every error ("edgefort: config:
// missing command"); empty for the root.
func (c *command) where() string {
	if c.parent == nil {
		return ""
	}
	if w := c.parent.where(); w != "" {
		return w + " " + c.name
	}
	return c.name
}

// errorf makes a usage error about c: "COMMAND: message".
func (c *command) errorf(format string, args ...any) usageError {
	msg := fmt.Sprintf(format, args...)
	if w := c.where(); w != "" {
		msg = w + ": " + msg
	}
	return usageError{msg}
}

func (c *command) fs() *flag.FlagSet {
	if c.flags == nil {
		c.flags = flag.NewFlagSet(c.name, flag.ContinueOnError)
	}
	return c.flags
}

func (c *command) usage(w io.Writer) {
	line := c.path()
	if hasFlags(c.fs()) {
		line += " [flags]"
	}
	switch {
	case len(c.subs) > 0 && c.exec != nil:
		line += " [COMMAND]"
	case len(c.subs) > 0:
		line += " COMMAND"
	}
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n", line)
	text := c.long
	if text == "" {
		text = c.short
	}
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(text))
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		for _, s := range c.subs {
			if s.hidden {
				continue
			}
			fmt.Fprintf(w, "  %-10s %s\n", s.name, s.short)
		}
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags and arguments.\n", c.path())
	}
	if hasFlags(c.fs()) {
		fmt.Fprintf(w, "\nFlags:\n")
		c.fs().SetOutput(w)
		c.fs().PrintDefaults()
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// run parses flags and dispatches. Help goes to stdout and is not an error.
func (c *command) run(ctx context.Context, st streams, args []string) error {
	fs := c.fs()
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	rest, err := c.parse(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(st.stdout)
			return nil
		}
		return c.errorf("%v (see '%s --help')", err, c.path())
	}
	if len(c.subs) > 0 {
		if len(rest) == 0 && c.exec != nil {
			return c.exec(ctx, st, rest)
		}
		if len(rest) == 0 {
			c.usage(st.stderr)
			return c.errorf("missing command")
		}
		if rest[0] == "help" {
			c.usage(st.stdout)
			return nil
		}
		for _, s := range c.subs {
			if s.name == rest[0] {
				return s.run(ctx, st, rest[1:])
			}
		}
		return c.errorf("unknown command %q (see '%s --help')", rest[0], c.path())
	}
	return c.exec(ctx, st, rest)
}

// parse parses flags. A command that runs takes flags anywhere among its
// arguments ("import STORE ALIAS --key k"), as users expect; a command that
// groups subcommands stops at the first argument, which names the
// subcommand whose flags follow. "--" ends the flags.
func (c *command) parse(args []string) ([]string, error) {
	fs := c.fs()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		endedByDashes := consumed > 0 && args[consumed-1] == "--"
		if len(c.subs) > 0 || len(rest) == 0 || endedByDashes {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// add attaches subcommands.
func (c *command) add(subs ...*command) *command {
	for _, s := range subs {
		s.parent = c
		c.subs = append(c.subs, s)
	}
	return c
}

// wantArgs checks the number of positional arguments.
func (c *command) wantArgs(args []string, n int) error {
	if len(args) != n {
		return c.errorf("want %d argument(s) %s, got %d (see '%s --help')", n, c.args, len(args), c.path())
	}
	return nil
}
