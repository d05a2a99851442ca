package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/edgefort/edgefort/iot"
)

// options are the parent's flags.
type options struct {
	n, procs, startRate     int
	down, timeout           time.Duration
	spread, maxDelay        time.Duration
	addr, faults, profileTo string
	restartFaults           string
}

// runParent orchestrates a run and writes its report to out.
func runParent(args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1000, "number of links")
	fs.IntVar(&o.procs, "procs", 1, "number of links processes sharing the links")
	fs.IntVar(&o.startRate, "start-rate", 500, "links started per second by each links process")
	fs.DurationVar(&o.down, "down", 10*time.Second, "how long the broker stays down")
	fs.DurationVar(&o.spread, "reconnect-spread", iot.DefaultReconnectSpread, "the links' ReconnectSpread")
	fs.DurationVar(&o.maxDelay, "reconnect-max", iot.DefaultReconnectMax, "the links' ReconnectMax")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up waiting for the links after this long")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "loopback address of the broker (port 0: a free one, kept across the restart)")
	fs.StringVar(&o.faults, "broker-faults", "", `devcloud.BrokerFaults as JSON, set on the broker before it serves, e.g. '{"RefuseConnections":true}'`)
	fs.StringVar(&o.restartFaults, "restart-faults", "", `devcloud.BrokerFaults as JSON, set on the broker when it comes back after -down (empty: -broker-faults stay), e.g. '{"ConnectRate":100}'`)
	fs.StringVar(&o.profileTo, "profile-dir", "", "directory where each links process writes its heap and goroutine profiles once all are connected")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.n < 1 || o.n > 999999:
		return fmt.Errorf("-n %d: want 1 to 999999", o.n)
	case o.procs < 1 || o.procs > o.n:
		return fmt.Errorf("-procs %d: want 1 to -n (%d)", o.procs, o.n)
	}
	quota, err := parseFaults("-broker-faults", o.faults)
	if err != nil {
		return err
	}
	if o.restartFaults != "" {
		if quota, err = parseFaults("-restart-faults", o.restartFaults); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f := &fleet{
		out:       out,
		n:         o.n,
		events:    make(chan event, 64),
		connected: make([]bool, o.n),
		back:      make([]int64, o.n),
		backBegun: make([]int64, o.n),
		mem:       map[string]*memMsg{},
		states:    map[string][]statesMsg{},
	}
	if quota.ConnectRate > 0 {
		f.rate, f.burst = quota.ConnectRate, quota.ConnectBurst
		if f.burst <= 0 { // devcloud's default: one second's worth
			f.burst = max(1, int(math.Ceil(quota.ConnectRate)))
		}
	}
	defer f.shutdown()
	return f.run(o, dir)
}

// child is one child process; its stdout lines arrive on fleet.events.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when its stdout has ended
}

// event is a line from a child, or the end of its stdout (eof).
type event struct {
	from string
	m    msg
	eof  bool
	err  error
}

// fleet is the parent's view of its children, fed by handle.
type fleet struct {
	out      io.Writer
	n        int
	events   chan event
	broker   *child
	children []*child

	ready       *readyMsg
	connected   []bool
	nConnected  int
	started     int64   // when the broker was back
	back        []int64 // when each link first connected after started, 0 if not yet
	backBegun   []int64 // when the attempt that brought it back began
	nBack       int
	stats       []statsMsg // the broker's, from started on
	stopped     int64
	mem         map[string]*memMsg     // by child
	states      map[string][]statesMsg // by child, in the order sent
	rate        float64                // the broker's connect quota once back, per second; 0: none
	burst       int                    // and its burst
	secWidth    int                    // digits of the histogram's seconds
	shuttingOff bool
}

// run starts the broker and the links, measures the links processes,
// restarts the broker and reports how the links came back.
func (f *fleet) run(o options, dir string) error {
	if err := f.startAll(o, dir); err != nil {
		return err
	}
	if err := f.measureMemory(o.profileTo); err != nil {
		return err
	}
	if err := f.restartBroker(o.down, o.restartFaults); err != nil {
		return err
	}
	// Timed out, the report still says how far the fleet got.
	err := f.until("all links to reconnect", o.timeout, func() bool { return f.nBack == f.n })
	last := f.lastBack()
	// The broker's counters for the last second, and the links' counts
	// by state after the last link came back, arrive up to a second later.
	_ = f.until("the broker's last counters", 3*time.Second, func() bool {
		return len(f.stats) > 0 && f.stats[len(f.stats)-1].At >= f.started+int64((last/time.Second+1)*time.Second)
	})
	_ = f.until("the links' last counts", 3*time.Second, func() bool {
		for _, c := range f.children {
			ss := f.states[c.name]
			if len(ss) == 0 || ss[len(ss)-1].At <= f.started+int64(last) {
				return false
			}
		}
		return true
	})
	f.report()
	f.printProcesses()
	return err
}

