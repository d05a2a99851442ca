// Command idle measures an idle agent: the time from exec to ready and the
// resident memory once it has settled, over several runs, side by side with
// a peer daemon measured the same way in the same run (Prometheus's
// node_exporter, a Go daemon serving /metrics, when installed).
//
//	go run ./scripts/bench/idle -edgefort ./edgefort [-peer /usr/bin/prometheus-node-exporter] [-runs 10]
package main

import (
	"context"
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
)

func main() {
	edgefort := flag.String("edgefort", "./edgefort", "edgefort `binary` to measure")
	peer := flag.String("peer", "/usr/bin/prometheus-node-exporter", "peer `binary` (node_exporter) to measure beside it; empty to skip")
	runs := flag.Int("runs", 10, "runs per binary")
	settle := flag.Duration("settle", 2*time.Second, "idle time before reading RSS")
	flag.Parse()

	fmt.Printf("%-16s %5s %14s %14s %14s %12s %12s\n", "daemon", "runs", "ready p50", "ready min", "ready max", "RSS p50", "RSS max")
	report("edgefort", *runs, func() (sample, error) { return measureEdgefort(*edgefort, *settle) })
	if *peer != "" {
		if _, err := os.Stat(*peer); err != nil {
			fmt.Printf("%-16s skipped: %v\n", "node_exporter", err)
			return
		}
		report("node_exporter", *runs, func() (sample, error) { return measurePeer(*peer, *settle) })
	}
}

type sample struct {
	ready time.Duration
	rssKB int
}

func report(name string, runs int, measure func() (sample, error)) {
	var ready []time.Duration
	var rss []int
	for range runs {
		s, err := measure()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(1)
		}
		ready = append(ready, s.ready)
		rss = append(rss, s.rssKB)
	}
	slices.Sort(ready)
	slices.Sort(rss)
	fmt.Printf("%-16s %5d %14s %14s %14s %10.1f MiB %8.1f MiB\n", name, runs,
		ready[len(ready)/2].Round(10*time.Microsecond), ready[0].Round(10*time.Microsecond), ready[len(ready)-1].Round(10*time.Microsecond),
		float64(rss[len(rss)/2])/1024, float64(rss[len(rss)-1])/1024)
}

func measureEdgefort(bin string, settle time.Duration) (sample, error) {
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
	socket := filepath.Join(dir, "state", "admin.sock")
	admin := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	// Ready means what readyz says: every component running, which
	// includes the metrics listener.
	return measure(exec.Command(bin, "run", "--config", cfg), admin, "http://edgefort/readyz", settle)
}

func measurePeer(bin string, settle time.Duration) (sample, error) {
	port, err := freePort()
	if err != nil {
		return sample{}, err
	}
	cmd := exec.Command(bin, "--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	return measure(cmd, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), settle)
}

// measure starts cmd, polls url until it answers 200, waits settle, reads
// VmRSS, then stops the process with SIGTERM.
func measure(cmd *exec.Cmd, client *http.Client, url string, settle time.Duration) (sample, error) {
	client.Timeout = time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := start.Add(10 * time.Second)
	var ready time.Duration
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = time.Since(start)
				break
			}
		}
		if time.Now().After(deadline) {
			return sample{}, fmt.Errorf("%s not ready within 10 s (last error %v)", cmd.Path, err)
		}
		time.Sleep(500 * time.Microsecond)
	}
	time.Sleep(settle)
	rss, err := vmRSS(cmd.Process.Pid)
	return sample{ready: ready, rssKB: rss}, err
}

func vmRSS(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
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
