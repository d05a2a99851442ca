package module

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/artifact"
)

// testModules are small /bin/sh update modules, by type name.
var testModules = map[string]string{
	// Reads every stream and copies it to tmp/ under the path stream-next
	// named (tmp/streams/NAME or tmp/streams-augment/NAME).
	"pathstreamer": `
case "$1" in
Download)
	while :; do
		next=$(cat stream-next)
		[ -z "$next" ] && break
		mkdir -p "tmp/$(dirname "$next")"
		cat "$next" > "tmp/$next"
	done
	;;
esac
exit 0`,
	// Reads every stream and copies it into tmp/.
	"streamer": `
case "$1" in
Download)
	while :; do
		next=$(cat stream-next)
		[ -z "$next" ] && break
		cat "$next" > "tmp/$(basename "$next")"
	done
	echo "streamed" >&2
	;;
esac
exit 0`,
	// Never reads stream-next: the agent stores files/ for it.
	"ignorer": `
case "$1" in
Download) sleep 0.2 ;;
ArtifactInstall) test -f files/a.txt || { echo "files/a.txt missing" >&2; exit 1; } ;;
esac
exit 0`,
	// Reads one stream-next line, 10 bytes of the stream, then gives up.
	"quitter": `
case "$1" in
Download)
	next=$(cat stream-next)
	head -c 10 "$next" > /dev/null
	echo "giving up" >&2
	exit 3
	;;
esac
exit 0`,
	// Opens the stream, reads 10 bytes of it, and hangs holding it open
	// (and a background child holding it too), ignoring SIGTERM: the
	// agent's writes into the full pipe end only with the kill of the
	// process group.
	"staller": `
trap '' TERM
case "$1" in
Download)
	next=$(cat stream-next)
	exec 3<"$next"
	head -c 10 <&3 > /dev/null
	sleep 1000 &
	echo $! > child.pid
	sleep 1000
	;;
esac
exit 0`,
	// Reads stream-next once and exits 0 without reading the stream.
	"skipper": `
case "$1" in
Download) cat stream-next > /dev/null ;;
esac
exit 0`,
	// Reads one stream and exits 0.
	"oneshot": `
case "$1" in
Download) next=$(cat stream-next); cat "$next" > /dev/null ;;
esac
exit 0`,
	// Hangs with a background child, ignoring SIGTERM.
	"hanger": `
trap '' TERM
sleep 1000 &
echo $! > child.pid
sleep 1000
exit 0`,
	// Hangs with a background child; dies on SIGTERM.
	"sleeper": `
sleep 1000 &
echo $! > child.pid
sleep 1000
exit 0`,
	// Fails with a message on stderr.
	"failer": `
case "$1" in
ArtifactInstall) echo "first line" >&2; echo "boom: disk on fire" >&2; exit 1 ;;
Download) echo "no download" >&2; exit 2 ;;
esac
exit 0`,
	// Answers queries.
	"answerer": `
case "$1" in
SupportsRollback) printf 'Yes\n\n' ;;
NeedsArtifactReboot) echo Automatic ;;
PermittedAugmentedHeaders) printf '{"header-info":{"artifact_depends":{"device_type":[true]}}}\n' ;;
Bogus) echo Maybe ;;
Huge) head -c 70000 /dev/zero ;;
esac
exit 0`,
}

// newTestRunner writes testModules into a temp dir and returns a Runner
// for them with short timeouts.
func newTestRunner(t *testing.T) *Runner {
	t.Helper()
	dir := t.TempDir()
	for name, body := range testModules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &Runner{
		Dir:       dir,
		Timeout:   10 * time.Second,
		KillGrace: 200 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lookup returns the Installer for typ or fails the test.
func lookup(t *testing.T, r *Runner, typ string) Installer {
	t.Helper()
	inst, err := r.Lookup(typ)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", typ, err)
	}
	return inst
}

// testHeader is a one-payload Artifact header of type typ.
func testHeader(typ string) *artifact.Header {
	return &artifact.Header{
		Name:       "release-2",
		Group:      "prod",
		HeaderInfo: []byte(`{"payloads":[{"type":"` + typ + `"}],"artifact_provides":{"artifact_name":"release-2","artifact_group":"prod"},"artifact_depends":{"device_type":["qemu"]}}`),
		Payloads: []artifact.Payload{{
			Index:    0,
			Type:     typ,
			TypeInfo: []byte(`{"type":"` + typ + `","artifact_provides":{"rootfs-image.` + typ + `.version":"2"}}`),
			MetaData: []byte(`{"key":"value"}`),
		}},
	}
}

// newTree prepares a file tree for payload 0 of type typ.
func newTree(t *testing.T, typ string) Payload {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "payloads", "0000", "tree")
	if err := os.MkdirAll(filepath.Dir(tree), 0o755); err != nil {
		t.Fatal(err)
	}
	err := PrepareTree(tree, TreeInfo{
		CurrentArtifactName: "release-1",
		DeviceType:          "qemu",
		Header:              testHeader(typ),
	})
	if err != nil {
		t.Fatal(err)
	}
	return Payload{Index: 0, Type: typ, Tree: tree}
}

// testFile is a payload file of payload 0 with its content.
type testFile struct {
	name      string
	data      []byte
	bad       bool // the reader ends with a checksum error
	augmented bool // listed in manifest-augment
}

func (f testFile) artifactFile() *artifact.File {
	return &artifact.File{
		Payload:   0,
		Name:      f.name,
		Path:      "data/0000/" + f.name,
		Size:      int64(len(f.data)),
		Checksum:  sha256.Sum256(f.data),
		Augmented: f.augmented,
	}
}

func (f testFile) reader() io.Reader {
	if f.bad {
		return io.MultiReader(bytes.NewReader(f.data), errReader{fmt.Errorf("%w: %s: mismatch", artifact.ErrChecksum, "data/0000/"+f.name)})
	}
	return bytes.NewReader(f.data)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// processGone reports whether pid no longer runs (gone or a zombie
// waiting for a reaper that is not us).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) S ...
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// waitGone waits for the process whose pid is in file to be gone.
func waitGone(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("child pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("child pid %q: %v", data, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background child %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkGoroutines fails t if more goroutines run than before, after a
// short settling time.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
