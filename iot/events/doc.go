// Package events turns the cloud events that arrive on the IoT events topic
// (default edgefort/<thing>/events) into calls to registered handlers, once
// per event id, and reports each event's result.
//
// An event is a JSON object:
//
//	{"id": "...", "type": "update.check", "time": "2026-11-23T17:50:00Z", "body": {...}}
//
// id and type are required; time (RFC 3339) and body (any JSON) are
// optional. Unknown fields are ignored, so the cloud may add some.
//
// [Dispatcher.Handle] is what the link's iot.Options.Handler calls; the link
// acknowledges the message when it returns nil and leaves it to be
// redelivered otherwise.
//
// # Exactly once
//
// Every event id is recorded in the state store (bucket "iot-events") in two
// steps, each one fsynced transaction:
//
//  1. "received", with an attempt count, before the handler runs;
//  2. "done", with the [Result], after it returned one.
//
// A redelivered id recorded done is acknowledged without running anything.
// An id recorded received but not running in this process means an earlier
// process died mid-handler: the handler runs again. So the recorded result,
// and the report, are exactly once, while a handler's side effects are at
// least once across a crash: a handler that must not repeat its effect
// should make it idempotent with the event id (the webhook handler sends it
// as the Idempotency-Key header and as body member idempotency_key). A redelivery that arrives while the same id is being
// handled in this process waits for that run instead of starting another.
//
// A handler error other than a [Permanent] one means "try again later": the
// event stays received and unacknowledged, and the broker redelivers it. To
// keep a handler that fails, or kills the process, every time from looping
// for ever, an event is given up after Options.MaxAttempts runs and recorded
// failed.
//
// A [TxReporter] (the agent's outbox is one) queues the result in the same
// transaction that records it done, so the record and its report are
// committed together: two commits per event in all, received and done. A
// plain [Reporter] gets the result after the done record is committed; the
// record also notes when the report was made, so a crash between the two
// reports the result on the redelivery that follows (the message was not yet
// acknowledged). A Reporter may therefore, rarely, see one event twice and
// should use the event id as its idempotency key.
//
// # Retention
//
// Ids are remembered in the order they were first recorded, up to
// Options.Retention of them; recording one more forgets the oldest. An event
// redelivered after its id was forgotten is handled again, so Retention must
// cover the broker's redelivery horizon (far more than AWS IoT's in-flight
// window of 100 messages).
//
// Storage: key "e/<id>" holds the id's record, key "0/<seq>" (20 digits,
// byte order is insertion order) the id recorded at that sequence number,
// and key "meta" the next and the oldest sequence numbers; each record is
// written in the same transaction as its index and meta.
package events
