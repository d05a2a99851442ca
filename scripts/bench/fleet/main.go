// Command fleet simulates a fleet of event links against one broker and
// measures how their reconnects spread after the broker restarts.
//
// It runs devcloud's SigV4-checking broker in-process (access keys
// FLEET00000.. with one fixed secret, thing fleet-00000..), starts -n
// iot.Link instances with their own thing and static credentials, the real
// presigner, dialer and default backoff (full jitter; caps 1 s and 2 s for
// the two quick retries, then -reconnect-spread doubling up to
// -reconnect-max), waits until
// all are connected, then restarts the broker: Close, -down of nothing
// listening, a broker again on the same address. It polls every link's
// Status every 50 ms and prints the per-second histogram of reconnects
// after the broker came back, the largest share of N in any second, the
// time until all had reconnected, and the process RSS.
//
// devcloud.Broker cannot restart on a fixed address (Start listens on a
// free port and a closed broker does not start again), so the links dial a
// fixed loopback address held by this program, a plain TCP relay to the
// current broker: while the broker is down, that address is closed too
// (connections are refused, as by a restarted broker), and it listens
// again, relaying to a new broker, when the broker is back. TLS and the
// SigV4 check are end to end, between the link and the broker.
//
//	go run ./scripts/bench/fleet [-n 1000] [-down 10s] [-reconnect-spread 40s] [-reconnect-max 2m]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/iot"
)

const (
	secret       = "fleet-secret-not-for-production"
	pollInterval = 50 * time.Millisecond
	goalShare    = 0.05
)

