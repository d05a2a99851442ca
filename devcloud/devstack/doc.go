// Package devstack is the dev environment edgefort-dev runs: it prepares a
// state directory (a dev CA, keystores, the single-file update module),
// starts devcloud's servers (the Mender server, the control plane and the
// node's enrollment with it, the SigV4 broker with Jobs and Shadow), a
// stand-in for the local engine and, with IdPOptions, the dev identity
// providers as child processes (npm samlify and oidc-provider: the tests'
// peers, with login pages) behind the virtual host sso; it renders the
// configuration the agent runs against them, and describes the running stack in one typed file (Info)
// that Client reads to drive it from another process: deploy a file over
// the update channel, send a cloud event, run a job, sign a user in
// through a dev IdP (Login). The agent runs on a simulated A/B device
// (device.go): rootfs-image updates install into a partition file, and the
// agent's reboot command makes RunAgent stop it, boot the device as GRUB
// would and start a new agent on the partition that came up.
//
// It is never linked into the product binary (cmd/edgefort checks that).
package devstack
