package shadow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/internal/jsonvalue"
	"github.com/edgefort/edgefort/internal/prom"
)

// Reported keys the package keeps itself; Report refuses them and no
// Setting may be named so.
const (
	KeyUnsupported    = "unsupported"
	KeySettingsErrors = "settings_errors"
)

// DefaultCoalesce is the default of Options.Coalesce.
const DefaultCoalesce = time.Second

const (
	// getTimeout is how long a sync (OnConnect, conflict) waits for the
	// answer to get before it reports anyway.
	getTimeout = 5 * time.Second
	// replyTimeout is how long an update waits for accepted/rejected before
	// it is counted failed and the state may be sent again.
	replyTimeout = 10 * time.Second
	// publishTimeout bounds one Publish (the link waits for the PUBACK).
	publishTimeout = 10 * time.Second
	// retryDelay is when an update whose Publish failed is tried again.
	retryDelay = 5 * time.Second
	// maxThing is AWS's limit on a thing name, in bytes.
	maxThing = 128
)

// ErrUnknownTopic is returned by Handle for a topic that is not one of
// Subscriptions.
var ErrUnknownTopic = errors.New("shadow: not a shadow reply topic of this thing")

// Publisher sends a message with QoS 1; *iot.Link is one.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, topic string, payload []byte) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, topic string, payload []byte) error {
	return f(ctx, topic, payload)
}

// A Setting is something the cloud may drive through desired state.
type Setting struct {
	// Name is the key in desired and reported, e.g. "log_level".
	Name string
	// Apply validates and applies a desired value (the delta's JSON for
	// this key) and returns what to report: the effective value. On an
	// error nothing may have changed; the error text is reported in
	// settings_errors. Calls are serialised. To close the delta, the
	// value reported must equal the desired one as JSON ("30s" for "30s",
	// not a number of nanoseconds).
	Apply func(value json.RawMessage) (reported any, err error)
	// Current, if set, returns the effective value now. It is reported
	// from New on, so the shadow shows every setting before the cloud
	// touches it, and after a failed Apply.
	Current func() any
}

// Options configures a Shadow.
type Options struct {
	// Thing is the thing name. Required.
	Thing string
	// Publisher sends the requests (the IoT link). Required.
	Publisher Publisher
	// Settings are the keys the cloud may drive.
	Settings []Setting
	// Logger receives the logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Registerer, if set, receives the edgefort_iot_shadow_* metrics.
	Registerer prom.Registerer
	// Coalesce is the least time between two updates: changes within it
	// go out together. Zero means DefaultCoalesce.
	Coalesce time.Duration
}

// Shadow keeps the thing's Device Shadow. Its methods are safe for
// concurrent use.
type Shadow struct {
	prefix   string // $aws/things/<thing>/shadow
	pub      Publisher
	settings map[string]Setting
	log      *slog.Logger
	now      func() time.Time
	coalesce time.Duration
	tokenTag string
	metrics  *metrics

	applyMu sync.Mutex // serialises delta handling, so Apply calls never overlap

	mu           sync.Mutex // guards the fields below
	closed       bool
	seq          uint64
	state        map[string]any  // the reported state the agent keeps
	removed      map[string]bool // keys Report deleted, to be nulled in the cloud
	accepted     map[string]any  // the cloud's reported state as last learned; nil: unknown
	version      int64           // last known shadow version; 0: none known
	deltaVersion int64           // version of the last delta acted on
	inflight     *update
	gets         map[string]chan struct{} // clientToken of a get → closed when answered
	syncing      int                      // syncs waiting for get; no update meanwhile
	timer        *time.Timer              // scheduled flush
	timerGen     uint64                   // which timer's flush may run; bumped to cancel one
	lastSent     time.Time
	unsupported  []string          // sorted
	logged       map[string]bool   // unknown keys already logged
	errs         map[string]string // setting → why its Apply failed
	stats        Status
}

// update is the update request in flight.
type update struct {
	token string
	patch map[string]any
	timer *time.Timer // reply timeout
}

// Status is what `edgefort status` shows of the shadow.
type Status struct {
	Version        int64             `json:"version"`         // last known shadow version
	InSync         bool              `json:"in_sync"`         // the cloud has the whole reported state
	Unsupported    []string          `json:"unsupported"`     // desired keys the fort does not act on
	SettingsErrors map[string]string `json:"settings_errors"` // settings whose desired value was refused
	Accepted       int               `json:"accepted"`        // updates accepted
	Conflicts      int               `json:"conflicts"`       // updates refused with 409
	Rejected       int               `json:"rejected"`        // updates refused otherwise
	Failed         int               `json:"failed"`          // updates not sent or not answered
	LastAccepted   time.Time         `json:"last_accepted,omitzero"`
}

