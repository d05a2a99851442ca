package devcloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// This file is the AWS IoT Jobs stand-in: the device side of the Jobs
// MQTT API (shared/reference/aws-iot.md §3, AWS's "Jobs device MQTT API")
// behind the reserved topics $aws/things/<thing>/jobs/..., plus the two
// calls the cloud side needs (Create, Cancel) and a look-up for tests
// (Execution). One job has one execution per thing (executionNumber 1);
// there are no job targets, rollouts, step timers or job templates.
//
// Device requests and the service's answers:
//
//	jobs/get                → jobs/get/accepted {inProgressJobs, queuedJobs}
//	jobs/start-next         → jobs/start-next/accepted {execution?}
//	jobs/<jobId>/get        → jobs/<jobId>/get/accepted {execution} ($next allowed)
//	jobs/<jobId>/update     → jobs/<jobId>/update/accepted {executionState?, jobDocument?}
//	any of them             → .../rejected {code, message, executionState?}
//	events                  → jobs/notify-next {execution?}, jobs/notify {jobs}
//
// Every answer carries a timestamp and echoes the request's clientToken.
// Timestamps are epoch seconds, as AWS documents them.

// Job execution statuses. A device may set only IN_PROGRESS, SUCCEEDED,
// FAILED and REJECTED; the service sets the others.
const (
	JobQueued     = "QUEUED"
	JobInProgress = "IN_PROGRESS"
	JobSucceeded  = "SUCCEEDED"
	JobFailed     = "FAILED"
	JobRejected   = "REJECTED"
	JobRemoved    = "REMOVED"
	JobCanceled   = "CANCELED"
	JobTimedOut   = "TIMED_OUT"
)

// Codes of a Jobs rejected answer, as AWS names them.
const (
	JobErrInvalidTopic           = "InvalidTopic"
	JobErrInvalidJSON            = "InvalidJson"
	JobErrInvalidRequest         = "InvalidRequest"
	JobErrInvalidStateTransition = "InvalidStateTransition"
	JobErrResourceNotFound       = "ResourceNotFound"
	JobErrVersionMismatch        = "VersionMismatch"
)

// JobTerminal reports whether status is terminal: no update leaves it.
func JobTerminal(status string) bool {
	switch status {
	case JobSucceeded, JobFailed, JobRejected, JobRemoved, JobCanceled, JobTimedOut:
		return true
	}
	return false
}

// JobExecution is a job's execution on one thing, in the JSON form of
// AWS's JobExecution. Times are epoch seconds; StartedAt is 0 until the
// execution first goes IN_PROGRESS.
type JobExecution struct {
	JobID           string            `json:"jobId"`
	ThingName       string            `json:"thingName"`
	JobDocument     json.RawMessage   `json:"jobDocument,omitempty"`
	Status          string            `json:"status"`
	StatusDetails   map[string]string `json:"statusDetails,omitempty"`
	QueuedAt        int64             `json:"queuedAt"`
	StartedAt       int64             `json:"startedAt,omitempty"`
	LastUpdatedAt   int64             `json:"lastUpdatedAt"`
	VersionNumber   int64             `json:"versionNumber"`
	ExecutionNumber int64             `json:"executionNumber"`
}

// JobExecutionState is AWS's JobExecutionState: what an update answer
// and a rejection carry.
type JobExecutionState struct {
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails,omitempty"`
	VersionNumber int64             `json:"versionNumber"`
}

// JobExecutionSummary is AWS's JobExecutionSummary, as listed by
// jobs/get and jobs/notify.
type JobExecutionSummary struct {
	JobID           string `json:"jobId"`
	QueuedAt        int64  `json:"queuedAt"`
	StartedAt       int64  `json:"startedAt,omitempty"`
	LastUpdatedAt   int64  `json:"lastUpdatedAt"`
	VersionNumber   int64  `json:"versionNumber"`
	ExecutionNumber int64  `json:"executionNumber"`
}

