package selfupdate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// versionPrefix starts the first line "edgefort version" prints.
const versionPrefix = "edgefort "

// preflightOutput caps how much of the preflight's output an error shows.
const preflightOutput = 512

// preflight runs "<path> version" and checks that it exits 0 within
// preflightTimeout and prints a first line starting with "edgefort ". This
// refuses binaries for another architecture, truncated files and programs
// that are not edgefort. It returns the first line.
func preflight(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	var out []byte
	var err error
	// The file was just written and closed, but a child forked elsewhere in
	// the process meanwhile may still hold it open for writing for a moment
	// (ETXTBSY); retry briefly.
	for attempt := 0; ; attempt++ {
		cmd := exec.CommandContext(ctx, path, "version")
		cmd.WaitDelay = time.Second // children holding the pipes must not block us
		out, err = cmd.CombinedOutput()
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 5 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("no answer within %v: %w", preflightTimeout, err)
	}
	if err != nil {
		return "", fmt.Errorf("preflight %q version: %w%s", path, err, outputTail(out))
	}
	first, _, _ := strings.Cut(string(out), "\n")
	first = strings.TrimRight(first, "\r")
	if !strings.HasPrefix(first, versionPrefix) {
		return "", fmt.Errorf("preflight %q version: first line does not start with %q%s", path, versionPrefix, outputTail(out))
	}
	return first, nil
}

// outputTail formats the end of a command's output for an error message.
func outputTail(out []byte) string {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return " (no output)"
	}
	if len(out) > preflightOutput {
		return fmt.Sprintf(": output: ...%q", out[len(out)-preflightOutput:])
	}
	return fmt.Sprintf(": output: %q", out)
}
