//go:build unix && !aix

package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The helper process: these tests re-execute the test binary, which runs
// only TestHelperProcess, with the mode in helperEnv and the state directory
// in helperDirEnv.
const (
	helperEnv    = "EDGEFORT_STORE_HELPER"
	helperDirEnv = "EDGEFORT_STORE_DIR"

	modeHold    = "hold"    // open, print "ready", wait for stdin to close
	modeWrite   = "write"   // Put k%06d = {"n":i}, print "ack i" after each
	modeWriteTx = "writetx" // Update 10 keys at a time, print "ack i" after the i-th

	txSize = 10
	// watchdog kills a child that stops making progress, so a hang fails
	// the test instead of stalling it. It is generous and never asserted on.
	watchdog = 2 * time.Minute
)

type counter struct {
	N int `json:"n"`
}

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // not a child: nothing to do
	}
	db, err := Open(os.Getenv(helperDirEnv), Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: %v\n", err)
		os.Exit(2)
	}
	b := db.Bucket("crash")
	// os.Stdout is unbuffered: each ack is written, in order, before the
	// next write starts.
	for i := 0; ; i++ {
		switch mode {
		case modeHold:
			fmt.Println("ready")
			io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		case modeWrite:
			err = b.Put(fmt.Sprintf("k%06d", i), counter{N: i})
		case modeWriteTx:
			err = db.Update(func(tx *Tx) error {
				for j := range txSize {
					n := i*txSize + j
					if err := tx.Bucket("crash").Put(fmt.Sprintf("k%06d", n), counter{N: n}); err != nil {
						return err
					}
				}
				return nil
			})
		default:
			err = fmt.Errorf("unknown mode %q", mode)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "helper: %v\n", err)
			os.Exit(2)
		}
		fmt.Printf("ack %d\n", i)
	}
}

// child is a running helper process.
type child struct {
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	stderr bytes.Buffer // read only after wait
	stop   *time.Timer
	waited bool
}

func startChild(t *testing.T, mode, dir string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")}
	c.cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.cmd.StdinPipe(); err != nil { // kept open: hold mode waits on it
		t.Fatal(err)
	}
	c.stdout = bufio.NewScanner(out)
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	c.stop = time.AfterFunc(watchdog, func() { c.cmd.Process.Kill() })
	t.Cleanup(func() { c.kill() })
	return c
}

// line returns the child's next line of output, failing the test if the
// child has ended.
func (c *child) line(t *testing.T) string {
	t.Helper()
	if c.stdout.Scan() {
		return c.stdout.Text()
	}
	err := c.stdout.Err()
	c.kill()
	t.Fatalf("helper ended early (%v, %v); stderr:\n%s", err, c.cmd.ProcessState, c.stderr.String())
	return ""
}

// kill sends SIGKILL, reads the rest of the child's output and reaps it.
// It returns the lines the child wrote before it died. Safe to call again.
func (c *child) kill() []string {
	if c.waited {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	var rest []string
	for c.stdout.Scan() {
		rest = append(rest, c.stdout.Text())
	}
	c.cmd.Wait() // "signal: killed" is expected
	c.stop.Stop()
	c.waited = true
	return rest
}

func TestOpenOtherProcessLocked(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, modeHold, dir)
	if got := c.line(t); got != "ready" {
		t.Fatalf("helper said %q; want ready", got)
	}

	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while helper holds the store = %v; want ErrLocked", err)
	}
	if want := fmt.Sprintf("pid %d,", c.cmd.Process.Pid); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the helper (%q)", err, want)
	}

	c.kill()
	openT(t, dir)
}

// TestCrashKill kills a writing helper with SIGKILL at several points and
// checks that every acknowledged write survived, that at most the one write
// in flight went further, and that the database is intact.
func TestCrashKill(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		killAfter int // acks read before sending SIGKILL
	}{
		{"put after 1", modeWrite, 1},
		{"put after 50", modeWrite, 50},
		{"put after 300", modeWrite, 300},
		{"update after 1", modeWriteTx, 1},
		{"update after 30", modeWriteTx, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := startChild(t, tt.mode, dir)
			acked := 0
			for acked < tt.killAfter {
				checkAck(t, c.line(t), acked)
				acked++
			}
			// Acks written between our last read and the child's death
			// count too: each was printed after its write returned.
			for _, line := range c.kill() {
				checkAck(t, line, acked)
				acked++
			}

			db := openT(t, dir)
			checkIntegrity(t, db)
			per := 1
			if tt.mode == modeWriteTx {
				per = txSize
			}
			n := checkCounters(t, db.Bucket("crash"))
			// The write after the last ack may have committed before the
			// kill; nothing else may be there, and no part of one.
			if n != acked*per && n != (acked+1)*per {
				t.Errorf("%d keys after %d acks of %d keys each; want %d or %d",
					n, acked, per, acked*per, (acked+1)*per)
			}
			if err := db.Bucket("crash").Put("after", counter{N: -1}); err != nil {
				t.Errorf("Put after crash: %v", err)
			}
		})
	}
}

func checkAck(t *testing.T, line string, want int) {
	t.Helper()
	if line != "ack "+strconv.Itoa(want) {
		t.Fatalf("helper said %q; want %q", line, "ack "+strconv.Itoa(want))
	}
}

// checkCounters checks that the bucket holds exactly k000000..k<n-1>, each
// with its own number, and returns n.
func checkCounters(t *testing.T, b *Bucket) int {
	t.Helper()
	n := 0
	err := b.ForEach(func(key string, raw json.RawMessage) error {
		var v counter
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if want := fmt.Sprintf("k%06d", n); key != want || v.N != n {
			return fmt.Errorf("entry %d is %s=%s; want %s={\"n\":%d}", n, key, raw, want, n)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatalf("after crash: %v", err)
	}
	return n
}

// checkIntegrity runs bbolt's consistency check over the whole file.
func checkIntegrity(t *testing.T, db *DB) {
	t.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Errorf("database check after crash: %v", err)
	}
}
