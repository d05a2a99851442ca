package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/outbox"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/iot/events"
	"github.com/edgefort/edgefort/iot/jobs"
	"github.com/edgefort/edgefort/iot/shadow"
	"github.com/edgefort/edgefort/keystore"
)

// iotLink is the running event link and its event dispatcher.
type iotLink struct {
	link   *iot.Link
	events *events.Dispatcher
	shadow *shadow.Shadow
}

// iotComponents builds the event link when iot.enabled: MQTT over
// WebSocket/TLS to AWS IoT Core, each connection signed with fresh
// credentials, cloud events recorded and reported once through the
// dispatcher (their side effects at least once: a webhook carries the event
// id as its idempotency key).
func (a *Agent) iotComponents() ([]supervisor.Spec, error) {
	c := a.cfg.IoT
	if !c.Enabled {
		return nil, nil
	}
	log := a.log.With(LogKeyComponent, "iot")
	creds, err := a.iotCredentials(c)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(c.Endpoint)
	if err != nil {
		host = c.Endpoint
	}
	tlsCfg, err := a.keystores.Stores.ClientTLS(c.SSL, host, keystore.Vars{})
	if err != nil {
		return nil, fmt.Errorf("iot.ssl: %w", err)
	}
	d, err := a.iotEvents(log)
	if err != nil {
		return nil, err
	}
	// Jobs and the Shadow publish through the link, which needs their
	// subscriptions first: they get a publisher that finds the link later.
	var link *iot.Link
	pub := publishFunc(func(ctx context.Context, topic string, payload []byte) error {
		return link.Publish(ctx, topic, payload)
	})
	jr, err := jobs.New(jobs.Options{Thing: c.ThingName, Publisher: pub, Handlers: d, Store: a.db, Logger: log, Registerer: a.reg})
	if err != nil {
		return nil, err
	}
	sh, err := shadow.New(shadow.Options{Thing: c.ThingName, Publisher: pub, Settings: a.shadowSettings(), Logger: log, Registerer: a.reg})
	if err != nil {
		return nil, err
	}
	subs := append([]string{c.EventsTopic}, jr.Subscriptions()...)
	subs = append(subs, sh.Subscriptions()...)
	link, err = iot.New(iot.Options{
		Host:            c.Endpoint,
		Region:          c.Region,
		ThingName:       c.ThingName,
		Credentials:     creds,
		TLS:             tlsCfg,
		KeepAlive:       c.KeepAlive,
		ReconnectSpread: c.ReconnectSpread,
		ReconnectMax:    c.ReconnectMax,
		Subscriptions:   subs,
		Handler:         iotRouter(c, d, jr, sh, log),
		OnConnect: func(ctx context.Context) {
			jr.OnConnect(ctx)
			sh.OnConnect(ctx)
		},
		Logger:     log,
		Registerer: a.reg,
	})
	if err != nil {
		return nil, err
	}
	a.iot = &iotLink{link: link, events: d, shadow: sh}
	// Not SignalsReady: the agent is healthy while the cloud is away (a
	// self-update's health check must not depend on AWS).
	return []supervisor.Spec{
		{Name: "iot", Runner: link},
		{Name: "iot-jobs", Runner: jr},
		{Name: "iot-shadow", Runner: &shadowReporter{a: a, sh: sh}},
	}, nil
}

// iotEvents is the dispatcher of cloud events, with the built-in types
// registered; with the control plane link on it reports through the outbox.
func (a *Agent) iotEvents(log *slog.Logger) (*events.Dispatcher, error) {
	opts := events.Options{Store: a.db, Logger: log, Registerer: a.reg}
	if a.cloud != nil {
		opts.Reporter = outboxReporter{a.cloud.outbox}
	}
	d, err := events.New(opts)
	if err != nil {
		return nil, err
	}
	if err := a.registerEvents(d); err != nil {
		return nil, err
	}
	return d, nil
}

