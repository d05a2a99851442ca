package events

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/testkit"
)

// webhookTarget is a local HTTP target that answers with the statuses
// queued in answers (200 once they run out) and records each request.
type webhookTarget struct {
	mu       sync.Mutex // guards answers and requests
	answers  []int
	requests []targetRequest
	respBody string
}

type targetRequest struct {
	Method, ContentType, IdempotencyKey, Event, Body string
}

func newWebhookTarget(t *testing.T, respBody string, answers ...int) (*webhookTarget, *httptest.Server) {
	wt := &webhookTarget{answers: answers, respBody: respBody}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wt.mu.Lock()
		wt.requests = append(wt.requests, targetRequest{
			Method: r.Method, ContentType: r.Header.Get("Content-Type"),
			IdempotencyKey: r.Header.Get("Idempotency-Key"), Event: r.Header.Get("X-Edgefort-Event"),
			Body: string(body),
		})
		code := http.StatusOK
		if len(wt.answers) > 0 {
			code, wt.answers = wt.answers[0], wt.answers[1:]
		}
		wt.mu.Unlock()
		w.WriteHeader(code)
		io.WriteString(w, wt.respBody)
	}))
	t.Cleanup(srv.Close)
	return wt, srv
}

func (wt *webhookTarget) got() []targetRequest {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return append([]targetRequest(nil), wt.requests...)
}

func TestWebhook(t *testing.T) {
	tests := []struct {
		name       string
		answers    []int // per delivery
		respBody   string
		deliveries int
		wantErrs   int // deliveries that return an error
		want       Result
	}{
		{"200", []int{200}, `{"reloaded":"app-x"}`, 1, 0,
			Result{Status: StatusDone, Detail: "200 OK", Body: json.RawMessage(`{"reloaded":"app-x"}`)}},
		{"202 text body", []int{202}, "queued", 1, 0,
			Result{Status: StatusDone, Detail: "202 Accepted", Body: json.RawMessage(`"queued"`)}},
		{"404", []int{404}, "no such app", 1, 0,
			Result{Status: StatusFailed, Detail: "webhook: target answered 404 Not Found", Body: json.RawMessage(`"no such app"`)}},
		{"500 then 200", []int{500, 200}, `{"ok":1}`, 2, 1,
			Result{Status: StatusDone, Detail: "200 OK", Body: json.RawMessage(`{"ok":1}`)}},
		{"429 then 503 then 200", []int{429, 503, 200}, `{}`, 3, 2,
			Result{Status: StatusDone, Detail: "200 OK", Body: json.RawMessage(`{}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wt, srv := newWebhookTarget(t, tt.respBody, tt.answers...)
			db := testkit.OpenStore(t, t.TempDir())
			rep := newFakeReporter()
			d, _ := newTestDispatcher(t, db, rep, nil)
			if err := d.Register(TypeWebhook, Webhook(srv.Client(), srv.URL+"/reload")); err != nil {
				t.Fatal(err)
			}
			p := payload(t, "wh-1", TypeWebhook, `{"app":"x"}`)
			errs := 0
			for range tt.deliveries + 1 { // one more: a duplicate
				if err := d.Handle(t.Context(), testTopic, p); err != nil {
					errs++
				}
			}
			if errs != tt.wantErrs {
				t.Errorf("%d deliveries failed; want %d", errs, tt.wantErrs)
			}
			if diff := cmp.Diff([]Result{tt.want}, rep.get("wh-1")); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
			req := targetRequest{Method: "POST", ContentType: "application/json", IdempotencyKey: "wh-1", Event: TypeWebhook, Body: `{"idempotency_key":"wh-1","app":"x"}`}
			want := make([]targetRequest, tt.deliveries)
			for i := range want {
				want[i] = req
			}
			if diff := cmp.Diff(want, wt.got()); diff != "" {
				t.Errorf("target requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWebhookCarriesKey: every POST carries the event id as Idempotency-Key
// and as body member idempotency_key, the event's own members unchanged
// (order, spacing, numbers); a body that cannot carry the key is failed
// without a request.
func TestWebhookCarriesKey(t *testing.T) {
	tests := []struct {
		name     string
		id, body string
		wantBody string // "" when no request is made
		wantFail string // in the failed result's detail
	}{
		{"object", "ev-1", `{"app":"q3-report","action":"reload"}`, `{"idempotency_key":"ev-1","app":"q3-report","action":"reload"}`, ""},
		{"object kept byte for byte", "ev-2", ` { "n": 1.50e3 , "z": {"a":[1,2]} } `, `{"idempotency_key":"ev-2","n": 1.50e3 , "z": {"a":[1,2]}}`, ""},
		{"empty object", "ev-3", `{ }`, `{"idempotency_key":"ev-3"}`, ""},
		{"no body", "ev-4", ``, `{"idempotency_key":"ev-4"}`, ""},
		{"id escaped", `ev-"5"`, `{"a":1}`, `{"idempotency_key":"ev-\"5\"","a":1}`, ""},
		{"array", "ev-6", `[1,2]`, "", "body must be a JSON object, to carry idempotency_key; it is an array"},
		{"string", "ev-7", `"reload"`, "", "it is a string"},
		{"member taken", "ev-8", `{"idempotency_key":"mine","a":1}`, "", `body.idempotency_key is reserved for the event id; the body has "mine"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wt, srv := newWebhookTarget(t, `{}`)
			res, err := Webhook(srv.Client(), srv.URL)(t.Context(), Event{ID: tt.id, Type: TypeWebhook, Body: json.RawMessage(tt.body)})
			if err != nil {
				t.Fatalf("error %v; want a result", err)
			}
			got := wt.got()
			if tt.wantFail != "" {
				if res.Status != StatusFailed || !strings.Contains(res.Detail, tt.wantFail) {
					t.Errorf("result %+v; want failed with %q", res, tt.wantFail)
				}
				if len(got) != 0 {
					t.Errorf("target got %d requests; want none", len(got))
				}
				return
			}
			want := []targetRequest{{Method: "POST", ContentType: "application/json", IdempotencyKey: tt.id, Event: TypeWebhook, Body: tt.wantBody}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("target requests (-want +got):\n%s", diff)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got[0].Body), &m); err != nil || m["idempotency_key"] != tt.id {
				t.Errorf("body %s: idempotency_key %v (%v); want %q", got[0].Body, m["idempotency_key"], err, tt.id)
			}
		})
	}
}

