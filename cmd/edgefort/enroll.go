package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/store"
)

func newEnrollCmd() *command {
	c := &command{
		name:  "enroll",
		short: "enroll this node with the control plane (one-time token)",
		long: `Enroll this node with the control plane: make the device key here (ECDSA
P-256 by default; the private key never leaves the node), send a CSR with the
one-time enrollment token, and keep the device certificate and the cloud's CA
in new stores behind the references ` + agent.RefDeviceTLS + ` and ` + agent.RefCloudTrust + `,
which the links use. The device ID and the endpoints the cloud names (update
server, AWS IoT) are kept in the state directory, not in the configuration
file.

The state directory is --state-dir, else the configuration file's (--config,
$EDGEFORT_CONFIG, ` + config.DefaultPath + `). Run it with the agent
stopped. Enrolling an enrolled node is refused unless --force is given (with a
new token). The token may come from --token, --token-file, or
$EDGEFORT_ENROLL_TOKEN (keeps it out of the shell history).`,
	}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "configuration `FILE` naming the state directory")
	stateDir := fs.String("state-dir", "", "state `DIR` to enroll (overrides the configuration)")
	url := fs.String("url", "", "control plane base `URL` (https)")
	token := fs.String("token", "", "one-time enrollment `TOKEN`")
	tokenFile := fs.String("token-file", "", "read the token from `FILE`")
	keyType := fs.String("key-type", "ecdsa", "device key `TYPE`: ecdsa (P-256) or rsa (3072)")
	caFile := fs.String("ca-file", "", "PEM `FILE` of CAs to trust for the enrollment call (default: system roots)")
	force := fs.Bool("force", false, "enroll again although the node is enrolled")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		tok, err := enrollToken(*token, *tokenFile)
		if err != nil {
			return err
		}
		if *url == "" {
			return usageError{"enroll: --url is required"}
		}
		// Checked before anything is opened or sent; cloudclient.Enroll
		// checks again for its other callers.
		if u, err := neturl.Parse(*url); err != nil || u.Scheme != "https" || u.Host == "" {
			return usageError{fmt.Sprintf("enroll: --url %q: want https://host; https is required, as the one-time token and the CSR must not travel in cleartext", *url)}
		}
		cfg, err := enrollConfig(*cfgPath, *stateDir)
		if err != nil {
			return err
		}
		log, _, err := agent.NewLogger(st.stderr, "warn", cfg.Log.Format)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		// Files enroll makes in the state directory belong to its owner.
		if err := store.ActAsOwner(cfg.StateDir); err != nil {
			return err
		}
		e, err := agent.EnrollOffline(ctx, cfg, agent.EnrollOptions{URL: *url, Token: tok, KeyType: *keyType, CAFile: *caFile, Force: *force}, log)
		if err != nil {
			return err
		}
		printEnrollment(st.stdout, e)
		return nil
	}
	return c
}

// enrollToken is the token from --token, --token-file or the environment.
func enrollToken(token, tokenFile string) (string, error) {
	switch {
	case token != "" && tokenFile != "":
		return "", usageError{"enroll: give --token or --token-file, not both"}
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", err
		}
		token = strings.TrimSpace(string(b))
	case token == "":
		token = os.Getenv("EDGEFORT_ENROLL_TOKEN")
	}
	if token == "" {
		return "", usageError{"enroll: no token (--token, --token-file or $EDGEFORT_ENROLL_TOKEN)"}
	}
	return token, nil
}

// enrollConfig is the configuration enroll works with: the file's, its
// state directory replaced by --state-dir if given. With --state-dir no
// file is needed, as for the keystore commands.
func enrollConfig(cfgPath, stateDir string) (*config.Config, error) {
	cfg, err := config.Load(cfgPath)
	switch {
	case errors.Is(err, config.ErrNoConfig) && stateDir != "":
		return &config.Config{StateDir: stateDir, Log: config.Log{Format: config.DefaultLogFormat}}, nil
	case errors.Is(err, config.ErrNoConfig):
		return nil, fmt.Errorf("%w: enroll needs the state directory: pass --state-dir, or --config naming it", err)
	case err != nil:
		return nil, err
	}
	if stateDir != "" {
		cfg.StateDir = stateDir
	}
	return cfg, nil
}

func printEnrollment(w io.Writer, e *agent.Enrollment) {
	fmt.Fprintf(w, "enrolled as %s (%s key)\n", e.DeviceID, e.KeyType)
	fmt.Fprintf(w, "  control plane  %s\n", e.Endpoints.ControlPlaneURL)
	if e.Endpoints.UpdateServerURL != "" {
		fmt.Fprintf(w, "  update server  %s\n", e.Endpoints.UpdateServerURL)
	}
	if iot := e.Endpoints.IoT; iot != nil {
		fmt.Fprintf(w, "  AWS IoT        %s (%s), thing %s\n", iot.Endpoint, iot.Region, iot.ThingName)
	}
	fmt.Fprintf(w, "  ref://%s -> %s, ref://%s -> %s\n", agent.RefDeviceTLS, e.Keystore, agent.RefCloudTrust, e.Truststore)
}
