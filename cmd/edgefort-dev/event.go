package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/edgefort/edgefort/devcloud/devstack"
)

func newEventCmd() *command {
	c := &command{
		name:  "event",
		args:  "TYPE [JSON]",
		short: "send a cloud event to the dev node through devcloud's broker",
		long: `Publish a cloud event, as the cloud would, on the dev node's events topic of
devcloud's broker, and wait for its result in the control plane's reports
sink. Built-in types: update.check, keystore.repoint ({"ref": R, "store": S})
and webhook (the JSON body is POSTed to the dev engine, which logs it in
<state>/dev-engine/requests.jsonl). Exits 0 when the result is "done".

  edgefort-dev event webhook '{"app":"q3-report","action":"reload"}'`,
		flags: flag.NewFlagSet("event", flag.ContinueOnError),
	}
	cfgPath := c.flags.String("config", configPath(), "the dev configuration `FILE`")
	timeout := c.flags.Duration("timeout", 30*time.Second, "how long to wait for the result")
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return c.wantArgs(args, 1)
		}
		body := json.RawMessage(`{}`)
		if len(args) == 2 {
			if !json.Valid([]byte(args[1])) {
				return usageError{fmt.Sprintf("%s: %q is not JSON", c.path(), args[1])}
			}
			body = json.RawMessage(args[1])
		}
		cl, err := devstack.Open(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		res, err := cl.SendEvent(ctx, stdout, args[0], body)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "result %s %s\n", res.Status, res.Detail)
		if res.Status != "done" {
			return errQuiet
		}
		return nil
	}
	return c
}
