package selfupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A trial start guards the first start of a new binary against a binary
// that never gets far enough to roll itself back (it exits, crashes or
// hangs before the agent is ready). ArtifactReboot writes a marker next to
// the binary; the process about to re-execute (the old binary, still
// running) finds it and starts a guard from its own executable image
// before exec. The guard holds the read end of a pipe whose write end the
// new process inherits: the new process writes "ready" once every
// component runs. End of file first (the process ended) or no word within
// the deadline (the guard kills it) makes the guard put the previous binary
// back, record why in the payload's tree, and start the old binary (or
// leave that to systemd's Restart=). The restarted old agent resumes the
// update at ArtifactVerifyReboot, finds the record and fails the
// deployment with its reason: nothing here depends on the new binary
// running at all.

const (
	// failureName is the guard's record in the payload's tree.
	failureName = "trial-failure.json"
	// TrialGrace is added to the health timeout for the guard's deadline:
	// a new binary that runs but stays unready is rolled back by its own
	// update state machine at the health timeout; the guard steps in only
	// when that did not happen.
	TrialGrace = 10 * time.Second
)

// Trial is the marker ArtifactReboot writes: what a guard needs to put the
// previous binary back.
type Trial struct {
	Binary   string        `json:"binary"`
	Tree     string        `json:"tree"`
	Deadline time.Duration `json:"deadline_ns"`
}

// TrialMarker is the path of the marker for binary.
func TrialMarker(binary string) string {
	dir, base := filepath.Split(binary)
	return filepath.Join(dir, "."+base+".trial")
}

// LoadTrial reads the marker for binary; nil and no error when there is
// none (no new binary awaits its first start).
func LoadTrial(binary string) (*Trial, error) {
	path := TrialMarker(binary)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the self-update trial marker: %w", err)
	}
	var t Trial
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("read the self-update trial marker %s: %w", path, err)
	}
	if t.Binary != binary || t.Tree == "" || t.Deadline <= 0 {
		return nil, fmt.Errorf("self-update trial marker %s: binary %q, tree %q, deadline %v: want binary %q, a tree and a positive deadline", path, t.Binary, t.Tree, t.Deadline, binary)
	}
	return &t, nil
}

// writeTrial records that the next start of the binary is a trial.
func (c *config) writeTrial(tree string) error {
	b, err := json.Marshal(Trial{Binary: c.Binary, Tree: tree, Deadline: c.HealthTimeout + TrialGrace})
	if err != nil {
		return err
	}
	if _, err := removeIfExists(filepath.Join(tree, failureName)); err != nil {
		return fmt.Errorf("remove an old trial record: %w", err)
	}
	if err := writeFileAtomic(TrialMarker(c.Binary), append(b, '\n')); err != nil {
		return fmt.Errorf("write the self-update trial marker: %w", err)
	}
	return nil
}

// dropTrial removes the marker: the trial is over (committed, rolled back
// or cleaned up).
func (c *config) dropTrial() error {
	if _, err := removeIfExists(TrialMarker(c.Binary)); err != nil {
		return fmt.Errorf("remove the self-update trial marker: %w", err)
	}
	return nil
}

// trialFailure is what a guard records in the tree.
type trialFailure struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// trialFailed returns the reason a guard recorded, or "".
func trialFailed(tree string) string {
	b, err := os.ReadFile(filepath.Join(tree, failureName))
	if err != nil {
		return ""
	}
	var f trialFailure
	if json.Unmarshal(b, &f) != nil || f.Reason == "" {
		return "a guard recorded a failed trial start (unreadable record)"
	}
	return f.Reason
}
