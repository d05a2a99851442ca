package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// part is one partition of the A/B pair.
type part struct {
	Path string `json:"path"` // as configured: a block device or a file
	Num  int    `json:"num"`  // the partition number the boot loader knows
}

// hex is the number as mender_boot_part_hex has it.
func (p part) hex() string { return strings.ToUpper(strconv.FormatInt(int64(p.Num), 16)) }

func (p part) dec() string { return strconv.Itoa(p.Num) }

// newPart derives the partition number from the path's trailing digits
// (/dev/mmcblk0p2 is 2), as the Mender client does, or from the target of
// a symbolic link such as /dev/disk/by-partuuid/....
func newPart(field, path string) (part, error) {
	if path == "" || !filepath.IsAbs(path) {
		return part{}, fmt.Errorf("rootfs: %s: %q is not an absolute path", field, path)
	}
	for _, p := range []string{path, resolve(path)} {
		digits := p[len(strings.TrimRight(p, "0123456789")):]
		if n, err := strconv.Atoi(digits); err == nil && n > 0 {
			return part{Path: path, Num: n}, nil
		}
	}
	return part{}, fmt.Errorf("rootfs: %s: %q does not end in a partition number (the boot loader selects the partition by it, e.g. /dev/mmcblk0p2)", field, path)
}

func resolve(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// rdev returns the device number of a block device, or 0.
func rdev(path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeDevice == 0 {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Rdev)
	}
	return 0
}

// sameDevice reports whether name (a path from mountinfo or root=) is the
// partition p: the same path once links are resolved, or the same block
// device, or the device numbers "major:minor" mountinfo gives.
func (p part) sameDevice(name, majMin string) bool {
	if name != "" && (name == p.Path || resolve(name) == resolve(p.Path)) {
		return true
	}
	dev := rdev(p.Path)
	if dev == 0 {
		return false
	}
	if name != "" && rdev(name) == dev {
		return true
	}
	return majMin != "" && majMin == fmt.Sprintf("%d:%d", unixMajor(dev), unixMinor(dev))
}

// Linux's encoding of dev_t (glibc's gnu_dev_major/minor).
func unixMajor(dev uint64) uint64 { return ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000) }
func unixMinor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xffffff00) }

// mount is one line of /proc/self/mountinfo.
type mount struct {
	majMin, point, source string
}

// readMountInfo parses a mountinfo file (proc(5)): the fields that matter
// are 3 (major:minor), 5 (the mount point) and the one after the fs type,
// behind the " - " separator (the source).
func readMountInfo(path string) ([]mount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ms []mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+3 {
			continue
		}
		ms = append(ms, mount{majMin: f[2], point: unescapeMount(f[4]), source: unescapeMount(f[sep+2])})
	}
	return ms, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cmdlineRoot returns the device root= names on a kernel command line, as
// a path: PARTUUID=, UUID=, PARTLABEL= and LABEL= become their
// /dev/disk/by-* links. The last root= counts, as for the kernel.
func cmdlineRoot(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	root := ""
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "root="); ok {
			root = v
		}
	}
	for prefix, dir := range map[string]string{"PARTUUID=": "by-partuuid", "UUID=": "by-uuid", "PARTLABEL=": "by-partlabel", "LABEL=": "by-label"} {
		if v, ok := strings.CutPrefix(root, prefix); ok {
			return filepath.Join("/dev/disk", dir, v), nil
		}
	}
	return root, nil
}

// errUnknownActive: the running system matches neither partition.
var errUnknownActive = errors.New("cannot tell which root partition is running")

// running returns the partition the system runs from and the other one:
// the device mounted at / (the last mount there wins), or else the one
// the kernel command line's root= names. It refuses when neither names one
// of the pair: writing the wrong partition would destroy the running
// system.
func (in *Installer) running() (active, inactive part, err error) {
	var seen []string
	ms, merr := readMountInfo(in.mountInfo)
	if merr == nil {
		var root *mount
		for i := range ms {
			if ms[i].point == "/" {
				root = &ms[i]
			}
		}
		if root != nil {
			for _, p := range [2]part{in.a, in.b} {
				if p.sameDevice(root.source, root.majMin) {
					return p, in.other(p), nil
				}
			}
			seen = append(seen, fmt.Sprintf("/ is mounted from %s (device %s)", root.source, root.majMin))
		}
	} else {
		seen = append(seen, fmt.Sprintf("mountinfo: %v", merr))
	}
	root, cerr := cmdlineRoot(in.cmdline)
	switch {
	case cerr != nil:
		seen = append(seen, fmt.Sprintf("kernel command line: %v", cerr))
	case root == "":
		seen = append(seen, "the kernel command line has no root=")
	default:
		for _, p := range [2]part{in.a, in.b} {
			if p.sameDevice(root, "") {
				return p, in.other(p), nil
			}
		}
		seen = append(seen, fmt.Sprintf("the kernel command line has root=%s", root))
	}
	return part{}, part{}, fmt.Errorf("rootfs: %w: %s; neither is rootfs_part_a (%s) nor rootfs_part_b (%s)",
		errUnknownActive, strings.Join(seen, ", "), in.a.Path, in.b.Path)
}

func (in *Installer) other(p part) part {
	if p == in.a {
		return in.b
	}
	return in.a
}

// mountedAt returns where p is mounted, or "".
func (in *Installer) mountedAt(p part) string {
	ms, err := readMountInfo(in.mountInfo)
	if err != nil {
		return ""
	}
	for _, m := range ms {
		if p.sameDevice(m.source, m.majMin) {
			return m.point
		}
	}
	return ""
}
