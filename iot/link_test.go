package iot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/testkit"
)

// recorder is a Handler that records what it handled.
type recorder struct {
	fail func(m Message) error // nil: succeed

	mu   sync.Mutex // guards got
	got  []Message
	done map[string]int // payload -> successful handlings
}

func (r *recorder) handle(_ context.Context, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m)
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	if r.done == nil {
		r.done = map[string]int{}
	}
	r.done[string(m.Payload)]++
	return nil
}

func (r *recorder) handled(payload string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[payload]
}

func (r *recorder) messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.got...)
}

func TestLinkReceivesAndAcksAfterHandler(t *testing.T) {
	b := startTestBroker(t)
	creds, ps := &countingCreds{}, &presignStub{}
	rec := &recorder{}
	opts := testOptions(b, creds, ps)
	opts.Subscriptions = []string{"edgefort/fort-1/events", "edgefort/fort-1/other/#"}
	opts.Handler = rec.handle
	reg := opts.Registerer.(*prom.Registry)
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, l)
	testkit.WaitFor(t, "connected", func() bool { return l.Status().State == StateConnected })

	b.publish("edgefort/fort-1/events", "e1")
	b.publish("edgefort/fort-1/other/x", "e2")
	testkit.WaitFor(t, "both handled", func() bool { return rec.handled("e1") == 1 && rec.handled("e2") == 1 })
	testkit.WaitFor(t, "broker holds no unacked message", func() bool { return b.inflight(testThing) == 0 })

	for _, m := range rec.messages() {
		if m.Duplicate {
			t.Errorf("message %q: Duplicate set on first delivery", m.Payload)
		}
	}
	st := l.Status()
	if st.MessagesIn != 2 || st.Reconnects != 0 {
		t.Errorf("status = %+v, want 2 messages in, 0 reconnects", st)
	}
	if got := counterValue(t, reg, "edgefort_iot_messages_in_total", ""); got != 2 {
		t.Errorf("messages_in_total = %v, want 2", got)
	}
	if akids, _ := ps.snapshot(); len(akids) != 1 || creds.calls() != 1 {
		t.Errorf("presign calls %d, credential retrievals %d; want 1 each", len(akids), creds.calls())
	}
}

func TestLinkHandlerErrorRedeliveredAfterReconnect(t *testing.T) {
	tests := []struct {
		name      string
		reconnect func(b *testBroker, o *Options)
	}{
		{"connection lost", nil},
		{"max connection age", func(_ *testBroker, o *Options) { o.MaxConnectionAge = 500 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startTestBroker(t)
			var failed atomic.Int32
			rec := &recorder{fail: func(m Message) error {
				if failed.Add(1) == 1 {
					return errors.New("store unavailable")
				}
				return nil
			}}
			opts := testOptions(b, &countingCreds{}, &presignStub{})
			opts.Subscriptions = []string{"edgefort/fort-1/events"}
			opts.Handler = rec.handle
			if tt.reconnect != nil {
				tt.reconnect(b, &opts)
			}
			l, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			runLink(t, l)
			testkit.WaitFor(t, "connected", func() bool { return l.Status().State == StateConnected })

			b.publish("edgefort/fort-1/events", "e1")
			testkit.WaitFor(t, "first delivery", func() bool { return len(rec.messages()) == 1 })
			if n := b.inflight(testThing); n != 1 {
				t.Fatalf("broker holds %d unacked messages after the handler failed, want 1", n)
			}
			if tt.reconnect == nil {
				b.kick(testThing)
			}
			testkit.WaitFor(t, "redelivery handled", func() bool { return rec.handled("e1") == 1 })
			msgs := rec.messages()
			if len(msgs) != 2 {
				t.Fatalf("handler saw %d deliveries, want 2", len(msgs))
			}
			if msgs[0].Duplicate || !msgs[1].Duplicate {
				t.Errorf("Duplicate flags = %v, %v; want false, true", msgs[0].Duplicate, msgs[1].Duplicate)
			}
			testkit.WaitFor(t, "broker holds no unacked message", func() bool { return b.inflight(testThing) == 0 })
			if st := l.Status(); st.Reconnects < 1 {
				t.Errorf("reconnects = %d, want ≥ 1", st.Reconnects)
			}
		})
	}
}

