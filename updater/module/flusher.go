package module

import (
	"fmt"
	"io"
	"os"
)

// FlushEvery is how much is written between two background flushes.
// Measured with scripts/bench/install.sh (1 GiB, 2-vCPU VM, virtio disk):
// 64 MiB was the best of 16, 32, 64 and 128.
const FlushEvery = 64 << 20

// Flusher writes to f and, every FlushEvery bytes, has a goroutine of its
// own make what was written so far durable (fdatasync), while the copy
// goes on.
//
// Why: the install is bound by hashing (one core) and by the disk's flush,
// which on a virtual disk is where the bytes really reach storage. A plain
// write-then-fsync pays the whole flush after the last byte was hashed;
// asking only for early writeback (sync_file_range) hands the pages to the
// device but still leaves the flush to the end. Flushing in the background
// overlaps it with the hashing, and the final fsync finds little left to
// do. A write never waits for a flush: a flush still running when the next
// one is due just covers more.
//
// A background flush's error is kept and returned by Close: the kernel
// reports a writeback error once per open file, so the final fsync would
// not see it again.
type Flusher struct {
	f       *os.File
	out     io.Writer // f, in small writes
	kick    chan struct{}
	done    chan struct{}
	err     error // the first flush error; read after done is closed
	written int64
	kicked  int64 // written at the last kick
}

// NewFlusher starts the flushing goroutine; Close stops it.
func NewFlusher(f *os.File) *Flusher {
	fl := &Flusher{f: f, out: SmallWrites(f), kick: make(chan struct{}, 1), done: make(chan struct{})}
	go fl.run()
	return fl
}

func (fl *Flusher) run() {
	defer close(fl.done)
	for range fl.kick {
		if fl.err != nil {
			continue // drain; Close reports the first error
		}
		if err := Datasync(fl.f); err != nil {
			fl.err = fmt.Errorf("flush: %w", err)
		}
	}
}

func (fl *Flusher) Write(p []byte) (int, error) {
	n, err := fl.out.Write(p)
	fl.written += int64(n)
	if fl.written-fl.kicked >= FlushEvery {
		select {
		case fl.kick <- struct{}{}:
			fl.kicked = fl.written
		default: // a flush is due already
		}
	}
	return n, err
}

// Close stops the flushing goroutine, waits for it and returns the first
// flush error. It does not close f, nor make the tail durable: the caller
// fsyncs f, which it must anyway for the file's mode and size.
func (fl *Flusher) Close() error {
	close(fl.kick)
	<-fl.done
	return fl.err
}
