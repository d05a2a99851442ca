package shadow_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/iot/shadow"
)

// These tests run a real iot.Link against devcloud's SigV4-checking broker
// and its Device Shadow service on loopback; the link's subscriptions,
// handler and OnConnect are routed to the Shadow as the agent does.

const thing = "fort-1"

var creds = aws.Credentials{AccessKeyID: "ASIASHADOW0001", SecretAccessKey: "secret-1", SessionToken: "token-1"}

// fort is the agent side: settings that record what Apply was given.
type fort struct {
	mu       sync.Mutex
	logLevel string
	poll     time.Duration
	applied  []string // "name=raw" for every Apply call
}

func (f *fort) settings() []shadow.Setting {
	return []shadow.Setting{
		{
			Name: "log_level",
			Apply: func(raw json.RawMessage) (any, error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.applied = append(f.applied, "log_level="+string(raw))
				var v string
				if err := json.Unmarshal(raw, &v); err != nil {
					return nil, errors.New("not a string")
				}
				switch v {
				case "debug", "info", "warn", "error":
				default:
					return nil, fmt.Errorf("unknown log level %q", v)
				}
				f.logLevel = v
				return v, nil
			},
			Current: func() any { f.mu.Lock(); defer f.mu.Unlock(); return f.logLevel },
		},
		{
			Name: "poll_interval",
			Apply: func(raw json.RawMessage) (any, error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.applied = append(f.applied, "poll_interval="+string(raw))
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return nil, errors.New("not a duration")
				}
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 {
					return nil, errors.New("not a duration")
				}
				f.poll = d
				return s, nil
			},
			Current: func() any { f.mu.Lock(); defer f.mu.Unlock(); return f.poll.String() },
		},
	}
}

func (f *fort) appliedCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

// countingPub forwards to the link, counts updates, and may run a hook
// before an update goes out (to force a version conflict).
type countingPub struct {
	link    atomic.Pointer[iot.Link]
	updates atomic.Int64
	gets    atomic.Int64
	hook    atomic.Pointer[func()]
}

func (p *countingPub) Publish(ctx context.Context, topic string, payload []byte) error {
	l := p.link.Load()
	if l == nil {
		return iot.ErrNotConnected
	}
	switch {
	case strings.HasSuffix(topic, "/shadow/update"):
		if h := p.hook.Swap(nil); h != nil {
			(*h)()
		}
		p.updates.Add(1)
	case strings.HasSuffix(topic, "/shadow/get"):
		p.gets.Add(1)
	}
	return l.Publish(ctx, topic, payload)
}

type env struct {
	broker *devcloud.Broker
	cloud  *devcloud.Shadow
	fort   *fort
	pub    *countingPub
	sh     *shadow.Shadow
	start  func()
}