// iotRouter hands each message to the part that owns its topic: the
// events topic to the dispatcher, the thing's shadow and jobs topics to
// the Shadow and the jobs runner.
func iotRouter(c config.IoT, d *events.Dispatcher, jr *jobs.Runner, sh *shadow.Shadow, log *slog.Logger) func(context.Context, iot.Message) error {
	jobsPrefix := "$aws/things/" + c.ThingName + "/jobs/"
	return func(ctx context.Context, m iot.Message) error {
		switch {
		case m.Topic == c.EventsTopic:
			return d.Handle(ctx, m.Topic, m.Payload)
		case sh.Owns(m.Topic):
			return sh.Handle(ctx, m.Topic, m.Payload)
		case strings.HasPrefix(m.Topic, jobsPrefix):
			return jr.Handle(ctx, m.Topic, m.Payload)
		}
		log.Warn("message on an unexpected topic; dropped", "topic", m.Topic)
		return nil
	}
}

type publishFunc func(ctx context.Context, topic string, payload []byte) error

func (f publishFunc) Publish(ctx context.Context, topic string, payload []byte) error {
	return f(ctx, topic, payload)
}

// shadowSettings are what the cloud may drive through desired state.
func (a *Agent) shadowSettings() []shadow.Setting {
	var out []shadow.Setting
	if a.level != nil {
		out = append(out, shadow.Setting{
			Name: "log_level",
			Apply: func(v json.RawMessage) (any, error) {
				var name string
				if err := json.Unmarshal(v, &name); err != nil {
					return nil, errors.New("not a string")
				}
				var l slog.Level
				if err := l.UnmarshalText([]byte(name)); err != nil {
					return nil, fmt.Errorf("%q is not debug, info, warn or error", name)
				}
				a.level.Set(l)
				return name, nil
			},
			Current: func() any { return strings.ToLower(a.level.Level().String()) },
		})
	}
	if a.poller != nil {
		out = append(out, shadow.Setting{
			Name: "poll_interval",
			Apply: func(v json.RawMessage) (any, error) {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return nil, errors.New("not a string such as \"30m\"")
				}
				d, err := time.ParseDuration(s)
				if err != nil {
					return nil, errors.New("not a duration")
				}
				if err := a.poller.SetPollInterval(d); err != nil {
					return nil, err
				}
				return s, nil
			},
			Current: func() any { return a.poller.Status().PollInterval.String() },
		})
	}
	return out
}

// shadowReporter keeps the device shadow's reported state current: the
// agent's version, the installed Artifact, the links, certificate
// warnings and the last update result. The Shadow publishes only what
// changed.
type shadowReporter struct {
	a  *Agent
	sh *shadow.Shadow
}

func (r *shadowReporter) Run(ctx context.Context) error {
	defer r.sh.Close()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		r.sh.Report(ctx, r.a.reportedState())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *Agent) reportedState() map[string]any {
	st := map[string]any{"agent_version": a.build.Version}
	if a.updates != nil {
		if us, err := a.updateStatus(); err == nil {
			st["artifact_name"] = us.ArtifactName
			if us.Poller != nil && us.Poller.LastResult != nil {
				r := us.Poller.LastResult
				st["last_update"] = map[string]any{"artifact": r.ArtifactName, "outcome": string(r.Outcome), "reason": r.Reason}
			}
		}
	}
	links := map[string]any{}
	if a.iot != nil {
		links["iot"] = string(a.iot.link.Status().State)
	}
	if a.cloud != nil {
		links["cloud"] = "enrolled"
	}
	if a.poller != nil {
		links["updates"] = "enabled"
	}
	st["links"] = links
	if ks := a.keystores; ks != nil {
		warnings := certificateWarnings(ks.Stores)
		if warnings == nil {
			warnings = []string{}
		}
		st["certificate_warnings"] = warnings
	}
	return st
}

