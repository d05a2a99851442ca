// Command manpage writes edgefort(1) in roff from the binary's own --help
// texts: the root's, then each command's and subcommand's, found through
// the "Commands:" list of each help text. The help is the one source of
// the CLI's documentation; the man page is generated from it at packaging
// time (packaging/package.sh) and so cannot drift from it.
//
//	go run ./packaging/manpage -version 1.2.3 BINARY > edgefort.1
//
// The date is $SOURCE_DATE_EPOCH's, so that a release's page is
// reproducible.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func main() {
	version := flag.String("version", "", "the version printed in the page's footer (required)")
	flag.Parse()
	if flag.NArg() != 1 || *version == "" {
		fmt.Fprintln(os.Stderr, "usage: manpage -version VERSION BINARY > edgefort.1")
		os.Exit(2)
	}
	date, err := sourceDate()
	if err == nil {
		err = write(os.Stdout, helpOf(flag.Arg(0)), *version, date)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "manpage: %v\n", err)
		os.Exit(1)
	}
}

// sourceDate is $SOURCE_DATE_EPOCH as a date, else today.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Now().UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// helpOf returns the func that prints the help of a command path (nil:
// the root) by running the binary.
func helpOf(bin string) func(path []string) (string, error) {
	return func(path []string) (string, error) {
		var out, errOut bytes.Buffer
		cmd := exec.Command(bin, append(path, "--help")...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		// Help may go to either stream, with status 0 or 2 (usage).
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 2) {
			return "", fmt.Errorf("%s %s --help: %w: %s", bin, strings.Join(path, " "), err, errOut.String())
		}
		text := out.String() + errOut.String()
		if !strings.HasPrefix(text, "Usage: ") {
			return "", fmt.Errorf("%s %s --help: no \"Usage:\" line: %q", bin, strings.Join(path, " "), text)
		}
		return text, nil
	}
}

// command is one entry of a help text's "Commands:" list.
type command struct{ name, short string }

// subcommands reads the "Commands:" list of a help text: indented lines
// "  name   short description" up to the first blank line.
func subcommands(help string) []command {
	var cmds []command
	in := false
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "Commands:":
			in = true
		case in && strings.TrimSpace(line) == "":
			return cmds
		case in && strings.HasPrefix(line, "  "):
			name, short, _ := strings.Cut(strings.TrimSpace(line), " ")
			cmds = append(cmds, command{name: name, short: strings.TrimSpace(short)})
		}
	}
	return cmds
}

func write(w io.Writer, help func([]string) (string, error), version string, date time.Time) error {
	root, err := help(nil)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".TH EDGEFORT 1 %q %q \"User Commands\"\n", date.Format("2006-01-02"), "edgefort "+version)
	b.WriteString(".SH NAME\nedgefort \\- the edge node agent\n")
	b.WriteString(".SH SYNOPSIS\n.B edgefort\n.I COMMAND\n.RI [ FLAGS ]\n")
	b.WriteString(".SH DESCRIPTION\n")
	preformatted(&b, root)
	b.WriteString(".SH COMMANDS\n")
	if err := commands(&b, help, nil, root); err != nil {
		return err
	}
	b.WriteString(`.SH FILES
.TP
.I /etc/edgefort/edgefort.yaml
The configuration; \fBedgefort config example\fR prints a complete one.
.TP
.I /var/lib/edgefort
The state directory: state database, keystores, admin socket (mode 0700).
.SH SEE ALSO
.BR systemctl (1),
.I /usr/share/doc/edgefort/README.md
`)
	_, err = io.WriteString(w, b.String())
	return err
}

// commands writes a subsection per command under path, depth first.
func commands(b *strings.Builder, help func([]string) (string, error), path []string, text string) error {
	for _, c := range subcommands(text) {
		if strings.HasPrefix(c.short, "moved:") {
			continue // a pointer elsewhere, not a command of this binary
		}
		sub := append(append([]string(nil), path...), c.name)
		h, err := help(sub)
		if err != nil {
			return err
		}
		fmt.Fprintf(b, ".SS \"edgefort %s\"\n", strings.Join(sub, " "))
		preformatted(b, h)
		if err := commands(b, help, sub, h); err != nil {
			return err
		}
	}
	return nil
}

// preformatted writes text as a no-fill block, escaped for roff: each
// backslash as \e, and a line that starts with a control character (a
// dot or an apostrophe) guarded with \&.
func preformatted(b *strings.Builder, text string) {
	b.WriteString(".nf\n")
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		line = strings.ReplaceAll(line, `\`, `\e`)
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		b.WriteString(line + "\n")
	}
	b.WriteString(".fi\n")
}
