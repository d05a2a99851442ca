// Package supervisor owns the lifecycle of the agent's long-lived components.
// It starts each one in order in a goroutine of its own, restarts one that
// fails (returns an error, returns early, or panics) after a backoff with
// jitter, stops them in reverse order when its context ends, and reports each
// one's state for the health endpoint, the metrics and `edgefort status`.
//
// One component failing never affects the others: a dead MQTT link must not
// stop the client server.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/internal/prom"
)

// Runner is a long-lived component. Run blocks until ctx is cancelled and
// then returns. Returning earlier, with or without an error, or panicking is
// a failure: the supervisor starts it again after a backoff.
type Runner interface {
	Run(ctx context.Context) error
}

// Spec describes one component to supervise.
type Spec struct {
	// Name identifies the component in logs (key "component"), in the
	// metrics' component label and in Status. Required; unique.
	Name string
	// Runner is the component. Required.
	Runner Runner
	// SignalsReady keeps the component StateStarting until MarkReady is
	// called with its Name (the component calls a func given in its own
	// options, which the owner wires to MarkReady). If false the component
	// is StateRunning as soon as it is started.
	SignalsReady bool
}

// State is where a component is in its lifecycle.
type State string

const (
	StateStarting   State = "starting"    // started, has not called Ready yet
	StateRunning    State = "running"     // up and (if it signals) ready
	StateBackingOff State = "backing-off" // failed, waiting for NextStart
	StateStopping   State = "stopping"    // asked to stop, has not returned
	StateStopped    State = "stopped"     // not running: before Run, and after it stopped
)

