package devcloud

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// This file holds the AWS IoT Core stand-in: an MQTT 3.1.1 broker (an
// embedded mochi-mqtt server) reached only over WebSocket/TLS at /mqtt,
// whose HTTP upgrade must carry a SigV4-presigned query that
// iot/sigv4.Verify accepts. broker_ws.go is the listener (TLS, SigV4,
// upgrade), broker_hooks.go the mochi hook that binds a connection to its
// thing (client ID, topic ACL, keep-alive). It binds only to loopback and
// is for tests and `edgefort-dev`, never for production.
//
// What it mirrors of AWS IoT (shared/reference/aws-iot.md §1, §2, §5):
// SigV4 on the upgrade with the token outside the signature, refusal with
// 403 before any MQTT; client ID = thing name; a per-thing policy allowing
// edgefort/<thing>/# and $aws/things/<thing>/#; QoS 0 and 1 only;
// keep-alive clamped to 30..1200 s with the connection closed after 1.5x
// silence; persistent sessions (clean session false) kept an hour after
// disconnect; a second connection with the same client ID takes over and
// drops the first. See BrokerOptions and the notes in the report for what
// it does not.

// Defaults of the broker, used when an option is zero.
const (
	DefaultBrokerRegion = "us-east-1"
	// BrokerSessionExpiry is how long a disconnected persistent session is
	// kept: AWS IoT's default of one hour.
	BrokerSessionExpiry = time.Hour
	// BrokerMinKeepAlive and BrokerMaxKeepAlive bound the MQTT keep-alive
	// as AWS IoT does: a client asking for less (or 0) gets the bound.
	BrokerMinKeepAlive = 30 * time.Second
	BrokerMaxKeepAlive = 1200 * time.Second
	// brokerConnectTimeout is how long an upgraded connection may take to
	// send CONNECT.
	brokerConnectTimeout = 10 * time.Second
)

// BrokerOptions configure a Broker.
type BrokerOptions struct {
	// CA issues the server certificate (SANs 127.0.0.1, ::1, localhost).
	// Required.
	CA *CA
	// Region is the SigV4 region URLs must be signed for. Empty:
	// DefaultBrokerRegion.
	Region string
	// Lookup returns the credentials the control plane vended for an
	// access key ID (secret and session token, empty for a long-term key)
	// and the thing (device ID) they belong to; ok is false for a key that
	// is unknown or expired. Required; ControlPlaneLookup adapts a
	// ControlPlane.
	Lookup func(accessKeyID string) (secret, sessionToken, thing string, ok bool)
	// Logger receives connection logs (reasons for refusals, never
	// secrets). Nil: discard.
	Logger *slog.Logger
	// Now is the clock SigV4 dates are checked against. Nil: time.Now.
	// MQTT timers (keep-alive, session expiry) use the real clock.
	Now func() time.Time
	// ManagementToken, when set, serves the management API under
	// /api/management/dev/ on the broker's HTTPS port to callers presenting
	// it as a bearer token: POST publish ({"topic", "payload" (any JSON),
	// "qos"}), the fault knobs (faults_manage.go), and the routes of the
	// services on the broker (Jobs). How another process (edgefort-dev
	// event, job and fault) acts as the cloud. Not part of AWS's API.
	ManagementToken string
	// Addr is the loopback host:port to listen on. Empty: 127.0.0.1:0, a
	// free port. Whatever port the first Start bound, a Start after Close
	// listens on it again, so clients come back to the address they knew.
	Addr string
	// Wire, when set, counts the traffic on the listener under WireEventLink (MQTT control packets too)
	// (devcloud/wirecount.go). Nil: nothing is counted.
	Wire *WireCounter
}

// BrokerFaults are failure-injection knobs; set them with SetFaults. The
// zero value injects nothing.
type BrokerFaults struct {
	// RefuseConnections answers every WebSocket upgrade 503 until cleared.
	RefuseConnections bool
	// DropConnections closes every client connection now, without an
	// MQTT DISCONNECT, as a network cut would; it clears itself.
	// Persistent sessions survive.
	DropConnections bool
	// ConnectRate, when above zero, is AWS IoT's "connect requests per
	// second per account" for the whole broker: a CONNECT above it is
	// refused (CONNACK 0x03, counted as RefusedThrottled), and refused
	// ones count against it too. See broker_throttle.go. Zero: no limit.
	ConnectRate float64
	// ConnectBurst is how many CONNECTs may come at once within
	// ConnectRate. Zero: ConnectRate rounded up (one second's worth).
	ConnectBurst int
	// ConnectSpent starts the ConnectRate bucket empty, as if the rest of
	// the fleet had just spent the account's burst: one node alone never
	// knocks faster than a rate of one a second, so without it a single
	// dev node is never throttled. Needs ConnectRate.
	ConnectSpent bool
	// ClientIDThrottle refuses a CONNECT that comes within a second of the
	// previous one with the same client ID (RefusedClientIDThrottled), as
	// AWS IoT always does.
	ClientIDThrottle bool
}

