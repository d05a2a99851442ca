package deploy

import (
	"fmt"
	"maps"
	"time"

	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/module"
)

// Step is a state of the update state machine, persisted before its
// action runs. The names are the Mender client's states.
type Step string

const (
	StepDownload             Step = "Download"
	StepInstall              Step = "ArtifactInstall"
	StepReboot               Step = "ArtifactReboot"
	StepVerifyReboot         Step = "ArtifactVerifyReboot"
	StepCommit               Step = "ArtifactCommit"
	StepAfterCommit          Step = "AfterCommit"
	StepRollback             Step = "ArtifactRollback"
	StepRollbackReboot       Step = "ArtifactRollbackReboot"
	StepRollbackVerifyReboot Step = "ArtifactRollbackVerifyReboot"
	StepFailure              Step = "ArtifactFailure"
	StepCleanup              Step = "Cleanup"
	StepReport               Step = "StatusReport"
	// StepAwaitCommit is where a standalone install (edgefort update
	// install) stops: installed, waiting for `edgefort update commit` or
	// `rollback`. Mender's standalone mode does the same.
	StepAwaitCommit Step = "AwaitCommit"
	stepDone        Step = ""
)

// Outcome is how a deployment ended, or is going to end.
type Outcome string

const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	// OutcomeAborted: the server aborted the deployment (409); nothing is
	// reported at the end, the server already knows.
	OutcomeAborted Outcome = "aborted"
	// OutcomeInstalled: a standalone install waits for commit.
	OutcomeInstalled Outcome = "installed"
	// OutcomeAlreadyInstalled: the device already runs the Artifact.
	OutcomeAlreadyInstalled Outcome = "already-installed"
)

// PayloadState is what the machine remembers about one payload.
type PayloadState struct {
	Index int    `json:"index"`
	Type  string `json:"type"`
	Tree  string `json:"tree"`
	// SupportsRollback is the module's answer after Download.
	SupportsRollback bool `json:"supports_rollback"`
	// Reboot is the module's NeedsArtifactReboot answer after install.
	Reboot module.Reboot `json:"reboot"`
}

func (p PayloadState) payload() module.Payload {
	return module.Payload{Index: p.Index, Type: p.Type, Tree: p.Tree}
}

// Record is the deployment in flight, stored under recordKey. It holds
// everything a restarted process needs to carry on.
type Record struct {
	// DeploymentID is the server's deployment; empty for a standalone
	// install, which reports nowhere.
	DeploymentID string `json:"deployment_id,omitempty"`
	// ArtifactName is the new Artifact's and ArtifactGroup the group the
	// device has once it commits (the Artifact's, or the device's own when
	// the Artifact names none and does not clear it), known once the
	// header has been read.
	ArtifactName  string `json:"artifact_name,omitempty"`
	ArtifactGroup string `json:"artifact_group,omitempty"`
	// NewProvides is what the device provides once this Artifact commits.
	NewProvides artifact.Provides `json:"new_provides,omitempty"`
	Payloads    []PayloadState    `json:"payloads,omitempty"`
	Standalone  bool              `json:"standalone,omitempty"`

	Step    Step    `json:"step"`
	Outcome Outcome `json:"outcome,omitempty"`
	// Reason says why the deployment failed; it is the last line of the
	// uploaded log.
	Reason string `json:"reason,omitempty"`
	// Installed: ArtifactInstall has been called on at least one payload,
	// so a failure from here on needs a rollback.
	Installed bool `json:"installed,omitempty"`
	// Broken: a rollback was impossible or failed; the device reports
	// <name>_INCONSISTENT.
	Broken bool `json:"broken,omitempty"`
	// RolledBack: every payload was rolled back; the device runs what it
	// ran before.
	RolledBack bool `json:"rolled_back,omitempty"`
	// OperatorRollback: the rollback was asked for (`update rollback`),
	// not caused by a failure. As in Mender, a successful one goes from
	// ArtifactRollback straight to Cleanup, with no ArtifactFailure.
	OperatorRollback bool `json:"operator_rollback,omitempty"`
	// Writes counts the times the record was written. Past maxWrites the
	// machine forces its way to the end, so that a node that keeps
	// crashing in one step cannot loop forever (Mender's state-loop guard).
	Writes int `json:"writes"`
	// Forced: the write guard fired and chose the way to the end.
	Forced  bool      `json:"forced,omitempty"`
	Started time.Time `json:"started"`
	// Log is the deployment log, uploaded to the server on failure.
	Log []updater.LogEntry `json:"log,omitempty"`
}

// Device is what the node currently runs, stored under deviceKey.
type Device struct {
	ArtifactName  string            `json:"artifact_name"`
	ArtifactGroup string            `json:"artifact_group,omitempty"`
	Provides      artifact.Provides `json:"provides,omitempty"`
}

// provides returns the full provides map dependency checks see.
func (d Device) provides() artifact.Provides {
	p := maps.Clone(d.Provides)
	if p == nil {
		p = artifact.Provides{}
	}
	p[artifact.ProvidesName] = d.ArtifactName
	if d.ArtifactGroup != "" {
		p[artifact.ProvidesGroup] = d.ArtifactGroup
	} else {
		delete(p, artifact.ProvidesGroup)
	}
	return p
}

// extraProvides returns the provides other than name and group, as the
// deployments API wants them.
func (d Device) extraProvides() map[string]string {
	p := maps.Clone(map[string]string(d.Provides))
	if p == nil {
		p = map[string]string{}
	}
	delete(p, artifact.ProvidesName)
	if d.ArtifactGroup != "" {
		p[artifact.ProvidesGroup] = d.ArtifactGroup
	}
	return p
}

const (
	bucketName = "updates"
	recordKey  = "inflight"
	deviceKey  = "device"

	// UnknownArtifact is the name reported before any Artifact was
	// installed, as the Mender client does.
	UnknownArtifact = "unknown"
	// inconsistentSuffix marks a device whose rollback failed.
	inconsistentSuffix = "_INCONSISTENT"

	// maxWrites is Mender's state-loop guard.
	maxWrites = 30
	// maxLogEntries bounds the deployment log kept in the record.
	maxLogEntries = 200
)

func loadRecord(db *store.DB) (*Record, error) {
	rec, found, err := store.Get[Record](db.Bucket(bucketName), recordKey)
	if err != nil {
		return nil, fmt.Errorf("deploy: read the deployment in progress: %w", err)
	}
	if !found {
		return nil, nil
	}
	return &rec, nil
}

func loadDevice(db *store.DB) (Device, error) {
	d, found, err := store.Get[Device](db.Bucket(bucketName), deviceKey)
	if err != nil {
		return Device{}, fmt.Errorf("deploy: read the installed artifact: %w", err)
	}
	if !found || d.ArtifactName == "" {
		d.ArtifactName = UnknownArtifact
	}
	return d, nil
}
