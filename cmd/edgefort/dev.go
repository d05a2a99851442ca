package main

import (
	"context"
	"fmt"
	"strings"
)

// devPointer is what `edgefort dev` says: the dev environment is its own
// binary, so that the product links no fake cloud.
const devPointer = "the dev environment is the edgefort-dev binary: go run ./cmd/edgefort-dev"

func newDevCmd() *command {
	c := &command{
		name:  "dev",
		short: "moved: the dev environment is the edgefort-dev binary",
		long: `The dev environment (the agent against devcloud's servers, and its deploy,
event and job commands) is the edgefort-dev binary, not part of the
product:

  go run ./cmd/edgefort-dev             # was: edgefort dev
  go run ./cmd/edgefort-dev deploy FILE # was: edgefort dev deploy FILE`,
	}
	c.exec = func(_ context.Context, _ streams, args []string) error {
		hint := "go run ./cmd/edgefort-dev"
		if len(args) > 0 {
			hint += " " + strings.Join(args, " ")
		}
		return usageError{fmt.Sprintf("edgefort dev: %s (here: %s)", devPointer, hint)}
	}
	return c
}