// iotCredentials is where the SigV4 credentials come from.
func (a *Agent) iotCredentials(c config.IoT) (aws.CredentialsProvider, error) {
	switch c.Credentials.Source {
	case config.CredentialsCloud:
		if a.cloud == nil {
			return nil, &config.Error{Problems: []config.Problem{a.cfg.Problem("iot.credentials.source", "cloud needs the control plane link: enroll the node and set cloud.enabled: true, or use static")}}
		}
		return cloudclient.NewIoTCredentials(a.cloud.client), nil
	case config.CredentialsStatic:
		static := aws.Credentials{
			AccessKeyID: c.Credentials.AccessKeyID, SecretAccessKey: c.Credentials.SecretAccessKey,
			SessionToken: c.Credentials.SessionToken, Source: "edgefort-config",
		}
		return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return static, nil }), nil
	case config.CredentialsAWS:
		// The standard chain: environment, shared files, SSO, web
		// identity, ECS and EC2 roles; cached and refreshed by the SDK.
		ac, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(c.Region))
		if err != nil {
			return nil, fmt.Errorf("iot.credentials: the standard AWS chain: %w", err)
		}
		return ac.Credentials, nil
	}
	return nil, &config.Error{Problems: []config.Problem{a.cfg.Problem("iot.credentials.source", "%q is not available in edgefort %s yet; use cloud or static", c.Credentials.Source, Version())}}
}

// registerEvents adds the built-in event types.
func (a *Agent) registerEvents(d *events.Dispatcher) error {
	check := func() {}
	if a.poller != nil {
		check = a.poller.CheckNow
	}
	if err := d.Register("update.check", events.UpdateCheck(check)); err != nil {
		return err
	}
	if err := d.Register("keystore.repoint", events.KeystoreRepoint(a.keystores.Stores.SetRef)); err != nil {
		return err
	}
	if name := a.cfg.IoT.WebhookTarget; name != "" {
		url, hc, err := a.targetClient(name)
		if err != nil {
			return err
		}
		if err := d.Register("webhook", events.Webhook(hc, url)); err != nil {
			return err
		}
	}
	return nil
}

// targetClient is an HTTP client for a configured target endpoint.
func (a *Agent) targetClient(name string) (string, *http.Client, error) {
	for _, t := range a.cfg.Clients.TargetEndpoints {
		if t.Name != name {
			continue
		}
		tr := &http.Transport{IdleConnTimeout: 90 * time.Second}
		if config.IsEnabled(t.SSL.Enabled, false) {
			host := t.URL
			if req, err := http.NewRequest(http.MethodGet, t.URL, nil); err == nil {
				host = req.URL.Hostname()
			}
			tlsCfg, err := a.keystores.Stores.ClientTLS(t.SSL, host, keystore.Vars{})
			if err != nil {
				return "", nil, fmt.Errorf("clients.target_endpoints %s: %w", name, err)
			}
			tr.TLSClientConfig = tlsCfg
		}
		return t.URL, &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
	}
	return "", nil, &config.Error{Problems: []config.Problem{a.cfg.Problem("iot.webhook_target", "no target endpoint named %q in clients.target_endpoints", name)}}
}

// outboxReporter sends event results to the control plane through the
// durable outbox. As an events.TxReporter it queues a result in the
// transaction that records it: the outbox and the dispatcher share a.db.
type outboxReporter struct{ o *outbox.Outbox }

var _ events.TxReporter = outboxReporter{}

func (r outboxReporter) Report(ctx context.Context, ev events.Event, res events.Result) error {
	it, err := resultItem(ev, res)
	if err != nil {
		return err
	}
	_, err = r.o.Enqueue(ctx, it)
	if errors.Is(err, outbox.ErrFull) {
		return nil // logged and counted by the outbox
	}
	return err
}

// ReportTx stages the same item as Report in tx. done is never nil once
// EnqueueTx ran, as the dispatcher expects.
func (r outboxReporter) ReportTx(tx *store.Tx, ev events.Event, res events.Result) (func(committed bool), error) {
	it, err := resultItem(ev, res)
	if err != nil {
		return nil, err
	}
	_, done, err := r.o.EnqueueTx(tx, it)
	if errors.Is(err, outbox.ErrFull) {
		// Logged and counted by the outbox once committed; the drops the
		// bound required are in tx and must commit with it.
		return done, nil
	}
	return done, err
}

// resultItem is the outbox item reporting ev's result.
func resultItem(ev events.Event, res events.Result) (outbox.Item, error) {
	body, err := json.Marshal(map[string]any{"event_id": ev.ID, "event_type": ev.Type, "result": res})
	if err != nil {
		return outbox.Item{}, fmt.Errorf("event %s result: %w", ev.ID, err)
	}
	return outbox.Item{Stream: "events", Type: "event.result", Body: body, Priority: outbox.High, Key: "event-" + ev.ID}, nil
}
