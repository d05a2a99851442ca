package selfupdate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// TestRefusesPackagedBinary: a binary in a dpkg file list or the rpm
// database is not replaced; the error names the package and the update
// module to use, and nothing is written next to the binary.
func TestRefusesPackagedBinary(t *testing.T) {
	for _, tc := range []struct {
		name          string
		own           func(t *testing.T, e *testEnv)
		owner, module string
	}{
		{name: "dpkg", own: ownByDpkg, owner: `dpkg package "edgefort"`, module: "deb update module"},
		{name: "rpm", own: ownByRPM, owner: `rpm package "edgefort"`, module: "rpm update module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.ins.dpkgAdmin = dpkgDB(t, map[string]string{"coreutils.list": "/usr/bin/ls\n/usr/bin\n"})
			e.ins.rpmCommand = []string{"false"} // not asked unless set below
			tc.own(t, e)
			_, err := e.ins.Download(context.Background(), e.p)
			if !errors.Is(err, ErrPackageOwned) || !strings.Contains(err.Error(), tc.owner) || !strings.Contains(err.Error(), tc.module) || !strings.Contains(err.Error(), e.binary()) {
				t.Fatalf("Download: %v; want ErrPackageOwned naming the binary, %s and the %s", err, tc.owner, tc.module)
			}
			if _, err := os.Lstat(e.newPath()); !os.IsNotExist(err) {
				t.Errorf("the new binary was stored anyway: %v", err)
			}
			wantFile(t, e.binary(), oldAgent)
		})
	}
}

// TestNotPackagedBinary: packages owning other files, an absent dpkg
// database and rpm answering "not owned" let the update go ahead.
func TestNotPackagedBinary(t *testing.T) {
	e := newTestEnv(t)
	e.ins.dpkgAdmin = dpkgDB(t, map[string]string{
		"edgefort:amd64.list": "/usr/share/doc/edgefort\n" + e.binary() + ".old\n",
		"coreutils.list":      "/usr/bin/ls\n",
	})
	e.ins.rpmCommand = []string{"false"} // exits 1: not owned
	e.download(newAgent)
	e.call("ArtifactInstall")
	wantFile(t, e.binary(), newAgent)

	c, err := (&Installer{Binary: "/usr/bin/edgefort", dpkgAdmin: filepath.Join(t.TempDir(), "none"), rpmCommand: []string{"false"}}).config()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkNotPackaged(context.Background()); err != nil {
		t.Errorf("no dpkg database: %v", err)
	}
}

// dpkgDB writes a dpkg admin directory with the given info/*.list files.
func dpkgDB(t *testing.T, lists map[string]string) string {
	t.Helper()
	admin := t.TempDir()
	if err := os.MkdirAll(filepath.Join(admin, "info"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range lists {
		if err := os.WriteFile(filepath.Join(admin, "info", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return admin
}

func ownByDpkg(t *testing.T, e *testEnv) {
	e.ins.dpkgAdmin = dpkgDB(t, map[string]string{
		"coreutils.list":      "/usr/bin/ls\n",
		"edgefort:amd64.list": "/.\n/usr\n" + filepath.Dir(e.binary()) + "\n" + e.binary() + "\n",
	})
}

// ownByRPM builds a real package "edgefort" holding the binary's path with
// rpmbuild and records it in a database of the test's own (rpm -i
// --justdb), which rpm -qf then answers from.
func ownByRPM(t *testing.T, e *testEnv) {
	peertest.Require(t, "rpmbuild")
	peertest.Require(t, "rpm")
	top := t.TempDir()
	spec := filepath.Join(top, "edgefort.spec")
	body := "Name: edgefort\nVersion: 1.0\nRelease: 1\nSummary: test\nLicense: MIT\nBuildArch: noarch\n%description\ntest\n" +
		"%install\nmkdir -p %{buildroot}" + filepath.Dir(e.binary()) + "\nprintf x > %{buildroot}" + e.binary() + "\n" +
		"%files\n" + e.binary() + "\n"
	if err := os.WriteFile(spec, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("rpmbuild", "--define", "_topdir "+top, "--define", "_build_id_links none", "-bb", spec)
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "noarch", "*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %q", rpms)
	}
	db := filepath.Join(t.TempDir(), "rpmdb")
	run("rpm", "--dbpath", db, "--initdb")
	run("rpm", "--dbpath", db, "-i", "--justdb", "--nodeps", "--noscripts", rpms[0])
	e.ins.rpmCommand = []string{"rpm", "--dbpath", db}
}