// startAll starts the broker, then the links processes, and waits until
// every link is connected.
func (f *fleet) startAll(o options, dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	f.broker, err = f.start("broker", self, "broker", "-n", strconv.Itoa(o.n), "-addr", o.addr, "-dir", dir,
		"-broker-faults", o.faults, "-restart-faults", o.restartFaults)
	if err != nil {
		return err
	}
	if err := f.until("the broker to serve", 30*time.Second, func() bool { return f.ready != nil }); err != nil {
		return err
	}
	fmt.Fprintf(f.out, "# broker (pid %d) on %s; broker faults %s; load average %s\n", f.broker.cmd.Process.Pid, f.ready.Addr, orNone(o.faults), loadAvg())

	begin := time.Now()
	for p := range o.procs {
		first, count := p*o.n/o.procs, (p+1)*o.n/o.procs-p*o.n/o.procs
		c, err := f.start(fmt.Sprintf("links-%d", p), self, "links", "-first", strconv.Itoa(first), "-count", strconv.Itoa(count),
			"-addr", f.ready.Addr, "-region", f.ready.Region, "-ca", f.ready.CA, "-start-rate", strconv.Itoa(o.startRate),
			"-reconnect-spread", o.spread.String(), "-reconnect-max", o.maxDelay.String(), "-profile="+strconv.FormatBool(o.profileTo != ""))
		if err != nil {
			return err
		}
		f.children = append(f.children, c)
	}
	if err := f.until("all links to connect", o.timeout, func() bool { return f.nConnected == f.n }); err != nil {
		return err
	}
	fmt.Fprintf(f.out, "# %d links in %d links process(es) connected in %v\n", o.n, o.procs, time.Since(begin).Round(time.Millisecond))
	return nil
}

// restartBroker stops the broker, waits down and starts it again, with
// faults (JSON) if set.
func (f *fleet) restartBroker(down time.Duration, faults string) error {
	if err := f.send(f.broker, "stop"); err != nil {
		return err
	}
	if err := f.until("the broker to stop", 30*time.Second, func() bool { return f.stopped != 0 }); err != nil {
		return err
	}
	end := time.Unix(0, f.stopped).Add(down)
	if err := f.until("the outage", down+time.Minute, func() bool { return !time.Now().Before(end) }); err != nil {
		return err
	}
	noticed := f.n - f.nConnected
	if err := f.send(f.broker, "start"); err != nil {
		return err
	}
	if err := f.until("the broker to start again", 30*time.Second, func() bool { return f.started != 0 }); err != nil {
		return err
	}
	fmt.Fprintf(f.out, "# broker down %v (%d of %d links saw it go), back at +%v on %s", down, noticed, f.n,
		time.Duration(f.started-f.stopped).Round(time.Millisecond), f.ready.Addr)
	if faults != "" {
		fmt.Fprintf(f.out, " with faults %s", faults)
	}
	fmt.Fprintln(f.out)
	return nil
}

// printProcesses prints what each child has used so far.
func (f *fleet) printProcesses() {
	use := func(c *child) string {
		pid := strconv.Itoa(c.cmd.Process.Pid)
		rss, err1 := procRSS(pid)
		cpu, err2 := procCPU(pid)
		if err := errors.Join(err1, err2); err != nil {
			return err.Error()
		}
		return fmt.Sprintf("RSS %.1f MiB, CPU %v", float64(rss)/1024, cpu.Round(10*time.Millisecond))
	}
	fmt.Fprintf(f.out, "# broker process: %s\n", use(f.broker))
	for _, c := range f.children {
		fmt.Fprintf(f.out, "# %s process: %s\n", c.name, use(c))
	}
	fmt.Fprintf(f.out, "# load average at the end: %s\n", loadAvg())
}

