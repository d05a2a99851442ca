package devcloud

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// faultsCall is one management call: its status and body (the message
// alone of a Mender JSON error).
type faultsCall func(method, path, token, body string) (int, string)

func faultsCaller(t *testing.T, hc *http.Client, base string) faultsCall {
	return func(method, path, token, body string) (int, string) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+"/api/management/dev/"+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e struct{ Error string }
		if resp.StatusCode/100 != 2 && json.Unmarshal(b, &e) == nil && e.Error != "" {
			return resp.StatusCode, e.Error
		}
		return resp.StatusCode, string(b)
	}
}

// badFaults are PUT bodies both servers refuse, with what the error says.
var badFaults = []struct {
	name, body, want string
}{
	{"not JSON", `ConnectRate=1`, "invalid character"},
	{"unknown field", `{"ConectRate": 1}`, `unknown field "ConectRate"`},
	{"trailing data", `{} {}`, "trailing data"},
	{"too large", `{"x": "` + strings.Repeat("a", maxFaultsBody) + `"}`, "exceeds 4096 bytes"},
}

func TestBrokerFaultsAPI(t *testing.T) {
	b := startManagedBroker(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.ServerCA()}}}
	call := faultsCaller(t, hc, "https://"+b.Host())

	for _, path := range []string{"faults", "stats"} {
		if code, _ := call("GET", path, "wrong", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token = %d, want 401", path, code)
		}
	}
	if code, _ := call("PUT", "faults", "", `{"RefuseConnections": true}`); code != http.StatusUnauthorized || b.Faults().RefuseConnections {
		t.Errorf("PUT without a token = %d (faults %+v), want 401 and nothing set", code, b.Faults())
	}

	refused := append(badFaults[:len(badFaults):len(badFaults)], []struct{ name, body, want string }{
		{"negative rate", `{"ConnectRate": -1}`, "ConnectRate -1: want a finite number"},
		{"negative burst", `{"ConnectRate": 1, "ConnectBurst": -2}`, "ConnectBurst -2"},
		{"spent without a rate", `{"ConnectSpent": true}`, "ConnectSpent needs a ConnectRate"},
		{"burst without a rate", `{"ConnectBurst": 3}`, "ConnectBurst needs a ConnectRate"},
		{"wrong type", `{"RefuseConnections": "yes"}`, "cannot unmarshal string"},
	}...)
	b.SetFaults(BrokerFaults{ClientIDThrottle: true})
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call("PUT", "faults", "s3cret", tt.body)
			if code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
				t.Errorf("PUT %s = %d %q, want 400 and %q", tt.name, code, body, tt.want)
			}
			if got := b.Faults(); got != (BrokerFaults{ClientIDThrottle: true}) {
				t.Errorf("after a refused PUT the faults are %+v, want them unchanged", got)
			}
		})
	}

	code, body := call("PUT", "faults", "s3cret", `{"ConnectRate": 0.5, "ConnectSpent": true, "DropConnections": true}`)
	want := BrokerFaults{ConnectRate: 0.5, ConnectSpent: true}
	var got BrokerFaults
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got != want {
		t.Errorf("PUT = %d %s, want 200 and %+v (the drop acted once, the rest replaced ClientIDThrottle)", code, body, want)
	}
	if code, body := call("GET", "faults", "s3cret", ""); code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got != want {
		t.Errorf("GET = %d %s, want %+v", code, body, want)
	}
	code, body = call("GET", "stats", "s3cret", "")
	var st struct {
		Upgrades, Connects int64
		Refused            map[BrokerRefusal]int64
		Connections        int
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Connects != 0 || st.Connections != 0 {
		t.Errorf("GET stats = %d %s, want 200 and no connects", code, body)
	}
}

