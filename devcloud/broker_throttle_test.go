package devcloud

import (
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/testkit"
)

// TestConnectThrottle runs the quota model on a virtual clock: each step
// is a CONNECT from a client ID at an offset, and the want is its
// refusal ("" for admitted).
func TestConnectThrottle(t *testing.T) {
	type step struct {
		id   string
		at   time.Duration
		want BrokerRefusal
	}
	ms := time.Millisecond
	tests := []struct {
		name   string
		faults BrokerFaults
		steps  []step
	}{
		{"no quota admits everything", BrokerFaults{}, []step{
			{"a", 0, ""}, {"a", 0, ""}, {"b", 0, ""},
		}},
		{"burst then the rate", BrokerFaults{ConnectRate: 2, ConnectBurst: 2}, []step{
			{"a", 0, ""}, {"b", 0, ""}, {"c", 0, RefusedThrottled},
			// The refusal took a token too: at 500ms the bucket is back
			// to zero, not one, so d is refused as well…
			{"d", 500 * ms, RefusedThrottled},
			// …and stays refused while the knocking goes on faster than
			// the rate, the debt capped at one burst (-2).
			{"e", 600 * ms, RefusedThrottled}, {"f", 700 * ms, RefusedThrottled}, {"g", 800 * ms, RefusedThrottled},
			// Quiet for 1.5s: -2 + 3 = 1 token.
			{"h", 2300 * ms, ""}, {"i", 2300 * ms, RefusedThrottled},
		}},
		{"burst defaults to one second's worth", BrokerFaults{ConnectRate: 1.5}, []step{
			{"a", 0, ""}, {"b", 0, ""}, {"c", 0, RefusedThrottled},
		}},
		{"one connect a second per client ID", BrokerFaults{ClientIDThrottle: true}, []step{
			{"a", 0, ""}, {"b", 0, ""}, {"a", 500 * ms, RefusedClientIDThrottled},
			// The refused attempt counts: a second after it, not after
			// the admitted one.
			{"a", 1200 * ms, RefusedClientIDThrottled}, {"a", 2200 * ms, ""},
			{"b", 5 * time.Second, ""},
		}},
		{"spent: the bucket starts empty", BrokerFaults{ConnectRate: 1, ConnectBurst: 1, ConnectSpent: true}, []step{
			// The first request finds no token and goes into debt (-1);
			// the second, at -0.5, has no room for more debt.
			{"a", 0, RefusedThrottled}, {"b", 500 * ms, RefusedThrottled},
			// Quiet for 2.5s: -1 + 2.5, capped at the burst.
			{"c", 3 * time.Second, ""}, {"d", 3 * time.Second, RefusedThrottled},
		}},
		{"the account quota is checked first", BrokerFaults{ConnectRate: 1e-9, ConnectBurst: 1, ClientIDThrottle: true}, []step{
			{"a", 0, ""}, {"a", 0, RefusedThrottled},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := NewConnectThrottle(tt.faults)
			start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			var got, want []BrokerRefusal
			for _, s := range tt.steps {
				got = append(got, th.Admit(s.id, start.Add(s.at)))
				want = append(want, s.want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("refusals (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBrokerConnectRate drives the knob through paho: with a bucket of one
// that never refills, the second thing's CONNECT gets CONNACK 0x03 while
// the first stays connected; cleared, the second connects.
func TestBrokerConnectRate(t *testing.T) {
	b, v := newTestBroker(t)
	b.SetFaults(BrokerFaults{ConnectRate: 1e-9, ConnectBurst: 1})
	first := newPaho(t, b, &signer{t: t, b: b, v: v, thing: testThing}, testThing, nil)
	wait(t, first.Connect())

	second := newPaho(t, b, &signer{t: t, b: b, v: v, thing: "node-2"}, "node-2", nil)
	tok := second.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("paho token timed out")
	}
	if err := tok.Error(); !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Fatalf("throttled CONNECT: %v, want %v", err, packets.ErrorRefusedServerUnavailable)
	}
	st := b.Stats()
	if st.Refused[RefusedThrottled] != 1 || st.Connects != 1 || st.Upgrades != 2 {
		t.Errorf("Stats = %+v, want 2 upgrades, 1 connect, 1 throttled", st)
	}
	if !first.IsConnectionOpen() {
		t.Error("the first client lost its connection to another's throttled CONNECT")
	}

	b.SetFaults(BrokerFaults{})
	wait(t, second.Connect())
	testkit.WaitFor(t, "two connections", func() bool { return b.Connections() == 2 })
}
