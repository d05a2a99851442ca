package devcloud

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	// "qos"}), and the routes of the services on the broker (Jobs). How
	// another process (edgefort-dev event and job) acts as the cloud. Not
	// part of AWS's API.
	ManagementToken string
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
// Create it with NewBroker, then Start and Close it, or Run it.
type Broker struct {
	opts    BrokerOptions
	log     *slog.Logger
	now     func() time.Time
	tlsConf *tls.Config
	mqtt    *mqtt.Server
	stats   brokerStats
	refuse  atomic.Bool // BrokerFaults.RefuseConnections
	subID   atomic.Int64
	// manage holds the management API's routes; services on the broker
	// (Jobs) add theirs, also while it serves.
	manage *http.ServeMux

	ln      *wsListener // set by Start
	started bool
	closed  bool
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
	b := &Broker{opts: opts, log: opts.Logger, now: opts.Now, manage: http.NewServeMux()}
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
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1 // AWS IoT: QoS 0 and 1 only
	caps.MaximumSessionExpiryInterval = uint32(BrokerSessionExpiry / time.Second)
	caps.MinimumProtocolVersion = 4 // MQTT 3.1.1 (AWS IoT also speaks 5; edgefort uses 3.1.1)
	b.mqtt = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true,
		Logger:       b.log.With("component", "mochi"),
	})
	if err := b.mqtt.AddHook(&brokerHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	if h := opts.Wire.hook(WireEventLink); h != nil {
		if err := b.mqtt.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: add hook: %w", err)
		}
	}
	return b, nil
}

// Start listens on 127.0.0.1 (a free port) and serves in the background
// until Close.
func (b *Broker) Start() error {
	if b.started {
		return errors.New("broker: already started")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("broker: listen: %w", err)
	}
	b.ln = newWSListener(b, tls.NewListener(b.opts.Wire.listener(WireEventLink, ln, false), b.tlsConf))
	if err := b.mqtt.AddListener(b.ln); err != nil {
		ln.Close()
		return fmt.Errorf("broker: add listener: %w", err)
	}
	if err := b.mqtt.Serve(); err != nil {
		b.ln.shutdown()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.started = true
	return nil
}

// Host is the broker's host:port (127.0.0.1:PORT), what a presigned URL is
// signed for. Empty before Start.
func (b *Broker) Host() string {
	if b.ln == nil {
		return ""
	}
	return b.ln.Address()
}

// URL is the broker's WebSocket endpoint, wss://127.0.0.1:PORT/mqtt,
// before presigning. Empty before Start.
func (b *Broker) URL() string {
	if b.ln == nil {
		return ""
	}
	return "wss://" + b.Host() + "/mqtt"
}

// Region is the SigV4 region the broker checks.
func (b *Broker) Region() string { return b.opts.Region }

// Close disconnects every client, stops listening and waits for the
// connection goroutines.
func (b *Broker) Close() error {
	if !b.started || b.closed {
		return nil
	}
	b.closed = true
	err := b.mqtt.Close()
	b.ln.wait()
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

// SetFaults applies the fault knobs: RefuseConnections holds until
// changed, DropConnections acts once.
func (b *Broker) SetFaults(f BrokerFaults) {
	b.refuse.Store(f.RefuseConnections)
	if f.DropConnections {
		for _, cl := range b.mqtt.Clients.GetAll() {
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

// Connections is the number of MQTT clients connected now.
func (b *Broker) Connections() int {
	return int(atomic.LoadInt64(&b.mqtt.Info.ClientsConnected))
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
	if err := b.mqtt.Publish(topic, payload, false, qos); err != nil {
		return fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn with every message published to a topic matching
// filter (by devices or by Publish) until cancel is called. fn runs on the
// publisher's goroutine and must not block; payload is its own copy.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) (cancel func()) {
	id := int(b.subID.Add(1))
	err := b.mqtt.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, append([]byte(nil), pk.Payload...))
	})
	if err != nil {
		b.log.Error("broker subscribe failed", "filter", filter, "error", err)
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { b.mqtt.Unsubscribe(filter, id) }) }
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