// TestBrokerSetFaultsKeepsTheBucket: setting the same quota again (with a
// drop, or another knob) keeps its bucket, so that a drop does not give
// the throttled fleet a fresh burst; another quota starts over.
func TestBrokerSetFaultsKeepsTheBucket(t *testing.T) {
	b := startManagedBroker(t)
	q := BrokerFaults{ConnectRate: 1e-9, ConnectBurst: 1}
	b.SetFaults(q)
	if r := b.throttle.Load().Admit("a", time.Now()); r != "" {
		t.Fatalf("first CONNECT refused: %s", r)
	}
	again := q
	again.DropConnections, again.RefuseConnections = true, true
	b.SetFaults(again)
	if r := b.throttle.Load().Admit("b", time.Now()); r != RefusedThrottled {
		t.Errorf("after the same quota again: %q, want %q (the burst was spent)", r, RefusedThrottled)
	}
	b.SetFaults(BrokerFaults{ConnectRate: 1e-9, ConnectBurst: 2})
	if r := b.throttle.Load().Admit("c", time.Now()); r != "" {
		t.Errorf("after a new quota: %q, want admitted (a full bucket)", r)
	}
	b.SetFaults(BrokerFaults{})
	if b.throttle.Load() != nil {
		t.Error("no quota left a throttle")
	}
}

func TestMenderFaultsAPI(t *testing.T) {
	s := newTestMender(t, MenderOptions{ManagementToken: "secret"})
	d := acceptedDevice(t, s)
	call := faultsCaller(t, d.client, s.URL())
	next := func() *http.Response {
		t.Helper()
		resp, _ := d.do("GET", nextV1+"?artifact_name=a&device_type=t", nil)
		return resp
	}

	if code, _ := call("PUT", "faults", "wrong", `{"TooMany": "next"}`); code != http.StatusUnauthorized || s.Faults() != (MenderFaults{}) {
		t.Errorf("PUT with a wrong token = %d (faults %+v), want 401 and nothing set", code, s.Faults())
	}
	refused := append(badFaults[:len(badFaults):len(badFaults)], []struct{ name, body, want string }{
		{"unknown endpoint", `{"TooMany": "nxt"}`, `TooMany "nxt": not an endpoint`},
		{"bad duration", `{"TooMany": "next", "RetryAfter": "soon"}`, `RetryAfter: time: invalid duration`},
		{"negative duration", `{"TooMany": "next", "RetryAfter": "-1s"}`, "RetryAfter -1s: want 0 or more"},
		{"negative cut", `{"CutAfter": -5}`, "CutAfter -5"},
	}...)
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call("PUT", "faults", "secret", tt.body)
			if code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
				t.Errorf("PUT %s = %d %q, want 400 and %q", tt.name, code, body, tt.want)
			}
			if s.Faults() != (MenderFaults{}) {
				t.Errorf("after a refused PUT the faults are %+v", s.Faults())
			}
		})
	}

	// 429 until the faults change: every request answered, and counted.
	code, body := call("PUT", "faults", "secret", `{"TooMany": "next", "TooManyCount": -1, "RetryAfter": "30s"}`)
	if code != http.StatusOK || !strings.Contains(body, `"RetryAfter":"30s"`) || !strings.Contains(body, `"TooManyCount":-1`) {
		t.Fatalf("PUT = %d %s", code, body)
	}
	for i := range 3 {
		if resp := next(); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" {
			t.Errorf("request %d: %d Retry-After %q, want 429 and 30", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	code, body = call("GET", "faults", "secret", "")
	var f MenderFaults
	if code != http.StatusOK || json.Unmarshal([]byte(body), &f) != nil || f != (MenderFaults{TooMany: EndpointNext, TooManyCount: -1, RetryAfter: 30 * time.Second}) {
		t.Errorf("GET faults = %d %s, want the 429 still on", code, body)
	}
	if code, _ := call("PUT", "faults", "secret", `{}`); code != http.StatusOK {
		t.Fatalf("clear = %d", code)
	}
	if resp := next(); resp.StatusCode != http.StatusNoContent {
		t.Errorf("after the clear: %d, want 204", resp.StatusCode)
	}
	code, body = call("GET", "stats", "secret", "")
	var st MenderStats
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET stats = %d %s", code, body)
	}
	if diff := cmp.Diff(MenderStats{Requests: map[Endpoint]int64{EndpointAuth: 1, EndpointNext: 4}, TooMany: 3}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}
