package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
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

	devDeviceStore    = "dev-device-1" // the update channel's client certificate
	devDeviceAlias    = "device"
	devDeviceValidity = 365 * 24 * time.Hour

	devCloudDir     = "devcloud"    // what `edgefort dev deploy` needs to reach the update server
	devMenderFile   = "mender.json" // devMenderInfo, 0600
	devModulesDir   = "modules"     // dev's own single-file module when the stock one is absent
	devScriptsDir   = "scripts"     // node state scripts (none unless a developer adds some)
	devDeployedDir  = "deployed"    // where `edgefort dev deploy` puts files by default
	devDeviceType   = "edgefort-dev"
	stockModulesDir = "/usr/share/mender/modules/v3"
)

// devSingleFileModule is the single-file update module `edgefort dev`
// installs when the stock one is absent, written from the update module
// protocol (v3). Payload files: the file, and dest_dir, filename and
// (optional) permissions holding its target directory, name and octal mode.
// Download saves them under files/ (the module does not read streams);
// ArtifactInstall keeps the file it replaces in tmp/backup and installs by
// copy, sync and rename; ArtifactRollback puts the backup back (or removes
// a file that had no predecessor).
const devSingleFileModule = `#!/bin/sh
# single-file update module, written by 'edgefort dev'.
set -u
state=$1
tree=$2
files=$tree/files
backup=$tree/tmp/backup
fresh=$tree/tmp/no-previous-file

fail() {
	echo "single-file: $*" >&2
	exit 1
}

load() {
	[ -f "$files/dest_dir" ] || fail "payload has no dest_dir file"
	[ -f "$files/filename" ] || fail "payload has no filename file"
	dest_dir=$(cat "$files/dest_dir")
	filename=$(cat "$files/filename")
	[ -n "$dest_dir" ] || fail "dest_dir is empty"
	case $filename in
	"" | . | .. | */*) fail "filename '$filename' is not a plain file name" ;;
	esac
	target=$dest_dir/$filename
}

# place SRC DST: copy next to DST, flush it, rename it over DST, flush the
# directory: DST is the old file or the new one, never half of one.
place() {
	cp -p "$1" "$2.part" || return 1
	sync "$2.part" 2>/dev/null || sync
	mv -f "$2.part" "$2" || return 1
	sync "$(dirname "$2")" 2>/dev/null || sync
}

case $state in
NeedsArtifactReboot)
	echo No
	;;
SupportsRollback)
	echo Yes
	;;
ArtifactInstall)
	load
	[ -f "$files/$filename" ] || fail "payload has no file named '$filename'"
	mkdir -p "$dest_dir" || fail "cannot create the destination directory $dest_dir"
	rm -rf "$backup" "$fresh"
	mkdir -p "$backup" || fail "cannot create $backup"
	if [ -e "$target" ]; then
		place "$target" "$backup/$filename" || fail "cannot back up $target"
	else
		: >"$fresh"
	fi
	if [ -f "$files/permissions" ]; then
		mode=$(cat "$files/permissions")
		case $mode in
		"" | *[!0-7]*) fail "permissions '$mode' is not an octal mode" ;;
		esac
		chmod "$mode" "$files/$filename" || fail "cannot set mode $mode"
	fi
	place "$files/$filename" "$target" || fail "cannot install $target"
	;;
ArtifactRollback)
	load
	if [ -f "$backup/$filename" ]; then
		place "$backup/$filename" "$target" || fail "cannot restore $target"
	elif [ -e "$fresh" ]; then
		rm -f "$target" || fail "cannot remove $target"
	fi
	;;
esac
exit 0
`

// devMenderInfo is <state>/devcloud/mender.json: how another process
// reaches the management API of the update server a running `edgefort dev`
// serves. It exists only while that server runs.
type devMenderInfo struct {
	ServerURL       string `json:"server_url"`
	ManagementToken string `json:"management_token"`
	PID             int    `json:"pid"`
}

