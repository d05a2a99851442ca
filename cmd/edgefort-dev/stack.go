package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/devcloud/devstack"
)

// newStackCmd runs the stack; its log goes to stderr.
func newStackCmd(stderr io.Writer) *command {
	c := &command{
		name:  "edgefort-dev",
		short: "run the agent locally against devcloud (start here)",
		long: `Run the agent on a built-in configuration, with nothing to write first and
nothing but loopback: a fresh temporary state directory (removed on exit) or
--state-dir (kept), metrics and an HTTPS virtual host on free loopback ports,
a small dev CA with a keystore, a truststore and references made for it,
and devcloud's servers in this process: a Mender-compatible update server
(mutual TLS) that the agent's update channel polls, a control plane the
node enrolls with at every start, and a SigV4-checking MQTT broker with
AWS IoT Jobs and Shadow for the event link. The virtual host is the client
API in front of a local engine stand-in: it takes the control plane's user
tokens (the banner prints alice's and bob's). The dev identity providers
run as child processes, stopped with it: npm samlify (a SAML IdP with a
login form) and npm oidc-provider (an OpenID provider whose ID tokens are
encrypted to the node's key pair), installed with npm ci from this
repository's internal/peertest/testdata the first time; the virtual host
sso signs browsers in through either (users alice and bob, passwords in
the banner). They need node and npm (Debian: nodejs, npm); --no-idps
starts without them. Prints what runs and what to try, then runs until
Ctrl-C. The commands below drive it from another terminal.`,
		flags: flag.NewFlagSet("edgefort-dev", flag.ContinueOnError),
	}
	stateDir := c.flags.String("state-dir", "", "state `DIR` to use and keep (default: a new temporary directory, removed on exit)")
	logLevel := c.flags.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	printConfig := c.flags.Bool("print-config", false, "print the built-in configuration and exit")
	noIdPs := c.flags.Bool("no-idps", false, "start without the dev identity providers (no node needed; no federated logins, no virtual host sso)")
	idpProjects := c.flags.String("idp-projects", "", "the dev IdPs' npm projects `DIR` (default: internal/peertest/testdata of the checkout edgefort-dev was built from, or found from the working directory up)")
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("edgefort-dev: unknown command %q (see 'edgefort-dev --help')", args[0])}
		}
		if *printConfig {
			const dir = "/tmp/edgefort-dev-XXXX"
			data, err := devstack.Config(devstack.ConfigParams{
				StateDir: dir, LogLevel: *logLevel, ServerURL: "https://127.0.0.1:PORT", ModulesDir: devstack.ModulesDirFor(dir),
			})
			if err != nil {
				return err
			}
			_, err = stdout.Write(data)
			return err
		}
		idps := devstack.IdPOptions{Enabled: !*noIdPs, ProjectsDir: *idpProjects}
		return runStack(ctx, stdout, stderr, *stateDir, *logLevel, idps)
	}
	return c
}

// runStack starts the dev stack and runs the agent on it until SIGINT or
// SIGTERM; a second signal ends a shutdown that hangs.
func runStack(ctx context.Context, stdout, stderr io.Writer, stateDir, logLevel string, idps devstack.IdPOptions) error {
	log, level, err := agent.NewLogger(stderr, logLevel, "text")
	if err != nil {
		return err
	}
	if stateDir == "" {
		tmp, err := os.MkdirTemp("", "edgefort-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		stateDir = tmp
	}
	if stateDir, err = filepath.Abs(stateDir); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the default action again, for a second signal
	}()
	s, err := devstack.Start(ctx, devstack.Options{
		StateDir: stateDir, LogLevel: logLevel, Logger: log.With(agent.LogKeyComponent, "devcloud"), IdPs: idps,
	})
	if err != nil {
		return err
	}
	if !idps.Enabled {
		log.Warn("started without the dev identity providers (--no-idps): no federated logins, no virtual host sso")
	}
	// The stack outlives the agent that talks to it.
	defer s.Close()
	return s.RunAgent(ctx, log, level, func(a *agent.Agent) {
		if err := s.PrintBanner(stdout, a); err != nil {
			log.Error("print the banner", "error", err)
		}
	})
}
