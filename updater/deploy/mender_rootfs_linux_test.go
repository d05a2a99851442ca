package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/rootfs"
	"github.com/edgefort/edgefort/updater/rootfs/rootfstest"
)

// The Mender client 3.4 installs rootfs-image itself (its built-in dual
// rootfs device). These tests run it and edgefort on two identical
// simulated U-Boot devices: partitions that are real block devices (loop
// devices over files, under device nodes named part2 and part3, since
// Mender refuses anything else), a U-Boot environment in a file, and
// recording fw_printenv/fw_setenv shims that forward to libubootenv's
// tools. Mender learns the running partition from `mount`, also a shim,
// printing the root the simulated boot loader picked.

// ubootDevice is one simulated device.
type ubootDevice struct {
	*rootfstest.Device
	shims, log, fwConfig string
	images               [2]string // the files behind part2 and part3
}

// loopPartition backs a block device node dir/name with a loop device over
// a file holding data.
func loopPartition(t *testing.T, dir, name string, data []byte) (node, image string) {
	t.Helper()
	losetup := peertest.Require(t, "losetup")
	image = filepath.Join(dir, name+".img")
	if err := os.WriteFile(image, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "-f", "--show", image).CombinedOutput()
	if err != nil {
		peertest.Skipf(t, "no loop device for the simulated partitions (needs root): %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", loop).Run() })
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	node = filepath.Join(dir, name)
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		peertest.Skipf(t, "cannot make a block device node: %v", err)
	}
	return node, image
}

