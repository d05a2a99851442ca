// Package deploy owns the update state machine: it takes one Mender
// Artifact from a stream through Download, ArtifactInstall, the reboot and
// verify steps, ArtifactCommit and Cleanup, or through ArtifactRollback and
// ArtifactFailure (after a failure; a rollback the operator asks for goes
// from ArtifactRollback to Cleanup), driving update modules (package
// module) and state scripts (package scripts) exactly as the Mender client
// does. mender_interop_linux_test.go runs the same Artifacts through the
// Mender client 3.4 and compares the calls.
//
// Every step is written to the state store before its action runs, so a
// crash or power loss at any point resumes where the Mender client would
// (see Resume): an interrupted download is cleaned up and reported as a
// failure, an interrupted install or commit is rolled back, an expected
// reboot goes on to verification. The device's provides (artifact_name,
// artifact_group and the type-info provides) change in the same
// transaction that records the commit, so the node reports either the old
// Artifact or the new one, never a mix.
//
// Files: record.go (what is persisted), machine.go (Machine, Install and
// the step loop), steps.go (one method per step), resume.go (the restart
// table and the standalone commit/rollback), report.go (status reports and
// the deployment log), poller.go (the loop that asks the server for
// deployments and sends inventory), config.go (the updates section of the
// configuration file) and node.go (Node: the whole update side built from
// that section and the dependencies the agent hands over).
package deploy
