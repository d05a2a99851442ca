package prom

// processCollector exports the process_* metrics client_golang's process
// collector does, read at scrape time (from /proc on Linux; see
// process_linux.go and process_other.go).
type processCollector struct {
	cpu, openFDs, maxFDs, vsize, maxVsize, rss, start *Desc
}

// NewProcessCollector returns a collector of this process's CPU time,
// memory, file descriptors and start time: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_virtual_memory_max_bytes, process_open_fds, process_max_fds
// and process_start_time_seconds. A value the OS does not give (or
// whose file cannot be read) is left out of the scrape.
func NewProcessCollector() Collector {
	d := func(name, help string) *Desc { return NewDesc(name, help, nil, nil) }
	return &processCollector{
		cpu:      d("process_cpu_seconds_total", "User and system CPU time spent, in seconds."),
		openFDs:  d("process_open_fds", "Open file descriptors."),
		maxFDs:   d("process_max_fds", "Limit on open file descriptors."),
		vsize:    d("process_virtual_memory_bytes", "Virtual memory size in bytes."),
		maxVsize: d("process_virtual_memory_max_bytes", "Limit on virtual memory size in bytes (-1: none)."),
		rss:      d("process_resident_memory_bytes", "Resident memory size in bytes."),
		start:    d("process_start_time_seconds", "Start time of the process as a Unix time."),
	}
}

func (c *processCollector) Describe(ch chan<- *Desc) {
	for _, d := range []*Desc{c.cpu, c.openFDs, c.maxFDs, c.vsize, c.maxVsize, c.rss, c.start} {
		ch <- d
	}
}
