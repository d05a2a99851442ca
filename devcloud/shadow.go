package devcloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgefort/edgefort/internal/jsonvalue"
)

// This file is the AWS IoT Device Shadow stand-in: the classic (unnamed)
// shadow of each thing behind $aws/things/<thing>/shadow/... (see
// shared/reference/aws-iot.md §4 and AWS's "Device Shadow MQTT topics"),
// and SetDesired for the cloud side (what UpdateThingShadow with a desired
// state does). Shadows live in memory.
//
//	shadow/get     → shadow/get/accepted {state{desired,reported,delta}, metadata, version} | /rejected 404
//	shadow/update  → shadow/update/accepted {state, metadata, version}  (the request's fields only)
//	                 shadow/update/documents {previous, current}
//	                 shadow/update/delta {state, metadata, version}      (when desired was updated and differs)
//	               | shadow/update/rejected {code 400|409|413, message}
//	shadow/delete  → shadow/delete/accepted {version} | /rejected 404
//
// Every answer carries a timestamp (epoch seconds) and echoes the
// request's clientToken.

// Shadow limits and the error codes of .../rejected, as AWS has them.
const (
	ShadowMaxStateBytes   = 8 * 1024 // desired + reported, without metadata
	ShadowMaxDepth        = 6        // levels of nesting in desired or reported
	ShadowMaxClientToken  = 64       // bytes
	ShadowErrBadRequest   = 400
	ShadowErrNotFound     = 404
	ShadowErrConflict     = 409
	ShadowErrTooLarge     = 413
	ShadowErrUnsupported  = 415
	shadowVersionConflict = "Version conflict"
)

// ShadowError is the body of a shadow .../rejected answer, and the error
// SetDesired returns for a request AWS would refuse.
type ShadowError struct {
	Code        int    `json:"code"`
	Message     string `json:"message"`
	Timestamp   int64  `json:"timestamp,omitempty"`
	ClientToken string `json:"clientToken,omitempty"`
}

func (e *ShadowError) Error() string { return fmt.Sprintf("shadow: %d %s", e.Code, e.Message) }

// ShadowState is a shadow's state: desired and reported as stored, delta
// computed from them (desired leaves that reported lacks or holds
// differently). A nil map is an absent section.
type ShadowState struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
	Delta    map[string]any `json:"delta,omitempty"`
}

// ShadowMetadata mirrors desired and reported with {"timestamp": epoch
// seconds} at each leaf: when that leaf was last updated.
type ShadowMetadata struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
}

// ShadowDocument is a shadow as get/accepted returns it. Numbers in the
// state are json.Number.
type ShadowDocument struct {
	State     ShadowState    `json:"state"`
	Metadata  ShadowMetadata `json:"metadata"`
	Version   int64          `json:"version"`
	Timestamp int64          `json:"timestamp"`
}

// shadowDoc is a stored shadow.
type shadowDoc struct {
	exists                bool
	desired, reported     map[string]any
	mdDesired, mdReported map[string]any
	version               int64 // kept across delete: AWS does not reset it
}

// Shadow serves the classic Device Shadow MQTT API on a Broker. Create
// it with NewShadow; its methods are safe for concurrent use.
type Shadow struct {
	b      *Broker
	log    *slog.Logger
	now    func() time.Time
	cancel func()
	out    *outbox

	mu     sync.Mutex
	things map[string]*shadowDoc
}

// NewShadow subscribes to the devices' shadow requests on b
// ($aws/things/+/shadow/#) and answers them until Close. log may be nil.
func NewShadow(b *Broker, log *slog.Logger) *Shadow {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "devcloud-shadow")
	s := &Shadow{b: b, log: log, now: b.now, out: &outbox{b: b, log: log}, things: make(map[string]*shadowDoc)}
	s.cancel = b.Subscribe("$aws/things/+/shadow/#", s.handle)
	return s
}

// Close stops answering requests. Shadows are kept.
func (s *Shadow) Close() { s.cancel() }

// SetDesired updates the desired state of thing's shadow as the cloud
// would: desired (a JSON object, or null to remove the section) is merged
// into the stored one, null values deleting keys; the version goes up;
// update/documents is published and, when desired now differs from
// reported, update/delta. A request AWS would refuse returns a
// *ShadowError.
func (s *Shadow) SetDesired(thing string, desired json.RawMessage) error {
	if thing == "" || strings.ContainsAny(thing, "/+#") {
		return fmt.Errorf("shadow: invalid thing name %q", thing)
	}
	payload, err := json.Marshal(map[string]any{"state": map[string]json.RawMessage{"desired": desired}})
	if err != nil {
		return &ShadowError{Code: ShadowErrBadRequest, Message: "Invalid JSON"}
	}
	defer s.out.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.updateLocked(thing, payload, false); e != nil {
		return e
	}
	return nil
}

