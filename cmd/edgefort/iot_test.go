package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/iot"
)

// TestEventLink runs the agent with the event link to devcloud's
// SigV4-checking broker (credentials vended by devcloud's control plane):
// a cloud "webhook" event reaches a local HTTP target once although it is
// delivered twice, and its result reaches the control plane's reports sink;
// a keystore.repoint event repoints a reference; an unknown type is
// rejected and reported; AWS IoT Jobs run their documents through the same
// handlers (SUCCEEDED, and REJECTED for an unknown operation); the device
// shadow carries the reported state and applies a desired log level.
func TestEventLink(t *testing.T) {
	r := newCloudRig(t)
	if code, out, errOut := edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token", r.cp.NewEnrollmentToken(), "--ca-file", r.caFile); code != 0 {
		t.Fatalf("enroll: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	dev := r.cp.Devices()[0].ID
	broker, err := devcloud.NewBroker(devcloud.BrokerOptions{CA: r.ca, Lookup: devcloud.ControlPlaneLookup(r.cp)})
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	jobsSvc := devcloud.NewJobs(broker, nil)
	defer jobsSvc.Close()
	shadowSvc := devcloud.NewShadow(broker, nil)
	defer shadowSvc.Close()

	var (
		mu    sync.Mutex
		posts []*http.Request
		seen  []string
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		posts = append(posts, req)
		seen = append(seen, string(b))
		mu.Unlock()
		fmt.Fprint(w, `{"reloaded":true}`)
	}))
	defer target.Close()

	// The configuration, now that the thing name (the device ID) is known.
	if err := os.WriteFile(r.cfgPath, []byte(fmt.Sprintf(`version: 1
state_dir: %s
admin: {socket: %s}
metrics: {enabled: false}
cloud:
  enabled: true
iot:
  enabled: true
  endpoint: %s
  region: %s
  thing_name: %s
  webhook_target: engine
  ssl:
    truststore: ref://cloud-trust
clients:
  target_endpoints:
    - name: engine
      url: %s/reload
`, r.state, r.socket, broker.Host(), broker.Region(), dev, target.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("agent log:\n%s", b)
		}
	})
	p := startProc(t, "", log, "run", "--config", r.cfgPath)
	waitSocketReady(t, r.socket, p)
	// Connected in the agent's status means subscribed: an event
	// published between the CONNECT and the SUBSCRIBE of a first session
	// matches no subscription and is dropped, as AWS drops it.
	admin := adminclient.New(r.socket)
	waitUntil(t, "the link connects and subscribes", func() bool {
		st, err := admin.Status(t.Context())
		return err == nil && st.IoT != nil && st.IoT.State == string(iot.StateConnected) && broker.Connections() == 1
	})

	topic := "edgefort/" + dev + "/events"
	publish := func(ev string) {
		t.Helper()
		if err := broker.Publish(topic, []byte(ev), 1); err != nil {
			t.Fatal(err)
		}
	}
	webhook := `{"id":"ev-1","type":"webhook","time":"2026-11-23T18:00:00Z","body":{"app":"q3-report"}}`
	publish(webhook)
	publish(webhook) // a redelivery: handled once
	publish(`{"id":"ev-2","type":"keystore.repoint","time":"2026-11-23T18:00:01Z","body":{"ref":"spare-trust","store":"cloud-ca-` + dev + `"}}`)
	publish(`{"id":"ev-3","type":"launch.rocket","time":"2026-11-23T18:00:02Z","body":{}}`)

	results := func() map[string]string { // event id -> result status, from the sink
		out := map[string]string{}
		for _, rep := range r.cp.Reports(dev) {
			if rep.Type != "event.result" {
				continue
			}
			var b struct {
				EventID string `json:"event_id"`
				Result  struct {
					Status string `json:"status"`
				} `json:"result"`
			}
			if json.Unmarshal(rep.Body, &b) == nil {
				out[b.EventID] = b.Result.Status
			}
		}
		return out
	}
	waitUntil(t, "three results in the sink", func() bool { return len(results()) >= 3 })
	if got := results(); got["ev-1"] != "done" || got["ev-2"] != "done" || got["ev-3"] != "rejected" {
		t.Errorf("results = %v", got)
	}
	mu.Lock()
	if len(posts) != 1 || seen[0] != `{"idempotency_key":"ev-1","app":"q3-report"}` || posts[0].Header.Get("Idempotency-Key") != "ev-1" || posts[0].Method != http.MethodPost {
		t.Errorf("target got %d requests (%q)", len(posts), seen)
	}
	mu.Unlock()
	// AWS IoT Jobs: documents run through the same handlers.
	if err := jobsSvc.Create(dev, "job-1", []byte(`{"operation":"webhook","app":"q4-report"}`)); err != nil {
		t.Fatal(err)
	}
	if err := jobsSvc.Create(dev, "job-2", []byte(`{"operation":"self.destruct"}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both jobs end", func() bool {
		e1, ok1 := jobsSvc.Execution(dev, "job-1")
		e2, ok2 := jobsSvc.Execution(dev, "job-2")
		return ok1 && ok2 && e1.Status == "SUCCEEDED" && e2.Status == "REJECTED"
	})
	mu.Lock()
	jobPosts := 0
	for _, p := range posts {
		if p.Header.Get("Idempotency-Key") == "job-job-1-1" {
			jobPosts++
		}
	}
	mu.Unlock()
	if jobPosts != 1 {
		t.Errorf("the job's webhook reached the target %d times, want 1", jobPosts)
	}

	// The device shadow: reported state, and a setting driven by the cloud.
	waitUntil(t, "the shadow has the reported state", func() bool {
		doc, ok := shadowSvc.Document(dev)
		return ok && doc.State.Reported["agent_version"] != nil && doc.State.Reported["links"] != nil
	})
	if err := shadowSvc.SetDesired(dev, []byte(`{"log_level":"debug"}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "log_level applied and reported", func() bool {
		doc, _ := shadowSvc.Document(dev)
		return doc.State.Reported["log_level"] == "debug" && len(doc.State.Delta) == 0
	})

	code, out, _ := edgefort(t, "ref", "list", "--config", r.cfgPath)
	if code != 0 || !strings.Contains(out, "ref://spare-trust") {
		t.Errorf("ref list after keystore.repoint:\n%s", out)
	}
	code, out, _ = edgefort(t, "status", "--json", "--config", r.cfgPath)
	if code != 0 || !strings.Contains(out, `"iot"`) {
		t.Errorf("status lacks the link: exit %d\n%s", code, out)
	}
	if err := p.sig(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(15 * time.Second); err != nil {
		t.Errorf("agent: %v", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