// New returns a Shadow for opts.Thing. It sends nothing until a Report or
// OnConnect.
func New(opts Options) (*Shadow, error) {
	var errs []error
	switch {
	case opts.Thing == "":
		errs = append(errs, errors.New("thing: required"))
	case len(opts.Thing) > maxThing || strings.ContainsAny(opts.Thing, "/+#"):
		errs = append(errs, fmt.Errorf("thing: invalid name %q", opts.Thing))
	}
	if opts.Publisher == nil {
		errs = append(errs, errors.New("publisher: required"))
	}
	if opts.Coalesce < 0 {
		errs = append(errs, fmt.Errorf("coalesce: negative (%v)", opts.Coalesce))
	}
	settings := make(map[string]Setting, len(opts.Settings))
	for i, st := range opts.Settings {
		switch {
		case st.Name == "" || st.Name == KeyUnsupported || st.Name == KeySettingsErrors:
			errs = append(errs, fmt.Errorf("settings[%d]: invalid name %q", i, st.Name))
		case settings[st.Name].Name != "":
			errs = append(errs, fmt.Errorf("settings[%d]: %q twice", i, st.Name))
		case st.Apply == nil:
			errs = append(errs, fmt.Errorf("settings[%d] %q: apply required", i, st.Name))
		}
		settings[st.Name] = st
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Coalesce == 0 {
		opts.Coalesce = DefaultCoalesce
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("shadow: metrics: %w", err)
	}
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	s := &Shadow{
		prefix:   "$aws/things/" + opts.Thing + "/shadow",
		pub:      opts.Publisher,
		settings: settings,
		log:      opts.Logger.With("component", "iot-shadow"),
		now:      opts.Now,
		coalesce: opts.Coalesce,
		tokenTag: hex.EncodeToString(tag[:]),
		metrics:  m,
		state:    map[string]any{},
		removed:  map[string]bool{},
		gets:     map[string]chan struct{}{},
		logged:   map[string]bool{},
		errs:     map[string]string{},
	}
	for _, st := range opts.Settings {
		if st.Current == nil {
			continue
		}
		if v, err := normalize(st.Current()); err != nil {
			s.log.Warn("shadow: cannot report setting", "setting", st.Name, "error", err)
		} else if v = prune(v); v != nil {
			s.state[st.Name] = v
		}
	}
	return s, nil
}

// Subscriptions are the reply topics the link must subscribe to (QoS 1)
// and route to Handle.
func (s *Shadow) Subscriptions() []string {
	return []string{
		s.prefix + "/update/delta",
		s.prefix + "/update/accepted",
		s.prefix + "/update/rejected",
		s.prefix + "/get/accepted",
		s.prefix + "/get/rejected",
	}
}

// Owns reports whether topic is one of Subscriptions, for the agent's
// router.
func (s *Shadow) Owns(topic string) bool { return slices.Contains(s.Subscriptions(), topic) }

// OnConnect is for the link's Options.OnConnect: it asks for the shadow
// (get), acts on its delta, and then reports what the cloud's copy of the
// reported state lacks. It returns once get was answered (or after 5s, or
// ctx), leaving the report to go out in the background.
func (s *Shadow) OnConnect(ctx context.Context) {
	s.mu.Lock()
	if s.inflight != nil { // its answer, if any, was lost with the connection
		s.inflight.timer.Stop()
		s.inflight = nil
	}
	s.accepted = nil // unknown until get answers
	s.mu.Unlock()
	s.sync(ctx, false)
}

// Report merges state into the reported state: each key replaces the one
// kept (nested objects are sent to the cloud as a merge patch), a nil
// value deletes the key. Values must encode to JSON. An update goes out
// only when the state differs from what the cloud last accepted, within
// Options.Coalesce of the previous one.
func (s *Shadow) Report(_ context.Context, state map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range state {
		if k == KeyUnsupported || k == KeySettingsErrors || k == "" {
			s.log.Warn("shadow: reported key is the package's own, ignored", "key", k)
			continue
		}
		n, err := normalize(v)
		if err != nil {
			s.log.Warn("shadow: reported value does not encode to JSON, ignored", "key", k, "error", err)
			continue
		}
		s.setLocked(k, prune(n))
	}
	s.scheduleLocked()
}

// setLocked sets (or, for nil, deletes) a reported key.
func (s *Shadow) setLocked(k string, v any) {
	if v == nil {
		if _, ok := s.state[k]; ok {
			delete(s.state, k)
			s.removed[k] = true
		}
		return
	}
	s.state[k] = v
	delete(s.removed, k)
}

// Status returns the shadow's state for `edgefort status`.
func (s *Shadow) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Version = s.version
	st.InSync = s.inflight == nil && len(s.diffLocked()) == 0
	st.Unsupported = slices.Clone(s.unsupported)
	st.SettingsErrors = make(map[string]string, len(s.errs))
	for k, v := range s.errs {
		st.SettingsErrors[k] = v
	}
	return st
}

