package selfupdate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/module"
)

func TestForwardPath(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()

	e.download(newAgent)
	wantFile(t, e.newPath(), newAgent)
	fi, err := os.Stat(e.newPath())
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o755 {
		t.Errorf(".new mode = %v, want 0755", got)
	}
	for q, want := range map[string]string{
		module.QuerySupportsRollback:    "Yes",
		module.QueryNeedsArtifactReboot: "Yes",
	} {
		if got, err := e.ins.Query(ctx, e.p, q); err != nil || got != want {
			t.Errorf("Query(%s) = %q, %v; want %q", q, got, err, want)
		}
	}

	e.call(module.StateArtifactInstall)
	wantFile(t, e.binary(), newAgent)
	wantFile(t, e.prevPath(), oldAgent)
	wantMissing(t, e.newPath())

	if err := e.ins.Call(ctx, e.p, module.StateArtifactReboot); !errors.Is(err, module.ErrRestartAgent) {
		t.Fatalf("ArtifactReboot = %v, want ErrRestartAgent", err)
	}
	e.setRunning(newAgent) // the agent re-executed the binary
	e.call(module.StateArtifactVerifyReboot)
	e.call(module.StateArtifactCommit)
	e.call(module.StateCleanup)

	wantFile(t, e.binary(), newAgent)
	wantMissing(t, e.prevPath())
	wantMissing(t, e.newPath())
	entries, err := os.ReadDir(filepath.Dir(e.binary()))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, de := range entries {
			names = append(names, de.Name())
		}
		t.Errorf("binary directory holds %q, want only edgefort", names)
	}
	logs := e.logs.String()
	for _, want := range []string{"stored new agent binary", "passed its preflight", "installed new agent binary", "running and ready", "committed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestRollbackAfterInstall(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.download(newAgent)
	e.call(module.StateArtifactInstall)

	// The new version failed its verify in the restarted agent.
	e.setRunning(newAgent)
	e.call(module.StateArtifactRollback)
	wantFile(t, e.binary(), oldAgent)
	wantMissing(t, e.prevPath())
	e.call(module.StateArtifactRollback) // idempotent
	wantFile(t, e.binary(), oldAgent)

	if err := e.ins.Call(ctx, e.p, module.StateArtifactRollbackReboot); !errors.Is(err, module.ErrRestartAgent) {
		t.Fatalf("ArtifactRollbackReboot with the new binary running = %v, want ErrRestartAgent", err)
	}
	err := e.ins.Call(ctx, e.p, module.StateArtifactRollbackVerifyReboot)
	errContains(t, err, "running executable check")

	e.setRunning(oldAgent) // restarted on the old binary
	e.call(module.StateArtifactRollbackVerifyReboot)
	e.call(module.StateArtifactFailure)
	e.call(module.StateCleanup)
	wantFile(t, e.binary(), oldAgent)
	wantMissing(t, e.newPath())
}

func TestRollbackBeforeRestart(t *testing.T) {
	// Install succeeded but the update failed before the agent restarted:
	// the old binary still runs, so no restart is needed.
	e := newTestEnv(t)
	e.download(newAgent)
	e.call(module.StateArtifactInstall)
	e.call(module.StateArtifactRollback)
	wantFile(t, e.binary(), oldAgent)
	e.call(module.StateArtifactRollbackReboot) // nil: no restart
	e.call(module.StateArtifactRollbackVerifyReboot)
}

func TestRollbackErrors(t *testing.T) {
	t.Run("previous missing and binary changed", func(t *testing.T) {
		e := newTestEnv(t)
		e.download(newAgent)
		e.call(module.StateArtifactInstall)
		if err := os.Remove(e.prevPath()); err != nil {
			t.Fatal(err)
		}
		err := e.ins.Call(context.Background(), e.p, module.StateArtifactRollback)
		errContains(t, err, "ArtifactRollback", "cannot roll back", ".previous is missing")
		wantFile(t, e.binary(), newAgent)
	})
	t.Run("previous corrupt", func(t *testing.T) {
		e := newTestEnv(t)
		e.download(newAgent)
		e.call(module.StateArtifactInstall)
		if err := os.Remove(e.prevPath()); err != nil { // a link to nothing else now
			t.Fatal(err)
		}
		if err := os.WriteFile(e.prevPath(), garbage, 0o755); err != nil {
			t.Fatal(err)
		}
		err := e.ins.Call(context.Background(), e.p, module.StateArtifactRollback)
		errContains(t, err, "cannot roll back", "want the old")
		wantFile(t, e.binary(), newAgent)
	})
	t.Run("verify after a failed rollback", func(t *testing.T) {
		e := newTestEnv(t)
		e.download(newAgent)
		e.call(module.StateArtifactInstall)
		err := e.ins.Call(context.Background(), e.p, module.StateArtifactRollbackVerifyReboot)
		errContains(t, err, "binary check", "want the old")
	})
	t.Run("nothing installed", func(t *testing.T) {
		e := newTestEnv(t)
		e.download(newAgent)
		e.call(module.StateArtifactRollback)
		e.call(module.StateArtifactRollbackReboot)
		e.call(module.StateArtifactRollbackVerifyReboot)
		wantFile(t, e.binary(), oldAgent)
	})
}

