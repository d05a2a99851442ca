package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/internal/backoff"
)

// Download defaults, used for zero DownloadOptions fields.
const (
	DefaultDownloadAttempts = 10
	DefaultResumeDelay      = time.Minute
	DefaultMaxResumeDelay   = 5 * time.Minute
	DefaultIdleTimeout      = time.Minute
	// A connection counts as healthy again, resetting the attempts, once
	// it has delivered resetBytes or stayed up for resetAfter: a link that
	// delivers a few bytes and drops must still run out of attempts.
	resetBytes = 1 << 20
	resetAfter = 30 * time.Second
)

// DownloadOptions tunes Download. The zero value uses the defaults above
// and no bandwidth limit.
type DownloadOptions struct {
	// Attempts is how many times a cut download is resumed before giving
	// up. The count starts again once a connection has proved healthy
	// (delivered 1 MiB, or stayed up 30 s), so a long download over a
	// link that drops now and then completes, while one that delivers a
	// few bytes and drops does not retry forever. Zero means
	// DefaultDownloadAttempts.
	Attempts int
	// InitialDelay is the wait before the first resume; it doubles with
	// each further attempt without progress, up to MaxDelay. Zero means
	// DefaultResumeDelay (Mender waits a minute).
	InitialDelay time.Duration
	// MaxDelay caps the wait between resumes. Zero means
	// DefaultMaxResumeDelay.
	MaxDelay time.Duration
	// IdleTimeout is how long a read may go without receiving a byte
	// before the connection is treated as cut and resumed. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// RateLimit caps the download at this many bytes per second. Zero
	// means unlimited.
	RateLimit int64
	// Clock supplies time for backoff and the rate limit. Nil means the
	// real clock. Tests inject one to count waits.
	Clock Clock
}

// Clock is the time source Download waits on.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, returning ctx.Err() in that case.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d) }

// Download fetches an artifact from its presigned link: a plain GET with
// no JWT, over the client's HTTP client (so the same TLS), asking for no
// content encoding so that byte offsets stay valid. The response must
// carry Content-Length, returned as size.
//
// The returned reader resumes a cut or idle connection transparently with
// "Range: bytes=N-", expecting 206 and a Content-Range starting at or
// before N (earlier bytes are skipped) with the same total; anything else
// ends the read with ErrBadRange rather than corrupt data. Reading ends
// with io.EOF after exactly size bytes. The caller closes the reader;
// ctx bounds the whole download.
func (c *Client) Download(ctx context.Context, uri string, opts DownloadOptions) (io.ReadCloser, int64, error) {
	r := newResumer(ctx, c.http, uri, opts)
	if err := r.start(); err != nil {
		return nil, 0, fmt.Errorf("updater: download: %w", err)
	}
	return r, r.size, nil
}

// resumer is the reader Download returns. It is not safe for concurrent
// Reads, like any io.Reader.
type resumer struct {
	ctx   context.Context
	http  *http.Client
	uri   string
	opts  DownloadOptions
	clock Clock
	limit *byteLimiter // nil without a rate limit

	size     int64
	off      int64 // bytes handed to the caller
	failures int   // resumes since the last healthy connection
	err      error // sticky error

	connAt  time.Time // when the current connection started
	connOff int64     // r.off when it started

	body   io.ReadCloser // current response body, nil between connections
	cancel context.CancelFunc
	idle   *time.Timer

	mu       sync.Mutex // guards timedOut
	timedOut bool
}

func newResumer(ctx context.Context, hc *http.Client, uri string, opts DownloadOptions) *resumer {
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultDownloadAttempts
	}
	if opts.InitialDelay <= 0 {
		opts.InitialDelay = DefaultResumeDelay
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxResumeDelay
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	clock := opts.Clock
	if clock == nil {
		clock = realClock{}
	}
	r := &resumer{ctx: ctx, http: hc, uri: uri, opts: opts, clock: clock}
	if opts.RateLimit > 0 {
		r.limit = newByteLimiter(opts.RateLimit, clock)
	}
	return r
}

// start sends the first GET; it is not retried here (the caller's loop
// decides when to try again).
func (r *resumer) start() error {
	resp, err := r.get(-1)
	if err != nil {
		if r.idleTimedOut() && r.ctx.Err() == nil {
			return fmt.Errorf("no response within %s", r.opts.IdleTimeout)
		}
		return err
	}
	if resp.StatusCode != http.StatusOK {
		r.closeBody(resp.Body)
		return statusError(resp)
	}
	if resp.ContentLength < 0 {
		r.closeBody(resp.Body)
		return ErrNoContentLength
	}
	r.size = resp.ContentLength
	r.body = resp.Body
	r.connAt, r.connOff = r.clock.Now(), r.off
	r.idle.Stop() // runs again inside Read
	return nil
}

// get sends a GET, from offset from when from >= 0. The request has its
// own context that the idle timer cancels.
func (r *resumer) get(from int64) (*http.Response, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.uri, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	// Setting Accept-Encoding stops net/http adding gzip and transparently
	// decompressing, which would make offsets meaningless.
	req.Header.Set("Accept-Encoding", "identity")
	if from >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
	}
	r.mu.Lock()
	r.timedOut = false
	r.mu.Unlock()
	r.cancel = cancel
	r.idle = time.AfterFunc(r.opts.IdleTimeout, func() {
		r.mu.Lock()
		r.timedOut = true
		r.mu.Unlock()
		cancel()
	})
	resp, err := r.http.Do(req)
	if err != nil {
		r.stopConn()
		return nil, err
	}
	return resp, nil
}

