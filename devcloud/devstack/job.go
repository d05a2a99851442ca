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

// NewJobID is a job ID for RunJob: job-<random>.
func NewJobID() string {
	r := make([]byte, 4)
	rand.Read(r)
	return "job-" + hex.EncodeToString(r)
}

// RunJob creates job id with document doc for the dev node in devcloud's
// Jobs service, prints each status the execution passes through to w, and
// returns the terminal one (SUCCEEDED, FAILED, REJECTED, ...) or an error
// when ctx ends first.
func (c *Client) RunJob(ctx context.Context, w io.Writer, id string, doc json.RawMessage) (string, error) {
	b := c.Info.Broker
	url := "https://" + b.Host + "/api/management/dev/things/" + b.Thing + "/jobs/" + id
	if err := call(ctx, c.tls, "broker", http.MethodPost, url, b.ManagementToken, doc, nil, 1<<20); err != nil {
		return "", fmt.Errorf("create job: %w", err)
	}
	fmt.Fprintf(w, "created %s for %s\n", id, b.Thing)
	last := ""
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		var ex devcloud.JobExecution
		// A job document is at most 32 KiB; its execution adds status
		// details of the same order.
		if err := call(ctx, c.tls, "broker", http.MethodGet, url, b.ManagementToken, nil, &ex, 1<<20); err != nil {
			return false, err
		}
		if ex.Status != last {
			details, _ := json.Marshal(ex.StatusDetails)
			fmt.Fprintf(w, "  %s %s\n", ex.Status, details)
			last = ex.Status
		}
		return devcloud.JobTerminal(ex.Status), nil
	})
	if err != nil && ctx.Err() != nil {
		return "", fmt.Errorf("job %s did not end in time%s (last status %s)", id, deadlineNote(ctx), last)
	}
	if err != nil {
		return "", err
	}
	return last, nil
}
