package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/scripts"
)

// The interop tests below run the same Artifacts, made by the real
// mender-artifact, through Debian's Mender client 3.4 (`mender install`,
// `commit`, `rollback`) and through the deploy.Machine, with a recording
// update module and logging state scripts, and compare what each side
// called and what the device provides afterwards.

// Paths compiled into the Debian mender-client 3.4 that its configuration
// file cannot move: the directory holding artifact_info (read while the
// client's own database names no Artifact) and the rootfs state scripts,
// and the update modules directory.
const (
	menderEtc     = "/etc/mender"
	menderModules = "/usr/share/mender/modules/v3"
)

// recType is the payload type of the recording update module, and
// noRollbackType that of its twin answering SupportsRollback with No.
const (
	recType        = "edgefort-rec"
	noRollbackType = "edgefort-norb"
)

// recScripts are the state scripts shipped in every test Artifact; each
// logs its name. Mender 3.4 has no Cleanup state scripts.
var recScripts = []string{
	"ArtifactInstall_Enter_00", "ArtifactInstall_Leave_00", "ArtifactInstall_Error_00",
	"ArtifactCommit_Enter_00", "ArtifactCommit_Leave_00", "ArtifactCommit_Error_00",
	"ArtifactRollback_Enter_00", "ArtifactRollback_Leave_00",
	"ArtifactFailure_Enter_00", "ArtifactFailure_Leave_00",
}

