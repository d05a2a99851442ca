package bootenv

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
)

// maxEnvOutput bounds what is read from fw_printenv: U-Boot environments
// are a few KiB to a few hundred.
const maxEnvOutput = 1 << 20

// UBoot is the U-Boot environment through fw_printenv and fw_setenv
// (libubootenv): redundancy and atomic updates are theirs, configured in
// fw_env.config (two environment copies with a flag byte).
type UBoot struct {
	// Printenv and Setenv are the tools; default "fw_printenv" and
	// "fw_setenv", found in PATH.
	Printenv, Setenv string
	// Config is passed as -c: the fw_env.config to use. Empty uses the
	// tools' default, /etc/fw_env.config.
	Config string
}

func (u *UBoot) args(extra ...string) []string {
	var a []string
	if u.Config != "" {
		a = append(a, "-c", u.Config)
	}
	return append(a, extra...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Read runs fw_printenv [names...] and parses its name=value lines.
func (u *UBoot) Read(ctx context.Context, names ...string) (Vars, error) {
	tool := orDefault(u.Printenv, "fw_printenv")
	var stdout, stderr limitedBuffer
	cmd := exec.CommandContext(ctx, tool, u.args(names...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bootenv: %s %s: %w: %s", tool, strings.Join(names, " "), err, strings.TrimSpace(stderr.String()))
	}
	if stdout.over {
		return nil, fmt.Errorf("bootenv: %s printed more than %d bytes", tool, maxEnvOutput)
	}
	vars := Vars{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("bootenv: %s printed %q, not name=value", tool, line)
		}
		vars[k] = v
	}
	return vars, nil
}

// Write runs fw_setenv -s - with one name=value line per variable on its
// standard input: libubootenv applies the whole script in one write of the
// environment (to the copy not in use, flipping the flag last when the
// environment is redundant).
func (u *UBoot) Write(ctx context.Context, vars Vars) error {
	if err := checkVars(vars); err != nil {
		return err
	}
	var script strings.Builder
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(&script, "%s=%s\n", k, vars[k])
	}
	tool := orDefault(u.Setenv, "fw_setenv")
	var out limitedBuffer
	cmd := exec.CommandContext(ctx, tool, u.args("-s", "-")...)
	cmd.Stdin = strings.NewReader(script.String())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bootenv: %s -s -: %w: %s", tool, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// limitedBuffer keeps the first maxEnvOutput bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxEnvOutput - b.Len(); len(p) > room {
		b.over = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

var _ Env = (*UBoot)(nil)
