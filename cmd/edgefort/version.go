package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/edgefort/edgefort/agent"
)

func newVersionCmd() *command {
	c := &command{name: "version", short: "print the version, commit and Go version"}
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		fmt.Fprintf(st.stdout, "edgefort %s\ncommit %s\n%s %s/%s\n", agent.Version(), agent.Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
	return c
}
