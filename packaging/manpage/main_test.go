package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// helps is a CLI's help texts by command path, as the binary prints them.
var helps = map[string]string{
	"": `Usage: edgefort COMMAND

The agent. A line with a backslash \d and:
.not a macro

Commands:
  run        run the agent
  dev        moved: elsewhere
  config     check or print configuration

Run 'edgefort COMMAND --help' for a command's flags.
`,
	"run": "Usage: edgefort run [flags]\n\n'quoted line first\n",
	"config": `Usage: edgefort config COMMAND

Commands:
  validate   check a file
`,
	"config validate": "Usage: edgefort config validate FILE\n",
}

func fakeHelp(path []string) (string, error) {
	h, ok := helps[strings.Join(path, " ")]
	if !ok {
		return "", fmt.Errorf("no help for %q", path)
	}
	return h, nil
}

func TestWrite(t *testing.T) {
	var b strings.Builder
	if err := write(&b, fakeHelp, "1.2.3", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	var sections []string
	for line := range strings.SplitSeq(page, "\n") {
		if strings.HasPrefix(line, ".TH") || strings.HasPrefix(line, ".SH") || strings.HasPrefix(line, ".SS") {
			sections = append(sections, line)
		}
	}
	want := []string{
		`.TH EDGEFORT 1 "2026-01-02" "edgefort 1.2.3" "User Commands"`,
		".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH COMMANDS",
		`.SS "edgefort run"`, `.SS "edgefort config"`, `.SS "edgefort config validate"`,
		".SH FILES", ".SH SEE ALSO",
	}
	if diff := cmp.Diff(want, sections); diff != "" {
		t.Errorf("sections (-want +got):\n%s", diff)
	}
	for _, escaped := range []string{`backslash \ed and:`, "\\&.not a macro\n", "\\&'quoted line first\n"} {
		if !strings.Contains(page, escaped) {
			t.Errorf("page lacks the escaped %q:\n%s", escaped, page)
		}
	}
}

func TestWriteHelpFails(t *testing.T) {
	delete(helps, "config validate")
	defer func() { helps["config validate"] = "Usage: edgefort config validate FILE\n" }()
	var b strings.Builder
	err := write(&b, fakeHelp, "1", time.Now())
	if err == nil || !strings.Contains(err.Error(), `"config" "validate"`) && !strings.Contains(err.Error(), "[config validate]") {
		t.Errorf("err = %v, want the failing command named", err)
	}
	if b.Len() != 0 {
		t.Errorf("a failed run wrote %d bytes", b.Len())
	}
}

// TestRealBinary generates the page from the real edgefort binary and has
// man(1) check it, when man is installed: no warnings from groff.
func TestRealBinary(t *testing.T) {
	bin := t.TempDir() + "/edgefort"
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/edgefort").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var b strings.Builder
	if err := write(&b, helpOf(bin), "1.2.3", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`.SS "edgefort run"`, `.SS "edgefort keystore create"`, "/etc/edgefort/edgefort.yaml"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if _, err := exec.LookPath("man"); err != nil {
		return // the structure is checked; groff's view needs man
	}
	page := t.TempDir() + "/edgefort.1"
	if err := os.WriteFile(page, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("man", "--warnings", "-l", "-Tutf8", "-Z", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "LC_ALL=C.UTF-8")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("man --warnings: %v\n%s", err, stderr.String())
	}
}
