package module

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/updater/artifact"
)

// fifoPoll is how often a pending FIFO open is retried while waiting for
// the module to open the read end.
const fifoPoll = 5 * time.Millisecond

// streamPipeSize is the capacity asked for each stream FIFO's pipe
// (Linux's default is 64 KiB). The agent and the module's reader run
// side by side on a small device's cores and are descheduled in turn; a
// pipe that holds 1 MiB lets either run ahead by that much instead of
// stalling the other every 64 KiB. On the shared 2-vCPU VM of
// docs/benchmarks.md (session 7) it took the bench-file module's cat of a
// 1 GiB stream from a median of 1.33 s to 1.12 s (10 interleaved pairs,
// uncompressed and gzip; 9 faster). A reader that falls behind then reads,
// and writes on, more than FileWriteSize at a time; in direct pairs that
// never cost more than it saved (the full runs are in the same section).
// 1 MiB is /proc/sys/fs/pipe-max-size's default, what an unprivileged
// process may ask for.
const streamPipeSize = 1 << 20

// exitWait is how long a Store whose stream broke waits for the module to
// exit, to report its exit status and stderr.
const exitWait = time.Second

// errNoReader: the module exited (or stop fired) before opening the FIFO
// for reading.
var errNoReader = errors.New("no reader")

// Names inside the file tree used during Download.
const (
	streamNextName = "stream-next"
	streamsName    = "streams"
	filesName      = "files"
	// An augmented Artifact's files from manifest-augment (not covered by
	// the signature) go to their own directories, so that a module can
	// tell them from the signed ones.
	augmentSuffix = "-augment"
)

// streamsFor and filesFor are the tree's directories for f's kind.
func streamsFor(f *artifact.File) string {
	if f.Augmented {
		return streamsName + augmentSuffix
	}
	return streamsName
}

func filesFor(f *artifact.File) string {
	if f.Augmented {
		return filesName + augmentSuffix
	}
	return filesName
}

// download is a running Download state. Store and Finish are called from
// one goroutine; Abort may be called from any.
type download struct {
	m  *module
	p  Payload
	pr *proc

	streamNext, streamsDir string

	streamed bool  // the module has read stream-next at least once
	fallback bool  // the module exited without reading stream-next: save to files/
	finished bool  // Finish was called
	result   error // Finish's result
	failed   error // sticky Store failure
}

// Download creates the stream FIFOs in p.Tree and starts the module's
// Download state. ctx bounds the whole Download: when it ends, the module
// is killed as on timeout.
func (m *module) Download(ctx context.Context, p Payload) (Download, error) {
	d := &download{
		m:          m,
		p:          p,
		streamNext: filepath.Join(p.Tree, streamNextName),
		streamsDir: filepath.Join(p.Tree, streamsName),
	}
	if p.Tree == "" {
		return nil, m.errorf(StateDownload, "", errors.New("no file tree given"))
	}
	d.removeStreams()
	if err := os.Mkdir(d.streamsDir, 0o700); err != nil {
		return nil, m.errorf(StateDownload, "", fmt.Errorf("create streams: %w", err))
	}
	if err := syscall.Mkfifo(d.streamNext, 0o600); err != nil {
		d.removeStreams()
		return nil, m.errorf(StateDownload, "", fmt.Errorf("create %s: %w", streamNextName, err))
	}
	pr, err := m.start(ctx, p, StateDownload, false)
	if err != nil {
		d.removeStreams()
		return nil, err
	}
	d.pr = pr
	return d, nil
}

