package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Built-in event types.
const (
	TypeUpdateCheck     = "update.check"
	TypeKeystoreRepoint = "keystore.repoint"
	TypeWebhook         = "webhook"
)

// MaxWebhookResponse is how much of a webhook target's answer is kept in
// the Result.
const MaxWebhookResponse = 64 << 10

// UpdateCheck handles "update.check": it calls check (the update poller's
// CheckNow, which only asks for a poll and does not wait) and reports done.
// The body is ignored.
func UpdateCheck(check func()) HandlerFunc {
	return func(context.Context, Event) (Result, error) {
		check()
		return Done(nil), nil
	}
}

// repoint is the body of a "keystore.repoint" event.
type repoint struct {
	// Ref is the reference to repoint. Required.
	Ref string `json:"ref"`
	// Store is the keystore it is to name from now on. Required.
	Store string `json:"store"`
}

// KeystoreRepoint handles "keystore.repoint" with body
// {"ref": "...", "store": "..."}: it calls set(ref, store) and reports done
// with the body. A body that does not decode strictly, lacks a field, or
// that set refuses is reported failed with the reason; set's errors are not
// retried (repointing either applies or is refused).
func KeystoreRepoint(set func(ref, store string) error) HandlerFunc {
	return func(_ context.Context, ev Event) (Result, error) {
		var b repoint
		dec := json.NewDecoder(bytes.NewReader(ev.Body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return Failed("keystore.repoint: body: " + err.Error()), nil
		}
		if dec.More() {
			return Failed("keystore.repoint: body: trailing data"), nil
		}
		var errs []error
		if b.Ref == "" {
			errs = append(errs, errors.New("body.ref: required"))
		}
		if b.Store == "" {
			errs = append(errs, errors.New("body.store: required"))
		}
		if err := errors.Join(errs...); err != nil {
			return Failed("keystore.repoint: " + err.Error()), nil
		}
		if err := set(b.Ref, b.Store); err != nil {
			return Failed(fmt.Sprintf("keystore.repoint %s to %s: %v", b.Ref, b.Store, err)), nil
		}
		out, _ := json.Marshal(b)
		return Done(out), nil
	}
}

// WebhookKeyMember is the member of a webhook's JSON body that carries the
// event id, as the Idempotency-Key header does.
const WebhookKeyMember = "idempotency_key"

// Webhook handles "webhook": it POSTs the event body to target with
// Content-Type application/json, the event id as Idempotency-Key and the
// type as X-Edgefort-Event. This is how a cloud event reaches a local
// target endpoint; the agent builds client from the target's TLS settings
// (nil means http.DefaultClient).
//
// The body must be a JSON object (or absent, which sends {}); the event id
// is added to it as member WebhookKeyMember, before the event's own
// members, which are sent byte for byte. A body that is not an object, or
// that has a member of that name itself, is failed without a request. The handling of an event is recorded once, but a crash between
// the POST and that record sends it again (see the package comment): the
// key, the same on every delivery of one event, is how the target applies
// the effect once.
//
// A 2xx answer is done, with the response body (at most MaxWebhookResponse
// bytes; kept as is when it is JSON, as a JSON string otherwise) as the
// Result body. 408, 429, any 5xx and transport errors are retried (the
// handler returns an error). Any other status is failed with the status.
func Webhook(client *http.Client, target string) HandlerFunc {
	if client == nil {
		client = http.DefaultClient
	}
	u, uerr := url.Parse(target)
	if uerr == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		uerr = errors.New("not an absolute http or https URL")
	}
	return func(ctx context.Context, ev Event) (Result, error) {
		if uerr != nil {
			return Failed(fmt.Sprintf("webhook target %q: %v", target, uerr)), nil
		}
		body, err := webhookBody(ev)
		if err != nil {
			return Failed("webhook: " + err.Error()), nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			return Result{}, Permanent(fmt.Errorf("webhook: %w", err))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", ev.ID)
		req.Header.Set("X-Edgefort-Event", ev.Type)
		resp, err := client.Do(req)
		if err != nil {
			return Result{}, fmt.Errorf("webhook: %w", err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(io.LimitReader(resp.Body, MaxWebhookResponse+1))
		truncated := len(out) > MaxWebhookResponse
		if truncated {
			out = out[:MaxWebhookResponse]
		}
		switch c := resp.StatusCode; {
		case c >= 200 && c < 300:
			if err != nil {
				return Result{}, fmt.Errorf("webhook: read response: %w", err)
			}
			res := sanitize(Done(out))
			res.Detail = resp.Status
			if truncated {
				res.Detail += fmt.Sprintf(" (response cut at %d bytes)", MaxWebhookResponse)
			}
			return res, nil
		case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500:
			return Result{}, fmt.Errorf("webhook: target answered %s", resp.Status)
		default:
			res := Failed("webhook: target answered " + resp.Status)
			res.Body = sanitize(Result{Body: out}).Body
			return res, nil
		}
	}
}

// webhookBody is ev's body with the event id added as WebhookKeyMember.
func webhookBody(ev Event) ([]byte, error) {
	key, err := json.Marshal(ev.ID)
	if err != nil {
		return nil, fmt.Errorf("event id: %w", err)
	}
	member := append([]byte(`{"`+WebhookKeyMember+`":`), key...)
	trimmed := bytes.TrimSpace(ev.Body)
	if len(trimmed) == 0 {
		return append(member, '}'), nil
	}
	var members map[string]json.RawMessage
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &members) != nil {
		return nil, fmt.Errorf("body must be a JSON object, to carry %s; it is %s", WebhookKeyMember, jsonKind(trimmed))
	}
	if have, ok := members[WebhookKeyMember]; ok {
		return nil, fmt.Errorf("body.%s is reserved for the event id; the body has %s", WebhookKeyMember, truncate(have, 64))
	}
	inner := bytes.TrimSpace(trimmed[1 : len(trimmed)-1])
	if len(inner) == 0 {
		return append(member, '}'), nil
	}
	out := append(member, ',')
	out = append(out, inner...)
	return append(out, '}'), nil
}

// jsonKind names the kind of the JSON value b, for errors.
func jsonKind(b []byte) string {
	switch b[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "not a valid object"
	}
	return "a number"
}

// truncate cuts b to at most n bytes for an error message.
func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
