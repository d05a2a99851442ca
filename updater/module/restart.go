package module

import "errors"

// ErrRestartAgent is returned by a built-in installer's ArtifactReboot or
// ArtifactRollbackReboot when the step is done by restarting the agent
// itself (the edgefort-agent self-update). The state machine has already
// persisted the step, so it stops and hands the error up: the agent shuts
// down cleanly and re-executes its binary, and the next process resumes at
// the verify step.
var ErrRestartAgent = errors.New("update needs the agent to restart")
