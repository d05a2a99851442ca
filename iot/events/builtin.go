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

// Webhook handles "webhook": it POSTs the event body (or {} when there is
// none) to target with Content-Type application/json, the event id as
// Idempotency-Key and the type as X-Edgefort-Event. This is how a cloud
// event reaches a local target endpoint; the agent builds client from the
// target's TLS settings (nil means http.DefaultClient).
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
		body := []byte(ev.Body)
		if len(body) == 0 {
			body = []byte("{}")
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
