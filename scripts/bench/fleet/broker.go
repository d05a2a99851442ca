package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefort/edgefort/devcloud"
)

// runBroker is the broker child: devcloud's broker on -addr, knowing the
// access keys of -n links, until stdin closes. Commands on stdin: stop
// (Close) and start (Start again, on the same address).
func runBroker(args []string) error {
	fs := flag.NewFlagSet("fleet broker", flag.ContinueOnError)
	n := fs.Int("n", 1000, "number of links whose access keys the broker knows")
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	dir := fs.String("dir", "", "directory to write the CA certificate into (required)")
	faults := fs.String("broker-faults", "", "devcloud.BrokerFaults as JSON, set before serving")
	restartFaults := fs.String("restart-faults", "", "devcloud.BrokerFaults as JSON, set before serving again after a stop (empty: -broker-faults stay)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	f, err := parseFaults("-broker-faults", *faults)
	if err != nil {
		return err
	}
	var restart *devcloud.BrokerFaults
	if *restartFaults != "" {
		rf, err := parseFaults("-restart-faults", *restartFaults)
		if err != nil {
			return err
		}
		restart = &rf
	}
	ca, err := devcloud.NewCA("fleet CA")
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(*dir); err != nil {
		return err
	}
	lookup := func(akid string) (string, string, string, bool) {
		i, ok := linkIndex(akid, *n)
		if !ok {
			return "", "", "", false
		}
		return secret, "", thing(i), true
	}
	b, err := devcloud.NewBroker(devcloud.BrokerOptions{CA: ca, Lookup: lookup, Addr: *addr})
	if err != nil {
		return err
	}
	b.SetFaults(f)
	if err := b.Start(); err != nil {
		return err
	}
	defer b.Close()
	out := newWriter()
	err = out.send(msg{Ready: &readyMsg{Addr: b.Host(), Region: b.Region(), CA: filepath.Join(*dir, devcloud.CACertFile)}})
	if err != nil {
		return err
	}
	return serveBroker(b, out, restart)
}

// serveBroker obeys the commands on stdin and reports the broker's
// counters every second, the seconds counted from the last start. On
// start, the restart faults, if any, are set before the broker serves
// again, so that its first CONNECT already meets them (a quota starts
// with a full bucket).
func serveBroker(b *devcloud.Broker, out *writer, restart *devcloud.BrokerFaults) error {
	cmds := readCommands()
	report := func() error {
		return out.send(msg{Stats: &statsMsg{At: time.Now().UnixNano(), Connections: b.Connections(), Stats: b.Stats()}})
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok {
				return nil
			}
			switch cmd {
			case "stop":
				if err := b.Close(); err != nil {
					return err
				}
				if err := out.send(msg{Stopped: time.Now().UnixNano()}); err != nil {
					return err
				}
			case "start":
				if restart != nil {
					b.SetFaults(*restart)
				}
				if err := b.Start(); err != nil {
					return err
				}
				tick.Reset(time.Second)
				if err := out.send(msg{Started: time.Now().UnixNano()}); err != nil {
					return err
				}
				if err := report(); err != nil {
					return err
				}
			default:
				return fmt.Errorf("unknown command %q", cmd)
			}
		case <-tick.C:
			if err := report(); err != nil {
				return err
			}
		}
	}
}

// readCommands delivers stdin's lines until it closes. The goroutine ends
// with stdin, which the parent closes (or the OS, when it dies).
func readCommands() <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			ch <- strings.TrimSpace(sc.Text())
		}
	}()
	return ch
}
