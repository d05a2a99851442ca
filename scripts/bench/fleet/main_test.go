package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestFleetThrottledRestart runs a small fleet against a broker that
// comes back with a connect quota well under what the fleet asks at once:
// the quota refuses some CONNECTs, and still every link gets back in and
// none gives up.
func TestFleetThrottledRestart(t *testing.T) {
	var out bytes.Buffer
	// ReconnectMax 1s: every link knocks within about a second of the
	// broker's return, more than a rate of 4 with a burst of 4 admits.
	err := runParent([]string{"-n", "20", "-procs", "2", "-down", "300ms",
		"-reconnect-spread", "1s", "-reconnect-max", "1s", "-timeout", "2m",
		"-restart-faults", `{"ConnectRate": 4, "ClientIDThrottle": true}`}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{
		"# broker (pid ", "; broker faults none;", // the first connects are not throttled
		`back at +`, `with faults {"ConnectRate": 4, "ClientIDThrottle": true}`,
		"connect quota 4/s (burst 4): at most ",
		"all 20 reconnected",
		"none gave up: in each of ",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	m := regexp.MustCompile(`(?m)^CONNECTs the broker answered in those seconds: (\d+) accepted \+ (\d+) refused \(.*throttled=(\d+)`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("report lacks the CONNECTs the broker answered:\n%s", report)
	}
	if accepted, _ := strconv.Atoi(m[1]); accepted != 20 {
		t.Errorf("the broker accepted %d CONNECTs, want 20 (one a link):\n%s", accepted, report)
	}
	if throttled, _ := strconv.Atoi(m[3]); throttled == 0 {
		t.Errorf("the quota refused no CONNECT:\n%s", report)
	}
	// The links counted the throttled attempts as the broker did.
	end := regexp.MustCompile(`(?m)^\+\d+s \(end\) +connected +20, connecting +0, backing off +0, gave up 0; throttled (\d+) `).FindStringSubmatch(report)
	if end == nil || end[1] != m[3] {
		t.Errorf("the links' last count (%q) does not say all 20 connected after %s throttled attempts:\n%s", end, m[3], report)
	}
}

// TestFleetNotBack: a broker that comes back refusing every connection
// keeps the fleet out until -timeout; the run fails, and its report still
// says how far the fleet got and that no link gave up.
func TestFleetNotBack(t *testing.T) {
	var out bytes.Buffer
	err := runParent([]string{"-n", "4", "-down", "100ms", "-reconnect-spread", "1s", "-reconnect-max", "1s", "-timeout", "10s",
		"-restart-faults", `{"RefuseConnections": true}`}, &out)
	if err == nil || !strings.Contains(err.Error(), "waiting for all links to reconnect") {
		t.Fatalf("run: error %v, want one waiting for all links to reconnect\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{
		"NOT ALL BACK: 0 of 4 reconnected",
		"none gave up: in each of ",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if !regexp.MustCompile(`(?m)^\+\d+s \(end\) +connected +0, connecting +\d, backing off +\d, gave up 0;`).MatchString(report) {
		t.Errorf("the links' last count does not say all 4 still trying:\n%s", report)
	}
}

// TestReportQuota checks the report under a quota from made-up counts:
// seconds within the rate fold, one over it is marked and counted, and
// a link whose Run returned is reported as given up.
func TestReportQuota(t *testing.T) {
	const s = int64(time.Second)
	base := 100 * s
	snap := func(at, connects, throttled int64) statsMsg {
		return statsMsg{At: at, Stats: devcloud.BrokerStats{Connects: connects,
			Refused: map[devcloud.BrokerRefusal]int64{devcloud.RefusedThrottled: throttled}}}
	}
	newFleet := func() *fleet {
		f := &fleet{n: 300, nBack: 300, rate: 100, burst: 100, started: base, back: make([]int64, 300), backBegun: make([]int64, 300)}
		for i := range f.back {
			// 100 links back in each of seconds 0, 1 and 3.
			f.back[i] = base + int64(i/100+i/200)*s + 10
			f.backBegun[i] = base
		}
		// The snapshot of +4 s comes early: second 3-4 is 0.6 s long, and
		// 70 CONNECTs are over the rate in it.
		f.stats = []statsMsg{snap(base, 0, 0), snap(base+s, 150, 50), snap(base+2*s, 250, 80),
			snap(base+3*s, 250, 80), snap(base+3*s+6*s/10, 320, 80), snap(base+5*s, 320, 80)}
		f.states = map[string][]statesMsg{"links-0": {
			{At: base - s, Connected: 300},
			{At: base + s/2, Connected: 100, BackingOff: 200, Throttled: 50, MaxThrottled: 1},
			{At: base + 4*s, Connected: 300, Throttled: 80, MaxThrottled: 2},
		}}
		return f
	}
	tests := []struct {
		name   string
		gaveUp int
		want   []string
	}{
		{"none gave up", 0, []string{
			"  0-1   s     100  33.3%  #################################    300 100.0%       150  > rate throttled=50",
			"  1-3   s     100 back in all, at most 100 in one second; 100 connects, at most 100 in one second; refused throttled=30",
			"  3-4   s     100  33.3%  #################################      0   0.0%        70  > rate",
			"connect quota 100/s (burst 100): at most 70 accepted CONNECTs in a second after the first 3 (second 3-4), 150 in the first 3",
			"seconds above the rate: 2 of 4 (0-1 s: 150, 3-4 s: 70)",
			"CONNECTs the broker answered in those seconds: 320 accepted + 80 refused (throttled=80) = 1.33 a link",
			"+0s            connected    100, connecting     0, backing off    200, gave up 0; throttled 50 (at most 1 a link)",
			"+4s (end)      connected    300, connecting     0, backing off      0, gave up 0; throttled 80 (at most 2 a link)",
			"none gave up: in each of 2 counts since the broker came back, every link was connected, connecting or backing off",
		}},
		{"one gave up", 1, []string{
			"GAVE UP: in one count 1 links were neither connected, connecting nor backing off",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			f := newFleet()
			f.out = &out
			f.states["links-0"][1].GaveUp = tt.gaveUp
			f.report()
			lines := strings.Split(out.String(), "\n")
			for _, want := range tt.want {
				if !slices.Contains(lines, want) {
					t.Errorf("report lacks the line\n%s\n%s", want, out.String())
				}
			}
		})
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
			got, err := parseFaults("-broker-faults", tt.in)
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
	want := map[int]brokerSecond{
		0: {devcloud.BrokerStats{Connects: 10, Refused: map[devcloud.BrokerRefusal]int64{}}, time.Second + time.Millisecond},
		1: {devcloud.BrokerStats{Connects: 3, Refused: map[devcloud.BrokerRefusal]int64{devcloud.RefusedFault: 5}}, time.Second - 5*time.Millisecond},
		// second 2-3 and 3-4: the snapshot at +3 s is missing
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(brokerSecond{})); diff != "" {
		t.Errorf("brokerPerSecond (-want +got):\n%s", diff)
	}
	if r := refusals(got[1].Refused); r != "fault=5" {
		t.Errorf("refusals = %q, want fault=5", r)
	}
}
