package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/edgefort/edgefort/devcloud"
)

const goalShare = 0.05

// lastBack is when the last link was back, after the broker.
func (f *fleet) lastBack() time.Duration {
	var last int64
	for _, at := range f.back {
		last = max(last, at-f.started)
	}
	return time.Duration(last)
}

// report prints, for each second after the broker came back, how many
// links were back in it (share of N, 1 # per 1 %), how many began the
// attempt that brought them back in it (the load the fleet offered,
// which a stalled broker does not bunch up), and what the broker counted
// in it; then the largest shares and when all were back.
func (f *fleet) report() {
	back, begun := map[int]int{}, map[int]int{}
	for i, at := range f.back {
		back[int(time.Duration(at-f.started)/time.Second)]++
		begun[int(time.Duration(max(f.backBegun[i]-f.started, 0))/time.Second)]++
	}
	last := int(f.lastBack() / time.Second)
	perSec := f.brokerPerSecond(last + 1)
	fmt.Fprintln(f.out, "# each second after the broker came back: back = links connected again in it; begun = links whose")
	fmt.Fprintln(f.out, "# successful attempt began in it; connects, refused = what the broker counted in it (# = 1 % of N)")
	fmt.Fprintf(f.out, "%-10s %6s %6s  %-8s %6s %6s  %8s  %s\n", "second", "back", "share", "", "begun", "share", "connects", "refused")
	var peakBack, peakBegun peak
	var quiet fold // quiet seconds not printed yet
	for s := 0; s <= last; s++ {
		c, b := back[s], begun[s]
		peakBack.see(c, s)
		peakBegun.see(b, s)
		d, ok := perSec[s]
		if 100*c < f.n && 100*b < f.n && ok && len(d.Refused) == 0 {
			quiet.add(s, c, b, d.Connects)
			continue
		}
		f.printFold(&quiet)
		bar := strings.Repeat("#", (c*200/f.n+1)/2)
		connects, refused := "?", ""
		if ok {
			connects, refused = fmt.Sprint(d.Connects), refusals(d.Refused)
		}
		line := fmt.Sprintf("%3d-%-3d s  %6d %5.1f%%  %-8s %6d %5.1f%%  %8s  %s",
			s, s+1, c, f.share(c), bar, b, f.share(b), connects, refused)
		fmt.Fprintln(f.out, strings.TrimRight(line, " "))
	}
	f.printFold(&quiet)
	for _, p := range []struct {
		what string
		peak
	}{{"links back", peakBack}, {"reconnects begun", peakBegun}} {
		verdict := "meets"
		if f.share(p.n) > 100*goalShare {
			verdict = "FAILS"
		}
		fmt.Fprintf(f.out, "max share of N in one second, %s: %.1f%% (%d links, second %d-%d) — %s the goal of <= %.0f%%\n",
			p.what, f.share(p.n), p.n, p.sec, p.sec+1, verdict, 100*goalShare)
	}
	conns := 0
	if len(f.stats) > 0 {
		conns = f.stats[len(f.stats)-1].Connections
	}
	fmt.Fprintf(f.out, "all %d reconnected %v after the broker came back; broker connections %d\n",
		f.n, f.lastBack().Round(time.Millisecond), conns)
}

// fold gathers consecutive quiet seconds (under 1 % of N back and begun,
// no refusals), which print as one line.
type fold struct {
	from, to           int // seconds [from, to)
	back, begun, conns int
	maxBack, maxBegun  int
}

func (q *fold) add(s, back, begun int, conns int64) {
	if q.to == q.from {
		*q = fold{from: s}
	}
	q.to = s + 1
	q.back += back
	q.begun += begun
	q.conns += int(conns)
	q.maxBack = max(q.maxBack, back)
	q.maxBegun = max(q.maxBegun, begun)
}

// printFold prints the quiet seconds gathered, a single one as any other
// second, several as one line with their largest shares in a second, and
// empties q.
func (f *fleet) printFold(q *fold) {
	switch q.to - q.from {
	case 0:
		return
	case 1:
		fmt.Fprintf(f.out, "%3d-%-3d s  %6d %5.1f%%  %-8s %6d %5.1f%%  %8d\n", q.from, q.to, q.back, f.share(q.back),
			strings.Repeat("#", (q.back*200/f.n+1)/2), q.begun, f.share(q.begun), q.conns)
	default:
		fmt.Fprintf(f.out, "%3d-%-3d s  %6d in all, at most %.1f%% back and %.1f%% begun in one second; %d connects, no refusals\n",
			q.from, q.to, q.back, f.share(q.maxBack), f.share(q.maxBegun), q.conns)
	}
	*q = fold{}
}

// peak is the largest count seen and its second.
type peak struct{ n, sec int }

func (p *peak) see(n, sec int) {
	if n > p.n {
		p.n, p.sec = n, sec
	}
}

// share is c as a percentage of N.
func (f *fleet) share(c int) float64 { return 100 * float64(c) / float64(f.n) }

// brokerPerSecond is the broker's counts in each of the first secs
// seconds after it came back: the difference of the snapshots it sent at
// each whole second since its start. A second whose snapshots are
// missing is left out.
func (f *fleet) brokerPerSecond(secs int) map[int]devcloud.BrokerStats {
	at := map[int]devcloud.BrokerStats{}
	for _, s := range f.stats {
		k := int((time.Duration(s.At-f.started) + time.Second/2) / time.Second)
		at[k] = s.Stats
	}
	out := map[int]devcloud.BrokerStats{}
	for s := range secs {
		a, ok1 := at[s]
		b, ok2 := at[s+1]
		if !ok1 || !ok2 {
			continue
		}
		d := devcloud.BrokerStats{Connects: b.Connects - a.Connects, Refused: map[devcloud.BrokerRefusal]int64{}}
		for r, n := range b.Refused {
			if n-a.Refused[r] != 0 {
				d.Refused[r] = n - a.Refused[r]
			}
		}
		out[s] = d
	}
	return out
}

func refusals(m map[devcloud.BrokerRefusal]int64) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", r, m[r]))
	}
	return strings.Join(parts, " ")
}
