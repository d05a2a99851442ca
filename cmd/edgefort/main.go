// Command edgefort is the edge node agent: one binary that runs the agent
// (run) and operates on it (status, config, version). The dev environment
// is a separate binary, cmd/edgefort-dev, so that this one links no fake
// cloud (deps_test.go checks it).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edgefort/edgefort/agent/config"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], streams{stdout: os.Stdout, stderr: os.Stderr}))
}

// run executes the CLI and returns the exit status: 0 success, 1 failure,
// 2 a usage mistake.
func run(ctx context.Context, args []string, st streams) int {
	err := newRoot().run(ctx, st, args)
	if err == nil {
		return 0
	}
	printError(st.stderr, err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// printError prints configuration problems one per line, as editors and
// CI annotate them (FILE:LINE: FIELD: message), and every line of anything
// else prefixed once with the program name, so that a failure reads
// "edgefort: ..." whichever command, layer or joined error it came from.
// Messages therefore never start with the program name themselves.
func printError(w io.Writer, err error) {
	if errors.Is(err, errSilentDeny) {
		return // the command printed the verdict already
	}
	var cerr *config.Error
	if errors.As(err, &cerr) {
		for _, p := range cerr.Problems {
			fmt.Fprintln(w, p.String())
		}
		return
	}
	for line := range strings.SplitSeq(strings.TrimRight(err.Error(), "\n"), "\n") {
		fmt.Fprintf(w, "edgefort: %s\n", line)
	}
}

func newRoot() *command {
	root := &command{
		name:  "edgefort",
		short: "the edge node agent",
		long: `edgefort is an edge node agent: it keeps outbound links to the cloud (update
channel, event link, cloud calls) and serves clients on the private network,
opening no public inbound port.

New here? Run 'go run ./cmd/edgefort-dev' (the dev environment, a separate
binary): it starts the agent on a built-in configuration in a temporary
directory, against devcloud's servers, and tells you what to try.`,
	}
	return root.add(
		newDevCmd(),
		newRunCmd(),
		newStatusCmd(),
		newKeystoreCmd(),
		newTruststoreCmd(),
		newRefCmd(),
		newKeysCmd(),
		newArtifactCmd(),
		newUpdateCmd(),
		newEnrollCmd(),
		newCloudCmd(),
		newSessionsCmd(),
		newConfigCmd(),
		newVersionCmd(),
		newGuardCmd(),
	)
}

// configPath is the --config default: $EDGEFORT_CONFIG, else the packaged
// location.
func configPath() string {
	if p := os.Getenv(config.EnvConfig); p != "" {
		return p
	}
	return config.DefaultPath
}
