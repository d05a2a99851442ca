package devstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/updater/rootfs/rootfstest"
)

// The simulated A/B device the dev agent runs on, so that rootfs-image
// Artifacts install end to end: rootfstest's two partition files and
// grub-mender-grubenv environment under DeviceDir, the agent told which
// partition runs through the mountinfo and kernel command line the
// device's Boot writes (agent.SetRunningSystem: code, not
// configuration), and a reboot command that writes to a FIFO the stack
// reads: the stack then stops the agent, boots the device (GRUB's choice
// from the environment) and starts a new agent on the booted partition.
const (
	// DeviceDir holds the device under the state directory.
	DeviceDir = "device"
	// DevicePartSize is the size of each partition file.
	DevicePartSize = 8 << 20
	// RebootFIFO, under DeviceDir, is what the reboot command writes to.
	RebootFIFO = "reboot"
	// PanicMarker begins an image whose system never comes up: booted, it
	// "panics" and the watchdog resets the device before any agent runs,
	// so that GRUB's second attempt falls back to the other partition.
	PanicMarker = "EDGEFORT-DEV-KERNEL-PANIC"
)

// factoryImage is what partition A holds on a new device.
const factoryImage = "edgefort-dev simulated root filesystem, factory image\n"

// maxBootAttempts bounds the resets in one boot: GRUB falls back after
// the second, so more means that neither partition comes up.
const maxBootAttempts = 4

// device is the simulated A/B device and its reboot FIFO.
type device struct {
	dev     *rootfstest.Device
	fifo    *os.File
	reboots chan int // the reboot command's PID; one pending request at most
	wg      sync.WaitGroup
}

// openDevice lays out the device under dir (partition A holds the factory
// image and boots) or opens the one a kept state directory has, and opens
// its reboot FIFO.
func openDevice(dir string) (*device, error) {
	var dev *rootfstest.Device
	if _, err := os.Stat(rootfstest.Open(dir).PartA); err == nil {
		dev = rootfstest.Open(dir)
	} else if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		a := make([]byte, DevicePartSize)
		copy(a, factoryImage)
		if dev, err = rootfstest.New(dir, a, make([]byte, DevicePartSize)); err != nil {
			return nil, err
		}
	} else {
		return nil, err
	}
	path := filepath.Join(dir, RebootFIFO)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("make the reboot FIFO %s: %w", path, err)
	}
	// Read and write: a writer never blocks for want of a reader, and the
	// reads never see an end of file between two writers.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	d := &device{dev: dev, fifo: f, reboots: make(chan int, 1)}
	d.wg.Add(1)
	go d.readReboots()
	return d, nil
}

// readReboots turns each line written to the FIFO (the PID of the reboot
// command's shell) into a reboot request.
func (d *device) readReboots() {
	defer d.wg.Done()
	sc := bufio.NewScanner(d.fifo)
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil || pid <= 0 {
			pid = 0 // a stray write still reboots; nothing to wait for
		}
		select {
		case d.reboots <- pid:
		default: // one is pending already
		}
	}
}

// waitRebootCommand returns once the reboot command with pid has exited
// and been reaped, or after a few seconds: as a real reboot command
// returns before the host goes down, so that the agent sees it succeed.
func waitRebootCommand(ctx context.Context, pid int) {
	if pid <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for syscall.Kill(pid, 0) == nil {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close stops reading the FIFO.
func (d *device) close() {
	d.fifo.Close()
	d.wg.Wait()
}

// rebootCommand is the agent's reboot_command on the device under dir:
// it asks the stack to reboot the device.
func rebootCommand(dir string) []string {
	fifo := filepath.Join(dir, RebootFIFO)
	return []string{"/bin/sh", "-c", "echo $$ >'" + strings.ReplaceAll(fifo, "'", `'\''`) + "'"}
}

// running is what SetRunningSystem gets: the device's view of /proc.
func (d *device) running() agent.RunningSystem {
	return agent.RunningSystem{MountInfo: d.dev.MountInfo, Cmdline: d.dev.Cmdline}
}

// boot powers the device on, as often as its systems panic (up to
// maxBootAttempts), and returns the partition that came up. A reboot
// request left from the previous run is dropped.
func (d *device) boot(ctx context.Context, log *slog.Logger) (string, error) {
	select {
	case <-d.reboots:
	default:
	}
	for range maxBootAttempts {
		part, err := d.dev.Boot(ctx)
		if err != nil {
			return "", err
		}
		panics, err := imagePanics(part)
		if err != nil {
			return "", err
		}
		if !panics {
			log.Info("simulated device booted", "partition", part)
			return part, nil
		}
		log.Warn("simulated device: the system on the booted partition panics; the watchdog resets the device", "partition", part)
	}
	return "", fmt.Errorf("simulated device: no partition comes up in %d boots", maxBootAttempts)
}

// imagePanics says whether the image in part begins with PanicMarker.
func imagePanics(part string) (bool, error) {
	f, err := os.Open(part)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(PanicMarker))
	if _, err := io.ReadFull(f, head); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read %s: %w", part, err)
	}
	return bytes.Equal(head, []byte(PanicMarker)), nil
}
