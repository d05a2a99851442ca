package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
)

//go:embed dev.yaml
var devConfigTemplate string

func newDevCmd() *command {
	c := &command{
		name:  "dev",
		short: "run the agent locally with a built-in configuration (start here)",
		long: `Run the agent on a built-in configuration, with nothing to write first and
nothing but loopback: a fresh temporary state directory (removed on exit) or
--state-dir (kept), metrics on a free loopback port. Prints what runs and
what to try, then runs until Ctrl-C.`,
	}
	fs := c.fs()
	stateDir := fs.String("state-dir", "", "state `DIR` to use and keep (default: a new temporary directory, removed on exit)")
	logLevel := fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	printConfig := fs.Bool("print-config", false, "print the built-in configuration and exit")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		dir := *stateDir
		if dir == "" && !*printConfig {
			tmp, err := os.MkdirTemp("", "edgefort-dev-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		data, err := devConfig(dir, *logLevel)
		if err != nil {
			return err
		}
		if *printConfig {
			_, err := st.stdout.Write(data)
			return err
		}
		cfg, err := config.Parse("(edgefort dev built-in configuration)", data)
		if err != nil {
			return err
		}
		log, _, err := agent.NewLogger(st.stderr, cfg.Log.Level, cfg.Log.Format)
		if err != nil {
			return err
		}
		return runAgent(ctx, cfg, log, func(a *agent.Agent) { printDevBanner(st, cfg, a) })
	}
	return c
}

func devConfig(stateDir, logLevel string) ([]byte, error) {
	if stateDir == "" {
		stateDir = "/tmp/edgefort-dev-XXXX"
	}
	var b strings.Builder
	tmpl := template.Must(template.New("dev").Parse(devConfigTemplate))
	err := tmpl.Execute(&b, map[string]string{
		"StateDir": strconv.Quote(stateDir),
		"LogLevel": strconv.Quote(logLevel),
	})
	return []byte(b.String()), err
}

func printDevBanner(st streams, cfg *config.Config, a *agent.Agent) {
	s := a.Status()
	var names []string
	for _, c := range s.Components {
		names = append(names, c.Name)
	}
	self := "edgefort"
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, "go-build") {
		self = "go run ./cmd/edgefort"
	}
	fmt.Fprintf(st.stdout, `
edgefort dev is running (version %s, pid %d)
  state dir     %s
  admin socket  %s
  metrics       %s
  components    %s (all running)

Try, in another terminal:
  %s status --socket %s
  curl --unix-socket %s http://edgefort/readyz
  curl -s %s | grep ^edgefort_

Ctrl-C stops it.
`, s.Version, s.PID, cfg.StateDir, cfg.Admin.Socket, s.MetricsURL, strings.Join(names, ", "),
		self, cfg.Admin.Socket, cfg.Admin.Socket, s.MetricsURL)
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
