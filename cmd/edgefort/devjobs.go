package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/internal/httpbody"
)

// devJobsFile is <state>/devcloud/jobs.json: where `edgefort dev job`
// finds the dev process's Jobs service (loopback HTTP, bearer token).
const devJobsFile = "jobs.json"

type devJobsInfo struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	Thing string `json:"thing"`
	PID   int    `json:"pid"`
}

// devJobsServer exposes devcloud's Jobs service (which lives in the dev
// process) to `edgefort dev job` in another process.
type devJobsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startDevJobs(dir, thing string, jobs *devcloud.Jobs) (*devJobsServer, error) {
	tok := make([]byte, 32)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				http.Error(w, "token required", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /jobs/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		doc, _ := io.ReadAll(io.LimitReader(r.Body, 32<<10))
		if err := jobs.Create(thing, r.PathValue("id"), doc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	mux.HandleFunc("GET /jobs/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		ex, ok := jobs.Execution(thing, r.PathValue("id"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ex)
	}))
	s := &devJobsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	info, _ := json.MarshalIndent(devJobsInfo{URL: "http://" + ln.Addr().String(), Token: token, Thing: thing, PID: os.Getpid()}, "", "  ")
	if err := atomicfile.Write(filepath.Join(dir, devCloudDir, devJobsFile), append(info, '\n'), 0o600); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *devJobsServer) Close() {
	s.srv.Close()
	<-s.done
}

func newDevJobCmd() *command {
	c := &command{
		name:  "job",
		args:  "FILE",
		short: "create an AWS IoT job for the dev node and follow it to its end",
		long: `Create a job in devcloud's Jobs service for the dev node, with FILE as the job
document, and wait until the node ends it. The document's "operation" picks
the handler, as event types do: update.check, keystore.repoint, webhook.
Exits 0 when the job SUCCEEDED.

  echo '{"operation":"webhook","app":"q3-report"}' > job.json
  edgefort dev job job.json`,
	}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "the dev configuration `FILE`")
	id := fs.String("id", "", "job `ID` (default: job-<random>)")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the job to end")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		doc, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		if !json.Valid(doc) {
			return fmt.Errorf("%s: the job document is not JSON", args[0])
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(cfg.StateDir, devCloudDir, devJobsFile))
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("edgefort dev is not running on %s", cfg.StateDir)
		}
		if err != nil {
			return err
		}
		var info devJobsInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return err
		}
		jobID := *id
		if jobID == "" {
			r := make([]byte, 4)
			rand.Read(r)
			jobID = "job-" + hex.EncodeToString(r)
		}
		call := func(method string, body []byte) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, method, info.URL+"/jobs/"+jobID, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+info.Token)
			return http.DefaultClient.Do(req)
		}
		resp, err := call(http.MethodPost, doc)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusCreated {
			msg, _ := httpbody.Message(resp)
			resp.Body.Close()
			return fmt.Errorf("create job: %s: %s", resp.Status, bytes.TrimSpace(msg))
		}
		resp.Body.Close()
		fmt.Fprintf(st.stdout, "created %s for %s\n", jobID, info.Thing)
		last := ""
		deadline := time.Now().Add(*timeout)
		for time.Now().Before(deadline) {
			resp, err := call(http.MethodGet, nil)
			if err != nil {
				return err
			}
			var ex devcloud.JobExecution
			// A job document is at most 32 KiB; its execution adds status
			// details of the same order.
			err = httpbody.ReadJSON(resp, 1<<20, "job execution", &ex)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if ex.Status != last {
				details, _ := json.Marshal(ex.StatusDetails)
				fmt.Fprintf(st.stdout, "  %s %s\n", ex.Status, details)
				last = ex.Status
			}
			if devcloud.JobTerminal(ex.Status) {
				if ex.Status != "SUCCEEDED" {
					return errSilentDeny
				}
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("job %s did not end within %s (last status %s)", jobID, *timeout, last)
	}
	return c
}