func newDevCmd() *command {
	c := &command{
		name:  "dev",
		short: "run the agent locally with a built-in configuration (start here)",
		long: `Run the agent on a built-in configuration, with nothing to write first and
nothing but loopback: a fresh temporary state directory (removed on exit) or
--state-dir (kept), metrics and an HTTPS virtual host on free loopback ports,
a small dev CA with a keystore, a truststore and references made for it,
and devcloud's Mender-compatible update server (in this process, mutual
TLS) that the agent's update channel polls: 'edgefort dev deploy FILE'
deploys a file through it. Prints what runs and what to try, then runs
until Ctrl-C.`,
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
			const dir = "/tmp/edgefort-dev-XXXX"
			data, err := devConfig(devConfigParams{
				StateDir: dir, LogLevel: *logLevel, ServerURL: "https://127.0.0.1:PORT", ModulesDir: devModulesDirFor(dir),
			})
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
		log, level, err := agent.NewLogger(st.stderr, *logLevel, "text")
		if err != nil {
			return err
		}
		if err := prepareDevState(dir); err != nil {
			return fmt.Errorf("dev: prepare %s: %w", dir, err)
		}
		srv, err := startDevMender(dir, log.With(agent.LogKeyComponent, "devcloud"))
		if err != nil {
			return fmt.Errorf("dev: update server: %w", err)
		}
		// Deferred first, so it runs last: the server outlives the agent
		// that polls it, and its address file goes with it.
		defer func() {
			os.Remove(filepath.Join(dir, devCloudDir, devMenderFile))
			srv.Close()
		}()
		params := devConfigParams{
			StateDir: dir, LogLevel: *logLevel, ServerURL: srv.URL(), ModulesDir: devModulesDirFor(dir),
		}
		data, err := devConfig(params)
		if err != nil {
			return err
		}
		cfgPath := filepath.Join(dir, devConfigFile)
		if err := atomicfile.Write(cfgPath, data, 0o600); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		cfg, err := config.Parse(cfgPath, data)
		if err != nil {
			return err
		}
		cp, cpInfo, err := startDevControl(ctx, cfg, srv.URL(), log.With(agent.LogKeyComponent, "devcloud"))
		if err != nil {
			return fmt.Errorf("dev: control plane: %w", err)
		}
		defer func() {
			os.Remove(filepath.Join(dir, devCloudDir, devControlFile))
			cp.Close()
		}()
		// The event link needs the thing name, which is the device ID the
		// enrollment just gave: the configuration is written again with it.
		broker, err := startDevBroker(dir, cp, cpInfo.DeviceID, log.With(agent.LogKeyComponent, "devcloud"))
		if err != nil {
			return fmt.Errorf("dev: broker: %w", err)
		}
		defer func() {
			os.Remove(filepath.Join(dir, devCloudDir, devBrokerFile))
			broker.Close()
		}()
		engine, err := startDevEngine(dir)
		if err != nil {
			return fmt.Errorf("dev: engine: %w", err)
		}
		defer engine.Close()
		devLog := log.With(agent.LogKeyComponent, "devcloud")
		jobsSvc := devcloud.NewJobs(broker, devLog)
		defer jobsSvc.Close()
		shadowSvc := devcloud.NewShadow(broker, devLog)
		defer shadowSvc.Close()
		jobsSrv, err := startDevJobs(dir, cpInfo.DeviceID, jobsSvc)
		if err != nil {
			return fmt.Errorf("dev: jobs: %w", err)
		}
		defer func() {
			os.Remove(filepath.Join(dir, devCloudDir, devJobsFile))
			jobsSrv.Close()
		}()
		params.ThingName, params.BrokerHost, params.BrokerRegion, params.EngineURL = cpInfo.DeviceID, broker.Host(), broker.Region(), engine.URL()
		if data, err = devConfig(params); err != nil {
			return err
		}
		if err := atomicfile.Write(cfgPath, data, 0o600); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		if cfg, err = config.Parse(cfgPath, data); err != nil {
			return err
		}
		return runAgent(ctx, cfg, log, level, func(a *agent.Agent) { printDevBanner(st, cfgPath, cfg, a, srv.URL(), cpInfo) })
	}
	c.add(newDevDeployCmd(), newDevEventCmd(), newDevJobCmd())
	return c
}

// devConfigParams fill the dev configuration template.
type devConfigParams struct {
	StateDir, LogLevel, ServerURL, ModulesDir string
	// The event link, once the enrollment named the thing.
	ThingName, BrokerHost, BrokerRegion, EngineURL string
}

func quoteIf(s string) string {
	if s == "" {
		return ""
	}
	return strconv.Quote(s)
}

