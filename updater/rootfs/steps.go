package rootfs

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/module"
)

// errVerifyReboot is the Mender client's message for a trial boot that did
// not happen or was undone by the boot loader.
var errVerifyReboot = errors.New(`reboot to the new update failed: expected "upgrade_available" to be 1 but it was not: either the switch to the new partition was unsuccessful, or the boot loader rolled back`)

// install makes the written partition the one to boot, on trial.
func (in *Installer) install(ctx context.Context, p module.Payload) error {
	st, err := loadState(p)
	if err != nil {
		return err
	}
	if !st.Complete {
		return fmt.Errorf("rootfs: ArtifactInstall: the image in %s is not complete; it is not bootable and stays unused", st.To.Path)
	}
	err = in.env.Write(ctx, bootenv.Vars{
		bootenv.VarUpgradeAvailable: "1",
		bootenv.VarBootPart:         st.To.dec(),
		bootenv.VarBootPartHex:      st.To.hex(),
		bootenv.VarBootCount:        "0",
	})
	if err != nil {
		return fmt.Errorf("rootfs: ArtifactInstall: %w", err)
	}
	in.log.Info("new partition set to boot on trial", "partition", st.To.Path, "number", st.To.Num)
	return nil
}

// upgradeAvailable reads upgrade_available.
func (in *Installer) upgradeAvailable(ctx context.Context) (bool, error) {
	v, err := in.env.Read(ctx, bootenv.VarUpgradeAvailable)
	if err != nil {
		return false, err
	}
	return v[bootenv.VarUpgradeAvailable] == "1", nil
}

// verifyReboot runs in the new system: the new partition must be running
// on trial, and the agent healthy.
func (in *Installer) verifyReboot(ctx context.Context, p module.Payload) error {
	st, err := loadState(p)
	if err != nil {
		return err
	}
	active, _, err := in.running()
	if err != nil {
		return err
	}
	if active != st.To {
		return fmt.Errorf("rootfs: the system came up on %s, not on the new partition %s: the boot loader fell back", active.Path, st.To.Path)
	}
	trial, err := in.upgradeAvailable(ctx)
	if err != nil {
		return fmt.Errorf("rootfs: ArtifactVerifyReboot: %w", err)
	}
	if !trial {
		return fmt.Errorf("rootfs: %w", errVerifyReboot)
	}
	if in.ready != nil {
		rctx, cancel := context.WithTimeout(ctx, in.healthTimeout)
		err := in.ready(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("rootfs: the agent in the new system is not healthy within %v: %w", in.healthTimeout, err)
		}
	}
	in.log.Info("booted the new partition on trial", "partition", st.To.Path)
	return nil
}

// commit ends the trial. Run again after a power cut that came after the
// write, it finds the new system running with the trial over, and is done.
func (in *Installer) commit(ctx context.Context, p module.Payload) error {
	st, err := loadState(p)
	if err != nil {
		return err
	}
	trial, err := in.upgradeAvailable(ctx)
	if err != nil {
		return fmt.Errorf("rootfs: ArtifactCommit: %w", err)
	}
	if !trial {
		if active, _, err := in.running(); err == nil && active == st.To {
			return nil // committed already
		}
		return fmt.Errorf("rootfs: ArtifactCommit: %w", errVerifyReboot)
	}
	if err := in.env.Write(ctx, bootenv.Vars{bootenv.VarUpgradeAvailable: "0"}); err != nil {
		return fmt.Errorf("rootfs: ArtifactCommit: %w", err)
	}
	in.log.Info("committed", "partition", st.To.Path)
	return nil
}

// rollback points the boot loader at the partition the update started
// from, if it does not already boot it for good.
func (in *Installer) rollback(ctx context.Context, p module.Payload) error {
	st, err := loadState(p)
	if errors.Is(err, errNoState) {
		return nil // the download never started: nothing changed
	}
	if err != nil {
		return err
	}
	// One variable a read, as the Mender client reads them.
	trial, err := in.upgradeAvailable(ctx)
	if err != nil {
		return fmt.Errorf("rootfs: ArtifactRollback: %w", err)
	}
	env, err := in.env.Read(ctx, bootenv.VarBootPart)
	if err != nil {
		return fmt.Errorf("rootfs: ArtifactRollback: %w", err)
	}
	if !trial && env[bootenv.VarBootPart] == st.From.dec() {
		in.log.Info("no update pending in the boot environment; no rollback needed", "partition", st.From.Path)
		return nil
	}
	err = in.env.Write(ctx, bootenv.Vars{
		bootenv.VarBootPart:         st.From.dec(),
		bootenv.VarBootPartHex:      st.From.hex(),
		bootenv.VarUpgradeAvailable: "0",
	})
	if err != nil {
		return fmt.Errorf("rootfs: ArtifactRollback: %w", err)
	}
	in.log.Info("boot environment points back at the old partition", "partition", st.From.Path)
	return nil
}

// verifyRollbackReboot checks that the old system runs again, for good.
func (in *Installer) verifyRollbackReboot(ctx context.Context, p module.Payload) error {
	st, err := loadState(p)
	if errors.Is(err, errNoState) {
		return nil
	}
	if err != nil {
		return err
	}
	active, _, err := in.running()
	if err != nil {
		return err
	}
	if active != st.From {
		return fmt.Errorf("rootfs: after the rollback the system runs %s, not the old partition %s", active.Path, st.From.Path)
	}
	trial, err := in.upgradeAvailable(ctx)
	if err != nil {
		return fmt.Errorf("rootfs: ArtifactRollbackVerifyReboot: %w", err)
	}
	if trial {
		return errors.New(`rootfs: reboot to the old partition failed: "upgrade_available" is still 1`)
	}
	return nil
}
