package updater

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// artifactServer serves one artifact like a presigned link: Content-Length,
// Range bytes=N- → 206 with Content-Range, never a content encoding. Its
// knobs inject the faults a real link shows.
type artifactServer struct {
	data []byte
	srv  *httptest.Server

	mu sync.Mutex // guards everything below
	// Knobs; each cut, stall or ignore applies to the request of that index.
	cutAt       map[int]int // request → bytes sent before the connection is closed
	stallAt     map[int]int // request → bytes sent before going silent
	ignoreRange bool        // answer 200 with the whole body to a Range request
	wrongTotal  bool        // answer a Range with a different total
	startEarly  int         // start a 206 this many bytes before the offset asked
	noLength    bool        // stream without Content-Length
	fail        map[int]int // request → status to answer
	// Records.
	ranges  []string // Range header of each request ("" for none)
	headers []http.Header
}

func newArtifactServer(t *testing.T, size int) *artifactServer {
	t.Helper()
	a := &artifactServer{data: make([]byte, size), cutAt: map[int]int{}, stallAt: map[int]int{}, fail: map[int]int{}}
	rand.Read(a.data)
	a.srv = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

// client returns an updater client whose HTTP client trusts a's server.
func (a *artifactServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{ServerURL: a.srv.URL, HTTP: a.srv.Client(),
		Key: testKey(t, "ed25519"), Identity: map[string]any{"serial": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (a *artifactServer) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	n := len(a.ranges)
	rng := r.Header.Get("Range")
	a.ranges = append(a.ranges, rng)
	a.headers = append(a.headers, r.Header.Clone())
	cut, doCut := a.cutAt[n]
	stall, doStall := a.stallAt[n]
	code, doFail := a.fail[n]
	ignore, wrongTotal, early, noLength := a.ignoreRange, a.wrongTotal, a.startEarly, a.noLength
	a.mu.Unlock()

	if doFail {
		http.Error(w, "injected", code)
		return
	}
	start, total := 0, len(a.data)
	status := http.StatusOK
	if rng != "" && !ignore {
		v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil || v >= len(a.data) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = max(0, v-early)
		if wrongTotal {
			total++
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(a.data)-1, total))
		status = http.StatusPartialContent
	}
	body := a.data[start:]
	w.Header().Set("Accept-Ranges", "bytes")
	if !noLength {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	switch {
	case doCut:
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	case doStall:
		w.Write(body[:stall])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		w.Write(body)
	}
}

func (a *artifactServer) rangeHeaders() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.ranges...)
}

func TestDownload(t *testing.T) {
	const size = 256 << 10
	tests := []struct {
		name       string
		size       int // 0: size
		setup      func(a *artifactServer)
		opts       DownloadOptions
		wantRanges []string
		wantWaits  []time.Duration
		wantErr    error  // from reading
		wantErrMsg string // in the read error
	}{
		{name: "whole", wantRanges: []string{""}},
		{
			name:       "cut then resumed",
			setup:      func(a *artifactServer) { a.cutAt[0] = 1000 },
			wantRanges: []string{"", "bytes=1000-"},
			wantWaits:  []time.Duration{time.Second},
		},
		{
			name:       "cut twice",
			setup:      func(a *artifactServer) { a.cutAt[0] = 1000; a.cutAt[1] = 50000 },
			wantRanges: []string{"", "bytes=1000-", "bytes=51000-"},
			// 50000 bytes over a connection that lasted no time is not yet
			// a healthy link: the backoff goes on doubling.
			wantWaits: []time.Duration{time.Second, 2 * time.Second},
		},
		{
			name: "a flapping link runs out of attempts",
			setup: func(a *artifactServer) {
				for i := range 6 {
					a.cutAt[i] = 1000
				}
			},
			opts:       DownloadOptions{Attempts: 3},
			wantRanges: []string{"", "bytes=1000-", "bytes=2000-", "bytes=3000-"},
			wantWaits:  []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
			wantErrMsg: "giving up after 3 attempts at byte 4000",
		},
		{
			name: "a healthy connection resets the backoff",
			size: 3 << 20,
			setup: func(a *artifactServer) {
				a.cutAt[0], a.cutAt[1], a.cutAt[2], a.cutAt[3] = 1000, 1000, 1<<20+10, 1000
			},
			opts:       DownloadOptions{Attempts: 3},
			wantRanges: []string{"", "bytes=1000-", "bytes=2000-", "bytes=1050586-", "bytes=1051586-"},
			wantWaits:  []time.Duration{time.Second, 2 * time.Second, time.Second, 2 * time.Second},
		},
		{
			name:       "cut before any byte",
			setup:      func(a *artifactServer) { a.cutAt[0] = 0 },
			wantRanges: []string{"", "bytes=0-"},
			wantWaits:  []time.Duration{time.Second},
		},
		{
			name:       "server restarts earlier",
			setup:      func(a *artifactServer) { a.cutAt[0] = 1000; a.startEarly = 100 },
			wantRanges: []string{"", "bytes=1000-"},
			wantWaits:  []time.Duration{time.Second},
		},
		{
			name:       "resume backs off on 503",
			setup:      func(a *artifactServer) { a.cutAt[0] = 1000; a.fail[1] = 503; a.fail[2] = 503 },
			wantRanges: []string{"", "bytes=1000-", "bytes=1000-", "bytes=1000-"},
			wantWaits:  []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
		},
		{
			name: "gives up after the attempts",
			setup: func(a *artifactServer) {
				a.cutAt[0] = 1000
				for i := 1; i < 10; i++ {
					a.fail[i] = 503
				}
			},
			opts:       DownloadOptions{Attempts: 3, MaxDelay: 3 * time.Second},
			wantRanges: []string{"", "bytes=1000-", "bytes=1000-", "bytes=1000-"},
			wantWaits:  []time.Duration{time.Second, 2 * time.Second, 3 * time.Second},
			wantErrMsg: "giving up after 3 attempts at byte 1000",
		},
		{
			name:       "link expired on resume",
			setup:      func(a *artifactServer) { a.cutAt[0] = 1000; a.fail[1] = http.StatusForbidden },
			wantRanges: []string{"", "bytes=1000-"},
			wantWaits:  []time.Duration{time.Second},
			wantErrMsg: "resuming at byte 1000: unexpected status 403",
		},
		{
			name:       "server ignores Range",
			setup:      func(a *artifactServer) { a.cutAt[0] = 1000; a.ignoreRange = true },
			wantRanges: []string{"", "bytes=1000-"},
			wantWaits:  []time.Duration{time.Second},
			wantErr:    ErrBadRange,
			wantErrMsg: "got status 200",
		},
		{
			name:       "Content-Range total differs",
			setup:      func(a *artifactServer) { a.cutAt[0] = 1000; a.wrongTotal = true },
			wantRanges: []string{"", "bytes=1000-"},
			wantWaits:  []time.Duration{time.Second},
			wantErr:    ErrBadRange,
			wantErrMsg: "total differs",
		},
		{
			name:       "idle connection resumed",
			setup:      func(a *artifactServer) { a.stallAt[0] = 3000 },
			opts:       DownloadOptions{IdleTimeout: 100 * time.Millisecond},
			wantRanges: []string{"", "bytes=3000-"},
			wantWaits:  []time.Duration{time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := max(tt.size, size)
			a := newArtifactServer(t, size)
			if tt.setup != nil {
				tt.setup(a)
			}
			clock := newFakeClock()
			opts := tt.opts
			opts.Clock = clock
			if opts.InitialDelay == 0 {
				opts.InitialDelay = time.Second
			}
			rc, n, err := a.client(t).Download(context.Background(), a.srv.URL+"/artifacts/1", opts)
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			defer rc.Close()
			if n != int64(size) {
				t.Errorf("size = %d, want %d", n, size)
			}
			h := sha256.New()
			_, err = io.Copy(h, rc)
			switch {
			case tt.wantErr == nil && tt.wantErrMsg == "":
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if got, want := h.Sum(nil), sha256.Sum256(a.data); string(got) != string(want[:]) {
					t.Errorf("SHA-256 of the download differs from the artifact's")
				}
			default:
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantErrMsg) {
					t.Fatalf("read error = %v, want %v containing %q", err, tt.wantErr, tt.wantErrMsg)
				}
				if !strings.HasPrefix(err.Error(), "updater: download: ") {
					t.Errorf("error %q lacks the context prefix", err)
				}
			}
			if diff := cmp.Diff(tt.wantRanges, a.rangeHeaders()); diff != "" {
				t.Errorf("Range headers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWaits, clock.waits()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			for i, h := range a.headers {
				if h.Get("Authorization") != "" {
					t.Errorf("request %d sent Authorization", i)
				}
				if got := h.Get("Accept-Encoding"); got != "identity" {
					t.Errorf("request %d Accept-Encoding = %q, want identity", i, got)
				}
			}
		})
	}
}

func TestDownloadNoContentLength(t *testing.T) {
	a := newArtifactServer(t, 64<<10)
	a.noLength = true
	_, _, err := a.client(t).Download(context.Background(), a.srv.URL+"/a", DownloadOptions{Clock: newFakeClock()})
	if !errors.Is(err, ErrNoContentLength) {
		t.Fatalf("Download = %v, want ErrNoContentLength", err)
	}
}

func TestDownloadStatus(t *testing.T) {
	a := newArtifactServer(t, 1024)
	a.fail[0] = http.StatusForbidden
	_, _, err := a.client(t).Download(context.Background(), a.srv.URL+"/a", DownloadOptions{Clock: newFakeClock()})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("Download = %v, want a 403 StatusError", err)
	}
}