// JobRejection is the body of a Jobs .../rejected answer.
type JobRejection struct {
	Code           string             `json:"code"`
	Message        string             `json:"message"`
	ClientToken    string             `json:"clientToken,omitempty"`
	Timestamp      int64              `json:"timestamp"`
	ExecutionState *JobExecutionState `json:"executionState,omitempty"`
}

func (r *JobRejection) Error() string { return r.Code + ": " + r.Message }

// Jobs serves the Jobs MQTT API on a Broker. Create it with NewJobs; its
// methods are safe for concurrent use.
type Jobs struct {
	b      *Broker
	log    *slog.Logger
	now    func() time.Time
	cancel func()
	out    *outbox

	mu     sync.Mutex
	things map[string][]*JobExecution // by thing, in the order created
}

// NewJobs subscribes to the devices' Jobs requests on b
// ($aws/things/+/jobs/#) and answers them until Close, and adds its routes
// to b's management API (jobs_manage.go). One Jobs per broker. log may be
// nil.
func NewJobs(b *Broker, log *slog.Logger) *Jobs {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "devcloud-jobs")
	j := &Jobs{b: b, log: log, now: b.now, out: &outbox{b: b, log: log}, things: make(map[string][]*JobExecution)}
	j.cancel = b.Subscribe("$aws/things/+/jobs/#", j.handle)
	j.mountManagement()
	return j
}

// Close stops answering requests. Jobs already created are kept.
func (j *Jobs) Close() { j.cancel() }

// Create queues a job execution of jobID with document (a JSON object)
// for thing, as CreateJob targeting that thing would. It publishes
// jobs/notify and, when the new execution is the thing's next pending
// one, jobs/notify-next. A job ID may be used once per thing.
func (j *Jobs) Create(thing, jobID string, document json.RawMessage) error {
	if thing == "" || strings.ContainsAny(thing, "/+#") {
		return fmt.Errorf("jobs: invalid thing name %q", thing)
	}
	if !validJobID(jobID) {
		return fmt.Errorf("jobs: invalid job ID %q (1-64 of [a-zA-Z0-9_-])", jobID)
	}
	doc, err := jobDocument(document)
	if err != nil {
		return err
	}
	defer j.out.flush()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.things[thing] {
		if e.JobID == jobID {
			return fmt.Errorf("jobs: job %s already exists for %s", jobID, thing)
		}
	}
	before := j.nextLocked(thing)
	now := j.now().Unix()
	j.things[thing] = append(j.things[thing], &JobExecution{
		JobID: jobID, ThingName: thing, JobDocument: doc, Status: JobQueued,
		QueuedAt: now, LastUpdatedAt: now, VersionNumber: 1, ExecutionNumber: 1,
	})
	j.log.Info("job created", "thing", thing, "job", jobID)
	j.notifyLocked(thing, before)
	return nil
}

// Cancel cancels a job's execution on thing, as CancelJobExecution with
// force would: any non-terminal execution becomes CANCELED.
func (j *Jobs) Cancel(thing, jobID string) error {
	defer j.out.flush()
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.findLocked(thing, jobID)
	if e == nil {
		return fmt.Errorf("jobs: no job %s for %s", jobID, thing)
	}
	if JobTerminal(e.Status) {
		return fmt.Errorf("jobs: job %s for %s is already %s", jobID, thing, e.Status)
	}
	before := j.nextLocked(thing)
	e.Status = JobCanceled
	e.VersionNumber++
	e.LastUpdatedAt = j.now().Unix()
	j.notifyLocked(thing, before)
	return nil
}

// Execution returns a copy of the execution of jobID on thing.
func (j *Jobs) Execution(thing, jobID string) (JobExecution, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.findLocked(thing, jobID)
	if e == nil {
		return JobExecution{}, false
	}
	return e.clone(), true
}

func (e *JobExecution) clone() JobExecution {
	c := *e
	c.JobDocument = append(json.RawMessage(nil), e.JobDocument...)
	if e.StatusDetails != nil {
		c.StatusDetails = make(map[string]string, len(e.StatusDetails))
		for k, v := range e.StatusDetails {
			c.StatusDetails[k] = v
		}
	}
	return c
}

