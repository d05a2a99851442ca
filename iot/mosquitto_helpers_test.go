package iot_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/iot"
)

// These helpers run Debian's mosquitto, a real broker, as a child process:
// a WebSocket listener with TLS for the link and a plain TCP listener for
// the cloud side, persistence on so that the queued QoS 1 messages of a
// persistent session survive its restarts.

// mosquittoBin finds the mosquitto binary. Debian installs it in /usr/sbin,
// which is not in every user's PATH, so that is tried before peertest
// decides whether its absence skips or fails the test.
func mosquittoBin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if fi, err := os.Stat("/usr/sbin/mosquitto"); err == nil && !fi.IsDir() {
		return "/usr/sbin/mosquitto"
	}
	return peertest.Require(t, "mosquitto")
}

// mosquitto is one broker, stopped and started again on the same ports
// with the same persistence directory.
type mosquitto struct {
	t       testing.TB
	bin     string
	dir     string
	conf    string
	wssAddr string // 127.0.0.1:port, TLS WebSocket (the link's)
	tcpAddr string // 127.0.0.1:port, plain MQTT (the cloud side's)
	caPEM   string // file holding the CA certificate the link trusts
	client  *tls.Config

	mu       sync.Mutex // guards cmd and exited
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	restarts int
}

// freePort returns a loopback port that was free a moment ago. mosquitto
// is another process and binds it itself, so the port may be taken in
// between: start sees that in mosquitto's log and startMosquitto then
// tries other ports.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// errPortTaken is start's error when mosquitto could not bind a port.
var errPortTaken = errors.New("mosquitto could not bind its port")

// startMosquitto writes the certificates and the configuration into a
// temporary directory and starts the broker. It is stopped (SIGTERM) when
// the test ends; its log is printed if the test failed.
func startMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	bin := mosquittoBin(t)
	dir := t.TempDir()
	ca, err := devcloud.NewCA("mosquitto test CA")
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.Issue("127.0.0.1", []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{
		t: t, bin: bin, dir: dir,
		conf:  filepath.Join(dir, "mosquitto.conf"),
		caPEM: filepath.Join(dir, "ca.crt"),
	}
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writeFile(t, m.caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}))
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	m.client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "mosquitto.log")); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 60 {
					lines = lines[len(lines)-60:]
				}
				t.Logf("mosquitto log (tail):\n%s", strings.Join(lines, "\n"))
			}
		}
	})
	for attempt := 1; ; attempt++ {
		m.wssAddr, m.tcpAddr = freePort(t), freePort(t)
		writeFile(t, m.conf, []byte(m.config(certFile, keyFile)))
		_, err := m.start()
		if err == nil {
			return m
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("%v; trying other ports", err)
	}
}

