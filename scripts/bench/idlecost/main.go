// Command idlecost measures what an idle node costs on each of its links:
// the messages and bytes per hour it sends and receives on the event link
// (MQTT over WebSocket over TLS), the update channel (the Mender device
// API) and the cloud calls (the control plane).
//
// It runs the real agent binary on the configuration a user deploys
// (every link on, every interval at its default) against a dev stack
// (devcloud/devstack) whose servers count their traffic per link
// (devcloud.WireCounter: MQTT control packets each way, HTTP exchanges
// per endpoint with their bytes, TCP payload bytes, TCP segments). The
// stack serves this one node, so what its listeners see is the node's.
//
// Two runs, each on a fresh stack, measured from the moment the agent's
// start-up traffic has settled:
//
//   - production: the defaults, for -window. Measures directly what
//     recurs within the window (the MQTT keep-alive, anything periodic
//     this program does not know of), and the start-up, which is also what
//     a reconnect costs.
//   - scaled: the long periods shortened (poll interval, inventory
//     interval, keep-alive when over a minute), for -scaled-window. Gives
//     the cost of one occurrence of each; counts are linear in frequency,
//     so the hourly figure is the occurrence cost times the default rate.
//
// What happens less often than any window (the proactive reconnect before
// AWS's 24 h limit, the device token renewal) is its configured period
// times the cost measured at start-up. The keep-alive is measured both
// ways, and the program prints the two figures side by side as a check.
//
//	go run ./scripts/bench/idlecost -edgefort ./edgefort [-window 10m] [-scaled-window 8m]
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/devcloud/devstack"
	"github.com/edgefort/edgefort/iot"
)

func main() {
	bin := flag.String("edgefort", "", "edgefort `binary` to measure (required)")
	window := flag.Duration("window", 10*time.Minute, "measurement window of the production run")
	scaledWindow := flag.Duration("scaled-window", 8*time.Minute, "measurement window of the scaled run")
	poll := flag.Duration("scaled-poll", 2*time.Minute, "poll interval of the scaled run: over the agent's 90 s idle-connection timeout, so that each poll opens its own TLS connection as at the default")
	inventory := flag.Duration("scaled-inventory", 4*time.Minute, "inventory interval of the scaled run")
	keepAlive := flag.Duration("scaled-keepalive", iot.MinKeepAlive, "MQTT keep-alive of the scaled run")
	keepLogs := flag.Bool("keep", false, "keep the runs' state directories (agent logs) and print where")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "idlecost: -edgefort is required")
		os.Exit(2)
	}
	// Interrupted, a run still stops its agent and its stack.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prod, err := measure(ctx, *bin, "production", nil, *window, *keepLogs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlecost:", err)
		os.Exit(1)
	}
	scaled, err := measure(ctx, *bin, "scaled", map[string]map[string]string{
		"updates": {"poll_interval": poll.String(), "inventory_interval": inventory.String()},
		"iot":     {"keep_alive": keepAlive.String()},
	}, *scaledWindow, *keepLogs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlecost:", err)
		os.Exit(1)
	}
	report(os.Stdout, prod, scaled)
}

// result is one run: the configuration the agent ran, its start-up
// traffic and what the window saw.
type result struct {
	name    string
	cfg     *config.Config
	startup map[string]devcloud.WireStats // from the agent's start to settled
	window  map[string]devcloud.WireStats // the measurement window
	elapsed time.Duration                 // the window's length as measured
}

// measure starts a dev stack with counting servers, runs the agent on its
// configuration with the dev-only settings taken out and set overrides
// put in, waits for the start-up traffic to settle, and counts for window.
func measure(ctx context.Context, bin, name string, set map[string]map[string]string, window time.Duration, keep bool) (*result, error) {
	dir, err := os.MkdirTemp("", "edgefort-idlecost-")
	if err != nil {
		return nil, err
	}
	if keep {
		fmt.Fprintf(os.Stderr, "idlecost: %s run in %s\n", name, dir)
	} else {
		defer os.RemoveAll(dir)
	}
	wire := devcloud.NewWireCounter()
	stack, err := devstack.Start(ctx, devstack.Options{StateDir: dir, LogLevel: "warn", Cloud: devstack.CloudOptions{Wire: wire}})
	if err != nil {
		return nil, fmt.Errorf("%s: start the dev stack: %w", name, err)
	}
	defer stack.Close()
	path := filepath.Join(dir, "idlecost.yaml")
	cfg, err := productionConfig(stack.ConfigPath, path, set)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// The stack enrolled the node from this process, whose client keeps
	// its connection to the control plane open: not the node's traffic.
	wire.Forget()
	base := wire.Snapshot()
	cmd := exec.Command(bin, "run", "--config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	t0, err := settled(ctx, wire, cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (agent log: %s)", name, err, logf.Name())
	}
	start := time.Now()
	if err := sleep(ctx, window); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t1 := wire.Snapshot()
	return &result{name: name, cfg: cfg, startup: sub(t0, base), window: sub(t1, t0), elapsed: time.Since(start)}, nil
}

