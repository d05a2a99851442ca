// Package shadow keeps the agent's AWS IoT Device Shadow: the classic
// (unnamed) shadow of the thing, spoken over the IoT link with the MQTT
// API of $aws/things/<thing>/shadow/... (shared/reference/aws-iot.md §4).
//
// It owns two things:
//
//   - the reported state: what the agent tells the cloud about itself
//     (agent version, artifact name, link states, certificate expiries,
//     last update result, …). Report merges into it; the package publishes
//     an update only when it differs from what the cloud last accepted,
//     at most one update in flight and at most one per Options.Coalesce.
//   - the settings the cloud may drive through desired state (log level,
//     poll interval, …). A delta — on update/delta, or in the answer to
//     get — is applied setting by setting through Setting.Apply, and the
//     applied (effective) value is reported back so that the delta closes.
//
// Decisions, for the operator reading the shadow:
//
//   - A desired key with no Setting is not reported (AWS leaves its delta
//     open, which is the honest answer: the fort does not do it). It is
//     logged once and listed, sorted, in reported "unsupported".
//   - A Setting whose Apply fails keeps its current reported value (so the
//     delta stays open) and gets an entry in reported "settings_errors"
//     ({"poll_interval": "not a duration"}); the entry goes once a later
//     delta applies or no longer carries the key.
//   - Updates carry the last known shadow version. A 409 (version
//     conflict: the cloud changed the shadow meanwhile) is answered with a
//     get — which brings the new version and the current delta, applied
//     first — and the report is made again against the new version.
//   - On every connect (OnConnect) the package asks for the shadow with
//     get, and then reports whatever of the full reported state the
//     cloud's copy lacks (all of it when get did not answer, or 404).
//
// Replies are matched to requests by clientToken; replies to other
// clients' requests only move the known version forward. The package
// does not subscribe itself: the agent subscribes to Subscriptions and
// routes those topics to Handle, and calls OnConnect after each connect.
package shadow
