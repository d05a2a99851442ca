// Package rootfstest is a simulated A/B device in files, for tests and the
// dev environment: two partition files, a grub-mender-grubenv boot
// environment, and the mountinfo and kernel command line through which
// the rootfs installer learns which partition runs. Boot powers it on:
// it picks the partition as grub-mender-grubenv's GRUB script does,
// falling back when a trial boot did not come up, and "mounts" it.
//
// It is not part of the agent: only tests and edgefort-dev import it.
package rootfstest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edgefort/edgefort/updater/bootenv"
)

// Partition numbers of the simulated pair.
const (
	NumA = 2
	NumB = 3
)

// Device is a simulated A/B device under Dir.
type Device struct {
	Dir                string
	PartA, PartB       string // Dir/part2, Dir/part3
	MountInfo, Cmdline string // what the rootfs installer reads
	// GRUBDir holds the grub-mender-grubenv environment New lays out,
	// and Env is the environment Boot uses: that one, unless a test puts
	// another (a U-Boot environment) in its place.
	GRUBDir string
	Env     bootenv.Env
}

// Open returns the device New laid out in dir, changing nothing.
func Open(dir string) *Device {
	return &Device{
		Dir:       dir,
		PartA:     filepath.Join(dir, "part"+strconv.Itoa(NumA)),
		PartB:     filepath.Join(dir, "part"+strconv.Itoa(NumB)),
		MountInfo: filepath.Join(dir, "mountinfo"),
		Cmdline:   filepath.Join(dir, "cmdline"),
		GRUBDir:   filepath.Join(dir, "boot", "EFI", "BOOT"),
		Env:       &bootenv.GRUB{Dir: filepath.Join(dir, "boot", "EFI", "BOOT")},
	}
}

// New lays out a device in dir whose partitions hold a and b, booting A:
// upgrade_available=0, bootcount=0, mender_boot_part=2.
func New(dir string, a, b []byte) (*Device, error) {
	d := Open(dir)
	for p, data := range map[string][]byte{d.PartA: a, d.PartB: b} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, fmt.Errorf("rootfstest: %w", err)
		}
	}
	err := bootenv.CreateGRUB(d.GRUBDir, bootenv.Vars{
		bootenv.VarBootCount: "0", bootenv.VarBootPart: strconv.Itoa(NumA), bootenv.VarUpgradeAvailable: "0",
	})
	if err != nil {
		return nil, err
	}
	if err := d.mount(d.PartA); err != nil {
		return nil, err
	}
	return d, nil
}

// Boot powers the device on: GRUB loads the environment; on a trial boot
// (upgrade_available=1) it counts the attempt (bootcount=1) the first time
// and rolls back to the other partition the second, when the trial system
// never committed; then it boots mender_boot_part. It returns the
// partition booted, now mounted at /.
func (d *Device) Boot(ctx context.Context) (string, error) {
	v, err := d.Env.Read(ctx)
	if err != nil {
		return "", fmt.Errorf("rootfstest: boot: %w", err)
	}
	part := v[bootenv.VarBootPart]
	if part != strconv.Itoa(NumA) && part != strconv.Itoa(NumB) {
		part = strconv.Itoa(NumA) // GRUB's choice for an invalid environment
	}
	if v[bootenv.VarUpgradeAvailable] == "1" {
		set := bootenv.Vars{bootenv.VarBootCount: "1", bootenv.VarBootPart: part, bootenv.VarUpgradeAvailable: "1"}
		if v[bootenv.VarBootCount] != "0" {
			// As grub-mender-grubenv's script: the hex number follows.
			part = d.other(part)
			n, _ := strconv.Atoi(part)
			set = bootenv.Vars{bootenv.VarBootCount: "0", bootenv.VarBootPart: part, bootenv.VarBootPartHex: fmt.Sprintf("%X", n), bootenv.VarUpgradeAvailable: "0"}
		}
		if err := d.Env.Write(ctx, set); err != nil {
			return "", fmt.Errorf("rootfstest: boot: %w", err)
		}
	}
	path := d.PartA
	if part == strconv.Itoa(NumB) {
		path = d.PartB
	}
	return path, d.mount(path)
}

func (d *Device) other(part string) string {
	if part == strconv.Itoa(NumA) {
		return strconv.Itoa(NumB)
	}
	return strconv.Itoa(NumA)
}

// mount makes path the running root: mounted at / and named by root=.
func (d *Device) mount(path string) error {
	info := fmt.Sprintf("22 1 259:%d / / rw,relatime shared:1 - ext4 %s rw\n", 2, path) +
		"30 22 259:4 / /data rw,relatime shared:2 - ext4 /dev/data rw\n"
	if err := os.WriteFile(d.MountInfo, []byte(info), 0o644); err != nil {
		return fmt.Errorf("rootfstest: %w", err)
	}
	if err := os.WriteFile(d.Cmdline, []byte("console=ttyS0 root="+path+" rootwait\n"), 0o644); err != nil {
		return fmt.Errorf("rootfstest: %w", err)
	}
	return nil
}

// Running returns the partition mounted at /.
func (d *Device) Running() (string, error) {
	b, err := os.ReadFile(d.Cmdline)
	if err != nil {
		return "", err
	}
	for _, p := range []string{d.PartA, d.PartB} {
		if string(b) == "console=ttyS0 root="+p+" rootwait\n" {
			return p, nil
		}
	}
	return "", fmt.Errorf("rootfstest: %s names neither partition", d.Cmdline)
}
