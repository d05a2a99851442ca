// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): a service of Type=notify sends newline-separated
// VARIABLE=value lines (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1) in one
// datagram to the unix socket named by $NOTIFY_SOCKET, and learns its
// watchdog interval from $WATCHDOG_USEC (for it only if $WATCHDOG_PID, when
// set, is its pid). The protocol is a few lines; a library for it
// (coreos/go-systemd) would bring more than it saves.
package sdnotify

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to the service manager. A nil *Notifier
// (no $NOTIFY_SOCKET: not run by systemd, or not as Type=notify) sends
// nothing and reports no error, so callers need no branch.
type Notifier struct {
	conn *net.UnixConn
}

// FromEnv connects to $NOTIFY_SOCKET: a path, or an abstract socket when
// it starts with "@". It returns nil and no error when the variable is
// unset or empty. The variable is kept: a process that re-executes itself
// (a self-update) keeps notifying as the same service.
func FromEnv() (*Notifier, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, nil
	}
	addr := &net.UnixAddr{Name: name, Net: "unixgram"}
	if strings.HasPrefix(name, "@") {
		addr.Name = "\x00" + name[1:]
	} else if !strings.HasPrefix(name, "/") {
		// vsock: addresses (VMs) are not for an edge agent's unit.
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q: want an absolute path or @abstract name", name)
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("sdnotify: connect to NOTIFY_SOCKET %s: %w", name, err)
	}
	return &Notifier{conn: conn}, nil
}

// Notify sends one or more state lines in a single datagram, e.g.
// Notify("READY=1", "STATUS=serving"). A line must not contain a newline.
func (n *Notifier) Notify(lines ...string) error {
	if n == nil {
		return nil
	}
	for _, l := range lines {
		if strings.ContainsRune(l, '\n') || !strings.Contains(l, "=") {
			return fmt.Errorf("sdnotify: %q is not one VARIABLE=value line", l)
		}
	}
	if _, err := n.conn.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: send %s: %w", strings.Join(lines, ", "), err)
	}
	return nil
}

// Close releases the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	return n.conn.Close()
}

// WatchdogInterval returns the interval within which the service manager
// expects WATCHDOG=1 ($WATCHDOG_USEC), or 0 when no watchdog is set for
// this process: the variable unset, or $WATCHDOG_PID naming another pid.
func WatchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	switch {
	case err != nil:
	case n <= 0:
		err = errors.New("not positive")
	case n > math.MaxInt64/int64(time.Microsecond):
		err = errors.New("too large")
	}
	if err != nil {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC %q: %w", usec, err)
	}
	return time.Duration(n) * time.Microsecond, nil
}