// config is the configuration file for the current ports.
func (m *mosquitto) config(certFile, keyFile string) string {
	dir := m.dir
	_, wssPort, _ := net.SplitHostPort(m.wssAddr)
	_, tcpPort, _ := net.SplitHostPort(m.tcpAddr)
	return strings.Join([]string{
		// Run as root, mosquitto would switch to user mosquitto, which
		// cannot read this directory; "root" keeps the user it runs as.
		"user root",
		"per_listener_settings false",
		"allow_anonymous true",
		// The persistent sessions, their subscriptions and queued QoS 1
		// messages are saved to mosquitto.db on SIGTERM (and every 5 s)
		// and read back on start.
		"persistence true",
		"persistence_location " + dir + "/",
		"autosave_interval 5",
		"persistent_client_expiration 1h",
		// The soak queues thousands of messages for the link while it is
		// away; mosquitto's default queue (1000) would drop the rest.
		"max_queued_messages 100000",
		"max_queued_bytes 0",
		"max_inflight_messages 20",
		"log_dest file " + filepath.Join(dir, "mosquitto.log"),
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		"connection_messages true",
		"",
		"listener " + wssPort + " 127.0.0.1",
		"protocol websockets",
		"certfile " + certFile,
		"keyfile " + keyFile,
		"",
		"listener " + tcpPort + " 127.0.0.1",
		"protocol mqtt",
		"",
	}, "\n")
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// start starts the broker and returns when it has bound both listeners
// and accepts connections on them; it returns that moment. A dial alone
// could reach another process that holds the port, so readiness is
// mosquitto's own "running" line, which it logs once every listener is
// bound; a port it could not bind ends it with errPortTaken.
func (m *mosquitto) start() (time.Time, error) {
	m.t.Helper()
	logFile := filepath.Join(m.dir, "mosquitto.log")
	before := m.logLines(logFile)
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // it logs to its file
	if err := cmd.Start(); err != nil {
		return time.Time{}, fmt.Errorf("start mosquitto: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Read while mosquitto opens its log, the file once looked
		// shorter than before (one empty line: a CI panic on the slice);
		// such a read shows no new line yet, and the wait goes on.
		var since []string
		if now := m.logLines(logFile); len(now) >= len(before) {
			since = now[len(before):]
		}
		if slices.ContainsFunc(since, func(l string) bool { return strings.HasSuffix(l, " running") }) {
			break
		}
		select {
		case <-exited:
			m.mu.Lock()
			m.cmd = nil
			m.mu.Unlock()
			for _, l := range since {
				if strings.Contains(l, "Address already in use") || strings.Contains(l, "Unable to create websockets listener") {
					return time.Time{}, fmt.Errorf("%w (%s or %s): %s", errPortTaken, m.tcpAddr, m.wssAddr, l)
				}
			}
			return time.Time{}, fmt.Errorf("mosquitto exited at start (%v); see %s", cmd.ProcessState, logFile)
		default:
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("mosquitto not running within 10s; see %s", logFile)
		}
		time.Sleep(time.Millisecond)
	}
	for _, addr := range []string{m.tcpAddr, m.wssAddr} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return time.Time{}, fmt.Errorf("mosquitto running but not accepting on %s: %w", addr, err)
		}
		c.Close()
	}
	return time.Now(), nil
}

// logLines returns the lines of mosquitto's log file so far.
func (m *mosquitto) logLines(file string) []string {
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		m.t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}

// stop ends the broker with SIGTERM, on which it saves its database, and
// waits for it.
func (m *mosquitto) stop() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
		m.t.Errorf("mosquitto did not end within 10s of SIGTERM")
	}
}

// restart stops the broker and starts it again on the same ports; it
// returns when it accepts connections again.
func (m *mosquitto) restart() time.Time {
	m.t.Helper()
	m.stop()
	m.restarts++
	return m.mustStart()
}

// mustStart starts the broker again on its ports, which are its own from
// the first start: should another process hold one for a moment, it tries
// again for up to 10s.
func (m *mosquitto) mustStart() time.Time {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		up, err := m.start()
		if err == nil {
			return up
		}
		if !errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			m.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cloud is the cloud side: a paho client over plain TCP with a persistent
// session, which publishes QoS 1 events and retries each one until the
// broker acknowledged it, across broker restarts.
type cloud struct {
	t testing.TB
	c paho.Client
}

func newCloud(t testing.TB, m *mosquitto, id string) *cloud {
	t.Helper()
	o := paho.NewClientOptions()
	o.AddBroker("tcp://" + m.tcpAddr)
	o.SetClientID(id)
	// A clean session and no automatic reconnect: publishAll resends what
	// was not acknowledged and reconnects itself. paho's own resend of
	// in-flight publishes after an automatic reconnect races its writer
	// (eclipse-paho/paho.mqtt.golang#703), which -race caught once here.
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(true)
	o.SetConnectRetryInterval(20 * time.Millisecond)
	o.SetMaxReconnectInterval(100 * time.Millisecond)
	o.SetConnectTimeout(5 * time.Second)
	o.SetWriteTimeout(5 * time.Second)
	o.SetKeepAlive(30 * time.Second)
	o.SetOrderMatters(false)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud client: connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &cloud{t: t, c: c}
}

// reconnect connects c again after a broker restart, within 10 s.
func (c *cloud) reconnect() error {
	if c.c.IsConnectionOpen() {
		return nil
	}
	tok := c.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("cloud client: no connection within 10 s")
	}
	return tok.Error()
}

