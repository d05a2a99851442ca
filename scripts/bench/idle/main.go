// Command idle measures an idle agent: the time from exec to ready and the
// resident memory once it has settled, over several runs, side by side with
// a peer daemon measured the same way in the same run (Prometheus's
// node_exporter, a Go daemon serving /metrics, when installed).
//
// Two configurations: minimal (admin socket and metrics listener only) and
// links (the update channel, the control plane link and the event link all
// on, against a dev stack this program starts with devcloud/devstack: the
// Mender server, the control plane, the SigV4 broker with Jobs and Shadow).
// The dev stack runs in this process; only the agent's process is measured.
// With -base, a second binary (an older revision) is measured too, its runs
// interleaved with the first's so that both see the same machine.
//
// With -floor, the smallest Go HTTP daemon (./floor, built as the agent
// is) is measured too: what any Go daemon costs on this machine.
//
//	go run ./scripts/bench/idle -edgefort ./edgefort [-base ./edgefort-old] [-floor ./floor] [-peer /usr/bin/prometheus-node-exporter] [-runs 10]
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/devcloud/devstack"
)

func main() {
	edgefort := flag.String("edgefort", "./edgefort", "edgefort `binary` to measure")
	base := flag.String("base", "", "a second edgefort `binary` (e.g. an older revision) measured in the same run; empty to skip")
	peer := flag.String("peer", "/usr/bin/prometheus-node-exporter", "peer `binary` (node_exporter) to measure beside it; empty to skip")
	runs := flag.Int("runs", 10, "runs per binary and configuration")
	settle := flag.Duration("settle", 2*time.Second, "idle time after ready before reading RSS")
	links := flag.Bool("links", true, "also measure every link on against a dev stack")
	floor := flag.String("floor", "", "the floor `binary` (scripts/bench/idle/floor) measured beside it; empty to skip")
	flag.Parse()
	if err := run(*edgefort, *base, *peer, *runs, *settle, *links); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
	if *floor == "" {
		return
	}
	if err := interleave([]binary{{"floor (Go HTTP daemon)", *floor}}, "", *runs, func(bin string) (sample, error) { return measureFloor(bin, *settle) }); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

type binary struct{ name, path string }

func run(edgefort, base, peer string, runs int, settle time.Duration, links bool) error {
	bins := []binary{{"edgefort", edgefort}}
	if base != "" {
		bins = []binary{{"edgefort (base)", base}, {"edgefort", edgefort}}
	}
	fmt.Printf("%-40s %5s %12s %12s %12s %12s %12s %12s %12s\n", "daemon, configuration", "runs", "ready p50", "ready min", "ready max", "RSS p50", "RSS max", "anon p50", "file p50")
	if err := interleave(bins, "minimal", runs, func(bin string) (sample, error) { return measureMinimal(bin, settle) }); err != nil {
		return err
	}
	if links {
		dir, err := os.MkdirTemp("", "edgefort-bench-stack-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		stack, err := devstack.Start(context.Background(), devstack.Options{StateDir: dir, LogLevel: "warn"})
		if err != nil {
			return fmt.Errorf("start the dev stack: %w", err)
		}
		defer stack.Close()
		err = interleave(bins, "every link on, dev cloud", runs, func(bin string) (sample, error) { return measureLinks(bin, stack, settle) })
		if err != nil {
			return err
		}
	}
	if peer == "" {
		return nil
	}
	if _, err := os.Stat(peer); err != nil {
		fmt.Printf("%-40s skipped: %v\n", "node_exporter", err)
		return nil
	}
	return interleave([]binary{{"node_exporter", peer}}, "", runs, func(bin string) (sample, error) { return measurePeer(bin, settle) })
}

// sample is one run: the time to ready, and the resident memory split as
// /proc/PID/status splits it: RssAnon is the process's own memory (heap,
// stacks, the runtime's), RssFile the binary's pages it has mapped. Those
// are clean, shared and reclaimable. Each page fault on a cached binary
// maps the pages around it too (Linux's fault-around, 64 KiB), so code
// spread over the binary (every package's init, the runtime) maps most of
// its text and read-only data: about four fifths of a Go binary here.
type sample struct {
	ready                 time.Duration
	rssKB, anonKB, fileKB int
}

// interleave runs each binary runs times, alternating between them, and
// prints one line per binary.
func interleave(bins []binary, config string, runs int, measure func(bin string) (sample, error)) error {
	samples := make([][]sample, len(bins))
	for range runs {
		for i, b := range bins {
			s, err := measure(b.path)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", b.name, config, err)
			}
			samples[i] = append(samples[i], s)
		}
	}
	for i, b := range bins {
		name := b.name
		if config != "" {
			name += ", " + config
		}
		report(name, samples[i])
	}
	return nil
}

func report(name string, samples []sample) {
	var ready []time.Duration
	var rss, anon, file []int
	for _, s := range samples {
		ready = append(ready, s.ready)
		rss = append(rss, s.rssKB)
		anon = append(anon, s.anonKB)
		file = append(file, s.fileKB)
	}
	for _, l := range [][]int{rss, anon, file} {
		slices.Sort(l)
	}
	slices.Sort(ready)
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	mid := len(samples) / 2
	fmt.Printf("%-40s %5d %12s %12s %12s %8.1f MiB %8.1f MiB %8.1f MiB %8.1f MiB\n", name, len(samples),
		r(ready[mid]), r(ready[0]), r(ready[len(ready)-1]),
		float64(rss[mid])/1024, float64(rss[len(rss)-1])/1024, float64(anon[mid])/1024, float64(file[mid])/1024)
}

func measureMinimal(bin string, settle time.Duration) (sample, error) {
	dir, err := os.MkdirTemp("", "edgefort-bench-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	// Port 0: the agent binds a free port itself (readiness comes from the
	// admin socket), so no port is picked here and bound later.
	cfg := filepath.Join(dir, "edgefort.yaml")
	text := fmt.Sprintf("version: 1\nstate_dir: %s\nlog: {level: warn}\nmetrics: {listen: '127.0.0.1:0'}\n", filepath.Join(dir, "state"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return sample{}, err
	}
	// Ready means what readyz says: every component running, which
	// includes the metrics listener.
	cmd := exec.Command(bin, "run", "--config", cfg)
	return measure(cmd, adminReady(filepath.Join(dir, "state", "admin.sock")), settle)
}

// measureLinks runs the agent on the dev stack's configuration: the update
// channel (mutual TLS to the Mender server), the control plane link and
// the event link (MQTT over a SigV4-presigned WebSocket, with credentials
// the control plane vends), a client API virtual host. Ready is readyz
// answering 200 and the event link's connection to the broker open, the
// last of the links to come up; the RSS is read after settle more.
func measureLinks(bin string, stack *devstack.Stack, settle time.Duration) (sample, error) {
	_, port, err := net.SplitHostPort(stack.Info.Broker.Host)
	if err != nil {
		return sample{}, fmt.Errorf("broker host %q: %w", stack.Info.Broker.Host, err)
	}
	brokerPort, err := strconv.Atoi(port)
	if err != nil {
		return sample{}, fmt.Errorf("broker host %q: %w", stack.Info.Broker.Host, err)
	}
	cmd := exec.Command(bin, "run", "--config", stack.ConfigPath)
	ready := adminReady(filepath.Join(stack.Config.StateDir, "admin.sock"))
	return measure(cmd, func(pid int) (bool, error) {
		ok, err := ready(pid)
		if !ok || err != nil {
			return ok, err
		}
		return connectedTo(pid, brokerPort)
	}, settle)
}

func measureFloor(bin string, settle time.Duration) (sample, error) {
	dir, err := os.MkdirTemp("", "edgefort-bench-floor-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "floor.sock")
	return measure(exec.Command(bin, socket), adminReady(socket), settle)
}

func measurePeer(bin string, settle time.Duration) (sample, error) {
	port, err := freePort()
	if err != nil {
		return sample{}, err
	}
	cmd := exec.Command(bin, "--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	return measure(cmd, httpReady(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)), settle)
}

func adminReady(socket string) func(int) (bool, error) {
	admin := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	return httpReady(admin, "http://edgefort/readyz")
}

// httpReady: url answers 200.
func httpReady(client *http.Client, url string) func(int) (bool, error) {
	client.Timeout = time.Second
	return func(int) (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("%s: %s", url, resp.Status)
	}
}

// measure starts cmd, polls ready until it says so, waits settle, reads
// VmRSS, then stops the process with SIGTERM.
func measure(cmd *exec.Cmd, ready func(pid int) (bool, error), settle time.Duration) (sample, error) {
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := start.Add(10 * time.Second)
	var took time.Duration
	for {
		ok, err := ready(cmd.Process.Pid)
		if ok {
			took = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			return sample{}, fmt.Errorf("%s not ready within 10 s (last: %v)", cmd.Path, err)
		}
		time.Sleep(500 * time.Microsecond)
	}
	time.Sleep(settle)
	s := sample{ready: took}
	err := readStatus(cmd.Process.Pid, map[string]*int{"VmRSS": &s.rssKB, "RssAnon": &s.anonKB, "RssFile": &s.fileKB})
	return s, err
}

// readStatus reads the kB fields named in into from /proc/PID/status.
func readStatus(pid int, into map[string]*int) error {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		key, rest, _ := strings.Cut(line, ":")
		if p, ok := into[key]; ok {
			if *p, err = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB")); err != nil {
				return fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
			}
			found++
		}
	}
	if found != len(into) {
		return fmt.Errorf("/proc/%d/status: %d of %d memory fields", pid, found, len(into))
	}
	return nil
}

// connectedTo reports whether process pid holds an established TCP
// connection to 127.0.0.1:port: its sockets' inodes (/proc/PID/fd) looked
// up in the network namespace's table (/proc/PID/net/tcp).
func connectedTo(pid, port int) (bool, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
		_ = err // a descriptor closed meanwhile
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false, err
	}
	defer f.Close()
	// 127.0.0.1 as /proc/net/tcp prints it: the address in host order (little-endian here).
	want := strings.ToUpper(hex.EncodeToString([]byte{1, 0, 0, 127})) + fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[2] == want && fields[3] == "01" && inodes[fields[9]] {
			return true, nil
		}
	}
	return false, fmt.Errorf("no connection to 127.0.0.1:%d", port)
}

// freePort returns a port that was free a moment ago, for a peer program
// that must be told its port; should another process take it first, the
// peer fails to start and measure reports it not ready.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
