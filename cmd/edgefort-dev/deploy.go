package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/devcloud/devstack"
)

func newDeployCmd() *command {
	c := &command{
		name:  "deploy",
		args:  "FILE",
		short: "deploy a file to the running dev agent over the update channel",
		long: `Deploy FILE to the agent a running edgefort-dev serves, the way a fleet is
updated: build a single-file Artifact (device type ` + devstack.DeviceType + `) that
installs FILE into --dest, upload it to the dev update server, deploy it to
every device, ask the agent to check now, and print each status the device
reports until the last one. --artifact deploys a prebuilt Artifact instead:
a rootfs-image one (mender-artifact write rootfs-image, or edgefort artifact
write rootfs-image) updates the root filesystem of the simulated A/B device
the node runs on, across a reboot that restarts the agent. After a success
it prints what the server's inventory says the device runs.

Artifact names are unique on the server, as on Mender: deploying a name
already uploaded deploys the uploaded Artifact, and a device that runs it
already reports already-installed.

Exits 0 when the deployment ends in success, 1 otherwise with the reason.
The running edgefort-dev is found through its configuration (--config,
$EDGEFORT_CONFIG), as its banner shows.`,
		flags: flag.NewFlagSet("deploy", flag.ContinueOnError),
	}
	fs := c.flags
	cfgPath := fs.String("config", configPath(), "configuration `FILE` of the running edgefort-dev (its banner names it)")
	dest := fs.String("dest", "", "`DIR` to install FILE into (default: <state dir>/"+devstack.DeployedDir+")")
	name := fs.String("name", "", "Artifact `NAME` (default: "+devstack.ArtifactNameHelp+")")
	prebuilt := fs.String("artifact", "", "deploy this Artifact `FILE` (.mender) instead of building one from FILE")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long (`DURATION`) to wait for the deployment to end")
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if *prebuilt != "" {
			if len(args) != 0 || *dest != "" || *name != "" {
				return usageError{fmt.Sprintf("%s: --artifact takes no FILE, --dest or --name (the Artifact has them) (see '%s --help')", c.path(), c.path())}
			}
		} else if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		if *timeout <= 0 {
			return usageError{fmt.Sprintf("%s: --timeout must be positive", c.path())}
		}
		cl, err := devstack.Open(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer cl.Close()
		art := *prebuilt
		if art == "" {
			tmp, err := os.MkdirTemp("", "edgefort-deploy-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			if art, err = buildArtifact(stdout, cl, args[0], *dest, *name, tmp); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		return cl.Deploy(ctx, stdout, art)
	}
	return c
}

// buildArtifact writes the single-file Artifact for file into tmp and
// returns its path.
func buildArtifact(stdout io.Writer, cl *devstack.Client, file, dest, name, tmp string) (string, error) {
	if dest == "" {
		dest = filepath.Join(cl.Config.StateDir, devstack.DeployedDir)
	}
	dest, err := filepath.Abs(dest)
	if err != nil {
		return "", err
	}
	if name == "" {
		name = devstack.DefaultArtifactName(file, time.Now())
	}
	art := filepath.Join(tmp, "deploy.mender")
	if err := devstack.WriteSingleFileArtifact(art, file, dest, name, tmp); err != nil {
		return "", err
	}
	fmt.Fprintf(stdout, "built %s: installs %s into %s\n", name, filepath.Base(file), dest)
	return art, nil
}
