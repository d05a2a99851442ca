package artifact

import (
	"crypto"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

// prngReader yields n deterministic pseudo-random bytes, fast.
type prngReader struct {
	c    *rand.ChaCha8
	left int64
}

func newPRNG(seed byte, n int64) *prngReader {
	return &prngReader{c: rand.NewChaCha8([32]byte{seed}), left: n}
}

func (p *prngReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, _ := p.c.Read(b)
	p.left -= int64(n)
	return n, nil
}

// heapSampler is the installer's sink: it reads the heap in use every few
// MiB of payload and keeps the peak.
type heapSampler struct {
	n, next int64
	peak    uint64
}

func (h *heapSampler) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.n >= h.next {
		h.next = h.n + 8<<20
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.peak = max(h.peak, ms.HeapInuse)
	}
	return len(p), nil
}

type samplingInstaller struct{ sink *heapSampler }

func (s samplingInstaller) Store(_ *File, r io.Reader) error {
	_, err := io.Copy(s.sink, r)
	return err
}

func (samplingInstaller) Verified(*File) error { return nil }

// TestMemoryFlat streams an Artifact with a 256 MiB payload from the writer
// through a pipe into the reader and checks that the heap in use stays
// under a bound far below the payload size. It asserts memory, not time.
func TestMemoryFlat(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	const bound = 16 << 20
	spec := &Spec{
		Name: "big", Depends: Depends{DeviceTypes: []string{"edge-1"}}, Compression: None, Key: testKeys().ec,
		Payloads: []PayloadSpec{{Type: "single-file", Files: []Source{{
			Name: "big.bin",
			Open: func() (io.ReadCloser, error) { return io.NopCloser(newPRNG(7, size)), nil },
		}}}},
	}
	runtime.GC()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Write(pw, spec)
		pw.CloseWithError(err)
		done <- err
	}()
	sink := &heapSampler{}
	_, err := Read(pr, Options{Keys: []crypto.PublicKey{testKeys().ec.Public()}}, nil, samplingInstaller{sink})
	pr.CloseWithError(err)
	if werr := <-done; werr != nil {
		t.Fatalf("Write: %v", werr)
	}
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if sink.n != size {
		t.Fatalf("installer got %d bytes, want %d", sink.n, size)
	}
	t.Logf("peak heap in use while streaming %d MiB: %.1f MiB", size>>20, float64(sink.peak)/(1<<20))
	if sink.peak > bound {
		t.Errorf("peak heap in use %d bytes, want below %d", sink.peak, bound)
	}
}
