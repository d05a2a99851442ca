package devstack

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
)

// startSSOStack starts the dev stack with its dev IdPs (npm samlify and
// oidc-provider, installed by npm ci like the tests' peers).
func startSSOStack(t *testing.T) *devStack {
	t.Helper()
	peertest.Require(t, "node")
	peertest.Require(t, "npm")
	d := startStackWith(t, IdPOptions{Enabled: true})
	if d.Info.IdPs.SSO == "" {
		t.Fatal("the stack describes no dev IdPs")
	}
	return d
}

// pageRow is one identity row of the engine's page.
func pageRow(k, v string) string { return "<tr><th>" + k + "</th><td>" + v + "</td></tr>" }

// TestDevStackFederatedLogins signs users in through each dev IdP as a
// browser does (Login: the node's redirect, the IdP's login form and, for
// OIDC, its consent page, the way back through the node's ACS or callback)
// and reaches the engine's page through the sso host with their identity,
// verified by the engine; wrong passwords and unknown users are refused by
// the IdP, and no page is reached.
func TestDevStackFederatedLogins(t *testing.T) {
	d := startSSOStack(t)
	tests := []struct {
		idp, user, password string
		wantErr             error
		wantRows            []string
	}{
		{IdPSAML, "alice", "alice-dev", nil, []string{pageRow("user", "alice"), pageRow("directory", "corp"), pageRow("groups", "users,staff")}},
		{IdPSAML, "bob", "bob-dev", nil, []string{pageRow("user", "bob"), pageRow("groups", "analysts")}},
		{IdPOIDC, "alice", "alice-dev", nil, []string{pageRow("user", "alice"), pageRow("directory", "dev-oidc"), pageRow("groups", "users,staff")}},
		{IdPOIDC, "bob", "bob-dev", nil, []string{pageRow("user", "bob"), pageRow("groups", "analysts")}},
		{IdPSAML, "alice", "wrong", ErrLoginRefused, nil},
		{IdPSAML, "mallory", "alice-dev", ErrLoginRefused, nil},
		{IdPOIDC, "alice", "bob-dev", ErrLoginRefused, nil},
		{IdPOIDC, "mallory", "x", ErrLoginRefused, nil},
	}
	for _, tc := range tests {
		t.Run(tc.idp+"/"+tc.user+"/"+tc.password, func(t *testing.T) {
			page, err := Login(t.Context(), d.Info.IdPs, d.roots, tc.idp, tc.user, tc.password)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Login: %v, want %v", err, tc.wantErr)
			}
			for _, row := range append(tc.wantRows, pageRow("identity token", "verified, kid ")) {
				if tc.wantErr == nil && !strings.Contains(string(page), strings.TrimSuffix(row, "</td></tr>")) {
					t.Errorf("the engine's page lacks %s:\n%s", row, page)
				}
			}
		})
	}
}