// stopConn stops the idle timer and the request context.
func (r *resumer) stopConn() {
	if r.idle != nil {
		r.idle.Stop()
		r.idle = nil
	}
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
}

func (r *resumer) closeBody(b io.ReadCloser) {
	b.Close()
	r.stopConn()
}

func (r *resumer) idleTimedOut() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timedOut
}

// Read reads the artifact, resuming after a cut.
func (r *resumer) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.off >= r.size {
		if r.body != nil {
			r.closeBody(r.body)
			r.body = nil
		}
		return 0, io.EOF
	}
	if r.limit != nil && int64(len(p)) > r.limit.burst() {
		p = p[:r.limit.burst()]
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	for {
		if r.body == nil {
			if err := r.resume(); err != nil {
				r.err = fmt.Errorf("updater: download: %w", err)
				return 0, r.err
			}
		}
		// The idle timer runs only while waiting for the server, not while
		// the caller or the rate limit holds the reader.
		r.idle.Reset(r.opts.IdleTimeout)
		n, err := r.body.Read(p)
		r.idle.Stop()
		r.off += int64(n)
		if n > 0 {
			if r.failures > 0 && (r.off-r.connOff >= resetBytes || r.clock.Now().Sub(r.connAt) >= resetAfter) {
				r.failures = 0
			}
			if r.limit != nil {
				if werr := r.limit.wait(r.ctx, int64(n)); werr != nil {
					r.err = fmt.Errorf("updater: download: %w", werr)
					return n, nil // hand over what arrived; the error comes next
				}
			}
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF && r.off == r.size {
			r.closeBody(r.body)
			r.body = nil
			return n, io.EOF
		}
		// The connection was cut, went idle, or ended early.
		idle := r.idleTimedOut()
		r.closeBody(r.body)
		r.body = nil
		if cerr := r.ctx.Err(); cerr != nil {
			r.err = fmt.Errorf("updater: download: %w", cerr)
			if n > 0 {
				return n, nil // hand over what arrived; the error comes next
			}
			return 0, r.err
		}
		if n > 0 {
			return n, nil // resume on the next Read
		}
		if idle {
			err = fmt.Errorf("no data for %s", r.opts.IdleTimeout)
		}
		if r.failures >= r.opts.Attempts {
			r.err = fmt.Errorf("updater: download: giving up after %d attempts at byte %d of %d: %w",
				r.failures, r.off, r.size, err)
			return 0, r.err
		}
	}
}

// resume waits the backoff, then asks for the rest with a Range request.
// Transport errors and 5xx are retried up to Attempts; a reply that does
// not honour the range ends the download with ErrBadRange.
func (r *resumer) resume() error {
	for {
		if r.failures >= r.opts.Attempts {
			return fmt.Errorf("giving up after %d attempts at byte %d of %d", r.failures, r.off, r.size)
		}
		// No jitter: Mender's schedule, doubling to MaxDelay; the count
		// doubles as the attempts used, so it stays here.
		delay := backoff.Policy{Initial: r.opts.InitialDelay, Max: r.opts.MaxDelay, Floor: 1}.Delay(r.failures, 0)
		r.failures++
		if err := r.clock.Sleep(r.ctx, delay); err != nil {
			return err
		}
		resp, err := r.get(r.off)
		if err != nil {
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			continue
		}
		if resp.StatusCode >= 500 {
			r.closeBody(resp.Body)
			continue
		}
		switch resp.StatusCode {
		case http.StatusPartialContent:
		case http.StatusOK, http.StatusRequestedRangeNotSatisfiable:
			r.closeBody(resp.Body)
			return fmt.Errorf("%w: resuming at byte %d got status %d", ErrBadRange, r.off, resp.StatusCode)
		default: // such as 403 when the presigned link expired
			defer r.stopConn()
			return fmt.Errorf("resuming at byte %d: %w", r.off, statusError(resp))
		}
		start, err := checkContentRange(resp.Header.Get("Content-Range"), r.off, r.size)
		if err != nil {
			r.closeBody(resp.Body)
			return err
		}
		if skip := r.off - start; skip > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, skip); err != nil {
				r.closeBody(resp.Body)
				continue
			}
		}
		r.body = resp.Body
		r.connAt, r.connOff = r.clock.Now(), r.off
		r.idle.Stop() // runs again inside Read
		return nil
	}
}

// checkContentRange parses "bytes START-END/TOTAL" and checks it covers
// from off to the end of an artifact of size bytes. It returns START.
func checkContentRange(v string, off, size int64) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("%w: Content-Range %q for bytes=%d- of %d: %s", ErrBadRange, v, off, size, why)
	}
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return bad("not a byte range")
	}
	span, totalS, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no total")
	}
	startS, endS, ok := strings.Cut(span, "-")
	if !ok {
		return bad("no end")
	}
	start, err1 := strconv.ParseInt(startS, 10, 64)
	end, err2 := strconv.ParseInt(endS, 10, 64)
	total, err3 := strconv.ParseInt(totalS, 10, 64)
	switch {
	case err1 != nil || err2 != nil || err3 != nil:
		return bad("malformed")
	case total != size:
		return bad("total differs from the original Content-Length")
	case start > off:
		return bad("starts after the offset asked for")
	case start < 0 || end != size-1:
		return bad("does not run to the end")
	}
	return start, nil
}

// Close stops the download.
func (r *resumer) Close() error {
	if r.body != nil {
		r.closeBody(r.body)
		r.body = nil
	}
	if r.err == nil {
		r.err = errors.New("updater: download: reader closed")
	}
	return nil
}

var _ io.ReadCloser = (*resumer)(nil)
