package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/devcloud/devstack"
)

func newFaultCmd() *command {
	c := &command{
		name:  "fault",
		short: "play the cloud's limits and outages against the running dev node",
		long: `Turn devcloud's fault knobs on and off while the dev node runs, to see what
it does when the cloud says no: AWS IoT's connect quota or a network cut on
the event link (broker), Hosted Mender's 429 on the update channel
(mender). Each command reads the knobs in force, changes those its flags
name, and prints the knobs and the server's counters; without flags it
only prints them. 'edgefort status' and 'edgefort update status' show the
node's side.

  edgefort-dev fault broker --connect-rate 0.01 --spent --drop
  edgefort status                       # event link ... (N throttled by the service)
  edgefort-dev fault broker --clear
  edgefort-dev fault mender --429 --retry-after 30s
  edgefort update check; edgefort update status
  edgefort-dev fault mender --clear`,
		flags: flag.NewFlagSet("fault", flag.ContinueOnError),
		subs:  []*command{newFaultBrokerCmd(), newFaultMenderCmd()},
	}
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if len(args) == 0 {
			return usageError{fmt.Sprintf("%s: want broker or mender (see '%s --help')", c.path(), c.path())}
		}
		return usageError{fmt.Sprintf("%s: %q is not broker or mender (see '%s --help')", c.path(), args[0], c.path())}
	}
	return c
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func newFaultBrokerCmd() *command {
	c := &command{
		name:  "fault broker",
		short: "AWS IoT's connect quotas, refusals and network cuts on the event link",
		long: `Set the fault knobs of devcloud's broker, the dev stand-in for AWS IoT Core,
and print them with its counters. A refused CONNECT is answered CONNACK 0x03
(server unavailable) and counted "throttled"; the node's event link counts
it as throttled by the service and backs off further (reconnect_spread
doubling), so 'edgefort status' shows "N throttled by the service".

What each knob emulates:
  --connect-rate   AWS IoT's "connect requests per second per account"
                   (CloudWatch Connect.Throttle): a token bucket of that
                   rate holding --burst; refused CONNECTs count too
  --spent          the rest of the fleet has just spent the burst: one dev
                   node alone never connects faster than a rate of 1/s
  --client-id-throttle  AWS's one CONNECT a second per client ID
                   (Connect.ClientIDThrottle)
  --refuse         the endpoint down or shedding load: every WebSocket
                   upgrade answered 503 until cleared
  --drop           a network cut: every connection closed now, without an
                   MQTT DISCONNECT (persistent sessions stay)

  edgefort-dev fault broker --connect-rate 0.01 --spent --drop
  edgefort-dev fault broker --clear`,
		flags: flag.NewFlagSet("fault broker", flag.ContinueOnError),
	}
	fs := c.flags
	cfgPath := fs.String("config", configPath(), "configuration `FILE` of the running edgefort-dev (its banner names it)")
	k := brokerKnobs{
		rate:     fs.Float64("connect-rate", 0, "allow `RATE` CONNECTs a second, e.g. 0.5 (0 removes the quota)"),
		burst:    fs.Int("burst", 0, "CONNECTs the bucket holds, `N` (default: one second's worth, at least 1)"),
		spent:    fs.Bool("spent", false, "start the bucket empty (with --connect-rate)"),
		clientID: fs.Bool("client-id-throttle", false, "refuse a CONNECT within a second of the same client ID's last"),
		refuse:   fs.Bool("refuse", false, "answer every WebSocket upgrade 503 until cleared"),
		drop:     fs.Bool("drop", false, "cut every connection now"),
		clear:    fs.Bool("clear", false, "turn every knob off first"),
	}
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("%s: unexpected argument %q (see '%s --help')", c.path(), args[0], c.path())}
		}
		set := setFlags(fs)
		if *k.rate < 0 || *k.burst < 0 {
			return usageError{fmt.Sprintf("%s: want --connect-rate and --burst of 0 or more", c.path())}
		}
		cl, err := devstack.Open(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer cl.Close()
		f, err := cl.BrokerFaults(ctx)
		if err != nil {
			return err
		}
		delete(set, "config")
		if len(set) > 0 {
			if f, err = cl.SetBrokerFaults(ctx, k.apply(f, set)); err != nil {
				return err
			}
		}
		st, err := cl.BrokerStatus(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "faults:   %s\n", describeBrokerFaults(f))
		fmt.Fprintf(stdout, "counters: %s\n", describeBrokerStatus(st))
		return nil
	}
	return c
}

// brokerKnobs are the flags of fault broker.
type brokerKnobs struct {
	rate                                 *float64
	burst                                *int
	spent, clientID, refuse, drop, clear *bool
}

// apply changes f as the flags given (set) say.
func (k brokerKnobs) apply(f devcloud.BrokerFaults, set map[string]bool) devcloud.BrokerFaults {
	if *k.clear {
		f = devcloud.BrokerFaults{}
	}
	if set["connect-rate"] {
		f.ConnectRate = *k.rate
		if *k.rate == 0 {
			f.ConnectBurst, f.ConnectSpent = 0, false // they need a rate
		}
	}
	if set["burst"] {
		f.ConnectBurst = *k.burst
	}
	if set["spent"] {
		f.ConnectSpent = *k.spent
	}
	if set["client-id-throttle"] {
		f.ClientIDThrottle = *k.clientID
	}
	if set["refuse"] {
		f.RefuseConnections = *k.refuse
	}
	f.DropConnections = *k.drop
	return f
}

