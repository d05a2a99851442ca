package iot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/iot/events"
	"github.com/edgefort/edgefort/iot/jobs"
	"github.com/edgefort/edgefort/iot/shadow"
	"github.com/edgefort/edgefort/keystore"
)

// Keystores are what the node needs of the keystore manager: the TLS
// configuration of its connection and the target of keystore.repoint
// events.
type Keystores interface {
	ClientTLS(ssl keystore.SSL, serverName string, vars keystore.Vars) (*tls.Config, error)
	SetRef(ref, store string) error
}

// UpdateChecker is what the node needs of the update channel (deploy's
// Poller): a poll now, for "update.check" events.
type UpdateChecker interface {
	CheckNow()
}

// NodeDeps are what a Node is built from besides its own section: each
// from the component that owns it, handed over explicitly by the agent.
type NodeDeps struct {
	// Store holds the events' and jobs' records. Required.
	Store *store.DB
	// Keystores give the TLS configuration and repoint keystores. Required.
	Keystores Keystores
	// CloudCredentials are the control plane's temporary AWS credentials,
	// for credentials source cloud; nil when the control plane link is off.
	CloudCredentials aws.CredentialsProvider
	// Reporter receives the events' results (the control plane's outbox);
	// nil reports nothing. A TxReporter stages each with its record.
	Reporter events.Reporter
	// Updates is the update channel "update.check" events ask to poll
	// now; nil when it is off.
	Updates UpdateChecker
	// Webhook is the client and URL of the webhook target; a nil client
	// leaves "webhook" events unknown.
	Webhook    *http.Client
	WebhookURL string
	// ShadowSettings are what the cloud may drive through desired state.
	ShadowSettings []shadow.Setting
	// Reported is the shadow's reported state, asked every 30s; the Shadow
	// publishes only what changed. Nil reports nothing.
	Reported func() map[string]any
	// Logger receives the logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the edgefort_iot_* metrics.
	Registerer prom.Registerer
}