// Document returns a copy of thing's shadow, delta computed; false when
// there is none (never updated, or deleted).
func (s *Shadow) Document(thing string) (ShadowDocument, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.things[thing]
	if d == nil || !d.exists {
		return ShadowDocument{}, false
	}
	return s.documentLocked(d), true
}

func (s *Shadow) documentLocked(d *shadowDoc) ShadowDocument {
	return ShadowDocument{
		State: ShadowState{
			Desired:  jsonvalue.CloneMap(d.desired),
			Reported: jsonvalue.CloneMap(d.reported),
			Delta:    shadowDelta(d.desired, d.reported),
		},
		Metadata:  ShadowMetadata{Desired: jsonvalue.CloneMap(d.mdDesired), Reported: jsonvalue.CloneMap(d.mdReported)},
		Version:   d.version,
		Timestamp: s.now().Unix(),
	}
}

// handle answers one message under $aws/things/+/shadow/. Answers and
// events (which match the same filter) are recognised and ignored, as
// are named shadows.
func (s *Shadow) handle(topic string, payload []byte) {
	parts := strings.Split(topic, "/")
	if len(parts) != 5 || parts[3] != "shadow" {
		return
	}
	thing, op := parts[2], parts[4]
	if op != "get" && op != "update" && op != "delete" {
		return
	}
	defer s.out.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Debug("shadow request", "thing", thing, "op", op)
	switch op {
	case "get":
		s.getLocked(topic, thing, payload)
	case "update":
		if e := s.updateLocked(thing, payload, true); e != nil {
			s.log.Info("shadow update rejected", "thing", thing, "code", e.Code, "message", e.Message)
			s.publish(topic+"/rejected", e)
		}
	case "delete":
		s.deleteLocked(topic, thing, payload)
	}
}

func (s *Shadow) publish(topic string, v any) {
	payload, err := json.Marshal(v)
	if err != nil {
		s.log.Error("shadow: encode answer", "topic", topic, "error", err)
		return
	}
	s.out.add(topic, payload)
}

// tokenOnly reads the clientToken of a get or delete request, whose
// payload may be empty.
func (s *Shadow) tokenOnly(payload []byte) (string, *ShadowError) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return "", nil
	}
	var req struct {
		ClientToken string `json:"clientToken"`
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		return "", &ShadowError{Code: ShadowErrBadRequest, Message: "Invalid JSON"}
	}
	if len(req.ClientToken) > ShadowMaxClientToken {
		return "", &ShadowError{Code: ShadowErrBadRequest, Message: "clientToken must be at most 64 bytes"}
	}
	return req.ClientToken, nil
}

func (s *Shadow) rejectLocked(topic string, e *ShadowError, clientToken string) {
	e.Timestamp = s.now().Unix()
	e.ClientToken = clientToken
	s.publish(topic+"/rejected", e)
}

func (s *Shadow) getLocked(topic, thing string, payload []byte) {
	token, e := s.tokenOnly(payload)
	if e != nil {
		s.rejectLocked(topic, e, "")
		return
	}
	d := s.things[thing]
	if d == nil || !d.exists {
		s.rejectLocked(topic, &ShadowError{Code: ShadowErrNotFound, Message: fmt.Sprintf("No shadow exists with name: '%s'", thing)}, token)
		return
	}
	doc := s.documentLocked(d)
	body := map[string]any{"state": doc.State, "metadata": doc.Metadata, "version": doc.Version, "timestamp": doc.Timestamp}
	if token != "" {
		body["clientToken"] = token
	}
	s.publish(topic+"/accepted", body)
}

func (s *Shadow) deleteLocked(topic, thing string, payload []byte) {
	token, e := s.tokenOnly(payload)
	if e != nil {
		s.rejectLocked(topic, e, "")
		return
	}
	d := s.things[thing]
	if d == nil || !d.exists {
		s.rejectLocked(topic, &ShadowError{Code: ShadowErrNotFound, Message: fmt.Sprintf("No shadow exists with name: '%s'", thing)}, token)
		return
	}
	*d = shadowDoc{version: d.version}
	body := map[string]any{"version": d.version, "timestamp": s.now().Unix()}
	if token != "" {
		body["clientToken"] = token
	}
	s.publish(topic+"/accepted", body)
}

// shadowRequest is a decoded update request.
type shadowRequest struct {
	clientToken string
	version     *int64
	// desired and reported are the request's sections: absent (has*
	// false), null (nil map), or an object.
	hasDesired, hasReported bool
	desired, reported       map[string]any
}

