package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/devcloud"
)

// TestMain lets the test binary play the children's roles: the parent
// under test starts os.Executable, this binary, as "broker" and "links".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "broker" || os.Args[1] == "links") {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestFleetRestart runs a small fleet in two links processes against the
// broker process: every link reconnects after the broker comes back on
// its address, and the histogram accounts for each of them once.
func TestFleetRestart(t *testing.T) {
	var out bytes.Buffer
	err := runParent([]string{"-n", "20", "-procs", "2", "-down", "300ms",
		"-reconnect-spread", "1s", "-reconnect-max", "2s", "-timeout", "2m",
		"-broker-faults", `{"RefuseConnections": false}`}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{
		"# 20 links in 2 links process(es) connected",
		"a link; Go heap in use",
		"(20 of 20 links saw it go)",
		"all 20 reconnected",
		"max share of N in one second, reconnects begun:",
		"# links-1 process: RSS",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	sum := 0
	for _, m := range regexp.MustCompile(`(?m)^ *\d+-\d+ +s +(\d+) `).FindAllStringSubmatch(report, -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	if sum != 20 {
		t.Errorf("the histogram counts %d reconnects, want 20:\n%s", sum, report)
	}
}

func TestParseFaults(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    devcloud.BrokerFaults
		wantErr string
	}{
		{"none", "", devcloud.BrokerFaults{}, ""},
		{"field name in any case", `{"refuseconnections": true}`, devcloud.BrokerFaults{RefuseConnections: true}, ""},
		{"unknown field", `{"RefuseConnection": true}`, devcloud.BrokerFaults{}, `unknown field "RefuseConnection"`},
		{"wrong type", `{"RefuseConnections": 1}`, devcloud.BrokerFaults{}, "cannot unmarshal number"},
		{"trailing data", `{} {}`, devcloud.BrokerFaults{}, "trailing data"},
		{"not JSON", `RefuseConnections=true`, devcloud.BrokerFaults{}, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFaults(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "-broker-faults") {
					t.Fatalf("parseFaults(%q) error = %v, want one naming -broker-faults and %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFaults(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseFaults(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestLinkIndex(t *testing.T) {
	tests := []struct {
		akid   string
		n      int
		want   int
		wantOK bool
	}{
		{accessKey(0), 10, 0, true},
		{accessKey(9999), 10000, 9999, true},
		{accessKey(10000), 10000, 0, false},
		{"FLEET00001", 10, 0, false},
		{"FLEET-00001", 10, 0, false},
		{"AKIA000001", 10, 0, false},
	}
	for _, tt := range tests {
		got, ok := linkIndex(tt.akid, tt.n)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("linkIndex(%q, %d) = %d, %v; want %d, %v", tt.akid, tt.n, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestBrokerPerSecond checks that the broker's snapshots, sent about every
// second from its start, become counts per second after it.
func TestBrokerPerSecond(t *testing.T) {
	const s = int64(1e9)
	snap := func(at int64, connects int64, fault int64) statsMsg {
		return statsMsg{At: at, Stats: devcloud.BrokerStats{Connects: connects,
			Refused: map[devcloud.BrokerRefusal]int64{devcloud.RefusedFault: fault}}}
	}
	f := &fleet{started: 100 * s, stats: []statsMsg{
		snap(100*s+1e6, 5, 2), snap(101*s+2e6, 15, 2), snap(102*s-3e6, 18, 7), snap(104*s, 20, 7),
	}}
	got := f.brokerPerSecond(4)
	want := map[int]devcloud.BrokerStats{
		0: {Connects: 10, Refused: map[devcloud.BrokerRefusal]int64{}},
		1: {Connects: 3, Refused: map[devcloud.BrokerRefusal]int64{devcloud.RefusedFault: 5}},
		// second 2-3 and 3-4: the snapshot at +3 s is missing
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("brokerPerSecond (-want +got):\n%s", diff)
	}
	if r := refusals(got[1].Refused); r != "fault=5" {
		t.Errorf("refusals = %q, want fault=5", r)
	}
}
