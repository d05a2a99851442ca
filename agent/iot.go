package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/outbox"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/iot/events"
	"github.com/edgefort/edgefort/iot/shadow"
	"github.com/edgefort/edgefort/keystore"
	"github.com/edgefort/edgefort/updater/deploy"
)

// iotComponents builds the event link when iot.enabled: iot.Node owns the
// link, its events, jobs and shadow; the agent hands it what the other
// components provide. It is built after the update channel and the control
// plane link (each nil when off), whose poller and outbox it uses.
func (a *Agent) iotComponents(upd *deploy.Node, cl *cloudclient.Node) (*iot.Node, error) {
	c := a.cfg.IoT
	if !c.Enabled {
		return nil, nil
	}
	deps := iot.NodeDeps{
		Store:          a.db,
		Keystores:      a.keystores.Stores,
		ShadowSettings: a.shadowSettings(pollerOf(upd)),
		Reported:       a.reportedState,
		Logger:         a.log.With(LogKeyComponent, "iot"),
		Registerer:     a.reg,
	}
	if cl != nil {
		deps.CloudCredentials = cloudclient.NewIoTCredentials(cl.Client())
		deps.Reporter = outboxReporter{cl.Outbox()}
	}
	if p := pollerOf(upd); p != nil {
		deps.Updates = p // not a nil *Poller in the interface
	}
	if name := c.WebhookTarget; name != "" {
		var err error
		if deps.WebhookURL, deps.Webhook, err = a.targetClient(name); err != nil {
			return nil, err
		}
	}
	n, err := iot.NewNode(c, deps)
	var fe *iot.FieldError
	if errors.As(err, &fe) {
		return nil, &config.Error{Problems: []config.Problem{a.cfg.Problem(fe.Field, "%v", fe.Err)}}
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// shadowSettings are what the cloud may drive through desired state: the
// log level, and the update channel's poll interval when it is on.
func (a *Agent) shadowSettings(poller *deploy.Poller) []shadow.Setting {
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
	if poller != nil {
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
				if err := poller.SetPollInterval(d); err != nil {
					return nil, err
				}
				return s, nil
			},
			Current: func() any { return poller.Status().PollInterval.String() },
		})
	}
	return out
}

// reportedState is the device shadow's reported state: the agent's
// version, the installed Artifact, the links, certificate warnings and the
// last update result.
func (a *Agent) reportedState() map[string]any {
	st := map[string]any{"agent_version": a.build.Version}
	built := a.links.Load()
	if built.machine() != nil {
		if us, err := a.updates(built).UpdateStatus(context.Background()); err == nil {
			st["artifact_name"] = us.ArtifactName
			if us.Poller != nil && us.Poller.LastResult != nil {
				r := us.Poller.LastResult
				st["last_update"] = map[string]any{"artifact": r.ArtifactName, "outcome": string(r.Outcome), "reason": r.Reason}
			}
		}
	}
	links := map[string]any{}
	if built != nil && built.iot != nil {
		links["iot"] = string(built.iot.Status().State)
	}
	if built != nil && built.cloud != nil {
		links["cloud"] = "enrolled"
	}
	if built.poller() != nil {
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
