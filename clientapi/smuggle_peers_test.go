package clientapi

import (
	"bufio"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
)

// handOver binds a loopback listener for a peer program: its address, and
// the listening socket as a file to pass as the program's descriptor 3
// (nginx takes it through its NGINX variable, HAProxy as "fd@3").
func handOver(t *testing.T) (string, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the duplicate in the file stays open and listening
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln.Addr().String(), f
}

// runPeer starts cmd with f as its descriptor 3 until the test ends;
// logs are shown when the test failed.
func runPeer(t *testing.T, cmd *exec.Cmd, f *os.File, logs func() string) {
	t.Helper()
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		// SIGTERM: nginx's master stops its worker before it exits; a
		// peer that does not exit in time is killed (a guard, not a
		// measurement).
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s said:\n%s", filepath.Base(cmd.Path), logs())
		}
	})
}

// startNginx runs Debian's nginx as a backend that answers every request
// 200 with "METHOD PATH" and logs the same per request it parsed; log
// reads that log, a line per request.
func startNginx(t *testing.T) (addr string, log func() []string) {
	t.Helper()
	bin := peertest.Require(t, "nginx")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	addr, f := handOver(t)
	conf := filepath.Join(dir, "nginx.conf")
	// client_body_buffer_size: bodies stay in memory, no temp file.
	tmpl := `daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  log_format t '$request_method $uri';
  access_log %[2]s t;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  client_body_buffer_size 1m;
  server {
    listen %[3]s;
    location / { return 200 "$request_method $uri"; }
  }
}
`
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(tmpl, dir, logPath, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir+"/", "-e", filepath.Join(dir, "error.log"), "-c", conf)
	cmd.Env = append(os.Environ(), "NGINX=3;")
	runPeer(t, cmd, f, func() string { b, _ := os.ReadFile(filepath.Join(dir, "error.log")); return string(b) })
	return addr, func() []string {
		b, _ := os.ReadFile(logPath)
		if len(b) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
}

// answeredPaths are the paths of the requests answered 200 (the backends
// here answer with the path).
func answeredPaths(answers []string) []string {
	var out []string
	for _, a := range answers {
		if p, ok := strings.CutPrefix(a, "200 "); ok {
			out = append(out, p)
		}
	}
	return out
}

// TestAmbiguousRequestsToNginx: the node in front of Debian's nginx. For
// each of the ambiguousRequests, the requests nginx parsed (its access
// log) are exactly those the node answered with nginx's 200, in order:
// nginx never reads a request the node did not forward as one.
func TestAmbiguousRequestsToNginx(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	for _, tt := range ambiguousRequests() {
		t.Run(tt.name, func(t *testing.T) {
			addr, accessLog := startNginx(t)
			srv := r.start(t, routeTo(TargetEndpoint{Name: "nginx", URL: "http://" + addr}, time.Minute))
			c := r.rawTLS(t, srv.URLs()["hub"])
			io.WriteString(c, tt.raw)
			answers := readAnswers(bufio.NewReader(c), "GET")
			answered := answeredPaths(answers) // "METHOD PATH" from nginx
			testkit.WaitFor(t, "nginx's access log", func() bool { return len(accessLog()) >= len(answered) })
			logged := accessLog()
			if aborted(tt) {
				// nginx answers on the header, before the body the node
				// aborts; the node answers 400, nginx logs the request.
				if !cmp.Equal(logged, []string{"POST /a"}) && len(logged) != 0 {
					t.Errorf("nginx logged %q for an aborted request, want only POST /a", logged)
				}
				return
			}
			if diff := cmp.Diff(answered, logged); diff != "" {
				t.Errorf("nginx parsed (-answered to the client +logged by nginx):\n%s\nclient read %q", diff, answers)
			}
			var paths []string
			for _, a := range answered {
				_, p, _ := strings.Cut(a, " ")
				paths = append(paths, p)
			}
			if want := answeredPaths(tt.wantClient); !cmp.Equal(paths, want) {
				t.Errorf("client read %q, want 200 for %q", answers, want)
			}
		})
	}
}

// aborted: the node aborts the request mid-body (the backend has its
// header, never its end).
func aborted(tt ambiguousRequest) bool {
	for _, b := range tt.wantBackend {
		if strings.HasSuffix(b, "INCOMPLETE") {
			return true
		}
	}
	return false
}

// TestAmbiguousRequestsThroughHAProxy: Debian's HAProxy in front of the
// node, the node in front of the raw backend. For each of the
// ambiguousRequests, sent to HAProxy, the backend gets exactly the
// requests the client got answers from it for, whole, in order, whatever
// HAProxy made of them: the node reads HAProxy's framing as HAProxy meant
// it.
func TestAmbiguousRequestsThroughHAProxy(t *testing.T) {
	bin := peertest.Require(t, "haproxy")
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.pki.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range ambiguousRequests() {
		t.Run(tt.name, func(t *testing.T) {
			backend := newRawBackend(t, okReply)
			srv := r.start(t, routeTo(backend.target(), time.Minute))
			node := strings.TrimPrefix(srv.URLs()["hub"], "https://")
			cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
			conf := fmt.Sprintf(`global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind fd@3
  default_backend node
backend node
  server node %s ssl verify required ca-file %s sni str(hub.example) verifyhost hub.example
`, node, ca)
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			addr, f := handOver(t)
			var logs syncBuffer
			cmd := exec.Command(bin, "-db", "-f", cfg)
			cmd.Stdout, cmd.Stderr = &logs, &logs
			runPeer(t, cmd, f, logs.String)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute)) // a bound for a broken peer only
			io.WriteString(c, tt.raw)
			answers := readAnswers(bufio.NewReader(c), "GET")
			paths := answeredPaths(answers)
			testkit.WaitFor(t, "the backend's requests", func() bool { reqs, _ := backend.seen(); return len(reqs) >= len(paths) })
			reqs, _ := backend.seen()
			var got []string
			for _, q := range reqs {
				if strings.HasSuffix(q, "INCOMPLETE") {
					continue // aborted by the node, answered by nobody
				}
				_, rest, _ := strings.Cut(q, " ")
				p, _, _ := strings.Cut(rest, " ")
				got = append(got, p)
			}
			if diff := cmp.Diff(paths, got); diff != "" {
				t.Errorf("backend parsed (-answered to the client +reached the backend):\n%s\nbackend: %q\nclient read %q", diff, reqs, answers)
			}
			t.Logf("client read %q; backend %q", answers, reqs)
		})
	}
}
