package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/module"
)

// Download finds the inactive partition, records it with the way back,
// and returns the session that streams the image into it.
func (in *Installer) Download(_ context.Context, p module.Payload) (module.Download, error) {
	active, inactive, err := in.running()
	if err != nil {
		return nil, err
	}
	if at := in.mountedAt(inactive); at != "" {
		return nil, fmt.Errorf("rootfs: the inactive partition %s is mounted at %s; refusing to write it", inactive.Path, at)
	}
	size, err := partitionSize(inactive.Path)
	if err != nil {
		return nil, err
	}
	if err := saveState(p, state{From: active, To: inactive}); err != nil {
		return nil, err
	}
	in.log.Info("writing the inactive partition", "active", active.Path, "inactive", inactive.Path, "size", size)
	return &download{in: in, p: p, st: state{From: active, To: inactive}, size: size}, nil
}

// partitionSize is the size of a block device or partition file. A
// missing path is an error: a partition is never created.
func partitionSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("rootfs: the inactive partition: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("rootfs: the inactive partition: %w", err)
	}
	if !fi.Mode().IsRegular() && fi.Mode()&os.ModeDevice == 0 {
		return 0, fmt.Errorf("rootfs: the inactive partition %s is neither a block device nor a file", path)
	}
	// A block device's size is where its end is.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("rootfs: size of %s: %w", path, err)
	}
	return size, nil
}

type download struct {
	in    *Installer
	p     module.Payload
	st    state
	size  int64 // the partition's
	files int
	err   error // first failure; Finish returns it
}

func (d *download) Store(f *artifact.File, r io.Reader) error {
	if d.err != nil {
		return d.err
	}
	d.files++
	switch {
	case d.files > 1:
		d.err = fmt.Errorf("rootfs: the payload has more than one file (%s); a rootfs-image payload is one image", f.Name)
	case f.Size > d.size:
		d.err = fmt.Errorf("rootfs: the image %s is %d bytes but the inactive partition %s holds %d; refused before writing", f.Name, f.Size, d.st.To.Path, d.size)
	default:
		d.err = d.write(f, r)
	}
	return d.err
}

// notBootable marks an error that left the inactive partition partly
// written.
func (d *download) notBootable(err error) error {
	return fmt.Errorf("rootfs: %w; the inactive partition %s holds an incomplete image and is not bootable (the boot environment is unchanged, %s still boots)", err, d.st.To.Path, d.st.From.Path)
}

// write streams r into the partition, flushing in the background, then
// makes it durable and, with ReadBack, checks what the disk returns.
func (d *download) write(f *artifact.File, r io.Reader) error {
	out, err := os.OpenFile(d.st.To.Path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("rootfs: open the inactive partition: %w", err)
	}
	defer out.Close()
	fl := module.NewFlusher(out)
	werr, rerr := module.Copy(fl, r)
	if ferr := fl.Close(); werr == nil {
		werr = ferr
	}
	switch {
	case rerr != nil:
		return d.notBootable(rerr) // the Artifact: checksum mismatch, cut stream
	case werr != nil:
		return d.notBootable(fmt.Errorf("write %s: %w", d.st.To.Path, werr))
	}
	if err := out.Sync(); err != nil {
		return d.notBootable(fmt.Errorf("sync %s: %w", d.st.To.Path, err))
	}
	dropCache(out, f.Size)
	if err := out.Close(); err != nil {
		return d.notBootable(fmt.Errorf("close %s: %w", d.st.To.Path, err))
	}
	if d.in.readBack {
		if err := readBack(d.st.To.Path, f.Size, f.Checksum); err != nil {
			return d.notBootable(err)
		}
	}
	d.in.log.Info("image written", "partition", d.st.To.Path, "bytes", f.Size, "read_back", d.in.readBack)
	return nil
}

// errReadBack: the disk did not return what was written.
var errReadBack = errors.New("read-back check failed")

// readBack reads the first size bytes of path, past the page cache, and
// compares their SHA-256 with want.
func readBack(path string, size int64, want [32]byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read back %s: %w", path, err)
	}
	defer f.Close()
	dropCache(f, size)
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("read back %s: %w", path, err)
	}
	if n != size {
		return fmt.Errorf("%w: %s returned %d bytes of the %d written", errReadBack, path, n, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		return fmt.Errorf("%w: %s has SHA-256 %x, the image %x", errReadBack, path, got, want)
	}
	return nil
}

// Finish marks the image complete: every file of the Artifact has been
// read and verified by now.
func (d *download) Finish(context.Context) error {
	if d.err != nil {
		return d.err
	}
	if d.files == 0 {
		d.err = errors.New("rootfs: the payload has no image file")
		return d.err
	}
	d.st.Complete = true
	d.err = saveState(d.p, d.st)
	return d.err
}

// Abort leaves the partition as it is: it is inactive and, not marked
// complete, never made bootable.
func (d *download) Abort() {}
