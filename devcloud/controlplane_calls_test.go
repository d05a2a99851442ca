package devcloud

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/cloudclient/api"
)

const testPolicy = `
ttl: {allow: 60s, deny: 10s}
roles:
  viewer: [app.read]
  developer: [app.read, app.reload]
  admin: ["*"]
groups:
  analysts: [bob]
spaces:
  sales:
    members:
      user:alice: developer
      group:analysts: viewer
      group:ops: admin
`

func newPolicyNode(t *testing.T, policy string) (*ControlPlane, *testNode, string) {
	t.Helper()
	opts := ControlPlaneOptions{}
	if policy != "" {
		p, err := ParsePolicy([]byte(policy))
		if err != nil {
			t.Fatal(err)
		}
		opts.Policy = p
	}
	cp := newTestControlPlane(t, opts)
	n := enrollNode(t, cp, nil)
	return cp, n, n.token()
}

func check(user string, groups []string, action, typ, id, space string) api.AuthorizeRequest {
	return api.AuthorizeRequest{
		User:     api.User{ID: user, Directory: "corp", Groups: groups},
		Action:   action,
		Resource: api.Resource{Type: typ, ID: id, Space: space},
	}
}

var authorizeCases = []struct {
	name string
	req  api.AuthorizeRequest
	want api.Decision
}{
	{"developer reloads", check("alice", nil, "app.reload", "app", "forecast", "sales"),
		api.Decision{Allow: true, Reason: "alice has role developer in space sales", TTLSeconds: 60}},
	{"static group member reads", check("bob", nil, "app.read", "app", "forecast", "sales"),
		api.Decision{Allow: true, Reason: "bob has role viewer in space sales through group analysts", TTLSeconds: 60}},
	{"static group member may not reload", check("bob", nil, "app.reload", "app", "forecast", "sales"),
		api.Decision{Reason: "no role grants app.reload to bob in space sales", TTLSeconds: 10}},
	{"group from the user's token", check("carol", []string{"ops"}, "space.manage", "space", "sales", ""),
		api.Decision{Allow: true, Reason: "carol has role admin in space sales through group ops", TTLSeconds: 60}},
	{"stranger", check("mallory", []string{"guests"}, "app.read", "app", "forecast", "sales"),
		api.Decision{Reason: "mallory has no role in space sales", TTLSeconds: 10}},
	{"unknown space", check("alice", nil, "app.read", "app", "x", "hr"),
		api.Decision{Reason: "no space hr in the policy", TTLSeconds: 10}},
	{"app without a space", check("alice", nil, "app.read", "app", "x", ""),
		api.Decision{Reason: "app x has no space", TTLSeconds: 10}},
}

