//go:build unix

package outbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

// The crash test re-executes the test binary, which then runs only
// TestHelperProcess: it opens the store in helperDirEnv, enqueues
// helperEnqueueEnv reports (if any), prints "enqueued N", and runs the outbox
// against the sink at helperURLEnv until the queue is empty, when it prints
// "drained" and exits.
const (
	helperEnv        = "EDGEFORT_OUTBOX_HELPER"
	helperDirEnv     = "EDGEFORT_OUTBOX_DIR"
	helperURLEnv     = "EDGEFORT_OUTBOX_URL"
	helperCAEnv      = "EDGEFORT_OUTBOX_CA"
	helperEnqueueEnv = "EDGEFORT_OUTBOX_ENQUEUE"

	crashDevice  = "dev-1"
	crashStreams = 4
	crashBatch   = 25
	// watchdog kills a child that stops making progress, so a hang fails
	// the test instead of stalling it. It is generous and never asserted on.
	watchdog = 2 * time.Minute
)

// crashBody is a crash-test report: the i-th of its stream, the n-th
// enqueued.
type crashBody struct {
	N      int    `json:"n"`
	Stream string `json:"stream"`
	I      int    `json:"i"`
}

func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return // not a child: nothing to do
	}
	if err := runHelper(); err != nil {
		fmt.Fprintf(os.Stderr, "helper: %v\n", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func runHelper() error {
	db, err := store.Open(os.Getenv(helperDirEnv), store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	sender, err := newHTTPSender(os.Getenv(helperURLEnv), os.Getenv(helperCAEnv))
	if err != nil {
		return err
	}
	o, err := New(Options{
		Store:   db,
		Sender:  sender,
		Batch:   crashBatch,
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if n, _ := strconv.Atoi(os.Getenv(helperEnqueueEnv)); n > 0 {
		for i := range n {
			stream := fmt.Sprintf("s%d", i%crashStreams)
			body, _ := json.Marshal(crashBody{N: i, Stream: stream, I: i / crashStreams})
			if _, err := o.Enqueue(ctx, Item{Stream: stream, Type: "test.crash", Body: body}); err != nil {
				return err
			}
		}
		// os.Stdout is unbuffered: the parent reads this only once every
		// Enqueue has returned, so all n are durable.
		fmt.Println("enqueued", n)
	}
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	for o.Len() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	fmt.Println("drained")
	return nil
}

// httpSender is a minimal reports client for the helper: cloudclient.Client
// is built elsewhere.
type httpSender struct {
	client *http.Client
	url    string
}

func newHTTPSender(base, caFile string) (*httpSender, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no certificate in " + caFile)
	}
	return &httpSender{
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		},
		url: base + api.DevicePath(api.PathReports, crashDevice),
	}, nil
}

func (s *httpSender) SendReports(ctx context.Context, reports []api.Report) (api.ReportsResponse, error) {
	var out api.ReportsResponse
	body, err := json.Marshal(api.ReportsRequest{Reports: reports})
	if err != nil {
		return out, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("send reports: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("send reports: decode answer: %w", err)
	}
	return out, nil
}

// sink is the control plane's reports endpoint: it records deliveries per
// idempotency key and acknowledges every report it records.
type sink struct {
	mu       sync.Mutex
	down     bool            // answer 503
	downHits int             // requests answered 503
	requests int             // requests recorded
	perKey   map[string]int  // deliveries per key
	keyOfN   map[int]string  // the key each report number came with
	nextI    map[string]int  // per stream, the index expected first-time next
	problems []string        // wrong keys, order or content
	triggers []*crashTrigger // pending, by threshold
}

// crashTrigger fires when the sink has recorded at least at distinct keys:
// it sends on fired, and, if hold, the request waits to be answered until
// release is closed (so the client dies with the batch recorded but not
// acknowledged).
type crashTrigger struct {
	at      int
	hold    bool
	fired   chan struct{}
	release chan struct{}
}

func newSink() *sink {
	return &sink{perKey: map[string]int{}, keyOfN: map[int]string{}, nextI: map[string]int{}}
}

func (s *sink) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *sink) addTrigger(at int, hold bool) *crashTrigger {
	tr := &crashTrigger{at: at, hold: hold, fired: make(chan struct{}, 1), release: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.triggers = append(s.triggers, tr)
	return tr
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != crashDevice {
		http.Error(w, "unknown device "+id, http.StatusNotFound)
		return
	}
	s.mu.Lock()
	if s.down {
		s.downHits++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(api.Error{Code: "unavailable", Message: "cloud down"})
		return
	}
	s.mu.Unlock()

	var req api.ReportsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var resp api.ReportsResponse
	s.mu.Lock()
	s.requests++
	for _, rep := range req.Reports {
		s.recordLocked(rep)
		resp.Acknowledged = append(resp.Acknowledged, rep.IdempotencyKey)
	}
	var fired *crashTrigger
	for len(s.triggers) > 0 && len(s.perKey) >= s.triggers[0].at {
		fired, s.triggers = s.triggers[0], s.triggers[1:]
		fired.fired <- struct{}{}
	}
	s.mu.Unlock()
	if fired != nil && fired.hold {
		<-fired.release
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (s *sink) recordLocked(rep api.Report) {
	var b crashBody
	if err := json.Unmarshal(rep.Body, &b); err != nil || b.Stream != rep.Stream {
		s.problems = append(s.problems, fmt.Sprintf("key %s: bad body %s", rep.IdempotencyKey, rep.Body))
		return
	}
	s.perKey[rep.IdempotencyKey]++
	if k, ok := s.keyOfN[b.N]; ok {
		if k != rep.IdempotencyKey {
			s.problems = append(s.problems, fmt.Sprintf("report %d came again with key %s; first with %s", b.N, rep.IdempotencyKey, k))
		}
		return
	}
	s.keyOfN[b.N] = rep.IdempotencyKey
	if b.I != s.nextI[b.Stream] {
		s.problems = append(s.problems, fmt.Sprintf("stream %s: report %d delivered first after %d", b.Stream, b.I, s.nextI[b.Stream]-1))
	}
	s.nextI[b.Stream] = b.I + 1
}

// child is a running helper process.
type child struct {
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	stderr bytes.Buffer // read only after wait
	stop   *time.Timer
	waited bool
}

func startChild(t *testing.T, dir, url, caFile string, enqueue int) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")}
	c.cmd.Env = append(os.Environ(), helperEnv+"=1", helperDirEnv+"="+dir, helperURLEnv+"="+url,
		helperCAEnv+"="+caFile, helperEnqueueEnv+"="+strconv.Itoa(enqueue))
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdout = bufio.NewScanner(out)
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	c.stop = time.AfterFunc(watchdog, func() { c.cmd.Process.Kill() })
	t.Cleanup(func() { c.kill() })
	return c
}

// line returns the child's next line of output, failing the test if the
// child has ended.
func (c *child) line(t *testing.T) string {
	t.Helper()
	if c.stdout.Scan() {
		return c.stdout.Text()
	}
	err := c.stdout.Err()
	c.kill()
	t.Fatalf("helper ended early (%v, %v); stderr:\n%s", err, c.cmd.ProcessState, c.stderr.String())
	return ""
}

// kill sends SIGKILL, reads the rest of the child's output and reaps it.
// Safe to call again.
func (c *child) kill() {
	if c.waited {
		return
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	for c.stdout.Scan() {
	}
	c.cmd.Wait() // "signal: killed" is expected
	c.stop.Stop()
	c.waited = true
}

// wait waits for a child that is ending on its own.
func (c *child) wait(t *testing.T) {
	t.Helper()
	for c.stdout.Scan() {
	}
	err := c.cmd.Wait()
	c.stop.Stop()
	c.waited = true
	if err != nil {
		t.Fatalf("helper: %v; stderr:\n%s", err, c.stderr.String())
	}
}

func waitFired(t *testing.T, tr *crashTrigger) {
	t.Helper()
	select {
	case <-tr.fired:
	case <-time.After(time.Minute):
		t.Fatalf("the sink never reached %d keys", tr.at)
	}
}

// TestCrashDelivery queues 1,000 reports while the cloud is down, brings
// it back, kills the agent with SIGKILL twice during delivery (restarting it
// on the same store each time) and checks that every report arrived, in
// order per stream, any duplicate with its one idempotency key.
func TestCrashDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary")
	}
	const total = 1000
	start := time.Now()
	dir := filepath.Join(t.TempDir(), "state")
	s := newSink()
	mux := http.NewServeMux()
	mux.Handle("POST "+api.PathReports, s)
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	// Queue everything while the cloud is down, and let the child back off
	// against it for a while.
	s.setDown(true)
	c := startChild(t, dir, srv.URL, caFile, total)
	if got, want := c.line(t), fmt.Sprintf("enqueued %d", total); got != want {
		t.Fatalf("helper said %q; want %q", got, want)
	}
	enqueued := time.Since(start)
	time.Sleep(300 * time.Millisecond)

	// Cloud back. First kill: while the sink holds a batch it recorded but
	// has not acknowledged, so that batch must come again.
	held := s.addTrigger(300, true)
	loose := s.addTrigger(650, false)
	s.setDown(false)
	waitFired(t, held)
	c.kill()
	close(held.release)

	// Second kill: as soon as the sink has 650 keys, wherever the child is
	// (sending, committing its deletes, or reading the queue).
	c = startChild(t, dir, srv.URL, caFile, 0)
	waitFired(t, loose)
	c.kill()

	c = startChild(t, dir, srv.URL, caFile, 0)
	if got := c.line(t); got != "drained" {
		t.Fatalf("helper said %q; want drained", got)
	}
	c.wait(t)
	elapsed := time.Since(start)

	db := testkit.OpenStore(t, dir)
	if o := newTestOutbox(t, Options{Store: db}); o.Len() != 0 {
		t.Errorf("%d items left in the outbox after the helper drained it", o.Len())
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.problems {
		t.Error(p)
	}
	if s.downHits == 0 {
		t.Error("the helper never tried the cloud while it was down")
	}
	for n := range total {
		if _, ok := s.keyOfN[n]; !ok {
			t.Errorf("report %d never arrived", n)
		}
	}
	if len(s.perKey) != total {
		t.Errorf("%d distinct keys arrived; want %d", len(s.perKey), total)
	}
	deliveries, dupKeys := 0, 0
	for _, n := range s.perKey {
		deliveries += n
		if n > 1 {
			dupKeys++
		}
	}
	// The held batch was recorded and never acknowledged: it came again.
	if deliveries == total {
		t.Error("no duplicates, though a batch was recorded and its answer lost")
	}
	t.Logf("%d reports: %d deliveries, %d duplicates over %d keys, %d requests (+%d answered 503); enqueue %v, total %v",
		total, deliveries, deliveries-total, dupKeys, s.requests, s.downHits, enqueued.Round(time.Millisecond), elapsed.Round(time.Millisecond))
}

var _ Sender = (*httpSender)(nil)
