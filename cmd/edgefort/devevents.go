package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/internal/httpbody"
)

// The dev event link: devcloud's SigV4-checking broker with the control
// plane's credentials, and a stand-in for the local engine that cloud
// "webhook" events reach.
const (
	devBrokerFile   = "broker.json" // devBrokerInfo, 0600
	devEngineDir    = "dev-engine"
	devEngineLog    = "requests.jsonl"
	devEngineTarget = "dev-engine"
)

// devBrokerInfo is <state>/devcloud/broker.json, for `edgefort dev event`.
type devBrokerInfo struct {
	Host            string `json:"host"`
	Region          string `json:"region"`
	EventsTopic     string `json:"events_topic"`
	ManagementToken string `json:"management_token"`
	PID             int    `json:"pid"`
}

func startDevBroker(dir string, cp *devcloud.ControlPlane, thing string, log *slog.Logger) (*devcloud.Broker, error) {
	ca, err := loadDevCA(filepath.Join(dir, devCADir))
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 32)
	rand.Read(tok)
	b, err := devcloud.NewBroker(devcloud.BrokerOptions{CA: ca, Lookup: devcloud.ControlPlaneLookup(cp), ManagementToken: hex.EncodeToString(tok), Logger: log})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	info, _ := json.MarshalIndent(devBrokerInfo{
		Host: b.Host(), Region: b.Region(), EventsTopic: "edgefort/" + thing + "/events",
		ManagementToken: hex.EncodeToString(tok), PID: os.Getpid(),
	}, "", "  ")
	if err := atomicfile.Write(filepath.Join(dir, devCloudDir, devBrokerFile), append(info, '\n'), 0o600); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// devEngine stands in for the local engine: it answers every POST with
// {"reloaded": true} and appends the request to
// <state>/dev-engine/requests.jsonl, where the demo (and a developer) can
// see that a cloud event reached it. As a real target should, it applies
// each Idempotency-Key once: a webhook sent again after an agent crash is
// answered the same but logged with "duplicate": true.
type devEngine struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startDevEngine(dir string) (*devEngine, error) {
	logDir := filepath.Join(dir, devEngineDir)
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
		f, err := os.OpenFile(filepath.Join(logDir, devEngineLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			f.Write(append(line, '\n'))
			f.Close()
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"reloaded":true}`)
	})
	e := &devEngine{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
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

func (e *devEngine) URL() string { return "http://" + e.ln.Addr().String() }

func (e *devEngine) Close() {
	e.srv.Close()
	<-e.done
}

func newDevEventCmd() *command {
	c := &command{
		name:  "event",
		args:  "TYPE [JSON]",
		short: "send a cloud event to the dev node through devcloud's broker",
		long: `Publish a cloud event, as the cloud would, on the dev node's events topic of
devcloud's broker, and wait for its result in the control plane's reports
sink. Built-in types: update.check, keystore.repoint ({"ref": R, "store": S})
and webhook (the JSON body is POSTed to the dev engine, which logs it in
<state>/dev-engine/requests.jsonl). Exits 0 when the result is "done".

  edgefort dev event webhook '{"app":"q3-report","action":"reload"}'`,
	}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "the dev configuration `FILE`")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the result")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return c.wantArgs(args, 1)
		}
		body := json.RawMessage(`{}`)
		if len(args) == 2 {
			if !json.Valid([]byte(args[1])) {
				return usageError{fmt.Sprintf("dev event: %q is not JSON", args[1])}
			}
			body = json.RawMessage(args[1])
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		var bi devBrokerInfo
		var ci devControlInfo
		for path, v := range map[string]any{devBrokerFile: &bi, devControlFile: &ci} {
			b, err := os.ReadFile(filepath.Join(cfg.StateDir, devCloudDir, path))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("edgefort dev is not running on %s (no %s)", cfg.StateDir, path)
			}
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, v); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		hc, err := devHTTPClient(cfg.StateDir)
		if err != nil {
			return err
		}
		id := make([]byte, 8)
		rand.Read(id)
		ev := map[string]any{"id": "ev-" + hex.EncodeToString(id), "type": args[0], "time": time.Now().UTC(), "body": body}
		payload, _ := json.Marshal(ev)
		req, _ := json.Marshal(map[string]any{"topic": bi.EventsTopic, "payload": json.RawMessage(payload), "qos": 1})
		hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+bi.Host+"/api/management/dev/publish", bytes.NewReader(req))
		hreq.Header.Set("Authorization", "Bearer "+bi.ManagementToken)
		resp, err := hc.Do(hreq)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("publish: %s", resp.Status)
		}
		fmt.Fprintf(st.stdout, "published %s (%s) on %s\n", ev["id"], args[0], bi.EventsTopic)
		deadline := time.Now().Add(*timeout)
		for time.Now().Before(deadline) {
			status, detail, ok, err := devEventResult(ctx, hc, ci, ev["id"].(string))
			if err != nil {
				return err
			}
			if ok {
				fmt.Fprintf(st.stdout, "result %s %s\n", status, detail)
				if status != "done" {
					return errSilentDeny
				}
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("no result for %s within %s", ev["id"], *timeout)
	}
	return c
}

// devHTTPClient trusts the dev CA.
func devHTTPClient(stateDir string) (*http.Client, error) {
	pem, err := os.ReadFile(filepath.Join(stateDir, devCADir, devcloud.CACertFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// devEventResult looks for the event's result among the reports the
// control plane's sink recorded.
func devEventResult(ctx context.Context, hc *http.Client, ci devControlInfo, id string) (status, detail string, ok bool, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ci.URL+"/api/management/dev/devices/"+ci.DeviceID+"/reports", nil)
	req.Header.Set("Authorization", "Bearer "+ci.ManagementToken)
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", false, err
	}
	defer resp.Body.Close()
	var mr devcloud.ManagedReports
	// The dev sink lists every report of the session, each at most 1 MiB
	// of body but usually a few hundred bytes.
	if err := httpbody.ReadJSON(resp, 64<<20, "reports list", &mr); err != nil {
		return "", "", false, fmt.Errorf("reports: %w", err)
	}
	for _, r := range mr.Reports {
		if r.Type != "event.result" {
			continue
		}
		var b struct {
			EventID string `json:"event_id"`
			Result  struct {
				Status string `json:"status"`
				Detail string `json:"detail"`
			} `json:"result"`
		}
		if json.Unmarshal(r.Body, &b) == nil && b.EventID == id {
			return b.Result.Status, b.Result.Detail, true, nil
		}
	}
	return "", "", false, nil
}
