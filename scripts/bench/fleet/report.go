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
	fmt.Fprintf(f.out, "%-10s %6s %6s  %-8s %6s %6s  %8s  %s\n", "second", "back", "share", "", "begun", "share", "connects", "refused (the broker's counts in that second)")
	var peakBack, peakBegun peak
	for s := 0; s <= last; s++ {
		c, b := back[s], begun[s]
		peakBack.see(c, s)
		peakBegun.see(b, s)
		bar := strings.Repeat("#", (c*200/f.n+1)/2)
		connects, refused := "?", ""
		if d, ok := perSec[s]; ok {
			connects, refused = fmt.Sprint(d.Connects), refusals(d.Refused)
		}
		fmt.Fprintf(f.out, "%3d-%-3d s  %6d %5.1f%%  %-8s %6d %5.1f%%  %8s  %s\n",
			s, s+1, c, f.share(c), bar, b, f.share(b), connects, refused)
	}
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