func (e *JobExecution) state() *JobExecutionState {
	c := e.clone()
	return &JobExecutionState{Status: c.Status, StatusDetails: c.StatusDetails, VersionNumber: c.VersionNumber}
}

func (e *JobExecution) summary() JobExecutionSummary {
	return JobExecutionSummary{
		JobID: e.JobID, QueuedAt: e.QueuedAt, StartedAt: e.StartedAt,
		LastUpdatedAt: e.LastUpdatedAt, VersionNumber: e.VersionNumber, ExecutionNumber: e.ExecutionNumber,
	}
}

func validJobID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// jobDocument checks that doc is one JSON object and compacts it.
func jobDocument(doc json.RawMessage) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("jobs: the job document must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, doc); err != nil {
		return nil, fmt.Errorf("jobs: job document: %w", err)
	}
	return buf.Bytes(), nil
}

func (j *Jobs) findLocked(thing, jobID string) *JobExecution {
	for _, e := range j.things[thing] {
		if e.JobID == jobID {
			return e
		}
	}
	return nil
}

// nextLocked is the thing's next pending execution: the oldest
// IN_PROGRESS one, else the oldest QUEUED one; nil when none.
func (j *Jobs) nextLocked(thing string) *JobExecution {
	var queued *JobExecution
	for _, e := range j.things[thing] {
		switch e.Status {
		case JobInProgress:
			return e
		case JobQueued:
			if queued == nil {
				queued = e
			}
		}
	}
	return queued
}

// notifyLocked publishes jobs/notify (the pending list) after any change
// and jobs/notify-next when the next pending execution is no longer
// before (possibly none now: a notify-next without execution).
func (j *Jobs) notifyLocked(thing string, before *JobExecution) {
	now := j.now().Unix()
	prefix := "$aws/things/" + thing + "/jobs/"
	inProgress, queued := j.pendingLocked(thing)
	jobs := map[string][]JobExecutionSummary{}
	if len(inProgress) > 0 {
		jobs[JobInProgress] = inProgress
	}
	if len(queued) > 0 {
		jobs[JobQueued] = queued
	}
	j.publish(prefix+"notify", map[string]any{"timestamp": now, "jobs": jobs})
	next := j.nextLocked(thing)
	if next == before {
		return
	}
	msg := map[string]any{"timestamp": now}
	if next != nil {
		msg["execution"] = next.clone()
	}
	j.publish(prefix+"notify-next", msg)
}

// pendingLocked lists the thing's IN_PROGRESS and QUEUED executions,
// oldest first.
func (j *Jobs) pendingLocked(thing string) (inProgress, queued []JobExecutionSummary) {
	inProgress, queued = []JobExecutionSummary{}, []JobExecutionSummary{}
	for _, e := range j.things[thing] {
		switch e.Status {
		case JobInProgress:
			inProgress = append(inProgress, e.summary())
		case JobQueued:
			queued = append(queued, e.summary())
		}
	}
	return inProgress, queued
}

func (j *Jobs) publish(topic string, v any) {
	payload, err := json.Marshal(v)
	if err != nil {
		j.log.Error("jobs: encode answer", "topic", topic, "error", err)
		return
	}
	j.out.add(topic, payload)
}

// jobRequest is the union of the Jobs requests' fields.
type jobRequest struct {
	ClientToken              string            `json:"clientToken"`
	Status                   string            `json:"status"`
	StatusDetails            map[string]string `json:"statusDetails"`
	ExpectedVersion          *int64            `json:"expectedVersion"`
	ExecutionNumber          *int64            `json:"executionNumber"`
	IncludeJobExecutionState bool              `json:"includeJobExecutionState"`
	IncludeJobDocument       *bool             `json:"includeJobDocument"`
	StepTimeoutInMinutes     *int64            `json:"stepTimeoutInMinutes"`
}

