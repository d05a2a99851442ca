package devcloud

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"testing"
)

func TestControlPlaneManagementReports(t *testing.T) {
	ca, err := NewCA("manage test CA")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := NewControlPlane(ControlPlaneOptions{CA: ca, ManagementToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cp.ServerCA()}}}
	get := func(token string) (*http.Response, ManagedReports) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, cp.URL()+"/api/management/dev/devices/dev-x/reports", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var mr ManagedReports
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&mr); err != nil {
				t.Fatal(err)
			}
		}
		return resp, mr
	}
	for _, tok := range []string{"", "wrong"} {
		if resp, _ := get(tok); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: status %d, want 401", tok, resp.StatusCode)
		}
	}
	resp, mr := get("s3cret")
	if resp.StatusCode != http.StatusOK || mr.Reports == nil || len(mr.Reports) != 0 {
		t.Errorf("status %d, reports %#v; want 200 and an empty list", resp.StatusCode, mr.Reports)
	}
}
