package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/edgefort/edgefort/devcloud/devstack"
)

func newJobCmd() *command {
	c := &command{
		name:  "job",
		args:  "FILE",
		short: "create an AWS IoT job for the dev node and follow it to its end",
		long: `Create a job in devcloud's Jobs service for the dev node, with FILE as the job
document, and wait until the node ends it. The document's "operation" picks
the handler, as event types do: update.check, keystore.repoint, webhook.
Exits 0 when the job SUCCEEDED.

  echo '{"operation":"webhook","app":"q3-report"}' > job.json
  edgefort-dev job job.json`,
		flags: flag.NewFlagSet("job", flag.ContinueOnError),
	}
	cfgPath := c.flags.String("config", configPath(), "the dev configuration `FILE`")
	id := c.flags.String("id", "", "job `ID` (default: job-<random>)")
	timeout := c.flags.Duration("timeout", 60*time.Second, "how long to wait for the job to end")
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		doc, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		if !json.Valid(doc) {
			return fmt.Errorf("%s: the job document is not JSON", args[0])
		}
		cl, err := devstack.Open(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer cl.Close()
		jobID := *id
		if jobID == "" {
			jobID = devstack.NewJobID()
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		status, err := cl.RunJob(ctx, stdout, jobID, doc)
		if err != nil {
			return err
		}
		if status != "SUCCEEDED" {
			return errQuiet
		}
		return nil
	}
	return c
}
