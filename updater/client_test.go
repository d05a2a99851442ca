package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testDevice = DeviceState{ArtifactName: "release-1", DeviceType: "edge-x86", Provides: map[string]string{"artifact_group": "stable"}}

func TestNextDeployment(t *testing.T) {
	const (
		v2    = "POST " + pathNextV2
		v1    = "POST " + pathNextV1
		v1Get = "GET " + pathNextV1 + "?artifact_name=release-1&device_type=edge-x86"
	)
	tests := []struct {
		name      string
		status    map[string]int
		types     []string // nil → no deployment (204)
		wantCalls []string
		want      *Deployment
		wantErr   string
	}{
		{name: "v2", types: []string{"edge-x86"}, wantCalls: []string{v2}},
		{name: "v2 404 → v1 POST", status: map[string]int{v2: 404}, types: []string{"edge-x86"}, wantCalls: []string{v2, v1}},
		{name: "v2, v1 POST 404 → v1 GET", status: map[string]int{v2: 404, v1: 404}, types: []string{"other", "edge-x86"}, wantCalls: []string{v2, v1, v1Get}},
		{name: "all 404", status: map[string]int{v2: 404, v1: 404, "GET " + pathNextV1: 404}, wantCalls: []string{v2, v1, v1Get}, wantErr: "unexpected status 404"},
		{name: "v2 500 does not fall back", status: map[string]int{v2: 500}, types: []string{"edge-x86"}, wantCalls: []string{v2}, wantErr: "unexpected status 500: Internal Server Error (request req-1)"},
		{name: "no deployment", wantCalls: []string{v2}},
		{name: "device type mismatch", types: []string{"arm"}, wantCalls: []string{v2}, wantErr: `artifact "release-2" is for device types ["arm"], not "edge-x86"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeMender(t)
			f.status = tt.status
			var want *Deployment
			if tt.types != nil {
				f.setDeployment("d1", "release-2", tt.types...)
				want = &Deployment{ID: "d1", ArtifactName: "release-2", URI: f.srv.URL + "/artifacts/d1",
					Expire: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), DeviceTypes: tt.types}
			}
			c := newTestClient(t, f, nil, nil)
			got, err := c.NextDeployment(context.Background(), testDevice)
			if diff := cmp.Diff(tt.wantCalls, f.calls()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "updater: next deployment: ") {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NextDeployment: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("deployment (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNextDeploymentBodies(t *testing.T) {
	f := newFakeMender(t)
	f.status = map[string]int{"POST " + pathNextV2: 404, "POST " + pathNextV1: 404}
	c := newTestClient(t, f, nil, nil)
	if _, err := c.NextDeployment(context.Background(), testDevice); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		call string
		want any
	}{
		{"POST " + pathNextV2, map[string]any{"device_provides": map[string]any{
			"artifact_name": "release-1", "device_type": "edge-x86", "artifact_group": "stable"}}},
		{"POST " + pathNextV1, map[string]any{"artifact_name": "release-1", "device_type": "edge-x86", "artifact_group": "stable"}},
	}
	for _, tt := range tests {
		var got any
		if err := json.Unmarshal(f.bodies[tt.call], &got); err != nil {
			t.Fatalf("%s body: %v", tt.call, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s body (-want +got):\n%s", tt.call, diff)
		}
	}
}

func TestReportStatus(t *testing.T) {
	f := newFakeMender(t)
	c := newTestClient(t, f, nil, nil)
	ctx := context.Background()
	var want []statusReport
	for _, s := range statuses {
		if err := c.ReportStatus(ctx, "d1", s, ""); err != nil {
			t.Errorf("ReportStatus(%q): %v", s, err)
		}
		want = append(want, statusReport{Status: s})
	}
	if err := c.ReportStatus(ctx, "d1", StatusInstalling, "Executing script: ArtifactInstall_Enter_01"); err != nil {
		t.Errorf("ReportStatus with substate: %v", err)
	}
	want = append(want, statusReport{Status: StatusInstalling, Substate: "Executing script: ArtifactInstall_Enter_01"})
	if diff := cmp.Diff(want, f.reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if got, want := f.calls()[0], "PUT "+pathDeploy+"d1/status"; got != want {
		t.Errorf("request = %q, want %q", got, want)
	}

	n := len(f.calls())
	if err := c.ReportStatus(ctx, "d1", "done", ""); err == nil || !strings.Contains(err.Error(), "unknown status") {
		t.Errorf("ReportStatus(done) = %v, want an unknown-status error", err)
	}
	if len(f.calls()) != n {
		t.Error("an unknown status was sent")
	}

	f.abortAt = StatusInstalling
	err := c.ReportStatus(ctx, "d1", StatusInstalling, "")
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("ReportStatus on abort = %v, want ErrAborted", err)
	}
	if want := `updater: report status "installing" for deployment d1: deployment aborted by server`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want prefix %q", err, want)
	}
}

func TestSendInventory(t *testing.T) {
	tests := []struct {
		name      string
		status    map[string]int
		wantCalls []string
		wantErr   string
	}{
		{name: "PUT", wantCalls: []string{"PUT " + pathInventory}},
		{name: "405 → PATCH", status: map[string]int{"PUT " + pathInventory: 405}, wantCalls: []string{"PUT " + pathInventory, "PATCH " + pathInventory}},
		{name: "PUT 500 does not PATCH", status: map[string]int{"PUT " + pathInventory: 500}, wantCalls: []string{"PUT " + pathInventory}, wantErr: "updater: send inventory: PUT: unexpected status 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeMender(t)
			f.status = tt.status
			c := newTestClient(t, f, nil, nil)
			err := c.SendInventory(context.Background(), testDevice, []Attribute{
				{Name: "kernel", Value: "6.1"},
				{Name: "ipv4", Value: []string{"10.0.0.2/24", "10.0.1.2/24"}},
				{Name: "device_type", Value: "spoofed"},
				{Name: "artifact_group", Value: "spoofed"},
			})
			if diff := cmp.Diff(tt.wantCalls, f.calls()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []Attribute{
				{Name: "artifact_name", Value: "release-1"},
				{Name: "device_type", Value: "edge-x86"},
				{Name: AttrAgentVersion, Value: "0.1.0"},
				{Name: "artifact_group", Value: "stable"},
				{Name: "kernel", Value: "6.1"},
				{Name: "ipv4", Value: []any{"10.0.0.2/24", "10.0.1.2/24"}},
			}
			if diff := cmp.Diff(want, f.inventory); diff != "" {
				t.Errorf("inventory (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name   string
		header string
		want   time.Duration
	}{
		{name: "seconds", header: "120", want: 2 * time.Minute},
		{name: "HTTP date", header: clock.Now().Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{name: "date in the past", header: clock.Now().Add(-time.Hour).Format(http.TimeFormat), want: 0},
		{name: "absent", header: "", want: 0},
		{name: "garbage", header: "soon", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeMender(t)
			f.status = map[string]int{"POST " + pathNextV2: http.StatusTooManyRequests}
			f.retryAfter = tt.header
			c := newTestClient(t, f, nil, func(o *ClientOptions) { o.Now = clock.Now })
			_, err := c.NextDeployment(context.Background(), testDevice)
			var ra *RetryAfterError
			if !errors.As(err, &ra) {
				t.Fatalf("err = %v, want *RetryAfterError", err)
			}
			if ra.After != tt.want {
				t.Errorf("After = %v, want %v", ra.After, tt.want)
			}
			if got := f.calls(); len(got) != 1 {
				t.Errorf("requests = %q, want no fallback after 429", got)
			}
		})
	}
}

func TestUploadLog(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	entries := func(n int) []LogEntry {
		var es []LogEntry
		for i := range n {
			es = append(es, LogEntry{Timestamp: at.Add(time.Duration(i) * time.Second), Level: "info",
				Message: fmt.Sprintf("line %06d %s", i, strings.Repeat("x", 80))})
		}
		return es
	}
	tests := []struct {
		name      string
		entries   []LogEntry
		wantNote  bool
		wantFirst string // message of the first entry kept
	}{
		{name: "small", entries: entries(3), wantFirst: "line 000000"},
		{name: "over 1 MiB", entries: entries(20000), wantNote: true},
		{name: "one huge line", entries: []LogEntry{{Timestamp: at, Level: "error", Message: strings.Repeat("y", 2<<20)}}, wantFirst: "yyyy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeMender(t)
			c := newTestClient(t, f, nil, nil)
			if err := c.UploadLog(context.Background(), "d1", tt.entries); err != nil {
				t.Fatalf("UploadLog: %v", err)
			}
			if len(f.logBody) > MaxLogSize {
				t.Fatalf("body is %d bytes, over %d", len(f.logBody), MaxLogSize)
			}
			var got struct{ Messages []LogEntry }
			if err := json.Unmarshal(f.logBody, &got); err != nil {
				t.Fatalf("body: %v", err)
			}
			last := tt.entries[len(tt.entries)-1]
			if len(last.Message) <= maxLogMessage {
				if diff := cmp.Diff(last, got.Messages[len(got.Messages)-1]); diff != "" {
					t.Errorf("newest entry not kept (-want +got):\n%s", diff)
				}
			}
			first := got.Messages[0]
			if tt.wantNote {
				if !strings.Contains(first.Message, "older log entries dropped") || first.Level != "warning" {
					t.Errorf("first entry = %+v, want the truncation note", first)
				}
				kept := len(got.Messages) - 1
				if want := fmt.Sprintf("updater: %d older", len(tt.entries)-kept); !strings.HasPrefix(first.Message, want) {
					t.Errorf("note %q, want prefix %q", first.Message, want)
				}
				if len(f.logBody) < MaxLogSize-4096 {
					t.Errorf("body is %d bytes, wasting room under %d", len(f.logBody), MaxLogSize)
				}
				return
			}
			if !strings.HasPrefix(first.Message, tt.wantFirst) {
				t.Errorf("first entry %.40q, want prefix %q", first.Message, tt.wantFirst)
			}
		})
	}
}