func newUBootDevice(t *testing.T, old []byte) *ubootDevice {
	t.Helper()
	setenv := peertest.Require(t, "fw_setenv")
	printenv := peertest.Require(t, "fw_printenv")
	dir := t.TempDir()
	d := &ubootDevice{Device: rootfstest.Open(dir), shims: filepath.Join(dir, "shims"), log: filepath.Join(dir, "bootenv.log"), fwConfig: filepath.Join(dir, "fw_env.config")}
	d.PartA, d.images[0] = loopPartition(t, dir, "part2", old)
	d.PartB, d.images[1] = loopPartition(t, dir, "part3", make([]byte, len(old)))
	envFile := filepath.Join(dir, "uboot.env")
	files := map[string]string{
		envFile:      string(make([]byte, 16<<10)),
		d.fwConfig:   envFile + " 0x0000 0x4000\n",
		dir + "/def": "",
		// The shims log each call, then run the real tool on this
		// device's environment. fw_setenv -s takes "name value" lines
		// (Mender's and U-Boot's own script format); Debian's libubootenv
		// 0.3.2 only applies "name=value" ones and silently skips the
		// rest, so the shim rewrites them.
		filepath.Join(d.shims, "fw_printenv"): fmt.Sprintf("#!/bin/sh\necho \"read $*\" >> '%s'\nexec %s -c '%s' \"$@\"\n", d.log, printenv, d.fwConfig),
		filepath.Join(d.shims, "fw_setenv"): fmt.Sprintf(`#!/bin/sh
if [ "$1" = -s ]; then
  in=$(cat)
  echo "write $(printf '%%s\n' "$in" | sed 's/^\([^ =]*\)[ =]/\1=/' | sort | tr '\n' ' ')" >> '%[1]s'
  printf '%%s\n' "$in" | sed 's/^\([^ =]*\) /\1=/' | %[2]s -c '%[3]s' -s -
  exit $?
fi
echo "write $*" >> '%[1]s'
exec %[2]s -c '%[3]s' "$@"
`, d.log, setenv, d.fwConfig),
		filepath.Join(d.shims, "mount"): fmt.Sprintf("#!/bin/sh\nroot=$(sed -n 's/.*root=\\([^ ]*\\).*/\\1/p' '%s')\necho \"$root on / type ext4 (rw,relatime)\"\n", d.Cmdline),
	}
	if err := os.Mkdir(d.shims, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range [][2]string{{bootenv.VarBootPart, "2"}, {bootenv.VarUpgradeAvailable, "0"}, {bootenv.VarBootCount, "0"}} {
		if out, err := exec.Command(setenv, "-c", d.fwConfig, "-f", dir+"/def", kv[0], kv[1]).CombinedOutput(); err != nil {
			t.Fatalf("fw_setenv: %v: %s", err, out)
		}
	}
	// The boot loader's own accesses are not recorded: it uses the tools
	// directly.
	d.Env = &bootenv.UBoot{Printenv: printenv, Setenv: setenv, Config: d.fwConfig}
	d.boot(t)
	return d
}

// boot powers the device on; the boot loader picks the partition.
func (d *ubootDevice) boot(t *testing.T) string {
	t.Helper()
	p, err := d.Boot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// take returns the recorded accesses since the last take: "read names"
// and "write name=value ..." (sorted), and empties the log.
func (d *ubootDevice) take(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(d.log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	os.Remove(d.log)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (d *ubootDevice) partitions(t *testing.T) [2][]byte {
	t.Helper()
	var out [2][]byte
	for i, p := range []string{d.PartA, d.PartB} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func (d *ubootDevice) env(t *testing.T) bootenv.Vars {
	t.Helper()
	v, err := d.Env.Read(context.Background(), bootenv.VarBootPart, bootenv.VarUpgradeAvailable)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// menderRootfs runs `mender` standalone on a device: its configuration
// names the two partitions, and each command runs in its own mount
// namespace (the test's /etc/mender bound over the real one) with the
// shims first in PATH.
type menderRootfs struct {
	t         *testing.T
	bin       string
	d         *ubootDevice
	conf, etc string
	data      string
}

func newMenderRootfs(t *testing.T, d *ubootDevice) *menderRootfs {
	t.Helper()
	m := &menderRootfs{t: t, bin: peertest.Require(t, "mender"), d: d, conf: filepath.Join(d.Dir, "mender.conf"), etc: filepath.Join(d.Dir, "etc"), data: filepath.Join(d.Dir, "data")}
	for _, dir := range []string{m.etc, m.data} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf, _ := json.Marshal(map[string]any{
		"DeviceTypeFile": filepath.Join(m.data, "device_type"),
		"UpdateLogPath":  m.data,
		"DBus":           map[string]bool{"Enabled": false},
		"RootfsPartA":    d.PartA,
		"RootfsPartB":    d.PartB,
	})
	for p, c := range map[string]string{
		m.conf:                                string(conf),
		filepath.Join(m.etc, "artifact_info"): "artifact_name=" + deploy.UnknownArtifact + "\n",
		filepath.Join(m.data, "device_type"):  "device_type=" + deviceType + "\n",
	} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := m.command("--version").CombinedOutput(); err != nil {
		peertest.Skipf(t, "cannot run mender in a private mount namespace (needs root with CAP_SYS_ADMIN): %v\n%s", err, out)
	}
	return m
}

func (m *menderRootfs) command(args ...string) *exec.Cmd {
	script := `/bin/mount --bind "$1" ` + menderEtc + ` && PATH="$2:$PATH" && shift 2 && exec "$@"`
	all := append([]string{"-c", script, "sh", m.etc, m.d.shims, m.bin, "-c", m.conf, "-d", m.data, "--no-syslog"}, args...)
	cmd := exec.Command("/bin/sh", all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd
}

// run runs one mender command and says whether it succeeded.
func (m *menderRootfs) run(args ...string) bool {
	m.t.Helper()
	out, err := m.command(args...).CombinedOutput()
	if err != nil {
		m.t.Logf("mender %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return err == nil
}

// edgefortUBoot is the deploy.Machine with the rootfs installer on a
// U-Boot device, through the same shims; a reboot ends the run.
type edgefortUBoot struct {
	t    *testing.T
	d    *ubootDevice
	work string
	db   *store.DB
}

func newEdgefortUBoot(t *testing.T, d *ubootDevice) *edgefortUBoot {
	return &edgefortUBoot{t: t, d: d, work: t.TempDir(), db: testkit.OpenStore(t, "")}
}

// run is one agent process: fn on a new machine whose health check answers
// health. It returns fn's result and whether the host rebooted.
func (e *edgefortUBoot) run(health error, fn func(context.Context, *deploy.Machine) (deploy.Result, error)) (deploy.Result, bool) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.t.Context())
	defer cancel()
	in, err := rootfs.New(rootfs.Options{
		PartA: e.d.PartA, PartB: e.d.PartB, MountInfo: e.d.MountInfo, Cmdline: e.d.Cmdline,
		Env:   &bootenv.UBoot{Printenv: filepath.Join(e.d.shims, "fw_printenv"), Setenv: filepath.Join(e.d.shims, "fw_setenv")},
		Ready: func(context.Context) error { return health },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	down := false
	m, err := deploy.New(deploy.Options{
		Store: e.db, DeviceType: deviceType, WorkDir: e.work,
		Installers: func(typ string) (module.Installer, error) {
			if typ != rootfs.Type {
				return nil, fmt.Errorf("no installer for %s", typ)
			}
			return in, nil
		},
		HostReboot: func(context.Context) error { down = true; cancel(); return nil },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := fn(ctx, m)
	if down {
		return res, true
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return res, false
}

// rebootUntilDone powers the device on and resumes until the update ends.
func (e *edgefortUBoot) rebootUntilDone(health error, boots int) deploy.Result {
	e.t.Helper()
	for i := 0; ; i++ {
		if i > 10 {
			e.t.Fatal("the device keeps rebooting")
		}
		for range boots {
			e.d.boot(e.t)
		}
		boots = 1
		res, down := e.run(health, func(ctx context.Context, m *deploy.Machine) (deploy.Result, error) { return m.Resume(ctx) })
		if !down {
			return res
		}
		health = nil // the old system's agent is healthy
	}
}

// writes keeps the recorded writes, without Mender's probe of a writable
// environment (it sets mender_uboot_separator and clears it again before
// its first real write).
func writes(log []string) []string {
	var out []string
	for _, l := range log {
		if strings.HasPrefix(l, "write ") && !strings.Contains(l, "mender_uboot_separator") {
			out = append(out, l)
		}
	}
	return out
}

// TestMenderPeerRootfsSideBySide installs the same rootfs-image Artifact
// (written by the real mender-artifact) with the real Mender client 3.4
// and with edgefort, each on its own identical simulated U-Boot device,
// and compares the boot environment writes, the environment and the
// partitions after the commit, after a rollback from the new system, and
// after the boot loader fell back. Mender standalone is driven as its
// documentation says (install, reboot, commit or rollback); edgefort
// standalone reboots, verifies and commits within `update commit`.
func TestMenderPeerRootfsSideBySide(t *testing.T) {
	old := bytes.Repeat([]byte("rootfs-v1 "), abPartSize/10)
	old = append(old, make([]byte, abPartSize-len(old))...)
	img := bytes.Repeat([]byte("rootfs-v2 "), abPartSize/20+7)
	tool := peertest.Require(t, "mender-artifact")
	art := filepath.Join(t.TempDir(), "rootfs-v2.mender")
	imgFile := filepath.Join(t.TempDir(), "rootfs.ext4")
	if err := os.WriteFile(imgFile, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "write", "rootfs-image", "-t", deviceType, "-n", "rootfs-v2", "-f", imgFile, "-o", art, "--no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mender-artifact: %v: %s", err, out)
	}
	artBytes, err := os.ReadFile(art)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// mender drives the Mender client; edgefort drives edgefort and
		// returns its result.
		mender   func(m *menderRootfs, d *ubootDevice)
		edgefort func(e *edgefortUBoot) deploy.Result
		wantPart int // the partition (2 or 3) running at the end
		wantOK   bool
	}{
		{
			name: "commit",
			mender: func(m *menderRootfs, d *ubootDevice) {
				m.run("install", art)
				d.boot(t)
				m.run("commit")
			},
			edgefort: func(e *edgefortUBoot) deploy.Result {
				e.install(artBytes)
				if _, down := e.run(nil, func(ctx context.Context, m *deploy.Machine) (deploy.Result, error) { return m.Commit(ctx) }); !down {
					t.Fatal("edgefort's commit did not reboot into the new partition")
				}
				return e.rebootUntilDone(nil, 1)
			},
			wantPart: 3, wantOK: true,
		},
		{
			name: "rollback from the new system",
			mender: func(m *menderRootfs, d *ubootDevice) {
				m.run("install", art)
				d.boot(t)
				m.run("rollback")
				d.boot(t)
			},
			edgefort: func(e *edgefortUBoot) deploy.Result {
				e.install(artBytes)
				e.run(nil, func(ctx context.Context, m *deploy.Machine) (deploy.Result, error) { return m.Commit(ctx) })
				return e.rebootUntilDone(errors.New("the new system is not healthy"), 1)
			},
			wantPart: 2,
		},
		{
			name: "the boot loader fell back",
			mender: func(m *menderRootfs, d *ubootDevice) {
				m.run("install", art)
				d.boot(t)
				d.boot(t) // the trial boot hung; the watchdog reset
				m.run("commit")
				m.run("rollback")
			},
			edgefort: func(e *edgefortUBoot) deploy.Result {
				e.install(artBytes)
				e.run(nil, func(ctx context.Context, m *deploy.Machine) (deploy.Result, error) { return m.Commit(ctx) })
				return e.rebootUntilDone(nil, 2)
			},
			wantPart: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := newUBootDevice(t, old)
			mender := newMenderRootfs(t, md)
			md.take(t)
			tt.mender(mender, md)
			menderLog := md.take(t)

			ed := newUBootDevice(t, old)
			e := newEdgefortUBoot(t, ed)
			ed.take(t)
			res := tt.edgefort(e)
			edgeLog := ed.take(t)
			t.Logf("mender:   %q", menderLog)
			t.Logf("edgefort: %q", edgeLog)

			if (res.Outcome == deploy.OutcomeSuccess) != tt.wantOK || (!tt.wantOK && !res.RolledBack) {
				t.Errorf("edgefort ended %+v", res)
			}
			if diff := cmp.Diff(writes(menderLog), writes(edgeLog)); diff != "" {
				t.Errorf("boot environment writes (-mender +edgefort):\n%s", diff)
			}
			if diff := cmp.Diff(md.env(t), ed.env(t)); diff != "" {
				t.Errorf("boot environment at the end (-mender +edgefort):\n%s", diff)
			}
			mp, ep := md.partitions(t), ed.partitions(t)
			if !bytes.Equal(mp[0], ep[0]) || !bytes.Equal(mp[1], ep[1]) {
				t.Error("the partitions differ between Mender's device and edgefort's")
			}
			if !bytes.Equal(ep[0], old) || !bytes.Equal(ep[1][:len(img)], img) {
				t.Error("edgefort's partitions do not hold the old system in A and the image in B")
			}
			for _, d := range []*ubootDevice{md, ed} {
				running, err := d.Running()
				if err != nil {
					t.Fatal(err)
				}
				if want := map[int]string{2: d.PartA, 3: d.PartB}[tt.wantPart]; running != want {
					t.Errorf("%s runs %s, want part%d", d.Dir, running, tt.wantPart)
				}
			}
			// What edgefort reads, Mender reads too.
			for _, l := range edgeLog {
				if strings.HasPrefix(l, "read ") && !slices.Contains(menderLog, l) {
					t.Errorf("edgefort reads %q, which Mender never does", l)
				}
			}
		})
	}
}

func (e *edgefortUBoot) install(art []byte) {
	e.t.Helper()
	res, down := e.run(nil, func(ctx context.Context, m *deploy.Machine) (deploy.Result, error) {
		return m.Install(ctx, bytes.NewReader(art), deploy.Job{Standalone: true})
	})
	if down || res.Outcome != deploy.OutcomeInstalled {
		e.t.Fatalf("edgefort install: %+v (rebooted %v), want installed and waiting for commit", res, down)
	}
}
