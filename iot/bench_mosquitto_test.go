//go:build unix

package iot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/cloudclient/outbox"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/iot/events"
)

// BenchmarkMosquittoLink measures, through Debian's mosquitto on loopback
// (TLS WebSocket for the link, TCP for the cloud side), with the link's
// production first retry (full jitter under 1 s; the cap is 1 s too):
//
//   - publish-to-handler: one QoS 1 event at a time, from the cloud side's
//     Publish call to the dispatcher running its handler (the event already
//     recorded in the store, with its fsync); p50 and p99. As in the agent,
//     each result is queued in the outbox with its done record and the
//     outbox delivers (to an in-process sender), so the store carries the
//     production's writes.
//   - restart-to-resubscribed: mosquitto stopped (SIGTERM) and started
//     again; from the moment it accepts connections to the link connected
//     and subscribed, and to a probe event handled.
//
// Run: go test -run '^$' -bench MosquittoLink -benchtime 10s ./iot/
func BenchmarkMosquittoLink(b *testing.B) {
	m := startMosquitto(b)
	const thing = "bench-1"
	topic := "edgefort/" + thing + "/events"
	handled := make(chan string, 16)
	d, db := newReportingDispatcher(b, func(ev events.Event) error {
		handled <- ev.ID
		return nil
	})
	b.Cleanup(func() { db.Close() })
	o := mosquittoLinkOptions(m.wssAddr, m.client, thing, func(ctx context.Context, msg iot.Message) error {
		return d.Handle(ctx, msg.Topic, msg.Payload)
	})
	// Production's first retry (full jitter under 1 s), capped there: with
	// the default 2 m cap, restarts a few seconds apart would keep growing
	// the backoff (a flapping link slows down by design) and measure that.
	o.ReconnectInitial, o.ReconnectMax = time.Second, time.Second
	l, err := iot.New(o)
	if err != nil {
		b.Fatal(err)
	}
	runMosquittoLink(b, l)
	cl := newCloud(b, m, "cloud-bench")
	seq := 0
	// roundTrip publishes one event and returns when its handler ran.
	roundTrip := func(b *testing.B) {
		seq++
		id := fmt.Sprintf("bench-%07d", seq)
		// Another id cannot come before ours: a redelivery of an earlier
		// event is deduplicated, not handled.
		publishAndWait(b, cl.c, topic, eventPayload(b, id, soakType), handled, id)
	}
	for range 50 { // warm up: connections, store pages
		roundTrip(b)
	}

	b.Run("publish-to-handler", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			roundTrip(b)
			lat = append(lat, time.Since(start))
		}
		p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
		b.ReportMetric(ms(p50), "p50-ms")
		b.ReportMetric(ms(p99), "p99-ms")
		b.ReportMetric(ms(slices.Max(lat)), "max-ms")
		b.Logf("publish -> handler over %d events: p50 %.3f ms, p99 %.3f ms, max %.3f ms", len(lat), ms(p50), ms(p99), ms(slices.Max(lat)))
	})

	b.Run("restart-to-resubscribed", func(b *testing.B) {
		var resub, probe []time.Duration
		for b.Loop() {
			m.stop()
			testkit.WaitForWithin(b, 10*time.Second, "link to notice the broker gone", func() bool {
				return l.Status().State != iot.StateConnected
			})
			up := m.mustStart()
			testkit.WaitForWithin(b, time.Minute, "link resubscribed", func() bool {
				return l.Status().State == iot.StateConnected
			})
			resub = append(resub, time.Since(up))
			roundTrip(b)
			probe = append(probe, time.Since(up))
		}
		b.ReportMetric(ms(percentile(resub, 0.5)), "resub-p50-ms")
		b.ReportMetric(ms(slices.Max(resub)), "resub-max-ms")
		b.ReportMetric(ms(percentile(probe, 0.5)), "probe-p50-ms")
		b.ReportMetric(ms(slices.Max(probe)), "probe-max-ms")
		b.Logf("broker accepting -> link resubscribed over %d restarts: p50 %.1f ms, max %.1f ms; -> probe event handled: p50 %.1f ms, max %.1f ms (all: %v)",
			len(resub), ms(percentile(resub, 0.5)), ms(slices.Max(resub)), ms(percentile(probe, 0.5)), ms(slices.Max(probe)), roundMs(resub))
	})
}

// percentile returns the q-quantile of ds (nearest rank).
func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func roundMs(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// publishAndWait publishes payload with QoS 1 and returns once want comes
// out of got (what the receiving side saw) and the PUBACK arrived.
func publishAndWait(b *testing.B, c paho.Client, topic string, payload []byte, got <-chan string, want string) {
	b.Helper()
	tok := c.Publish(topic, 1, false, payload)
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case g := <-got:
			done = g == want
		case <-timeout:
			b.Fatalf("%s not received within 30s", want)
		}
	}
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("publish %s: no PUBACK: %v", want, tok.Error())
	}
}

// newReportingDispatcher is the agent's event path on a fresh store: a
// dispatcher whose results go to a real outbox on the same store (staged in
// the done record's transaction, as the agent's reporter does), and the
// outbox's Run delivering them to a sender that accepts every report.
func newReportingDispatcher(b *testing.B, handled func(ev events.Event) error) (*events.Dispatcher, *store.DB) {
	b.Helper()
	db, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	o, err := outbox.New(outbox.Options{Store: db, Sender: acceptAll{}, Registerer: prom.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- o.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-ran
	})
	d, err := events.New(events.Options{
		Store:      db,
		Reporter:   outboxReporter{o},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prom.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Register(soakType, func(_ context.Context, ev events.Event) (events.Result, error) {
		if err := handled(ev); err != nil {
			return events.Result{}, err
		}
		return events.Done(nil), nil
	}); err != nil {
		b.Fatal(err)
	}
	return d, db
}

// outboxReporter queues results as the agent's reporter does.
type outboxReporter struct{ o *outbox.Outbox }

func (r outboxReporter) item(ev events.Event, res events.Result) outbox.Item {
	body, _ := json.Marshal(map[string]any{"event_id": ev.ID, "event_type": ev.Type, "result": res})
	return outbox.Item{Stream: "events", Type: "event.result", Body: body, Priority: outbox.High, Key: "event-" + ev.ID}
}

func (r outboxReporter) Report(ctx context.Context, ev events.Event, res events.Result) error {
	_, err := r.o.Enqueue(ctx, r.item(ev, res))
	return err
}

func (r outboxReporter) ReportTx(tx *store.Tx, ev events.Event, res events.Result) (func(bool), error) {
	_, done, err := r.o.EnqueueTx(tx, r.item(ev, res))
	return done, err
}

// acceptAll is a control plane that acknowledges every report.
type acceptAll struct{}

func (acceptAll) SendReports(_ context.Context, reports []api.Report) (api.ReportsResponse, error) {
	var resp api.ReportsResponse
	for _, r := range reports {
		resp.Acknowledged = append(resp.Acknowledged, r.IdempotencyKey)
	}
	return resp, nil
}