func TestControlPlaneAuthorize(t *testing.T) {
	cp, n, tok := newPolicyNode(t, testPolicy)
	for _, tc := range authorizeCases {
		t.Run(tc.name, func(t *testing.T) {
			var got api.Decision
			n.mustDo(cpReq{method: "POST", path: api.PathAuthorize, bearer: tok, body: tc.req}, http.StatusOK, &got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("bad check", func(t *testing.T) {
		var e api.Error
		n.mustDo(cpReq{method: "POST", path: api.PathAuthorize, bearer: tok, invalid: "resource type",
			body: check("alice", nil, "app.read", "table", "x", "sales")}, http.StatusBadRequest, &e)
		if e.Code != api.CodeBadRequest || !strings.Contains(e.Message, "resource.type") {
			t.Errorf("got %+v", e)
		}
	})
	if st := cp.Stats(); st.AuthorizeCalls != int64(len(authorizeCases))+1 || st.Allowed != 3 || st.Denied != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestControlPlaneAuthorizeNoPolicy(t *testing.T) {
	_, n, tok := newPolicyNode(t, "")
	var got api.Decision
	n.mustDo(cpReq{method: "POST", path: api.PathAuthorize, bearer: tok, body: authorizeCases[0].req}, http.StatusOK, &got)
	if diff := cmp.Diff(api.Decision{Reason: "no policy"}, got); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
}

func TestControlPlaneAuthorizeBatch(t *testing.T) {
	cp, n, tok := newPolicyNode(t, testPolicy)
	var req api.BatchAuthorizeRequest
	var want []api.Decision
	for i := range 3 { // order kept, duplicates answered each time
		for _, tc := range authorizeCases {
			if i == 1 {
				continue // leave a gap so that the order is not just the table twice
			}
			req.Checks = append(req.Checks, tc.req)
			want = append(want, tc.want)
		}
		req.Checks = append(req.Checks, authorizeCases[2].req)
		want = append(want, authorizeCases[2].want)
	}
	var got api.BatchAuthorizeResponse
	n.mustDo(cpReq{method: "POST", path: api.PathAuthorizeBatch, bearer: tok, body: req}, http.StatusOK, &got)
	if diff := cmp.Diff(want, got.Decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		n    int
		msg  string
	}{
		{"none", 0, "no checks"},
		{"101", 101, "101 checks, more than 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checks := make([]api.AuthorizeRequest, tc.n)
			for i := range checks {
				checks[i] = authorizeCases[0].req
			}
			var e api.Error
			n.mustDo(cpReq{method: "POST", path: api.PathAuthorizeBatch, bearer: tok, invalid: tc.msg,
				body: api.BatchAuthorizeRequest{Checks: checks}}, http.StatusBadRequest, &e)
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q, want %q", e.Message, tc.msg)
			}
		})
	}
	t.Run("100", func(t *testing.T) {
		checks := make([]api.AuthorizeRequest, 100)
		for i := range checks {
			checks[i] = authorizeCases[i%len(authorizeCases)].req
		}
		var got api.BatchAuthorizeResponse
		n.mustDo(cpReq{method: "POST", path: api.PathAuthorizeBatch, bearer: tok, body: api.BatchAuthorizeRequest{Checks: checks}}, http.StatusOK, &got)
		if len(got.Decisions) != 100 || got.Decisions[99] != authorizeCases[99%len(authorizeCases)].want {
			t.Errorf("got %d decisions, the last %+v", len(got.Decisions), got.Decisions[len(got.Decisions)-1])
		}
	})
	if st := cp.Stats(); st.BatchCalls != 4 || st.Checks != int64(len(req.Checks))+100 {
		t.Errorf("stats %+v", st)
	}
}

func TestControlPlaneIoTCredentials(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{CredentialsLifetime: 30 * time.Minute})
	n := enrollNode(t, cp, nil)
	tok := n.token()
	before := time.Now()
	var got api.IoTCredentials
	resp := n.mustDo(cpReq{method: "GET", path: api.DevicePath(api.PathIoTCredentials, n.id), bearer: tok}, http.StatusOK, &got)
	if !regexp.MustCompile(`^ASIA[A-Z0-9]{16}$`).MatchString(got.AccessKeyID) || got.SecretAccessKey == "" || got.SessionToken == "" {
		t.Errorf("credentials %+v", got)
	}
	if exp := before.Add(30 * time.Minute); got.Expiration.Before(exp.Add(-2*time.Second)) || got.Expiration.After(exp.Add(time.Minute)) {
		t.Errorf("expiration %v, want about %v", got.Expiration, exp)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	found, dev, ok := cp.LookupIoTCredentials(got.AccessKeyID)
	if !ok || dev != n.id || !found.Expiration.Equal(got.Expiration) || found.SecretAccessKey != got.SecretAccessKey || found.SessionToken != got.SessionToken {
		t.Errorf("LookupIoTCredentials = %+v, %q, %v", found, dev, ok)
	}
	if _, _, ok := cp.LookupIoTCredentials("ASIANOTISSUED000000"); ok {
		t.Error("LookupIoTCredentials found credentials never issued")
	}
	var again api.IoTCredentials
	n.mustDo(cpReq{method: "GET", path: api.DevicePath(api.PathIoTCredentials, n.id), bearer: tok}, http.StatusOK, &again)
	if again.AccessKeyID == got.AccessKeyID {
		t.Error("two calls returned the same access key")
	}
}

func report(key, stream string, at time.Time) api.Report {
	return api.Report{IdempotencyKey: key, Stream: stream, Type: "test.event", Time: at, Body: json.RawMessage(`{"n":1}`)}
}

func TestControlPlaneReports(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{})
	n := enrollNode(t, cp, nil)
	tok := n.token()
	path := api.DevicePath(api.PathReports, n.id)
	at := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)

	send := func(reports []api.Report, invalid string) api.ReportsResponse {
		t.Helper()
		var got api.ReportsResponse
		n.mustDo(cpReq{method: "POST", path: path, bearer: tok, invalid: invalid, body: api.ReportsRequest{Reports: reports}}, http.StatusOK, &got)
		return got
	}
	got := send([]api.Report{report("k1", "a", at), report("k2", "b", at), report("k1", "a", at)}, "")
	if diff := cmp.Diff(api.ReportsResponse{Acknowledged: []string{"k1", "k2"}}, got); diff != "" {
		t.Errorf("first batch (-want +got):\n%s", diff)
	}
	// A redelivery of k2 and k3, with an invalid report between them.
	noStream := report("k4", "", at)
	got = send([]api.Report{report("k2", "b", at), noStream, report("k3", "a", at)}, "a report without a stream")
	want := api.ReportsResponse{Acknowledged: []string{"k2", "k3"}, Rejected: []api.Rejection{{IdempotencyKey: "k4", Reason: "stream missing"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second batch (-want +got):\n%s", diff)
	}

	var keys []string
	for _, r := range cp.Reports(n.id) {
		keys = append(keys, r.IdempotencyKey)
	}
	if diff := cmp.Diff([]string{"k1", "k2", "k3"}, keys); diff != "" {
		t.Errorf("recorded keys (-want +got):\n%s", diff)
	}
	for key, want := range map[string]int{"k1": 2, "k2": 2, "k3": 1, "k4": 0, "nope": 0} {
		if got := cp.Deliveries(n.id, key); got != want {
			t.Errorf("Deliveries(%s) = %d, want %d", key, got, want)
		}
	}
	if st := cp.Stats(); st.ReportsDelivered != 5 || st.ReportsRecorded != 3 || st.ReportsRejected != 1 {
		t.Errorf("stats %+v", st)
	}

	for _, tc := range []struct {
		name   string
		n      int
		status int
		msg    string
	}{
		{"none", 0, 400, "no reports"},
		{"501", 501, 400, "501 reports, more than 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reports := make([]api.Report, tc.n)
			for i := range reports {
				reports[i] = report(fmt.Sprintf("big-%d", i), "a", at)
			}
			var e api.Error
			n.mustDo(cpReq{method: "POST", path: path, bearer: tok, invalid: tc.msg, body: api.ReportsRequest{Reports: reports}}, tc.status, &e)
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q, want %q", e.Message, tc.msg)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		big := report("huge", "a", at)
		big.Body = json.RawMessage(`"` + strings.Repeat("x", cpMaxBody) + `"`)
		var e api.Error
		n.mustDo(cpReq{method: "POST", path: path, bearer: tok, body: api.ReportsRequest{Reports: []api.Report{big}}}, http.StatusRequestEntityTooLarge, &e)
		if e.Code != api.CodeTooLarge {
			t.Errorf("got %+v", e)
		}
	})
	if cp.Deliveries(n.id, "big-0") != 0 {
		t.Error("a refused batch was recorded")
	}
}