// recorder holds the call log shared by the module and the scripts, the
// modules directory with the recording module, and the Artifacts built
// for one test.
type recorder struct {
	t       *testing.T
	dir     string
	log     string
	modules string
	scripts string // the state scripts, as files for mender-artifact
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	dir := t.TempDir()
	r := &recorder{t: t, dir: dir, log: filepath.Join(dir, "calls"), modules: filepath.Join(dir, "modules"), scripts: filepath.Join(dir, "scripts")}
	for _, d := range []string{r.modules, r.scripts} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for typ, rollback := range map[string]string{recType: "Yes", noRollbackType: "No"} {
		module := `#!/bin/sh
echo "module $1" >> '` + r.log + `'
case "$1" in
SupportsRollback) echo ` + rollback + ` ;;
NeedsArtifactReboot) echo No ;;
esac
exit 0
`
		if err := os.WriteFile(filepath.Join(r.modules, typ), []byte(module), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range recScripts {
		body := fmt.Sprintf("#!/bin/sh\necho 'script %s' >> '%s'\n", s, r.log)
		if err := os.WriteFile(filepath.Join(r.scripts, s), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// artifact writes an Artifact for the recording module with
// mender-artifact, with every logging state script, and returns its path.
func (r *recorder) artifact(name string, args ...string) string {
	r.t.Helper()
	return r.artifactOfType(recType, name, args...)
}

func (r *recorder) artifactOfType(typ, name string, args ...string) string {
	r.t.Helper()
	tool := peertest.Require(r.t, "mender-artifact")
	file := filepath.Join(r.dir, name+".payload")
	if err := os.WriteFile(file, []byte(name+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	out := filepath.Join(r.dir, name+".mender")
	cmdArgs := []string{"write", "module-image", "-T", typ, "-n", name, "-t", deviceType, "-f", file, "-o", out}
	for _, s := range recScripts {
		cmdArgs = append(cmdArgs, "-s", filepath.Join(r.scripts, s))
	}
	cmdArgs = append(cmdArgs, args...)
	if b, err := exec.Command(tool, cmdArgs...).CombinedOutput(); err != nil {
		r.t.Fatalf("mender-artifact %q: %v\n%s", cmdArgs, err, b)
	}
	return out
}

// take returns the calls logged since the last take, and empties the log.
func (r *recorder) take() []string {
	r.t.Helper()
	b, err := os.ReadFile(r.log)
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	if err := os.Remove(r.log); err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	var calls []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return calls
}

// op is one step of a scenario: install an Artifact (standalone, waiting
// for commit), commit, or rollback.
type op struct {
	cmd      string // install, commit or rollback
	artifact string // for install
}

func (o op) String() string {
	if o.artifact == "" {
		return o.cmd
	}
	return o.cmd + " " + filepath.Base(o.artifact)
}

// outcome is what one side did for one op: whether it succeeded, the
// module states and scripts it ran, and the provides after a commit or
// rollback.
type outcome struct {
	Op       string
	OK       bool
	Calls    []string
	Provides map[string]string
}

// menderPeer runs Debian's Mender client 3.4 standalone on a private data
// directory. Each command runs in its own mount namespace, where the test's
// directories are bound over /etc/mender and the modules directory, so no
// system file is written and tests running in parallel (the devcloud peer
// test also provides an artifact_info) never see each other's files.
type menderPeer struct {
	t    *testing.T
	bin  string
	dir  string
	conf string
	data string
	etc  string
	mods string
}

func newMenderPeer(t *testing.T, modules string) *menderPeer {
	t.Helper()
	bin := peertest.Require(t, "mender")
	peertest.Require(t, "mount")
	dir := t.TempDir()
	p := &menderPeer{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "mender.conf"), data: filepath.Join(dir, "data"), etc: filepath.Join(dir, "etc"), mods: modules}
	for _, d := range []string{p.data, p.etc} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(p.etc, "artifact_info"): "artifact_name=" + deploy.UnknownArtifact + "\n",
		filepath.Join(p.data, "device_type"):  "device_type=" + deviceType + "\n",
	}
	conf, _ := json.Marshal(map[string]any{
		"DeviceTypeFile": filepath.Join(p.data, "device_type"),
		"UpdateLogPath":  p.data,
		"DBus":           map[string]bool{"Enabled": false},
	})
	files[p.conf] = string(conf)
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Can this process make a mount namespace (root, CAP_SYS_ADMIN)?
	if out, err := p.command("--version").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot run mender in a private mount namespace (needs root with CAP_SYS_ADMIN): %v\n%s", err, out)
		if os.Getenv(peertest.EnvRequire) == "1" {
			t.Fatal(msg)
		}
		fmt.Fprintf(os.Stderr, "WARNING: %s: SKIPPED\n", t.Name())
		t.Skipf("SKIPPED: %s (%s=1 makes this fail)", msg, peertest.EnvRequire)
	}
	return p
}

// command is `mender args...` in a new mount namespace with the test's
// directories bound over the fixed paths. Go makes the namespace's mounts
// private before the shell starts, so the binds never reach the host.
func (p *menderPeer) command(args ...string) *exec.Cmd {
	script := `mount --bind "$1" ` + menderEtc + ` && mount --bind "$2" ` + menderModules + ` && shift 2 && exec "$@"`
	all := append([]string{"-c", script, "sh", p.etc, p.mods, p.bin, "-c", p.conf, "-d", p.data, "--no-syslog"}, args...)
	cmd := exec.Command("/bin/sh", all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd
}

func (p *menderPeer) run(o op) (bool, map[string]string) {
	p.t.Helper()
	args := []string{o.cmd}
	if o.cmd == "install" {
		args = append(args, o.artifact)
	}
	out, err := p.command(args...).CombinedOutput()
	if err != nil {
		p.t.Logf("mender %s: %v\n%s", o, err, out)
	}
	if o.cmd == "install" {
		return err == nil, nil
	}
	out, perr := p.command("show-provides").Output()
	if perr != nil {
		p.t.Fatalf("mender show-provides: %v", perr)
	}
	prov := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			prov[k] = v
		}
	}
	return err == nil, prov
}

// edgefortSide is a deploy.Machine on its own state directory, with the
// recording module and the Artifacts' scripts.
type edgefortSide struct {
	t *testing.T
	m *deploy.Machine
}

func newEdgefortSide(t *testing.T, modules string) *edgefortSide {
	t.Helper()
	state := t.TempDir()
	db := testkit.OpenStore(t, state)
	runner := &module.Runner{Dir: modules, Timeout: time.Minute, KillGrace: time.Second}
	m, err := deploy.New(deploy.Options{
		Store:      db,
		DeviceType: deviceType,
		WorkDir:    filepath.Join(state, "updates"),
		Installers: runner.Lookup,
		Scripts:    &scripts.Runner{ArtifactDir: filepath.Join(state, "updates", "scripts")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &edgefortSide{t: t, m: m}
}

func (e *edgefortSide) run(o op) (bool, map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	var res deploy.Result
	var err error
	switch o.cmd {
	case "install":
		b, rerr := os.ReadFile(o.artifact)
		if rerr != nil {
			e.t.Fatal(rerr)
		}
		res, err = e.m.Install(ctx, bytes.NewReader(b), deploy.Job{Standalone: true})
		if err != nil {
			e.t.Fatalf("%s: %v", o, err)
		}
		// Success: committed at once, as an Artifact that cannot roll
		// back is.
		ok := res.Outcome == deploy.OutcomeInstalled || res.Outcome == deploy.OutcomeSuccess
		if !ok {
			e.t.Logf("edgefort %s: %+v", o, res)
		}
		return ok, nil
	case "commit":
		res, err = e.m.Commit(ctx)
	case "rollback":
		res, err = e.m.Rollback(ctx)
	}
	if err != nil && !errors.Is(err, deploy.ErrNothingToCommit) {
		e.t.Fatalf("%s: %v", o, err)
	}
	if err != nil {
		// As `mender commit` exits 2: the install before was refused.
		e.t.Logf("edgefort %s: %v", o, err)
	}
	dev, err := e.m.Device()
	if err != nil {
		e.t.Fatal(err)
	}
	prov := map[string]string{"artifact_name": dev.ArtifactName}
	if dev.ArtifactGroup != "" {
		prov["artifact_group"] = dev.ArtifactGroup
	}
	for k, v := range dev.Provides {
		prov[k] = v
	}
	ok := res.Outcome == deploy.OutcomeSuccess || o.cmd == "rollback" && res.RolledBack
	return ok, prov
}

// actions drops the module's queries (SupportsRollback,
// NeedsArtifactReboot): they change nothing, and where Mender asks them
// differs between its standalone and daemon modes (standalone asks
// NeedsArtifactReboot after the ArtifactInstall Leave scripts and
// SupportsRollback again before a rollback; the daemon, as edgefort,
// asks before the Leave scripts and remembers the answer).
func actions(calls []string) []string {
	return slices.DeleteFunc(slices.Clone(calls), func(c string) bool {
		return c == "module SupportsRollback" || c == "module NeedsArtifactReboot"
	})
}

// TestMenderPeerStandaloneSequences runs each scenario through the real
// Mender client 3.4 and through the deploy.Machine and compares, op by op,
// whether it succeeded, the module states and state scripts it ran, and
// the provides after each commit or rollback.
func TestMenderPeerStandaloneSequences(t *testing.T) {
	rec := newRecorder(t)
	base := rec.artifact("base-0")
	grouped := rec.artifact("rec-1", "-g", "grp")
	// No group; its clears_provides (mender-artifact's default for the
	// type, rootfs-image.edgefort-rec.*) do not match artifact_group.
	noGroup := rec.artifact("st-1")
	clearsGroup := rec.artifact("st-2", "--clears-provides", "artifact_group")
	needsGroup := rec.artifact("dep-1", "--depends-groups", "grp")
	noRollback := rec.artifactOfType(noRollbackType, "nr-1")

	tests := []struct {
		name string
		ops  []op
		// check asserts what the scenario is about on edgefort's outcomes,
		// so that a Mender that changed cannot hide a regression.
		check func(t *testing.T, got []outcome)
	}{
		{
			// A rollback asked for after install: ArtifactRollback, then
			// Cleanup; no ArtifactFailure (nothing failed).
			name: "rollback on request",
			ops:  []op{{"install", base}, {"commit", ""}, {"install", noGroup}, {"rollback", ""}},
			check: func(t *testing.T, got []outcome) {
				want := []string{"script ArtifactRollback_Enter_00", "module ArtifactRollback", "script ArtifactRollback_Leave_00", "module Cleanup"}
				if diff := cmp.Diff(want, actions(got[3].Calls)); diff != "" {
					t.Errorf("edgefort rollback calls (-want +got):\n%s", diff)
				}
			},
		},
		{
			// The group stays across a commit of an Artifact with no group
			// whose clears do not match it, and a later Artifact that
			// depends on the group installs.
			name: "group kept across a commit",
			ops:  []op{{"install", base}, {"commit", ""}, {"install", grouped}, {"commit", ""}, {"install", noGroup}, {"commit", ""}, {"install", needsGroup}, {"commit", ""}},
			check: func(t *testing.T, got []outcome) {
				if g := got[5].Provides["artifact_group"]; g != "grp" {
					t.Errorf("edgefort artifact_group after st-1 = %q, want grp", g)
				}
				if !got[6].OK {
					t.Errorf("edgefort refused dep-1, which depends on group grp")
				}
			},
		},
		{
			// A payload that cannot roll back is committed at install:
			// there is nothing left to commit or roll back.
			name: "no rollback support",
			ops:  []op{{"install", base}, {"commit", ""}, {"install", noRollback}, {"rollback", ""}},
			check: func(t *testing.T, got []outcome) {
				if !slices.Contains(got[2].Calls, "module ArtifactCommit") || got[3].OK || got[3].Provides["artifact_name"] != "nr-1" {
					t.Errorf("edgefort: install %+v, then rollback %+v; want nr-1 committed at install, nothing to roll back", got[2], got[3])
				}
			},
		},
		{
			// Clears that match artifact_group drop it.
			name: "group cleared by clears_provides",
			ops:  []op{{"install", base}, {"commit", ""}, {"install", grouped}, {"commit", ""}, {"install", clearsGroup}, {"commit", ""}},
			check: func(t *testing.T, got []outcome) {
				if g, ok := got[5].Provides["artifact_group"]; ok {
					t.Errorf("edgefort artifact_group after st-2 = %q, want none", g)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec.t = t
			peer := newMenderPeer(t, rec.modules)
			ef := newEdgefortSide(t, rec.modules)
			rec.take()
			var fromMender, fromEdgefort []outcome
			for _, o := range tc.ops {
				ok, prov := peer.run(o)
				fromMender = append(fromMender, outcome{Op: o.String(), OK: ok, Calls: rec.take(), Provides: prov})
			}
			for _, o := range tc.ops {
				ok, prov := ef.run(o)
				fromEdgefort = append(fromEdgefort, outcome{Op: o.String(), OK: ok, Calls: rec.take(), Provides: prov})
			}
			tc.check(t, fromEdgefort)
			cmpActions := cmp.Transformer("actions", func(o outcome) outcome { o.Calls = actions(o.Calls); return o })
			if diff := cmp.Diff(fromMender, fromEdgefort, cmpActions); diff != "" {
				t.Errorf("Mender 3.4 (-) and edgefort (+) differ:\n%s", diff)
				t.Logf("Mender 3.4, all calls: %+v", fromMender)
				t.Logf("edgefort, all calls: %+v", fromEdgefort)
			}
		})
	}
}

// writeRecArtifact writes, with our own writer, an Artifact for the
// recording module carrying the logging state scripts, and returns its
// path: the peer-free twin of recorder.artifact.
func (r *recorder) writeRecArtifact(typ, name, group string, clears []string, dependsGroups ...string) string {
	r.t.Helper()
	p := artifact.ModuleImage(typ, name, artifact.ImageDefaults{})
	if clears != nil {
		p.ClearsProvides = clears
	}
	p.Files = []artifact.Source{testkit.Source(name+".payload", []byte(name+"\n"))}
	spec := &artifact.Spec{Name: name, Group: group, Depends: artifact.Depends{DeviceTypes: []string{deviceType}, ArtifactGroups: dependsGroups}, Payloads: []artifact.PayloadSpec{p}}
	for _, s := range recScripts {
		b, err := os.ReadFile(filepath.Join(r.scripts, s))
		if err != nil {
			r.t.Fatal(err)
		}
		spec.Scripts = append(spec.Scripts, artifact.Script{Name: s, Data: b})
	}
	var buf bytes.Buffer
	if err := artifact.Write(&buf, spec); err != nil {
		r.t.Fatal(err)
	}
	out := filepath.Join(r.dir, name+".mender")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// TestRequestedRollbackAndGroup checks the Machine alone, on Artifacts
// from our own writer, for the two points TestMenderPeerStandaloneSequences
// compares with Mender 3.4, so that they are covered where the peers are
// missing: a requested rollback runs ArtifactRollback then Cleanup, with
// no ArtifactFailure, and artifact_group stays across a commit of an
// Artifact with no group unless its clears_provides match it.
func TestRequestedRollbackAndGroup(t *testing.T) {
	rec := newRecorder(t)
	ef := newEdgefortSide(t, rec.modules)
	run := func(o op) (bool, map[string]string, []string) {
		t.Helper()
		ok, prov := ef.run(o)
		return ok, prov, actions(rec.take())
	}
	base := rec.writeRecArtifact(recType, "base-0", "", nil)
	grouped := rec.writeRecArtifact(recType, "rec-1", "grp", nil)
	noGroup := rec.writeRecArtifact(recType, "st-1", "", nil)
	needsGroup := rec.writeRecArtifact(recType, "dep-1", "", nil, "grp")
	clearsGroup := rec.writeRecArtifact(recType, "st-2", "", []string{"artifact_*"})

	for _, o := range []op{{"install", base}, {"commit", ""}, {"install", noGroup}} {
		if ok, _, _ := run(o); !ok {
			t.Fatalf("%s failed", o)
		}
	}
	ok, prov, calls := run(op{"rollback", ""})
	want := []string{"script ArtifactRollback_Enter_00", "module ArtifactRollback", "script ArtifactRollback_Leave_00", "module Cleanup"}
	if diff := cmp.Diff(want, calls); !ok || diff != "" {
		t.Errorf("rollback ok=%v, calls (-want +got):\n%s", ok, diff)
	}
	if prov["artifact_name"] != "base-0" {
		t.Errorf("after rollback provides = %v, want base-0's", prov)
	}

	for _, o := range []op{{"install", grouped}, {"commit", ""}, {"install", noGroup}, {"commit", ""}} {
		if ok, _, _ := run(o); !ok {
			t.Fatalf("%s failed", o)
		}
	}
	ok, prov, _ = run(op{"install", needsGroup})
	if !ok {
		t.Fatalf("dep-1, which depends on group grp, refused after st-1; provides %v", prov)
	}
	if _, prov, _ = run(op{"commit", ""}); prov["artifact_group"] != "grp" {
		t.Errorf("provides after dep-1 = %v, want artifact_group=grp", prov)
	}
	for _, o := range []op{{"install", clearsGroup}, {"commit", ""}} {
		ok, prov, _ = run(o)
		if !ok {
			t.Fatalf("%s failed", o)
		}
	}
	if g, ok := prov["artifact_group"]; ok {
		t.Errorf("artifact_group after st-2, whose clears match it = %q, want none", g)
	}
}

// TestStandaloneNoRollbackCommitsAtInstall: as `mender install` does, a
// standalone install of a payload whose module cannot roll back commits
// at once (TestMenderPeerStandaloneSequences compares it with Mender);
// rollback then finds nothing to roll back and calls no module.
func TestStandaloneNoRollbackCommitsAtInstall(t *testing.T) {
	rec := newRecorder(t)
	ef := newEdgefortSide(t, rec.modules)
	ok, _ := ef.run(op{"install", rec.writeRecArtifact(noRollbackType, "nr-1", "", nil)})
	calls := actions(rec.take())
	want := []string{"module Download", "script ArtifactInstall_Enter_00", "module ArtifactInstall", "script ArtifactInstall_Leave_00", "script ArtifactCommit_Enter_00", "module ArtifactCommit", "script ArtifactCommit_Leave_00", "module Cleanup"}
	if diff := cmp.Diff(want, calls); !ok || diff != "" {
		t.Errorf("install ok=%v, calls (-want +got):\n%s", ok, diff)
	}
	_, err := ef.m.Rollback(context.Background())
	if !errors.Is(err, deploy.ErrNothingToCommit) {
		t.Errorf("rollback after install: %v, want ErrNothingToCommit", err)
	}
	if calls := rec.take(); len(calls) != 0 {
		t.Errorf("rollback called %q, want nothing", calls)
	}
	if dev, err := ef.m.Device(); err != nil || dev.ArtifactName != "nr-1" {
		t.Errorf("device = %+v, %v; want nr-1 committed", dev, err)
	}
}

// TestMetaDataListNesting: meta-data with an object or a list inside a
// list, which mender-artifact's own reader calls invalid, is refused at
// install with an error naming the file and the place; lists of scalars
// and objects holding lists still install.
func TestMetaDataListNesting(t *testing.T) {
	tool := peertest.Require(t, "mender-artifact")
	rec := newRecorder(t)
	tests := []struct {
		name     string
		metaData string
		refused  string // "" = installs
	}{
		{"object in a list", `{"a":[{"b":1}]}`, `headers/0000/meta-data: a[0] is an object inside a list`},
		{"list in a list", `{"a":[[1]]}`, `headers/0000/meta-data: a[0] is a list inside a list`},
		{"deep, after scalars", `{"o":{"p":[1,"x",{"q":[]}]}}`, `headers/0000/meta-data: o.p[2] is an object inside a list`},
		{"list of scalars", `{"a":[1,"x",true,null]}`, ""},
		{"object holding a list", `{"o":{"b":[1,2]},"s":"v"}`, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec.t = t
			md := filepath.Join(t.TempDir(), "meta.json")
			if err := os.WriteFile(md, []byte(tc.metaData), 0o644); err != nil {
				t.Fatal(err)
			}
			path := rec.artifact(fmt.Sprintf("md-%d", i), "-m", md)
			// The rule is mender-artifact's: its reader says so.
			out, _ := exec.Command(tool, "read", path).CombinedOutput()
			if invalid := strings.Contains(string(out), "List cannot contain JSON object or list"); invalid != (tc.refused != "") {
				t.Fatalf("mender-artifact read calls the meta-data invalid: %v, want %v\n%s", invalid, tc.refused != "", out)
			}
			ef := newEdgefortSide(t, rec.modules)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := ef.m.Install(context.Background(), bytes.NewReader(b), deploy.Job{Standalone: true})
			if err != nil {
				t.Fatal(err)
			}
			calls := rec.take()
			if tc.refused == "" {
				if res.Outcome != deploy.OutcomeInstalled {
					t.Fatalf("install = %+v, want installed", res)
				}
				return
			}
			if res.Outcome != deploy.OutcomeFailure || !strings.Contains(res.Reason, tc.refused) || !strings.Contains(res.Reason, "mender-artifact refuses it too") {
				t.Errorf("install = %+v, want a failure saying %q", res, tc.refused)
			}
			// Refused before any update module state ran.
			if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "module ") && c != "module Cleanup" }) {
				t.Errorf("calls = %q, want none but Cleanup", calls)
			}
			if dev, err := ef.m.Device(); err != nil || dev.ArtifactName != deploy.UnknownArtifact {
				t.Errorf("device = %+v, %v; want it unchanged", dev, err)
			}
		})
	}
}
