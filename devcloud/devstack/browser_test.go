package devstack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
)

// browserResult is what login.mjs reports of one login.
type browserResult struct {
	Name, URL, User, Directory, Groups string
	Refused                            bool
}

// TestDevStackBrowserLogins is the browser end to end: headless Chromium
// (Debian's chromium, driven by npm playwright-core) opens the sso host's
// page, is sent to the node's login chooser, picks the IdP by its name, types alice's password at the SAML IdP's login
// form (a wrong one first, which the IdP refuses) and at the OpenID
// provider's login and consent pages, comes back through the node, and
// reaches the engine's page, proxied by the node, showing alice. The
// screenshots of every step are in the test's artifact directory.
func TestDevStackBrowserLogins(t *testing.T) {
	node, dir, chromium := peertest.Playwright(t)
	d := startSSOStack(t)
	out := t.ArtifactDir()
	t.Logf("screenshots in %s", out)
	landing := d.Info.IdPs.SSO + "/"
	job, err := json.Marshal(map[string]any{"chromium": chromium, "out": out, "logins": []map[string]any{
		{"name": "saml", "idp": IdPSAML, "start": landing, "choose": "Dev SAML IdP (samlify)", "user": "alice", "password": "alice-dev", "wrong_password": "bob-dev", "landing": landing},
		{"name": "oidc", "idp": IdPOIDC, "start": landing, "choose": "Dev OpenID provider (oidc-provider)", "user": "alice", "password": "alice-dev", "wrong_password": "nope", "landing": landing},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// A failure bound: each page wait in the script is bounded too.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "login.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	cmd.Stdin = bytes.NewReader(job)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("login.mjs: %v\n%s\n%s", err, stdout, stderr.String())
	}
	var got []browserResult
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		var r browserResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("login.mjs said %q: %v", sc.Text(), err)
		}
		got = append(got, r)
	}
	want := []browserResult{
		{Name: "saml", URL: landing, User: "alice", Directory: "corp", Groups: "users,staff", Refused: true},
		{Name: "oidc", URL: landing, User: "alice", Directory: "dev-oidc", Groups: "users,staff", Refused: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the logins in the browser (-want +got):\n%s\nstderr:\n%s", diff, stderr.String())
	}
	shots, _ := filepath.Glob(filepath.Join(out, "*.png"))
	for _, name := range []string{"saml-1-chooser.png", "saml-4-engine-page.png", "oidc-5-engine-page.png"} {
		if !strings.Contains(strings.Join(shots, " "), name) {
			t.Errorf("no screenshot %s among %v", name, shots)
		}
	}
}
