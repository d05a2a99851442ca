package iot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/iot/sigv4"
)

// Limits of AWS IoT Core's message broker that the link enforces locally
// (https://docs.aws.amazon.com/general/latest/gr/iot-core.html).
const (
	// MaxPayload is the largest PUBLISH payload AWS IoT accepts, in bytes.
	MaxPayload = 128 * 1024
	// PublishRate is AWS's limit of publishes per second per connection.
	PublishRate = 100
	// MinKeepAlive and MaxKeepAlive bound the MQTT keep-alive AWS accepts.
	MinKeepAlive = 30 * time.Second
	MaxKeepAlive = 1200 * time.Second
	// maxFiltersPerSubscribe is AWS's limit of topic filters in one SUBSCRIBE.
	maxFiltersPerSubscribe = 8
)

// Defaults for the zero fields of Options.
const (
	// DefaultKeepAlive is 5 minutes, not the 60 s of most MQTT clients:
	// an idle node's budget is one message a minute on all its links
	// (issue 19, docs/benchmarks.md "Idle cost per node"), and each
	// keep-alive is two (PINGREQ, PINGRESP), so 60 s alone spent it
	// twice. Longer costs in two ways. A dead connection (broker gone, a
	// NAT that forgot it) is noticed only by the next ping, which paho
	// sends up to a quarter keep-alive late, plus its 10 s ping timeout
	// (6 min 25 s at 5 minutes); cloud events wait that long in the
	// persistent session. And an idle connection must carry a
	// packet before the NATs and firewalls on its way drop it: AWS's NAT
	// gateway drops idle TCP flows after 350 s, Azure's NAT gateway after
	// 4 minutes by default, GCP's Cloud NAT after 20 minutes, home and
	// carrier NATs vary (RFC 5382 asks at least 2 h 4 min). 5 minutes
	// stays under AWS's 350 s at 24 messages an hour; AWS IoT accepts 30 s
	// to 20 min and its device SDKs default to 20 min. Behind a shorter
	// idle timeout, set iot.keep_alive under it.
	DefaultKeepAlive        = 5 * time.Minute
	DefaultReconnectInitial = time.Second
	DefaultReconnectMax     = 2 * time.Minute
	DefaultReconnectSpread  = 40 * time.Second
	// throttledMaxFactor sets the default ReconnectThrottledMax: four
	// doublings past ReconnectMax (32m by default).
	throttledMaxFactor = 16
	// DefaultConnectInterval keeps the link within AWS IoT's limit of one
	// CONNECT a second per client ID, plus a margin for one handshake
	// taking longer than the next.
	DefaultConnectInterval  = 1100 * time.Millisecond
	DefaultMaxConnectionAge = 23 * time.Hour
	DefaultWorkers          = 4
	DefaultConnectTimeout   = 30 * time.Second

	// backoffResetAfter is how long a connection must stay up before the
	// reconnect backoff starts again from ReconnectInitial, so that a
	// flapping link keeps slowing down.
	backoffResetAfter = time.Minute
	// presignExpiry is the X-Amz-Expires of each presigned URL. The URL is
	// used once, right away; AWS checks it only at the WebSocket upgrade.
	presignExpiry = 15 * time.Minute
	// ageJitter is the fraction of MaxConnectionAge by which a proactive
	// reconnect may come early, so a fleet does not reconnect in step.
	ageJitter = 0.05
)

// DialFunc opens the WebSocket to url (wss://host/mqtt?X-Amz-…) and returns
// it as a net.Conn carrying MQTT in binary frames.
type DialFunc func(ctx context.Context, url string, tlsCfg *tls.Config) (net.Conn, error)

// PresignFunc returns the SigV4-presigned wss:// URL for host, signed for
// region with creds and valid for expires from now.
type PresignFunc func(ctx context.Context, creds aws.Credentials, host, region string, expires time.Duration, now time.Time) (string, error)

