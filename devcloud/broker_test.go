package devcloud

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/iot/sigv4"
)

const testThing = "node-1"

// testVault stands in for the control plane's vended credentials.
type testVault struct {
	mu    sync.Mutex
	creds map[string]testCred // by access key ID
	n     int
}

type testCred struct {
	aws.Credentials
	thing string
}

// vend issues fresh STS-style credentials for thing.
func (v *testVault) vend(thing string) aws.Credentials {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.n++
	c := aws.Credentials{
		AccessKeyID:     fmt.Sprintf("ASIATEST%04d", v.n),
		SecretAccessKey: fmt.Sprintf("secret-%d", v.n),
		SessionToken:    fmt.Sprintf("token/%d+=", v.n),
	}
	v.creds[c.AccessKeyID] = testCred{c, thing}
	return c
}

// revoke forgets a key, as when it expires at the control plane.
func (v *testVault) revoke(akid string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.creds, akid)
}

func (v *testVault) lookup(akid string) (string, string, string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.creds[akid]
	return c.SecretAccessKey, c.SessionToken, c.thing, ok
}

// newTestBroker starts a broker on its own CA and vault, closed at the
// end of the test.
func newTestBroker(t *testing.T) (*Broker, *testVault) {
	t.Helper()
	ca, err := NewCA("broker test CA")
	if err != nil {
		t.Fatal(err)
	}
	v := &testVault{creds: make(map[string]testCred)}
	b, err := NewBroker(BrokerOptions{CA: ca, Region: "eu-west-1", Lookup: v.lookup})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, v
}

// signer presigns a URL for every connection attempt; fresh, when set,
// vends new credentials each time.
type signer struct {
	t        *testing.T
	b        *Broker
	v        *testVault
	thing    string
	fresh    bool
	attempts atomic.Int64

	mu    sync.Mutex // guards creds
	creds aws.Credentials
}

// current is the credentials of the last attempt.
func (s *signer) current() aws.Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creds
}

func (s *signer) url() string {
	s.mu.Lock()
	if s.fresh || s.creds.AccessKeyID == "" {
		s.creds = s.v.vend(s.thing)
	}
	creds := s.creds
	s.mu.Unlock()
	s.attempts.Add(1)
	u, err := sigv4.Presign(context.Background(), creds, s.b.Host(), s.b.Region(), time.Minute, time.Now())
	if err != nil {
		s.t.Errorf("Presign: %v", err)
	}
	return u
}

func (s *signer) open(_ *url.URL, o paho.ClientOptions) (net.Conn, error) {
	return paho.NewWebsocket(s.url(), &tls.Config{RootCAs: s.b.ServerCA()}, 5*time.Second, nil, nil)
}

// newPaho makes a (not yet connected) paho client for clientID over the
// broker's presigned WebSocket endpoint, persistent session, QoS 1.
func newPaho(t *testing.T, b *Broker, s *signer, clientID string, onMsg paho.MessageHandler) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().
		AddBroker(b.URL()).
		SetClientID(clientID).SetProtocolVersion(4).
		SetCleanSession(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(false).
		SetOrderMatters(false).
		SetCustomOpenConnectionFn(s.open)
	if onMsg != nil {
		o.SetDefaultPublishHandler(onMsg)
	}
	c := paho.NewClient(o)
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("paho token timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho: %v", err)
	}
}

type received struct {
	topic   string
	payload string
}

func collector() (paho.MessageHandler, <-chan received) {
	ch := make(chan received, 100)
	return func(_ paho.Client, m paho.Message) {
		ch <- received{m.Topic(), string(m.Payload())}
	}, ch
}

func expectMessage(t *testing.T, ch <-chan received, want received) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("received %+v, want %+v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no message, want %+v", want)
	}
}