// Validate reports knobs that make no sense, naming the field.
func (f BrokerFaults) Validate() error {
	var errs []error
	if math.IsNaN(f.ConnectRate) || math.IsInf(f.ConnectRate, 0) || f.ConnectRate < 0 {
		errs = append(errs, fmt.Errorf("ConnectRate %v: want a finite number of CONNECTs a second, 0 for no limit", f.ConnectRate))
	}
	if f.ConnectBurst < 0 {
		errs = append(errs, fmt.Errorf("ConnectBurst %d: want 0 (one second's worth) or more", f.ConnectBurst))
	}
	if f.ConnectBurst > 0 && f.ConnectRate == 0 {
		errs = append(errs, errors.New("ConnectBurst needs a ConnectRate"))
	}
	if f.ConnectSpent && f.ConnectRate == 0 {
		errs = append(errs, errors.New("ConnectSpent needs a ConnectRate"))
	}
	return errors.Join(errs...)
}

// quota is the part of f that makes the connect throttle.
func (f BrokerFaults) quota() BrokerFaults {
	return BrokerFaults{ConnectRate: f.ConnectRate, ConnectBurst: f.ConnectBurst, ConnectSpent: f.ConnectSpent, ClientIDThrottle: f.ClientIDThrottle}
}

// BrokerRefusal names why the broker refused a connection.
type BrokerRefusal string

// The reasons counted in BrokerStats.Refused. The first six are
// iot/sigv4's sentinels; all but RefusedClientID answer the upgrade
// before any MQTT.
const (
	RefusedMalformed    BrokerRefusal = "malformed"     // sigv4.ErrMalformed, or not a WebSocket upgrade
	RefusedExpired      BrokerRefusal = "expired"       // sigv4.ErrExpired
	RefusedClockSkew    BrokerRefusal = "clock_skew"    // sigv4.ErrClockSkew
	RefusedUnknownKey   BrokerRefusal = "unknown_key"   // sigv4.ErrUnknownKey
	RefusedBadToken     BrokerRefusal = "bad_token"     // sigv4.ErrBadToken
	RefusedBadSignature BrokerRefusal = "bad_signature" // sigv4.ErrBadSignature
	RefusedFault        BrokerRefusal = "fault"         // BrokerFaults.RefuseConnections
	RefusedClientID     BrokerRefusal = "client_id"     // CONNECT client ID is not the credentials' thing
)

// BrokerStats count what the broker did, for tests and reports.
type BrokerStats struct {
	Upgrades  int64                   // WebSocket upgrades that passed SigV4
	Connects  int64                   // MQTT CONNECTs accepted
	Refused   map[BrokerRefusal]int64 // refusals by reason
	ACLDenied int64                   // publishes and subscriptions outside the thing's topics
	Dropped   int64                   // connections cut by DropConnections
}

// brokerStats are the live counters behind BrokerStats.
type brokerStats struct {
	upgrades, connects, aclDenied, dropped atomic.Int64

	mu      sync.Mutex // guards refused
	refused map[BrokerRefusal]int64
}

func (s *brokerStats) refuse(r BrokerRefusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[r]++
}

// Broker is the SigV4-checking MQTT-over-WebSocket broker on loopback.
// Create it with NewBroker, then Start and Close it, or Run it. A closed
// broker may Start again, on the same address: an outage as clients see
// it. The restarted broker keeps its counters, faults and the
// subscriptions made with Subscribe (so Jobs and the Shadow go on), but
// not the MQTT sessions or retained messages: it is a new MQTT server, as
// a broker without persistent storage would be after a restart.
type Broker struct {
	opts    BrokerOptions
	log     *slog.Logger
	now     func() time.Time
	tlsConf *tls.Config
	stats   brokerStats
	refuse  atomic.Bool // BrokerFaults.RefuseConnections
	subID   atomic.Int64
	// manage holds the management API's routes; services on the broker
	// (Jobs) add theirs, also while it serves.
	manage *http.ServeMux

	// runMu serialises Start and Close, which it is held through; mu is
	// taken only briefly, so that a subscription callback may Publish
	// while Close waits for the connections.
	runMu   sync.Mutex
	serving bool   // between Start and Close
	addr    string // what Start listens on: opts.Addr, then the bound address

	mu   sync.Mutex               // guards the fields below
	mqtt *mqtt.Server             // the current MQTT server; a new one after a restart
	ln   *wsListener              // set by Start
	subs map[int]brokerSubscriber // by subscription ID, made again on a new server
	done bool                     // mqtt has been closed and cannot serve again

	// throttle is the connect quotas of BrokerFaults; nil: none.
	throttle atomic.Pointer[ConnectThrottle]

	faultsMu sync.Mutex   // serialises SetFaults; guards faults
	faults   BrokerFaults // what SetFaults set last, DropConnections cleared
}