func TestInstallRefusesBadBinaries(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
		want    []string
	}{
		{"exits 1", badAgent, []string{"preflight", "exit status 1", "illegal instruction"}},
		{"not edgefort", notAgent, []string{"preflight", `does not start with "edgefort "`, "BusyBox"}},
		{"garbage", garbage, []string{"preflight", "exec format error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.download(tt.content)
			err := e.ins.Call(context.Background(), e.p, module.StateArtifactInstall)
			errContains(t, err, tt.want...)
			wantFile(t, e.binary(), oldAgent)
			wantMissing(t, e.prevPath())
			e.call(module.StateArtifactRollback) // nothing to undo
			e.call(module.StateCleanup)
			wantMissing(t, e.newPath())
			wantFile(t, e.binary(), oldAgent)
		})
	}
}

func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte // nil: no file
		want    string // error substring; empty: success
	}{
		{"edgefort", newAgent, ""},
		{"exits 1", badAgent, "exit status 1"},
		{"other program", notAgent, "does not start with"},
		{"garbage", garbage, "exec format error"},
		{"empty output", []byte("#!/bin/sh\nexit 0\n"), "(no output)"},
		{"missing", nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.content != nil {
				if err := os.WriteFile(path, tt.content, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			first, err := preflight(context.Background(), path)
			if tt.want == "" {
				if err != nil || first != "edgefort 9.9.9" {
					t.Fatalf("preflight = %q, %v; want edgefort 9.9.9", first, err)
				}
				return
			}
			errContains(t, err, tt.want)
		})
	}
}

