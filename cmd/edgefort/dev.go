package main

import (
	"context"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/keystore"
)

//go:embed dev.yaml
var devConfigTemplate string

// Names of what `edgefort dev` prepares in its state directory.
const (
	devConfigFile  = "edgefort.yaml"
	devCADir       = "dev-ca"
	devHubStore    = "dev-hub-1"
	devHubAlias    = "hub"
	devTrustStore  = "dev-ca"
	devHubValidity = 3 * 24 * time.Hour // short on purpose: the expiry warning and its fix are part of the tour
)

func newDevCmd() *command {
	c := &command{
		name:  "dev",
		short: "run the agent locally with a built-in configuration (start here)",
		long: `Run the agent on a built-in configuration, with nothing to write first and
nothing but loopback: a fresh temporary state directory (removed on exit) or
--state-dir (kept), metrics and an HTTPS virtual host on free loopback ports,
a small dev CA with a keystore, a truststore and references made for it.
Prints what runs and what to try, then runs until Ctrl-C.`,
	}
	fs := c.fs()
	stateDir := fs.String("state-dir", "", "state `DIR` to use and keep (default: a new temporary directory, removed on exit)")
	logLevel := fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	printConfig := fs.Bool("print-config", false, "print the built-in configuration and exit")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		if *printConfig {
			data, err := devConfig("/tmp/edgefort-dev-XXXX", *logLevel)
			if err != nil {
				return err
			}
			_, err = st.stdout.Write(data)
			return err
		}
		dir := *stateDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "edgefort-dev-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		dir, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		data, err := devConfig(dir, *logLevel)
		if err != nil {
			return err
		}
		if err := prepareDevState(dir, data); err != nil {
			return fmt.Errorf("dev: prepare %s: %w", dir, err)
		}
		cfgPath := filepath.Join(dir, devConfigFile)
		cfg, err := config.Parse(cfgPath, data)
		if err != nil {
			return err
		}
		log, _, err := agent.NewLogger(st.stderr, cfg.Log.Level, cfg.Log.Format)
		if err != nil {
			return err
		}
		return runAgent(ctx, cfg, log, func(a *agent.Agent) { printDevBanner(st, cfgPath, cfg, a) })
	}
	return c
}

func devConfig(stateDir, logLevel string) ([]byte, error) {
	var b strings.Builder
	tmpl := template.Must(template.New("dev").Parse(devConfigTemplate))
	err := tmpl.Execute(&b, map[string]string{
		"StateDir": strconv.Quote(stateDir),
		"LogLevel": strconv.Quote(logLevel),
	})
	return []byte(b.String()), err
}

// prepareDevState writes the dev configuration (so that every other command
// can be pointed at it) and, the first time, a dev CA and the stores the
// configuration names.
func prepareDevState(dir string, cfgData []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, devConfigFile), cfgData, 0o600); err != nil {
		return err
	}
	caDir := filepath.Join(dir, devCADir)
	if _, err := os.Stat(filepath.Join(caDir, devcloud.CACertFile)); err == nil {
		return nil // prepared by an earlier run on this --state-dir
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ca, err := devcloud.NewCA("edgefort dev CA")
	if err != nil {
		return err
	}
	svc, closeFn, err := agent.OpenKeystoresOffline(dir)
	if err != nil {
		return err
	}
	defer closeFn()
	key, leaf, err := ca.Issue("localhost", []string{"localhost", "127.0.0.1", "::1"}, devHubValidity)
	if err != nil {
		return err
	}
	ks := svc.Stores
	steps := []func() error{
		func() error { return ks.CreateStore(devHubStore, keystore.KindKeystore) },
		func() error { return ks.PutEntry(devHubStore, devHubAlias, key, []*x509.Certificate{leaf}) },
		func() error { return ks.CreateStore(devTrustStore, keystore.KindTruststore) },
		func() error { return ks.PutTrusted(devTrustStore, "ca", []*x509.Certificate{ca.Cert}) },
		// The CA goes last: its presence marks the state as prepared.
		func() error { return ca.WriteFiles(caDir) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func printDevBanner(st streams, cfgPath string, cfg *config.Config, a *agent.Agent) {
	s := a.Status()
	var names []string
	for _, c := range s.Components {
		names = append(names, c.Name)
	}
	self := "edgefort"
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, "go-build") {
		self = "go run ./cmd/edgefort"
	}
	hub := s.VirtualHosts["hub"]
	caFile := filepath.Join(cfg.StateDir, devCADir, devcloud.CACertFile)
	caKey := filepath.Join(cfg.StateDir, devCADir, devcloud.CAKeyFile)
	fmt.Fprintf(st.stdout, `
edgefort dev is running (version %s, pid %d)
  config        %s
  state dir     %s
  admin socket  %s
  metrics       %s
  virtual host  hub %s (certificate from ref://hub-tls -> %s, issued by the dev CA %s)
  components    %s (all running)

Try, in another terminal (every command takes --config; the variable saves typing):
  export EDGEFORT_CONFIG=%s
  %s status
  curl --cacert %s %s/healthz
  curl -s %s | grep ^edgefort_
  %s keystore list

The hub certificate expires in a few days (status warns). Replace it with no restart:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout new.key -out new.csr
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext
  openssl x509 -req -in new.csr -CA %s -CAkey %s -days 365 -extfile san.ext -out new.crt
  %s keystore create dev-hub-2
  %s keystore import dev-hub-2 hub --key new.key --cert new.crt
  %s ref set hub-tls dev-hub-2
  openssl s_client -connect %s -CAfile %s </dev/null 2>/dev/null | openssl x509 -noout -enddate

Ctrl-C stops it.
`, s.Version, s.PID, cfgPath, cfg.StateDir, cfg.Admin.Socket, s.MetricsURL, hub, devHubStore, caFile, strings.Join(names, ", "),
		cfgPath, self, caFile, hub, s.MetricsURL, self,
		caFile, caKey, self, self, self, strings.TrimPrefix(hub, "https://"), caFile)
}

// runUntilReady runs the agent and calls onReady once every component is
// up. If the agent stops first, its error is returned and onReady is not
// called.
func runUntilReady(ctx context.Context, a *agent.Agent, onReady func(*agent.Agent)) error {
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !a.Ready() {
		select {
		case err := <-done:
			return err
		case <-tick.C:
		}
	}
	onReady(a)
	return <-done
}