// shadowTick is how often the agent hands the Shadow its reported state
// (iot/node.go); the first tick after connecting reports the event link
// as connected, once.
const shadowTick = 30 * time.Second

// settled waits until the event link has subscribed and then no link has
// moved a byte for quiet, then one Shadow tick more so that the start-up's
// one-off Shadow update falls before the window, and returns the counts
// at that moment.
func settled(ctx context.Context, wire *devcloud.WireCounter, cmd *exec.Cmd) (map[string]devcloud.WireStats, error) {
	const quiet = 5 * time.Second
	deadline := time.Now().Add(2 * time.Minute)
	var last map[string]devcloud.WireStats
	var since time.Time
	for {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("start-up traffic did not settle within 2 minutes")
		}
		now := wire.Snapshot()
		if now[devcloud.WireEventLink].PacketsIn["Subscribe"] == 0 || !sameBytes(now, last) {
			last, since = now, time.Now()
		} else if time.Since(since) >= quiet {
			break
		}
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return nil, fmt.Errorf("agent exited: %w", err)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if err := sleep(ctx, shadowTick+quiet); err != nil {
		return nil, err
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		return nil, fmt.Errorf("agent exited: %w", err)
	}
	return wire.Snapshot(), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

func sameBytes(a, b map[string]devcloud.WireStats) bool {
	if len(a) != len(b) {
		return false
	}
	for k, s := range a {
		if s.BytesIn != b[k].BytesIn || s.BytesOut != b[k].BytesOut {
			return false
		}
	}
	return true
}

// productionConfig writes to out the dev stack's configuration without
// what only the dev tour sets: the client API (not a link to the cloud),
// the webhook target that points into it, and the update channel's short
// intervals; so every interval is the default. set then puts keys in.
// It returns the configuration as the agent will load it.
func productionConfig(in, out string, set map[string]map[string]string) (*config.Config, error) {
	data, err := os.ReadFile(in)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	delete(doc, "clients")
	section := func(name string) map[string]any {
		m, _ := doc[name].(map[string]any)
		if m == nil {
			m = map[string]any{}
			doc[name] = m
		}
		return m
	}
	delete(section("iot"), "webhook_target")
	for _, k := range []string{"poll_interval", "inventory_interval", "retry_interval"} {
		delete(section("updates"), k)
	}
	for sec, kv := range set {
		for k, v := range kv {
			section(sec)[k] = v
		}
	}
	if data, err = yaml.Marshal(doc); err != nil {
		return nil, err
	}
	if err := os.WriteFile(out, data, 0o600); err != nil {
		return nil, err
	}
	return config.Parse(out, data)
}

// sub returns a − b, link by link.
func sub(a, b map[string]devcloud.WireStats) map[string]devcloud.WireStats {
	out := map[string]devcloud.WireStats{}
	for k, s := range a {
		o := b[k]
		d := devcloud.WireStats{
			Conns: s.Conns - o.Conns, BytesIn: s.BytesIn - o.BytesIn, BytesOut: s.BytesOut - o.BytesOut,
			SegsIn: s.SegsIn - o.SegsIn, SegsOut: s.SegsOut - o.SegsOut,
			PacketsIn: subCounts(s.PacketsIn, o.PacketsIn), PacketsOut: subCounts(s.PacketsOut, o.PacketsOut),
		}
		if s.Exchanges != nil {
			d.Exchanges = map[string]devcloud.WireExchange{}
			for ep, x := range s.Exchanges {
				y := o.Exchanges[ep]
				if x != y {
					d.Exchanges[ep] = devcloud.WireExchange{Count: x.Count - y.Count, BytesIn: x.BytesIn - y.BytesIn, BytesOut: x.BytesOut - y.BytesOut}
				}
			}
		}
		out[k] = d
	}
	return out
}

func subCounts(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, n := range a {
		if d := n - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// endpoint finds the exchange of the endpoint whose pattern ends in
// suffix (the agent's Mender client picks the API version).
func endpoint(s devcloud.WireStats, suffix string) (string, devcloud.WireExchange) {
	for _, ep := range sortedKeys(s.Exchanges) {
		if strings.HasSuffix(ep, suffix) {
			return ep, s.Exchanges[ep]
		}
	}
	return "", devcloud.WireExchange{}
}
