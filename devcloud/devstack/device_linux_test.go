package devstack

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/rootfs/rootfstest"
)

func openTestDevice(t *testing.T, dir string) *device {
	t.Helper()
	d, err := openDevice(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

// TestDeviceBoot boots the simulated device from the environment an
// install leaves (or none) and checks the partition that comes up, what
// the agent is told runs, and the environment GRUB leaves.
func TestDeviceBoot(t *testing.T) {
	good := []byte("a new system\n")
	panics := []byte(PanicMarker + " and the rest of a broken system\n")
	a, b := strconv.Itoa(rootfstest.NumA), strconv.Itoa(rootfstest.NumB)
	trial := bootenv.Vars{bootenv.VarBootPart: b, bootenv.VarUpgradeAvailable: "1", bootenv.VarBootCount: "0"}
	tests := []struct {
		name         string
		imageA       []byte // nil: the factory image
		imageB       []byte
		env          bootenv.Vars // written before the boot; nil: as laid out
		wantB        bool         // partition B comes up, else A
		wantEnv      bootenv.Vars
		wantErrMatch string
	}{
		{name: "factory", wantEnv: bootenv.Vars{bootenv.VarBootPart: a, bootenv.VarUpgradeAvailable: "0", bootenv.VarBootCount: "0"}},
		{name: "trial of a good image", imageB: good, env: trial, wantB: true,
			wantEnv: bootenv.Vars{bootenv.VarBootPart: b, bootenv.VarUpgradeAvailable: "1", bootenv.VarBootCount: "1"}},
		{name: "trial of an image that panics falls back", imageB: panics, env: withHex(trial, b),
			wantEnv: bootenv.Vars{bootenv.VarBootPart: a, bootenv.VarBootPartHex: a, bootenv.VarUpgradeAvailable: "0", bootenv.VarBootCount: "0"}},
		{name: "committed B", imageB: good, env: bootenv.Vars{bootenv.VarBootPart: b, bootenv.VarUpgradeAvailable: "0", bootenv.VarBootCount: "0"}, wantB: true,
			wantEnv: bootenv.Vars{bootenv.VarBootPart: b, bootenv.VarUpgradeAvailable: "0", bootenv.VarBootCount: "0"}},
		{name: "neither comes up", imageA: panics, imageB: panics, env: trial, wantErrMatch: "no partition comes up in 4 boots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTestDevice(t, filepath.Join(t.TempDir(), DeviceDir))
			for part, img := range map[string][]byte{d.dev.PartA: tt.imageA, d.dev.PartB: tt.imageB} {
				if img != nil {
					writeAt0(t, part, img)
				}
			}
			ctx := context.Background()
			if tt.env != nil {
				if err := d.dev.Env.Write(ctx, tt.env); err != nil {
					t.Fatal(err)
				}
			}
			part, err := d.boot(ctx, slog.New(slog.DiscardHandler))
			if tt.wantErrMatch != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrMatch) {
					t.Fatalf("boot = %q, %v; want an error with %q", part, err, tt.wantErrMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := d.dev.PartA
			if tt.wantB {
				want = d.dev.PartB
			}
			if part != want {
				t.Errorf("booted %s, want %s", part, want)
			}
			if running, err := d.dev.Running(); err != nil || running != want {
				t.Errorf("the agent is told %q (%v) runs, want %s", running, err, want)
			}
			mi, err := os.ReadFile(d.running().MountInfo)
			if err != nil || !strings.Contains(string(mi), " / / rw,relatime shared:1 - ext4 "+want+" rw\n") {
				t.Errorf("mountinfo %q (%v) does not mount %s at /", mi, err, want)
			}
			env, err := d.dev.Env.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := bootenv.Vars{}
			for k := range tt.wantEnv {
				got[k] = env[k]
			}
			if diff := cmp.Diff(tt.wantEnv, got); diff != "" {
				t.Errorf("environment after the boot (-want +got):\n%s", diff)
			}
		})
	}
}

func withHex(v bootenv.Vars, hex string) bootenv.Vars {
	v = maps.Clone(v)
	v[bootenv.VarBootPartHex] = hex
	return v
}

func writeAt0(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceRebootCommand runs the reboot command the configuration
// gets, under a directory whose name needs quoting in a shell: the stack
// learns the command's PID, the command ends at once, a second request
// while one is pending does not block, and a stale request is dropped at
// the next boot.
func TestDeviceRebootCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's $HOME `x`", DeviceDir)
	d := openTestDevice(t, dir)
	run := func() int {
		argv := rebootCommand(dir)
		cmd := exec.Command(argv[0], argv[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("reboot command %q: %v: %s", argv, err, out)
		}
		return cmd.Process.Pid
	}
	pid := run()
	if got := <-d.reboots; got != pid {
		t.Errorf("reboot request from PID %d, want %d", got, pid)
	}
	waitRebootCommand(context.Background(), pid) // exited and reaped: returns
	run()
	run() // pending already: dropped, and the command does not block
	testkit.WaitFor(t, "both requests read from the FIFO, one pending", func() bool {
		return len(d.reboots) == 1 && unread(t, d.fifo) == 0
	})
	if _, err := d.boot(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	select {
	case pid := <-d.reboots:
		t.Errorf("a reboot request from PID %d outlived the boot", pid)
	default:
	}
}

// unread is how many bytes wait in the FIFO f (TIOCINQ is FIONREAD).
func unread(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}

// TestDeviceKept opens the device of a kept state directory: the
// partitions keep what they hold.
func TestDeviceKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), DeviceDir)
	d, err := openDevice(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(d.dev.PartA)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != DevicePartSize || !bytes.HasPrefix(a, []byte(factoryImage)) {
		t.Errorf("partition A holds %d bytes beginning %q, want %d beginning with the factory image", len(a), a[:min(len(a), 40)], DevicePartSize)
	}
	writeAt0(t, d.dev.PartB, []byte("installed before the restart"))
	d.close()
	d = openTestDevice(t, dir)
	f, err := os.Open(d.dev.PartB)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, len("installed before the restart"))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != "installed before the restart" {
		t.Errorf("partition B begins %q (%v) after the reopen", head, err)
	}
}
