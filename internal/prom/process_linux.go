package prom

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc/<pid>/stat's times: USER_HZ is 100 on every
// Linux architecture Go supports.
const userHZ = 100

// procLimit bounds the /proc files read (each is well under a page).
const procLimit = 64 << 10

func readProc(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, procLimit))
}

func (c *processCollector) Collect(ch chan<- Metric) {
	if st, err := readStat(); err == nil {
		ch <- MustNewConstMetric(c.cpu, CounterValue, st.cpuSeconds)
		ch <- MustNewConstMetric(c.vsize, GaugeValue, st.vsize)
		ch <- MustNewConstMetric(c.rss, GaugeValue, st.rss)
		if boot, err := bootTime(); err == nil {
			ch <- MustNewConstMetric(c.start, GaugeValue, boot+st.startTicks/userHZ)
		}
	}
	if n, err := openFDs(); err == nil {
		ch <- MustNewConstMetric(c.openFDs, GaugeValue, n)
	}
	if b, err := readProc("/proc/self/limits"); err == nil {
		if v, ok := limit(b, "Max open files"); ok {
			ch <- MustNewConstMetric(c.maxFDs, GaugeValue, v)
		}
		if v, ok := limit(b, "Max address space"); ok {
			ch <- MustNewConstMetric(c.maxVsize, GaugeValue, v)
		}
	}
}

type procStat struct {
	cpuSeconds, startTicks, vsize, rss float64
}

// readStat parses /proc/self/stat: the fields after the command name,
// which is in parentheses and may itself hold spaces or parentheses.
func readStat() (procStat, error) {
	b, err := readProc("/proc/self/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("/proc/self/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return procStat{}, errors.New("/proc/self/stat: too few fields")
	}
	// f[0] is field 3 (state) of proc(5).
	var v [4]float64
	for j, k := range []int{11, 12, 19, 20} { // utime, stime, starttime, vsize
		if v[j], err = strconv.ParseFloat(f[k], 64); err != nil {
			return procStat{}, err
		}
	}
	rssPages, err := strconv.ParseFloat(f[21], 64)
	if err != nil {
		return procStat{}, err
	}
	return procStat{
		cpuSeconds: (v[0] + v[1]) / userHZ,
		startTicks: v[2],
		vsize:      v[3],
		rss:        rssPages * float64(os.Getpagesize()),
	}, nil
}

// bootTime is the btime line of /proc/stat.
func bootTime() (float64, error) {
	b, err := readProc("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("/proc/stat: no btime")
}

func openFDs() (float64, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(256)
		n += len(names)
		if err == io.EOF {
			return float64(n - 1), nil // less the directory being read
		}
		if err != nil {
			return 0, err
		}
	}
}

// limit is the soft limit of the named row of /proc/self/limits;
// "unlimited" is -1, as client_golang reports it.
func limit(b []byte, name string) (float64, bool) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		if f[0] == "unlimited" {
			return -1, true
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil && !math.IsNaN(v)
	}
	return 0, false
}
