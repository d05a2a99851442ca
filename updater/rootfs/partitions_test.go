package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRunningPartition: the active partition comes from the mount at /,
// else from root= on the kernel command line; when neither names one of
// the pair, the installer refuses, naming what it saw.
func TestRunningPartition(t *testing.T) {
	d := newDevice(t)
	link := filepath.Join(d.dir, "by-partuuid-b")
	if err := os.Symlink(d.b, link); err != nil {
		t.Fatal(err)
	}
	rootMount := func(src string) string {
		return fmt.Sprintf("1 0 0:30 / / rw - overlay %s rw\n22 1 259:2 / /data rw - ext4 /dev/data rw\n", src)
	}
	tests := []struct {
		name, mountinfo, cmdline string
		want                     string // the active partition, "" for a refusal
		wantErr                  string
	}{
		{name: "mounted A", mountinfo: rootMount(d.a), cmdline: "root=" + d.b, want: d.a},
		{name: "mounted B", mountinfo: rootMount(d.b), cmdline: "", want: d.b},
		{name: "mounted through a link", mountinfo: rootMount(link), want: d.b},
		{name: "overmounted: the last mount at / counts", mountinfo: rootMount(d.b) + "30 1 0:31 / / rw - ext4 " + d.a + " rw\n", want: d.a},
		{name: "overlay root, root= names B", mountinfo: rootMount("overlay"), cmdline: "quiet root=" + d.b + " rw", want: d.b},
		{name: "the last root= counts", mountinfo: rootMount("overlay"), cmdline: "root=/dev/nope root=" + d.a, want: d.a},
		{name: "neither", mountinfo: rootMount("overlay"), cmdline: "root=/dev/sda9", wantErr: "/ is mounted from overlay (device 0:30), the kernel command line has root=/dev/sda9"},
		{name: "no root= at all", mountinfo: rootMount("/dev/vda1"), cmdline: "quiet", wantErr: "the kernel command line has no root="},
		{name: "nothing readable", mountinfo: "", cmdline: "", wantErr: "cannot tell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			write(t, d.mountInfo, []byte(tt.mountinfo))
			write(t, d.cmdline, []byte(tt.cmdline))
			in := d.installer(t, false)
			active, inactive, err := in.running()
			if tt.want == "" {
				if !errors.Is(err, errUnknownActive) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("running = %v, want errUnknownActive with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if active.Path != tt.want || inactive == active {
				t.Errorf("active %s, inactive %s; want active %s", active.Path, inactive.Path, tt.want)
			}
		})
	}
}

func TestCmdlineRoot(t *testing.T) {
	tests := map[string]string{
		"root=PARTUUID=1234-02 ro":       "/dev/disk/by-partuuid/1234-02",
		"root=UUID=abcd":                 "/dev/disk/by-uuid/abcd",
		"root=PARTLABEL=rootfs_b":        "/dev/disk/by-partlabel/rootfs_b",
		"root=LABEL=root":                "/dev/disk/by-label/root",
		"root=/dev/mmcblk0p3 rootwait":   "/dev/mmcblk0p3",
		"console=ttyS0":                  "",
		"root=/dev/sda2 init=/bin/sh x=": "/dev/sda2",
	}
	for line, want := range tests {
		p := filepath.Join(t.TempDir(), "cmdline")
		write(t, p, []byte(line))
		if got, err := cmdlineRoot(p); err != nil || got != want {
			t.Errorf("cmdlineRoot(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
}

// TestInactiveMountedRefused: a mounted inactive partition is never
// written.
func TestInactiveMountedRefused(t *testing.T) {
	d := newDevice(t)
	write(t, d.mountInfo, fmt.Appendf(nil, "1 0 259:2 / / rw - ext4 %s rw\n2 1 259:3 / /mnt rw - ext4 %s rw\n", d.a, d.b))
	_, err := d.installer(t, false).Download(t.Context(), moduleTree(t))
	if err == nil || !strings.Contains(err.Error(), "is mounted at /mnt") {
		t.Errorf("Download = %v, want refused: mounted", err)
	}
}

func TestNewRefuses(t *testing.T) {
	d := newDevice(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no A", Options{PartB: d.b, Env: d.env}, "rootfs_part_a: \"\" is not an absolute path"},
		{"relative B", Options{PartA: d.a, PartB: "part3", Env: d.env}, "rootfs_part_b: \"part3\" is not an absolute path"},
		{"no number", Options{PartA: d.a, PartB: filepath.Join(d.dir, "rootfs-b"), Env: d.env}, "does not end in a partition number"},
		{"same", Options{PartA: d.a, PartB: d.a, Env: d.env}, "the same partition"},
		{"same number", Options{PartA: d.a, PartB: "/dev/mmcblk1p2", Env: d.env}, "the same partition number 2"},
		{"no env", Options{PartA: d.a, PartB: d.b}, "no boot environment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestNewRefusesOneDeviceTwice: two device nodes of the same block device
// are one partition, whatever their names.
func TestNewRefusesOneDeviceTwice(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "disk2"), filepath.Join(dir, "disk3")
	for _, p := range []string{a, b} {
		if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
			t.Skipf("cannot make block device nodes here: %v", err)
		}
	}
	_, err := New(Options{PartA: a, PartB: b, Env: newDevice(t).env})
	if err == nil || !strings.Contains(err.Error(), "the same partition") {
		t.Errorf("New = %v, want refused: the same partition", err)
	}
}
