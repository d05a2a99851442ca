package devcloud

import (
	"errors"
	"math"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"
)

// This file is the broker's stand-in for AWS IoT Core's connect quotas,
// switched on by BrokerFaults.ConnectRate and ClientIDThrottle.
//
// What AWS documents (https://docs.aws.amazon.com/general/latest/gr/iot-core.html,
// "Message broker limits"): "Connect requests per second per account"
// (500 by default in most regions, lower in some, adjustable) and "Connect
// requests per second per client ID": 1, not adjustable; CloudWatch counts
// refusals as Connect.Throttle and Connect.ClientIDThrottle
// (…/iot/latest/developerguide/metrics_dimensions.html), and the lifecycle
// and log "disconnectReason" THROTTLED (…/developerguide/life-cycle-events.html).
// Greengrass limits its own CONNECTs per client ID (aws-greengrass-nucleus
// PRs #907, #1003, #1034): its maintainers found a reconnect that reaches
// the same AWS host throttled at about 0.1 per second, not 1, and now
// space their CONNECTs 11 s apart; they connect, disconnect and connect
// again on purpose, which edgefort does not: its quick retries mostly
// follow attempts that failed before any CONNECT or a connection that
// lasted, and two of its CONNECTs are at least 1.1 s apart.
//
// What AWS does not document, and what we chose:
//   - What an MQTT 3.1.1 client sees. MQTT 5 has CONNACK 0x9F "connection
//     rate exceeded"; 3.1.1 has no such code, and AWS SDK maintainers
//     describe the broker "hanging up". The broker answers CONNACK 0x03
//     (server unavailable, 3.1.1's nearest code) and closes, after the
//     WebSocket upgrade, since AWS counts MQTT CONNECTs, not upgrades. The
//     link treats a hang-up before CONNACK the same way, so it copes with
//     either.
//   - Whether a refused CONNECT counts against the quota. The quota is of
//     connect requests, so we count them all: a token bucket of
//     ConnectRate per second holding ConnectBurst, where a refused request
//     still takes a token and may leave the bucket in debt, down to
//     -ConnectBurst. A fleet that keeps knocking faster than the rate then
//     gets nobody in, which is the harsher reading: clients that converge
//     under it converge under the lenient one too.
//   - The per-client-ID limit is a knob, off by default: AWS always has
//     it, but tests reconnect within a second on purpose (a kicked client,
//     a quick retry) and would only slow down.

// The reasons counted in BrokerStats.Refused for the connect quotas, both
// answered with CONNACK 0x03 after the upgrade.
const (
	RefusedThrottled         BrokerRefusal = "throttled"           // BrokerFaults.ConnectRate: AWS's Connect.Throttle
	RefusedClientIDThrottled BrokerRefusal = "client_id_throttled" // BrokerFaults.ClientIDThrottle: AWS's Connect.ClientIDThrottle
)

// ClientIDConnectInterval is AWS IoT's per-client-ID limit: one CONNECT a
// second.
const ClientIDConnectInterval = time.Second

// errThrottled ends a connection whose CONNECT was refused by the quotas.
var errThrottled = errors.New("connect throttled")

// ConnectThrottle decides whether a CONNECT fits AWS IoT's connect quotas
// as the broker models them (see above). It is exported so that a
// simulation can run the same model on a virtual clock. Safe for
// concurrent use.
type ConnectThrottle struct {
	mu        sync.Mutex // guards the fields below
	account   *rate.Limiter
	debt      float64              // how far below zero refused requests may push the bucket
	perClient bool                 // ClientIDThrottle
	lastByID  map[string]time.Time // last CONNECT of each client ID, when perClient
	swept     time.Time            // when lastByID was last swept of old entries
	spend     bool                 // BrokerFaults.ConnectSpent: empty the bucket at the first request
}

// NewConnectThrottle returns the throttle f asks for, or nil when f sets
// no connect quota.
func NewConnectThrottle(f BrokerFaults) *ConnectThrottle {
	if f.ConnectRate <= 0 && !f.ClientIDThrottle {
		return nil
	}
	t := &ConnectThrottle{perClient: f.ClientIDThrottle, lastByID: make(map[string]time.Time)}
	if f.ConnectRate > 0 {
		burst := f.ConnectBurst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(f.ConnectRate)))
		}
		t.account = rate.NewLimiter(rate.Limit(f.ConnectRate), burst)
		t.debt = float64(burst)
		t.spend = f.ConnectSpent
	}
	return t
}

// Admit counts a CONNECT from clientID at now and returns "" if it fits
// the quotas, else the reason it is refused. now must not go backwards
// by much: the bucket treats an earlier time as its latest.
func (t *ConnectThrottle) Admit(clientID string, now time.Time) BrokerRefusal {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	accountOK := t.takeAccountLocked(now)
	clientOK := t.takeClientLocked(clientID, now)
	switch {
	case !accountOK:
		return RefusedThrottled
	case !clientOK:
		return RefusedClientIDThrottled
	}
	return ""
}

// takeAccountLocked takes a token for a request; it reports whether one
// was there. A refused request still takes one (the bucket goes into
// debt, at most t.debt deep), so knocking faster than the rate keeps the
// bucket empty.
func (t *ConnectThrottle) takeAccountLocked(now time.Time) bool {
	if t.account == nil {
		return true
	}
	if t.spend {
		// On the request's clock, which may be a simulation's.
		t.account.AllowN(now, t.account.Burst())
		t.spend = false
	}
	tokens := t.account.TokensAt(now)
	if tokens >= 1 {
		return t.account.AllowN(now, 1)
	}
	if tokens-1 >= -t.debt {
		t.account.ReserveN(now, 1) // never cancelled: the debt is the penalty
	}
	return false
}

// takeClientLocked records a CONNECT of clientID and reports whether the
// previous one was at least ClientIDConnectInterval before. Refused ones
// count too.
func (t *ConnectThrottle) takeClientLocked(clientID string, now time.Time) bool {
	if !t.perClient {
		return true
	}
	if now.Sub(t.swept) >= ClientIDConnectInterval {
		for id, at := range t.lastByID {
			if now.Sub(at) >= ClientIDConnectInterval {
				delete(t.lastByID, id)
			}
		}
		t.swept = now
	}
	last, seen := t.lastByID[clientID]
	t.lastByID[clientID] = now
	return !seen || now.Sub(last) >= ClientIDConnectInterval
}

// admitConnect is the broker hook's check of a CONNECT against the
// quotas: a refused one is counted, logged, answered with CONNACK 0x03
// and its connection closed; the session of that client ID is left alone.
func (h *brokerHook) admitConnect(cl *mqtt.Client, pk packets.Packet) error {
	reason := h.b.throttle.Load().Admit(pk.Connect.ClientIdentifier, time.Now())
	if reason == "" {
		return nil
	}
	h.b.stats.refuse(reason)
	h.b.log.Info("broker refused CONNECT", "reason", reason, "client", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote)
	if err := h.b.mqtt.SendConnack(cl, packets.ErrServerUnavailable, false, nil); err != nil {
		h.b.log.Debug("broker could not send CONNACK", "client", pk.Connect.ClientIdentifier, "error", err)
	}
	return errThrottled
}
