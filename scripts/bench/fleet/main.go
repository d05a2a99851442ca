// Command fleet simulates a fleet of event links against one broker and
// measures how their reconnects spread after the broker restarts.
//
// It is one program in three roles, each its own process, so that each
// process holds about one descriptor per link:
//
//   - the parent (no role argument) orchestrates: it starts the broker
//     child, then -procs links children sharing the -n links, waits until
//     all are connected, asks each links child for its memory figures
//     (and, with -profile-dir, heap and goroutine profiles), stops the
//     broker for -down, starts it again on the same address, and prints
//     the per-second histogram of reconnects as a share of N: links back
//     in that second, links whose successful attempt began in it (the load
//     the fleet offered, which a broker that stalls for a moment does not
//     bunch up), and what the broker counted in it (CONNECTs accepted,
//     refusals by reason); then the largest shares and the time until all
//     were back, and the links by state each minute (whether any gave
//     up). With -restart-faults the broker comes back with those faults
//     (the fleet lost the broker and meets, say, a connect quota on its
//     return); under a quota the report also gives the accepted CONNECTs
//     against the rate and the refusals;
//   - "broker" runs devcloud's SigV4-checking broker on a fixed loopback
//     address (access keys FLEET000000.. with one fixed secret, things
//     fleet-000000..), its faults decoded from -broker-faults (JSON of
//     devcloud.BrokerFaults) and set before it serves, and -restart-faults
//     set before it serves again; it closes and starts again when the
//     parent says so, and reports its counters every second;
//   - "links" runs a range of iot.Link instances, each with its own thing
//     and static credentials, the real presigner, dialer and default
//     backoff, and reports every link that connects or drops, and every
//     second how many are in each state (and whether any Run returned:
//     a link that gave up).
//
// Children talk to the parent in JSON lines on stdout (msg) and take
// commands on stdin (stop, start, mem); they exit when stdin closes, so
// they never outlive the parent. TLS and the SigV4 check run end to end,
// between each link and the broker.
//
//	go run ./scripts/bench/fleet [-n 1000] [-procs 1] [-down 10s] [-broker-faults '{"RefuseConnections":false}'] [-restart-faults '{"ConnectRate":100}']
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/devcloud"
)

const secret = "fleet-secret-not-for-production"

func main() {
	role, args := "", os.Args[1:]
	if len(args) > 0 && (args[0] == "broker" || args[0] == "links") {
		role, args = args[0], args[1:]
	}
	var err error
	switch role {
	case "broker":
		err = runBroker(args)
	case "links":
		err = runLinks(args)
	default:
		err = runParent(args, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, strings.TrimSpace("fleet "+role)+":", err)
		os.Exit(1)
	}
}

// msg is one line a child writes to the parent; the fields set say what
// it reports. Times are Unix nanoseconds, the children's wall clock (the
// same machine's).
type msg struct {
	Ready   *readyMsg  `json:"ready,omitempty"`   // broker: serving
	Stopped int64      `json:"stopped,omitempty"` // broker: closed at
	Started int64      `json:"started,omitempty"` // broker: serving again at
	Stats   *statsMsg  `json:"stats,omitempty"`   // broker: counters, every second from each start
	Up      [][3]int64 `json:"up,omitempty"`      // links: [index, connected at, attempt started at] of links that connected
	Down    []int      `json:"down,omitempty"`    // links: indexes of links that left connected
	Mem     *memMsg    `json:"mem,omitempty"`     // links: answer to mem
	States  *statesMsg `json:"states,omitempty"`  // links: its links by state, every second
}

// statesMsg counts a links process's links by state at one time: every
// link is connected, connecting, backing off, not started yet or, if its
// Run returned while the fleet still ran, gave up. The counters are over
// the links' lives (iot.Status).
type statesMsg struct {
	At           int64 `json:"at"`
	Connected    int   `json:"connected"`
	Connecting   int   `json:"connecting"`
	BackingOff   int   `json:"backing_off"`
	NotStarted   int   `json:"not_started"`
	GaveUp       int   `json:"gave_up"`
	Throttled    int64 `json:"throttled"`     // attempts throttled, all links
	MaxThrottled int   `json:"max_throttled"` // most attempts throttled of one link
	Reconnects   int64 `json:"reconnects"`    // attempts after each link's first, all links
}

type readyMsg struct {
	Addr   string `json:"addr"`
	Region string `json:"region"`
	CA     string `json:"ca"` // file of the CA certificate (PEM)
}

type statsMsg struct {
	At          int64                `json:"at"`
	Connections int                  `json:"connections"`
	Stats       devcloud.BrokerStats `json:"stats"`
}

type memMsg struct {
	Links      int    `json:"links"`
	RSSKiB     int    `json:"rss_kib"`
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapSys    uint64 `json:"heap_sys"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"` // all the Go runtime has from the OS
}

// writer writes msgs to stdout, one JSON line each, from any goroutine.
type writer struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
}

func newWriter() *writer {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	return &writer{w: w, enc: json.NewEncoder(w)}
}

func (w *writer) send(m msg) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(m); err != nil {
		return err
	}
	return w.w.Flush()
}

// accessKey and thing name link i.
func accessKey(i int) string { return fmt.Sprintf("FLEET%06d", i) }
func thing(i int) string     { return fmt.Sprintf("fleet-%06d", i) }

// linkIndex is the i of accessKey(i), if i < n.
func linkIndex(akid string, n int) (int, bool) {
	num, ok := strings.CutPrefix(akid, "FLEET")
	if !ok || len(num) != 6 {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

// parseFaults decodes the value s of flag (-broker-faults or
// -restart-faults): a JSON object of devcloud.BrokerFaults fields (names
// match case-insensitively); an unknown field is an error, so a typo does
// not run an unthrottled benchmark.
func parseFaults(flag, s string) (devcloud.BrokerFaults, error) {
	var f devcloud.BrokerFaults
	if s == "" {
		return f, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("%s %q: %w", flag, s, err)
	}
	if dec.More() {
		return f, fmt.Errorf("%s %q: %w", flag, s, errors.New("trailing data after the object"))
	}
	return f, nil
}

// vmRSS is the resident set of this process in KiB.
func vmRSS() (int, error) { return procRSS("self") }

// procRSS is the resident set of process pid ("self" for this one) in KiB.
func procRSS(pid string) (int, error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%s/status", pid)
}

// procCPU is the CPU time (user and system) process pid has used.
func procCPU(pid string) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which ends with the last ')':
	// state is the 1st, utime the 12th, stime the 13th (proc(5)).
	i := strings.LastIndex(string(data), ") ")
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data)[i+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100
