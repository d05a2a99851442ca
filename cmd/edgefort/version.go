package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/edgefort/edgefort/agent"
)

func newVersionCmd() *command {
	c := &command{name: "version", short: "print the version, commit, its date and Go version"}
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		fmt.Fprintf(st.stdout, "edgefort %s\ncommit %s\ndate %s\n%s %s/%s\n", agent.Version(), agent.Commit(), agent.Date(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
	return c
}
