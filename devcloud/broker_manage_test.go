package devcloud

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBrokerManagementPublish(t *testing.T) {
	b := startManagedBroker(t)
	got := make(chan string, 1)
	cancel := b.Subscribe("edgefort/t1/events", func(_ string, payload []byte) { got <- string(payload) })
	defer cancel()

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.ServerCA()}}}
	url := "https://" + b.Host() + "/api/management/dev/publish"
	post := func(token, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := `{"topic":"edgefort/t1/events","payload":{"id":"e1","type":"update.check"},"qos":1}`
	if code := post("", body); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code := post("s3cret", `{"qos":1}`); code != http.StatusBadRequest {
		t.Errorf("no topic: %d, want 400", code)
	}
	if code := post("s3cret", body); code != http.StatusNoContent {
		t.Fatalf("publish: %d, want 204", code)
	}
	select {
	case p := <-got:
		if !bytes.Equal([]byte(p), []byte(`{"id":"e1","type":"update.check"}`)) {
			t.Errorf("payload %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the published message never arrived")
	}
}

// startManagedBroker starts a broker whose management API takes the token
// "s3cret" and which knows no access keys (no device can connect): the
// management tests need only the API.
func startManagedBroker(t *testing.T) *Broker {
	t.Helper()
	ca, err := NewCA("broker manage CA")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBroker(BrokerOptions{CA: ca, ManagementToken: "s3cret",
		Lookup: func(string) (string, string, string, bool) { return "", "", "", false }})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
