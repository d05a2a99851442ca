// Package rootfs is the built-in installer for payload type "rootfs-image":
// a whole root filesystem image written to the inactive partition of an
// A/B pair, booted once on trial, and committed or rolled back through the
// boot loader's environment (package bootenv), with the variables and
// meaning of the Mender client's integration, so that images built for
// Mender boot the same way.
//
// The steps, as the update state machine calls them:
//
//   - Download finds the running partition (the device mounted at /, else
//     the kernel command line's root=) and refuses to go on when it matches
//     neither rootfs_part_a nor rootfs_part_b. The image streams into the
//     other one while the Artifact reader hashes it; an image larger than
//     the partition is refused before a byte is written. The partition is
//     flushed in the background as it fills (module.Flusher), fsynced at
//     the end, and optionally read back, its page cache dropped first, and
//     compared with the manifest's checksum.
//   - ArtifactInstall (once the whole Artifact is verified) sets
//     upgrade_available=1, bootcount=0 and mender_boot_part(_hex) to the new
//     partition, in one write of the boot environment.
//   - The installer answers NeedsArtifactReboot with Automatic: the state
//     machine reboots the host with reboot_command.
//   - ArtifactVerifyReboot, in the new system: the running partition must
//     be the new one and upgrade_available still 1 (else the boot loader
//     fell back), and the agent must be healthy (Options.Ready).
//   - ArtifactCommit sets upgrade_available=0.
//   - ArtifactRollback points mender_boot_part back at the partition the
//     update started from, with upgrade_available=0; the machine then
//     reboots (ArtifactRollbackReboot) and ArtifactRollbackVerifyReboot
//     checks that the old partition runs.
//
// The partition written to and the one to go back to are recorded in the
// payload's tree (on the data partition both systems share) when the
// download starts: after the reboot "active" and "inactive" have swapped.
// Every step can run again after a power cut and ends in the same place.
package rootfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/module"
)

// Type is the payload type this installer takes.
const Type = "rootfs-image"

// DefaultHealthTimeout is how long the new system's agent has to become
// healthy in ArtifactVerifyReboot when Options.HealthTimeout is zero.
const DefaultHealthTimeout = time.Minute

const stateFile = "rootfs-image.json" // in the payload tree

// Options configure an Installer.
type Options struct {
	// PartA and PartB are the two root partitions (rootfs_part_a,
	// rootfs_part_b): block devices, or files for tests and simulated
	// devices. Each must end in its partition number. Required.
	PartA, PartB string
	// Env is the boot loader's environment. Required.
	Env bootenv.Env
	// ReadBack reads the written image back, its page cache dropped
	// first, and compares it with the Artifact's checksum before the
	// download counts as done.
	ReadBack bool
	// Ready returns once the agent running in the new system is healthy;
	// nil counts as healthy.
	Ready func(ctx context.Context) error
	// HealthTimeout bounds Ready. Default DefaultHealthTimeout.
	HealthTimeout time.Duration
	// MountInfo and Cmdline are where the running system is read from;
	// default /proc/self/mountinfo and /proc/cmdline (tests and simulated
	// devices point them elsewhere).
	MountInfo, Cmdline string
	// Logger receives one line per step; nil discards.
	Logger *slog.Logger
}

// Installer installs rootfs-image payloads.
type Installer struct {
	a, b          part
	env           bootenv.Env
	readBack      bool
	ready         func(ctx context.Context) error
	healthTimeout time.Duration
	mountInfo     string
	cmdline       string
	log           *slog.Logger
}

var _ module.Installer = (*Installer)(nil)

// New checks opts. It does not look at the running system yet: that
// happens when an Artifact comes, so that a node whose partitions are not
// set up still runs its other updates.
func New(opts Options) (*Installer, error) {
	a, err := newPart("rootfs_part_a", opts.PartA)
	if err != nil {
		return nil, err
	}
	b, err := newPart("rootfs_part_b", opts.PartB)
	if err != nil {
		return nil, err
	}
	switch {
	case resolve(a.Path) == resolve(b.Path) || rdev(a.Path) != 0 && rdev(a.Path) == rdev(b.Path):
		return nil, fmt.Errorf("rootfs: rootfs_part_a and rootfs_part_b are the same partition (%s)", a.Path)
	case a.Num == b.Num:
		return nil, fmt.Errorf("rootfs: rootfs_part_a (%s) and rootfs_part_b (%s) have the same partition number %d: the boot loader could not tell them apart", a.Path, b.Path, a.Num)
	case opts.Env == nil:
		return nil, errors.New("rootfs: no boot environment configured")
	case opts.HealthTimeout < 0:
		return nil, fmt.Errorf("rootfs: negative health timeout %v", opts.HealthTimeout)
	}
	in := &Installer{
		a: a, b: b, env: opts.Env, readBack: opts.ReadBack, ready: opts.Ready,
		healthTimeout: opts.HealthTimeout, mountInfo: opts.MountInfo, cmdline: opts.Cmdline, log: opts.Logger,
	}
	if in.healthTimeout == 0 {
		in.healthTimeout = DefaultHealthTimeout
	}
	if in.mountInfo == "" {
		in.mountInfo = "/proc/self/mountinfo"
	}
	if in.cmdline == "" {
		in.cmdline = "/proc/cmdline"
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	in.log = in.log.With("component", "rootfs")
	return in, nil
}

// state is kept in the payload tree between steps and across the reboot.
type state struct {
	// From is the partition the update started from: the way back.
	From part `json:"from"`
	// To is the partition the image is written to.
	To part `json:"to"`
	// Complete: the image was written, synced and (with ReadBack) read
	// back, and the Artifact verified. Until then To is not bootable.
	Complete bool `json:"complete"`
}

func saveState(p module.Payload, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(p.Tree, stateFile), b, 0o600); err != nil {
		return fmt.Errorf("rootfs: record the partitions: %w", err)
	}
	return nil
}

// errNoState: the download never started, so nothing was written.
var errNoState = errors.New("rootfs: no record of a download in the payload tree")

func loadState(p module.Payload) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(p.Tree, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, errNoState
	}
	if err != nil {
		return st, fmt.Errorf("rootfs: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("rootfs: %s: %w", stateFile, err)
	}
	return st, nil
}

// Query answers as the Mender client's dual rootfs device: rollback is
// supported, and the host must reboot.
func (in *Installer) Query(_ context.Context, _ module.Payload, query string) (string, error) {
	switch query {
	case module.QuerySupportsRollback:
		return "Yes", nil
	case module.QueryNeedsArtifactReboot:
		return "Automatic", nil
	}
	return "", nil
}

// Call runs one state.
func (in *Installer) Call(ctx context.Context, p module.Payload, st string) error {
	switch st {
	case module.StateArtifactInstall:
		return in.install(ctx, p)
	case module.StateArtifactVerifyReboot:
		return in.verifyReboot(ctx, p)
	case module.StateArtifactCommit:
		return in.commit(ctx, p)
	case module.StateArtifactRollback:
		return in.rollback(ctx, p)
	case module.StateArtifactRollbackVerifyReboot:
		return in.verifyRollbackReboot(ctx, p)
	}
	// ArtifactReboot and ArtifactRollbackReboot: the machine reboots the
	// host (Automatic). ArtifactFailure, Cleanup: nothing to undo; the
	// inactive partition stays as it is, never booted.
	return nil
}