// parseShadowUpdate checks an update request as AWS does (400s).
func parseShadowUpdate(payload []byte) (shadowRequest, *ShadowError) {
	bad := func(msg string) (shadowRequest, *ShadowError) {
		return shadowRequest{}, &ShadowError{Code: ShadowErrBadRequest, Message: msg}
	}
	var req shadowRequest
	if !utf8.Valid(payload) {
		return shadowRequest{}, &ShadowError{Code: ShadowErrUnsupported, Message: "Unsupported documented encoding"}
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil || top == nil || dec.More() {
		return bad("Invalid JSON")
	}
	if v, ok := top["clientToken"]; ok {
		t, isStr := v.(string)
		if !isStr {
			return bad("Invalid clientToken")
		}
		if len(t) > ShadowMaxClientToken {
			return bad("clientToken must be at most 64 bytes")
		}
		req.clientToken = t
	}
	if v, ok := top["version"]; ok {
		n, isNum := v.(json.Number)
		i, err := n.Int64()
		if !isNum || err != nil || i < 0 {
			return bad("Invalid version")
		}
		req.version = &i
	}
	stateV, ok := top["state"]
	if !ok {
		return bad("Missing required node: state")
	}
	state, ok := stateV.(map[string]any)
	if !ok {
		return bad("State node must be an object")
	}
	for k, v := range state {
		var sec map[string]any
		if v != nil {
			if sec, ok = v.(map[string]any); !ok {
				return bad(fmt.Sprintf("%s node must be an object", strings.ToUpper(k[:1])+k[1:]))
			}
			if msg := checkShadowNode(sec, 1); msg != "" {
				return bad(msg)
			}
		}
		switch k {
		case "desired":
			req.hasDesired, req.desired = true, sec
		case "reported":
			req.hasReported, req.reported = true, sec
		default:
			return bad(fmt.Sprintf("State contains an invalid node: '%s'", k))
		}
	}
	return req, nil
}

// checkShadowNode checks the nesting depth of a state section and that
// no array holds null.
func checkShadowNode(v any, depth int) string {
	switch x := v.(type) {
	case map[string]any:
		if depth > ShadowMaxDepth {
			return fmt.Sprintf("JSON contains too many levels of nesting; maximum is %d", ShadowMaxDepth)
		}
		for _, c := range x {
			if msg := checkShadowNode(c, depth+1); msg != "" {
				return msg
			}
		}
	case []any:
		if depth > ShadowMaxDepth {
			return fmt.Sprintf("JSON contains too many levels of nesting; maximum is %d", ShadowMaxDepth)
		}
		for _, c := range x {
			if c == nil {
				return "Arrays may not contain null values"
			}
			if msg := checkShadowNode(c, depth+1); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// updateLocked applies an update request; device is true for one that
// came over MQTT (answered on update/accepted), false for SetDesired. It
// returns the rejection, if any, with timestamp and clientToken set.
func (s *Shadow) updateLocked(thing string, payload []byte, device bool) *ShadowError {
	req, e := parseShadowUpdate(payload)
	now := s.now().Unix()
	if e != nil {
		e.Timestamp = now
		e.ClientToken = clientTokenOf(payload)
		return e
	}
	reject := func(code int, msg string) *ShadowError {
		return &ShadowError{Code: code, Message: msg, Timestamp: now, ClientToken: req.clientToken}
	}
	d := s.things[thing]
	if d == nil {
		d = &shadowDoc{}
		s.things[thing] = d
	}
	if req.version != nil && (!d.exists || *req.version != d.version) {
		return reject(ShadowErrConflict, shadowVersionConflict)
	}

	prev := *d
	prev.desired, prev.reported = jsonvalue.CloneMap(d.desired), jsonvalue.CloneMap(d.reported)
	prev.mdDesired, prev.mdReported = jsonvalue.CloneMap(d.mdDesired), jsonvalue.CloneMap(d.mdReported)

	next := prev
	next.desired, next.reported = jsonvalue.CloneMap(d.desired), jsonvalue.CloneMap(d.reported)
	next.mdDesired, next.mdReported = jsonvalue.CloneMap(d.mdDesired), jsonvalue.CloneMap(d.mdReported)
	md := map[string]any{}
	state := map[string]any{}
	if req.hasDesired {
		next.desired, next.mdDesired = mergeSection(next.desired, next.mdDesired, req.desired, now)
		md["desired"] = stampLeaves(req.desired, now)
		state["desired"] = nullable(req.desired)
	}
	if req.hasReported {
		next.reported, next.mdReported = mergeSection(next.reported, next.mdReported, req.reported, now)
		md["reported"] = stampLeaves(req.reported, now)
		state["reported"] = nullable(req.reported)
	}
	size, _ := json.Marshal(map[string]any{"desired": next.desired, "reported": next.reported})
	if len(size) > ShadowMaxStateBytes {
		return reject(ShadowErrTooLarge, "The payload exceeds the maximum size allowed")
	}
	next.exists = true
	next.version = d.version + 1
	*d = next

	topic := "$aws/things/" + thing + "/shadow/update"
	withToken := func(m map[string]any) map[string]any {
		m["timestamp"] = now
		if req.clientToken != "" {
			m["clientToken"] = req.clientToken
		}
		return m
	}
	if device {
		s.publish(topic+"/accepted", withToken(map[string]any{"state": state, "metadata": md, "version": d.version}))
	}
	docOf := func(x *shadowDoc) any {
		if !x.exists {
			return nil
		}
		return map[string]any{
			"state":    map[string]any{"desired": x.desired, "reported": x.reported},
			"metadata": map[string]any{"desired": x.mdDesired, "reported": x.mdReported},
			"version":  x.version,
		}
	}
	s.publish(topic+"/documents", withToken(map[string]any{"previous": docOf(&prev), "current": docOf(d)}))
	if req.hasDesired {
		if delta := shadowDelta(d.desired, d.reported); len(delta) > 0 {
			s.publish(topic+"/delta", withToken(map[string]any{
				"state": delta, "metadata": pickMetadata(d.mdDesired, delta), "version": d.version,
			}))
		}
	}
	return nil
}

// nullable keeps a null section null in an answer (a nil map would be
// encoded as null too, but say so).
func nullable(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// mergeSection merges patch into a state section and its metadata, as
// JSON merge patch does (null deletes, objects merge, anything else
// replaces, arrays whole); a null patch removes the section. A section
// left empty is removed.
func mergeSection(sec, md, patch map[string]any, now int64) (map[string]any, map[string]any) {
	if patch == nil {
		return nil, nil
	}
	if sec == nil {
		sec = map[string]any{}
	}
	if md == nil {
		md = map[string]any{}
	}
	mergeInto(sec, md, patch, now)
	if len(sec) == 0 {
		return nil, nil
	}
	return sec, md
}

func mergeInto(dst, md, patch map[string]any, now int64) {
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
			delete(md, k)
			continue
		}
		pv, isObj := v.(map[string]any)
		if !isObj {
			dst[k] = jsonvalue.Clone(v)
			md[k] = stampLeaves(v, now)
			continue
		}
		dv, ok := dst[k].(map[string]any)
		if !ok {
			dv = map[string]any{}
		}
		mv, ok := md[k].(map[string]any)
		if !ok || isStamp(mv) {
			mv = map[string]any{}
		}
		mergeInto(dv, mv, pv, now)
		if len(dv) == 0 {
			delete(dst, k)
			delete(md, k)
			continue
		}
		dst[k], md[k] = dv, mv
	}
}

// isStamp reports whether a metadata node is a leaf's {"timestamp": n}.
func isStamp(m map[string]any) bool {
	_, ok := m["timestamp"]
	return ok && len(m) == 1
}

// stampLeaves is the metadata of a value: objects mirrored, every other
// value (arrays and null included) a {"timestamp": now} leaf.
func stampLeaves(v any, now int64) any {
	if m, ok := v.(map[string]any); ok {
		out := make(map[string]any, len(m))
		for k, c := range m {
			out[k] = stampLeaves(c, now)
		}
		return out
	}
	return map[string]any{"timestamp": now}
}

// shadowDelta is desired's leaves that reported lacks or holds
// differently; nested objects are compared key by key, arrays whole. Nil
// when there is no difference.
func shadowDelta(desired, reported map[string]any) map[string]any {
	var out map[string]any
	for k, dv := range desired {
		rv, ok := reported[k]
		var diff any
		switch {
		case !ok:
			diff = jsonvalue.Clone(dv)
		default:
			dm, dIsObj := dv.(map[string]any)
			rm, rIsObj := rv.(map[string]any)
			if dIsObj && rIsObj {
				if sub := shadowDelta(dm, rm); sub != nil {
					diff = sub
				}
			} else if !jsonvalue.Equal(dv, rv) {
				diff = jsonvalue.Clone(dv)
			}
		}
		if diff != nil {
			if out == nil {
				out = map[string]any{}
			}
			out[k] = diff
		}
	}
	return out
}

// pickMetadata is the part of md that mirrors the keys of delta.
func pickMetadata(md, delta map[string]any) map[string]any {
	out := make(map[string]any, len(delta))
	for k, dv := range delta {
		mv := md[k]
		if dm, ok := dv.(map[string]any); ok {
			if mm, ok := mv.(map[string]any); ok && !isStamp(mm) {
				out[k] = pickMetadata(mm, dm)
				continue
			}
		}
		out[k] = jsonvalue.Clone(mv)
	}
	return out
}