// FieldError is a problem with one field of the section that only building
// the node finds (it depends on the other components); the agent turns it
// into a FILE:LINE problem of the configuration file.
type FieldError struct {
	Field string // e.g. iot.credentials.source
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Node is the event link with what runs over it: the events dispatcher,
// the jobs runner and the device shadow, each message routed to the part
// that owns its topic.
type Node struct {
	link     *Link
	events   *events.Dispatcher
	jobs     *jobs.Runner
	shadow   *shadow.Shadow
	reported func() map[string]any
}

// NewNode builds the node from its validated, defaulted section; it starts
// nothing. cfg.Enabled is the caller's to check.
func NewNode(cfg Config, deps NodeDeps) (*Node, error) {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	creds, err := credentials(cfg, deps.CloudCredentials)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(cfg.Endpoint)
	if err != nil {
		host = cfg.Endpoint
	}
	tlsCfg, err := deps.Keystores.ClientTLS(cfg.SSL, host, keystore.Vars{})
	if err != nil {
		return nil, fmt.Errorf("iot.ssl: %w", err)
	}
	n := &Node{reported: deps.Reported}
	if n.events, err = newDispatcher(deps); err != nil {
		return nil, err
	}
	// Jobs and the Shadow publish through the link, which needs their
	// subscriptions first: they get a publisher that finds the link later.
	pub := publishFunc(func(ctx context.Context, topic string, payload []byte) error {
		return n.link.Publish(ctx, topic, payload)
	})
	n.jobs, err = jobs.New(jobs.Options{Thing: cfg.ThingName, Publisher: pub, Handlers: n.events, Store: deps.Store, Logger: deps.Logger, Registerer: deps.Registerer})
	if err != nil {
		return nil, err
	}
	n.shadow, err = shadow.New(shadow.Options{Thing: cfg.ThingName, Publisher: pub, Settings: deps.ShadowSettings, Logger: deps.Logger, Registerer: deps.Registerer})
	if err != nil {
		return nil, err
	}
	subs := append([]string{cfg.EventsTopic}, n.jobs.Subscriptions()...)
	n.link, err = New(Options{
		Host:            cfg.Endpoint,
		Region:          cfg.Region,
		ThingName:       cfg.ThingName,
		Credentials:     creds,
		TLS:             tlsCfg,
		KeepAlive:       cfg.KeepAlive,
		ReconnectSpread: cfg.ReconnectSpread,
		ReconnectMax:    cfg.ReconnectMax,
		Subscriptions:   append(subs, n.shadow.Subscriptions()...),
		Handler:         n.router(cfg, deps.Logger),
		OnConnect: func(ctx context.Context) {
			n.jobs.OnConnect(ctx)
			n.shadow.OnConnect(ctx)
		},
		Logger:     deps.Logger,
		Registerer: deps.Registerer,
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Components are the node's parts for the supervisor, in start order. None
// signals readiness: the agent is healthy while the cloud is away (a
// self-update's health check must not depend on AWS).
func (n *Node) Components() []supervisor.Spec {
	return []supervisor.Spec{
		{Name: "iot", Runner: n.link},
		{Name: "iot-jobs", Runner: n.jobs},
		{Name: "iot-shadow", Runner: shadowReporter{n}},
	}
}

// Status is the link's state and counters.
func (n *Node) Status() Status { return n.link.Status() }

// newDispatcher is the dispatcher of cloud events with the built-in types
// registered.
func newDispatcher(deps NodeDeps) (*events.Dispatcher, error) {
	d, err := events.New(events.Options{Store: deps.Store, Reporter: deps.Reporter, Logger: deps.Logger, Registerer: deps.Registerer})
	if err != nil {
		return nil, err
	}
	check := func() {}
	if deps.Updates != nil {
		check = deps.Updates.CheckNow
	}
	if err := d.Register("update.check", events.UpdateCheck(check)); err != nil {
		return nil, err
	}
	if err := d.Register("keystore.repoint", events.KeystoreRepoint(deps.Keystores.SetRef)); err != nil {
		return nil, err
	}
	if deps.Webhook != nil {
		if err := d.Register("webhook", events.Webhook(deps.Webhook, deps.WebhookURL)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// router hands each message to the part that owns its topic: the events
// topic to the dispatcher, the thing's shadow and jobs topics to the
// Shadow and the jobs runner.
func (n *Node) router(cfg Config, log *slog.Logger) func(context.Context, Message) error {
	jobsPrefix := "$aws/things/" + cfg.ThingName + "/jobs/"
	return func(ctx context.Context, m Message) error {
		switch {
		case m.Topic == cfg.EventsTopic:
			return n.events.Handle(ctx, m.Topic, m.Payload)
		case n.shadow.Owns(m.Topic):
			return n.shadow.Handle(ctx, m.Topic, m.Payload)
		case strings.HasPrefix(m.Topic, jobsPrefix):
			return n.jobs.Handle(ctx, m.Topic, m.Payload)
		}
		log.Warn("message on an unexpected topic; dropped", "topic", m.Topic)
		return nil
	}
}

type publishFunc func(ctx context.Context, topic string, payload []byte) error

func (f publishFunc) Publish(ctx context.Context, topic string, payload []byte) error {
	return f(ctx, topic, payload)
}

// shadowReporter keeps the device shadow's reported state current.
type shadowReporter struct{ n *Node }

func (r shadowReporter) Run(ctx context.Context) error {
	defer r.n.shadow.Close()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if r.n.reported != nil {
			r.n.shadow.Report(ctx, r.n.reported())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// credentials is where the SigV4 credentials come from.
func credentials(cfg Config, cloud aws.CredentialsProvider) (aws.CredentialsProvider, error) {
	c := cfg.Credentials
	switch c.Source {
	case CredentialsCloud:
		if cloud == nil {
			return nil, &FieldError{Field: "iot.credentials.source", Err: errors.New("cloud needs the control plane link: enroll the node and set cloud.enabled: true, or use static")}
		}
		return cloud, nil
	case CredentialsStatic:
		static := aws.Credentials{
			AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
			SessionToken: c.SessionToken, Source: "edgefort-config",
		}
		return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return static, nil }), nil
	case CredentialsAWS:
		// The environment and the shared files; see awsChain.
		return newAWSChain(os.Getenv), nil
	}
	return nil, &FieldError{Field: "iot.credentials.source", Err: fmt.Errorf("%q is not cloud, aws or static", c.Source)}
}
