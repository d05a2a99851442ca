package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/updater/deploy"
)

func newUpdateCmd() *command {
	c := &command{
		name:  "update",
		short: "install Mender Artifacts, check the server now, commit or roll back",
		long: `Drive the update channel. With a running agent the commands go through its
admin socket; install, commit, rollback and status also work with no agent
running, on the state directory of the configuration (--config,
$EDGEFORT_CONFIG, ` + config.DefaultPath + `).

A local install runs Download and ArtifactInstall and then waits, like
'mender install': check the result, then 'edgefort update commit' or
'edgefort update rollback'. --commit goes straight through.`,
	}
	return c.add(newUpdateStatusCmd(), newUpdateCheckCmd(), newUpdateInstallCmd(), newUpdateCommitCmd("commit"), newUpdateCommitCmd("rollback"))
}

// updateTarget finds the agent, or the configuration to work offline.
type updateTarget struct {
	config, socket *string
}

func addUpdateTarget(c *command) updateTarget {
	fs := c.fs()
	return updateTarget{
		config: fs.String("config", configPath(), "configuration `FILE`"),
		socket: fs.String("socket", "", "admin socket `PATH` of a running agent (overrides the configuration)"),
	}
}

func (t updateTarget) admin() (*adminclient.Client, error) {
	path := *t.socket
	if path == "" {
		var err error
		if path, err = adminSocket(*t.config); err != nil {
			return nil, err
		}
	}
	return adminClient(path), nil
}

// open returns the update operations of the running agent, or, when none
// answers, the same operations in this process on the state directory
// (holding its lock until closeFn).
func (t updateTarget) open(ctx context.Context, st streams) (u adminapi.Updates, closeFn func() error, err error) {
	admin, err := t.admin()
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = admin.Ping(pctx)
	if !errors.Is(err, adminclient.ErrNotRunning) {
		return admin, func() error { return nil }, err
	}
	m, closeFn, err := t.offline(st)
	if err != nil {
		return nil, nil, err
	}
	return &adminapi.LocalUpdates{Machine: m}, closeFn, nil
}

// offline opens the update machine of a state directory no agent runs on.
func (t updateTarget) offline(st streams) (*deploy.Machine, func() error, error) {
	cfg, err := config.Load(*t.config)
	if errors.Is(err, config.ErrNoConfig) {
		return nil, nil, fmt.Errorf("no agent is running and there is no configuration at %s to install with: pass --config", *t.config)
	}
	if err != nil {
		return nil, nil, err
	}
	// The command prints its own progress and result; the steps are
	// logged only when something goes wrong.
	level := "warn"
	if cfg.Log.Level == "debug" {
		level = "debug"
	}
	log, _, err := agent.NewLogger(st.stderr, level, cfg.Log.Format)
	if err != nil {
		return nil, nil, err
	}
	// Act as the agent's user, so that new files in the state directory
	// are its; the Artifact is then read as that user too.
	if err := store.ActAsOwner(cfg.StateDir); err != nil {
		return nil, nil, err
	}
	return agent.OpenUpdatesOffline(cfg, log)
}

func newUpdateStatusCmd() *command {
	c := &command{name: "status", short: "show the installed Artifact and any update in progress"}
	t := addUpdateTarget(c)
	asJSON := c.fs().Bool("json", false, "print JSON for machines")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		u, closeFn, err := t.open(ctx, st)
		if err != nil {
			return err
		}
		defer closeFn()
		us, err := u.UpdateStatus(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st.stdout, us)
		}
		printUpdateStatus(st.stdout, us)
		return nil
	}
	return c
}

func printUpdateStatus(w io.Writer, us *adminapi.UpdateStatus) {
	fmt.Fprintf(w, "artifact:   %s\n", us.ArtifactName)
	if us.ArtifactGroup != "" {
		fmt.Fprintf(w, "group:      %s\n", us.ArtifactGroup)
	}
	for _, k := range slices.Sorted(maps.Keys(us.Provides)) {
		fmt.Fprintf(w, "provides:   %s=%s\n", k, us.Provides[k])
	}
	if us.Channel {
		fmt.Fprintf(w, "server:     %s\n", us.ServerURL)
	} else {
		fmt.Fprintf(w, "server:     (update channel off)\n")
	}
	if p := us.Poller; p != nil {
		if !p.LastCheck.IsZero() {
			fmt.Fprintf(w, "last check: %s", p.LastCheck.Format(time.RFC3339))
			if p.LastCheckErr != "" {
				fmt.Fprintf(w, " (failed: %s)", p.LastCheckErr)
			}
			fmt.Fprintln(w)
		}
		if !p.NextCheck.IsZero() {
			// After a 429 it is at least the server's Retry-After away.
			fmt.Fprintf(w, "next check: %s\n", p.NextCheck.Format(time.RFC3339))
		}
		if r := p.LastResult; r != nil {
			fmt.Fprintf(w, "last:       %s %s %s\n", r.ArtifactName, r.Outcome, r.Reason)
		}
	}
	if f := us.InFlight; f != nil {
		fmt.Fprintf(w, "in flight:  %s at %s", f.ArtifactName, f.Step)
		if f.DeploymentID != "" {
			fmt.Fprintf(w, " (deployment %s)", f.DeploymentID)
		}
		fmt.Fprintln(w)
		if f.Step == string(deploy.StepAwaitCommit) {
			fmt.Fprintln(w, "            installed; run 'edgefort update commit' or 'edgefort update rollback'")
		}
	}
}

