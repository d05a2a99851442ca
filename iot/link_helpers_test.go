package iot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/internal/wsconn"
)

// testBroker is an embedded mochi broker with a TLS WebSocket listener on a
// fixed loopback port, so that it can be stopped and started again there.
// The listener is bound before the broker starts and handed to it (see
// boundWS): mochi's own WebSocket listener binds on a goroutine after
// Serve returns, so a link dialling right after start could be refused.
type testBroker struct {
	t      testing.TB
	addr   string
	server *tls.Config // the listener's
	client *tls.Config // trusts the listener's certificate

	mu  sync.Mutex // guards srv
	srv *mqtt.Server
}

func startTestBroker(t testing.TB) *testBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, cliTLS := selfSignedTLS(t)
	b := &testBroker{t: t, addr: ln.Addr().String(), server: srvTLS, client: cliTLS}
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

// start binds b.addr again and serves there. The port was ours until stop
// closed it; should another process have taken it meanwhile, the test
// fails saying so rather than dialling a stranger.
func (b *testBroker) start() {
	b.t.Helper()
	var ln net.Listener
	var err error
	testkit.WaitFor(b.t, "the broker's port "+b.addr+" to be free again", func() bool {
		ln, err = net.Listen("tcp", b.addr)
		return err == nil
	})
	b.serve(ln)
}

// serve runs a new broker on ln, which is already bound.
func (b *testBroker) serve(ln net.Listener) {
	b.t.Helper()
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		ln.Close()
		b.t.Fatal(err)
	}
	if err := srv.AddListener(newBoundWS("wss", tls.NewListener(ln, b.server))); err != nil {
		ln.Close()
		b.t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
}

// boundWS is a mochi listener serving MQTT over WebSocket on a listener
// that is already bound: connections made before mochi runs Serve wait in
// the accept queue instead of being refused. It upgrades every request
// (the link's tests do not check signatures; devcloud's broker does) and
// hands mochi the connection through internal/wsconn, as devcloud does.
type boundWS struct {
	id       string
	ln       net.Listener
	srv      *http.Server
	upgrader websocket.Upgrader
	started  atomic.Bool   // Serve was called
	served   chan struct{} // closed when Serve returned

	establish listeners.EstablishFn // set by Serve before the server runs
}

func newBoundWS(id string, ln net.Listener) *boundWS {
	l := &boundWS{
		id:       id,
		ln:       ln,
		served:   make(chan struct{}),
		upgrader: websocket.Upgrader{Subprotocols: []string{"mqtt"}, CheckOrigin: func(*http.Request) bool { return true }},
	}
	l.srv = &http.Server{Handler: http.HandlerFunc(l.handle), ReadHeaderTimeout: 10 * time.Second}
	return l
}

func (l *boundWS) ID() string                  { return l.id }
func (l *boundWS) Address() string             { return l.ln.Addr().String() }
func (l *boundWS) Protocol() string            { return "wss" }
func (l *boundWS) Init(log *slog.Logger) error { return nil }

func (l *boundWS) Serve(establish listeners.EstablishFn) {
	l.started.Store(true)
	defer close(l.served)
	l.establish = establish
	l.srv.Serve(l.ln) // returns when Close shuts the server down
}

func (l *boundWS) handle(w http.ResponseWriter, r *http.Request) {
	ws, err := l.upgrader.Upgrade(w, r, nil) // answers the client itself on error
	if err != nil {
		return
	}
	c := wsconn.New(ws, wsconn.Options{})
	defer c.Close()
	l.establish(l.id, c)
}

// Close stops accepting, lets mochi disconnect the clients and waits for
// Serve to return.
func (l *boundWS) Close(closeClients listeners.CloseFn) {
	l.srv.Close() // closes ln; upgraded connections are mochi's to close
	closeClients(l.id)
	if l.started.Load() { // a Serve that starts later returns at once
		<-l.served
	}
}

func (b *testBroker) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart stops the broker, waits pause and starts it again on the same
// port; the sessions are lost, as a broker without persistence loses them.
func (b *testBroker) restart(pause time.Duration) {
	b.stop()
	time.Sleep(pause)
	b.start()
}

func (b *testBroker) mochi() *mqtt.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv
}

// publish sends a QoS 1 message from the cloud side.
func (b *testBroker) publish(topic, payload string) {
	b.t.Helper()
	if err := b.mochi().Publish(topic, []byte(payload), false, 1); err != nil {
		b.t.Fatal(err)
	}
}

