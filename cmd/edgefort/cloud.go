package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/cloudclient/api"
)

func newCloudCmd() *command {
	c := &command{
		name:  "cloud",
		short: "ask the control plane through the running agent: status, authorize, report",
		long: `Use the running agent's control plane link (cloud.enabled, after 'edgefort
enroll'): show it, ask for an authorization decision the way a client request
would (through the decision cache), or queue a report in the durable outbox.`,
	}
	return c.add(newCloudStatusCmd(), newCloudAuthorizeCmd(), newCloudReportCmd())
}

func cloudAdmin(cfgPath, socket string) (*adminclient.Client, error) {
	t := updateTarget{config: &cfgPath, socket: &socket}
	return t.admin()
}

func newCloudStatusCmd() *command {
	c := &command{name: "status", short: "show the enrollment and the outbox"}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "configuration `FILE`")
	socket := fs.String("socket", "", "admin socket `PATH` (overrides the configuration)")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		admin, err := cloudAdmin(*cfgPath, *socket)
		if err != nil {
			return err
		}
		cs, err := admin.CloudStatus(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(st.stdout, "device         %s (enrolled %s)\ncontrol plane  %s\noutbox         %d queued\n",
			cs.DeviceID, cs.Enrolled.Format(time.RFC3339), cs.ControlPlaneURL, cs.OutboxQueued)
		return nil
	}
	return c
}

func newCloudAuthorizeCmd() *command {
	c := &command{
		name:  "authorize",
		short: "ask whether a user may act on a space or app",
		long: `Ask for an authorization decision through the agent's cache, as a client
request would. Exits 0 when allowed, 1 when denied; prints the reason and
where the decision came from (cloud, cache, stale, unreachable).

  edgefort cloud authorize --user alice --group analysts --action app.reload --space sales --app q3-report`,
	}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "configuration `FILE`")
	socket := fs.String("socket", "", "admin socket `PATH` (overrides the configuration)")
	user := fs.String("user", "", "user `ID` (required)")
	directory := fs.String("directory", "local", "user `DIRECTORY`")
	groups := fs.String("group", "", "comma-separated `GROUPS` of the user")
	action := fs.String("action", "", "`ACTION`, e.g. app.read or app.reload (required)")
	space := fs.String("space", "", "`SPACE` (required)")
	app := fs.String("app", "", "`APP` in the space; empty asks about the space itself")
	asJSON := fs.Bool("json", false, "print JSON for machines")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		if *user == "" || *action == "" || *space == "" {
			return usageError{"cloud authorize: --user, --action and --space are required"}
		}
		req := api.AuthorizeRequest{
			User:     api.User{ID: *user, Directory: *directory},
			Action:   *action,
			Resource: api.Resource{Type: "space", ID: *space},
		}
		if *groups != "" {
			req.User.Groups = strings.Split(*groups, ",")
		}
		if *app != "" {
			req.Resource = api.Resource{Type: "app", ID: *app, Space: *space}
		}
		admin, err := cloudAdmin(*cfgPath, *socket)
		if err != nil {
			return err
		}
		reply, err := admin.Authorize(ctx, req)
		if err != nil {
			return err
		}
		d, why := reply.Decision, reply.Error
		if *asJSON {
			printJSON(st.stdout, d)
		} else {
			verdict := "DENY"
			if d.Allow {
				verdict = "ALLOW"
			}
			fmt.Fprintf(st.stdout, "%s %s (%s)\n", verdict, d.Reason, d.Source)
		}
		if why != "" {
			fmt.Fprintf(st.stderr, "warning: %s\n", why)
		}
		if !d.Allow {
			return errSilentDeny
		}
		return nil
	}
	return c
}

// errSilentDeny makes a deny exit 1 without another message.
var errSilentDeny = errors.New("")

func newCloudReportCmd() *command {
	c := &command{
		name:  "report",
		args:  "TYPE [JSON]",
		short: "queue a report for the control plane in the durable outbox",
	}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "configuration `FILE`")
	socket := fs.String("socket", "", "admin socket `PATH` (overrides the configuration)")
	stream := fs.String("stream", "cli", "`STREAM` the report is ordered in")
	high := fs.Bool("high", false, "high priority: never dropped before low-priority reports")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return c.wantArgs(args, 1)
		}
		body := json.RawMessage(`{}`)
		if len(args) == 2 {
			if !json.Valid([]byte(args[1])) {
				return usageError{fmt.Sprintf("cloud report: %q is not JSON", args[1])}
			}
			body = json.RawMessage(args[1])
		}
		admin, err := cloudAdmin(*cfgPath, *socket)
		if err != nil {
			return err
		}
		reply, err := admin.Report(ctx, adminapi.ReportRequest{Stream: *stream, Type: args[0], Body: body, High: *high})
		if err != nil {
			return err
		}
		fmt.Fprintf(st.stdout, "queued %s\n", reply.IdempotencyKey)
		return nil
	}
	return c
}