func TestBrokerPubSubOverSigV4(t *testing.T) {
	b, v := newTestBroker(t)
	s := &signer{t: t, b: b, v: v, thing: testThing}
	onMsg, msgs := collector()
	c := newPaho(t, b, s, testThing, onMsg)
	wait(t, c.Connect())
	if n := b.Connections(); n != 1 {
		t.Errorf("Connections = %d, want 1", n)
	}

	topic := "edgefort/" + testThing + "/events"
	wait(t, c.Subscribe(topic, 1, nil))
	if err := b.Publish(topic, []byte(`{"id":"1"}`), 1); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, msgs, received{topic, `{"id":"1"}`})

	// The cloud side watches what devices publish.
	seen := make(chan received, 1)
	cancel := b.Subscribe("edgefort/+/status", func(topic string, payload []byte) {
		seen <- received{topic, string(payload)}
	})
	defer cancel()
	wait(t, c.Publish("edgefort/"+testThing+"/status", 1, false, "up"))
	expectMessage(t, seen, received{"edgefort/" + testThing + "/status", "up"})

	if err := b.Publish(topic, nil, 2); err == nil {
		t.Error("Publish QoS 2 succeeded, want an error")
	}
	st := b.Stats()
	if st.Upgrades != 1 || st.Connects != 1 || len(st.Refused) != 0 {
		t.Errorf("Stats = %+v, want 1 upgrade, 1 connect, no refusals", st)
	}
	cl, ok := b.mqtt.Clients.Get(testThing)
	if !ok || cl.State.Keepalive != 30 {
		t.Errorf("keep-alive = %v, want 30", cl.State.Keepalive)
	}
}

// TestBrokerRefusesUpgrade dials with gorilla directly so the HTTP
// answer to the upgrade is visible.
func TestBrokerRefusesUpgrade(t *testing.T) {
	b, v := newTestBroker(t)
	good := v.vend(testThing)
	ctx := context.Background()
	presign := func(c aws.Credentials, region string, expires time.Duration, at time.Time) string {
		u, err := sigv4.Presign(ctx, c, b.Host(), region, expires, at)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	now := time.Now()
	ok := presign(good, b.Region(), time.Minute, now)
	tamper := func(raw, k, val string) string {
		u, _ := url.Parse(raw)
		q := u.Query()
		q.Set(k, val)
		u.RawQuery = q.Encode()
		return u.String()
	}
	sig := func(raw string) string { u, _ := url.Parse(raw); return u.Query().Get(sigv4.ParamSignature) }
	badSig := strings.Repeat("0", 64)
	if sig(ok) == badSig {
		badSig = strings.Repeat("1", 64)
	}
	tests := []struct {
		name   string
		url    string
		fault  bool
		status int
		reason BrokerRefusal
	}{
		{"tampered signature", tamper(ok, sigv4.ParamSignature, badSig), false, 403, RefusedBadSignature},
		{"expired", presign(good, b.Region(), time.Minute, now.Add(-2*time.Minute)), false, 403, RefusedExpired},
		{"unknown key", presign(aws.Credentials{AccessKeyID: "AKIANOBODY", SecretAccessKey: "x"}, b.Region(), time.Minute, now), false, 403, RefusedUnknownKey},
		{"wrong session token", tamper(ok, sigv4.ParamSecurityToken, "stolen"), false, 403, RefusedBadToken},
		{"clock skew", presign(good, b.Region(), time.Hour, now.Add(10*time.Minute)), false, 403, RefusedClockSkew},
		{"wrong region", presign(good, "us-west-2", time.Minute, now), false, 403, RefusedBadSignature},
		{"no signature", strings.Split(ok, "?")[0], false, 403, RefusedMalformed},
		{"refuse fault", ok, true, 503, RefusedFault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.SetFaults(BrokerFaults{RefuseConnections: tt.fault})
			defer b.SetFaults(BrokerFaults{})
			before := b.Stats().Refused[tt.reason]
			d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: b.ServerCA()}, Subprotocols: []string{"mqtt"}}
			ws, resp, err := d.Dial(tt.url, nil)
			if err == nil {
				ws.Close()
				t.Fatal("upgrade succeeded, want refusal")
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("upgrade answered %v (%v), want %d", resp, err, tt.status)
			}
			if got := b.Stats().Refused[tt.reason]; got != before+1 {
				t.Errorf("Refused[%s] = %d, want %d", tt.reason, got, before+1)
			}
		})
	}
	if st := b.Stats(); st.Upgrades != 0 || st.Connects != 0 {
		t.Errorf("Stats = %+v, want no upgrade and no connect", st)
	}

	// Still fine with the good URL, and through paho.
	s := &signer{t: t, b: b, v: v, thing: testThing}
	wait(t, newPaho(t, b, s, testThing, nil).Connect())

	// A plain GET with a valid signature is not an upgrade.
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.ServerCA()}}}).
		Get(strings.Replace(presign(good, b.Region(), time.Minute, time.Now()), "wss://", "https://", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET answered %d, want 400", resp.StatusCode)
	}
}