// brokerSubscriber is one Subscribe call, kept to subscribe it again on the
// server a restart makes.
type brokerSubscriber struct {
	filter string
	fn     mqtt.InlineSubFn
}

// NewBroker checks opts and prepares a broker; it listens on nothing
// until Start or Run.
func NewBroker(opts BrokerOptions) (*Broker, error) {
	if opts.CA == nil {
		return nil, errors.New("broker: CA is required")
	}
	if opts.Lookup == nil {
		return nil, errors.New("broker: Lookup is required")
	}
	if opts.Region == "" {
		opts.Region = DefaultBrokerRegion
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if err := checkLoopback(opts.Addr); err != nil {
		return nil, fmt.Errorf("broker: addr %q: %w", opts.Addr, err)
	}
	b := &Broker{opts: opts, log: opts.Logger, now: opts.Now, manage: http.NewServeMux(),
		addr: opts.Addr, subs: make(map[int]brokerSubscriber)}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.stats.refused = make(map[BrokerRefusal]int64)
	key, cert, err := opts.CA.Issue("localhost", []string{"127.0.0.1", "::1", "localhost"}, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("broker: issue certificate: %w", err)
	}
	b.tlsConf = &tls.Config{
		MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{cert.Raw, opts.CA.Cert.Raw},
			PrivateKey:  key,
			Leaf:        cert,
		}},
	}
	if opts.ManagementToken != "" {
		b.manage.HandleFunc("POST /api/management/dev/publish", b.handlePublish)
		b.mountFaults()
	}
	if b.mqtt, err = b.newServer(); err != nil {
		return nil, err
	}
	return b, nil
}

// checkLoopback accepts host:port whose host is a loopback IP or
// localhost: the broker is for this machine only.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("not a loopback address (the dev broker binds only to loopback)")
	}
	return nil
}

// newServer makes an MQTT server with the broker's capabilities and hook.
func (b *Broker) newServer() (*mqtt.Server, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1 // AWS IoT: QoS 0 and 1 only
	caps.MaximumSessionExpiryInterval = uint32(BrokerSessionExpiry / time.Second)
	caps.MinimumProtocolVersion = 4 // MQTT 3.1.1 (AWS IoT also speaks 5; edgefort uses 3.1.1)
	// mochi gives each client a queue of this many pending writes, 8,192
	// by default: 64 KiB of pointers a connection, most of the broker's
	// memory with thousands of idle devices (scripts/bench/fleet).
	// AWS allows a device 100 messages in flight; 1,024 is plenty.
	caps.MaximumClientWritesPending = 1024
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true,
		Logger:       b.log.With("component", "mochi"),
	})
	if err := srv.AddHook(&brokerHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	if h := b.opts.Wire.hook(WireEventLink); h != nil {
		if err := srv.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: add hook: %w", err)
		}
	}
	return srv, nil
}

// server is the current MQTT server.
func (b *Broker) server() *mqtt.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mqtt
}

// Start listens on the broker's address (at first opts.Addr; after a
// Close, the address it had) and serves in the background until Close.
func (b *Broker) Start() error {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	if b.serving {
		return errors.New("broker: already started")
	}
	srv, err := b.nextServer()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return fmt.Errorf("broker: listen: %w", err)
	}
	wl := newWSListener(b, tls.NewListener(b.opts.Wire.listener(WireEventLink, ln, false), b.tlsConf))
	if err := srv.AddListener(wl); err != nil {
		ln.Close()
		return fmt.Errorf("broker: add listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		wl.shutdown()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.mu.Lock()
	b.ln = wl
	b.mu.Unlock()
	b.addr = wl.Address()
	b.serving = true
	return nil
}

// nextServer is the server Start serves: the current one, or after a
// Close a new one holding the broker's subscriptions.
func (b *Broker) nextServer() (*mqtt.Server, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		return b.mqtt, nil
	}
	srv, err := b.newServer()
	if err != nil {
		return nil, err
	}
	for id, s := range b.subs {
		if err := srv.Subscribe(s.filter, id, s.fn); err != nil {
			return nil, fmt.Errorf("broker: subscribe %s again: %w", s.filter, err)
		}
	}
	b.mqtt, b.done = srv, false
	return srv, nil
}