func describeBrokerFaults(f devcloud.BrokerFaults) string {
	var parts []string
	if f.ConnectRate > 0 {
		q := fmt.Sprintf("connect rate %g/s", f.ConnectRate)
		if f.ConnectBurst > 0 {
			q += fmt.Sprintf(" (burst %d)", f.ConnectBurst)
		}
		if f.ConnectSpent {
			q += ", bucket spent at the start"
		}
		parts = append(parts, q)
	}
	if f.ClientIDThrottle {
		parts = append(parts, "one CONNECT a second per client ID")
	}
	if f.RefuseConnections {
		parts = append(parts, "refusing every upgrade (503)")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func describeBrokerStatus(st devstack.BrokerStatus) string {
	s := fmt.Sprintf("%d connected, %d connects, %d dropped", st.Connections, st.Connects, st.Dropped)
	if len(st.Refused) > 0 {
		var r []string
		for _, k := range slices.Sorted(maps.Keys(st.Refused)) {
			r = append(r, fmt.Sprintf("%s=%d", k, st.Refused[k]))
		}
		s += ", refused " + strings.Join(r, " ")
	}
	return s
}

func newFaultMenderCmd() *command {
	c := &command{
		name:  "fault mender",
		short: "Hosted Mender's 429 Too Many Requests on the update channel",
		long: `Set the fault knobs of devcloud's Mender server, the dev update server, and
print them with its request counters.

What each knob emulates:
  --429            Hosted Mender's rate limit: requests to --endpoint (the
                   device's poll for deployments, by default) answered 429
                   Too Many Requests with Retry-After, until --clear (or
                   for the next --count requests). The node must not ask
                   again before Retry-After ('edgefort update status'
                   shows the failed check and the next one).

  edgefort-dev fault mender --429 --retry-after 30s
  edgefort update check
  edgefort-dev fault mender              # requests next=... did not grow
  edgefort-dev fault mender --clear`,
		flags: flag.NewFlagSet("fault mender", flag.ContinueOnError),
	}
	fs := c.flags
	cfgPath := fs.String("config", configPath(), "configuration `FILE` of the running edgefort-dev (its banner names it)")
	tooMany := fs.Bool("429", false, "answer --endpoint with 429 Too Many Requests")
	retryAfter := fs.Duration("retry-after", 30*time.Second, "the 429's Retry-After (`DURATION`, whole seconds)")
	count := fs.Int("count", 0, "answer only the next `N` requests 429 (default: until --clear)")
	endpoint := fs.String("endpoint", string(devcloud.EndpointNext), "the `ENDPOINT` --429 answers: "+endpointNames())
	clear := fs.Bool("clear", false, "turn every knob off first")
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("%s: unexpected argument %q (see '%s --help')", c.path(), args[0], c.path())}
		}
		set := setFlags(fs)
		if !*tooMany && (set["retry-after"] || set["count"] || set["endpoint"]) {
			return usageError{fmt.Sprintf("%s: --retry-after, --count and --endpoint go with --429 (see '%s --help')", c.path(), c.path())}
		}
		if !slices.Contains(devcloud.Endpoints, devcloud.Endpoint(*endpoint)) {
			return usageError{fmt.Sprintf("%s: --endpoint %q: want one of %s", c.path(), *endpoint, endpointNames())}
		}
		if *retryAfter < time.Second || *count < 0 {
			return usageError{fmt.Sprintf("%s: want --retry-after of 1s or more and --count of 0 or more", c.path())}
		}
		cl, err := devstack.Open(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer cl.Close()
		f, err := cl.MenderFaults(ctx)
		if err != nil {
			return err
		}
		if *clear {
			f = devcloud.MenderFaults{}
		}
		if *tooMany {
			f.TooMany, f.RetryAfter, f.TooManyCount = devcloud.Endpoint(*endpoint), *retryAfter, *count
			if *count == 0 {
				f.TooManyCount = -1 // until cleared
			}
		}
		if *clear || *tooMany {
			if f, err = cl.SetMenderFaults(ctx, f); err != nil {
				return err
			}
		}
		st, err := cl.MenderStats(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "faults:   %s\n", describeMenderFaults(f))
		fmt.Fprintf(stdout, "counters: %s\n", describeMenderStats(st))
		return nil
	}
	return c
}

func endpointNames() string {
	var s []string
	for _, e := range devcloud.Endpoints {
		s = append(s, string(e))
	}
	return strings.Join(s, ", ")
}

func describeMenderFaults(f devcloud.MenderFaults) string {
	var parts []string
	if f.TooMany != "" {
		n := "until cleared"
		if f.TooManyCount >= 0 {
			n = fmt.Sprintf("for the next %d request(s)", max(f.TooManyCount, 1))
		}
		parts = append(parts, fmt.Sprintf("429 on %s (Retry-After %s) %s", f.TooMany, f.RetryAfter, n))
	}
	if f.Unauthorized != "" {
		parts = append(parts, fmt.Sprintf("401 on the next %s request", f.Unauthorized))
	}
	if f.CutAfter > 0 {
		parts = append(parts, fmt.Sprintf("the next download cut after %d bytes", f.CutAfter))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func describeMenderStats(st devcloud.MenderStats) string {
	var r []string
	for _, e := range devcloud.Endpoints {
		r = append(r, fmt.Sprintf("%s=%d", e, st.Requests[e]))
	}
	return fmt.Sprintf("requests %s; 429s answered %d", strings.Join(r, " "), st.TooMany)
}