// Close stops the timers; nothing is sent afterwards.
func (s *Shadow) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stopTimerLocked()
	if s.inflight != nil {
		s.inflight.timer.Stop()
		s.inflight = nil
	}
}

// Handle acts on a message received on one of Subscriptions. Malformed
// payloads are logged and dropped (nil: redelivery would not help); a
// topic that is not one of Subscriptions is ErrUnknownTopic.
func (s *Shadow) Handle(ctx context.Context, topic string, payload []byte) error {
	op, ok := strings.CutPrefix(topic, s.prefix+"/")
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	var err error
	switch op {
	case "update/delta":
		err = s.handleDelta(ctx, payload)
	case "update/accepted":
		err = s.handleUpdateAccepted(payload)
	case "update/rejected":
		err = s.handleUpdateRejected(ctx, payload)
	case "get/accepted":
		err = s.handleGetAccepted(ctx, payload)
	case "get/rejected":
		err = s.handleGetRejected(payload)
	default:
		return fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	if err != nil {
		s.log.Warn("shadow: malformed message dropped", "topic", topic, "error", err)
	}
	return nil
}

// reply is the part every answer shares.
type reply struct {
	ClientToken string `json:"clientToken"`
	Version     int64  `json:"version"`
	Code        int    `json:"code"`
	Message     string `json:"message"`
}

func (s *Shadow) handleDelta(ctx context.Context, payload []byte) error {
	var d struct {
		State   map[string]json.RawMessage `json:"state"`
		Version int64                      `json:"version"`
	}
	if err := json.Unmarshal(payload, &d); err != nil {
		return err
	}
	s.applyDelta(ctx, d.State, d.Version)
	return nil
}

func (s *Shadow) handleGetAccepted(ctx context.Context, payload []byte) error {
	var g struct {
		State struct {
			Reported json.RawMessage            `json:"reported"`
			Delta    map[string]json.RawMessage `json:"delta"`
		} `json:"state"`
		reply
	}
	if err := json.Unmarshal(payload, &g); err != nil {
		return err
	}
	reported := map[string]any{}
	if len(g.State.Reported) > 0 {
		v, err := decodeJSON(g.State.Reported)
		if err != nil {
			return err
		}
		if m, ok := v.(map[string]any); ok {
			reported = m
		}
	}
	s.mu.Lock()
	done, ours := s.gets[g.ClientToken]
	s.seeVersionLocked(g.Version)
	if ours {
		s.accepted = reported
	}
	s.mu.Unlock()
	if !ours {
		s.log.Debug("shadow: get answer for another request", "client_token", g.ClientToken)
		return nil
	}
	// The delta in get/accepted is the whole of it: act on it even if
	// empty, which clears errors and unsupported keys no longer desired.
	s.applyDelta(ctx, g.State.Delta, g.Version)
	s.answered(g.ClientToken, done)
	return nil
}

func (s *Shadow) handleGetRejected(payload []byte) error {
	var r reply
	if err := json.Unmarshal(payload, &r); err != nil {
		return err
	}
	s.mu.Lock()
	done, ours := s.gets[r.ClientToken]
	if ours && r.Code == 404 { // no shadow (yet, or deleted): report all of it, without a version
		s.accepted = map[string]any{}
		s.version = 0
	}
	s.mu.Unlock()
	if !ours {
		return nil
	}
	if r.Code != 404 {
		s.log.Warn("shadow: get rejected", "code", r.Code, "message", r.Message)
	}
	s.answered(r.ClientToken, done)
	return nil
}

// answered ends the wait of the sync that sent get token.
func (s *Shadow) answered(token string, done chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.gets[token]; ok {
		delete(s.gets, token)
		close(done)
	}
}

func (s *Shadow) handleUpdateAccepted(payload []byte) error {
	var r reply
	if err := json.Unmarshal(payload, &r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seeVersionLocked(r.Version)
	u := s.inflight
	if u == nil || u.token != r.ClientToken {
		return nil // another client's update, or one given up on
	}
	u.timer.Stop()
	s.inflight = nil
	if s.accepted == nil {
		s.accepted = map[string]any{}
	}
	applyPatch(s.accepted, u.patch)
	for k, v := range u.patch {
		if v == nil {
			delete(s.removed, k)
		}
	}
	s.stats.Accepted++
	s.stats.LastAccepted = s.now()
	s.metrics.updates.WithLabelValues(resultAccepted).Inc()
	s.log.Debug("shadow: update accepted", "version", r.Version)
	s.scheduleLocked()
	return nil
}

func (s *Shadow) handleUpdateRejected(ctx context.Context, payload []byte) error {
	var r reply
	if err := json.Unmarshal(payload, &r); err != nil {
		return err
	}
	s.mu.Lock()
	u := s.inflight
	if u == nil || u.token != r.ClientToken {
		s.mu.Unlock()
		return nil
	}
	u.timer.Stop()
	s.inflight = nil
	if r.Code != 409 {
		s.stats.Rejected++
		s.metrics.updates.WithLabelValues(resultRejected).Inc()
		s.mu.Unlock()
		// Sent again with the next change: the same state would be refused again.
		s.log.Error("shadow: update rejected", "code", r.Code, "message", r.Message)
		return nil
	}
	s.stats.Conflicts++
	s.metrics.updates.WithLabelValues(resultConflict).Inc()
	s.syncing++ // hold updates until the get below is answered
	s.mu.Unlock()
	s.log.Info("shadow: version conflict; getting the shadow and reporting again")
	go s.sync(context.WithoutCancel(ctx), true)
	return nil
}

// sync sends get, waits for its answer (which applies the delta and
// learns the version and the cloud's reported state), then schedules the
// report. held says the caller has already counted it in syncing.
func (s *Shadow) sync(ctx context.Context, held bool) {
	s.mu.Lock()
	if !held {
		s.syncing++
	}
	if s.closed {
		s.syncing--
		s.mu.Unlock()
		return
	}
	s.seq++
	token := s.tokenLocked()
	done := make(chan struct{})
	s.gets[token] = done
	s.mu.Unlock()

	payload, _ := json.Marshal(map[string]string{"clientToken": token})
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	err := s.pub.Publish(pctx, s.prefix+"/get", payload)
	cancel()
	if err != nil {
		s.log.Warn("shadow: get not sent", "error", err)
	} else {
		t := time.NewTimer(getTimeout)
		select {
		case <-done:
		case <-t.C:
			s.log.Warn("shadow: no answer to get; reporting anyway", "timeout", getTimeout)
		case <-ctx.Done():
		}
		t.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.gets, token)
	s.syncing--
	if s.syncing == 0 {
		s.stopTimerLocked() // a retry of an update that failed while down waits no longer
	}
	s.scheduleLocked()
}

func (s *Shadow) tokenLocked() string { return fmt.Sprintf("ef-%s-%d", s.tokenTag, s.seq) }

// seeVersionLocked moves the known version forward (answers may arrive
// out of order: the link handles messages on several workers).
func (s *Shadow) seeVersionLocked(v int64) {
	if v > s.version {
		s.version = v
		s.metrics.version.Set(float64(v))
	}
}

// applyDelta acts on a (complete) delta of the given shadow version:
// Apply for each setting, unknown keys listed as unsupported. An older
// delta than one already acted on is ignored.
func (s *Shadow) applyDelta(_ context.Context, delta map[string]json.RawMessage, version int64) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if last := s.deltaVersion; version < last {
		s.mu.Unlock()
		s.log.Debug("shadow: stale delta ignored", "version", version, "acted_on", last)
		return
	}
	s.deltaVersion = version
	s.seeVersionLocked(version)
	s.mu.Unlock()
	if len(delta) > 0 {
		s.metrics.deltas.Inc()
	}

	type result struct {
		value any
		err   error
	}
	results := map[string]result{}
	var unknown []string
	for _, k := range slices.Sorted(maps.Keys(delta)) {
		st, ok := s.settings[k]
		if !ok {
			unknown = append(unknown, k)
			s.metrics.settings.WithLabelValues("unknown", settingUnsupported).Inc()
			continue
		}
		v, err := st.Apply(delta[k])
		if err == nil {
			v, err = normalize(v)
			v = prune(v)
		}
		if err != nil {
			s.log.Warn("shadow: desired setting refused", "setting", k, "value", string(delta[k]), "error", err)
			s.metrics.settings.WithLabelValues(k, settingInvalid).Inc()
			if st.Current != nil {
				if cur, cerr := normalize(st.Current()); cerr == nil {
					v = prune(cur)
				}
			}
		} else {
			s.log.Info("shadow: desired setting applied", "setting", k, "value", string(delta[k]))
			s.metrics.settings.WithLabelValues(k, settingApplied).Inc()
		}
		results[k] = result{v, err}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.errs)
	for k, r := range results {
		if r.err != nil {
			s.errs[k] = r.err.Error()
			if r.value == nil {
				continue // no current value known: leave what was reported
			}
		}
		s.setLocked(k, r.value)
	}
	for _, k := range unknown {
		if !s.logged[k] {
			s.logged[k] = true
			s.log.Warn("shadow: desired key has no setting on this fort; listed in reported.unsupported", "key", k)
		}
	}
	s.unsupported = unknown
	if len(unknown) > 0 {
		s.setLocked(KeyUnsupported, toAnySlice(unknown))
	} else {
		s.setLocked(KeyUnsupported, nil)
	}
	if len(s.errs) > 0 {
		m := make(map[string]any, len(s.errs))
		for k, v := range s.errs {
			m[k] = v
		}
		s.setLocked(KeySettingsErrors, m)
	} else {
		s.setLocked(KeySettingsErrors, nil)
	}
	s.scheduleLocked()
}

// diffLocked is the reported patch that brings the cloud's copy to the
// state kept: changed keys (nested objects as merge patches), and null
// for keys Report deleted. Keys the agent never reported are left alone.
func (s *Shadow) diffLocked() map[string]any {
	patch := map[string]any{}
	for k, v := range s.state {
		if s.accepted == nil {
			patch[k] = jsonvalue.Clone(v)
			continue
		}
		if av, ok := s.accepted[k]; !ok || !jsonvalue.Equal(av, v) {
			patch[k] = jsonvalue.Clone(diffValue(av, v))
		}
	}
	for k := range s.removed {
		if _, ok := s.accepted[k]; ok || s.accepted == nil {
			patch[k] = nil
		}
	}
	return patch
}

// scheduleLocked arranges a flush when there is something to send and
// nothing stops it: no update in flight, no sync waiting for get, none
// scheduled already. It comes Coalesce after the previous update.
func (s *Shadow) scheduleLocked() {
	if s.closed || s.timer != nil || s.inflight != nil || s.syncing > 0 || len(s.diffLocked()) == 0 {
		return
	}
	s.startTimerLocked(max(s.lastSent.Add(s.coalesce).Sub(s.now()), 0))
}

// startTimerLocked schedules a flush after delay.
func (s *Shadow) startTimerLocked(delay time.Duration) {
	s.timerGen++
	gen := s.timerGen
	s.timer = time.AfterFunc(delay, func() { s.flush(gen) })
}

// stopTimerLocked cancels the scheduled flush, if any.
func (s *Shadow) stopTimerLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
		s.timerGen++
	}
}

