package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
)

// TestSystemdBoot boots a Debian root with the .deb installed under a real
// systemd (systemd-nspawn --boot): the packaged unit, as the enabled
// multi-user service, reaches READY (active, running, the agent's STATUS=
// shown), runs as the edgefort user in its sandbox; an agent that hangs
// (SIGSTOP: no more WATCHDOG=1) is killed by the watchdog and restarted.
// A drop-in shortens the watchdog to 3 s so that the test need not wait
// the unit's minute. Then the root drop-in, and the maintainer scripts
// against the running systemd (upgrade restarts, remove stops). It logs
// start-to-ready (docs/benchmarks.md).
func TestSystemdBoot(t *testing.T) {
	nspawn := peertest.Require(t, "systemd-nspawn")
	peertest.Require(t, "nsenter")
	p := build(t, oldVersion)
	root := debianRoot(t)
	inRoot(t, root, "dpkg", "-i", copyIn(t, root, p.deb))
	dropIn := filepath.Join(root, "etc/systemd/system/edgefort.service.d")
	if err := os.MkdirAll(dropIn, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropIn, "test.conf"), []byte("[Service]\nWatchdogSec=3s\nRestartSec=1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// --register=no, --keep-unit: no machined or host systemd needed.
	var console bytes.Buffer
	boot := exec.Command(nspawn, "--quiet", "--boot", "--register=no", "--keep-unit",
		"--console=pipe", "--machine=edgefort-test", "-D", root)
	boot.Stdout, boot.Stderr = &console, &console
	if err := boot.Start(); err != nil {
		t.Fatal(err)
	}
	var last string // the last systemctl show, for a failure's message
	t.Cleanup(func() {
		// Runs after the container has stopped (cleanups run last first):
		// the console is complete and no longer written.
		if t.Failed() {
			t.Logf("last systemctl show: %s\nconsole:\n%s", last, console.String())
		}
	})
	exited := make(chan struct{})
	var exitErr error // set before exited closes
	go func() {
		exitErr = boot.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// SIGTERM asks the container's systemd to power off.
		boot.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			boot.Process.Kill()
			<-exited
		}
	})

	// The container's init: the systemd that nspawn started (after a
	// short-lived helper child).
	var init string
	testkit.WaitForWithin(t, 30*time.Second, "the container's init", func() bool {
		select {
		case <-exited:
			peertest.Skipf(t, "systemd-nspawn cannot boot a container here: %v\n%s", exitErr, console.String())
		default:
		}
		init = childNamed(boot.Process.Pid, "systemd")
		return init != ""
	})
	in := func(args ...string) (string, error) {
		out, err := exec.Command("nsenter", append([]string{"-t", init, "-a"}, args...)...).CombinedOutput()
		return string(out), err
	}
	show := func() map[string]string {
		out, err := in("systemctl", "show", "edgefort.service",
			"-p", "ActiveState,SubState,MainPID,NRestarts,StatusText,User,ExecMainStartTimestampMonotonic,ActiveEnterTimestampMonotonic")
		last = fmt.Sprintf("(init %s, err %v) %s", init, err, out)
		m := map[string]string{}
		for line := range strings.SplitSeq(out, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[k] = v
			}
		}
		return m
	}

	var st map[string]string
	testkit.WaitForWithin(t, 90*time.Second, "edgefort.service active after boot", func() bool {
		st = show()
		return st["ActiveState"] == "active" && st["SubState"] == "running"
	})
	if want := "3/3 components running"; st["StatusText"] != want {
		t.Errorf("StatusText = %q, want %q", st["StatusText"], want)
	}
	if st["User"] != "edgefort" {
		t.Errorf("User = %q, want edgefort", st["User"])
	}
	started, _ := strconv.ParseInt(st["ExecMainStartTimestampMonotonic"], 10, 64)
	ready, _ := strconv.ParseInt(st["ActiveEnterTimestampMonotonic"], 10, 64)
	t.Logf("start-to-ready under systemd (exec to READY=1): %v", time.Duration(ready-started)*time.Microsecond)
	if out, err := in("systemctl", "status", "--no-pager", "edgefort.service"); err != nil {
		t.Errorf("systemctl status edgefort: %v\n%s", err, out)
	}

	// A hung agent: stopped, it sends no WATCHDOG=1.
	hung := st["MainPID"]
	if out, err := in("systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", "edgefort.service"); err != nil {
		t.Fatalf("SIGSTOP to the agent (pid %s): %v\n%s", hung, err, out)
	}
	testkit.WaitForWithin(t, 60*time.Second, "the watchdog to restart the hung agent", func() bool {
		st = show()
		return st["NRestarts"] == "1" && st["MainPID"] != hung && st["SubState"] == "running"
	})
	journal, _ := in("journalctl", "--no-pager", "-u", "edgefort.service")
	if !strings.Contains(journal, "Watchdog timeout") {
		t.Errorf("the journal does not show a watchdog timeout:\n%s", journal)
	}

	// The root profile: the drop-in linked as packaging/README.md says,
	// the agent restarted as root in its lighter sandbox, its state
	// directory handed to root by systemd.
	for _, cmd := range [][]string{
		{"ln", "-s", "/usr/share/edgefort/root-installer.conf", "/etc/systemd/system/edgefort.service.d/"},
		{"systemctl", "daemon-reload"},
		{"systemctl", "restart", "edgefort.service"},
	} {
		if out, err := in(cmd...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	testkit.WaitForWithin(t, 60*time.Second, "edgefort.service active as root", func() bool {
		st = show()
		return st["ActiveState"] == "active" && st["SubState"] == "running" && st["User"] == "root"
	})
	if want := "3/3 components running"; st["StatusText"] != want {
		t.Errorf("as root: StatusText = %q, want %q", st["StatusText"], want)
	}

	// The maintainer scripts against a running systemd: an upgrade
	// restarts the agent on the new binary, a remove stops it.
	before := st["MainPID"]
	next := build(t, newVersion)
	if out, err := in("dpkg", "-i", copyIn(t, root, next.deb)); err != nil {
		t.Fatalf("dpkg -i %s in the booted root: %v\n%s", newVersion, err, out)
	}
	testkit.WaitForWithin(t, 60*time.Second, "the upgraded agent running", func() bool {
		st = show()
		return st["MainPID"] != before && st["SubState"] == "running"
	})
	if out, _ := in("edgefort", "status"); !strings.Contains(out, "edgefort version "+newVersion+",") {
		t.Errorf("after the upgrade, edgefort status says:\n%s", out)
	}
	if out, err := in("dpkg", "--remove", "edgefort"); err != nil {
		t.Fatalf("dpkg --remove in the booted root: %v\n%s", err, out)
	}
	if st = show(); st["ActiveState"] != "inactive" {
		t.Errorf("after dpkg --remove: ActiveState = %q, want inactive", st["ActiveState"])
	}
}

// childNamed returns the pid of a child of pid whose command is name, or "".
func childNamed(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, c := range strings.Fields(string(b)) {
		if comm, _ := os.ReadFile("/proc/" + c + "/comm"); strings.TrimSpace(string(comm)) == name {
			return c
		}
	}
	return ""
}
