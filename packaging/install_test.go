package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
)

// debianRoot returns a fresh throwaway Debian root (bookworm, minbase plus
// systemd, from Debian's own packages through mmdebstrap), unpacked from
// a tarball made once per test binary.
func debianRoot(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	mmdebstrap := peertest.Require(t, "mmdebstrap")
	tarball := filepath.Join(tmpRoot, "bookworm.tar")
	rootOnce.Do(func() {
		// systemd: deb-systemd-helper for the postinst, and
		// systemd-analyze to verify the unit as installed.
		cmd := exec.Command(mmdebstrap, "--quiet", "--mode=root", "--variant=minbase",
			"--include=systemd", "bookworm", tarball)
		if out, err := cmd.CombinedOutput(); err != nil {
			rootErr = err.Error() + "\n" + string(out)
		}
	})
	if rootErr != "" {
		t.Fatalf("mmdebstrap: %s", rootErr)
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	runOut(t, "tar", "-x", "-C", root, "-f", tarball)
	return root
}

var (
	rootOnce sync.Once
	rootErr  string
)

// inRoot runs a command chrooted into root and returns its stdout.
func inRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("chroot", append([]string{root}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8"}
	return run(t, cmd)
}

// copyIn puts a package into root's /var/tmp (not /tmp: a booted root
// mounts a tmpfs there) and returns its path there.
func copyIn(t *testing.T, root, pkg string) string {
	t.Helper()
	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	p := "/var/tmp/" + filepath.Base(pkg)
	if err := os.WriteFile(filepath.Join(root, p), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// stat returns "owner:group mode" of each path inside root, "absent" for
// a missing one.
func stat(t *testing.T, root string, paths ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			got[p] = "absent"
			continue
		}
		got[p] = strings.TrimSpace(inRoot(t, root, "stat", "-c", "%U:%G %a", p))
	}
	return got
}

func readIn(t *testing.T, root, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeIn(t *testing.T, root, path, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

const (
	config   = "/etc/edgefort/edgefort.yaml"
	stateDir = "/var/lib/edgefort"
	// A stand-in for the agent's state: the packages must never touch it.
	stateFile = stateDir + "/state.db"
	edit      = "\n# edited by the operator\n"
)

// installed is what an installed package leaves on disk, the unit's path
// aside.
var installed = map[string]string{
	"/usr/bin/edgefort":                 "root:root 755",
	"/etc/edgefort":                     "root:edgefort 750",
	config:                              "root:edgefort 640",
	stateDir:                            "edgefort:edgefort 700",
	"/usr/share/man/man1/edgefort.1.gz": "root:root 644",
	"/usr/share/doc/edgefort/copyright": "root:root 644",
	"/usr/share/edgefort/root-installer.conf": "root:root 644",
}

func paths(m map[string]string, more ...string) []string {
	var ps []string
	for p := range m {
		ps = append(ps, p)
	}
	return append(ps, more...)
}

// checkInstalled checks files, owners and modes, the version that runs,
// and that the packaged configuration is valid as it is.
func checkInstalled(t *testing.T, root, unit, version string) {
	t.Helper()
	want := map[string]string{unit: "root:root 644"}
	for p, m := range installed {
		want[p] = m
	}
	if diff := cmp.Diff(want, stat(t, root, paths(want)...)); diff != "" {
		t.Errorf("installed files (-want +got):\n%s", diff)
	}
	if got := inRoot(t, root, "edgefort", "version"); !strings.HasPrefix(got, "edgefort "+version+"\n") {
		t.Errorf("edgefort version in the root = %q, want %s", got, version)
	}
	user := strings.Split(strings.TrimSpace(inRoot(t, root, "getent", "passwd", "edgefort")), ":")
	if len(user) != 7 || user[5] != stateDir || !strings.HasSuffix(user[6], "/nologin") {
		t.Errorf("user edgefort = %q, want home %s and a nologin shell", user, stateDir)
	}
	inRoot(t, root, "edgefort", "config", "validate", config)
	// As the unit would run it: the agent's user reads the configuration.
	inRoot(t, root, "setpriv", "--reuid=edgefort", "--regid=edgefort", "--init-groups",
		"edgefort", "config", "validate", config)
}

// TestDebInstallUpgradeRemovePurge installs the .deb into a Debian root
// with dpkg, as an operator would (chrooted, so that the maintainer
// scripts run there): files, owners, modes and the enabled unit; an
// edited configuration and the state survive an upgrade and a remove;
// purge deletes them.
func TestDebInstallUpgradeRemovePurge(t *testing.T) {
	peertest.Require(t, "chroot")
	old, next := build(t, oldVersion), build(t, newVersion)
	root := debianRoot(t)
	const unit = "/lib/systemd/system/edgefort.service"

	inRoot(t, root, "dpkg", "-i", copyIn(t, root, old.deb))
	checkInstalled(t, root, unit, oldVersion)
	if got := stat(t, root, "/etc/systemd/system/multi-user.target.wants/edgefort.service"); got["/etc/systemd/system/multi-user.target.wants/edgefort.service"] == "absent" {
		t.Errorf("the .deb did not enable edgefort.service")
	}
	// The unit as installed, both profiles, against the root's systemd.
	verifyUnit(t, root)
	inRoot(t, root, "mkdir", "-p", "/etc/systemd/system/edgefort.service.d")
	inRoot(t, root, "ln", "-s", "/usr/share/edgefort/root-installer.conf", "/etc/systemd/system/edgefort.service.d/")
	verifyUnit(t, root)
	inRoot(t, root, "rm", "-r", "/etc/systemd/system/edgefort.service.d")

	edited := readIn(t, root, config) + edit
	writeIn(t, root, config, edited)
	writeIn(t, root, stateFile, "state")
	inRoot(t, root, "chown", "edgefort:edgefort", stateFile)

	inRoot(t, root, "dpkg", "-i", copyIn(t, root, next.deb))
	checkInstalled(t, root, unit, newVersion)
	if got := readIn(t, root, config); got != edited {
		t.Errorf("the upgrade changed the edited configuration")
	}
	if got := readIn(t, root, stateFile); got != "state" {
		t.Errorf("the upgrade changed the state: %q", got)
	}

	inRoot(t, root, "dpkg", "--remove", "edgefort")
	wantRemoved := map[string]string{
		"/usr/bin/edgefort": "absent", unit: "absent",
		"/etc/edgefort": "root:edgefort 750", config: "root:edgefort 640",
		stateDir: "edgefort:edgefort 700", stateFile: "edgefort:edgefort 600",
	}
	if diff := cmp.Diff(wantRemoved, stat(t, root, paths(wantRemoved)...)); diff != "" {
		t.Errorf("after dpkg --remove (-want +got):\n%s", diff)
	}
	if got := readIn(t, root, config); got != edited {
		t.Errorf("remove changed the edited configuration")
	}

	inRoot(t, root, "dpkg", "--purge", "edgefort")
	wantPurged := map[string]string{"/etc/edgefort": "absent", stateDir: "absent"}
	if diff := cmp.Diff(wantPurged, stat(t, root, paths(wantPurged)...)); diff != "" {
		t.Errorf("after dpkg --purge (-want +got):\n%s", diff)
	}
	// --list exits 1 when it lists nothing.
	if got, _ := exec.Command("chroot", root, "dpkg-statoverride", "--list").Output(); strings.Contains(string(got), "edgefort") {
		t.Errorf("purge left statoverrides:\n%s", got)
	}
}

// verifyUnit runs systemd-analyze verify on the installed unit (with its
// drop-ins) in root. It exits 0 on unknown keys and bad values, only
// printing them, so any output fails the test. --man=no: the root has no
// man-db to resolve Documentation=man:edgefort(1).
func verifyUnit(t *testing.T, root string) {
	t.Helper()
	out, err := exec.Command("chroot", root, "systemd-analyze", "verify", "--man=no", "edgefort.service").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify edgefort.service: %v\n%s", err, out)
	}
}

// TestRPMInstallUpgradeErase installs the .rpm into a throwaway root with
// rpm --root --nodeps, so that its scriptlets run there: files, owners
// and modes; an edited configuration and the state survive an upgrade;
// an erase keeps the state and saves the edited configuration as
// .rpmsave (rpm has no purge).
func TestRPMInstallUpgradeErase(t *testing.T) {
	rpm := peertest.Require(t, "rpm")
	peertest.Require(t, "chroot")
	old, next := build(t, oldVersion), build(t, newVersion)
	root := debianRoot(t)
	const unit = "/usr/lib/systemd/system/edgefort.service"
	rpmIn := func(args ...string) {
		t.Helper()
		runOut(t, rpm, append([]string{"--root", root, "--nodeps"}, args...)...)
	}
	runOut(t, rpm, "--root", root, "--initdb")

	rpmIn("-i", old.rpm)
	checkInstalled(t, root, unit, oldVersion)
	edited := readIn(t, root, config) + edit
	writeIn(t, root, config, edited)
	writeIn(t, root, stateFile, "state")

	rpmIn("-U", next.rpm)
	checkInstalled(t, root, unit, newVersion)
	if got := readIn(t, root, config); got != edited {
		t.Errorf("the upgrade changed the edited configuration")
	}
	if got := readIn(t, root, stateFile); got != "state" {
		t.Errorf("the upgrade changed the state: %q", got)
	}

	rpmIn("-e", "edgefort")
	wantErased := map[string]string{
		"/usr/bin/edgefort": "absent", unit: "absent", config: "absent",
		stateDir: "edgefort:edgefort 700",
	}
	if diff := cmp.Diff(wantErased, stat(t, root, paths(wantErased)...)); diff != "" {
		t.Errorf("after rpm -e (-want +got):\n%s", diff)
	}
	if got := readIn(t, root, config+".rpmsave"); got != edited {
		t.Errorf("rpm -e did not save the edited configuration as .rpmsave")
	}
	if got := readIn(t, root, stateFile); got != "state" {
		t.Errorf("rpm -e changed the state: %q", got)
	}
}