func TestDownloadRateLimit(t *testing.T) {
	const (
		size = 100_000
		rate = 10_000 // bytes/s; burst is one second's worth
	)
	a := newArtifactServer(t, size)
	clock := newFakeClock()
	rc, _, err := a.client(t).Download(context.Background(), a.srv.URL+"/a", DownloadOptions{Clock: clock, RateLimit: rate})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := rc.Read(buf)
		if n > rate {
			t.Fatalf("one Read returned %d bytes, over the %d-byte burst", n, rate)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var total time.Duration
	for _, d := range clock.waits() {
		total += d
	}
	// The first burst is free; the rest arrives at the rate.
	want := time.Duration(size-rate) * time.Second / rate
	if diff := total - want; diff < -time.Millisecond || diff > time.Millisecond {
		t.Errorf("waited %v in total, want %v", total, want)
	}
}

func TestDownloadContextCancel(t *testing.T) {
	a := newArtifactServer(t, 64<<10)
	a.stallAt[0] = 100
	ctx, cancel := context.WithCancel(context.Background())
	rc, _, err := a.client(t).Download(ctx, a.srv.URL+"/a", DownloadOptions{Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read = %v, want context.Canceled", err)
	}
}

func TestCheckContentRange(t *testing.T) {
	tests := []struct {
		v         string
		off, size int64
		want      int64
		wantErr   bool
	}{
		{v: "bytes 10-99/100", off: 10, size: 100, want: 10},
		{v: "bytes 5-99/100", off: 10, size: 100, want: 5},
		{v: "bytes 11-99/100", off: 10, size: 100, wantErr: true},
		{v: "bytes 10-98/100", off: 10, size: 100, wantErr: true},
		{v: "bytes 10-99/*", off: 10, size: 100, wantErr: true},
		{v: "bytes 10-99/101", off: 10, size: 100, wantErr: true},
		{v: "", off: 10, size: 100, wantErr: true},
		{v: "items 10-99/100", off: 10, size: 100, wantErr: true},
	}
	for _, tt := range tests {
		got, err := checkContentRange(tt.v, tt.off, tt.size)
		if tt.wantErr {
			if !errors.Is(err, ErrBadRange) {
				t.Errorf("checkContentRange(%q) = %d, %v; want ErrBadRange", tt.v, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("checkContentRange(%q) = %d, %v; want %d", tt.v, got, err, tt.want)
		}
	}
}