func main() {
	n := flag.Int("n", 1000, "number of links")
	down := flag.Duration("down", 10*time.Second, "how long the broker stays down")
	reconnectMax := flag.Duration("reconnect-max", iot.DefaultReconnectMax, "the links' ReconnectMax")
	reconnectSpread := flag.Duration("reconnect-spread", iot.DefaultReconnectSpread, "the links' ReconnectSpread")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up waiting for the links after this long")
	flag.Parse()
	if err := run(*n, *down, *reconnectSpread, *reconnectMax, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(n int, down, reconnectSpread, reconnectMax, timeout time.Duration) error {
	ca, err := devcloud.NewCA("fleet CA")
	if err != nil {
		return err
	}
	lookup := func(akid string) (string, string, string, bool) {
		num, ok := strings.CutPrefix(akid, "FLEET")
		if !ok || len(num) != 5 {
			return "", "", "", false
		}
		i, err := strconv.Atoi(num)
		if err != nil || i < 0 || i >= n {
			return "", "", "", false
		}
		return secret, "", fmt.Sprintf("fleet-%05d", i), true
	}
	newBroker := func() (*devcloud.Broker, error) {
		b, err := devcloud.NewBroker(devcloud.BrokerOptions{CA: ca, Lookup: lookup})
		if err != nil {
			return nil, err
		}
		return b, b.Start()
	}
	broker, err := newBroker()
	if err != nil {
		return err
	}
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := front.Addr().String()
	rl := startRelay(front, broker.Host())

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	quiet := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	links := make([]*iot.Link, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		thing := fmt.Sprintf("fleet-%05d", i)
		creds := aws.Credentials{AccessKeyID: fmt.Sprintf("FLEET%05d", i), SecretAccessKey: secret, Source: "fleet"}
		l, err := iot.New(iot.Options{
			Host:            addr,
			Region:          broker.Region(),
			ThingName:       thing,
			Credentials:     aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
			TLS:             tlsCfg,
			ReconnectSpread: reconnectSpread,
			ReconnectMax:    reconnectMax,
			Subscriptions:   []string{"edgefort/" + thing + "/events"},
			Handler:         func(context.Context, iot.Message) error { return nil },
			Workers:         1,
			Logger:          quiet,
		})
		if err != nil {
			return err
		}
		links[i] = l
		wg.Go(func() { l.Run(ctx) })
	}
	if err := waitAll(links, start, timeout, nil); err != nil {
		return fmt.Errorf("initial connect: %w", err)
	}
	fmt.Printf("# %d links connected in %v; broker connections %d\n", n, time.Since(start).Round(time.Millisecond), broker.Connections())

	// Restart: down, then a new broker behind the same address.
	stopped := time.Now()
	if err := broker.Close(); err != nil {
		return fmt.Errorf("close broker: %w", err)
	}
	rl.close()
	time.Sleep(down)
	noticed := 0
	for _, l := range links {
		if l.Status().State != iot.StateConnected {
			noticed++
		}
	}
	if broker, err = newBroker(); err != nil {
		return err
	}
	front, err = net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen again on %s: %w", addr, err)
	}
	rl = startRelay(front, broker.Host())
	up := time.Now()
	fmt.Printf("# broker down %v (%d of %d links saw it go), back at +%v\n", down, noticed, n, up.Sub(stopped).Round(time.Millisecond))

	at := make([]time.Duration, n)
	if err := waitAll(links, up, timeout, at); err != nil {
		return fmt.Errorf("reconnect: %w", err)
	}
	report(at, n, broker.Connections())

	cancel()
	wg.Wait()
	rl.close()
	return broker.Close()
}

// waitAll polls every link until all are connected since after t0 and, if
// at is not nil, records when each one connected, relative to t0.
func waitAll(links []*iot.Link, t0 time.Time, timeout time.Duration, at []time.Duration) error {
	done := make([]bool, len(links))
	left := len(links)
	deadline := time.Now().Add(timeout)
	for left > 0 {
		for i, l := range links {
			if done[i] {
				continue
			}
			if s := l.Status(); s.State == iot.StateConnected && !s.Since.Before(t0) {
				done[i] = true
				left--
				if at != nil {
					at[i] = s.Since.Sub(t0)
				}
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d links not connected after %v", left, len(links), timeout)
		}
		time.Sleep(pollInterval)
	}
	return nil
}

func report(at []time.Duration, n, conns int) {
	var last time.Duration
	hist := map[int]int{}
	for _, d := range at {
		hist[int(d/time.Second)]++
		last = max(last, d)
	}
	fmt.Printf("%-10s %6s %7s  %s\n", "second", "links", "share", "")
	peak, peakSec := 0, 0
	for s := 0; s <= int(last/time.Second); s++ {
		c := hist[s]
		if c > peak {
			peak, peakSec = c, s
		}
		bar := strings.Repeat("#", (c*200/n+1)/2) // 1 # per 1 % of N
		fmt.Printf("%3d-%-3d s  %6d %6.1f%%  %s\n", s, s+1, c, 100*float64(c)/float64(n), bar)
	}
	share := float64(peak) / float64(n)
	verdict := "meets"
	if share > goalShare {
		verdict = "FAILS"
	}
	fmt.Printf("max share in one second: %.1f%% of N (%d links, second %d-%d) — %s the goal of <= %.0f%%\n",
		100*share, peak, peakSec, peakSec+1, verdict, 100*goalShare)
	fmt.Printf("all %d reconnected %v after the broker came back; broker connections %d\n", n, last.Round(time.Millisecond), conns)
	if rss, err := vmRSS(); err == nil {
		fmt.Printf("process RSS (broker + relay + %d links): %.1f MiB\n", n, float64(rss)/1024)
	}
}

// relay forwards every connection accepted on ln to target, byte for byte.
type relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startRelay(ln net.Listener, target string) *relay {
	r := &relay{ln: ln, conns: map[net.Conn]struct{}{}}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					fmt.Fprintln(os.Stderr, "relay accept:", err)
				}
				return
			}
			r.wg.Go(func() { r.pipe(c, target) })
		}
	})
	return r
}

func (r *relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *relay) pipe(c net.Conn, target string) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	if !r.track(c, s) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); s.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, s); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

// close stops listening and cuts every relayed connection.
func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
}

func vmRSS() (int, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, errors.New("no VmRSS")
}