func TestInstallResumesAfterCrash(t *testing.T) {
	tests := []struct {
		name  string
		crash func(t *testing.T, e *testEnv) // leaves the files as a crash would
	}{
		{"before anything", func(t *testing.T, e *testEnv) {}},
		{"after recording the old hash", func(t *testing.T, e *testEnv) {
			st, err := loadState(e.p.Tree)
			if err != nil {
				t.Fatal(err)
			}
			st.Old = sha256Hex(oldAgent)
			if err := saveState(e.p.Tree, st); err != nil {
				t.Fatal(err)
			}
		}},
		{"half-built previous", func(t *testing.T, e *testEnv) {
			tmp := filepath.Join(filepath.Dir(e.binary()), ".edgefort.previous.tmp")
			if err := os.WriteFile(tmp, oldAgent[:5], 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"after linking previous", func(t *testing.T, e *testEnv) {
			if err := os.Link(e.binary(), e.prevPath()); err != nil {
				t.Fatal(err)
			}
		}},
		{"stale previous from another update", func(t *testing.T, e *testEnv) {
			if err := os.WriteFile(e.prevPath(), []byte("older"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the rename", func(t *testing.T, e *testEnv) {
			e.call(module.StateArtifactInstall)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.download(newAgent)
			tt.crash(t, e)
			e.call(module.StateArtifactInstall)
			wantFile(t, e.binary(), newAgent)
			wantFile(t, e.prevPath(), oldAgent)
			wantMissing(t, e.newPath())

			// Both ways out still work.
			e.call(module.StateArtifactRollback)
			wantFile(t, e.binary(), oldAgent)
			wantMissing(t, e.prevPath())
		})
	}
}

func TestRollbackAfterCrashMidInstall(t *testing.T) {
	// Install linked .previous and stopped before the rename: rollback must
	// not leave both names behind (rename between links of one file is a
	// no-op).
	e := newTestEnv(t)
	e.download(newAgent)
	st, err := loadState(e.p.Tree)
	if err != nil {
		t.Fatal(err)
	}
	st.Old = sha256Hex(oldAgent)
	if err := saveState(e.p.Tree, st); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(e.binary(), e.prevPath()); err != nil {
		t.Fatal(err)
	}
	e.call(module.StateArtifactRollback)
	wantFile(t, e.binary(), oldAgent)
	wantMissing(t, e.prevPath())
	e.call(module.StateCleanup)
	wantMissing(t, e.newPath())
}

func TestInstallCopiesWhenLinkFails(t *testing.T) {
	e := newTestEnv(t)
	e.ins.link = func(string, string) error { return errors.New("fake: cross-device link") }
	e.download(newAgent)
	e.call(module.StateArtifactInstall)
	wantFile(t, e.binary(), newAgent)
	wantFile(t, e.prevPath(), oldAgent)
	fi, err := os.Stat(e.prevPath())
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o755 {
		t.Errorf(".previous mode = %v, want 0755", got)
	}
	e.call(module.StateArtifactInstall) // re-run recognises the copy
	e.call(module.StateArtifactRollback)
	wantFile(t, e.binary(), oldAgent)
	if !strings.Contains(e.logs.String(), "how=copied") {
		t.Errorf("logs do not say the previous binary was copied:\n%s", e.logs)
	}
}

func TestInstallErrors(t *testing.T) {
	t.Run("no download", func(t *testing.T) {
		e := newTestEnv(t)
		err := e.ins.Call(context.Background(), e.p, module.StateArtifactInstall)
		errContains(t, err, "no downloaded binary recorded")
	})
	t.Run("new file missing", func(t *testing.T) {
		e := newTestEnv(t)
		e.download(newAgent)
		if err := os.Remove(e.newPath()); err != nil {
			t.Fatal(err)
		}
		err := e.ins.Call(context.Background(), e.p, module.StateArtifactInstall)
		errContains(t, err, ".edgefort.new is missing")
	})
	t.Run("new file changed", func(t *testing.T) {
		e := newTestEnv(t)
		e.download(newAgent)
		if err := os.WriteFile(e.newPath(), notAgent, 0o755); err != nil {
			t.Fatal(err)
		}
		err := e.ins.Call(context.Background(), e.p, module.StateArtifactInstall)
		errContains(t, err, "the download recorded")
		wantFile(t, e.binary(), oldAgent)
	})
	t.Run("binary moved", func(t *testing.T) {
		e := newTestEnv(t)
		e.download(newAgent)
		e.ins.Binary = filepath.Join(e.dir, "elsewhere", "edgefort")
		err := e.ins.Call(context.Background(), e.p, module.StateArtifactInstall)
		errContains(t, err, "downloaded for")
	})
}

func TestVerifyReboot(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(e *testEnv)
		ctx     func() context.Context
		want    []string // empty: success
		maxTime time.Duration
	}{
		{name: "ok", setup: func(e *testEnv) {}},
		{name: "ready after retries", setup: func(e *testEnv) {
			n := 0
			e.ins.Ready = func(context.Context) error {
				if n++; n < 3 {
					return errors.New("mqtt not connected")
				}
				return nil
			}
		}},
		{name: "ready times out", setup: func(e *testEnv) {
			e.ins.HealthTimeout = 100 * time.Millisecond
			e.ins.Ready = func(ctx context.Context) error {
				<-ctx.Done()
				return errors.New("waiting for clientapi: " + ctx.Err().Error())
			}
		}, want: []string{"readiness check", "not become ready within 100ms", "waiting for clientapi"}, maxTime: 2 * time.Second},
		{name: "ready keeps failing", setup: func(e *testEnv) {
			e.ins.HealthTimeout = 100 * time.Millisecond
			e.ins.Ready = func(context.Context) error { return errors.New("mqtt not connected") }
		}, want: []string{"readiness check", "within 100ms", "mqtt not connected"}, maxTime: 2 * time.Second},
		{name: "binary differs", setup: func(e *testEnv) {
			if err := os.WriteFile(e.binary(), notAgent, 0o755); err != nil {
				e.t.Fatal(err)
			}
		}, want: []string{"binary check", "want the new"}},
		{name: "old binary still running", setup: func(e *testEnv) {
			e.setRunning(oldAgent)
		}, want: []string{"running executable check", "running executable differs"}},
		{name: "context cancelled", setup: func(e *testEnv) {
			e.ins.Ready = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		}, ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx
		}, want: []string{"readiness check", "context canceled"}},
		{name: "no ready func", setup: func(e *testEnv) { e.ins.Ready = nil }, want: []string{"no readiness check"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.download(newAgent)
			e.call(module.StateArtifactInstall)
			e.setRunning(newAgent)
			tt.setup(e)
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			start := time.Now()
			err := e.ins.Call(ctx, e.p, module.StateArtifactVerifyReboot)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("ArtifactVerifyReboot: %v", err)
				}
				return
			}
			errContains(t, err, tt.want...)
			if tt.maxTime > 0 && time.Since(start) > tt.maxTime {
				t.Errorf("took %v, want under %v", time.Since(start), tt.maxTime)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(ins *Installer, p *module.Payload)
		want   string
	}{
		{"no binary", func(ins *Installer, p *module.Payload) { ins.Binary = "" }, "no binary path"},
		{"relative binary", func(ins *Installer, p *module.Payload) { ins.Binary = "bin/edgefort" }, "not absolute"},
		{"negative timeout", func(ins *Installer, p *module.Payload) { ins.HealthTimeout = -time.Second }, "negative health timeout"},
		{"wrong type", func(ins *Installer, p *module.Payload) { p.Type = "single-file" }, `type "single-file"`},
		{"no tree", func(ins *Installer, p *module.Payload) { p.Tree = "" }, "no tree"},
		{"no ready", func(ins *Installer, p *module.Payload) { ins.Ready = nil }, "no readiness check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			p := e.p
			tt.modify(e.ins, &p)
			_, err := e.ins.Download(context.Background(), p)
			errContains(t, err, tt.want)
		})
	}
}

func TestUnknownStatesAndQueries(t *testing.T) {
	e := newTestEnv(t)
	for _, state := range []string{module.StateArtifactFailure, "SomethingNew"} {
		e.call(state)
	}
	if got, err := e.ins.Query(context.Background(), e.p, module.QuerySupportsAugmentedArtifacts); got != "" || err != nil {
		t.Errorf("Query(SupportsAugmentedArtifacts) = %q, %v; want empty", got, err)
	}
}
