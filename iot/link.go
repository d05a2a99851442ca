// Package iot owns the agent's event link to AWS IoT Core: one MQTT 3.1.1
// connection over a WebSocket with TLS to wss://<endpoint>/mqtt, whose URL is
// presigned with SigV4 afresh, from freshly asked credentials, on every
// connection attempt. The Link keeps a persistent session under the thing
// name, subscribes with QoS 1, reconnects with capped exponential backoff
// and full jitter (further out when the service throttles the connect,
// see ErrThrottled), replaces a connection before AWS's 24-hour limit, keeps
// publishes within AWS's size and rate limits, and runs message handlers on
// its own workers, acknowledging a message only after its handler succeeded.
// A Node builds the link with what runs over it (the events dispatcher, the
// jobs runner, the device shadow) from the iot section of the configuration
// (Config) and the dependencies the agent hands it (NodeDeps).
package iot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/time/rate"

	"github.com/edgefort/edgefort/internal/backoff"
)

// Log keys.
const (
	logKeyError     = "error"
	logKeyTopic     = "topic"
	logKeyDuplicate = "duplicate"
	logKeyBackoff   = "backoff"
	logKeyUptime    = "uptime"
	logKeyAttempt   = "attempt"
	logKeySession   = "session_present"
	logKeyFailures  = "failures"
)

// errMaxAge ends a connection that reached MaxConnectionAge.
var errMaxAge = errors.New("connection reached its maximum age")

// Link is the event link, a component run by the supervisor. Create it with
// New.
type Link struct {
	opts    Options // defaults filled in
	log     *slog.Logger
	metrics *metrics
	limiter *rate.Limiter

	running atomic.Bool
	// client is the paho client of the current Run, nil outside Run.
	client atomic.Pointer[paho.Client]
	// dial is the single-use dial of the current connection attempt; the
	// open-connection hook takes it, so a presigned URL is never reused.
	dial atomic.Pointer[pendingDial]

	messagesIn, messagesOut atomic.Uint64

	mu     sync.Mutex // guards status (counters excepted)
	status Status
}

// pendingDial is what one connection attempt dials.
type pendingDial struct {
	ctx    context.Context
	url    string
	opened atomic.Bool // the WebSocket was upgraded
}

// New checks opts, registers the metrics and starts nothing.
func New(opts Options) (*Link, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("iot: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("iot: %w", err)
	}
	l := &Link{
		opts:    o,
		log:     o.Logger,
		metrics: m,
		limiter: newPublishLimiter(),
	}
	l.status = Status{State: StateStopped, Since: o.Now()}
	m.setState(StateStopped)
	return l, nil
}

// Run connects and keeps the link up until ctx ends, then disconnects,
// waits for every goroutine it started (handlers included) and returns nil.
// It signals the supervisor ready once the first connection is subscribed.
// Connection failures are retried, not returned.
func (l *Link) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("iot: link is already running")
	}
	defer l.running.Store(false)
	defer l.setState(StateStopped)

	ctx, cancel := context.WithCancel(ctx)
	in := newInbox(l.opts.Workers)
	var workers sync.WaitGroup
	for range l.opts.Workers {
		workers.Go(func() { l.work(ctx, in) })
	}
	lost := make(chan error, 1)
	client := paho.NewClient(l.clientOptions(ctx, in, lost))
	l.client.Store(&client)
	var hooks sync.WaitGroup // OnConnect calls
	defer func() {
		l.client.Store(nil)
		cancel()
		client.Disconnect(250) // no-op when not connected
		in.close()
		workers.Wait()
		hooks.Wait()
	}()

	bo := l.backoff()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			l.countReconnect()
		}
		started := l.opts.Now()
		up, err := l.connect(ctx, client, attempt)
		if err == nil {
			bo.Up()
			if l.opts.Ready != nil {
				l.opts.Ready()
			}
			if l.opts.OnConnect != nil {
				// Off the loop: the hook publishes (Jobs start-next, the
				// Shadow's reported state), which needs the loop watching
				// the connection.
				hooks.Go(func() { l.opts.OnConnect(ctx) })
			}
			err = l.stayConnected(ctx, client, lost)
			uptime := l.opts.Now().Sub(up)
			if errors.Is(err, errMaxAge) {
				bo.Reset() // retired on purpose, not lost
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errMaxAge) {
				l.log.Info("replacing connection", slog.Any(logKeyError, err), slog.Duration(logKeyUptime, uptime))
				continue // at once, no backoff
			}
			l.log.Warn("connection ended", slog.Any(logKeyError, err), slog.Duration(logKeyUptime, uptime))
		}
		if ctx.Err() != nil {
			return nil
		}
		l.setError(err)
		d := l.nextDelay(bo, err, started)
		l.setState(StateBackingOff)
		if backoff.Sleep(ctx, d) != nil {
			return nil
		}
	}
}

// nextDelay counts a failed attempt (or a lost connection) begun at
// started, logs it and returns the wait before the next one, at least
// ConnectInterval after started.
func (l *Link) nextDelay(bo *backoff.Backoff, err error, started time.Time) time.Duration {
	throttled := errors.Is(err, ErrThrottled)
	d := retryDelay(bo, throttled, l.opts.ConnectInterval-l.opts.Now().Sub(started))
	if throttled {
		l.countThrottled()
		l.log.Warn("connect throttled by the service, backing off further",
			slog.Any(logKeyError, err), slog.Duration(logKeyBackoff, d), slog.Int(logKeyFailures, bo.Failures()))
		return d
	}
	l.log.Info("reconnecting after backoff", slog.Any(logKeyError, err), slog.Duration(logKeyBackoff, d))
	return d
}

