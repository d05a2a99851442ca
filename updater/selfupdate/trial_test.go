package selfupdate

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/module"
)

// installed brings e to the point where the agent is about to re-execute
// into the new binary: downloaded, installed, ArtifactReboot called.
func installed(t *testing.T, e *testEnv) *Trial {
	t.Helper()
	e.download(newAgent)
	e.call(module.StateArtifactInstall)
	if err := e.ins.Call(context.Background(), e.p, module.StateArtifactReboot); !errors.Is(err, module.ErrRestartAgent) {
		t.Fatalf("ArtifactReboot = %v, want ErrRestartAgent", err)
	}
	tr, err := LoadTrial(e.binary())
	if err != nil || tr == nil {
		t.Fatalf("LoadTrial after ArtifactReboot = %v, %v", tr, err)
	}
	if tr.Tree != e.p.Tree || tr.Deadline != e.ins.HealthTimeout+TrialGrace {
		t.Errorf("trial %+v, want tree %s and deadline %v", tr, e.p.Tree, e.ins.HealthTimeout+TrialGrace)
	}
	return tr
}

// TestTrialMarkerLifecycle: ArtifactReboot marks the binary's next start
// as a trial; commit, rollback and cleanup each end it.
func TestTrialMarkerLifecycle(t *testing.T) {
	for _, end := range []string{module.StateArtifactCommit, module.StateArtifactRollback, module.StateCleanup} {
		t.Run(end, func(t *testing.T) {
			e := newTestEnv(t)
			installed(t, e)
			e.call(end)
			wantMissing(t, TrialMarker(e.binary()))
			if tr, err := LoadTrial(e.binary()); tr != nil || err != nil {
				t.Errorf("LoadTrial = %+v, %v; want none", tr, err)
			}
		})
	}
}

func TestLoadTrialRejectsBadMarker(t *testing.T) {
	e := newTestEnv(t)
	for _, body := range []string{"{", `{"binary":"/elsewhere","tree":"/t","deadline_ns":1}`, `{"binary":"` + e.binary() + `","tree":"","deadline_ns":1}`, `{"binary":"` + e.binary() + `","tree":"/t","deadline_ns":0}`} {
		if err := os.WriteFile(TrialMarker(e.binary()), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := LoadTrial(e.binary())
		if err == nil || !strings.Contains(err.Error(), TrialMarker(e.binary())) {
			t.Errorf("LoadTrial(%s) = %+v, %v; want an error naming the marker", body, tr, err)
		}
	}
}

// TestGuard: the guard's three outcomes on a real pipe. Ready leaves the
// new binary in place; end of file and the deadline put the previous one
// back and record why, which the restarted old agent's
// ArtifactVerifyReboot turns into the deployment's failure.
func TestGuard(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writer func(w *os.File) // what the tried process does with its end
		ready  bool
		reason string
	}{
		{"ready", func(w *os.File) { w.WriteString(ReadyWord); w.Close() }, true, ""},
		{"ended", func(w *os.File) { w.Close() }, false, "ended before it was ready"},
		{"garbled then ended", func(w *os.File) { w.WriteString("rea"); w.Close() }, false, "ended before it was ready"},
		{"hung", nil, false, "was not ready within 50ms; killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			tr := installed(t, e)
			tr.Deadline = 50 * time.Millisecond
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			if tc.writer != nil {
				tc.writer(w)
			}
			// PID is not the guard's parent here: nothing is killed.
			g := &Guard{Trial: tr, Ready: r, PID: os.Getpid(), Logger: e.ins.Logger}
			res, err := g.Run()
			if err != nil {
				t.Fatal(err)
			}
			if res.Ready != tc.ready || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("Run = %+v, want ready %v, reason with %q", res, tc.ready, tc.reason)
			}
			if tc.ready {
				wantFile(t, e.binary(), newAgent)
				wantFile(t, e.prevPath(), oldAgent)
				return
			}
			wantFile(t, e.binary(), oldAgent)
			wantMissing(t, e.prevPath())
			wantMissing(t, TrialMarker(e.binary()))

			// The old agent restarts and resumes the update.
			err = e.ins.Call(context.Background(), e.p, module.StateArtifactVerifyReboot)
			if err == nil || !strings.Contains(err.Error(), "trial start: "+res.Reason) {
				t.Fatalf("ArtifactVerifyReboot = %v, want the guard's reason", err)
			}
			e.call(module.StateArtifactRollback)
			if err := e.ins.Call(context.Background(), e.p, module.StateArtifactRollbackReboot); err != nil {
				t.Fatalf("ArtifactRollbackReboot = %v, want nil (the old binary runs)", err)
			}
			e.call(module.StateArtifactRollbackVerifyReboot)
			wantFile(t, e.binary(), oldAgent)
		})
	}
}
