package config

import (
	"fmt"
	"strings"
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

func (ps *problems) add(line int, field, format string, args ...any) {
	ps.list = append(ps.list, Problem{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
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
