package devstack

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDevEngineAppliesKeyOnce: the dev engine answers every webhook but
// applies each Idempotency-Key once, as the README asks of a real target;
// a second delivery of one key is logged as a duplicate.
func TestDevEngineAppliesKeyOnce(t *testing.T) {
	dir := t.TempDir()
	e, err := startEngine(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, key := range []string{"ev-1", "ev-1", "ev-2"} {
		req, _ := http.NewRequest(http.MethodPost, e.URL()+"/reload", strings.NewReader(`{"idempotency_key":"`+key+`"}`))
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("POST %s: %s", key, resp.Status)
		}
	}
	f, err := os.Open(filepath.Join(dir, EngineDir, EngineLog))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type line struct {
		EventID   string `json:"event_id"`
		Duplicate bool   `json:"duplicate"`
	}
	var got []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		got = append(got, l)
	}
	want := []line{{"ev-1", false}, {"ev-1", true}, {"ev-2", false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("engine log (-want +got):\n%s", diff)
	}
}