// retryDelay is the reconnect policy for one failure, apart from the link
// so that a simulated fleet runs the same code: further out if the service
// throttled the attempt (backoff.Throttled), and never less than least,
// what keeps the attempts ConnectInterval apart.
func retryDelay(bo *backoff.Backoff, throttled bool, least time.Duration) time.Duration {
	var d time.Duration
	if throttled {
		d = bo.Throttled()
	} else {
		d = bo.Next()
	}
	return max(d, least)
}

// clientOptions configures paho: persistent session under the thing name,
// no reconnects of its own (the link owns them so that each one is signed
// anew), manual acknowledgements, and callbacks off its own goroutines.
func (l *Link) clientOptions(ctx context.Context, in *inbox, lost chan<- error) *paho.ClientOptions {
	o := paho.NewClientOptions()
	o.AddBroker((&url.URL{Scheme: "wss", Host: l.opts.Host, Path: "/mqtt"}).String())
	o.SetClientID(l.opts.ThingName)
	// 3.1.1 only: on a refused CONNECT paho would otherwise retry at once
	// as MQTT 3.1, on a second connection the single-use URL cannot open,
	// and the CONNACK's code would be lost.
	o.SetProtocolVersion(4)
	o.SetCleanSession(false)
	o.SetResumeSubs(false) // subscriptions are made again after each connect
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetOrderMatters(false)
	o.SetAutoAckDisabled(true)
	o.SetKeepAlive(l.opts.KeepAlive)
	o.SetConnectTimeout(l.opts.ConnectTimeout)
	o.SetWriteTimeout(l.opts.ConnectTimeout)
	o.SetTLSConfig(l.opts.TLS)
	o.SetCustomOpenConnectionFn(l.openConnection)
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		l.messagesIn.Add(1)
		l.metrics.messagesIn.Inc()
		in.deliver(ctx, m)
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case lost <- err:
		default: // one pending signal is enough
		}
	})
	return o
}

// openConnection is paho's open-connection hook: it dials the URL presigned
// for the current attempt, once.
func (l *Link) openConnection(_ *url.URL, o paho.ClientOptions) (net.Conn, error) {
	d := l.dial.Swap(nil)
	if d == nil {
		return nil, errors.New("no presigned URL for this attempt")
	}
	conn, err := l.opts.Dial(d.ctx, d.url, o.TLSConfig)
	d.opened.Store(err == nil)
	return conn, err
}

// connect makes one connection attempt with fresh credentials and a fresh
// URL, then subscribes. It returns when the link is connected.
func (l *Link) connect(ctx context.Context, client paho.Client, attempt int) (time.Time, error) {
	l.setState(StateConnecting)
	actx, cancel := context.WithTimeout(ctx, l.opts.ConnectTimeout)
	defer cancel()

	creds, err := l.opts.Credentials.Retrieve(actx)
	if err != nil {
		return time.Time{}, fmt.Errorf("retrieve credentials: %w", err)
	}
	u, err := l.opts.Presign(actx, creds, l.opts.Host, l.opts.Region, presignExpiry, l.opts.Now())
	if err != nil {
		return time.Time{}, fmt.Errorf("presign url: %w", err)
	}
	pd := &pendingDial{ctx: actx, url: u}
	l.dial.Store(pd)
	tok := client.Connect()
	// paho ends the attempt by itself within ConnectTimeout; actx ending
	// stops the dial. Wait for it either way, so nothing outlives the call.
	<-tok.Done()
	l.dial.Store(nil)
	if err := tok.Error(); err != nil {
		return time.Time{}, fmt.Errorf("connect: %w", classifyConnect(err, pd.opened.Load()))
	}
	up := l.opts.Now()
	session := tok.(*paho.ConnectToken).SessionPresent()
	if err := l.subscribe(actx, client); err != nil {
		client.Disconnect(250)
		return time.Time{}, err
	}
	l.setState(StateConnected)
	l.log.Info("connected", slog.Int(logKeyAttempt, attempt), slog.Bool(logKeySession, session))
	return up, nil
}

// subscribe subscribes to every filter with QoS 1, at most
// maxFiltersPerSubscribe per SUBSCRIBE as AWS requires.
func (l *Link) subscribe(ctx context.Context, client paho.Client) error {
	subs := l.opts.Subscriptions
	for len(subs) > 0 {
		n := min(len(subs), maxFiltersPerSubscribe)
		filters := make(map[string]byte, n)
		for _, s := range subs[:n] {
			filters[s] = 1
		}
		subs = subs[n:]
		// nil callback: messages go to the default handler, which also
		// takes what a resumed session delivers before we subscribe.
		tok := client.SubscribeMultiple(filters, nil)
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return fmt.Errorf("subscribe: %w", ctx.Err())
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		for f, qos := range tok.(*paho.SubscribeToken).Result() {
			if qos != 1 {
				return fmt.Errorf("subscribe %q: broker granted %#x", f, qos)
			}
		}
	}
	return nil
}

// stayConnected waits until the connection is lost, reaches its maximum
// age (less jitter) or ctx ends, and disconnects in the last two cases.
func (l *Link) stayConnected(ctx context.Context, client paho.Client, lost <-chan error) error {
	age := l.opts.MaxConnectionAge - time.Duration(rand.Float64()*ageJitter*float64(l.opts.MaxConnectionAge))
	t := time.NewTimer(age)
	defer t.Stop()
	for {
		select {
		case err := <-lost:
			if client.IsConnectionOpen() {
				continue // a late signal from an earlier connection
			}
			return fmt.Errorf("connection lost: %w", err)
		case <-t.C:
			client.Disconnect(250)
			return errMaxAge
		case <-ctx.Done():
			client.Disconnect(250)
			return ctx.Err()
		}
	}
}