// handle answers one message under $aws/things/+/jobs/. It runs on the
// publisher's goroutine; answers (which match the same filter) are
// recognised and ignored.
func (j *Jobs) handle(topic string, payload []byte) {
	parts := strings.Split(topic, "/")
	if len(parts) < 5 || parts[3] != "jobs" {
		return
	}
	thing, rest := parts[2], parts[4:]
	var op, jobID string
	switch {
	case len(rest) == 1 && (rest[0] == "get" || rest[0] == "start-next"):
		op = rest[0]
	case len(rest) == 2 && (rest[1] == "get" || rest[1] == "update"):
		jobID, op = rest[0], "job-"+rest[1]
	default:
		return // an answer, an event, or no request of the Jobs API
	}
	var req jobRequest
	defer j.out.flush()
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(bytes.TrimSpace(payload)) > 0 {
		if err := json.Unmarshal(payload, &req); err != nil {
			j.reject(topic, clientTokenOf(payload), JobErrInvalidJSON, "the request payload is not valid JSON: "+err.Error(), nil)
			return
		}
	}
	j.log.Debug("jobs request", "thing", thing, "op", op, "job", jobID, "client_token", req.ClientToken)
	reply := topic
	switch op {
	case "get":
		j.getPendingLocked(reply, thing, req)
	case "start-next":
		j.startNextLocked(reply, thing, req)
	case "job-get":
		j.describeLocked(reply, thing, jobID, req)
	case "job-update":
		j.updateLocked(reply, thing, jobID, req)
	}
}

func (j *Jobs) reject(topic, clientToken, code, message string, e *JobExecution) {
	r := &JobRejection{Code: code, Message: message, ClientToken: clientToken, Timestamp: j.now().Unix()}
	if e != nil {
		r.ExecutionState = e.state()
	}
	j.log.Info("jobs request rejected", "topic", topic, "code", code, "message", message)
	j.publish(topic+"/rejected", r)
}

func (j *Jobs) accept(topic string, body map[string]any, clientToken string) {
	body["timestamp"] = j.now().Unix()
	if clientToken != "" {
		body["clientToken"] = clientToken
	}
	j.publish(topic+"/accepted", body)
}

func (j *Jobs) getPendingLocked(reply, thing string, req jobRequest) {
	inProgress, queued := j.pendingLocked(thing)
	j.accept(reply, map[string]any{"inProgressJobs": inProgress, "queuedJobs": queued}, req.ClientToken)
}

// startNextLocked returns the IN_PROGRESS execution if there is one,
// else moves the oldest QUEUED one to IN_PROGRESS (with the request's
// statusDetails); with none pending, the answer has no execution.
func (j *Jobs) startNextLocked(reply, thing string, req jobRequest) {
	before := j.nextLocked(thing)
	if before == nil {
		j.accept(reply, map[string]any{}, req.ClientToken)
		return
	}
	e, started := before, before.Status == JobQueued
	if started {
		now := j.now().Unix()
		e.Status = JobInProgress
		e.StartedAt = now
		e.LastUpdatedAt = now
		e.VersionNumber++
		if req.StatusDetails != nil {
			e.StatusDetails = req.StatusDetails
		}
	}
	j.accept(reply, map[string]any{"execution": e.clone()}, req.ClientToken)
	if started {
		j.notifyLocked(thing, before)
	}
}

func (j *Jobs) describeLocked(reply, thing, jobID string, req jobRequest) {
	var e *JobExecution
	if jobID == "$next" {
		e = j.nextLocked(thing)
		if e == nil {
			j.accept(reply, map[string]any{}, req.ClientToken)
			return
		}
	} else if e = j.findLocked(thing, jobID); e == nil ||
		(req.ExecutionNumber != nil && *req.ExecutionNumber != e.ExecutionNumber) {
		j.reject(reply, req.ClientToken, JobErrResourceNotFound, fmt.Sprintf("job execution %s not found for thing %s", jobID, thing), nil)
		return
	}
	x := e.clone()
	if req.IncludeJobDocument != nil && !*req.IncludeJobDocument {
		x.JobDocument = nil
	}
	j.accept(reply, map[string]any{"execution": x}, req.ClientToken)
}

