package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen binds a unix datagram socket as systemd does for NOTIFY_SOCKET.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		socket func(dir string) (env, bind string)
	}{
		{"path", func(dir string) (string, string) { p := filepath.Join(dir, "notify"); return p, p }},
		{"abstract", func(dir string) (string, string) {
			n := "edgefort-sdnotify-test-" + strconv.Itoa(os.Getpid())
			return "@" + n, "@" + n // Go maps a leading @ to the abstract namespace
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, bind := tc.socket(t.TempDir())
			conn := listen(t, bind)
			t.Setenv("NOTIFY_SOCKET", env)
			n, err := FromEnv()
			if err != nil || n == nil {
				t.Fatalf("FromEnv() = %v, %v", n, err)
			}
			defer n.Close()
			if err := n.Notify("READY=1", "STATUS=3/3 components running"); err != nil {
				t.Fatal(err)
			}
			if got, want := receive(t, conn), "READY=1\nSTATUS=3/3 components running"; got != want {
				t.Errorf("datagram = %q, want %q", got, want)
			}
			if err := n.Notify("STATUS=two\nlines"); err == nil || !strings.Contains(err.Error(), "not one VARIABLE=value line") {
				t.Errorf("a line with a newline: err = %v", err)
			}
			if os.Getenv("NOTIFY_SOCKET") != env {
				t.Errorf("NOTIFY_SOCKET was unset; a re-executed agent could no longer notify")
			}
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if n, err := FromEnv(); n != nil || err != nil {
		t.Errorf("unset: FromEnv() = %v, %v; want nil, nil", n, err)
	}
	var none *Notifier
	if err := none.Notify("READY=1"); err != nil {
		t.Errorf("nil Notifier: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), `"relative/path"`) {
		t.Errorf("relative path: err = %v", err)
	}
	missing := filepath.Join(t.TempDir(), "absent")
	t.Setenv("NOTIFY_SOCKET", missing)
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("absent socket: err = %v", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		err             string
	}{
		{name: "unset"},
		{name: "ours", usec: "30000000", pid: self, want: 30 * time.Second},
		{name: "no pid", usec: "500000", want: 500 * time.Millisecond},
		{name: "another pid's", usec: "30000000", pid: "1"},
		{name: "zero", usec: "0", err: `WATCHDOG_USEC "0": not positive`},
		{name: "junk", usec: "30s", err: `WATCHDOG_USEC "30s"`},
		{name: "overflow", usec: "9223372036854775807", err: "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, err := WatchdogInterval()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("WatchdogInterval() = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
