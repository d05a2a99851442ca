package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// progress draws how much of an Artifact has been streamed: a bar redrawn
// in place on a terminal, a line every 10% otherwise (logs, CI).
type progress struct {
	w     io.Writer
	name  string
	total int64 // -1 when unknown
	tty   bool
	start time.Time

	n        atomic.Int64
	lastDraw time.Time
	lastTen  int64
}

func newProgress(w io.Writer, name string, total int64) *progress {
	return &progress{w: w, name: filepath.Base(name), total: total, tty: isTerminal(w), start: time.Now(), lastTen: -1}
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
	if p.tty {
		if now.Sub(p.lastDraw) >= 100*time.Millisecond {
			p.lastDraw = now
			p.draw(done, now)
		}
		return
	}
	if p.total > 0 {
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

func (p *progress) draw(done int64, now time.Time) {
	const width = 30
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %s %s   ", p.name, mib(float64(done)), p.rate(done, now))
		return
	}
	filled := int(done * width / p.total)
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
	fmt.Fprintf(p.w, "\r%s [%s] %3d%% %s of %s %s   ", p.name, bar, done*100/p.total, mib(float64(done)), mib(float64(p.total)), p.rate(done, now))
}

// done ends the bar; nil-safe so callers need not check --no-progress.
func (p *progress) done() {
	if p == nil {
		return
	}
	if p.tty {
		p.draw(p.n.Load(), time.Now())
		fmt.Fprintln(p.w)
	}
}
