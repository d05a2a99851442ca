package jobs_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/iot/events"
	"github.com/edgefort/edgefort/iot/jobs"
)

// These tests run a Runner behind a real iot.Link, connected through
// SigV4 to devcloud's broker and its Jobs service on loopback.

const thing = "fort-1"

var testCreds = aws.Credentials{AccessKeyID: "ASIAJOBS0001", SecretAccessKey: "secret", SessionToken: "token/1+="}

type staticCreds struct{}

func (staticCreds) Retrieve(context.Context) (aws.Credentials, error) { return testCreds, nil }

func lookup(akid string) (string, string, string, bool) {
	if akid != testCreds.AccessKeyID {
		return "", "", "", false
	}
	return testCreds.SecretAccessKey, testCreds.SessionToken, thing, true
}

func testLogger() *slog.Logger {
	if os.Getenv("JOBS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type cloud struct {
	b    *devcloud.Broker
	jobs *devcloud.Jobs
}

func startCloud(t *testing.T) *cloud {
	t.Helper()
	ca, err := devcloud.NewCA("jobs test CA")
	if err != nil {
		t.Fatal(err)
	}
	b, err := devcloud.NewBroker(devcloud.BrokerOptions{CA: ca, Region: "eu-west-1", Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	j := devcloud.NewJobs(b, testLogger())
	t.Cleanup(j.Close)
	return &cloud{b: b, jobs: j}
}

// device is one "process": a Link and a Runner on a shared store.
type device struct {
	r      *jobs.Runner
	link   *iot.Link
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

func startDevice(t *testing.T, c *cloud, db *store.DB, h jobs.Handlers, tweak func(*jobs.Options)) *device {
	t.Helper()
	d := &device{errs: make(chan error, 2)}
	var link *iot.Link
	opts := jobs.Options{
		Thing:        thing,
		Publisher:    publisherFunc(func(ctx context.Context, topic string, p []byte) error { return link.Publish(ctx, topic, p) }),
		Handlers:     h,
		Store:        db,
		Logger:       testLogger(),
		Registerer:   prom.NewRegistry(),
		RetryDelay:   50 * time.Millisecond,
		ReplyTimeout: 2 * time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	r, err := jobs.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	link, err = iot.New(iot.Options{
		Host:             c.b.Host(),
		Region:           c.b.Region(),
		ThingName:        thing,
		Credentials:      staticCreds{},
		TLS:              &tls.Config{RootCAs: c.b.ServerCA(), MinVersion: tls.VersionTLS12},
		ReconnectInitial: 50 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
		ConnectTimeout:   5 * time.Second,
		Logger:           testLogger(),
		Registerer:       prom.NewRegistry(),
		Subscriptions:    r.Subscriptions(),
		Handler:          func(ctx context.Context, m iot.Message) error { return r.Handle(ctx, m.Topic, m.Payload) },
		OnConnect:        r.OnConnect,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.r, d.link = r, link
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.errs <- r.Run(ctx) }()
	go func() { defer d.wg.Done(); d.errs <- link.Run(ctx) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop ends the Runner and the Link, as a process exit would.
func (d *device) stop(t *testing.T) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	for range 2 {
		if err := <-d.errs; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}

type publisherFunc func(context.Context, string, []byte) error

func (f publisherFunc) Publish(ctx context.Context, topic string, p []byte) error {
	return f(ctx, topic, p)
}

// registry is a test Handlers.
type registry map[string]events.HandlerFunc

func (r registry) Handler(typ string) (events.HandlerFunc, bool) { h, ok := r[typ]; return h, ok }

func waitStatus(t *testing.T, c *cloud, jobID, want string) devcloud.JobExecution {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		x, ok := c.jobs.Execution(thing, jobID)
		if ok && x.Status == want {
			return x
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status %q (details %v), want %s", jobID, x.Status, x.StatusDetails, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func create(t *testing.T, c *cloud, jobID, doc string) {
	t.Helper()
	if err := c.jobs.Create(thing, jobID, json.RawMessage(doc)); err != nil {
		t.Fatal(err)
	}
}

func TestJobOutcomes(t *testing.T) {
	c := startCloud(t)
	var mu sync.Mutex
	var seen []events.Event
	reg := registry{
		"echo": func(_ context.Context, ev events.Event) (events.Result, error) {
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
			return events.Result{Status: events.StatusDone, Detail: "echoed", Body: json.RawMessage(`{"ok":true}`)}, nil
		},
		"fail": func(context.Context, events.Event) (events.Result, error) {
			return events.Failed("disk full"), nil
		},
		"flaky": func() events.HandlerFunc {
			n := 0
			return func(context.Context, events.Event) (events.Result, error) {
				n++
				if n < 2 {
					return events.Result{}, errors.New("try again")
				}
				return events.Done(nil), nil
			}
		}(),
		"broken": func(context.Context, events.Event) (events.Result, error) {
			return events.Result{}, errors.New("still broken")
		},
	}
	start := time.Now()
	startDevice(t, c, testkit.OpenStore(t, ""), reg, nil)

	create(t, c, "ok-1", `{"operation":"echo","x":1}`)
	x := waitStatus(t, c, "ok-1", devcloud.JobSucceeded)
	if x.StatusDetails["detail"] != "echoed" || x.StatusDetails["body"] != `{"ok":true}` {
		t.Errorf("SUCCEEDED statusDetails = %v", x.StatusDetails)
	}
	mu.Lock()
	if len(seen) != 1 || seen[0].ID != "job-ok-1-1" || seen[0].Type != "echo" || string(seen[0].Body) != `{"operation":"echo","x":1}` {
		t.Errorf("handler saw %+v", seen)
	}
	mu.Unlock()
	t.Logf("create → SUCCEEDED: %v", time.Since(start))

	create(t, c, "fail-1", `{"operation":"fail"}`)
	x = waitStatus(t, c, "fail-1", devcloud.JobFailed)
	if x.StatusDetails["reason"] != "disk full" {
		t.Errorf("FAILED statusDetails = %v", x.StatusDetails)
	}

	create(t, c, "unknown-1", `{"operation":"reboot-the-moon"}`)
	x = waitStatus(t, c, "unknown-1", devcloud.JobRejected)
	if x.StatusDetails["reason"] != `unknown operation "reboot-the-moon"` {
		t.Errorf("REJECTED statusDetails = %v", x.StatusDetails)
	}

	create(t, c, "flaky-1", `{"operation":"flaky"}`)
	waitStatus(t, c, "flaky-1", devcloud.JobSucceeded)

	create(t, c, "broken-1", `{"operation":"broken"}`)
	x = waitStatus(t, c, "broken-1", devcloud.JobFailed)
	if x.StatusDetails["reason"] != "still broken" || x.StatusDetails["attempts"] != "3" {
		t.Errorf("FAILED after retries statusDetails = %v", x.StatusDetails)
	}
}

func TestJobsRunOneAfterTheOther(t *testing.T) {
	c := startCloud(t)
	var mu sync.Mutex
	running, maxRunning := 0, 0
	var order []string
	reg := registry{"slow": func(ctx context.Context, ev events.Event) (events.Result, error) {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		order = append(order, ev.ID)
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return events.Done(nil), nil
	}}
	// Both queued before the device connects, and a third while it works.
	create(t, c, "a", `{"operation":"slow"}`)
	create(t, c, "b", `{"operation":"slow"}`)
	startDevice(t, c, testkit.OpenStore(t, ""), reg, nil)
	waitStatus(t, c, "a", devcloud.JobInProgress)
	create(t, c, "c", `{"operation":"slow"}`)
	for _, id := range []string{"a", "b", "c"} {
		waitStatus(t, c, id, devcloud.JobSucceeded)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxRunning != 1 {
		t.Errorf("%d jobs ran at once", maxRunning)
	}
	if len(order) != 3 || order[0] != "job-a-1" || order[1] != "job-b-1" || order[2] != "job-c-1" {
		t.Errorf("ran %v, want job-a-1, job-b-1, job-c-1 once each", order)
	}
}

// blocker is a handler that blocks until released or its ctx ends.
type blocker struct {
	mu      sync.Mutex
	started chan string
	release chan struct{}
	runs    map[string]int
}

func newBlocker() *blocker {
	return &blocker{started: make(chan string, 10), release: make(chan struct{}), runs: map[string]int{}}
}

func (b *blocker) handle(ctx context.Context, ev events.Event) (events.Result, error) {
	b.mu.Lock()
	b.runs[ev.ID]++
	b.mu.Unlock()
	b.started <- ev.ID
	select {
	case <-b.release:
		return events.Result{Status: events.StatusDone, Detail: "released"}, nil
	case <-ctx.Done():
		return events.Result{}, ctx.Err()
	}
}

func (b *blocker) runCount(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runs[id]
}

func awaitStart(t *testing.T, b *blocker, want string) {
	t.Helper()
	select {
	case id := <-b.started:
		if id != want {
			t.Fatalf("handler started for %s, want %s", id, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("handler never started for %s", want)
	}
}

// A restart while the handler runs: with attempts left, the job runs again
// (at least once) and succeeds; the next job runs after it.
func TestRestartMidJobRunsAgain(t *testing.T) {
	c := startCloud(t)
	db := testkit.OpenStore(t, "")
	bl := newBlocker()
	reg := registry{"block": bl.handle, "echo": func(context.Context, events.Event) (events.Result, error) { return events.Done(nil), nil }}

	create(t, c, "j1", `{"operation":"block"}`)
	create(t, c, "j2", `{"operation":"echo"}`)
	d1 := startDevice(t, c, db, reg, nil)
	awaitStart(t, bl, "job-j1-1")
	d1.stop(t)
	if x, _ := c.jobs.Execution(thing, "j1"); x.Status != devcloud.JobInProgress || x.StatusDetails["step"] != "running" {
		t.Fatalf("after the stop j1 = %s %v, want IN_PROGRESS step running", x.Status, x.StatusDetails)
	}

	restart := time.Now()
	startDevice(t, c, db, reg, nil)
	awaitStart(t, bl, "job-j1-1")
	t.Logf("restart → handler running again: %v", time.Since(restart))
	if x, _ := c.jobs.Execution(thing, "j1"); x.StatusDetails["attempt"] != "2" {
		t.Errorf("rerun statusDetails = %v, want attempt 2", x.StatusDetails)
	}
	close(bl.release)
	x := waitStatus(t, c, "j1", devcloud.JobSucceeded)
	if x.StatusDetails["detail"] != "released" {
		t.Errorf("statusDetails = %v", x.StatusDetails)
	}
	waitStatus(t, c, "j2", devcloud.JobSucceeded)
	if n := bl.runCount("job-j1-1"); n != 2 {
		t.Errorf("j1 ran %d times, want 2 (at least once across a restart)", n)
	}
}

// With MaxAttempts 1 an interrupted job is never run twice: it is reported
// FAILED "interrupted by a restart", and the next job still runs.
func TestRestartMidJobFailsWhenNoAttemptLeft(t *testing.T) {
	c := startCloud(t)
	db := testkit.OpenStore(t, "")
	bl := newBlocker()
	reg := registry{"block": bl.handle, "echo": func(context.Context, events.Event) (events.Result, error) { return events.Done(nil), nil }}
	one := func(o *jobs.Options) { o.MaxAttempts = 1 }

	create(t, c, "j1", `{"operation":"block"}`)
	create(t, c, "j2", `{"operation":"echo"}`)
	d1 := startDevice(t, c, db, reg, one)
	awaitStart(t, bl, "job-j1-1")
	d1.stop(t)

	startDevice(t, c, db, reg, one)
	x := waitStatus(t, c, "j1", devcloud.JobFailed)
	if x.StatusDetails["reason"] != "interrupted by a restart" {
		t.Errorf("statusDetails = %v", x.StatusDetails)
	}
	waitStatus(t, c, "j2", devcloud.JobSucceeded)
	if n := bl.runCount("job-j1-1"); n != 1 {
		t.Errorf("j1 ran %d times, want 1", n)
	}
}

// The handler finished but the process stopped before its final update was
// accepted: the next start resends the result, it does not run again.
func TestRestartAfterHandlerFinishedResendsResult(t *testing.T) {
	c := startCloud(t)
	db := testkit.OpenStore(t, "")
	var mu sync.Mutex
	runs := 0
	gate := make(chan struct{})
	var once sync.Once
	// A publisher that drops the final update (the link died at that moment).
	drop := func(o *jobs.Options) {
		inner := o.Publisher
		o.Publisher = publisherFunc(func(ctx context.Context, topic string, p []byte) error {
			var b struct{ Status string }
			_ = json.Unmarshal(p, &b)
			if b.Status == jobs.StatusSucceeded {
				once.Do(func() { close(gate) })
				return iot.ErrNotConnected
			}
			return inner.Publish(ctx, topic, p)
		})
	}
	reg := registry{"once": func(context.Context, events.Event) (events.Result, error) {
		mu.Lock()
		runs++
		mu.Unlock()
		return events.Result{Status: events.StatusDone, Detail: "did it"}, nil
	}}
	create(t, c, "j1", `{"operation":"once"}`)
	d1 := startDevice(t, c, db, reg, drop)
	select {
	case <-gate:
	case <-time.After(15 * time.Second):
		t.Fatal("final update never attempted")
	}
	d1.stop(t)
	if x, _ := c.jobs.Execution(thing, "j1"); x.Status != devcloud.JobInProgress {
		t.Fatalf("j1 = %s before the restart, want IN_PROGRESS", x.Status)
	}
	startDevice(t, c, db, reg, nil)
	x := waitStatus(t, c, "j1", devcloud.JobSucceeded)
	if x.StatusDetails["detail"] != "did it" {
		t.Errorf("statusDetails = %v", x.StatusDetails)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs != 1 {
		t.Errorf("handler ran %d times, want 1", runs)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := jobs.New(jobs.Options{Thing: "a/b"}); err == nil {
		t.Fatal("New accepted bad options")
	}
}