// Store streams f to the module, or saves it under files/ when the module
// exited without reading stream-next.
func (d *download) Store(f *artifact.File, r io.Reader) error {
	switch {
	case d.failed != nil:
		return d.failed
	case d.finished:
		return d.m.errorf(StateDownload, "", fmt.Errorf("store %s: download already finished", f.Name))
	case !plainName(f.Name):
		return d.fail(d.m.errorf(StateDownload, "", fmt.Errorf("store %q: not a plain file name", f.Name)))
	case f.Payload != d.p.Index:
		return d.fail(d.m.errorf(StateDownload, "", fmt.Errorf("store %s: file of payload %d given to payload %d", f.Name, f.Payload, d.p.Index)))
	}
	if !d.fallback {
		err := d.stream(f, r)
		if !errors.Is(err, errNoReader) {
			return d.fail(err)
		}
		// The module's Download exited without reading stream-next: if it
		// succeeded, store the files for it, as Mender does.
		if err := d.m.finish(d.pr, StateDownload); err != nil {
			return d.fail(err)
		}
		d.m.log.Debug("update module did not read streams: storing files", logKeyTree, d.p.Tree)
		d.fallback = true
	}
	return d.fail(d.saveFile(f, r))
}

// fail records a sticky failure.
func (d *download) fail(err error) error {
	if err != nil && d.failed == nil {
		d.failed = err
	}
	return err
}

// stream hands f to the module through stream-next and streams/<name>.
// It returns errNoReader when the module exited before ever opening
// stream-next.
func (d *download) stream(f *artifact.File, r io.Reader) error {
	next, err := d.openFIFO(d.streamNext, nil)
	if errors.Is(err, errNoReader) {
		if !d.streamed {
			return errNoReader
		}
		return d.exitedEarly(fmt.Errorf("exited before reading %s for %s", streamNextName, f.Name))
	}
	if err != nil {
		return d.m.errorf(StateDownload, "", err)
	}
	d.streamed = true
	rel := streamsFor(f) + "/" + f.Name
	fifo := filepath.Join(d.p.Tree, rel)
	if err := os.MkdirAll(filepath.Dir(fifo), 0o700); err != nil {
		next.Close()
		return d.m.errorf(StateDownload, "", fmt.Errorf("create %s: %w", rel, err))
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		next.Close()
		return d.m.errorf(StateDownload, "", fmt.Errorf("create %s: %w", rel, err))
	}
	_, err = io.WriteString(next, rel+"\n")
	if cerr := next.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return d.exitedEarly(fmt.Errorf("write %s: %w", streamNextName, err))
	}
	w, err := d.openFIFO(fifo, nil)
	if errors.Is(err, errNoReader) {
		return d.exitedEarly(fmt.Errorf("exited without opening %s", rel))
	}
	if err != nil {
		return d.m.errorf(StateDownload, "", err)
	}
	if err := growPipe(w, streamPipeSize); err != nil {
		d.m.log.Debug("update module stream: pipe size left as it is", "stream", rel, "err", err)
	}
	if err := blockingWrites(w); err != nil {
		w.Close()
		return d.m.errorf(StateDownload, "", fmt.Errorf("%s: %w", rel, err))
	}
	// In FileWriteSize pieces, as the Mender client's io.Copy writes: a
	// module that copies the stream (cat, dd) reads what is in the pipe
	// when it wakes, so it reads, and writes into the page cache, in small
	// pieces whenever it keeps up (FileWriteSize says why that matters on
	// some VMs; docs/benchmarks.md, session 6). With the larger pipe
	// (streamPipeSize) 1 MiB writes measured the same (session 7).
	werr, rerr := Copy(SmallWrites(w), r)
	if cerr := w.Close(); werr == nil && rerr == nil {
		werr = cerr
	}
	switch {
	case rerr != nil:
		return rerr // the Artifact's reader: checksum or read error
	case werr != nil:
		return d.exitedEarly(fmt.Errorf("stopped reading %s: %w", rel, werr))
	}
	return nil
}

// exitedEarly builds the error for a module that broke off the
// streaming, with its exit status and stderr when it exits soon.
func (d *download) exitedEarly(err error) error {
	t := time.NewTimer(exitWait)
	defer t.Stop()
	select {
	case <-d.pr.done:
		if exitErr := d.pr.result(); exitErr != nil {
			err = fmt.Errorf("%w (%v)", err, exitErr)
		}
	case <-t.C:
	}
	return d.m.errorf(StateDownload, d.pr.stderr.String(), err)
}

