//go:build unix

package iot_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkMosquittoPeer is the floor BenchmarkMosquittoLink's
// publish-to-handler is compared to, in the same run (-bench Mosquitto):
// the same cloud-side QoS 1 publish through the same kind of mosquitto (a
// broker of its own, started with the same helpers and configuration),
// received by a bare paho subscriber over plain TCP: QoS 1, a persistent
// session, paho's own acknowledgement, no TLS, no WebSocket, no link, no
// dispatcher, no store. From the Publish call to the subscriber's callback;
// p50, p99 and max.
//
// Run: go test -run '^$' -bench Mosquitto -benchtime 10s ./iot/
func BenchmarkMosquittoPeer(b *testing.B) {
	m := startMosquitto(b)
	topic := "edgefort/bench-peer/events"
	received := make(chan string, 16)

	o := paho.NewClientOptions()
	o.AddBroker("tcp://" + m.tcpAddr)
	o.SetClientID("bench-peer")
	o.SetCleanSession(false)
	o.SetAutoReconnect(false)
	o.SetConnectTimeout(5 * time.Second)
	o.SetKeepAlive(60 * time.Second)
	o.SetOrderMatters(false)
	sub := paho.NewClient(o)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscriber: connect: %v", tok.Error())
	}
	b.Cleanup(func() { sub.Disconnect(100) })
	tok := sub.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) {
		received <- string(msg.Payload())
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscriber: subscribe: %v", tok.Error())
	}

	cl := newCloud(b, m, "cloud-bench-peer")
	seq := 0
	// roundTrip publishes one message and returns when the subscriber got it.
	roundTrip := func(b *testing.B) {
		seq++
		payload := eventPayload(b, fmt.Sprintf("peer-%07d", seq), soakType)
		publishAndWait(b, cl.c, topic, payload, received, string(payload))
	}
	for range 50 { // warm up, as BenchmarkMosquittoLink does
		roundTrip(b)
	}

	b.Run("publish-to-subscriber", func(b *testing.B) {
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
		b.Logf("publish -> bare paho subscriber over %d messages: p50 %.3f ms, p99 %.3f ms, max %.3f ms", len(lat), ms(p50), ms(p99), ms(slices.Max(lat)))
	})
}
