package devstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgefort/edgefort/internal/atomicfile"
)

// InfoFile is where, under the state directory, a running dev stack
// describes itself (Info, 0600). It exists only while the stack runs.
var InfoFile = filepath.Join(CloudDir, "stack.json")

// Info is how another process (edgefort-dev deploy, event and job, the
// demo, a developer's script) reaches the servers of a running dev stack.
// Every token in it is a fresh random one per start.
type Info struct {
	// PID is the process running the stack.
	PID          int              `json:"pid"`
	UpdateServer UpdateServerInfo `json:"update_server"`
	ControlPlane ControlPlaneInfo `json:"control_plane"`
	Broker       BrokerInfo       `json:"broker"`
	AuthModule   AuthModuleInfo   `json:"auth_module"`
	// IdPs is empty when the stack runs without the dev IdPs (--no-idps).
	IdPs IdPsInfo `json:"idps,omitzero"`
}

// IdPsInfo reaches the dev identity providers and the virtual host sso
// that signs browsers in through them.
type IdPsInfo struct {
	// SSO is the virtual host sso as browsers reach it,
	// https://localhost:PORT (its certificate from the dev CA): a page
	// there without a session goes to the SAML IdP's login form.
	SSO string `json:"sso"`
	// SAMLLogin and OIDCLogin start a login at either IdP and come back
	// to the engine's page (SSO + /).
	SAMLLogin string `json:"saml_login"`
	OIDCLogin string `json:"oidc_login"`
	// SAMLIdP is samlify's base URL (http, loopback): its metadata at
	// /metadata, its login form at /sso.
	SAMLIdP string `json:"saml_idp"`
	// OIDCIssuer is oidc-provider's issuer (https, a dev-CA certificate).
	OIDCIssuer string `json:"oidc_issuer"`
	// Users are the users both IdPs sign in, with their passwords.
	Users map[string]DevUser `json:"users"`
}

// AuthModuleInfo reaches the dev authentication module and portal:
// GET URL/login?user=U&return_to=PAGE answers 303 to PAGE with a ticket
// for U; POST URL/portal/login (user=U) sets the portal's session cookie.
// Cert and Key are its client certificate for the node's auth API.
type AuthModuleInfo struct {
	URL  string `json:"url"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// UpdateServerInfo reaches devcloud's Mender server: its management API
// (URL/api/management/dev/...) takes the token as a bearer token over
// mutual TLS (a client certificate from the dev CA).
type UpdateServerInfo struct {
	URL             string `json:"url"`
	ManagementToken string `json:"management_token"`
}

// ControlPlaneInfo reaches devcloud's control plane.
type ControlPlaneInfo struct {
	URL string `json:"url"`
	// DeviceID is the ID this start's enrollment gave the node; it is also
	// the thing name of the event link.
	DeviceID string `json:"device_id"`
	// UserToken is a user JWT for alice, signed with the control plane's
	// JWKS keys, valid for a day.
	UserToken string `json:"user_token"`
	// ViewerToken is the same for bob, a viewer in sales through the
	// group analysts: he may read the apps but not reload them.
	ViewerToken string `json:"viewer_token"`
	// ManagementToken reads what the sink recorded:
	// GET URL/api/management/dev/devices/DEVICE_ID/reports.
	ManagementToken string `json:"management_token"`
}

// BrokerInfo reaches devcloud's broker: its management API on
// https://HOST/api/management/dev/ publishes as the cloud and runs jobs.
type BrokerInfo struct {
	Host            string `json:"host"`
	Region          string `json:"region"`
	Thing           string `json:"thing"`
	EventsTopic     string `json:"events_topic"`
	ManagementToken string `json:"management_token"`
}

func writeInfo(stateDir string, info *Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(stateDir, InfoFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

// ErrNotRunning means no dev stack runs on the state directory.
var ErrNotRunning = errors.New("no dev stack is running")

// ReadInfo reads the Info of the stack running on stateDir; without one
// it returns an error matching ErrNotRunning that names the file.
func ReadInfo(stateDir string) (*Info, error) {
	path := filepath.Join(stateDir, InfoFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w on %s (%s is missing)", ErrNotRunning, stateDir, path)
	}
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if info.UpdateServer.URL == "" || info.ControlPlane.URL == "" || info.Broker.Host == "" {
		return nil, fmt.Errorf("%s: not a dev stack description (a server's address is missing)", path)
	}
	return &info, nil
}