func TestBrokerClientIDMustBeThing(t *testing.T) {
	b, v := newTestBroker(t)
	s := &signer{t: t, b: b, v: v, thing: testThing}
	tok := newPaho(t, b, s, "node-2", nil).Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() == nil {
		t.Fatal("CONNECT as another thing succeeded, want refusal")
	}
	if got := b.Stats().Refused[RefusedClientID]; got != 1 {
		t.Errorf("Refused[client_id] = %d, want 1", got)
	}
	if st := b.Stats(); st.Upgrades != 1 || st.Connects != 0 {
		t.Errorf("Stats = %+v, want the upgrade but no connect", st)
	}
	testkit.WaitFor(t, "no connections", func() bool { return b.Connections() == 0 })
}

func TestBrokerTopicACL(t *testing.T) {
	b, v := newTestBroker(t)
	s := &signer{t: t, b: b, v: v, thing: testThing}
	lost := make(chan error, 1)
	o := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(testThing).SetAutoReconnect(false).
		SetCustomOpenConnectionFn(s.open).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	c := paho.NewClient(o)
	t.Cleanup(func() { c.Disconnect(50) })
	wait(t, c.Connect())

	for _, tt := range []struct {
		filter string
		want   byte
	}{
		{"edgefort/" + testThing + "/events", 1},
		{"edgefort/" + testThing + "/#", 1},
		{"$aws/things/" + testThing + "/shadow/update/delta", 1},
		{"$aws/things/" + testThing + "/jobs/notify-next", 1},
		{"edgefort/node-2/events", 0x80},
		{"edgefort/+/events", 0x80},
		{"edgefort/" + testThing + "-evil/events", 0x80},
		{"#", 0x80},
		{"$aws/things/node-2/jobs/notify-next", 0x80},
	} {
		tok := c.Subscribe(tt.filter, 1, func(paho.Client, paho.Message) {})
		wait(t, tok)
		if got := tok.(*paho.SubscribeToken).Result()[tt.filter]; got != tt.want {
			t.Errorf("SUBACK for %s = %#x, want %#x", tt.filter, got, tt.want)
		}
	}
	if got := b.Stats().ACLDenied; got != 5 {
		t.Errorf("ACLDenied = %d, want 5", got)
	}

	// A QoS 1 publish outside the thing's topics costs the connection,
	// and reaches nobody.
	leaked := make(chan struct{}, 1)
	defer b.Subscribe("edgefort/node-2/#", func(string, []byte) { leaked <- struct{}{} })()
	c.Publish("edgefort/node-2/events", 1, false, "x")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("connection kept after an unauthorised publish")
	}
	select {
	case <-leaked:
		t.Error("unauthorised publish was delivered")
	default:
	}
	if got := b.Stats().ACLDenied; got != 6 {
		t.Errorf("ACLDenied = %d, want 6", got)
	}
}

// TestBrokerPersistentSessionAcrossDrop cuts the connection, publishes a
// QoS 1 event while the device is away and the broker refuses it, then
// lets paho reconnect with a freshly presigned URL from fresh credentials
// (the old key revoked): the session is resumed and the event delivered.
func TestBrokerPersistentSessionAcrossDrop(t *testing.T) {
	b, v := newTestBroker(t)
	s := &signer{t: t, b: b, v: v, thing: testThing, fresh: true}
	onMsg, msgs := collector()
	var connects atomic.Int64
	lost := make(chan struct{}, 1)
	o := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(testThing).
		SetCleanSession(false).SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetResumeSubs(true).SetOrderMatters(false).
		SetCustomOpenConnectionFn(s.open).
		SetDefaultPublishHandler(onMsg).
		SetOnConnectHandler(func(paho.Client) { connects.Add(1) }).
		SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} })
	c := paho.NewClient(o)
	t.Cleanup(func() { c.Disconnect(50) })
	wait(t, c.Connect())
	topic := "edgefort/" + testThing + "/events"
	wait(t, c.Subscribe(topic, 1, nil))
	first := s.current().AccessKeyID

	b.SetFaults(BrokerFaults{RefuseConnections: true, DropConnections: true})
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("connection not lost after DropConnections")
	}
	v.revoke(first)
	testkit.WaitFor(t, "the broker to see the disconnect", func() bool { return b.Connections() == 0 })
	if err := b.Publish(topic, []byte("while away"), 1); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "refused reconnect attempts", func() bool { return b.Stats().Refused[RefusedFault] > 0 })
	b.SetFaults(BrokerFaults{})

	expectMessage(t, msgs, received{topic, "while away"})
	if n := connects.Load(); n != 2 {
		t.Errorf("connects = %d, want 2", n)
	}
	if s.current().AccessKeyID == first {
		t.Error("reconnect reused the revoked credentials")
	}
	st := b.Stats()
	if st.Dropped != 1 || st.Connects != 2 {
		t.Errorf("Stats = %+v, want 1 dropped, 2 connects", st)
	}
	if n := s.attempts.Load(); n < 3 {
		t.Errorf("presigned %d URLs, want one per attempt (>= 3)", n)
	}
}