func devConfig(p devConfigParams) ([]byte, error) {
	var b strings.Builder
	tmpl := template.Must(template.New("dev").Parse(devConfigTemplate))
	err := tmpl.Execute(&b, map[string]string{
		"StateDir":   strconv.Quote(p.StateDir),
		"LogLevel":   strconv.Quote(p.LogLevel),
		"ServerURL":  strconv.Quote(p.ServerURL),
		"ModulesDir": strconv.Quote(p.ModulesDir),
		"ScriptsDir": strconv.Quote(filepath.Join(p.StateDir, devScriptsDir)),
		// Empty until the enrollment: the template leaves the event link
		// out while they are.
		"ThingName":    quoteIf(p.ThingName),
		"BrokerHost":   quoteIf(p.BrokerHost),
		"BrokerRegion": quoteIf(p.BrokerRegion),
		"EngineURL":    p.EngineURL,
	})
	return []byte(b.String()), err
}

// devModulesDirFor is the stock Mender modules directory when it has the
// single-file module, else the state directory's own (see
// prepareDevModules).
func devModulesDirFor(stateDir string) string {
	if fi, err := os.Stat(filepath.Join(stockModulesDir, "single-file")); err == nil && fi.Mode().IsRegular() {
		return stockModulesDir
	}
	return filepath.Join(stateDir, devModulesDir)
}

// prepareDevState makes, the first time, a dev CA and the stores the
// configuration names; it adds what later versions of `edgefort dev` need
// to a state directory an earlier one prepared.
func prepareDevState(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	svc, closeFn, err := agent.OpenKeystoresOffline(dir)
	if err != nil {
		return err
	}
	defer closeFn()
	ks := svc.Stores
	caDir := filepath.Join(dir, devCADir)
	ca, err := loadDevCA(caDir)
	if errors.Is(err, os.ErrNotExist) {
		ca, err = prepareDevCA(ks, caDir)
	}
	if err != nil {
		return err
	}
	if err := prepareDevDevice(ks, ca); err != nil {
		return err
	}
	return prepareDevModules(dir)
}

// prepareDevCA makes the dev CA, the hub keystore and the trust store.
func prepareDevCA(ks *keystore.Manager, caDir string) (*devcloud.CA, error) {
	ca, err := devcloud.NewCA("edgefort dev CA")
	if err != nil {
		return nil, err
	}
	key, leaf, err := ca.Issue("localhost", []string{"localhost", "127.0.0.1", "::1"}, devHubValidity)
	if err != nil {
		return nil, err
	}
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
			return nil, err
		}
	}
	return ca, nil
}

// prepareDevDevice makes the keystore with the device's client
// certificate for the update channel, unless it has its entry already.
func prepareDevDevice(ks *keystore.Manager, ca *devcloud.CA) error {
	st, err := ks.Resolve(devDeviceStore, keystore.KindKeystore)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		if err := ks.CreateStore(devDeviceStore, keystore.KindKeystore); err != nil {
			return err
		}
	case err != nil:
		return err
	case st.Entries[devDeviceAlias] != nil:
		return nil
	}
	key, leaf, err := ca.Issue("dev-node", nil, devDeviceValidity)
	if err != nil {
		return err
	}
	return ks.PutEntry(devDeviceStore, devDeviceAlias, key, []*x509.Certificate{leaf})
}

// prepareDevModules writes dev's single-file update module into the state
// directory when the stock one is not installed.
func prepareDevModules(dir string) error {
	mdir := devModulesDirFor(dir)
	if mdir == stockModulesDir {
		return nil
	}
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(mdir, "single-file"), []byte(devSingleFileModule), 0o700)
}

// loadDevCA reads the dev CA that prepareDevState wrote into dir. An
// unprepared directory gives an error matching os.ErrNotExist.
func loadDevCA(dir string) (*devcloud.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, devcloud.CACertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, devcloud.CAKeyFile))
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("dev CA: %s: no PEM certificate", devcloud.CACertFile)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dev CA: %s: %w", devcloud.CACertFile, err)
	}
	key, err := keystore.ParsePrivateKeyPEM(keyPEM, nil)
	if err != nil {
		return nil, fmt.Errorf("dev CA: %s: %w", devcloud.CAKeyFile, err)
	}
	return &devcloud.CA{Key: key, Cert: cert}, nil
}

