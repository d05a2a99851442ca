package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
)

// TestPrintUpdateStatusAfter429: a check the server answered 429 shows
// its error and when the node asks again (edgefort-dev fault mender).
func TestPrintUpdateStatusAfter429(t *testing.T) {
	last := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	printUpdateStatus(&b, &adminapi.UpdateStatus{ArtifactName: "a", Channel: true, ServerURL: "https://u", Poller: &adminapi.PollerStatus{
		LastCheck: last, LastCheckErr: "too many requests, retry after 30s", NextCheck: last.Add(40 * time.Second),
	}})
	for _, want := range []string{
		"last check: 2030-01-02T03:04:05Z (failed: too many requests, retry after 30s)\n",
		"next check: 2030-01-02T03:04:45Z\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("update status lacks %q:\n%s", want, b.String())
		}
	}
}
