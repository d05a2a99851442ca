// Package bootenv reads and writes the boot loader's environment, the
// channel through which an A/B root filesystem update tells the boot
// loader what to boot (package rootfs).
//
// Env is the one small interface; two boot loaders implement it, as the
// Mender client integrates them, so that images built for Mender boot the
// same way:
//
//   - UBoot runs fw_printenv and fw_setenv (Debian's libubootenv-tool),
//     configured by fw_env.config (or the file given with -c).
//   - GRUB edits the grub-mender-grubenv environment directly: two
//     redundant GRUB environment blocks (mender_grubenv1/env and
//     mender_grubenv2/env), each guarded by a lock block whose SHA-256 is
//     known, in the order grub-mender-grubenv's own fw_setenv uses, so that
//     a write cut at any point leaves one complete copy that both GRUB and
//     the next read pick.
//
// The variables are Mender's: VarUpgradeAvailable, VarBootCount,
// VarBootPart, VarBootPartHex.
package bootenv

import (
	"context"
	"fmt"
	"strings"
)

// The variables of Mender's boot loader integration.
const (
	// VarUpgradeAvailable is "1" while a new partition boots on trial:
	// the boot loader falls back to the other one if the trial boot does
	// not come up (bootcount), and a commit sets it to "0".
	VarUpgradeAvailable = "upgrade_available"
	// VarBootCount counts trial boots; the boot loader sets it to 1 on the
	// first and rolls back when it finds it non-zero.
	VarBootCount = "bootcount"
	// VarBootPart is the partition number to boot, in decimal.
	VarBootPart = "mender_boot_part"
	// VarBootPartHex is the same number in upper-case hexadecimal, for
	// U-Boot scripts that need it.
	VarBootPartHex = "mender_boot_part_hex"
)

// Vars are boot environment variables by name.
type Vars map[string]string

// Env is a boot loader's environment.
type Env interface {
	// Read returns the named variables (all of them when none is named).
	// A variable that is not set is absent from the result, or "" for
	// fw_printenv, which prints an unset variable as empty.
	Read(ctx context.Context, names ...string) (Vars, error)
	// Write sets vars in one update: after a crash at any point the
	// environment holds either all of them or none.
	Write(ctx context.Context, vars Vars) error
}

// checkVars refuses names and values the environment formats cannot hold.
func checkVars(vars Vars) error {
	if len(vars) == 0 {
		return fmt.Errorf("bootenv: nothing to write")
	}
	for k, v := range vars {
		if k == "" || strings.ContainsAny(k, "=\n\x00 \t") {
			return fmt.Errorf("bootenv: variable name %q: must be non-empty, without '=', spaces, newlines or NUL", k)
		}
		if strings.ContainsAny(v, "\n\x00") {
			return fmt.Errorf("bootenv: variable %s: value %q holds a newline or NUL", k, v)
		}
	}
	return nil
}
