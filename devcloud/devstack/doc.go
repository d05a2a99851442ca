// Package devstack is the dev environment edgefort-dev runs: it prepares a
// state directory (a dev CA, keystores, the single-file update module),
// starts devcloud's servers (the Mender server, the control plane and the
// node's enrollment with it, the SigV4 broker with Jobs and Shadow) and a
// stand-in for the local engine, renders the configuration the agent runs
// against them, and describes the running stack in one typed file (Info)
// that Client reads to drive it from another process: deploy a file over
// the update channel, send a cloud event, run a job.
//
// It is never linked into the product binary (cmd/edgefort checks that).
package devstack
