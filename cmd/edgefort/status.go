package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
)

func newStatusCmd() *command {
	c := &command{
		name:  "status",
		short: "show the running agent's components",
		long: `Ask the running agent, over its local admin socket, for the state of each
component and print a table (or JSON with --json). The socket is --socket,
else admin.socket from the configuration file (--config, $EDGEFORT_CONFIG,
` + config.DefaultPath + `), else the default under ` + config.DefaultStateDir + `.

Exits 0 when every component is running, 1 otherwise.`,
	}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "configuration `FILE` naming the admin socket")
	socket := fs.String("socket", "", "admin socket `PATH` (overrides the configuration)")
	asJSON := fs.Bool("json", false, "print JSON for machines")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		path := *socket
		if path == "" {
			var err error
			if path, err = adminSocket(*cfgPath); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		status, err := adminClient(path).Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(st.stdout, status); err != nil {
				return err
			}
		} else {
			printStatus(st.stdout, status, time.Now())
		}
		if !status.Ready {
			return errors.New("not every component is running")
		}
		return nil
	}
	return c
}

// adminSocket finds the admin socket from the configuration file, falling
// back to the default when no file exists.
func adminSocket(cfgPath string) (string, error) {
	cfg, err := config.Load(cfgPath)
	if errors.Is(err, config.ErrNoConfig) {
		return filepath.Join(config.DefaultStateDir, "admin.sock"), nil
	}
	if err != nil {
		return "", err
	}
	return cfg.Admin.Socket, nil
}

// adminClient is a client of the agent whose admin socket is at socket.
func adminClient(socket string) *adminclient.Client {
	c := adminclient.New(socket)
	c.Version = agent.Version()
	return c
}

func printStatus(w io.Writer, s *adminapi.Status, now time.Time) {
	ready := "ready"
	if !s.Ready {
		ready = "NOT READY"
	}
	// "version" spelled out: an unreleased build is version "dev", and
	// "edgefort dev" would name the command, not the build.
	fmt.Fprintf(w, "edgefort version %s, pid %d, up %s, %s\n", s.Version, s.PID, ago(now, s.Started), ready)
	fmt.Fprintf(w, "state dir %s\n", s.StateDir)
	if s.MetricsURL != "" {
		fmt.Fprintf(w, "metrics   %s\n", s.MetricsURL)
	}
	for _, name := range slices.Sorted(maps.Keys(s.VirtualHosts)) {
		fmt.Fprintf(w, "vhost     %s %s\n", name, s.VirtualHosts[name])
	}
	if s.AuthAPI != "" {
		fmt.Fprintf(w, "auth API  %s (two-way TLS)\n", s.AuthAPI)
	}
	for _, warning := range s.CertificateWarnings {
		fmt.Fprintf(w, "CERTIFICATE %s\n", warning)
	}
	if u := s.Updates; u != nil {
		line := "artifact  " + u.ArtifactName
		switch {
		case u.InFlight != nil:
			line += fmt.Sprintf("; installing %s (%s)", u.InFlight.ArtifactName, u.InFlight.Step)
		case u.Poller != nil && !u.Poller.LastCheck.IsZero():
			line += fmt.Sprintf("; server checked %s ago", ago(now, u.Poller.LastCheck))
		}
		fmt.Fprintln(w, line)
	}
	if l := s.IoT; l != nil {
		line := fmt.Sprintf("event link %s for %s, %d in, %d out, %d reconnects", l.State, ago(now, l.Since), l.MessagesIn, l.MessagesOut, l.Reconnects)
		if l.Throttled > 0 {
			line += fmt.Sprintf(" (%d throttled by the service)", l.Throttled)
		}
		if l.LastError != "" {
			line += fmt.Sprintf("; last error %s ago: %s", ago(now, l.LastErrorAt), l.LastError)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tSTATE\tSINCE\tRESTARTS\tLAST ERROR")
	for _, c := range s.Components {
		lastErr := c.LastError
		if lastErr != "" {
			lastErr = fmt.Sprintf("%s (%s ago)", lastErr, ago(now, c.LastErrorAt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%d\t%s\n", c.Name, c.State, ago(now, c.Since), c.Restarts, lastErr)
	}
	tw.Flush()
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}