// loadAvg is the 1, 5 and 15 minute load averages: how busy the shared
// machine was.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:min(3, len(f))], " ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// start runs this program as a child in role, its stdout read into
// f.events.
func (f *fleet) start(name, self string, args ...string) (*child, error) {
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20) // a line may report every link
		for sc.Scan() {
			var m msg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				f.events <- event{from: name, eof: true, err: fmt.Errorf("bad line %.80q: %w", sc.Text(), err)}
				return
			}
			f.events <- event{from: name, m: m}
		}
		f.events <- event{from: name, eof: true, err: sc.Err()}
	}()
	return c, nil
}

func (f *fleet) send(c *child, cmd string) error {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return fmt.Errorf("tell %s %q: %w", c.name, cmd, err)
	}
	return nil
}

// until handles events until cond holds, polling it every 50 ms too.
func (f *fleet) until(what string, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		select {
		case e := <-f.events:
			if err := f.handle(e); err != nil {
				return err
			}
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("waiting for %s: not done after %v (%d of %d links connected, %d back)", what, timeout, f.nConnected, f.n, f.nBack)
		}
	}
	return nil
}

func (f *fleet) handle(e event) error {
	if e.eof {
		if f.shuttingOff && e.err == nil {
			return nil
		}
		return fmt.Errorf("%s child ended: %v", e.from, cmpErr(e.err))
	}
	m := e.m
	if m.Ready != nil {
		f.ready = m.Ready
	}
	if m.Stopped != 0 {
		f.stopped = m.Stopped
	}
	if m.Started != 0 {
		f.started = m.Started
	}
	if m.Stats != nil && f.started != 0 {
		f.stats = append(f.stats, *m.Stats)
	}
	if m.Mem != nil {
		f.mem[e.from] = m.Mem
	}
	if m.States != nil {
		f.states[e.from] = append(f.states[e.from], *m.States)
	}
	for _, u := range m.Up {
		i, at, begun := int(u[0]), u[1], u[2]
		if i < 0 || i >= f.n {
			return fmt.Errorf("%s reported link %d of %d", e.from, i, f.n)
		}
		if !f.connected[i] {
			f.connected[i] = true
			f.nConnected++
		}
		if f.started != 0 && at >= f.started && f.back[i] == 0 {
			f.back[i] = at
			f.backBegun[i] = begun
			f.nBack++
		}
	}
	for _, i := range m.Down {
		if i >= 0 && i < f.n && f.connected[i] {
			f.connected[i] = false
			f.nConnected--
		}
	}
	return nil
}

func cmpErr(err error) error {
	if err == nil {
		return errors.New("its output closed")
	}
	return err
}

// measureMemory asks every links process for its figures and prints them.
func (f *fleet) measureMemory(profileTo string) error {
	for _, c := range f.children {
		if err := f.send(c, "mem "+profileTo); err != nil {
			return err
		}
	}
	if err := f.until("the memory figures", time.Minute, func() bool { return len(f.mem) == len(f.children) }); err != nil {
		return err
	}
	var total memMsg
	for _, c := range f.children {
		m := f.mem[c.name]
		total.Links += m.Links
		total.RSSKiB += m.RSSKiB
		total.Goroutines += m.Goroutines
		total.HeapInuse += m.HeapInuse
		total.StackInuse += m.StackInuse
		total.Sys += m.Sys
	}
	n := float64(total.Links)
	fmt.Fprintf(f.out, "# links process(es), all connected, after a GC: RSS %.1f MiB = %.1f KiB a link; Go heap in use %.1f KiB, stacks %.1f KiB, %.1f goroutines a link\n",
		float64(total.RSSKiB)/1024, float64(total.RSSKiB)/n, float64(total.HeapInuse)/1024/n, float64(total.StackInuse)/1024/n, float64(total.Goroutines)/n)
	if profileTo != "" {
		fmt.Fprintf(f.out, "# heap and goroutine profiles in %s\n", profileTo)
	}
	return nil
}

// shutdown closes the children's stdin, which ends them, and waits; a
// child still running after 30 s is killed.
func (f *fleet) shutdown() {
	f.shuttingOff = true
	all := append([]*child{}, f.children...)
	if f.broker != nil {
		all = append(all, f.broker)
	}
	for _, c := range all {
		c.stdin.Close()
	}
	deadline := time.After(30 * time.Second)
	for _, c := range all {
	drain:
		for {
			select {
			case <-f.events:
			case <-c.done:
				break drain
			case <-deadline:
				deadline = nil
				for _, c := range all {
					c.cmd.Process.Kill() // an error means it has ended
				}
			}
		}
		if err := c.cmd.Wait(); err != nil {
			fmt.Fprintf(os.Stderr, "fleet: %s: %v\n", c.name, err)
		}
	}
}
