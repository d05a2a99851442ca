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

// The canary of Mender's U-Boot integration: an environment built with
// mender_check_saveenv_canary=1 gets mender_saveenv_canary=1 from U-Boot's
// boot script once U-Boot has saved it. Seen from Linux without the
// second, the tools do not read the environment U-Boot writes (fw_env.config
// points elsewhere) or the boot script lacks Mender's setup: writing would
// change nothing the boot loader reads.
const (
	varCheckCanary = "mender_check_saveenv_canary"
	varCanary      = "mender_saveenv_canary"
)

// checkCanary fails when the environment asks for the canary and it is
// missing, as the Mender client does before each read and write.
func (u *UBoot) checkCanary(ctx context.Context) error {
	v, err := u.printenv(ctx, varCheckCanary)
	if err != nil || v[varCheckCanary] != "1" {
		return nil // no canary asked for (an unset variable can make the tool fail)
	}
	v, err = u.printenv(ctx, varCanary)
	if err != nil {
		return fmt.Errorf("bootenv: the U-Boot environment asks for the save canary (%s=1) and reading %s failed: %w", varCheckCanary, varCanary, err)
	}
	if v[varCanary] != "1" {
		return fmt.Errorf("bootenv: the U-Boot environment asks for the save canary (%s=1) but %s is not 1: U-Boot and fw_env.config do not point at the same environment, or the boot script does not run Mender's setup", varCheckCanary, varCanary)
	}
	return nil
}

// Read runs fw_printenv [names...] and parses its name=value lines, after
// the canary check.
func (u *UBoot) Read(ctx context.Context, names ...string) (Vars, error) {
	if err := u.checkCanary(ctx); err != nil {
		return nil, err
	}
	return u.printenv(ctx, names...)
}

func (u *UBoot) printenv(ctx context.Context, names ...string) (Vars, error) {
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
// environment is redundant). Lines are name=value, not the "name value"
// of U-Boot's own tools and of the Mender client: Debian's libubootenv
// 0.3.2 silently skips those.
func (u *UBoot) Write(ctx context.Context, vars Vars) error {
	if err := checkVars(vars); err != nil {
		return err
	}
	if err := u.checkCanary(ctx); err != nil {
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