func (j *Jobs) updateLocked(reply, thing, jobID string, req jobRequest) {
	switch req.Status {
	case JobInProgress, JobSucceeded, JobFailed, JobRejected:
	case "":
		j.reject(reply, req.ClientToken, JobErrInvalidRequest, "status is required", nil)
		return
	default:
		j.reject(reply, req.ClientToken, JobErrInvalidRequest,
			fmt.Sprintf("status %q may not be set by a device (IN_PROGRESS, SUCCEEDED, FAILED or REJECTED)", req.Status), nil)
		return
	}
	e := j.findLocked(thing, jobID)
	if e == nil || (req.ExecutionNumber != nil && *req.ExecutionNumber != e.ExecutionNumber) {
		j.reject(reply, req.ClientToken, JobErrResourceNotFound, fmt.Sprintf("job execution %s not found for thing %s", jobID, thing), nil)
		return
	}
	if req.ExpectedVersion != nil && *req.ExpectedVersion != e.VersionNumber {
		j.reject(reply, req.ClientToken, JobErrVersionMismatch,
			fmt.Sprintf("expected version %d, current version is %d", *req.ExpectedVersion, e.VersionNumber), e)
		return
	}
	if JobTerminal(e.Status) {
		j.reject(reply, req.ClientToken, JobErrInvalidStateTransition,
			fmt.Sprintf("job execution %s is in terminal state %s and cannot be updated to %s", jobID, e.Status, req.Status), e)
		return
	}
	before := j.nextLocked(thing)
	now := j.now().Unix()
	wasQueued := e.Status == JobQueued
	if req.Status == JobInProgress && wasQueued {
		e.StartedAt = now
	}
	e.Status = req.Status
	if req.StatusDetails != nil {
		e.StatusDetails = req.StatusDetails
	}
	e.VersionNumber++
	e.LastUpdatedAt = now
	body := map[string]any{}
	if req.IncludeJobExecutionState {
		body["executionState"] = e.state()
	}
	if req.IncludeJobDocument != nil && *req.IncludeJobDocument {
		body["jobDocument"] = append(json.RawMessage(nil), e.JobDocument...)
	}
	j.accept(reply, body, req.ClientToken)
	if wasQueued || JobTerminal(e.Status) {
		j.notifyLocked(thing, before)
	}
}

// clientTokenOf digs the clientToken out of a request that did not
// decode as a whole (a field of the wrong type), so a rejection can still
// echo it.
func clientTokenOf(payload []byte) string {
	var v struct {
		ClientToken string `json:"clientToken"`
	}
	_ = json.Unmarshal(payload, &v)
	return v.ClientToken
}

// outbox publishes a service's answers and events in the order they were
// made, with no service lock held: a change queues its messages under the
// service's lock (add), and flush, called once the lock is released,
// publishes them. Publishing runs broker.Subscribe callbacks on this
// goroutine, which may call back into the service (even publish again);
// such a nested flush finds the outbox draining and leaves its messages
// to the loop already running, so order holds and nothing deadlocks.
type outbox struct {
	b   *Broker
	log *slog.Logger

	mu       sync.Mutex
	queue    []outboxMsg
	draining bool
}

type outboxMsg struct {
	topic   string
	payload []byte
}

func (o *outbox) add(topic string, payload []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queue = append(o.queue, outboxMsg{topic, payload})
}

func (o *outbox) flush() {
	o.mu.Lock()
	if o.draining {
		o.mu.Unlock()
		return
	}
	o.draining = true
	for len(o.queue) > 0 {
		m := o.queue[0]
		o.queue = o.queue[1:]
		o.mu.Unlock()
		if err := o.b.Publish(m.topic, m.payload, 1); err != nil {
			o.log.Warn("publish failed", "topic", m.topic, "error", err)
		}
		o.mu.Lock()
	}
	o.queue = nil
	o.draining = false
	o.mu.Unlock()
}