func TestWebhookLargeResponse(t *testing.T) {
	_, srv := newWebhookTarget(t, strings.Repeat("a", MaxWebhookResponse+10))
	res, err := Webhook(nil, srv.URL)(t.Context(), Event{ID: "big", Type: TypeWebhook})
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(res.Body, &s); err != nil {
		t.Fatalf("body is not a JSON string: %v", err)
	}
	if len(s) != MaxWebhookResponse || !strings.Contains(res.Detail, "cut") {
		t.Errorf("kept %d bytes, detail %q; want %d and a note", len(s), res.Detail, MaxWebhookResponse)
	}
}

func TestWebhookConnectionError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	_, err := Webhook(nil, url)(t.Context(), Event{ID: "down", Type: TypeWebhook})
	if err == nil || errors.As(err, new(*permanentError)) {
		t.Errorf("error = %v; want a retryable one", err)
	}
}

func TestWebhookBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080/x", "ftp://host/x", "http://[::1"} {
		res, err := Webhook(nil, u)(t.Context(), Event{ID: "x", Type: TypeWebhook})
		if err != nil || res.Status != StatusFailed {
			t.Errorf("Webhook(%q) = %+v, %v; want failed result", u, res, err)
		}
	}
}

func TestKeystoreRepoint(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		setErr  error
		want    Result
		wantSet string
	}{
		{"ok", `{"ref":"edge","store":"edge-2027"}`, nil,
			Result{Status: StatusDone, Body: json.RawMessage(`{"ref":"edge","store":"edge-2027"}`)}, "edge=edge-2027"},
		{"no body", ``, nil, Result{Status: StatusFailed, Detail: "keystore.repoint: body: EOF"}, ""},
		{"missing fields", `{}`, nil,
			Result{Status: StatusFailed, Detail: "keystore.repoint: body.ref: required\nbody.store: required"}, ""},
		{"unknown field", `{"ref":"a","store":"b","force":true}`, nil,
			Result{Status: StatusFailed, Detail: `keystore.repoint: body: json: unknown field "force"`}, ""},
		{"set refuses", `{"ref":"edge","store":"nope"}`, errors.New(`unknown keystore "nope"`),
			Result{Status: StatusFailed, Detail: `keystore.repoint edge to nope: unknown keystore "nope"`}, "edge=nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var set string
			h := KeystoreRepoint(func(ref, store string) error {
				set = ref + "=" + store
				return tt.setErr
			})
			res, err := h(t.Context(), Event{ID: "k", Type: TypeKeystoreRepoint, Body: json.RawMessage(tt.body)})
			if err != nil {
				t.Fatalf("error %v; want a result", err)
			}
			if diff := cmp.Diff(tt.want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if set != tt.wantSet {
				t.Errorf("set %q; want %q", set, tt.wantSet)
			}
		})
	}
}

func TestUpdateCheckThroughDispatcher(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	rep := newFakeReporter()
	d, _ := newTestDispatcher(t, db, rep, nil)
	var checks atomic.Int32
	if err := d.Register(TypeUpdateCheck, UpdateCheck(func() { checks.Add(1) })); err != nil {
		t.Fatal(err)
	}
	p := payload(t, "u1", TypeUpdateCheck, "")
	mustHandle(t, d, p)
	mustHandle(t, d, p)
	if got := checks.Load(); got != 1 {
		t.Errorf("check called %d times; want 1", got)
	}
	if diff := cmp.Diff([]Result{{Status: StatusDone}}, rep.get("u1")); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}
