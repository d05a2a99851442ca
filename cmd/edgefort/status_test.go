package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
)

// TestPrintStatusListings: the text status names what clients reach (the
// virtual hosts, the authentication API) and leaves out what is off.
func TestPrintStatusListings(t *testing.T) {
	now := time.Now()
	base := adminapi.Status{Version: "1.2.3", PID: 42, Started: now.Add(-time.Minute), StateDir: "/var/lib/edgefort",
		VirtualHosts: map[string]string{"hub": "https://127.0.0.1:8443"}}
	withAPI := base
	withAPI.AuthAPI = "https://127.0.0.1:9443"
	link := adminapi.EventLink{State: "connected", Since: now.Add(-time.Minute), Reconnects: 3}
	throttled := base
	throttled.IoT = &adminapi.EventLink{State: "backing-off", Since: now.Add(-time.Minute), Reconnects: 5, Throttled: 4,
		LastError: "connect throttled by the service", LastErrorAt: now.Add(-time.Minute)}
	calm := base
	calm.IoT = &link
	tests := []struct {
		name    string
		status  adminapi.Status
		want    []string
		notWant []string
	}{
		{"auth API on", withAPI, []string{"vhost     hub https://127.0.0.1:8443\n", "auth API  https://127.0.0.1:9443 (two-way TLS)\n"}, nil},
		{"auth API off", base, []string{"vhost     hub https://127.0.0.1:8443\n"}, []string{"auth API"}},
		{"event link throttled", throttled, []string{"event link backing-off for 1m0s, 0 in, 0 out, 5 reconnects (4 throttled by the service); last error"}, nil},
		{"event link not throttled", calm, []string{"event link connected for 1m0s, 0 in, 0 out, 3 reconnects\n"}, []string{"throttled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			printStatus(&out, &tt.status, now)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("status has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
