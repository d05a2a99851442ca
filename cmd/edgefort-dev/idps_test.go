package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/devcloud/devstack"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
)

// children are the pids of the live (not zombie) processes whose parent
// is pid, from /proc.
func children(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range stats {
		if p, state, ok := procStat(f); ok && p == pid && state != "Z" {
			id, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			out = append(out, id)
		}
	}
	return out
}

// procStat reads a /proc/PID/stat file's parent pid and state.
func procStat(file string) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, "", false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// alive says whether pid runs (a zombie does not).
func alive(pid int) bool {
	_, state, ok := procStat("/proc/" + strconv.Itoa(pid) + "/stat")
	return ok && state != "Z"
}

// TestDevIdPsProcess runs edgefort-dev as a real process with its dev
// IdPs: the banner names the sso host, the IdPs and the dev passwords;
// edgefort-dev login signs alice in through each IdP to the engine's page
// and a wrong password exits 1; the IdPs are edgefort-dev's children,
// gone when it stops on Ctrl-C, and gone too when it is killed outright
// (no orphans).
func TestDevIdPsProcess(t *testing.T) {
	peertest.Require(t, "node")
	peertest.Require(t, "npm")
	for _, stop := range []string{"SIGINT", "SIGKILL"} {
		t.Run(stop, func(t *testing.T) {
			stateDir, err := os.MkdirTemp("", "efdev-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(stateDir) })
			dev := startDev(t, "--state-dir", stateDir)
			// The first start may run npm ci for the IdPs: a generous bound.
			dev.waitBannerWithin(t, 5*time.Minute)
			banner := dev.stdout.String()
			for _, want := range []string{"sso host      https://localhost:", "SAML IdP      http://127.0.0.1:", "OpenID prov.  https://127.0.0.1:", "--password alice-dev"} {
				if !strings.Contains(banner, want) {
					t.Errorf("the banner lacks %q:\n%s", want, banner)
				}
			}
			kids := children(t, dev.cmd.Process.Pid)
			if len(kids) != 2 {
				t.Fatalf("edgefort-dev runs %d children %v, want the 2 dev IdPs", len(kids), kids)
			}
			cfg := filepath.Join(stateDir, devstack.ConfigFile)
			if stop == "SIGINT" {
				checkLogins(t, cfg)
				if err := dev.stop(30 * time.Second); err != nil {
					t.Fatalf("stop: %v; stderr:\n%s", err, dev.stderr.String())
				}
			} else {
				dev.cmd.Process.Kill()
				<-dev.exited
			}
			testkit.WaitFor(t, "the dev IdPs to exit with edgefort-dev", func() bool {
				return !alive(kids[0]) && !alive(kids[1])
			})
		})
	}
}

var userRow = regexp.MustCompile(`(?m)^  user: (\S+)$`)

func checkLogins(t *testing.T, cfg string) {
	t.Helper()
	for _, idp := range []string{"saml", "oidc"} {
		code, out, errOut := edgefortDev(t, "login", "--config", cfg, idp)
		if m := userRow.FindStringSubmatch(out); code != 0 || m == nil || m[1] != "alice" {
			t.Errorf("login %s: exit %d, user %v; stdout:\n%s\nstderr:\n%s", idp, code, m, out, errOut)
		}
		code, _, errOut = edgefortDev(t, "login", "--config", cfg, "--password", "wrong", idp)
		if code != 1 || !strings.Contains(errOut, "refused the user name or password") {
			t.Errorf("login %s with a wrong password: exit %d, stderr %q; want 1 and the refusal", idp, code, errOut)
		}
	}
}

// TestDevWithoutNode: without node and npm, edgefort-dev stops at once
// with an error that names the Debian packages and --no-idps; with
// --no-idps it starts, and the banner and the log say that federated
// logins are off.
func TestDevWithoutNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	stateDir, err := os.MkdirTemp("", "efdev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	code, _, errOut := edgefortDev(t, "--state-dir", stateDir)
	if code != 1 || !strings.Contains(errOut, "apt-get install nodejs npm") || !strings.Contains(errOut, "--no-idps") {
		t.Errorf("without node: exit %d, stderr %q; want 1 naming the Debian packages and --no-idps", code, errOut)
	}
	dev := startDev(t, "--state-dir", stateDir, "--no-idps")
	dev.waitBanner(t)
	if out := dev.stdout.String(); !strings.Contains(out, "federated logins off (--no-idps") || strings.Contains(out, "sso host") {
		t.Errorf("the banner with --no-idps does not say federated logins are off:\n%s", out)
	}
	if !strings.Contains(dev.stderr.String(), "started without the dev identity providers (--no-idps)") {
		t.Errorf("the log does not say the dev IdPs are off:\n%s", dev.stderr.String())
	}
	if err := dev.stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
