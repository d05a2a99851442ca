// Package updater talks to a Mender server's device API: it authenticates
// the device, asks for deployments, reports their status, uploads failure
// logs, sends inventory and downloads artifacts with resume.
//
// This package makes single calls only, like Tailscale's
// control/controlclient direct.go: each method sends one request (plus at
// most one re-authentication and retry on 401, and the documented fallbacks
// for deployments/next and inventory), and returns typed errors for the
// caller's loop to act on:
//
//   - ErrUnauthorized: the server refused the auth request (device pending
//     or rejected, or a bad signature); try again at the next poll.
//   - ErrAborted: a status report got 409, the deployment was aborted; stop
//     and roll back.
//   - *RetryAfterError: the server answered 429; wait RetryAfterError.After.
//   - ErrNoContentLength, ErrBadRange: the artifact download cannot be
//     trusted to resume safely.
//
// Files: client.go (Client, the JWT and the one-retry-on-401 rule),
// auth.go (auth request and its signature), deployments.go (next, status),
// logs.go, inventory.go, download.go (resumable reader) and ratelimit.go
// (token bucket for the download).
//
// Every reply is read within a limit that fits its message (see
// deployments.go: a next-deployment reply is at most 1 MiB, its fields
// within the limits of Mender's own server) through internal/httpbody, and
// a reply past a limit is refused with an error naming the limit.
//
// Polling, backoff between calls and the update state machine belong to the
// loop that owns goroutines, not to this package. The protocol facts
// followed here are in ../shared/reference/mender.md (§2).
package updater
