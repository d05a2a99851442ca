package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
)

// TestLintian: lintian on the .deb reports no error, and none even with
// every override ignored (so no override hides one); no warning that is
// not overridden; every override carries its reason in a comment above
// it and is used. The packaged binary is the PIE build (README.md,
// "lintian").
func TestLintian(t *testing.T) {
	lintian := peertest.Require(t, "lintian")
	p := build(t, oldVersion)
	lint := func(extra ...string) (errs, warns, overridden []string) {
		t.Helper()
		args := append([]string{"--pedantic", "--tag-display-limit", "0"}, extra...)
		out, err := exec.Command(lintian, append(args, p.deb)...).CombinedOutput()
		// lintian exits 2 when it reports an error; the lines say which.
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 2) {
			t.Fatalf("lintian %s: %v\n%s", strings.Join(extra, " "), err, out)
		}
		for line := range strings.SplitSeq(string(out), "\n") {
			switch {
			case strings.HasPrefix(line, "E: "):
				errs = append(errs, line)
			case strings.HasPrefix(line, "W: "):
				warns = append(warns, line)
			case strings.HasPrefix(line, "O: "):
				overridden = append(overridden, line)
			}
		}
		return errs, warns, overridden
	}

	errs, warns, overridden := lint("--show-overrides")
	if len(errs) > 0 {
		t.Errorf("lintian errors:\n%s", strings.Join(errs, "\n"))
	}
	if len(warns) > 0 {
		t.Errorf("lintian warnings: fix each or override it with its reason in deb/lintian-overrides:\n%s", strings.Join(warns, "\n"))
	}
	for _, o := range overridden {
		if !strings.Contains(o, " edgefort: ") {
			t.Errorf("odd override line %q", o)
		}
	}
	checkOverridesJustified(t, "deb/lintian-overrides", len(overridden))

	// The overrides ignored: what they hid must be warnings, not errors.
	if errs, _, _ := lint("--no-override"); len(errs) > 0 {
		t.Errorf("lintian errors hidden by deb/lintian-overrides:\n%s", strings.Join(errs, "\n"))
	}
}

// checkOverridesJustified: each override line follows a comment, and all
// of them are used (lintian listed n overridden tags).
func checkOverridesJustified(t *testing.T, path string, used int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	commented, overrides := false, 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			commented = false
		case strings.HasPrefix(line, "#"):
			commented = true
		default:
			overrides++
			if !commented {
				t.Errorf("%s: override %q has no comment saying why", path, line)
			}
		}
	}
	if overrides != used {
		t.Errorf("%s has %d overrides, lintian used %d: remove the unused ones", path, overrides, used)
	}
}

// TestRPMMetadata: rpm's own view of the .rpm: its header, its files with
// owners and modes, the configuration file, and the scriptlets.
func TestRPMMetadata(t *testing.T) {
	rpm := peertest.Require(t, "rpm")
	p := build(t, oldVersion)

	info := runOut(t, rpm, "-qpi", p.rpm)
	for _, want := range []string{
		`(?m)^Name +: edgefort$`, `(?m)^Version +: 1\.0\.0$`, `(?m)^Release +: 1$`,
		`(?m)^Architecture: (x86_64|aarch64)$`, `(?m)^Summary +: Edge node agent`,
		`(?m)^URL +: https://github.com/edgefort/edgefort$`, `(?m)^Build Host +: edgefort-release$`,
	} {
		if !regexp.MustCompile(want).MatchString(info) {
			t.Errorf("rpm -qpi lacks %s:\n%s", want, info)
		}
	}

	// rpm -qplv: mode, links, owner, group, size, date, path.
	var got []string
	for line := range strings.SplitSeq(strings.TrimSpace(runOut(t, rpm, "-qplv", p.rpm)), "\n") {
		f := strings.Fields(line)
		got = append(got, f[0]+" "+f[2]+":"+f[3]+" "+f[len(f)-1])
	}
	want := []string{
		"drwxr-x--- root:edgefort /etc/edgefort",
		"-rw-r----- root:edgefort /etc/edgefort/edgefort.yaml",
		"-rwxr-xr-x root:root /usr/bin/edgefort",
		"-rw-r--r-- root:root /usr/lib/systemd/system/edgefort.service",
		"-rw-r--r-- root:root /usr/share/doc/edgefort/README.md",
		"-rw-r--r-- root:root /usr/share/doc/edgefort/copyright",
		"-rw-r--r-- root:root /usr/share/doc/edgefort/packaging.md",
		"-rw-r--r-- root:root /usr/share/edgefort/root-installer.conf",
		"-rw-r--r-- root:root /usr/share/man/man1/edgefort.1.gz",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rpm -qplv (-want +got):\n%s", diff)
	}
	if got := strings.Fields(runOut(t, rpm, "-qpc", p.rpm)); !cmp.Equal(got, []string{"/etc/edgefort/edgefort.yaml"}) {
		t.Errorf("rpm -qpc = %q, want the configuration only", got)
	}
	if got := strings.Fields(runOut(t, rpm, "-qpd", p.rpm)); !slices.Contains(got, "/usr/share/doc/edgefort/README.md") {
		t.Errorf("rpm -qpd = %q, want README.md among the docs", got)
	}

	// useradd for %pre, and the loader the PIE starts through.
	requires := strings.Fields(runOut(t, rpm, "-qpR", p.rpm))
	for _, want := range []string{"shadow-utils", "glibc"} {
		if !slices.Contains(requires, want) {
			t.Errorf("rpm -qpR = %q, want %s among them", requires, want)
		}
	}

	scripts := runOut(t, rpm, "-qp", "--scripts", p.rpm)
	for _, want := range []string{
		"preinstall scriptlet (using /bin/sh):\n# edgefort %pre",
		"postinstall scriptlet (using /bin/sh):\n# edgefort %post",
		"preuninstall scriptlet (using /bin/sh):\n# edgefort %preun",
		"postuninstall scriptlet (using /bin/sh):\n# edgefort %postun",
	} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm --scripts lacks %q:\n%s", want, scripts)
		}
	}
}