// newEnv starts the broker and the cloud's shadow service, and prepares
// the link and the Shadow; start runs the link.
func newEnv(t *testing.T, coalesce time.Duration) *env {
	t.Helper()
	ca, err := devcloud.NewCA("shadow test CA")
	if err != nil {
		t.Fatal(err)
	}
	b, err := devcloud.NewBroker(devcloud.BrokerOptions{CA: ca, Region: "eu-west-1",
		Lookup: func(akid string) (string, string, string, bool) {
			return creds.SecretAccessKey, creds.SessionToken, thing, akid == creds.AccessKeyID
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cloud := devcloud.NewShadow(b, nil)
	t.Cleanup(cloud.Close)

	e := &env{broker: b, cloud: cloud, fort: &fort{logLevel: "info", poll: time.Minute}, pub: &countingPub{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.sh, err = shadow.New(shadow.Options{
		Thing: thing, Publisher: e.pub, Settings: e.fort.settings(),
		Logger: quiet, Registerer: prom.NewRegistry(), Coalesce: coalesce,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sh.Close)
	link, err := iot.New(iot.Options{
		Host: b.Host(), Region: b.Region(), ThingName: thing,
		Credentials:      aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		TLS:              &tls.Config{RootCAs: b.ServerCA(), MinVersion: tls.VersionTLS12},
		ReconnectInitial: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		ConnectTimeout: 5 * time.Second, Logger: quiet, Registerer: prom.NewRegistry(),
		Subscriptions: e.sh.Subscriptions(),
		Handler: func(ctx context.Context, m iot.Message) error {
			return e.sh.Handle(ctx, m.Topic, m.Payload)
		},
		OnConnect: e.sh.OnConnect,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.start = func() {
		e.pub.link.Store(link)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- link.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5s of cancel")
			}
		})
	}
	return e
}

func (e *env) doc(t *testing.T) devcloud.ShadowDocument {
	t.Helper()
	d, _ := e.cloud.Document(thing)
	return d
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestReportedStateAppearsAndUnchangedPublishesNothing(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	// Reported before the link is up: the update fails locally, and the
	// state goes out after connect.
	e.sh.Report(context.Background(), map[string]any{
		"agent_version": "1.4.0", "artifact_name": "fort-2024.1",
		"links":       map[string]any{"iot": "up", "update": "up"},
		"cert_expiry": map[string]any{"mtls": "2030-01-01T00:00:00Z"},
	})
	e.start()
	testkit.WaitFor(t, "reported state in the shadow", func() bool {
		r := e.doc(t).State.Reported
		return r["agent_version"] == "1.4.0" && r["log_level"] == "info" && r["poll_interval"] == "1m0s" &&
			jsonOf(r["links"]) == `{"iot":"up","update":"up"}`
	})
	testkit.WaitFor(t, "in sync", func() bool { return e.sh.Status().InSync })
	v, n := e.doc(t).Version, e.pub.updates.Load()

	// The same state again: nothing is published, the version stays.
	e.sh.Report(context.Background(), map[string]any{"agent_version": "1.4.0", "links": map[string]any{"update": "up", "iot": "up"}})
	time.Sleep(400 * time.Millisecond)
	if got := e.doc(t).Version; got != v {
		t.Errorf("version after an unchanged Report = %d, want %d", got, v)
	}
	if got := e.pub.updates.Load(); got != n {
		t.Errorf("updates after an unchanged Report = %d, want %d", got, n)
	}

	// Many changes within the coalescing window go out as few updates; a
	// nested object loses a key; a nil value deletes one.
	for i := range 20 {
		e.sh.Report(context.Background(), map[string]any{"last_update": map[string]any{"result": "ok", "n": i}})
	}
	e.sh.Report(context.Background(), map[string]any{"links": map[string]any{"iot": "up"}, "artifact_name": nil})
	testkit.WaitFor(t, "the last changes in the shadow", func() bool {
		r := e.doc(t).State.Reported
		_, hasArtifact := r["artifact_name"]
		return !hasArtifact && jsonOf(r["links"]) == `{"iot":"up"}` && jsonOf(r["last_update"]) == `{"n":19,"result":"ok"}`
	})
	testkit.WaitFor(t, "in sync", func() bool { return e.sh.Status().InSync })
	if got := e.pub.updates.Load() - n; got > 3 {
		t.Errorf("21 Reports within the coalescing window made %d updates, want at most 3", got)
	}
	if v2 := e.doc(t).Version; v2-v != e.pub.updates.Load()-n {
		t.Errorf("versions went %d → %d for %d updates", v, v2, e.pub.updates.Load()-n)
	}
	t.Logf("updates: %d, final version %d", e.pub.updates.Load(), e.doc(t).Version)
}

func TestDesiredDrivesSettings(t *testing.T) {
	e := newEnv(t, 50*time.Millisecond)
	e.start()
	testkit.WaitFor(t, "first report", func() bool { return e.doc(t).State.Reported["log_level"] == "info" })

	// A valid value: applied, reported back, the delta closes.
	if err := e.cloud.SetDesired(thing, json.RawMessage(`{"log_level":"debug"}`)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "log_level=debug reported and the delta gone", func() bool {
		d := e.doc(t)
		return d.State.Reported["log_level"] == "debug" && d.State.Delta == nil
	})
	if got := e.fort.appliedCalls(); !slices.Equal(got, []string{`log_level="debug"`}) {
		t.Errorf("Apply calls = %q", got)
	}

	// An invalid value: the error is reported, the current value stays, the
	// delta stays open.
	if err := e.cloud.SetDesired(thing, json.RawMessage(`{"poll_interval":"soon"}`)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "settings_errors.poll_interval", func() bool {
		return jsonOf(e.doc(t).State.Reported["settings_errors"]) == `{"poll_interval":"not a duration"}`
	})
	d := e.doc(t)
	if d.State.Reported["poll_interval"] != "1m0s" || jsonOf(d.State.Delta) != `{"poll_interval":"soon"}` {
		t.Errorf("after an invalid value: reported poll_interval %v, delta %s", d.State.Reported["poll_interval"], jsonOf(d.State.Delta))
	}

	// An unknown key: listed as unsupported, its delta left open.
	if err := e.cloud.SetDesired(thing, json.RawMessage(`{"colour":"blue"}`)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "unsupported colour", func() bool {
		return jsonOf(e.doc(t).State.Reported["unsupported"]) == `["colour"]`
	})
	if _, ok := e.doc(t).State.Reported["colour"]; ok {
		t.Error("an unknown key was reported")
	}

	// Fixing the invalid value clears its error; the delta it makes (a
	// delta is complete) no longer has the removed unknown key, so
	// unsupported goes too.
	if err := e.cloud.SetDesired(thing, json.RawMessage(`{"poll_interval":"30s","colour":null}`)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "poll_interval=30s, no errors, no unsupported, no delta", func() bool {
		d := e.doc(t)
		_, errs := d.State.Reported["settings_errors"]
		_, unsup := d.State.Reported["unsupported"]
		return d.State.Reported["poll_interval"] == "30s" && !errs && !unsup && d.State.Delta == nil
	})
	testkit.WaitFor(t, "in sync", func() bool { return e.sh.Status().InSync })
	st := e.sh.Status()
	if len(st.SettingsErrors) != 0 || st.Version != e.doc(t).Version {
		t.Errorf("status = %+v, document version %d", st, e.doc(t).Version)
	}
	t.Logf("final reported: %s", jsonOf(e.doc(t).State.Reported))
}

func TestDesiredBeforeConnectAppliedFromGet(t *testing.T) {
	e := newEnv(t, 50*time.Millisecond)
	if err := e.cloud.SetDesired(thing, json.RawMessage(`{"log_level":"error","poll_interval":"5m"}`)); err != nil {
		t.Fatal(err)
	}
	e.start()
	testkit.WaitFor(t, "desired applied from get/accepted", func() bool {
		d := e.doc(t)
		return d.State.Reported["log_level"] == "error" && d.State.Reported["poll_interval"] == "5m" && d.State.Delta == nil
	})
	if e.sh.Status().Conflicts != 0 {
		t.Errorf("conflicts = %d, want 0 (the version came from get)", e.sh.Status().Conflicts)
	}
}

func TestVersionConflictRecovered(t *testing.T) {
	e := newEnv(t, 50*time.Millisecond)
	e.start()
	testkit.WaitFor(t, "first report", func() bool { return e.doc(t).State.Reported["log_level"] == "info" })
	testkit.WaitFor(t, "in sync", func() bool { return e.sh.Status().InSync })
	gets := e.pub.gets.Load()

	// The cloud changes desired just before our next update goes out: the
	// update carries a stale version and is refused with 409.
	hook := func() {
		if err := e.cloud.SetDesired(thing, json.RawMessage(`{"log_level":"warn"}`)); err != nil {
			t.Error(err)
		}
	}
	e.pub.hook.Store(&hook)
	e.sh.Report(context.Background(), map[string]any{"artifact_name": "fort-2024.2"})

	testkit.WaitFor(t, "a consistent document", func() bool {
		d := e.doc(t)
		return d.State.Reported["artifact_name"] == "fort-2024.2" && d.State.Reported["log_level"] == "warn" &&
			d.State.Delta == nil && e.sh.Status().InSync
	})
	st := e.sh.Status()
	if st.Conflicts < 1 {
		t.Errorf("conflicts = %d, want ≥ 1", st.Conflicts)
	}
	if e.pub.gets.Load() <= gets {
		t.Error("no get after the conflict")
	}
	if st.Version != e.doc(t).Version {
		t.Errorf("known version %d, document %d", st.Version, e.doc(t).Version)
	}
	t.Logf("status after recovery: %+v", st)
}