// Host is the broker's host:port (127.0.0.1:PORT), what a presigned URL is
// signed for; it stays the same across a restart. Empty before Start.
func (b *Broker) Host() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return ""
	}
	return b.ln.Address()
}

// URL is the broker's WebSocket endpoint, wss://127.0.0.1:PORT/mqtt,
// before presigning. Empty before Start.
func (b *Broker) URL() string {
	h := b.Host()
	if h == "" {
		return ""
	}
	return "wss://" + h + "/mqtt"
}

// Region is the SigV4 region the broker checks.
func (b *Broker) Region() string { return b.opts.Region }

// Close disconnects every client, stops listening and waits for the
// connection goroutines. Start may follow.
func (b *Broker) Close() error {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	if !b.serving {
		return nil
	}
	b.serving = false
	b.mu.Lock()
	srv, ln := b.mqtt, b.ln
	b.done = true
	b.mu.Unlock()
	err := srv.Close()
	ln.wait()
	return err
}

// Run starts the broker, serves until ctx ends, then closes it.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// ServerCA is the pool a client should trust for this broker.
func (b *Broker) ServerCA() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(b.opts.CA.Cert)
	return p
}

// SetFaults applies the fault knobs: RefuseConnections and the connect
// quotas hold until changed, DropConnections acts once. A new quota starts
// with a full bucket (an empty one with ConnectSpent); the same quota set
// again keeps its bucket, so that a drop does not refill it.
func (b *Broker) SetFaults(f BrokerFaults) {
	b.faultsMu.Lock()
	if f.quota() != b.faults.quota() {
		b.throttle.Store(NewConnectThrottle(f))
	}
	b.refuse.Store(f.RefuseConnections)
	b.faults = f
	b.faults.DropConnections = false
	b.faultsMu.Unlock()
	if f.DropConnections {
		for _, cl := range b.server().Clients.GetAll() {
			if cl.Net.Inline || cl.Closed() {
				continue
			}
			b.stats.dropped.Add(1)
			b.log.Info("broker dropping connection (fault)", "client", cl.ID, "remote", cl.Net.Remote)
			cl.Stop(errDropped)
		}
	}
}

var errDropped = errors.New("connection dropped (fault)")

// Faults returns the knobs in force: what SetFaults set last, without
// DropConnections (it acted then).
func (b *Broker) Faults() BrokerFaults {
	b.faultsMu.Lock()
	defer b.faultsMu.Unlock()
	return b.faults
}

// Connections is the number of MQTT clients connected now.
func (b *Broker) Connections() int {
	return int(atomic.LoadInt64(&b.server().Info.ClientsConnected))
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() BrokerStats {
	b.stats.mu.Lock()
	refused := maps.Clone(b.stats.refused)
	b.stats.mu.Unlock()
	return BrokerStats{
		Upgrades:  b.stats.upgrades.Load(),
		Connects:  b.stats.connects.Load(),
		Refused:   refused,
		ACLDenied: b.stats.aclDenied.Load(),
		Dropped:   b.stats.dropped.Load(),
	}
}

// Publish injects a message as the cloud would (no ACL applies). qos is 0
// or 1; a QoS 1 message to a disconnected persistent session is queued
// for it.
func (b *Broker) Publish(topic string, payload []byte, qos byte) error {
	if qos > 1 {
		return fmt.Errorf("broker: publish %s: QoS %d not supported (AWS IoT has 0 and 1)", topic, qos)
	}
	if err := b.server().Publish(topic, payload, false, qos); err != nil {
		return fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn with every message published to a topic matching
// filter (by devices or by Publish) until cancel is called. fn runs on the
// publisher's goroutine and must not block; payload is its own copy.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) (cancel func()) {
	id := int(b.subID.Add(1))
	inline := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, append([]byte(nil), pk.Payload...))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.mqtt.Subscribe(filter, id, inline); err != nil {
		b.log.Error("broker subscribe failed", "filter", filter, "error", err)
		return func() {}
	}
	b.subs[id] = brokerSubscriber{filter, inline}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(b.subs, id)
			b.mqtt.Unsubscribe(filter, id)
		})
	}
}

// ControlPlaneLookup adapts c to BrokerOptions.Lookup: the credentials c
// vended and not yet expired, and the device they were vended to.
func ControlPlaneLookup(c *ControlPlane) func(accessKeyID string) (secret, sessionToken, thing string, ok bool) {
	return func(accessKeyID string) (string, string, string, bool) {
		var ic api.IoTCredentials
		ic, thing, ok := c.LookupIoTCredentials(accessKeyID)
		if !ok {
			return "", "", "", false
		}
		return ic.SecretAccessKey, ic.SessionToken, thing, true
	}
}
