package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/devcloud/devstack"
)

// envUserToken is the --token default of ws, as the banner exports it.
const envUserToken = "EDGEFORT_USER_TOKEN"

// exitRefused is ws's exit status when the node answers the handshake
// with an HTTP status (401, 403, ...) instead of a WebSocket.
const exitRefused = 3

// stdin is what ws reads messages from; tests replace it.
var stdin io.Reader = os.Stdin

// maxLine bounds one stdin line ws sends (the engine echoes up to 1 MiB).
const maxLine = 1 << 20

func newWSCmd() *command {
	c := &command{
		name:  "ws",
		args:  "URL",
		short: "open a WebSocket through the node as a user and echo messages",
		long: `Open a WebSocket to URL (wss://, as the banner prints it) with a user token as
a bearer token, trusting the dev CA; print the server's first message (the
dev engine's hello: the identity it received), then send --message, or else
each line of standard input, and print each echo.

Exit status: 0 every message came back as sent; 1 a failure (no connection,
an echo that differs, the connection lost); 2 a usage mistake; 3 the node
refused the handshake with an HTTP status (401 no or a bad token, 403 the
policy denies), which is printed.

  export EDGEFORT_USER_TOKEN=...   # the banner's token for alice
  edgefort-dev ws wss://127.0.0.1:PORT/api/v1/apps/q3-report/ws --message hi`,
		flags: flag.NewFlagSet("ws", flag.ContinueOnError),
	}
	cfgPath := c.flags.String("config", configPath(), "the dev configuration `FILE` (where --cacert is found by default)")
	caFile := c.flags.String("cacert", "", "PEM `FILE` of the CA to trust (default: the running stack's dev CA)")
	token := c.flags.String("token", os.Getenv(envUserToken), "user `TOKEN` sent as a bearer token (default $"+envUserToken+")")
	message := c.flags.String("message", "", "send this `TEXT` instead of reading standard input")
	timeout := c.flags.Duration("timeout", 30*time.Second, "how long the whole exchange may take")
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		roots, err := wsRoots(*caFile, *cfgPath)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		s, err := devstack.DialWS(ctx, devstack.WSOptions{URL: args[0], Token: *token, RootCAs: roots})
		var refused *devstack.RefusedError
		if errors.As(err, &refused) {
			fmt.Fprintln(stdout, refused.Error())
			return exitError{code: exitRefused}
		}
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprintf(stdout, "hello %s\n", bytes.TrimSpace(s.Hello))
		var in io.Reader = stdin
		if *message != "" {
			in = nil
		}
		return wsEcho(ctx, stdout, s, *message, in)
	}
	return c
}

// wsEcho sends msg (or each line of in when in is not nil) and prints the
// echoes.
func wsEcho(ctx context.Context, stdout io.Writer, s *devstack.WSSession, msg string, in io.Reader) error {
	send := func(m []byte) error {
		reply, err := s.Echo(ctx, m)
		if errors.Is(err, devstack.ErrEchoMismatch) {
			return fmt.Errorf("sent %q, got %q back", m, reply)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "echo %s\n", reply)
		return nil
	}
	if in == nil {
		return send([]byte(msg))
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		if err := send(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("standard input: %w (lines up to %d bytes)", err, maxLine)
	}
	return nil
}

// wsRoots reads caFile, or the dev CA of the stack cfgPath configures.
func wsRoots(caFile, cfgPath string) (*x509.CertPool, error) {
	if caFile == "" {
		cfg, err := config.Load(cfgPath)
		if errors.Is(err, config.ErrNoConfig) {
			return nil, fmt.Errorf("no configuration at %s to find the dev CA in: give --cacert, or point --config or $%s at the configuration the banner names", cfgPath, config.EnvConfig)
		}
		if err != nil {
			return nil, err
		}
		caFile = filepath.Join(cfg.StateDir, devstack.CADir, devcloud.CACertFile)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--cacert: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", caFile)
	}
	return roots, nil
}
