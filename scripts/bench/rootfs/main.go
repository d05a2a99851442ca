// Command rootfs is one rootfs-image install by edgefort's installer and
// state machine, for scripts/bench/rootfs.sh: the Artifact streams into
// the inactive partition (a block device or a file), is synced, and the
// boot environment is set to boot it on trial, as `edgefort update install`
// does; it stops there, as the benchmark's peers do. The running partition
// comes from the mountinfo and kernel command line files given, so that a
// simulated device can be measured on any machine.
//
//	go run ./scripts/bench/rootfs -artifact A -part-a P2 -part-b P3 -mountinfo M -cmdline C \
//	    -fw-printenv SHIM -fw-setenv SHIM -state DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/rootfs"
)

func main() {
	art := flag.String("artifact", "", "the rootfs-image Artifact")
	partA := flag.String("part-a", "", "rootfs_part_a")
	partB := flag.String("part-b", "", "rootfs_part_b")
	mountInfo := flag.String("mountinfo", "", "the mountinfo file naming the running root")
	cmdline := flag.String("cmdline", "", "the kernel command line file")
	printenv := flag.String("fw-printenv", "fw_printenv", "fw_printenv to run")
	setenv := flag.String("fw-setenv", "fw_setenv", "fw_setenv to run")
	state := flag.String("state", "", "a new state directory")
	deviceType := flag.String("device-type", "bench-device", "the device type")
	flag.Parse()
	if err := run(*art, *partA, *partB, *mountInfo, *cmdline, *printenv, *setenv, *state, *deviceType); err != nil {
		fmt.Fprintln(os.Stderr, "rootfs:", err)
		os.Exit(1)
	}
}

func run(art, partA, partB, mountInfo, cmdline, printenv, setenv, state, deviceType string) error {
	in, err := rootfs.New(rootfs.Options{
		PartA: partA, PartB: partB, MountInfo: mountInfo, Cmdline: cmdline,
		Env: &bootenv.UBoot{Printenv: printenv, Setenv: setenv},
	})
	if err != nil {
		return err
	}
	db, err := store.Open(state, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	m, err := deploy.New(deploy.Options{
		Store: db, DeviceType: deviceType, WorkDir: filepath.Join(state, "updates"),
		Installers: func(typ string) (module.Installer, error) {
			if typ != rootfs.Type {
				return nil, fmt.Errorf("not a rootfs-image payload: %s", typ)
			}
			return in, nil
		},
	})
	if err != nil {
		return err
	}
	f, err := os.Open(art)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := m.Install(context.Background(), f, deploy.Job{Standalone: true})
	if err != nil {
		return err
	}
	if res.Outcome != deploy.OutcomeInstalled {
		return fmt.Errorf("install ended %s: %s", res.Outcome, res.Reason)
	}
	return nil
}