// publishAll sends every payload with QoS 1, window at a time, and sends
// again each one whose PUBACK did not come (a restart in between); a
// message may thus reach the broker twice, as with any QoS 1 publisher.
// between, if set, is called before each window (with its number) but the
// first. It returns how many publishes were retried.
func (c *cloud) publishAll(ctx context.Context, topic string, payloads [][]byte, window int, between func(w int)) (retried int, err error) {
	type pending struct {
		i   int
		tok paho.Token
	}
	for start := 0; start < len(payloads); start += window {
		if between != nil && start > 0 {
			between(start / window)
		}
		todo := make([]int, 0, window)
		for i := start; i < min(start+window, len(payloads)); i++ {
			todo = append(todo, i)
		}
		for attempt := 0; len(todo) > 0; attempt++ {
			if ctx.Err() != nil {
				return retried, ctx.Err()
			}
			if attempt > 0 {
				retried += len(todo)
				time.Sleep(20 * time.Millisecond)
				if err := c.reconnect(); err != nil {
					return retried, err
				}
			}
			if attempt > 100 {
				return retried, fmt.Errorf("message %d: no PUBACK after %d attempts", todo[0], attempt)
			}
			ps := make([]pending, 0, len(todo))
			for _, i := range todo {
				ps = append(ps, pending{i, c.c.Publish(topic, 1, false, payloads[i])})
			}
			todo = todo[:0]
			for _, p := range ps {
				if !p.tok.WaitTimeout(3*time.Second) || p.tok.Error() != nil {
					todo = append(todo, p.i)
				}
			}
		}
	}
	return retried, nil
}

// eventPayload is an event of type typ as the cloud sends it.
func eventPayload(t testing.TB, id, typ string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"id": id, "type": typ, "time": time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticCreds stand in for SigV4 credentials, which mosquitto ignores.
var staticCreds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKIDMOSQUITTO", SecretAccessKey: "secret", Source: "test"}, nil
})

// plainPresign returns wss://host/mqtt with a query that looks like a
// presigned one; mosquitto ignores the query.
func plainPresign(_ context.Context, creds aws.Credentials, host, _ string, _ time.Duration, now time.Time) (string, error) {
	return "wss://" + host + "/mqtt?X-Amz-Credential=" + creds.AccessKeyID + "&X-Amz-Date=" + now.UTC().Format("20060102T150405Z"), nil
}

// mosquittoLinkOptions are the link's Options against a mosquitto whose
// WebSocket listener is at wssAddr and whose CA is trusted by tlsCfg.
func mosquittoLinkOptions(wssAddr string, tlsCfg *tls.Config, thing string, handler func(context.Context, iot.Message) error) iot.Options {
	return iot.Options{
		Host:             wssAddr,
		Region:           "local",
		ThingName:        thing,
		Credentials:      staticCreds,
		TLS:              tlsCfg,
		Presign:          plainPresign,
		ReconnectInitial: 50 * time.Millisecond,
		ReconnectMax:     250 * time.Millisecond,
		ConnectInterval:  time.Millisecond, // the test brokers have no per-client-ID limit
		ConnectTimeout:   5 * time.Second,
		Subscriptions:    []string{"edgefort/" + thing + "/events"},
		Handler:          handler,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:       prom.NewRegistry(),
	}
}

// runMosquittoLink runs l until the test ends and waits for the first
// connection.
func runMosquittoLink(t testing.TB, l *iot.Link) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	testkit.WaitForWithin(t, 15*time.Second, "link connected", func() bool { return l.Status().State == iot.StateConnected })
}