// startDevMender starts the update server the dev agent polls: a server
// certificate from the dev CA, mutual TLS against the same CA, and the
// management API behind a fresh token, written with the server's URL to
// <state>/devcloud/mender.json for `edgefort dev deploy`. The caller closes
// the server and removes that file.
func startDevMender(dir string, log *slog.Logger) (*devcloud.MenderServer, error) {
	ca, err := loadDevCA(filepath.Join(dir, devCADir))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tok := make([]byte, 32)
	rand.Read(tok)
	srv, err := devcloud.NewMenderServer(devcloud.MenderOptions{
		CA: ca, ClientCAs: pool, ManagementToken: hex.EncodeToString(tok), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	info, err := json.MarshalIndent(devMenderInfo{
		ServerURL: srv.URL(), ManagementToken: hex.EncodeToString(tok), PID: os.Getpid(),
	}, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Join(dir, devCloudDir), 0o700)
	}
	if err == nil {
		err = atomicfile.Write(filepath.Join(dir, devCloudDir, devMenderFile), append(info, '\n'), 0o600)
	}
	if err != nil {
		srv.Close()
		return nil, err
	}
	return srv, nil
}

func printDevBanner(st streams, cfgPath string, cfg *config.Config, a *agent.Agent, updateURL string, cp *devControlInfo) {
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
  update server %s (devcloud Mender server, mutual TLS: device certificate ref://device-tls)
  control plane %s (devcloud; enrolled as %s; policy in %s)
  event link    wss://%s/mqtt (devcloud broker, SigV4; thing %s)
  components    %s (all running)

Try, in another terminal (every command takes --config; the variable saves typing):
  export EDGEFORT_CONFIG=%s
  %s status
  curl --cacert %s %s/healthz
  curl -s %s | grep ^edgefort_
  %s keystore list

Ask the control plane whether users may act (through the node's decision cache),
and send it a report through the durable outbox:
  %s cloud authorize --user alice --action app.reload --space sales --app q3-report
  %s cloud authorize --user bob --group analysts --action app.reload --space sales --app q3-report
  %s cloud report app.reloaded '{"app":"q3-report"}'
  curl -s --unix-socket %s -d '{"user":{"id":"alice","directory":"dev"},"action":"app.read","resource":{"type":"space","id":"sales"}}' http://edgefort/v1/cloud/authorize
Send the node a cloud event over the event link (MQTT over WebSocket/TLS to
devcloud's broker, the URL signed with SigV4); a webhook reaches the dev
engine (its requests land in %s), and the result
comes back through the outbox:
  %s dev event webhook '{"app":"q3-report","action":"reload"}'
  %s dev event update.check
Run an AWS IoT job the same way (its "operation" picks the handler):
  echo '{"operation":"webhook","app":"q3-report"}' > job.json && %s dev job job.json
A user token for alice (a JWT signed with the control plane's keys, 24 h; the
client API that accepts it comes with client authentication):
  export EDGEFORT_USER_TOKEN=%s
  curl -s --cacert %s %s/v1/.well-known/jwks.json

Deploy a file over the update channel (an Artifact for the single-file module;
it lands in %s), then see the installed Artifact:
  %s dev deploy ./some-file
  %s update status

The hub certificate expires in a few days (status warns). Replace it with no restart:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout new.key -out new.csr
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext
  openssl x509 -req -in new.csr -CA %s -CAkey %s -days 365 -extfile san.ext -out new.crt
  %s keystore create dev-hub-2
  %s keystore import dev-hub-2 hub --key new.key --cert new.crt
  %s ref set hub-tls dev-hub-2
  openssl s_client -connect %s -CAfile %s </dev/null 2>/dev/null | openssl x509 -noout -enddate

Ctrl-C stops it.
`, s.Version, s.PID, cfgPath, cfg.StateDir, cfg.Admin.Socket, s.MetricsURL, hub, devHubStore, caFile, updateURL,
		cp.URL, cp.DeviceID, filepath.Join(cfg.StateDir, devCloudDir, devPolicyFile), cfg.IoT.Endpoint, cfg.IoT.ThingName, strings.Join(names, ", "),
		cfgPath, self, caFile, hub, s.MetricsURL, self,
		self, self, self, cfg.Admin.Socket,
		filepath.Join(cfg.StateDir, devEngineDir, devEngineLog), self, self, self,
		cp.UserToken, caFile, cp.URL,
		filepath.Join(cfg.StateDir, devDeployedDir), self, self,
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
