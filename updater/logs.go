package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// MaxLogSize is the largest log upload body. Mender's server refuses
// bigger ones with 413 (DEPLOYMENTS_REQUEST_SIZE_LIMIT, 1 MiB by default).
const MaxLogSize = 1 << 20

// maxLogMessage caps one message, so that the newest line always fits.
const maxLogMessage = 64 << 10

// LogEntry is one line of a deployment log.
type LogEntry struct {
	Timestamp time.Time `json:"timestamp"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
}

// UploadLog uploads the deployment's log, oldest entry first. When the body
// would exceed MaxLogSize, the oldest entries are dropped and replaced by
// one entry saying how many were dropped; messages longer than 64 KiB are
// cut.
func (c *Client) UploadLog(ctx context.Context, id string, entries []LogEntry) error {
	if err := c.uploadLog(ctx, id, entries); err != nil {
		return fmt.Errorf("updater: upload log for deployment %s: %w", id, err)
	}
	return nil
}

func (c *Client) uploadLog(ctx context.Context, id string, entries []LogEntry) error {
	if id == "" {
		return errors.New("deployment id is required")
	}
	body, err := encodeLog(entries, MaxLogSize)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, apiRequest{method: http.MethodPut, path: pathDeploy + url.PathEscape(id) + "/log", body: body})
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		drain(resp)
		return nil
	default:
		return statusError(resp)
	}
}

// encodeLog returns the log body {"messages":[...]} as json.RawMessage,
// at most limit bytes, keeping the newest entries.
func encodeLog(entries []LogEntry, limit int) (json.RawMessage, error) {
	const wrapper = len(`{"messages":[]}`)
	enc := make([][]byte, len(entries))
	total := wrapper
	for i, e := range entries {
		if len(e.Message) > maxLogMessage {
			e.Message = e.Message[:maxLogMessage] + " [message truncated]"
		}
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		enc[i] = b
		total += len(b) + 1 // comma
	}
	first := 0
	var note []byte
	if total > limit {
		// Reserve room for the note with the widest count it can hold.
		noteFor := func(n int, at time.Time) []byte {
			b, _ := json.Marshal(LogEntry{Timestamp: at, Level: "warning",
				Message: fmt.Sprintf("updater: %d older log entries dropped to keep the upload under %d bytes", n, limit)})
			return b
		}
		room := limit - wrapper - len(noteFor(len(entries), time.Time{})) - 8
		used := 0
		first = len(entries)
		for first > 0 && used+len(enc[first-1])+1 <= room {
			used += len(enc[first-1]) + 1
			first--
		}
		var at time.Time
		if first < len(entries) {
			at = entries[first].Timestamp
		}
		note = noteFor(first, at)
	}
	out := make([]byte, 0, min(total, limit))
	out = append(out, `{"messages":[`...)
	if note != nil {
		out = append(out, note...)
	}
	for i := first; i < len(enc); i++ {
		if len(out) > len(`{"messages":[`) {
			out = append(out, ',')
		}
		out = append(out, enc[i]...)
	}
	out = append(out, "]}"...)
	return out, nil
}
