package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRunningFiles feeds arbitrary mountinfo and kernel command line
// files to the partition finder: it never panics, and whatever it picks is
// one of the pair, with the other as the inactive one.
func FuzzRunningFiles(f *testing.F) {
	f.Add("22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/mmcblk0p2 rw\n", "root=/dev/mmcblk0p3")
	f.Add("1 0 0:30 / /\\040x rw - overlay over\\134lay rw\n", "root=PARTUUID=ab-03 ro")
	f.Add("- - - - - - - - -\n", "root=")
	f.Fuzz(func(t *testing.T, mountinfo, cmdline string) {
		dir := t.TempDir()
		mi, cl := filepath.Join(dir, "mountinfo"), filepath.Join(dir, "cmdline")
		if err := os.WriteFile(mi, []byte(mountinfo), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cl, []byte(cmdline), 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := New(Options{PartA: "/dev/mmcblk0p2", PartB: "/dev/mmcblk0p3", Env: nopEnv{}, MountInfo: mi, Cmdline: cl})
		if err != nil {
			t.Fatal(err)
		}
		active, inactive, err := in.running()
		if err != nil {
			if !strings.Contains(err.Error(), "cannot tell") {
				t.Fatalf("running: %v", err)
			}
			return
		}
		if active == inactive || (active != in.a && active != in.b) || inactive != in.other(active) {
			t.Fatalf("active %v, inactive %v", active, inactive)
		}
	})
}