func TestLinkBrokerRestartReconnectsAndResubscribes(t *testing.T) {
	b := startTestBroker(t)
	creds, ps := &countingCreds{}, &presignStub{}
	rec := &recorder{}
	opts := testOptions(b, creds, ps)
	opts.Subscriptions = []string{"edgefort/fort-1/events"}
	opts.Handler = rec.handle
	reg := opts.Registerer.(*prom.Registry)
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, l)
	testkit.WaitFor(t, "connected", func() bool { return l.Status().State == StateConnected })

	const restarts = 3
	for i := range restarts {
		// Down long enough for several attempts to fail (backoff 50–200ms).
		b.stop()
		testkit.WaitFor(t, "link notices", func() bool { return l.Status().State != StateConnected })
		time.Sleep(600 * time.Millisecond)
		b.start()
		testkit.WaitFor(t, "reconnected", func() bool { return l.Status().State == StateConnected })
		// The restarted broker lost the session: the message arrives only
		// if the link subscribed again.
		p := fmt.Sprintf("after-restart-%d", i)
		b.publish("edgefort/fort-1/events", p)
		testkit.WaitFor(t, p, func() bool { return rec.handled(p) == 1 })
	}

	st := l.Status()
	akids, urls := ps.snapshot()
	attempts := st.Reconnects + 1
	if st.Reconnects <= restarts {
		t.Errorf("reconnects = %d, want more than %d (failed attempts while the broker was down)", st.Reconnects, restarts)
	}
	if len(urls) != attempts || creds.calls() != attempts {
		t.Errorf("attempts %d, presign calls %d, credential retrievals %d; want all equal", attempts, len(urls), creds.calls())
	}
	seen := map[string]bool{}
	for _, u := range urls {
		if seen[u] {
			t.Errorf("presigned URL used twice: %s", u)
		}
		seen[u] = true
	}
	if len(akids) > 0 && akids[len(akids)-1] != fmt.Sprintf("AKID%d", creds.calls()) {
		t.Errorf("last attempt signed with %s, want the latest credentials AKID%d", akids[len(akids)-1], creds.calls())
	}
	if got := counterValue(t, reg, "edgefort_iot_reconnects_total", ""); int(got) != st.Reconnects {
		t.Errorf("reconnects_total = %v, want %d", got, st.Reconnects)
	}
	if st.LastError == "" {
		t.Error("status has no last error after restarts")
	}
}

// expiringCreds hands out AKID1, AKID2, … through aws.CredentialsCache, each
// valid for ttl: the cache asks again only once they expired.
func TestLinkUsesFreshCredentialsAfterExpiry(t *testing.T) {
	b := startTestBroker(t)
	src := &countingCreds{ttl: 300 * time.Millisecond}
	ps := &presignStub{}
	opts := testOptions(b, awsCache(src), ps)
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, l)
	testkit.WaitFor(t, "connected", func() bool { return l.Status().State == StateConnected })

	time.Sleep(400 * time.Millisecond) // the first credentials expire
	b.kick(testThing)
	testkit.WaitFor(t, "reconnected with new credentials", func() bool {
		akids, _ := ps.snapshot()
		return l.Status().State == StateConnected && len(akids) >= 2
	})
	akids, _ := ps.snapshot()
	if diff := cmp.Diff([]string{"AKID1", "AKID2"}, akids[:2]); diff != "" {
		t.Errorf("access keys per attempt (-want +got):\n%s", diff)
	}
}

