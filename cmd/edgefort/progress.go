package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws how much of an Artifact has been streamed: a bar redrawn
// in place on a terminal, a line every 10% otherwise (logs, CI).
//
// 100% means installed, not read: the installer reads ahead (a small
// file in one read), and a file refused at its first bytes was read
// whole. So streaming shows at most 99% and only done, called once the
// install succeeded, draws 100%.
type progress struct {
	w     io.Writer
	name  string
	total int64 // -1 when unknown
	tty   bool
	start time.Time

	n atomic.Int64

	// mu guards the output: a request body may still be read by the HTTP
	// transport's goroutine while done or end runs.
	mu       sync.Mutex
	lastDraw time.Time
	lastTen  int64
	drawn    bool // a bar is on the terminal's current line
	ended    bool // done or end finished the output
}

func newProgress(w io.Writer, name string, total int64) *progress {
	now := time.Now()
	// The first bar is drawn after the first redraw interval, so that a
	// file refused at once draws none.
	return &progress{w: w, name: filepath.Base(name), total: total, tty: isTerminal(w), start: now, lastDraw: now, lastTen: -1}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) reader(r io.Reader) io.Reader { return &progressReader{r: r, p: p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(int64(n))
	return n, err
}

func (p *progress) add(n int64) {
	done := p.n.Add(n)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	if p.tty {
		if now.Sub(p.lastDraw) >= 100*time.Millisecond {
			p.lastDraw = now
			p.drawLocked(done, now, false)
		}
		return
	}
	// The last tenth is done's to print: reading the end of the file
	// does not mean it installed (a small one is read in one go).
	if p.total > 0 && done < p.total {
		if ten := done * 10 / p.total; ten != p.lastTen {
			p.lastTen = ten
			fmt.Fprintf(p.w, "%s: %3d%% %s\n", p.name, ten*10, p.rate(done, now))
		}
	}
}

func (p *progress) rate(done int64, now time.Time) string {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 {
		return ""
	}
	return fmt.Sprintf("%s/s", mib(float64(done)/secs))
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// drawLocked redraws the bar; below 100% unless installed (see progress).
// p.mu is held.
func (p *progress) drawLocked(done int64, now time.Time, installed bool) {
	const width = 30
	p.drawn = true
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %s %s   ", p.name, mib(float64(done)), p.rate(done, now))
		return
	}
	pct := done * 100 / p.total
	if !installed {
		pct = min(pct, 99)
	}
	filled := int(pct * width / 100)
	bar := make([]byte, width)
	for i := range bar {
		switch {
		case i < filled:
			bar[i] = '='
		case i == filled:
			bar[i] = '>'
		default:
			bar[i] = ' '
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3d%% %s of %s %s   ", p.name, bar, pct, mib(float64(done)), mib(float64(p.total)), p.rate(done, now))
}

// done draws 100%: the install succeeded. Nil-safe, as are add's callers
// and end, so that callers need not check --no-progress.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	now := time.Now()
	switch {
	case p.tty:
		p.drawLocked(p.n.Load(), now, true)
		fmt.Fprintln(p.w)
	case p.total > 0:
		fmt.Fprintf(p.w, "%s: 100%% %s\n", p.name, p.rate(p.n.Load(), now))
	}
}

// end finishes the output whatever happened: after a failure it ends a
// bar drawn on the terminal's line, so that the error starts a line of its
// own, and draws no 100%.
func (p *progress) end() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
