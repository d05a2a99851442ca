package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/iot/sigv4"
)

const pollInterval = 50 * time.Millisecond

// runLinks is a links child: links -first .. -first+-count-1 against the
// broker at -addr, until stdin closes. It reports every link that
// connects or drops; the command "mem DIR" makes it answer its memory
// figures (after a GC) and, if DIR is given, write its heap and goroutine
// profiles there.
func runLinks(args []string) error {
	fs := flag.NewFlagSet("fleet links", flag.ContinueOnError)
	first := fs.Int("first", 0, "index of the first link")
	count := fs.Int("count", 1000, "number of links")
	addr := fs.String("addr", "", "broker host:port (required)")
	region := fs.String("region", devcloud.DefaultBrokerRegion, "SigV4 region")
	caFile := fs.String("ca", "", "CA certificate (PEM) the broker's certificate chains to (required)")
	startRate := fs.Int("start-rate", 500, "links started per second")
	spread := fs.Duration("reconnect-spread", iot.DefaultReconnectSpread, "the links' ReconnectSpread")
	maxDelay := fs.Duration("reconnect-max", iot.DefaultReconnectMax, "the links' ReconnectMax")
	profile := fs.Bool("profile", false, "sample every 4 KiB allocated for the heap profile (runtime.MemProfileRate), not every 512 KiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile {
		runtime.MemProfileRate = 4096
	}
	if *addr == "" || *caFile == "" {
		return errors.New("-addr and -ca are required")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no PEM certificate", *caFile)
	}
	// One TLS config for all links, as one agent has one per link: the
	// link and gorilla clone it per connection.
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	quiet := slog.New(slog.DiscardHandler)
	links := make([]*iot.Link, *count)
	// When each link last began an attempt: the real presigner, wrapped,
	// notes it, since a link presigns a fresh URL right before each dial.
	attempts := make([]atomic.Int64, *count)
	for k := range links {
		i := *first + k
		creds := aws.Credentials{AccessKeyID: accessKey(i), SecretAccessKey: secret, Source: "fleet"}
		l, err := iot.New(iot.Options{
			Host:        *addr,
			Region:      *region,
			ThingName:   thing(i),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
			TLS:         tlsCfg,
			Presign: func(ctx context.Context, c aws.Credentials, host, region string, exp time.Duration, now time.Time) (string, error) {
				attempts[k].Store(now.UnixNano())
				return sigv4.Presign(ctx, c, host, region, exp, now)
			},
			ReconnectSpread: *spread,
			ReconnectMax:    *maxDelay,
			Subscriptions:   []string{"edgefort/" + thing(i) + "/events"},
			Handler:         func(context.Context, iot.Message) error { return nil },
			Workers:         1,
			Logger:          quiet,
		})
		if err != nil {
			return err
		}
		links[k] = l
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Which links' Run returned while the fleet still runs: gave up.
	gaveUp := make([]atomic.Bool, *count)
	wg.Go(func() {
		// Started at -start-rate, as a fleet that boots over a while.
		every := time.Second / time.Duration(max(*startRate, 1))
		next := time.Now()
		for k, l := range links {
			if ctx.Err() != nil {
				return
			}
			wg.Go(func() {
				l.Run(ctx) // returns nil, whether it gave up or not
				gaveUp[k].Store(ctx.Err() == nil)
			})
			next = next.Add(every)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	})
	return watchLinks(links, attempts, gaveUp, *first, newWriter())
}

// watchLinks polls every link's Status and reports changes, and the
// count of links in each state every second; it answers commands, until
// stdin closes.
func watchLinks(links []*iot.Link, attempts []atomic.Int64, gaveUp []atomic.Bool, first int, out *writer) error {
	cmds := readCommands()
	since := make([]time.Time, len(links)) // of the connection reported, zero if none
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var lastStates time.Time
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok {
				return nil
			}
			verb, arg, _ := strings.Cut(cmd, " ")
			if verb != "mem" {
				return fmt.Errorf("unknown command %q", cmd)
			}
			m, err := memFigures(len(links), first, arg)
			if err != nil {
				return err
			}
			if err := out.send(msg{Mem: m}); err != nil {
				return err
			}
		case now := <-tick.C:
			var m msg
			var st statesMsg
			for k, l := range links {
				s := l.Status()
				st.count(s, gaveUp[k].Load())
				switch up := s.State == iot.StateConnected; {
				case up && !s.Since.Equal(since[k]):
					since[k] = s.Since
					m.Up = append(m.Up, [3]int64{int64(first + k), s.Since.UnixNano(), attempts[k].Load()})
				case !up && !since[k].IsZero():
					since[k] = time.Time{}
					m.Down = append(m.Down, first+k)
				}
			}
			if now.Sub(lastStates) >= time.Second {
				lastStates = now
				st.At = now.UnixNano()
				m.States = &st
			}
			if m.Up != nil || m.Down != nil || m.States != nil {
				if err := out.send(m); err != nil {
					return err
				}
			}
		}
	}
}

// memFigures measures this process after a GC and, if dir is set, writes
// its heap profile and goroutine dump there.
func memFigures(links, first int, dir string) (*memMsg, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err := vmRSS()
	if err != nil {
		return nil, err
	}
	if dir != "" {
		for name, debug := range map[string]int{"heap": 0, "goroutine": 1} {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("links-%06d.%s.pprof", first, name)))
			if err != nil {
				return nil, err
			}
			err = pprof.Lookup(name).WriteTo(f, debug)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return &memMsg{
		Links: links, RSSKiB: rss, Goroutines: runtime.NumGoroutine(),
		HeapInuse: ms.HeapInuse, HeapSys: ms.HeapSys, StackInuse: ms.StackInuse, Sys: ms.Sys,
	}, nil
}

// count adds a link of Status s to the counts; gaveUp says its Run
// returned while the fleet still ran.
func (st *statesMsg) count(s iot.Status, gaveUp bool) {
	switch {
	case gaveUp:
		st.GaveUp++
	case s.State == iot.StateConnected:
		st.Connected++
	case s.State == iot.StateConnecting:
		st.Connecting++
	case s.State == iot.StateBackingOff:
		st.BackingOff++
	default: // stopped, and Run not returned: not started yet
		st.NotStarted++
	}
	st.Throttled += int64(s.Throttled)
	st.MaxThrottled = max(st.MaxThrottled, s.Throttled)
	st.Reconnects += int64(s.Reconnects)
}
