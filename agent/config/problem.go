package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File    string
	Line    int    // 1-based; 0 when no line applies
	Field   string // dotted path, e.g. clients.virtual_hosts[0].listen
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem found in one file, in file order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects problems by field path; lines are attached at the end
// from the positions the decoder recorded, so validation need not carry
// YAML nodes around.
type problems struct {
	list  []Problem
	fatal bool // the file could not be read as YAML at all
}

// Bounds on what an error echoes back, so that a huge value in the file
// (a key or string of a megabyte) never becomes a huge error message or
// log line: each string shown is clipped to maxEcho bytes, and at most
// maxProblems problems are listed.
const (
	maxEcho     = 128
	maxProblems = 100
)

func (ps *problems) add(line int, field, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = echoed(s)
		}
	}
	ps.list = append(ps.list, Problem{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// echoed is a string from the file (or built from one) as an error shows
// it: whole up to maxEcho bytes, else its start and its length. Under %q
// the note stays outside the quotes, so the quoted part is still exactly
// what the file holds.
type echoed string

func (e echoed) Format(f fmt.State, verb rune) {
	s := string(e)
	if len(s) <= maxEcho {
		fmt.Fprintf(f, fmt.FormatString(f, verb), s)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), clipBytes(s, maxEcho))
	fmt.Fprintf(f, "... (%d bytes)", len(s))
}

// clip is echoed for a plain string such as a field path.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", clipBytes(s, maxEcho), len(s))
}

// clipBytes cuts s to at most n bytes without splitting a UTF-8 sequence.
func clipBytes(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// join builds a field path: join("a", "b") is "a.b", join("", "b") is "b".
func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func index(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}
