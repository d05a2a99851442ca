package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/atomicfile"
)

// The dev control plane: devcloud's, in this process, with a policy file
// the developer may edit (<state>/devcloud/policy.yaml, read at start).
const (
	devControlFile = "controlplane.json" // devControlInfo, 0600
	devPolicyFile  = "policy.yaml"
	devUser        = "alice"
)

// devPolicy is the policy a new dev state directory starts with.
const devPolicy = `# Authorization policy of the dev control plane (devcloud). Edit and
# restart 'edgefort dev' to change it.
version: 1
ttl: {allow: 60s, deny: 10s}
roles:
  viewer: [app.read]
  developer: [app.read, app.reload]
groups:
  analysts: [bob]
spaces:
  sales:
    members:
      user:alice: developer
      group:analysts: viewer
`

// devControlInfo is <state>/devcloud/controlplane.json, for other
// processes (scripts, the demo) that want the control plane.
type devControlInfo struct {
	URL      string `json:"url"`
	DeviceID string `json:"device_id"`
	// UserToken is a user JWT for alice, signed with the control plane's
	// JWKS keys, valid for a day.
	UserToken string `json:"user_token"`
	// ManagementToken reads what the sink recorded:
	// GET URL/api/management/dev/devices/DEVICE_ID/reports.
	ManagementToken string `json:"management_token"`
	PID             int    `json:"pid"`
}

// startDevControl starts the control plane and enrolls the dev node with
// it. The control plane keeps its state in memory, so the node enrolls
// afresh at every start (a new device ID; the stores of the previous
// enrollment are replaced).
func startDevControl(ctx context.Context, cfg *config.Config, updateURL string, log *slog.Logger) (*devcloud.ControlPlane, *devControlInfo, error) {
	dir := cfg.StateDir
	ca, err := loadDevCA(filepath.Join(dir, devCADir))
	if err != nil {
		return nil, nil, err
	}
	policyPath := filepath.Join(dir, devCloudDir, devPolicyFile)
	if _, err := os.Stat(policyPath); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(policyPath), 0o700); err != nil {
			return nil, nil, err
		}
		if err := atomicfile.Write(policyPath, []byte(devPolicy), 0o600); err != nil {
			return nil, nil, err
		}
	}
	data, err := os.ReadFile(policyPath)
	if err != nil {
		return nil, nil, err
	}
	policy, err := devcloud.ParsePolicy(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", policyPath, err)
	}
	mtok := make([]byte, 32)
	rand.Read(mtok)
	cp, err := devcloud.NewControlPlane(devcloud.ControlPlaneOptions{
		CA: ca, Policy: policy, UpdateServerURL: updateURL, ManagementToken: hex.EncodeToString(mtok), Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := cp.Start(); err != nil {
		return nil, nil, err
	}
	e, err := agent.EnrollOffline(ctx, cfg, agent.EnrollOptions{
		URL: cp.URL(), Token: cp.NewEnrollmentToken(), CAFile: filepath.Join(dir, devCADir, devcloud.CACertFile), Force: true,
	}, log)
	if err != nil {
		cp.Close()
		return nil, nil, fmt.Errorf("enroll with the dev control plane: %w", err)
	}
	tok, err := cp.MintUserToken(api.User{ID: devUser, Directory: "dev", Groups: []string{"staff"}}, 24*time.Hour)
	if err != nil {
		cp.Close()
		return nil, nil, err
	}
	info := &devControlInfo{URL: cp.URL(), DeviceID: e.DeviceID, UserToken: tok, ManagementToken: hex.EncodeToString(mtok), PID: os.Getpid()}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := atomicfile.Write(filepath.Join(dir, devCloudDir, devControlFile), append(b, '\n'), 0o600); err != nil {
		cp.Close()
		return nil, nil, err
	}
	return cp, info, nil
}