// Options configures a Link.
type Options struct {
	// Host is the AWS IoT ATS data endpoint, host[:port], e.g.
	// abc123-ats.iot.eu-west-1.amazonaws.com. Required.
	Host string
	// Region is the AWS region the URL is signed for. Required.
	Region string
	// ThingName is the MQTT client id; it must be stable across restarts
	// for the persistent session to survive. Required, at most 128 bytes.
	ThingName string
	// Credentials are asked for on every connection attempt (a cached
	// provider such as cloudclient.NewIoTCredentials refreshes them itself).
	// Required.
	Credentials aws.CredentialsProvider
	// TLS is the trust for the server (from the truststore). Required; it is
	// not modified.
	TLS *tls.Config
	// Dial opens the WebSocket. Nil means a gorilla/websocket dialer offering
	// subprotocol "mqtt".
	Dial DialFunc
	// Presign makes the URL of each connection attempt; a URL is never
	// reused. Nil means sigv4.Presign.
	Presign PresignFunc
	// KeepAlive is the MQTT keep-alive, 30s to 20m. Zero means 5m.
	KeepAlive time.Duration
	// ReconnectInitial is the cap of the first reconnect delay, at most 1s.
	// Zero means 1s.
	ReconnectInitial time.Duration
	// ReconnectSpread is the cap of the third reconnect delay: after two
	// quick retries (caps ReconnectInitial and twice that) have failed,
	// the next attempt is uniform in [0, ReconnectSpread), so that a fleet
	// of N nodes that lost the broker at once comes back at about
	// N/ReconnectSpread per second. Zero means 40s, or ReconnectMax if
	// that is less.
	ReconnectSpread time.Duration
	// ReconnectMax caps the reconnect delay. Zero means 2m. Delays grow
	// with full jitter (uniform in [0, cap)): caps ReconnectInitial, twice
	// that, then ReconnectSpread doubling up to ReconnectMax; they start
	// again from ReconnectInitial once a connection has stayed up for a
	// minute.
	ReconnectMax time.Duration
	// ReconnectThrottledMax caps the reconnect delay after attempts the
	// service refused for its load or rate limits (ErrThrottled): such an
	// attempt skips the quick retries and each one doubles the window
	// past ReconnectMax up to this, so that a fleet larger than its connect
	// rate allows within ReconnectMax still converges (see
	// reconnectPolicy). Zero means 16 × ReconnectMax (32m).
	ReconnectThrottledMax time.Duration
	// ConnectInterval is the least time between the starts of two
	// connection attempts. AWS IoT takes one CONNECT a second per client
	// ID, and a quick retry that broke that would be throttled and then
	// wait out the spread. Zero means 1.1s; tests against brokers without
	// the limit set it lower.
	ConnectInterval time.Duration
	// MaxConnectionAge is when the link replaces a connection that is still
	// up, less up to 5% jitter; AWS ends SigV4 connections at 24h. Zero
	// means 23h.
	MaxConnectionAge time.Duration
	// ConnectTimeout bounds one connection attempt (dial, CONNECT/CONNACK,
	// and each SUBSCRIBE). Zero means 30s.
	ConnectTimeout time.Duration
	// Subscriptions are the topic filters subscribed with QoS 1 after every
	// connect. Optional.
	Subscriptions []string
	// Handler is called for every message received, on one of Workers
	// goroutines. The message is acknowledged after Handler returns nil;
	// on an error it is not, and the broker redelivers it (Duplicate set)
	// after the next reconnect. Required if Subscriptions is not empty.
	Handler func(ctx context.Context, m Message) error
	// Workers is how many Handler calls may run at once. Zero means 4.
	// Messages wait for a free worker in a queue of Workers entries; when it
	// is full, paho's delivery goroutines block (backpressure), and since
	// unfinished messages are not acknowledged the broker stops sending
	// once its in-flight window (AWS: 100) is full. A slow handler thus
	// occupies one worker, never the connection or its keep-alive.
	Workers int
	// Logger receives the link's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Registerer, if set, receives the edgefort_iot_* metrics.
	Registerer prom.Registerer
	// OnConnect, when set, is called after every connection is up and
	// subscribed, on its own goroutine (Run waits for it before it
	// returns): where Jobs asks for the next job and the Shadow reports.
	OnConnect func(ctx context.Context)
	// Ready, when set, is called from Run each time a connection is up:
	// the owner wires it to its supervisor's readiness. Optional.
	Ready func()
}

