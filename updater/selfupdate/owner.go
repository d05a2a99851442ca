package selfupdate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// On a .deb or .rpm install the package manager owns the binary: a
// self-update would leave dpkg's or rpm's record of the file wrong (its
// checksum, the next upgrade overwriting it, a removal deleting a binary
// the package never shipped). Such nodes update the agent through the
// stock deb/rpm update modules, so the installer refuses. Ownership is read
// from the package databases themselves rather than from a marker the
// packaged unit sets: an agent started by hand, or under a unit an
// operator wrote, on a packaged install is refused all the same.

// Where the package databases are.
const (
	defaultDpkgAdmin = "/var/lib/dpkg"
	rpmQueryTimeout  = 10 * time.Second
)

// rpmDBs are where rpm keeps its database (current and older layouts):
// without one there is nothing to ask rpm.
var rpmDBs = []string{"/usr/lib/sysimage/rpm", "/var/lib/rpm"}

// ErrPackageOwned is wrapped by the error for a binary a package owns.
var ErrPackageOwned = errors.New("the agent binary belongs to a package")

// checkNotPackaged fails when a deb or rpm package owns the binary.
func (c *config) checkNotPackaged(ctx context.Context) error {
	pkg, err := dpkgOwner(c.dpkgAdmin, c.Binary)
	if err != nil {
		return err
	}
	manager, module := "dpkg", "deb"
	if pkg == "" {
		manager, module = "rpm", "rpm"
		if pkg, err = rpmOwner(ctx, c.rpmCommand, c.Binary); err != nil {
			return err
		}
	}
	if pkg == "" {
		return nil
	}
	return fmt.Errorf("%w: %s is owned by the %s package %q; update edgefort through the %s update module (an Artifact of the new package), not an %s Artifact; nothing was changed",
		ErrPackageOwned, c.Binary, manager, pkg, module, Type)
}

// dpkgOwner returns the package whose file list (admin/info/*.list) has
// binary, or "".
func dpkgOwner(admin, binary string) (string, error) {
	lists, err := filepath.Glob(filepath.Join(admin, "info", "*.list"))
	if err != nil {
		return "", err
	}
	// edgefort's own list first: the usual owner, found without reading
	// the others.
	for i, l := range lists {
		if name := strings.TrimSuffix(filepath.Base(l), ".list"); name == "edgefort" || strings.HasPrefix(name, "edgefort:") {
			lists[0], lists[i] = lists[i], lists[0]
		}
	}
	want := []byte(binary)
	for _, l := range lists {
		found, err := listHas(l, want)
		if err != nil {
			return "", fmt.Errorf("read the dpkg file list %s: %w", l, err)
		}
		if found {
			name, _, _ := strings.Cut(strings.TrimSuffix(filepath.Base(l), ".list"), ":")
			return name, nil
		}
	}
	return "", nil
}

// listHas reports whether a dpkg file list has the line want.
func listHas(path string, want []byte) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // removed meanwhile
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64*1024) // a path is at most PATH_MAX
	for sc.Scan() {
		if bytes.Equal(sc.Bytes(), want) {
			return true, nil
		}
	}
	return false, sc.Err()
}

// rpmOwner asks rpm which package owns binary; "" when rpm or its
// database is absent or no package does.
func rpmOwner(ctx context.Context, rpm []string, binary string) (string, error) {
	if len(rpm) == 0 {
		hasDB := false
		for _, d := range rpmDBs {
			if _, err := os.Stat(d); err == nil {
				hasDB = true
			}
		}
		if !hasDB {
			return "", nil
		}
		path, err := exec.LookPath("rpm")
		if err != nil {
			return "", nil
		}
		rpm = []string{path}
	}
	ctx, cancel := context.WithTimeout(ctx, rpmQueryTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, rpm[0], append(rpm[1:], "-qf", "--queryformat", "%{NAME}\n", binary)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return "", nil // "file ... is not owned by any package"
	}
	if err != nil {
		return "", fmt.Errorf("ask rpm who owns %s: %w", binary, err)
	}
	name, _, _ := strings.Cut(out.String(), "\n")
	return strings.TrimSpace(name), nil
}
