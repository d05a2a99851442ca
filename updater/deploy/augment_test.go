package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/deploy"
)

// augType is the payload type of the augment tests' scripted update module.
const augType = "augtest"

// augModule is a scripted update module. It appends every call it gets to
// the file calls, answers SupportsAugmentedArtifacts and
// PermittedAugmentedHeaders as the test says, copies the header-augment/ it
// finds in its tree during its last Download to seen/, and the payload
// files to seen/files and seen/files-augment at its last ArtifactInstall.
// The payload streams are not read, so the agent stores the files under
// files/ and, for the augment's, files-augment/.
type augModule struct {
	dir   string // the modules directory
	calls string
	seen  string
}

func newAugModule(t *testing.T, supports, permitted string) *augModule {
	t.Helper()
	m := &augModule{dir: t.TempDir(), calls: filepath.Join(t.TempDir(), "calls"), seen: t.TempDir()}
	answerSupports := ":"
	if supports != "" {
		answerSupports = "printf '%s\\n' '" + supports + "'"
	}
	script := `#!/bin/sh
echo "$1" >> '` + m.calls + `'
case "$1" in
SupportsAugmentedArtifacts)
	` + answerSupports + `
	;;
PermittedAugmentedHeaders)
	cat <<'END_OF_ANSWER'
` + permitted + `
END_OF_ANSWER
	;;
ListSupportedOriginalTypes)
	cat '` + filepath.Join(filepath.Dir(m.calls), "original-types") + `' 2>/dev/null
	;;
SupportsRollback|NeedsArtifactReboot)
	echo No
	;;
Download)
	rm -rf '` + m.seen + `/header-augment'
	if [ -d header-augment ]; then cp -R header-augment '` + m.seen + `/header-augment' || exit 1; fi
	;;
ArtifactInstall)
	rm -rf '` + m.seen + `/files' '` + m.seen + `/files-augment'
	cp -R files '` + m.seen + `/files' || exit 1
	if [ -d files-augment ]; then cp -R files-augment '` + m.seen + `/files-augment' || exit 1; fi
	;;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(m.dir, augType), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return m
}

// callList returns the states and queries the module was called with.
func (m *augModule) callList(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(m.calls)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func (m *augModule) reset(t *testing.T) {
	t.Helper()
	if err := os.Remove(m.calls); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// writeModuleArtifact runs the real mender-artifact CLI: a module-image
// Artifact of type augType named name, carrying the file "payload"
// ("signed part"); with augment, also an augment section with the file
// payload2, meta-data {"delta":"yes","n":1} and the depends
// rootfs-image.augtest.version:aug-v0.
func writeModuleArtifact(t *testing.T, name string, augment bool) []byte {
	t.Helper()
	if augment {
		return writeAugmentedArtifact(t, name, augType)
	}
	return writeArtifact(t, name, nil)
}

// writeAugmentedArtifact is writeModuleArtifact with an augment of type
// typ.
func writeAugmentedArtifact(t *testing.T, name, typ string) []byte {
	t.Helper()
	return writeArtifact(t, name, []string{"--augment-type", typ, "--augment-file", "payload2",
		"--augment-meta-data", "meta.json", "--augment-depends", "rootfs-image.augtest.version:aug-v0"})
}

func writeArtifact(t *testing.T, name string, extra []string) []byte {
	t.Helper()
	cli := peertest.Require(t, "mender-artifact")
	dir := t.TempDir()
	for file, content := range map[string]string{
		"payload":   "signed part\n",
		"payload2":  "augmented part\n",
		"meta.json": `{"delta":"yes","n":1}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"write", "module-image", "-T", augType, "-t", deviceType, "-n", name, "-f", "payload", "-o", "out.mender"}
	args = append(args, extra...)
	cmd := exec.Command(cli, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mender-artifact %q: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.mender"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedDevice stores the device state of a device that runs aug-v0, so that
// the augment's depends are met.
func seedDevice(t *testing.T, e *env) {
	t.Helper()
	dev := deploy.Device{ArtifactName: "aug-v0", Provides: artifact.Provides{"rootfs-image.augtest.version": "aug-v0"}}
	if err := e.db.Bucket("updates").Put("device", dev); err != nil {
		t.Fatal(err)
	}
}

// permitAll permits every field the test's augment sets, in the shape of
// Mender's update module protocol (true for a scalar).
const permitAll = `{
  "type-info": {"artifact_depends": {"rootfs-image.augtest.version": true}},
  "meta-data": {"delta": true, "n": true}
}`

// TestAugmentedArtifactAccepted: a module that supports augmented Artifacts
// and permits what the augment sets gets the Artifact, with header-augment/
// in its tree and the augmented file among its payload files.
func TestAugmentedArtifactAccepted(t *testing.T) {
	peertest.Require(t, "mender-artifact")
	mod := newAugModule(t, "YesThisModuleSupportsAugmentedArtifacts", permitAll)
	e := newEnv(t, envOptions{modules: mod.dir})
	ctx := context.Background()

	// A plain Artifact first: it gives the device the provides the
	// augment depends on, and asks nothing about augments.
	res, err := e.m.Install(ctx, bytes.NewReader(writeModuleArtifact(t, "aug-v0", false)), deploy.Job{})
	if err != nil || res.Outcome != deploy.OutcomeSuccess {
		t.Fatalf("plain install = %+v, %v", res, err)
	}
	if calls := mod.callList(t); slices.Contains(calls, "SupportsAugmentedArtifacts") || slices.Contains(calls, "PermittedAugmentedHeaders") {
		t.Errorf("plain Artifact: module was asked about augments: %q", calls)
	}
	if got := e.device().Provides["rootfs-image.augtest.version"]; got != "aug-v0" {
		t.Fatalf("device provides rootfs-image.augtest.version = %q, want aug-v0", got)
	}
	mod.reset(t)

	res, err = e.m.Install(ctx, bytes.NewReader(writeModuleArtifact(t, "aug-v1", true)), deploy.Job{})
	if err != nil || res.Outcome != deploy.OutcomeSuccess {
		t.Fatalf("augmented install = %+v, %v", res, err)
	}
	calls := mod.callList(t)
	for _, want := range []string{"SupportsAugmentedArtifacts", "PermittedAugmentedHeaders", "Download", "ArtifactInstall", "ArtifactCommit", "Cleanup"} {
		if !slices.Contains(calls, want) {
			t.Errorf("module calls %q lack %s", calls, want)
		}
	}
	if i, j := slices.Index(calls, "PermittedAugmentedHeaders"), slices.Index(calls, "Download"); i < 0 || j < 0 || i > j {
		t.Errorf("module calls %q: the permission query must come before Download", calls)
	}
	md, err := os.ReadFile(filepath.Join(mod.seen, "header-augment", "meta-data"))
	if err != nil {
		t.Fatalf("the module saw no header-augment/meta-data in Download: %v", err)
	}
	if !strings.Contains(string(md), `"delta": "yes"`) {
		t.Errorf("header-augment/meta-data = %s, want the augment's meta-data", md)
	}
	ti, err := os.ReadFile(filepath.Join(mod.seen, "header-augment", "type-info"))
	if err != nil || !strings.Contains(string(ti), "rootfs-image.augtest.version") {
		t.Errorf("header-augment/type-info = %s, %v; want the augment's depends", ti, err)
	}
	if b, err := os.ReadFile(filepath.Join(mod.seen, "files", "payload")); err != nil || string(b) != "signed part\n" {
		t.Errorf("files/payload = %q, %v", b, err)
	}
	// The unsigned file is kept apart from the signed ones.
	if b, err := os.ReadFile(filepath.Join(mod.seen, "files-augment", "payload2")); err != nil || string(b) != "augmented part\n" {
		t.Errorf("files-augment/payload2 (the augmented file) = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(mod.seen, "files", "payload2")); !os.IsNotExist(err) {
		t.Errorf("files/payload2: %v; the augmented file must not be among the signed ones", err)
	}
	if dev := e.device(); dev.ArtifactName != "aug-v1" || dev.Provides["rootfs-image.augtest.version"] != "aug-v1" {
		t.Errorf("device = %+v, want aug-v1 with its provides", dev)
	}
}

// TestAugmentedArtifactModuleUnsupported: a module that does not answer
// SupportsAugmentedArtifacts with exactly the magic string refuses the
// Artifact before its Download runs.
func TestAugmentedArtifactModuleUnsupported(t *testing.T) {
	peertest.Require(t, "mender-artifact")
	data := writeModuleArtifact(t, "aug-v1", true)
	for _, tc := range []struct{ name, answer string }{
		{"no answer", ""},
		{"wrong answer", "Yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := newAugModule(t, tc.answer, permitAll)
			e := newEnv(t, envOptions{modules: mod.dir})
			seedDevice(t, e)
			res, err := e.m.Install(context.Background(), bytes.NewReader(data), deploy.Job{})
			if err != nil {
				t.Fatal(err)
			}
			want := "payload 0 (augtest): augmented artifact, but the update module does not support augmented artifacts"
			if res.Outcome != deploy.OutcomeFailure || !strings.Contains(res.Reason, want) {
				t.Errorf("result = %+v, want a failure with %q", res, want)
			}
			calls := mod.callList(t)
			if !slices.Contains(calls, "SupportsAugmentedArtifacts") {
				t.Errorf("module calls %q: SupportsAugmentedArtifacts was not asked", calls)
			}
			for _, never := range []string{"Download", "PermittedAugmentedHeaders", "ArtifactInstall"} {
				if slices.Contains(calls, never) {
					t.Errorf("module calls %q include %s", calls, never)
				}
			}
			if !slices.Contains(calls, "Cleanup") {
				t.Errorf("module calls %q: the failed download did not clean up", calls)
			}
			if _, err := os.Stat(filepath.Join(mod.seen, "header-augment")); err == nil {
				t.Error("the module's Download saw the augment")
			}
			if rec, _ := e.m.InFlight(); rec != nil {
				t.Errorf("record left behind: %+v", rec)
			}
			if dev := e.device(); dev.ArtifactName != "aug-v0" {
				t.Errorf("device = %+v, want aug-v0 unchanged", dev)
			}
		})
	}
}

// TestAugmentedArtifactFieldNotPermitted: a module that supports augmented
// Artifacts but does not permit a field the augment sets refuses the
// Artifact, naming the field, before its Download runs.
func TestAugmentedArtifactFieldNotPermitted(t *testing.T) {
	peertest.Require(t, "mender-artifact")
	data := writeModuleArtifact(t, "aug-v1", true)
	for _, tc := range []struct{ name, permitted, field string }{
		{"meta-data field", `{"type-info":{"artifact_depends":{"rootfs-image.augtest.version":true}},"meta-data":{"n":true}}`, "meta-data.delta"},
		{"depends key", `{"meta-data":{"delta":true,"n":true}}`, `type-info.artifact_depends."rootfs-image.augtest.version"`},
		{"list where a value is set", `{"type-info":{"artifact_depends":{"rootfs-image.augtest.version":[true]}},"meta-data":{"delta":true,"n":true}}`, `type-info.artifact_depends."rootfs-image.augtest.version"`},
		{"no answer", "", `type-info.artifact_depends."rootfs-image.augtest.version"`},
		{"invalid answer", `{"meta-data":{"delta":false}}`, "PermittedAugmentedHeaders answer: meta-data.delta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := newAugModule(t, "YesThisModuleSupportsAugmentedArtifacts", tc.permitted)
			e := newEnv(t, envOptions{modules: mod.dir})
			seedDevice(t, e)
			res, err := e.m.Install(context.Background(), bytes.NewReader(data), deploy.Job{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != deploy.OutcomeFailure || !strings.Contains(res.Reason, "payload 0 (augtest)") || !strings.Contains(res.Reason, tc.field) {
				t.Errorf("result = %+v, want a failure naming %s", res, tc.field)
			}
			calls := mod.callList(t)
			if !slices.Contains(calls, "PermittedAugmentedHeaders") {
				t.Errorf("module calls %q: PermittedAugmentedHeaders was not asked", calls)
			}
			for _, never := range []string{"Download", "ArtifactInstall"} {
				if slices.Contains(calls, never) {
					t.Errorf("module calls %q include %s", calls, never)
				}
			}
			if !slices.Contains(calls, "Cleanup") {
				t.Errorf("module calls %q: the failed download did not clean up", calls)
			}
			if rec, _ := e.m.InFlight(); rec != nil {
				t.Errorf("record left behind: %+v", rec)
			}
		})
	}
}

// TestAugmentedArtifactChangesType: an augment that changes the payload
// type is installed by the module of the new type only when that module
// lists the original type in ListSupportedOriginalTypes.
func TestAugmentedArtifactChangesType(t *testing.T) {
	peertest.Require(t, "mender-artifact")
	data := writeAugmentedArtifact(t, "aug-v1", "augtest-delta")
	for _, tc := range []struct {
		name, original string
		ok             bool
	}{
		{"original type listed", "other\n" + augType + "\n", true},
		{"original type not listed", "other\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := newAugModule(t, "YesThisModuleSupportsAugmentedArtifacts", permitAll)
			script, err := os.ReadFile(filepath.Join(mod.dir, augType))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mod.dir, "augtest-delta"), script, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(filepath.Dir(mod.calls), "original-types"), []byte(tc.original), 0o644); err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, envOptions{modules: mod.dir})
			seedDevice(t, e)
			res, err := e.m.Install(context.Background(), bytes.NewReader(data), deploy.Job{})
			if err != nil {
				t.Fatal(err)
			}
			calls := mod.callList(t)
			if !slices.Contains(calls, "ListSupportedOriginalTypes") {
				t.Errorf("module calls %q: ListSupportedOriginalTypes was not asked", calls)
			}
			if tc.ok {
				if res.Outcome != deploy.OutcomeSuccess || !slices.Contains(calls, "Download") {
					t.Errorf("result = %+v, calls %q; want success", res, calls)
				}
				if b, err := os.ReadFile(filepath.Join(mod.seen, "header-augment", "payload_type")); err != nil || string(b) != "augtest-delta" {
					t.Errorf("header-augment/payload_type = %q, %v", b, err)
				}
				return
			}
			want := "payload 0 (augtest-delta): augmented artifact changes the payload type from \"augtest\""
			if res.Outcome != deploy.OutcomeFailure || !strings.Contains(res.Reason, want) {
				t.Errorf("result = %+v, want a failure with %q", res, want)
			}
			if slices.Contains(calls, "Download") || slices.Contains(calls, "PermittedAugmentedHeaders") {
				t.Errorf("module calls %q go past the type check", calls)
			}
		})
	}
}
