package jobs

import "testing"

// TestRecordEventID: the id a job's handler gets (a webhook's idempotency
// key) names the execution, so that a job AWS retries is applied again,
// while a record written before executions were kept keeps its old id.
func TestRecordEventID(t *testing.T) {
	tests := []struct {
		name string
		rec  record
		want string
	}{
		{"first execution", record{JobID: "reload-7", Execution: 1}, "job-reload-7-1"},
		{"retried execution", record{JobID: "reload-7", Execution: 2}, "job-reload-7-2"},
		{"record of an earlier version", record{JobID: "reload-7"}, "job-reload-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.eventID(); got != tt.want {
				t.Errorf("eventID() = %q, want %q", got, tt.want)
			}
		})
	}
}
