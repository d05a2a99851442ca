package iot_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/iot/shadow"
	"github.com/edgefort/edgefort/keystore"
)

// brokerTLS stands in for the keystore manager: the broker's dev CA as
// the truststore, and the keystore.repoint events it was asked for.
type brokerTLS struct {
	tls     *tls.Config
	mu      sync.Mutex
	repoint []string
}

func (k *brokerTLS) ClientTLS(_ keystore.SSL, serverName string, _ keystore.Vars) (*tls.Config, error) {
	c := k.tls.Clone()
	c.ServerName = serverName
	return c, nil
}

func (k *brokerTLS) SetRef(ref, store string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.repoint = append(k.repoint, ref+"="+store)
	return nil
}

// TestNodeRoutesEachTopic: a Node built from its section alone, against
// devcloud's SigV4-checking broker, signs with the control plane's
// credentials, hands events to the dispatcher (update.check reaching the
// update channel), desired state to the shadow's settings, announces
// itself to the jobs service and reports the agent's state.
func TestNodeRoutesEachTopic(t *testing.T) {
	v := newVault()
	b := startDevcloudBroker(t, v.lookup)
	var mu sync.Mutex
	seen := map[string]bool{}
	defer b.Subscribe("$aws/things/"+dcThing+"/#", func(topic string, payload []byte) {
		mu.Lock()
		defer mu.Unlock()
		seen[topic] = true
		if strings.HasSuffix(topic, "/shadow/update") && strings.Contains(string(payload), `"agent_version":"v-test"`) {
			seen["reported"] = true
		}
	})()
	var checks atomic.Int32
	var level atomic.Value
	level.Store("")
	cfg := iot.Config{
		Enabled: true, Endpoint: b.Host(), Region: b.Region(), ThingName: dcThing,
		EventsTopic: "edgefort/" + dcThing + "/events", KeepAlive: time.Minute,
		ReconnectSpread: time.Second, ReconnectMax: time.Second,
		Credentials: iot.Credentials{Source: iot.CredentialsCloud},
	}
	n, err := iot.NewNode(cfg, iot.NodeDeps{
		Store:            testkit.OpenStore(t, ""),
		Keystores:        &brokerTLS{tls: &tls.Config{RootCAs: b.ServerCA(), MinVersion: tls.VersionTLS12}},
		CloudCredentials: v,
		Updates:          checkFunc(func() { checks.Add(1) }),
		ShadowSettings: []shadow.Setting{{
			Name: "log_level",
			Apply: func(raw json.RawMessage) (any, error) {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return nil, errors.New("not a string")
				}
				level.Store(s)
				return s, nil
			},
			Current: func() any { return level.Load() },
		}},
		Reported:   func() map[string]any { return map[string]any{"agent_version": "v-test"} },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prom.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runComponents(t, n)
	testkit.WaitFor(t, "connected", func() bool { return n.Status().State == iot.StateConnected })
	has := func(topic string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return seen[topic] }
	}
	testkit.WaitFor(t, "jobs start-next on connect", has("$aws/things/"+dcThing+"/jobs/start-next"))
	testkit.WaitFor(t, "the agent's state reported", has("reported"))

	if err := b.Publish(cfg.EventsTopic, []byte(`{"id":"e1","type":"update.check"}`), 1); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "update.check reached the update channel", func() bool { return checks.Load() == 1 })
	delta := `{"version":7,"state":{"log_level":"debug"}}`
	if err := b.Publish("$aws/things/"+dcThing+"/shadow/update/delta", []byte(delta), 1); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the delta applied", func() bool { return level.Load() == "debug" })
}

// runComponents runs the node's components as the supervisor would and
// stops them when the test ends.
func runComponents(t *testing.T, n *iot.Node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range n.Components() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Runner.Run(ctx); err != nil {
				t.Errorf("%s: Run = %v", s.Name, err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// checkFunc is an update channel that counts the checks asked of it.
type checkFunc func()

func (f checkFunc) CheckNow() { f() }
