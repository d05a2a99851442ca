package main

import (
	"bytes"
	"errors"
	"github.com/edgefort/edgefort/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/devcloud/devstack"
)

// TestMain lets the test binary stand in for the edgefort-dev binary, so
// that process tests run the real main without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("EDGEFORT_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// edgefortDev runs the CLI in-process and returns its exit status and
// output.
func edgefortDev(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// devProc is edgefort-dev running as a child process.
type devProc struct {
	cmd            *exec.Cmd
	stdout, stderr testkit.SyncBuffer
	exited         chan struct{} // closed when it exited; err is set then
	err            error
}

// startDev runs edgefort-dev as a child process, killed at the end of the
// test if still running.
func startDev(t *testing.T, args ...string) *devProc {
	t.Helper()
	p := &devProc{cmd: exec.Command(os.Args[0], args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "EDGEFORT_TEST_AS_MAIN=1")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// waitBanner waits until the banner is out (the agent is ready then).
func (p *devProc) waitBanner(t *testing.T) {
	t.Helper()
	p.waitBannerWithin(t, 30*time.Second)
}

// waitBannerWithin is waitBanner with another bound (a failure bound).
func (p *devProc) waitBannerWithin(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for !strings.Contains(p.stdout.String(), "Ctrl-C stops it.") {
		select {
		case <-p.exited:
			t.Fatalf("edgefort-dev exited before its banner: %v; stderr:\n%s", p.err, p.stderr.String())
		case <-deadline:
			t.Fatalf("no banner within %s; stderr:\n%s", limit, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGINT and waits for the exit.
func (p *devProc) stop(within time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		return errors.New("did not exit in time")
	}
}

// TestDevDeployProcess runs edgefort-dev as a real process and deploys
// files to it over the update channel, as the banner suggests: one that
// installs (exit 0, the file in place, update status names the Artifact),
// the same Artifact name again (already-installed), and one whose
// destination cannot be made (failure, with the module's reason).
func TestDevDeployProcess(t *testing.T) {
	stateDir := t.TempDir()
	dev := startDev(t, "--state-dir", stateDir, "--no-idps")
	dev.waitBanner(t)
	checkWalkthrough(t, dev.stdout.String())
	cfgPath := filepath.Join(stateDir, devstack.ConfigFile)
	info := filepath.Join(stateDir, devstack.InfoFile)
	if fi, err := os.Stat(info); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want a 0600 file", info, err, fi)
	}
	admin := adminclient.New(filepath.Join(stateDir, "admin.sock"))
	installed := func() string {
		t.Helper()
		us, err := admin.UpdateStatus(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return us.ArtifactName
	}

	file := filepath.Join(t.TempDir(), "greeting.txt")
	if err := os.WriteFile(file, []byte("hello from dev deploy\n"), 0o640); err != nil {
		t.Fatal(err)
	}

	t.Run("installs", func(t *testing.T) {
		code, out, errOut := edgefortDev(t, "deploy", "--config", cfgPath, "--name", "greeting-1", file)
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{"  downloading\n", "  success\n", "greeting-1: installed"} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		got, err := os.ReadFile(filepath.Join(stateDir, devstack.DeployedDir, "greeting.txt"))
		if err != nil || string(got) != "hello from dev deploy\n" {
			t.Errorf("deployed file: %q, %v", got, err)
		}
		if got := installed(); got != "greeting-1" {
			t.Errorf("installed Artifact %q, want greeting-1", got)
		}
	})

	t.Run("same name again", func(t *testing.T) {
		code, out, errOut := edgefortDev(t, "deploy", "--config", cfgPath, "--name", "greeting-1", file)
		if code != 1 || !strings.Contains(out, "  already-installed\n") || !strings.Contains(errOut, "ended already-installed") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("destination cannot be written", func(t *testing.T) {
		blocker := filepath.Join(t.TempDir(), "regular-file")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := edgefortDev(t, "deploy", "--config", cfgPath, "--dest", filepath.Join(blocker, "sub"), file)
		if code != 1 || !strings.Contains(out, "  failure\n") {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{"ended failure", "ArtifactInstall", "regular-file"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q: %s", want, errOut)
			}
		}
		if got := installed(); got != "greeting-1" {
			t.Errorf("after a failed deployment, installed Artifact %q, want greeting-1", got)
		}
	})

	if err := dev.stop(15 * time.Second); err != nil {
		t.Errorf("after SIGINT: %v; stderr:\n%s", err, dev.stderr.String())
	}
	if _, err := os.Stat(info); err == nil {
		t.Errorf("%s outlived the stack", info)
	}
	code, _, errOut := edgefortDev(t, "deploy", "--config", cfgPath, file)
	if code != 1 || !strings.Contains(errOut, "edgefort-dev is not running") {
		t.Errorf("deploy with the stack stopped: exit %d, stderr %q", code, errOut)
	}
}

// checkWalkthrough: the banner's certificate walkthrough ends with the
// replaced keystore deleted and a status, which then has no warning left
// (scripts/demo.sh runs the walkthrough and checks that status).
func checkWalkthrough(t *testing.T, banner string) {
	t.Helper()
	_, walk, _ := strings.Cut(banner, "Replace it with no restart:\n")
	walk, _, _ = strings.Cut(walk, "\nCtrl-C stops it.")
	var cmds []string
	for _, line := range strings.Split(walk, "\n") {
		if strings.HasPrefix(line, "  ") {
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	if len(cmds) < 2 || !strings.HasSuffix(cmds[len(cmds)-2], "keystore delete "+devstack.HubStore) || !strings.HasSuffix(cmds[len(cmds)-1], " status") {
		t.Errorf("the walkthrough does not end with 'keystore delete %s' and 'status':\n%s", devstack.HubStore, walk)
	}
}

func TestDevUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"deploy"}, "want 1 argument(s) FILE, got 0"},
		{[]string{"deploy", "--artifact", "a.mender", "file"}, "--artifact takes no FILE"},
		{[]string{"bogus"}, `edgefort-dev: unknown command "bogus"`},
		{[]string{"--nope"}, "edgefort-dev: flag provided but not defined: -nope"},
		{[]string{"event", "webhook", "{"}, `edgefort-dev event: "{" is not JSON`},
		{[]string{"job"}, "want 1 argument(s) FILE, got 0"},
		{[]string{"ws"}, "want 1 argument(s) URL, got 0"},
		{[]string{"login"}, "want 1 argument(s) saml|oidc, got 0"},
		{[]string{"login", "ldap"}, `edgefort-dev login: "ldap" is not saml or oidc`},
		{[]string{"ws", "--timeout", "soon", "wss://x/"}, "invalid value \"soon\" for flag -timeout"},
		{[]string{"fault"}, "edgefort-dev fault: want broker or mender"},
		{[]string{"fault", "router"}, `edgefort-dev fault: "router" is not broker or mender`},
		{[]string{"fault", "--drop"}, "edgefort-dev fault: flag provided but not defined: -drop"},
		{[]string{"fault", "broker", "now"}, `edgefort-dev fault broker: unexpected argument "now"`},
		{[]string{"fault", "broker", "--connect-rate", "-1"}, "want --connect-rate and --burst of 0 or more"},
		{[]string{"fault", "broker", "--connect-rate", "fast"}, `invalid value "fast" for flag -connect-rate`},
		{[]string{"fault", "mender", "--retry-after", "5s"}, "--retry-after, --count and --endpoint go with --429"},
		{[]string{"fault", "mender", "--429", "--endpoint", "nope"}, `--endpoint "nope": want one of auth, next, status, log, inventory, download`},
		{[]string{"fault", "mender", "--429", "--retry-after", "500ms"}, "want --retry-after of 1s or more"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := edgefortDev(t, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
		})
	}
	code, _, errOut := edgefortDev(t, "deploy", "--config", filepath.Join(t.TempDir(), "none.yaml"), "x")
	if code != 1 || !strings.Contains(errOut, "no configuration at") {
		t.Errorf("no config: exit %d, stderr %q", code, errOut)
	}
}

func TestDevHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage: edgefort-dev [flags] [COMMAND]", "deploy ", "event ", "job ", "login ", "ws ", "-state-dir", "-no-idps"}},
		{[]string{"login", "--help"}, []string{"Usage: edgefort-dev login [flags] saml|oidc", "-password"}},
		{[]string{"ws", "--help"}, []string{"Usage: edgefort-dev ws [flags] URL", "Exit status:", "-cacert", "EDGEFORT_USER_TOKEN"}},
		{[]string{"help"}, []string{"Usage: edgefort-dev [flags] [COMMAND]", "fault "}},
		{[]string{"fault", "--help"}, []string{"Usage: edgefort-dev fault [flags] [COMMAND]", "  broker ", "  mender ", "Run 'edgefort-dev fault COMMAND --help'"}},
		{[]string{"fault", "broker", "--help"}, []string{"Usage: edgefort-dev fault broker [flags]", "Connect.Throttle", "network cut", "-connect-rate", "-spent", "-drop", "-refuse", "-clear"}},
		{[]string{"fault", "mender", "-h"}, []string{"Usage: edgefort-dev fault mender [flags]", "Hosted Mender", "429 Too Many Requests", "-retry-after", "-endpoint"}},
		{[]string{"event", "-h"}, []string{"Usage: edgefort-dev event [flags] TYPE [JSON]"}},
		{[]string{"job", "--help"}, []string{"Usage: edgefort-dev job [flags] FILE"}},
		// The --name default says what DefaultArtifactName does (it once
		// said "the Unix time").
		{[]string{"deploy", "--help"}, []string{"Usage: edgefort-dev deploy [flags] FILE", devstack.ArtifactNameHelp}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := edgefortDev(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