func TestLinkPublish(t *testing.T) {
	b := startTestBroker(t)
	var received atomic.Int32
	if err := b.mochi().Subscribe("edgefort/fort-1/out/#", 1, func(_ *mqttClient, _ mqttSub, _ mqttPacket) {
		received.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(b, &countingCreds{}, &presignStub{})
	frozen := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	opts.Now = func() time.Time { return frozen } // the token bucket never refills
	reg := opts.Registerer.(*prom.Registry)
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Publish(ctx, "edgefort/fort-1/out/x", []byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Publish before Run = %v, want ErrNotConnected", err)
	}
	runLink(t, l)
	testkit.WaitFor(t, "connected", func() bool { return l.Status().State == StateConnected })

	refusals := []struct {
		name    string
		topic   string
		size    int
		wantErr string
		reason  string
	}{
		{"over 128 KiB", "edgefort/fort-1/out/big", MaxPayload + 1, "128 KiB", refusedTooLarge},
		{"wildcard topic", "edgefort/+/out", 1, "wildcards", refusedInvalidTopic},
		{"empty topic", "", 1, "empty topic", refusedInvalidTopic},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before := counterValue(t, reg, "edgefort_iot_publish_refused_total", tt.reason)
			err := l.Publish(ctx, tt.topic, make([]byte, tt.size))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Publish = %v, want an error containing %q", err, tt.wantErr)
			}
			if got := counterValue(t, reg, "edgefort_iot_publish_refused_total", tt.reason); got != before+1 {
				t.Errorf("publish_refused_total{%s} = %v, want %v", tt.reason, got, before+1)
			}
		})
	}
	if err := l.Publish(ctx, "edgefort/fort-1/out/max", make([]byte, MaxPayload)); err != nil {
		t.Fatalf("Publish of exactly 128 KiB = %v", err)
	}

	// With the clock stopped, the bucket holds PublishRate tokens (one
	// was used above) and never refills: the rest wait, then give up.
	// Those with a token wait for their PUBACK, which may take a while on
	// a busy machine; only the ones the bucket must hold back get a short
	// deadline.
	var ok, limited int
	for i := range PublishRate + 5 {
		wait := 10 * time.Second
		if i >= PublishRate-1 {
			wait = 20 * time.Millisecond
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		err := l.Publish(pctx, fmt.Sprintf("edgefort/fort-1/out/%d", i), []byte("m"))
		cancel()
		switch {
		case err == nil:
			ok++
		case errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "rate limit"):
			limited++
		default:
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if ok != PublishRate-1 || limited != 6 {
		t.Errorf("published %d, rate limited %d; want %d, 6", ok, limited, PublishRate-1)
	}
	testkit.WaitFor(t, "broker got every publish", func() bool { return int(received.Load()) == PublishRate })
	if got := counterValue(t, reg, "edgefort_iot_messages_out_total", ""); got != PublishRate {
		t.Errorf("messages_out_total = %v, want %d", got, PublishRate)
	}
	if got := counterValue(t, reg, "edgefort_iot_publish_refused_total", refusedRateLimited); got != 6 {
		t.Errorf("publish_refused_total{rate_limited} = %v, want 6", got)
	}
}

func TestLinkSlowHandlerDoesNotBlockOthers(t *testing.T) {
	b := startTestBroker(t)
	release := make(chan struct{})
	var slowStarted atomic.Bool
	rec := &recorder{}
	opts := testOptions(b, &countingCreds{}, &presignStub{})
	opts.Workers = 2
	opts.Subscriptions = []string{"edgefort/fort-1/#"}
	opts.Handler = func(ctx context.Context, m Message) error {
		if m.Topic == "edgefort/fort-1/slow" {
			slowStarted.Store(true)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return rec.handle(ctx, m)
	}
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, l)
	testkit.WaitFor(t, "connected", func() bool { return l.Status().State == StateConnected })

	b.publish("edgefort/fort-1/slow", "slow")
	testkit.WaitFor(t, "slow handler running", slowStarted.Load)
	const fast = 20
	for i := range fast {
		b.publish("edgefort/fort-1/fast", fmt.Sprint(i))
	}
	testkit.WaitFor(t, "fast messages handled beside the slow one", func() bool {
		for i := range fast {
			if rec.handled(fmt.Sprint(i)) != 1 {
				return false
			}
		}
		return true
	})
	if rec.handled("slow") != 0 {
		t.Fatal("slow handler finished before release")
	}
	// A handler's PUBACK goes out after it returns, so the fast ones'
	// acknowledgements may still be on their way: wait for them.
	testkit.WaitFor(t, "the broker to hold only the slow message unacked", func() bool { return b.inflight(testThing) == 1 })
	close(release)
	testkit.WaitFor(t, "slow handled", func() bool { return rec.handled("slow") == 1 })
	testkit.WaitFor(t, "all acked", func() bool { return b.inflight(testThing) == 0 })
}

func TestLinkRunTwiceRefused(t *testing.T) {
	b := startTestBroker(t)
	l, err := New(testOptions(b, &countingCreds{}, &presignStub{}))
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, l)
	testkit.WaitFor(t, "connected", func() bool { return l.Status().State == StateConnected })
	if err := l.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run = %v, want already running", err)
	}
}
