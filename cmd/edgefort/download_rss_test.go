package main

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// TestProxiedDownloadPeakRSS runs the real agent, built as shipped (no
// race detector, whose shadow memory would triple the figure), with a
// virtual host (TLS, a route authorized by the control plane) in front of
// a backend that streams 1 GiB generated on the fly, downloads it through
// the node with a client that discards what it counts and checksums, and
// reads the agent's peak RSS (VmHWM) before it exits: under 32 MiB.
func TestProxiedDownloadPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB through the agent; not in -short")
	}
	const (
		size   = 1 << 30
		block  = 32 << 10
		maxRSS = 32 << 20
	)
	// Each block is a pattern stamped with its index, so that a lost,
	// repeated or reordered block changes the checksum.
	stream := func(w io.Writer) error {
		buf := make([]byte, block)
		for i := range buf {
			buf[i] = byte(i*7 + i>>8)
		}
		for i := range size / block {
			binary.BigEndian.PutUint64(buf, uint64(i))
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Edgefort-User") != "alice" {
			http.Error(w, "no identity", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		stream(w)
	}))
	t.Cleanup(backend.Close)

	r := newCloudRig(t)
	if code, out, errOut := edgefort(t, "enroll", "--config", r.cfgPath, "--url", r.cp.URL(), "--token", r.cp.NewEnrollmentToken(), "--ca-file", r.caFile); code != 0 {
		t.Fatalf("enroll: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	client := hubKeystore(t, r.state)
	cfg, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeFile(t, "edgefort.yaml", string(cfg)+`clients:
  target_endpoints:
    - {name: engine, url: '`+backend.URL+`'}
  virtual_hosts:
    - name: hub
      listen: 127.0.0.1:0
      ssl: {enabled: true, keystore: hub}
      authentication:
        - anonymous: {user_id: alice, directory: corp}
      routes:
        - {name: files, match: "GET /files/", target: engine, action: app.read, anonymous: true, resource: {type: app, id: big, space: sales}}
`)
	log := &testkit.SyncBuffer{}
	p := startProc(t, buildEdgefort(t, t.TempDir(), "rss"), log, "run", "--config", cfgPath)
	waitSocketReady(t, r.socket, p)
	admin := adminclient.New(r.socket)
	var base string
	testkit.WaitFor(t, "the agent ready with its virtual host", func() bool {
		if st, err := admin.Status(t.Context()); err == nil && st.Ready {
			base = st.VirtualHosts["hub"]
		}
		return base != ""
	})

	resp, err := client.Get(base + "/files/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(crc, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || n != size {
		t.Fatalf("download: %d, %d bytes (want %d), %v; agent log:\n%s", resp.StatusCode, n, size, err, log)
	}
	want := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	stream(want)
	if got, want := crc.Sum32(), want.Sum32(); got != want {
		t.Errorf("checksum of the download %08x, of the stream %08x", got, want)
	}
	hwm := vmHWM(t, p.pid)
	t.Logf("1 GiB proxied over TLS: agent peak RSS (VmHWM) %.1f MiB", float64(hwm)/(1<<20))
	if hwm >= maxRSS {
		t.Errorf("agent peak RSS %d bytes, want under %d", hwm, maxRSS)
	}
	if err := p.sig(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(15 * time.Second); err != nil {
		t.Errorf("agent: %v; log:\n%s", err, log)
	}
}

// vmHWM is the peak resident set of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc/PID/status to read the peak RSS from: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// hubKeystore puts a "hub" keystore with a certificate for 127.0.0.1
// (from a fresh CA) in the state directory and returns a client trusting
// only that CA.
func hubKeystore(t *testing.T, stateDir string) *http.Client {
	t.Helper()
	m, err := keystore.Open(keystore.Options{Dir: filepath.Join(stateDir, "keystores"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := devcloud.NewCA("virtual host test CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.InstallKeystore(m, "hub", "tls", []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}}
}