// openFIFO opens path for writing once the module has opened it for
// reading. It returns errNoReader if the module exits, or stop fires,
// first.
func (d *download) openFIFO(path string, stop <-chan struct{}) (*os.File, error) {
	t := time.NewTimer(fifoPoll)
	defer t.Stop()
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.ENXIO) {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		t.Reset(fifoPoll)
		select {
		case <-d.pr.exited:
			return nil, errNoReader
		case <-stop:
			return nil, errNoReader
		case <-t.C:
		}
	}
}

// blockingWrites puts f, opened non-blocking (see openFIFO), into blocking
// mode for the stream's writes. A non-blocking write into a full pipe
// fails with EAGAIN and parks the goroutine in the runtime's poller until
// epoll says the pipe has room: for 1 GiB in FileWriteSize pieces that was
// about 6,000 failed writes and 12,000 epoll waits, each wake-up a trip
// through the scheduler before the next write, while the module's reader
// sat waiting on an empty pipe. A blocking write sleeps in the kernel and
// is woken by the reader itself (docs/benchmarks.md, session 7). It still
// ends when the module does: once no process holds the FIFO open for
// reading, as after the kill of its process group on a timeout, the write
// fails with EPIPE. f's deadlines no longer apply; none are set.
func blockingWrites(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set blocking mode: %w", serr)
	}
	return nil
}

// saveFile stores f as files/<name> (files-augment/<name> for an augmented
// file), synced to disk.
func (d *download) saveFile(f *artifact.File, r io.Reader) error {
	dir := filepath.Join(d.p.Tree, filesFor(f))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d.m.errorf(StateDownload, "", err)
	}
	path := filepath.Join(dir, f.Name)
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return d.m.errorf(StateDownload, "", fmt.Errorf("store %s: %w", f.Name, err))
	}
	// Small writes (see FileWriteSize): the files/ fallback is what stock
	// modules such as single-file use, so it is the common path.
	werr, rerr := Copy(SmallWrites(out), r)
	if werr == nil && rerr == nil {
		werr = out.Sync()
	}
	if cerr := out.Close(); werr == nil && rerr == nil {
		werr = cerr
	}
	if werr == nil && rerr == nil {
		werr = atomicfile.SyncDir(dir)
	}
	if werr != nil || rerr != nil {
		os.Remove(path)
		if rerr != nil {
			return rerr // the Artifact's reader: checksum or read error
		}
		return d.m.errorf(StateDownload, "", fmt.Errorf("store %s: %w", f.Name, werr))
	}
	return nil
}

// Finish ends the streams and waits for the module's Download to exit.
func (d *download) Finish(ctx context.Context) error {
	if d.finished {
		return d.result
	}
	d.finished = true
	d.result = d.end(ctx)
	d.removeStreams()
	return d.result
}

func (d *download) end(ctx context.Context) error {
	if d.failed != nil {
		d.pr.kill()
		return d.failed
	}
	if !d.fallback {
		next, err := d.openFIFO(d.streamNext, ctx.Done())
		switch {
		case err == nil:
			next.Close() // a zero-length read: no more streams
		case !errors.Is(err, errNoReader):
			d.pr.kill()
			return d.m.errorf(StateDownload, "", err)
		}
	}
	select {
	case <-d.pr.done:
	case <-ctx.Done():
		d.pr.kill()
		return d.m.errorf(StateDownload, d.pr.stderr.String(), fmt.Errorf("%w (process group killed)", ctx.Err()))
	}
	return d.m.finish(d.pr, StateDownload)
}

// Abort kills the module's process group, waits for it and removes the
// FIFOs.
func (d *download) Abort() {
	d.pr.kill()
	d.removeStreams()
}

// removeStreams removes stream-next, streams/ and streams-augment/;
// files/ and files-augment/ stay.
func (d *download) removeStreams() {
	os.Remove(d.streamNext)
	os.RemoveAll(d.streamsDir)
	os.RemoveAll(d.streamsDir + augmentSuffix)
}

var _ Download = (*download)(nil)