// kick closes the connection of client id, as a network failure would.
func (b *testBroker) kick(id string) {
	b.t.Helper()
	cl, ok := b.mochi().Clients.Get(id)
	if !ok {
		b.t.Fatalf("kick: no client %q", id)
	}
	cl.Stop(fmt.Errorf("kicked by the test"))
}

// inflight returns how many messages to id the broker holds unacknowledged.
func (b *testBroker) inflight(id string) int {
	cl, ok := b.mochi().Clients.Get(id)
	if !ok {
		return -1
	}
	return cl.State.Inflight.Len()
}

// selfSignedTLS returns a server config for 127.0.0.1 and a client config
// that trusts it.
func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "iot test broker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

// countingCreds returns new credentials (AKID1, AKID2, …) on every Retrieve,
// each expiring after ttl.
type countingCreds struct {
	ttl time.Duration

	mu sync.Mutex // guards n
	n  int
}

func (c *countingCreds) Retrieve(context.Context) (aws.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return aws.Credentials{
		AccessKeyID:     fmt.Sprintf("AKID%d", c.n),
		SecretAccessKey: "secret",
		SessionToken:    "token",
		CanExpire:       c.ttl > 0,
		Expires:         time.Now().Add(c.ttl),
	}, nil
}

func (c *countingCreds) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// presignStub stands in for SigV4 against the plain test broker: it records
// each call and returns a distinct URL naming the access key.
type presignStub struct {
	mu    sync.Mutex // guards the fields below
	akids []string
	urls  []string
}

func (p *presignStub) presign(_ context.Context, creds aws.Credentials, host, region string, expires time.Duration, now time.Time) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := url.Values{
		"X-Amz-Credential": {creds.AccessKeyID + "/" + now.UTC().Format("20060102") + "/" + region + "/iotdevicegateway/aws4_request"},
		"X-Amz-Expires":    {fmt.Sprint(int(expires.Seconds()))},
		"attempt":          {fmt.Sprint(len(p.urls) + 1)},
	}
	u := "wss://" + host + "/mqtt?" + q.Encode()
	p.akids = append(p.akids, creds.AccessKeyID)
	p.urls = append(p.urls, u)
	return u, nil
}

func (p *presignStub) snapshot() (akids, urls []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.akids...), append([]string(nil), p.urls...)
}

const testThing = "fort-1"

// testOptions are Options for a link to b with fast reconnects; set
// Subscriptions and Handler as needed.
func testOptions(b *testBroker, creds aws.CredentialsProvider, ps *presignStub) Options {
	return Options{
		Host:             b.addr,
		Region:           "eu-west-1",
		ThingName:        testThing,
		Credentials:      creds,
		TLS:              b.client,
		Presign:          ps.presign,
		ReconnectInitial: 50 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
		ConnectInterval:  time.Millisecond, // the test brokers have no per-client-ID limit
		ConnectTimeout:   5 * time.Second,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:       prom.NewRegistry(),
	}
}

// runLink starts l.Run and registers a cleanup that stops it, checks that it
// returned nil within 5s and that its goroutines are gone.
func runLink(t *testing.T, l *Link) {
	t.Helper()
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5s of cancel")
		}
		if got := l.Status().State; got != StateStopped {
			t.Errorf("state after Run = %q, want %q", got, StateStopped)
		}
		// Everything Run started must be gone; the broker's connection
		// goroutines for the link end with it, so allow a moment.
		testkit.WaitFor(t, "goroutines back to the count before Run", func() bool {
			return runtime.NumGoroutine() <= before
		})
	})
}

// counterValue reads a counter from reg: unlabelled, or the series of
// edgefort_iot_publish_refused_total for the reason labelValue.
func counterValue(t testing.TB, reg prom.Gatherer, name, labelValue string) float64 {
	t.Helper()
	if labelValue != "" {
		return promtest.Value(t, reg, name, "reason", labelValue)
	}
	return promtest.Value(t, reg, name)
}

// Short names for mochi's inline subscription callback types.
type (
	mqttClient = mqtt.Client
	mqttSub    = packets.Subscription
	mqttPacket = packets.Packet
)

// awsCache wraps p in aws.CredentialsCache with no early expiry window.
func awsCache(p aws.CredentialsProvider) aws.CredentialsProvider {
	return aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 0 })
}

// allowAll lets every client connect and use every topic; devcloud's broker
// is where authentication is tested.
type allowAll struct{ mqtt.HookBase }

func (h *allowAll) ID() string { return "allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