func TestBrokerOptions(t *testing.T) {
	ca, err := NewCA("t")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(string) (string, string, string, bool) { return "", "", "", false }
	if _, err := NewBroker(BrokerOptions{Lookup: lookup}); err == nil {
		t.Error("NewBroker without CA succeeded")
	}
	if _, err := NewBroker(BrokerOptions{CA: ca}); err == nil {
		t.Error("NewBroker without Lookup succeeded")
	}
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:8883", "127.0.0.1"} {
		if _, err := NewBroker(BrokerOptions{CA: ca, Lookup: lookup, Addr: addr}); err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("NewBroker with Addr %q: error %v, want one naming it", addr, err)
		}
	}
	b, err := NewBroker(BrokerOptions{CA: ca, Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if b.Region() != DefaultBrokerRegion || b.URL() != "" {
		t.Errorf("Region, URL = %q, %q before Start", b.Region(), b.URL())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Run(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.HasPrefix(b.URL(), "wss://127.0.0.1:") {
		t.Errorf("URL = %q after Run", b.URL())
	}
}

// TestBrokerRestartsOnSameAddress closes a serving broker and starts it
// again: clients find it on the address they knew, what was subscribed
// with Subscribe and the management API work on, and the counters go on.
func TestBrokerRestartsOnSameAddress(t *testing.T) {
	ca, err := NewCA("broker restart CA")
	if err != nil {
		t.Fatal(err)
	}
	v := &testVault{creds: make(map[string]testCred)}
	b, err := NewBroker(BrokerOptions{CA: ca, Lookup: v.lookup, ManagementToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Start(); err == nil {
		t.Error("a second Start while serving succeeded")
	}
	host := b.Host()
	seen := make(chan received, 10)
	defer b.Subscribe("edgefort/+/status", func(topic string, payload []byte) {
		seen <- received{topic, string(payload)}
	})()
	s := &signer{t: t, b: b, v: v, thing: testThing, fresh: true}
	c := newPaho(t, b, s, testThing, nil)
	wait(t, c.Connect())
	status := "edgefort/" + testThing + "/status"
	wait(t, c.Publish(status, 1, false, "before"))
	expectMessage(t, seen, received{status, "before"})

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	testkit.WaitFor(t, "the client to see the broker go", func() bool { return !c.IsConnectionOpen() })
	if conn, err := net.Dial("tcp", host); err == nil {
		conn.Close()
		t.Fatalf("dialled %s while the broker was closed", host)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start after Close: %v", err)
	}
	if got := b.Host(); got != host {
		t.Fatalf("Host after restart = %s, want %s", got, host)
	}
	wait(t, c.Connect())
	wait(t, c.Publish(status, 1, false, "after"))
	expectMessage(t, seen, received{status, "after"})

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.ServerCA()}}}
	req, _ := http.NewRequest(http.MethodPost, "https://"+host+"/api/management/dev/publish",
		strings.NewReader(`{"topic":"edgefort/`+testThing+`/status","payload":"managed","qos":1}`))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("management publish after restart: %d, want 204", resp.StatusCode)
	}
	expectMessage(t, seen, received{status, `"managed"`})
	if st := b.Stats(); st.Upgrades != 2 || st.Connects != 2 {
		t.Errorf("Stats = %+v, want 2 upgrades and 2 connects across the restart", st)
	}
}
