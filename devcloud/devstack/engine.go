package devstack

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The engine stand-in's request log, under the state directory.
const (
	EngineDir = "dev-engine"
	EngineLog = "requests.jsonl"
)

// engine stands in for the local engine: it answers every POST with
// {"reloaded": true} and appends the request to
// <state>/dev-engine/requests.jsonl, where the demo (and a developer) can
// see that a cloud event reached it. As a real target should, it applies
// each Idempotency-Key once: a webhook sent again after an agent crash is
// answered the same but logged with "duplicate": true.
type engine struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startEngine(dir string) (*engine, error) {
	logDir := filepath.Join(dir, EngineDir)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex            // guards the log file and applied
	applied := map[string]bool{} // Idempotency-Keys seen
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		defer mu.Unlock()
		dup := key != "" && applied[key]
		applied[key] = true
		line, _ := json.Marshal(map[string]any{
			"time": time.Now().UTC(), "path": r.URL.Path, "event_id": key, "duplicate": dup,
			"event_type": r.Header.Get("X-Edgefort-Event"), "body": json.RawMessage(orEmptyJSON(body)),
		})
		f, err := os.OpenFile(filepath.Join(logDir, EngineLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			f.Write(append(line, '\n'))
			f.Close()
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"reloaded":true}`)
	})
	e := &engine{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		e.srv.Serve(ln)
	}()
	return e, nil
}

func orEmptyJSON(b []byte) []byte {
	if !json.Valid(b) {
		return []byte(`null`)
	}
	return b
}

func (e *engine) URL() string { return "http://" + e.ln.Addr().String() }

func (e *engine) Close() {
	e.srv.Close()
	<-e.done
}