// withDefaults returns o with the zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Dial == nil {
		o.Dial = DialWebSocket
	}
	if o.Presign == nil {
		o.Presign = sigv4.Presign
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.ReconnectInitial == 0 {
		o.ReconnectInitial = DefaultReconnectInitial
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = DefaultReconnectMax
	}
	if o.ReconnectSpread == 0 {
		o.ReconnectSpread = min(DefaultReconnectSpread, o.ReconnectMax)
	}
	if o.ReconnectThrottledMax == 0 {
		o.ReconnectThrottledMax = throttledMaxFactor * o.ReconnectMax
	}
	if o.MaxConnectionAge == 0 {
		o.MaxConnectionAge = DefaultMaxConnectionAge
	}
	if o.ConnectInterval == 0 {
		o.ConnectInterval = DefaultConnectInterval
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// validate names every field that is wrong; it changes nothing.
func (o Options) validate() error {
	var errs []error
	if o.Host == "" {
		errs = append(errs, errors.New("host: required"))
	}
	if o.Region == "" {
		errs = append(errs, errors.New("region: required"))
	}
	switch {
	case o.ThingName == "":
		errs = append(errs, errors.New("thing_name: required"))
	case len(o.ThingName) > 128:
		errs = append(errs, fmt.Errorf("thing_name: %d bytes, AWS allows 128", len(o.ThingName)))
	}
	if o.Credentials == nil {
		errs = append(errs, errors.New("credentials: required"))
	}
	if o.TLS == nil {
		errs = append(errs, errors.New("tls: required"))
	}
	if o.KeepAlive < MinKeepAlive || o.KeepAlive > MaxKeepAlive {
		errs = append(errs, fmt.Errorf("keep_alive: %v is outside AWS's %v to %v", o.KeepAlive, MinKeepAlive, MaxKeepAlive))
	}
	if o.ReconnectInitial < 0 || o.ReconnectInitial > time.Second {
		errs = append(errs, fmt.Errorf("reconnect_initial: %v, must be in (0, 1s]", o.ReconnectInitial))
	}
	if o.ReconnectMax < o.ReconnectInitial {
		errs = append(errs, fmt.Errorf("reconnect_max: %v is less than reconnect_initial %v", o.ReconnectMax, o.ReconnectInitial))
	}
	if o.ReconnectSpread < 0 || o.ReconnectSpread > o.ReconnectMax {
		errs = append(errs, fmt.Errorf("reconnect_spread: %v, must be in (0, reconnect_max %v]", o.ReconnectSpread, o.ReconnectMax))
	}
	if o.ReconnectThrottledMax < o.ReconnectMax {
		errs = append(errs, fmt.Errorf("reconnect_throttled_max: %v is less than reconnect_max %v", o.ReconnectThrottledMax, o.ReconnectMax))
	}
	if o.MaxConnectionAge < 0 || o.MaxConnectionAge > 24*time.Hour {
		errs = append(errs, fmt.Errorf("max_connection_age: %v, AWS ends SigV4 connections at 24h", o.MaxConnectionAge))
	}
	if o.ConnectInterval < 0 {
		errs = append(errs, fmt.Errorf("connect_interval: negative (%v)", o.ConnectInterval))
	}
	if o.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("connect_timeout: negative (%v)", o.ConnectTimeout))
	}
	if o.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers: negative (%d)", o.Workers))
	}
	if len(o.Subscriptions) > 0 && o.Handler == nil {
		errs = append(errs, errors.New("handler: required with subscriptions"))
	}
	for i, s := range o.Subscriptions {
		if s == "" {
			errs = append(errs, fmt.Errorf("subscriptions[%d]: empty", i))
		}
	}
	return errors.Join(errs...)
}
