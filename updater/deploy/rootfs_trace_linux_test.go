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
	"regexp"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/rootfs/rootfstest"
)

// The agent child's settings: the simulated device's directory, what to
// do (install or resume), and whether the agent fails its health check
// when the device runs partition B.
const (
	agentDirEnv       = "EDGEFORT_ROOTFS_AGENT_DIR"
	agentModeEnv      = "EDGEFORT_ROOTFS_AGENT_MODE"
	agentUnhealthyEnv = "EDGEFORT_ROOTFS_AGENT_UNHEALTHY"
	resultPrefix      = "RESULT "
)

// TestRootfsAgentChild is one agent process on the simulated device in
// $EDGEFORT_ROOTFS_AGENT_DIR, for the tests that trace it or kill it: the
// update side built from its configuration section installs a.mender, or
// resumes, until it ends (printing the result) or the reboot command runs
// (a shell that SIGKILLs the agent, as a reboot would end it).
func TestRootfsAgentChild(t *testing.T) {
	dir := os.Getenv(agentDirEnv)
	if dir == "" {
		return // not a child
	}
	dev := rootfstest.Open(dir)
	db, err := store.Open(filepath.Join(dir, "state"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	healthy := func(context.Context) error {
		if running, _ := dev.Running(); running == dev.PartB && os.Getenv(agentUnhealthyEnv) != "" {
			return errors.New("clientapi is not ready")
		}
		return nil
	}
	m, err := deploy.OpenMachine(deploy.Config{
		RootfsPartA: dev.PartA, RootfsPartB: dev.PartB, BootEnv: deploy.BootEnvGRUB, GRUBEnvDir: dev.GRUBDir,
		RebootCommand: []string{"/bin/sh", "-c", "kill -9 $PPID"},
		ScriptsDir:    filepath.Join(dir, "scripts"),
	}, deploy.NodeDeps{
		Store: db, DeviceType: deviceType, WorkDir: filepath.Join(dir, "work"),
		MountInfo: dev.MountInfo, Cmdline: dev.Cmdline, Healthy: healthy,
	})
	if err != nil {
		t.Fatal(err)
	}
	var res deploy.Result
	switch os.Getenv(agentModeEnv) {
	case "resume":
		res, err = m.Resume(context.Background())
	default:
		f, ferr := os.Open(filepath.Join(dir, "a.mender"))
		if ferr != nil {
			t.Fatal(ferr)
		}
		res, err = m.Install(context.Background(), f, deploy.Job{})
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(resultPrefix + string(b))
}

// tracedCall is one traced call: its index in the trace where it started and
// where it returned, the file it worked on (strace -y) and its name.
type tracedCall struct {
	start, end int
	name, path string
}

var (
	traceCall    = regexp.MustCompile(`^(\d+) +(\w+)\((?:\d+<([^>]*)>|"([^"]*)")?`)
	traceResumed = regexp.MustCompile(`^(\d+) +<\.\.\. (\w+) resumed>`)
)

// parseTrace reads strace -f -y output: each call with where it began and
// ended (calls interrupted by another thread's are "<unfinished ...>"
// and end at their "resumed" line).
func parseTrace(t *testing.T, b []byte) []tracedCall {
	t.Helper()
	var calls []tracedCall
	open := map[string]int{} // pid+name → index in calls
	for i, line := range strings.Split(string(b), "\n") {
		if m := traceResumed.FindStringSubmatch(line); m != nil {
			if j, ok := open[m[1]+m[2]]; ok {
				calls[j].end = i
				delete(open, m[1]+m[2])
			}
			continue
		}
		m := traceCall.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		c := tracedCall{start: i, end: i, name: m[2], path: m[3] + m[4]}
		if strings.HasSuffix(line, "<unfinished ...>") {
			open[m[1]+m[2]] = len(calls)
		}
		calls = append(calls, c)
	}
	return calls
}

func isWrite(c tracedCall) bool { return c.name == "write" || c.name == "pwrite64" }
func isSync(c tracedCall) bool  { return c.name == "fsync" || c.name == "fdatasync" }

// syncedBefore checks that every write to a file matching which that
// started before limit is followed by a sync of that file which returned
// before limit.
func syncedBefore(t *testing.T, calls []tracedCall, which func(string) bool, limit int, what string) {
	t.Helper()
	found := false
	for _, w := range calls {
		if !isWrite(w) || !which(w.path) || w.start >= limit {
			continue
		}
		found = true
		synced := false
		for _, s := range calls {
			if isSync(s) && s.path == w.path && s.start > w.end && s.end < limit {
				synced = true
				break
			}
		}
		if !synced {
			t.Errorf("%s: the write to %s at trace line %d is not synced before line %d", what, w.path, w.start+1, limit+1)
			return
		}
	}
	if !found {
		t.Errorf("%s: no write before line %d", what, limit+1)
	}
}

// TestRootfsInstallTrace traces a rootfs-image install with the real
// strace, from the download to the reboot command, and checks the order
// of what reaches the disk: the image and the state database are synced
// before the boot environment is first written, the boot environment and
// the state database before the reboot, and the active partition is never
// written.
func TestRootfsInstallTrace(t *testing.T) {
	tool := peertest.Require(t, "strace")
	dir := t.TempDir()
	old := bytes.Repeat([]byte{0xAA}, abPartSize)
	dev, err := rootfstest.New(dir, old, make([]byte, abPartSize))
	if err != nil {
		t.Fatal(err)
	}
	img := newImage()
	if err := os.WriteFile(filepath.Join(dir, "a.mender"), rootfsArtifact(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	traceFile := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(tool, "-f", "-y", "-o", traceFile,
		"-e", "trace=write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,execve",
		os.Args[0], "-test.run=^TestRootfsAgentChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), agentDirEnv+"="+dir)
	out, _ := cmd.CombinedOutput() // the agent ends by SIGKILL
	trace, err := os.ReadFile(traceFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !bytes.Contains(trace, []byte("+++ killed by SIGKILL +++")) {
		t.Fatalf("the agent was not ended by the reboot command:\n%s", out)
	}
	calls := parseTrace(t, trace)

	isEnv := func(p string) bool { return strings.HasPrefix(p, dev.GRUBDir+"/") }
	isImage := func(p string) bool { return p == dev.PartB }
	isDB := func(p string) bool { return p == filepath.Join(dir, "state", "state.db") }
	firstEnv, reboot := -1, -1
	for _, c := range calls {
		if firstEnv < 0 && isWrite(c) && isEnv(c.path) {
			firstEnv = c.start
		}
		if c.name == "execve" && c.path == "/bin/sh" {
			reboot = c.start
		}
		if isWrite(c) && c.path == dev.PartA {
			t.Errorf("the active partition was written at trace line %d", c.start+1)
		}
	}
	if firstEnv < 0 || reboot < 0 || reboot < firstEnv {
		t.Fatalf("first boot environment write at line %d, reboot command at line %d", firstEnv+1, reboot+1)
	}
	syncedBefore(t, calls, isImage, firstEnv, "the image before the boot environment")
	syncedBefore(t, calls, isDB, firstEnv, "the state database before the boot environment")
	syncedBefore(t, calls, isEnv, reboot, "the boot environment before the reboot")
	syncedBefore(t, calls, isDB, reboot, "the state database before the reboot")

	// What the next boot finds: the image, booting on trial.
	part, err := os.ReadFile(dev.PartB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part[:len(img)], img) {
		t.Error("partition B does not hold the image")
	}
	env, err := dev.Env.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if env[bootenv.VarUpgradeAvailable] != "1" || env[bootenv.VarBootPart] != fmt.Sprint(rootfstest.NumB) {
		t.Errorf("boot environment at the reboot: %v", env)
	}
}
