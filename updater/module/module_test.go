package module

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLookup(t *testing.T) {
	r := newTestRunner(t)
	if err := os.WriteFile(filepath.Join(r.Dir, "plain"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(r.Dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		typ     string
		wantErr string // substring; "" = success
	}{
		{"found", "streamer", ""},
		{"missing", "nope", filepath.Join(r.Dir, "nope")},
		{"not executable", "plain", filepath.Join(r.Dir, "plain") + " is not an executable file"},
		{"directory", "adir", "is not an executable file"},
		{"empty", "", "not a valid type name"},
		{"dot", ".", "not a valid type name"},
		{"dotdot", "..", "not a valid type name"},
		{"slash", "../streamer", "not a valid type name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Lookup(tt.typ)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Lookup(%q): %v", tt.typ, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Lookup(%q) error = %v, want it to contain %q", tt.typ, err, tt.wantErr)
			}
		})
	}
	if _, err := (&Runner{}).Lookup("streamer"); err == nil {
		t.Error("Lookup without Dir succeeded")
	}
}

func TestCall(t *testing.T) {
	r := newTestRunner(t)
	tests := []struct {
		name    string
		typ     string
		state   string
		wantErr string // exact error text; "" = success
	}{
		{"success", "streamer", StateArtifactInstall, ""},
		{"unknown state", "answerer", StateArtifactCommit, ""},
		{"failure with stderr", "failer", StateArtifactInstall, "update module failer: ArtifactInstall: exit status 1: first line\nboom: disk on fire"},
		{"download refused", "streamer", StateDownload, "update module streamer: Download: use Download for the Download state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTree(t, tt.typ)
			err := lookup(t, r, tt.typ).Call(t.Context(), p, tt.state)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Call: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Call error = %q, want %q", err, tt.wantErr)
			}
			var me *Error
			if !errors.As(err, &me) || me.Module != tt.typ || me.State != tt.state {
				t.Errorf("Call error %#v is not an *Error for %s/%s", err, tt.typ, tt.state)
			}
		})
	}
}

func TestCallStderrTruncated(t *testing.T) {
	r := newTestRunner(t)
	body := "#!/bin/sh\nhead -c 50000 /dev/zero | tr '\\0' x >&2\necho END >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(r.Dir, "noisy"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	err := lookup(t, r, "noisy").Call(t.Context(), newTree(t, "noisy"), StateArtifactInstall)
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("Call error = %v, want *Error", err)
	}
	if len(me.Stderr) > maxStderr+3 || !strings.HasPrefix(me.Stderr, "...") || !strings.HasSuffix(me.Stderr, "END\n") {
		t.Errorf("stderr: %d bytes, starts %q, ends %q; want the last %d bytes", len(me.Stderr), me.Stderr[:5], me.Stderr[len(me.Stderr)-5:], maxStderr)
	}
}

// TestCallKilled checks that a timed-out or cancelled call kills the
// module's whole process group, including a background child.
func TestCallKilled(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		cancel  bool // cancel the context instead of timing out
		wantErr error
	}{
		{"timeout, SIGTERM", "sleeper", false, ErrTimeout},
		{"timeout, SIGTERM ignored", "hanger", false, ErrTimeout},
		{"cancelled", "sleeper", true, context.Canceled},
		{"cancelled, SIGTERM ignored", "hanger", true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			r := newTestRunner(t)
			r.Timeout = 300 * time.Millisecond
			ctx := t.Context()
			if tt.cancel {
				r.Timeout = time.Minute
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				time.AfterFunc(300*time.Millisecond, cancel)
			}
			p := newTree(t, tt.typ)
			start := time.Now()
			err := lookup(t, r, tt.typ).Call(ctx, p, StateArtifactInstall)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Call error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrTimeout && !strings.Contains(err.Error(), "timed out after 300ms") {
				t.Errorf("Call error = %q, want it to say it timed out after 300ms", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Call took %v", d)
			}
			waitGone(t, filepath.Join(p.Tree, "child.pid"))
			checkGoroutines(t, before)
		})
	}
}

func TestQuery(t *testing.T) {
	r := newTestRunner(t)
	inst := lookup(t, r, "answerer")
	p := newTree(t, "answerer")
	tests := []struct {
		query   string
		want    string
		wantErr string
	}{
		{QuerySupportsRollback, "Yes", ""},
		{QueryNeedsArtifactReboot, "Automatic", ""},
		{QueryPermittedAugmentedHeaders, `{"header-info":{"artifact_depends":{"device_type":[true]}}}`, ""},
		{"Bogus", "Maybe", ""},
		{QuerySupportsAugmentedArtifacts, "", ""},
		{"Huge", "", "answer is longer than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got, err := inst.Query(t.Context(), p, tt.query)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query(%s) error = %v, want %q", tt.query, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Query(%s): %v", tt.query, err)
			}
			if got != tt.want {
				t.Errorf("Query(%s) = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
	if _, err := lookup(t, r, "failer").Query(t.Context(), p, "ArtifactInstall"); err == nil {
		t.Error("Query of a failing module succeeded")
	}
}

func TestParseSupportsRollback(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{"Yes", true, false},
		{"No", false, false},
		{"", false, false},
		{"yes", false, true},
		{"AutomaticDualRootfs", false, true},
	}
	for _, tt := range tests {
		got, err := ParseSupportsRollback(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseSupportsRollback(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("ParseSupportsRollback(%q) error %q does not name the answer", tt.in, err)
		}
	}
}

func TestParseNeedsReboot(t *testing.T) {
	tests := []struct {
		in      string
		want    Reboot
		wantErr bool
	}{
		{"No", RebootNo, false},
		{"", RebootNo, false},
		{"Yes", RebootYes, false},
		{"Automatic", RebootAutomatic, false},
		{"automatic", RebootNo, true},
		{"Yes please", RebootNo, true},
	}
	for _, tt := range tests {
		got, err := ParseNeedsReboot(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseNeedsReboot(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("ParseNeedsReboot(%q) error %q does not name the answer", tt.in, err)
		}
	}
}
