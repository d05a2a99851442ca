package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/edgefort/edgefort/devcloud"
)

// EventResult is what the node reported for a cloud event.
type EventResult struct {
	Status string // "done", "rejected", "failed"
	Detail string
}

// SendEvent publishes a cloud event of type typ with body (JSON) on the
// node's events topic of the broker, prints its ID to w, and waits until
// the node's result reaches the control plane's reports sink or ctx ends.
func (c *Client) SendEvent(ctx context.Context, w io.Writer, typ string, body json.RawMessage) (EventResult, error) {
	id := make([]byte, 8)
	rand.Read(id)
	evID := "ev-" + hex.EncodeToString(id)
	payload, err := json.Marshal(map[string]any{"id": evID, "type": typ, "time": time.Now().UTC(), "body": body})
	if err != nil {
		return EventResult{}, err
	}
	b := c.Info.Broker
	req := devcloud.BrokerPublishRequest{Topic: b.EventsTopic, Payload: payload, QoS: 1}
	if err := call(ctx, c.tls, "broker", http.MethodPost, "https://"+b.Host+"/api/management/dev/publish", b.ManagementToken, req, nil, 1<<20); err != nil {
		return EventResult{}, fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintf(w, "published %s (%s) on %s\n", evID, typ, b.EventsTopic)
	var res EventResult
	err = poll(ctx, 200*time.Millisecond, func() (bool, error) {
		var ok bool
		res, ok, err = c.eventResult(ctx, evID)
		return ok, err
	})
	if err != nil && ctx.Err() != nil {
		return EventResult{}, fmt.Errorf("no result for %s in time%s", evID, deadlineNote(ctx))
	}
	return res, err
}

// eventResult looks for the event's result among the reports the control
// plane's sink recorded.
func (c *Client) eventResult(ctx context.Context, id string) (EventResult, bool, error) {
	cp := c.Info.ControlPlane
	var mr devcloud.ManagedReports
	// The dev sink lists every report of the session, each at most 1 MiB
	// of body but usually a few hundred bytes.
	url := cp.URL + "/api/management/dev/devices/" + cp.DeviceID + "/reports"
	if err := call(ctx, c.tls, "control plane", http.MethodGet, url, cp.ManagementToken, nil, &mr, 64<<20); err != nil {
		return EventResult{}, false, fmt.Errorf("reports: %w", err)
	}
	for _, r := range mr.Reports {
		if r.Type != "event.result" {
			continue
		}
		var b struct {
			EventID string      `json:"event_id"`
			Result  EventResult `json:"result"`
		}
		if json.Unmarshal(r.Body, &b) == nil && b.EventID == id {
			return b.Result, true, nil
		}
	}
	return EventResult{}, false, nil
}
