package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/devcloud/devstack"
)

// TestDevWS runs edgefort-dev as a real process and opens the engine's
// WebSocket echo through the node with `edgefort-dev ws`, as the banner
// suggests: alice's hello and echoes (from --message and from standard
// input) exit 0; without a token the node refuses the handshake (exit 3);
// a CA that did not issue the hub's certificate, or a URL that is not a
// WebSocket one, fail (exit 1).
func TestDevWS(t *testing.T) {
	stateDir := t.TempDir()
	dev := startDev(t, "--state-dir", stateDir, "--no-idps")
	dev.waitBanner(t)
	m := regexp.MustCompile(`(?m)^  virtual host  hub https://(\S+) `).FindStringSubmatch(dev.stdout.String())
	if m == nil {
		t.Fatalf("the banner names no hub:\n%s", dev.stdout.String())
	}
	wss := "wss://" + m[1] + "/api/v1/apps/q3-report/ws"
	info, err := devstack.ReadInfo(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(stateDir, devstack.ConfigFile)
	alice := info.ControlPlane.UserToken
	otherCA := filepath.Join(t.TempDir(), "ca")
	other, err := devcloud.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFiles(otherCA); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   []string // each a line of stdout, in order
	}{
		{"alice with --message", []string{"--token", alice, wss, "--message", "hello engine"}, "", 0,
			[]string{`hello {"hello":"local engine","identity":{"app":"q3-report"`, "echo hello engine"}},
		{"alice with standard input", []string{"--token", alice, wss}, "one\ntwo\n", 0,
			[]string{"hello ", "echo one", "echo two"}},
		{"no token", []string{"--token", "", wss, "--message", "x"}, "", exitRefused,
			[]string{"refused: 401 Unauthorized"}},
		{"another CA", []string{"--token", alice, "--cacert", filepath.Join(otherCA, "ca.crt"), wss, "--message", "x"}, "", 1, nil},
		{"not a WebSocket URL", []string{"--token", alice, "ftp://" + m[1] + "/", "--message", "x"}, "", 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := stdin
			stdin = strings.NewReader(tc.stdin)
			defer func() { stdin = old }()
			code, out, errOut := edgefortDev(t, append([]string{"ws", "--config", cfgPath}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(tc.out) > 0 && len(lines) != len(tc.out) {
				t.Fatalf("stdout has %d lines, want %d:\n%s", len(lines), len(tc.out), out)
			}
			for i, want := range tc.out {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("stdout line %d: %q, want it to start with %q", i+1, lines[i], want)
				}
			}
			if tc.code == 0 && !strings.Contains(lines[0], `"user":"alice"`) {
				t.Errorf("the hello does not name alice: %s", lines[0])
			}
		})
	}
}
