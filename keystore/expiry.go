package keystore

import (
	"context"
	"fmt"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
)

// expiryThresholds are the points before a certificate's expiry at which
// the watcher warns, once each, from the furthest to the nearest.
var expiryThresholds = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour, 0}

// ExpiryCollector exports edgefort_keystore_cert_expiry_timestamp_seconds
// for every alias's leaf certificate, read from the current snapshot at
// scrape time so that it always matches what handshakes serve.
func (m *Manager) ExpiryCollector() prom.Collector { return expiryCollector{m} }

type expiryCollector struct{ m *Manager }

var expiryDesc = prom.NewDesc(
	"edgefort_keystore_cert_expiry_timestamp_seconds",
	"Expiry (NotAfter) of the leaf certificate of each store alias, as a Unix time.",
	[]string{"store", "alias"}, nil)

func (c expiryCollector) Describe(ch chan<- *prom.Desc) { ch <- expiryDesc }

func (c expiryCollector) Collect(ch chan<- prom.Metric) {
	for _, st := range c.m.current().stores {
		for _, e := range st.Entries {
			ch <- prom.MustNewConstMetric(expiryDesc, prom.GaugeValue, float64(e.Leaf().NotAfter.Unix()), st.Name, e.Alias)
		}
	}
}

// ExpiryWatcher is a component that logs a warning when a certificate
// crosses 30, 7 and 1 days before its expiry, and an error once it has
// expired. It checks at start and then every Interval.
type ExpiryWatcher struct {
	Manager  *Manager
	Interval time.Duration // default 1h

	warned map[string]time.Duration // store/alias/serial -> nearest threshold already warned; owned by Run
}

// Run checks until ctx ends.
func (w *ExpiryWatcher) Run(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	w.warned = map[string]time.Duration{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		w.check()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (w *ExpiryWatcher) check() {
	m := w.Manager
	now := m.now()
	for _, st := range m.current().stores {
		for _, e := range st.Entries {
			leaf := e.Leaf()
			left := leaf.NotAfter.Sub(now)
			key := fmt.Sprintf("%s/%s/%s", st.Name, e.Alias, leaf.SerialNumber)
			crossed := time.Duration(-1)
			for _, th := range expiryThresholds {
				if left <= th {
					crossed = th
				}
			}
			if crossed < 0 {
				continue
			}
			if prev, ok := w.warned[key]; ok && prev <= crossed {
				continue
			}
			w.warned[key] = crossed
			msg := "certificate expires soon"
			logf := m.log.Warn
			if left <= 0 {
				msg, logf = "certificate has expired", m.log.Error
			}
			logf(msg, "store", st.Name, "alias", e.Alias, "subject", leaf.Subject.String(),
				"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "days_left", int(left.Hours()/24),
				"fix", "create a new keystore, import the new certificate under the same alias, repoint the reference")
		}
	}
}