// flush sends the diff as an update; gen is the timer that called it.
func (s *Shadow) flush(gen uint64) {
	s.mu.Lock()
	if gen != s.timerGen {
		s.mu.Unlock()
		return // cancelled, or replaced by a newer timer
	}
	s.timer = nil
	if s.closed || s.inflight != nil || s.syncing > 0 {
		s.mu.Unlock()
		return
	}
	patch := s.diffLocked()
	if len(patch) == 0 {
		s.mu.Unlock()
		return
	}
	s.seq++
	token := s.tokenLocked()
	req := map[string]any{"state": map[string]any{"reported": patch}, "clientToken": token}
	if s.version > 0 {
		req["version"] = s.version
	}
	u := &update{token: token, patch: patch}
	u.timer = time.AfterFunc(replyTimeout, func() { s.expire(token) })
	s.inflight = u
	s.lastSent = s.now()
	payload, err := json.Marshal(req)
	s.mu.Unlock()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		err = s.pub.Publish(ctx, s.prefix+"/update", payload)
		cancel()
	}
	if err == nil {
		s.log.Debug("shadow: update sent", "client_token", token, "keys", len(patch))
		return
	}
	s.log.Warn("shadow: update not sent; retrying", "error", err, "in", retryDelay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != u {
		return
	}
	u.timer.Stop()
	s.inflight = nil
	s.stats.Failed++
	s.metrics.updates.WithLabelValues(resultFailed).Inc()
	if !s.closed && s.timer == nil {
		s.startTimerLocked(retryDelay)
	}
}

// expire gives up on an update that got no answer.
func (s *Shadow) expire(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == nil || s.inflight.token != token {
		return
	}
	s.log.Warn("shadow: no answer to update; sending again", "client_token", token, "timeout", replyTimeout)
	s.inflight = nil
	s.stats.Failed++
	s.metrics.updates.WithLabelValues(resultFailed).Inc()
	s.scheduleLocked()
}

func toAnySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, v := range ss {
		out[i] = v
	}
	return out
}
