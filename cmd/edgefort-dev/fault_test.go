package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/devcloud/devstack"
	"github.com/edgefort/edgefort/internal/testkit"
)

// TestDevFaultProcess runs edgefort-dev as a real process and plays the
// cloud's limits against it with `edgefort-dev fault`, as its help
// suggests: a 429 with Retry-After on the update channel's poll (the
// node does not ask again while it is on), AWS IoT's connect quota spent
// and the connections cut (the event link counts its attempts throttled),
// then both cleared (the link connected again, polls answered again).
func TestDevFaultProcess(t *testing.T) {
	stateDir := t.TempDir()
	dev := startDev(t, "--state-dir", stateDir, "--no-idps")
	dev.waitBanner(t)
	cfgPath := filepath.Join(stateDir, devstack.ConfigFile)
	admin := adminclient.New(filepath.Join(stateDir, "admin.sock"))
	cl, err := devstack.Open(t.Context(), cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	link := func() adminapi.EventLink {
		t.Helper()
		st, err := admin.Status(t.Context())
		if err != nil || st.IoT == nil {
			t.Fatalf("status: %v (event link %v)", err, st)
		}
		return *st.IoT
	}
	poller := func() adminapi.PollerStatus {
		t.Helper()
		us, err := admin.UpdateStatus(t.Context())
		if err != nil || us.Poller == nil {
			t.Fatalf("update status: %v", err)
		}
		return *us.Poller
	}
	nextPolls := func() int64 {
		t.Helper()
		st, err := cl.MenderStats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st.Requests[devcloud.EndpointNext]
	}
	fault := func(want string, args ...string) {
		t.Helper()
		code, out, errOut := edgefortDev(t, append(append([]string{"fault"}, args...), "--config", cfgPath)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("fault %s: exit %d, stdout %q, stderr %q; want 0 and %q", strings.Join(args, " "), code, out, errOut, want)
		}
	}
	testkit.WaitFor(t, "the event link connected", func() bool { return link().State == "connected" })

	// The Retry-After is far longer than the test, so that the node's
	// waiting is not a race against the clock.
	fault("faults:   429 on next (Retry-After 10m0s) until cleared", "mender", "--429", "--retry-after", "10m")
	if _, err := admin.CheckUpdate(t.Context()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the check answered 429", func() bool {
		return strings.Contains(poller().LastCheckErr, "too many requests, retry after 10m0s")
	})
	p := poller()
	if wait := p.NextCheck.Sub(p.LastCheck); wait < 10*time.Minute {
		t.Errorf("next check %s after the 429, want at least its Retry-After (10m)", wait)
	}
	polls := nextPolls()

	fault("faults:   connect rate 0.01/s, bucket spent at the start", "broker", "--connect-rate", "0.01", "--spent", "--drop")
	testkit.WaitFor(t, "a throttled attempt on the event link", func() bool { return link().Throttled > 0 })
	fault("faults:   none", "broker", "--clear")
	testkit.WaitForWithin(t, time.Minute, "the event link connected after the clear", func() bool { return link().State == "connected" })
	st, err := cl.BrokerStatus(t.Context())
	if err != nil || st.Refused[devcloud.RefusedThrottled] == 0 || st.Dropped == 0 {
		t.Errorf("broker counters %+v, %v: want a drop and a throttled CONNECT", st, err)
	}

	// A check asked for inside the Retry-After waits for its end, and
	// says so; the node does not ask a server that has just said 429.
	reply, err := admin.CheckUpdate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := p.LastCheck.Add(10 * time.Minute); reply.HeldUntil.Sub(want).Abs() > time.Second {
		t.Errorf("update check held until %v, want the end of the Retry-After, %v", reply.HeldUntil, want)
	}
	if got := nextPolls(); got != polls {
		t.Errorf("the node polled %d time(s) more while the 429 was on, want none", got-polls)
	}
	// The node cannot know the server has recovered: it waits the
	// Retry-After out (scripts/demo.sh shows the poll answered again, with
	// a shorter one).
	fault("faults:   none", "mender", "--clear")
	st2, err := admin.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st2.Components {
		if c.Restarts != 0 {
			t.Errorf("component %s restarted %d time(s): the faults are the links' business, not the supervisor's", c.Name, c.Restarts)
		}
	}
	fault("counters: requests auth=", "mender")
	if ms, err := cl.MenderStats(t.Context()); err != nil || ms.TooMany == 0 {
		t.Errorf("mender counters %+v, %v: want the 429 counted", ms, err)
	}
}