// Status is a snapshot of one component.
type Status struct {
	Name        string    `json:"name"`
	State       State     `json:"state"`
	Since       time.Time `json:"since"` // when it entered State
	Restarts    int       `json:"restarts"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	NextStart   time.Time `json:"next_start,omitzero"` // set while backing off
}

// Options configures a Supervisor.
type Options struct {
	// Logger receives the supervisor's own logs, each with the key
	// "component". Required. Components build their own loggers.
	Logger *slog.Logger
	// Backoff sets the delay before a failed component starts again. Zero
	// fields take the defaults documented on Backoff.
	Backoff Backoff
	// Registerer, if set, receives the supervisor's metrics. Nil means no
	// metrics are registered.
	Registerer prom.Registerer
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Rand returns the jitter in [0, 1). Nil means math/rand/v2.Float64.
	Rand func() float64
}

// Log keys.
const (
	logKeyComponent = "component"
	logKeyError     = "error"
	logKeyRestarts  = "restarts"
	logKeyBackoff   = "backoff"
	logKeyPanic     = "panic"
	logKeyStack     = "stack"
)

// errExitedEarly is the failure of a component that returned nil while its
// ctx was still live.
var errExitedEarly = errors.New("exited unexpectedly")

// Supervisor runs a fixed set of components. Create it with New.
type Supervisor struct {
	logger  *slog.Logger
	backoff Backoff // defaults filled in
	now     func() time.Time
	rand    func() float64
	// wait sleeps for d and reports whether it did so before ctx ended.
	// Tests replace it to hold a component in StateBackingOff.
	wait    func(ctx context.Context, d time.Duration) bool
	metrics *metrics
	comps   []*component // in start order; the slice itself never changes
	ran     atomic.Bool  // Run has been called

	mu sync.Mutex // guards the fields of each component marked "guarded by mu"
}

type component struct {
	spec    Spec
	log     *slog.Logger
	metrics componentMetrics

	// Set by Run before the component's goroutine starts.
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has returned
	// stopErr is what Run returned once the component was asked to stop;
	// written before done is closed.
	stopErr error

	// Guarded by mu.
	status   Status
	stopping bool // stop requested; the component's goroutine no longer sets state
}

// New checks opts and specs, registers the metrics and starts nothing.
func New(opts Options, specs ...Spec) (*Supervisor, error) {
	b := opts.Backoff.withDefaults()
	var errs []error
	if opts.Logger == nil {
		errs = append(errs, errors.New("logger: required"))
	}
	if err := b.validate(); err != nil {
		errs = append(errs, err)
	}
	seen := make(map[string]bool)
	for i, sp := range specs {
		switch {
		case sp.Name == "":
			errs = append(errs, fmt.Errorf("specs[%d].name: empty", i))
		case seen[sp.Name]:
			errs = append(errs, fmt.Errorf("specs[%d].name: duplicate %q", i, sp.Name))
		}
		seen[sp.Name] = true
		if sp.Runner == nil {
			errs = append(errs, fmt.Errorf("specs[%d].runner: nil for %q", i, sp.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}

	s := &Supervisor{
		logger:  opts.Logger,
		backoff: b,
		now:     opts.Now,
		rand:    opts.Rand,
		wait:    sleepCtx,
		metrics: m,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Float64
	}
	created := s.now()
	for _, sp := range specs {
		s.comps = append(s.comps, &component{
			spec:    sp,
			log:     s.logger.With(logKeyComponent, sp.Name),
			metrics: m.forComponent(sp.Name),
			status:  Status{Name: sp.Name, State: StateStopped, Since: created},
		})
	}
	return s, nil
}

// Run starts the components in order and keeps them running until ctx is
// cancelled. It then stops them in reverse order, each one asked only once
// the one started after it has returned, and returns nil when all have
// stopped. A component that ignores cancellation keeps Run from returning;
// bounding that wait is the caller's job (see Stuck). Run may be called once.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.ran.Swap(true) {
		return errors.New("supervisor: Run called twice")
	}
	// Components keep ctx's values but are cancelled one by one.
	base := context.WithoutCancel(ctx)
	started := 0
	for _, c := range s.comps {
		if ctx.Err() != nil {
			break
		}
		cctx, cancel := context.WithCancel(base)
		c.cancel, c.done = cancel, make(chan struct{})
		go s.supervise(cctx, c)
		started++
	}

	<-ctx.Done()
	s.logger.Info("stopping components")
	for i := started - 1; i >= 0; i-- {
		c := s.comps[i]
		s.setState(c, StateStopping, true)
		c.cancel()
		<-c.done
		s.setState(c, StateStopped, true)
		if c.stopErr != nil && !errors.Is(c.stopErr, context.Canceled) {
			c.log.Warn("component stopped with error", logKeyError, c.stopErr)
		} else {
			c.log.Info("component stopped")
		}
	}
	return nil
}

// supervise runs c until ctx ends, restarting it after each failure.
func (s *Supervisor) supervise(ctx context.Context, c *component) {
	defer close(c.done)
	bo := backoff.Backoff{Policy: s.backoff.policy(), Rand: s.rand, Now: s.now}
	for restart := false; ; restart = true {
		s.start(c, restart)
		bo.Up()
		err := s.runOnce(ctx, c)
		if ctx.Err() != nil {
			c.stopErr = err
			return
		}
		if err == nil {
			err = errExitedEarly
		}
		failed := s.now()
		delay := bo.Next()
		restarts := s.fail(c, err, failed, delay)
		c.log.Error("component failed", logKeyError, err, logKeyRestarts, restarts, logKeyBackoff, delay)
		if !s.wait(ctx, delay) {
			return
		}
	}
}

// runOnce calls c's Run once, turning a panic into an error.
func (s *Supervisor) runOnce(ctx context.Context, c *component) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		c.log.Error("component panicked", logKeyPanic, r, logKeyStack, string(debug.Stack()))
		if e, ok := r.(error); ok {
			err = fmt.Errorf("panic: %w", e)
		} else {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.spec.Runner.Run(ctx)
}

// start records that c is being started.
func (s *Supervisor) start(c *component, restart bool) {
	state := StateRunning
	if c.spec.SignalsReady {
		state = StateStarting
	}
	s.mu.Lock()
	if restart {
		c.status.Restarts++
		c.metrics.restarts.Inc()
	}
	restarts := c.status.Restarts
	s.setStateLocked(c, state, false)
	s.mu.Unlock()
	c.log.Info("component started", logKeyRestarts, restarts)
}

// fail records c's failure and returns its restart count.
func (s *Supervisor) fail(c *component, err error, at time.Time, delay time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.status.LastError = err.Error()
	c.status.LastErrorAt = at
	c.metrics.failures.Inc()
	if s.setStateLocked(c, StateBackingOff, false) {
		c.status.NextStart = at.Add(delay)
	}
	return c.status.Restarts
}

func (s *Supervisor) setState(c *component, state State, stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setStateLocked(c, state, stop)
}

// setStateLocked moves c to state and reports whether it did. Once c is
// asked to stop only Run's own stop steps (stop true) change its state.
func (s *Supervisor) setStateLocked(c *component, state State, stop bool) bool {
	if c.stopping && !stop {
		return false
	}
	c.stopping = c.stopping || stop
	c.status.State = state
	c.status.Since = s.now()
	c.status.NextStart = time.Time{}
	up := 0.0
	if state == StateRunning {
		up = 1
	}
	c.metrics.up.Set(up)
	return true
}

// Status returns a snapshot of every component, in start order.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, len(s.comps))
	for i, c := range s.comps {
		out[i] = c.status
	}
	return out
}

// Ready reports whether every component is StateRunning.
func (s *Supervisor) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.comps {
		if c.status.State != StateRunning {
			return false
		}
	}
	return true
}

// Stuck returns the names of the components that were asked to stop and have
// not returned yet. A caller whose shutdown timed out names them in its error.
func (s *Supervisor) Stuck() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, c := range s.comps {
		if c.status.State == StateStopping {
			names = append(names, c.spec.Name)
		}
	}
	return names
}

// MarkReady marks the named component, started and not yet ready, as
// running. A component with Spec.SignalsReady calls it, through a func in
// its own options (clientapi.Options.Ready and the like), from its Run once
// it can serve; so components need not import this package. MarkReady does
// nothing for an unknown name or a component that is not StateStarting:
// components call it from within Run, and a Run that has returned leaves its
// component stopping, stopped or backing off.
func (s *Supervisor) MarkReady(name string) {
	s.mu.Lock()
	var c *component
	ok := false
	for _, cc := range s.comps {
		if cc.spec.Name == name {
			c = cc
			ok = cc.status.State == StateStarting && s.setStateLocked(cc, StateRunning, false)
			break
		}
	}
	s.mu.Unlock()
	if ok {
		c.log.Info("component ready")
	}
}

// sleepCtx waits for d and reports whether it did so before ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	return backoff.Sleep(ctx, d) == nil
}