func newUpdateCheckCmd() *command {
	c := &command{
		name:  "check",
		short: "make the running agent ask the update server for a deployment now",
		long: `Make the running agent ask the Mender server for a deployment now instead of
at the next poll (updates.poll_interval). Returns once the check is queued;
follow it with 'edgefort update status' or the agent's log. When the server's
last answer was a 429 (too many requests), the check waits until its
Retry-After ends, and the command says when.`,
	}
	t := addUpdateTarget(c)
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		admin, err := t.admin()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		reply, err := admin.CheckUpdate(ctx)
		if err != nil {
			return err
		}
		if !reply.HeldUntil.IsZero() {
			fmt.Fprintf(st.stdout, "update check requested; the server answered 429, so it runs when its Retry-After ends, at %s\n", reply.HeldUntil.Format(time.RFC3339))
			return nil
		}
		fmt.Fprintln(st.stdout, "update check requested")
		return nil
	}
	return c
}

func newUpdateInstallCmd() *command {
	c := &command{
		name:  "install",
		args:  "FILE|URL",
		short: "install a Mender Artifact from a file or an http(s) URL",
		long: `Install a Mender Artifact: stream it, verify the manifest, the checksums and
(with updates.verify_keys) the signature, then hand the payloads to their
update modules (updates.modules_dir) or the built-in installers
(edgefort-agent: the agent's own binary; edgefort-file: one file streamed
into the path its meta-data names). Nothing is activated before the whole
Artifact verified. With an agent running, the install goes through it (a
self-update then restarts it to finish).

Without --commit the install stops after ArtifactInstall; commit it with
'edgefort update commit' or undo it with 'edgefort update rollback'.
Exits 0 on success (installed or committed), 1 otherwise with the reason.`,
	}
	t := addUpdateTarget(c)
	commit := c.fs().Bool("commit", false, "commit right after a successful install")
	noProgress := c.fs().Bool("no-progress", false, "do not draw the progress bar")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		src, size, closeSrc, err := openArtifactSource(ctx, args[0])
		if err != nil {
			return err
		}
		defer closeSrc()
		var prog *progress
		if !*noProgress {
			prog = newProgress(st.stderr, args[0], size)
			src = prog.reader(src)
		}
		defer prog.end()
		u, closeFn, err := t.open(ctx, st)
		if err != nil {
			return err
		}
		defer closeFn()
		res, err := u.InstallUpdate(ctx, src, *commit)
		if err != nil {
			return err
		}
		if res.Outcome != string(deploy.OutcomeFailure) {
			prog.done()
		}
		return printResult(st, res)
	}
	return c
}

func newUpdateCommitCmd(verb string) *command {
	c := &command{name: verb, short: verb + " an installed Artifact waiting for it"}
	if verb == "rollback" {
		c.short = "roll back an installed Artifact waiting for commit"
	}
	t := addUpdateTarget(c)
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		u, closeFn, err := t.open(ctx, st)
		if err != nil {
			return err
		}
		defer closeFn()
		op := u.CommitUpdate
		if verb == "rollback" {
			op = u.RollbackUpdate
		}
		res, err := op(ctx)
		if err != nil {
			return err
		}
		return printResult(st, res)
	}
	return c
}

func printResult(st streams, res *adminapi.UpdateResult) error {
	switch deploy.Outcome(res.Outcome) {
	case deploy.OutcomeSuccess:
		fmt.Fprintf(st.stdout, "%s: installed and committed\n", res.ArtifactName)
	case adminapi.OutcomeRestarting:
		fmt.Fprintf(st.stdout, "%s: the agent restarts to finish the update; follow it with 'edgefort update status'\n", res.ArtifactName)
	case deploy.OutcomeInstalled:
		fmt.Fprintf(st.stdout, "%s: installed; run 'edgefort update commit' to keep it or 'edgefort update rollback' to undo it\n", res.ArtifactName)
	case deploy.OutcomeFailure:
		name := cmp.Or(res.ArtifactName, "artifact")
		switch {
		case res.Inconsistent:
			return fmt.Errorf("%s: failed and could not be rolled back; the node is inconsistent: %s", name, res.Reason)
		case res.RolledBack && res.Reason == deploy.ReasonOperatorRollback:
			fmt.Fprintf(st.stdout, "%s: rolled back\n", name)
			return nil
		case res.RolledBack:
			return fmt.Errorf("%s: failed and was rolled back: %s", name, res.Reason)
		}
		return fmt.Errorf("%s: failed: %s", name, res.Reason)
	default:
		name := res.ArtifactName
		if name == "" {
			name = "artifact"
		}
		return fmt.Errorf("%s: %s: %s", name, res.Outcome, res.Reason)
	}
	return nil
}

// openArtifactSource opens a file, or GETs an http(s) URL.
func openArtifactSource(ctx context.Context, src string) (io.Reader, int64, func() error, error) {
	if strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, 0, nil, err
		}
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableCompression: true}}).Do(req)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("download %s: %w", src, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, nil, fmt.Errorf("download %s: %s", src, resp.Status)
		}
		return resp.Body, resp.ContentLength, resp.Body.Close, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	if !fi.Mode().IsRegular() {
		return f, -1, f.Close, nil
	}
	return f, fi.Size(), f.Close, nil
}
