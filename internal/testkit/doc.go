// Package testkit holds what edgefort's tests share: waiting on a
// condition instead of sleeping (WaitFor), a state store on a temporary
// directory that closes itself (OpenStore), and small Mender Artifacts
// built in memory (Artifact, SingleFile).
//
// Only _test.go files import it. It sits beside the layers rather than
// under them (it builds on internal/store and updater/artifact); the product
// binary must never link it, which belongs on cmd/edgefort's dependency
// deny list (#13 point 1).
package testkit
