package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
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
// in it; then the largest shares and when all were back. Under a connect
// quota, it also says how the accepted CONNECTs kept to the rate, what
// the fleet asked of the broker, and that no link gave up.
func (f *fleet) report() {
	back, begun := map[int]int{}, map[int]int{}
	for i, at := range f.back {
		if at == 0 {
			continue // not back (the run timed out)
		}
		back[int(time.Duration(at-f.started)/time.Second)]++
		begun[int(time.Duration(max(f.backBegun[i]-f.started, 0))/time.Second)]++
	}
	last := int(f.lastBack() / time.Second)
	if f.nBack < f.n && len(f.stats) > 0 {
		// Not all back: the seconds the broker counted.
		last = max(last, int(time.Duration(f.stats[len(f.stats)-1].At-f.started)/time.Second)-1)
	}
	perSec := f.brokerPerSecond(last + 1)
	fmt.Fprintln(f.out, "# each second after the broker came back: back = links connected again in it; begun = links whose")
	fmt.Fprintln(f.out, "# successful attempt began in it; connects, refused = what the broker counted in it (# = 1 % of N)")
	if f.rate > 0 {
		fmt.Fprintf(f.out, "# connect quota %g/s: seconds within it fold by the minute; a second marked > rate accepted more than the\n", f.rate)
		fmt.Fprintln(f.out, "# rate allows over its measured length (the broker's counts are taken about every second)")
	}
	f.secWidth = max(3, len(strconv.Itoa(last+1)))
	fmt.Fprintf(f.out, "%-*s %6s %6s  %-8s %6s %6s  %8s  %s\n", 2*f.secWidth+4, "second", "back", "share", "", "begun", "share", "connects", "refused")
	var peakBack, peakBegun peak
	var quiet fold // quiet seconds not printed yet
	for s := 0; s <= last; s++ {
		c, b := back[s], begun[s]
		peakBack.see(c, s)
		peakBegun.see(b, s)
		d, ok := perSec[s]
		if f.rate > 0 && quiet.to > quiet.from && s%60 == 0 {
			f.printFold(&quiet) // a fold line a minute at most
		}
		if ok && f.quiet(c, b, d) {
			quiet.add(s, c, b, d)
			continue
		}
		f.printFold(&quiet)
		bar := strings.Repeat("#", (c*200/f.n+1)/2)
		connects, refused := "?", ""
		if ok {
			connects, refused = fmt.Sprint(d.Connects), refusals(d.Refused)
			if f.aboveRate(d) {
				refused = strings.TrimSpace("> rate " + refused)
			}
		}
		line := fmt.Sprintf("%s  %6d %5.1f%%  %-8s %6d %5.1f%%  %8s  %s",
			f.seconds(s, s+1), c, f.share(c), bar, b, f.share(b), connects, refused)
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
	if f.rate > 0 {
		f.reportQuota(perSec, last)
	}
	conns := 0
	if len(f.stats) > 0 {
		conns = f.stats[len(f.stats)-1].Connections
	}
	if f.nBack < f.n {
		fmt.Fprintf(f.out, "NOT ALL BACK: %d of %d reconnected within %d s after the broker came back; broker connections %d\n",
			f.nBack, f.n, last+1, conns)
	} else {
		fmt.Fprintf(f.out, "all %d reconnected %v after the broker came back; broker connections %d\n",
			f.n, f.lastBack().Round(time.Millisecond), conns)
	}
	f.reportStates(last)
}

// quiet reports whether a second, c links back and b begun in it, the
// broker's counts d, folds into one line with its neighbours: without a
// quota, under 1 % of N back and begun and no refusals; with one, the
// accepted CONNECTs within the rate.
func (f *fleet) quiet(c, b int, d brokerSecond) bool {
	if f.rate > 0 {
		return !f.aboveRate(d)
	}
	return 100*c < f.n && 100*b < f.n && len(d.Refused) == 0
}

// aboveRate reports whether the broker accepted more CONNECTs in d than
// the quota's rate allows over d's length, rounded up: the broker's
// snapshots are about, not exactly, a second apart.
func (f *fleet) aboveRate(d brokerSecond) bool {
	return f.rate > 0 && float64(d.Connects) > math.Ceil(f.rate*d.span.Seconds())
}

// settleSeconds are the first seconds after the broker came back, when a
// quota's bucket, full at the start, admits a burst on top of the rate.
const settleSeconds = 3

// reportQuota prints how the accepted CONNECTs of seconds 0..last kept to
// the quota, and what the fleet asked of the broker in all.
func (f *fleet) reportQuota(perSec map[int]brokerSecond, last int) {
	var first, after peak
	var above []string
	var total devcloud.BrokerStats
	total.Refused = map[devcloud.BrokerRefusal]int64{}
	for s := 0; s <= last; s++ {
		d, ok := perSec[s]
		if !ok {
			continue
		}
		if s < settleSeconds {
			first.see(int(d.Connects), s)
		} else {
			after.see(int(d.Connects), s)
		}
		if f.aboveRate(d) {
			above = append(above, fmt.Sprintf("%d-%d s: %d", s, s+1, d.Connects))
		}
		total.Connects += d.Connects
		for r, n := range d.Refused {
			total.Refused[r] += n
		}
	}
	fmt.Fprintf(f.out, "connect quota %g/s (burst %d): at most %d accepted CONNECTs in a second after the first %d (second %d-%d), %d in the first %d\n",
		f.rate, f.burst, after.n, settleSeconds, after.sec, after.sec+1, first.n, settleSeconds)
	list := strings.Join(above[:min(len(above), 10)], ", ")
	if len(above) > 10 {
		list += ", ..."
	}
	fmt.Fprintf(f.out, "seconds above the rate: %d of %d (%s)\n", len(above), last+1, orNone(list))
	var refused int64
	for _, n := range total.Refused {
		refused += n
	}
	fmt.Fprintf(f.out, "CONNECTs the broker answered in those seconds: %d accepted + %d refused (%s) = %.2f a link\n",
		total.Connects, refused, orNone(refusals(total.Refused)), float64(total.Connects+refused)/float64(f.n))
	if len(perSec) < last+1 {
		fmt.Fprintf(f.out, "(the broker's counts are missing for %d of those seconds)\n", last+1-len(perSec))
	}
}

// fold gathers consecutive quiet seconds (see fleet.quiet), which print
// as one line.
type fold struct {
	from, to          int // seconds [from, to)
	back, begun       int
	conns, maxConns   int64
	maxBack, maxBegun int
	refused           map[devcloud.BrokerRefusal]int64
}

func (q *fold) add(s, back, begun int, d brokerSecond) {
	if q.to == q.from {
		*q = fold{from: s, refused: map[devcloud.BrokerRefusal]int64{}}
	}
	q.to = s + 1
	q.back += back
	q.begun += begun
	q.conns += d.Connects
	q.maxConns = max(q.maxConns, d.Connects)
	q.maxBack = max(q.maxBack, back)
	q.maxBegun = max(q.maxBegun, begun)
	for r, n := range d.Refused {
		q.refused[r] += n
	}
}

// printFold prints the quiet seconds gathered, a single one as any other
// second, several as one line with their largest shares in a second, and
// empties q.
func (f *fleet) printFold(q *fold) {
	switch q.to - q.from {
	case 0:
		return
	case 1:
		line := fmt.Sprintf("%s  %6d %5.1f%%  %-8s %6d %5.1f%%  %8d  %s", f.seconds(q.from, q.to), q.back, f.share(q.back),
			strings.Repeat("#", (q.back*200/f.n+1)/2), q.begun, f.share(q.begun), q.conns, refusals(q.refused))
		fmt.Fprintln(f.out, strings.TrimRight(line, " "))
	default:
		refused := "no refusals"
		if len(q.refused) > 0 {
			refused = "refused " + refusals(q.refused)
		}
		if f.rate > 0 {
			fmt.Fprintf(f.out, "%s  %6d back in all, at most %d in one second; %d connects, at most %d in one second; %s\n",
				f.seconds(q.from, q.to), q.back, q.maxBack, q.conns, q.maxConns, refused)
		} else {
			fmt.Fprintf(f.out, "%s  %6d in all, at most %.1f%% back and %.1f%% begun in one second; %d connects, %s\n",
				f.seconds(q.from, q.to), q.back, f.share(q.maxBack), f.share(q.maxBegun), q.conns, refused)
		}
	}
	*q = fold{}
}

// seconds labels the seconds [from, to) in the histogram's first column,
// as wide as its largest second needs.
func (f *fleet) seconds(from, to int) string {
	return fmt.Sprintf("%*d-%-*d s", f.secWidth, from, f.secWidth, to)
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

// brokerSecond is what the broker counted in one second after it came
// back, and the length of that second as its snapshots measured it.
type brokerSecond struct {
	devcloud.BrokerStats
	span time.Duration
}

// brokerPerSecond is the broker's counts in each of the first secs
// seconds after it came back: the difference of the snapshots it sent at
// each whole second since its start. A second whose snapshots are
// missing is left out.
func (f *fleet) brokerPerSecond(secs int) map[int]brokerSecond {
	at := map[int]statsMsg{}
	for _, s := range f.stats {
		k := int((time.Duration(s.At-f.started) + time.Second/2) / time.Second)
		at[k] = s
	}
	out := map[int]brokerSecond{}
	for s := range secs {
		a, ok1 := at[s]
		b, ok2 := at[s+1]
		if !ok1 || !ok2 {
			continue
		}
		d := brokerSecond{
			BrokerStats: devcloud.BrokerStats{Connects: b.Stats.Connects - a.Stats.Connects, Refused: map[devcloud.BrokerRefusal]int64{}},
			span:        time.Duration(b.At - a.At),
		}
		for r, n := range b.Stats.Refused {
			if n-a.Stats.Refused[r] != 0 {
				d.Refused[r] = n - a.Stats.Refused[r]
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

// reportStates prints the links by state at each minute after the broker
// came back and at the end, as the links processes counted them every
// second, and whether any link gave up (its Run returned) at any count.
func (f *fleet) reportStates(last int) {
	if len(f.states) == 0 {
		return
	}
	fmt.Fprintln(f.out, "# links by state after the broker came back, counted every second by the links processes; throttled =")
	fmt.Fprintln(f.out, "# attempts the links took as throttled (iot.ErrThrottled) so far, all links (and most of one link)")
	var marks []int64
	for m := time.Duration(0); m <= time.Duration(last+1)*time.Second; m += time.Minute {
		marks = append(marks, f.started+int64(m))
	}
	var end int64
	for _, ss := range f.states {
		end = max(end, ss[len(ss)-1].At)
	}
	marks = append(marks, end)
	for i, t := range marks {
		st := f.statesAt(t)
		when := fmt.Sprintf("+%v", time.Duration(t-f.started).Round(time.Second))
		if i == len(marks)-1 {
			when += " (end)"
		}
		fmt.Fprintf(f.out, "%-14s connected %6d, connecting %5d, backing off %6d, gave up %d; throttled %d (at most %d a link)\n",
			when, st.Connected, st.Connecting, st.BackingOff, st.GaveUp, st.Throttled, st.MaxThrottled)
	}
	gaveUp, counts := 0, 0
	for _, ss := range f.states {
		for _, st := range ss {
			if st.At >= f.started {
				counts++
				gaveUp = max(gaveUp, st.GaveUp+st.NotStarted)
			}
		}
	}
	if gaveUp > 0 {
		fmt.Fprintf(f.out, "GAVE UP: in one count %d links were neither connected, connecting nor backing off\n", gaveUp)
		return
	}
	fmt.Fprintf(f.out, "none gave up: in each of %d counts since the broker came back, every link was connected, connecting or backing off\n", counts)
}

// statesAt sums the links processes' first counts at or after t (their
// last, if none is that late).
func (f *fleet) statesAt(t int64) statesMsg {
	var sum statesMsg
	for _, ss := range f.states {
		i := min(sort.Search(len(ss), func(i int) bool { return ss[i].At >= t }), len(ss)-1)
		st := ss[i]
		sum.Connected += st.Connected
		sum.Connecting += st.Connecting
		sum.BackingOff += st.BackingOff
		sum.NotStarted += st.NotStarted
		sum.GaveUp += st.GaveUp
		sum.Throttled += st.Throttled
		sum.MaxThrottled = max(sum.MaxThrottled, st.MaxThrottled)
		sum.Reconnects += st.Reconnects
	}
	return sum
}
