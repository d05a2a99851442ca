package agent

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/edgefort/edgefort/internal/testkit"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/edgefort/edgefort/agent/config"
)

// TestAdminSocketAppearsWithItsMode: the socket file shows up at its path
// only by a rename, already with its final mode, so there is no moment in
// which it exists there with a wider mode. inotify records every change
// at the path; binding in place (and chmodding after) shows as a create
// and an attribute change instead.
func TestAdminSocketAppearsWithItsMode(t *testing.T) {
	tests := []struct {
		name     string
		admin    config.Admin
		stale    bool // a socket file left by a crash is at the path
		wantMode uint32
		wantDir  uint32 // mode of the directory listenAdmin creates
	}{
		{name: "private", wantMode: 0o600, wantDir: 0o700},
		{name: "replaces a stale socket", stale: true, wantMode: 0o600, wantDir: 0o700},
		{name: "open to allowed users", admin: config.Admin{AllowUIDs: []int{1000}}, wantMode: 0o666, wantDir: 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			tt.admin.Socket = filepath.Join(dir, "admin.sock")
			if tt.stale {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				stale, err := net.Listen("unix", tt.admin.Socket)
				if err != nil {
					t.Fatal(err)
				}
				stale.(*net.UnixListener).SetUnlinkOnClose(false)
				stale.Close()
			}
			// Watch the directory, creating it first if needed (as
			// listenAdmin would, with the same mode).
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if !tt.stale {
				if err := os.Chmod(dir, os.FileMode(tt.wantDir)); err != nil {
					t.Fatal(err)
				}
			}
			events := watchDir(t, dir)
			ln, err := listenAdmin(tt.admin)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"IN_MOVED_TO"}, events()["admin.sock"]); diff != "" {
				t.Errorf("changes at the socket's path (-want +got):\n%s", diff)
			}
			if mode, err := statMode(tt.admin.Socket); err != nil || mode != tt.wantMode {
				t.Errorf("socket mode = %o (%v), want %o", mode, err, tt.wantMode)
			}
			// Only the socket is left: its private directory is gone.
			if names, err := os.ReadDir(dir); err != nil || len(names) != 1 {
				t.Errorf("directory holds %v (%v), want only admin.sock", names, err)
			}
			ln.Close()
			if _, err := os.Lstat(tt.admin.Socket); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after Close the socket file is still there (%v)", err)
			}
		})
	}
}

func TestAdminSocketDirectoryCreated(t *testing.T) {
	for _, tt := range []struct {
		admin config.Admin
		want  uint32
	}{
		{config.Admin{}, 0o700},
		{config.Admin{AllowGIDs: []int{0}}, 0o755},
	} {
		dir := filepath.Join(t.TempDir(), "a", "run")
		tt.admin.Socket = filepath.Join(dir, "admin.sock")
		ln, err := listenAdmin(tt.admin)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if mode, err := statMode(dir); err != nil || mode != tt.want {
			t.Errorf("allow lists %v/%v: socket directory mode = %o (%v), want %o", tt.admin.AllowUIDs, tt.admin.AllowGIDs, mode, err, tt.want)
		}
	}
}

func TestAdminSocketRefusesToReplaceAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := listenAdmin(config.Admin{Socket: path})
	if err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Fatalf("listenAdmin over a file = %v, want a refusal", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "keep" {
		t.Errorf("the file now holds %q", data)
	}
}

// watchDir starts watching dir with inotify; the function it returns
// lists, by file name, the changes seen so far. inotify queues an event
// when the change is made, so after a call returns its events are there.
func watchDir(t *testing.T, dir string) func() map[string][]string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_ATTRIB|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE|unix.IN_MODIFY|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatal(err)
	}
	names := []struct {
		mask uint32
		name string
	}{
		{unix.IN_CREATE, "IN_CREATE"}, {unix.IN_ATTRIB, "IN_ATTRIB"}, {unix.IN_MOVED_TO, "IN_MOVED_TO"},
		{unix.IN_MOVED_FROM, "IN_MOVED_FROM"}, {unix.IN_DELETE, "IN_DELETE"}, {unix.IN_MODIFY, "IN_MODIFY"},
		{unix.IN_CLOSE_WRITE, "IN_CLOSE_WRITE"},
	}
	return func() map[string][]string {
		out := map[string][]string{}
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				raw := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				name := string(bytes.TrimRight(raw, "\x00"))
				for _, m := range names {
					if ev.Mask&m.mask != 0 {
						out[name] = append(out[name], m.name)
					}
				}
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// TestAdminPeerCredentials runs real callers as other users against a
// running agent: the kernel's report of each caller's uid and gid
// (SO_PEERCRED) decides, and a refusal is logged. It needs root, to start
// processes under other uids.
func TestAdminPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to run callers as other users")
	}
	// Other users must reach the test binary and the socket.
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	caller := filepath.Join(base, "caller")
	copyExecutable(t, caller)
	socket := filepath.Join(base, "run", "admin.sock")

	t.Run("allow lists", func(t *testing.T) {
		logs := &testkit.SyncBuffer{}
		cfg := testConfig(t, fmt.Sprintf("admin:\n  socket: %s\n  allow_uids: [65533]\n  allow_gids: [65531]\n", socket))
		startAgentLog(t, cfg, slog.New(slog.NewTextHandler(logs, nil)))
		refused := "refused: admin: uid 65534 (gid 65534) may not use the admin API; root, the agent's user (uid 0) and the ids in admin.allow_uids and admin.allow_gids may"
		tests := []struct {
			name     string
			uid, gid uint32
			want     string
		}{
			{"another user", 65534, 65534, refused},
			{"root", 0, 0, "ok"},
			{"a uid in allow_uids", 65533, 65534, "ok"},
			{"a gid in allow_gids", 65532, 65531, "ok"},
		}
		for _, tt := range tests {
			if got := callAdminAs(t, caller, socket, tt.uid, tt.gid); got != tt.want {
				t.Errorf("%s (uid %d, gid %d): %q, want %q", tt.name, tt.uid, tt.gid, got, tt.want)
			}
		}
		if !strings.Contains(logs.String(), `msg="refused an admin API caller" component=admin uid=65534 gid=65534 pid=`) {
			t.Errorf("no refusal logged for uid 65534; log:\n%s", logs)
		}
	})
	t.Run("no allow lists", func(t *testing.T) {
		// The socket's mode 0600 keeps other users out before any
		// credentials are read.
		cfg := testConfig(t, fmt.Sprintf("admin:\n  socket: %s\n", socket))
		startAgent(t, cfg)
		want := "refused: admin: " + socket + ": permission denied (the socket is mode 0600: run as root or the agent's user, or list your uid in admin.allow_uids)"
		if got := callAdminAs(t, caller, socket, 65534, 65534); got != want {
			t.Errorf("uid 65534: %q, want %q", got, want)
		}
		if got := callAdminAs(t, caller, socket, 0, 0); got != "ok" {
			t.Errorf("root: %q, want ok", got)
		}
	})
}

// callAdminAs runs the test binary as an admin API caller (TestMain) under
// uid and gid and returns what it printed.
func callAdminAs(t *testing.T, exe, socket string, uid, gid uint32) string {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = []string{envAdminCaller + "=" + socket}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, NoSetGroups: true}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caller as uid %d: %v\n%s", uid, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// copyExecutable copies the running test binary to path, mode 0755, where
// other users can run it (go test builds it in a private directory).
func copyExecutable(t *testing.T, path string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
