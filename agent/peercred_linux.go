package agent

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCredSupported: Linux reports a unix socket peer's credentials.
const peerCredSupported = true

// errNoPeerCred is returned where the OS cannot report a peer; never on
// Linux.
var errNoPeerCred = errors.New("peer credentials are not supported on this OS")

// peerCred asks the kernel who is at the other end of c: the credentials
// the peer had when it connected, which it cannot forge.
func peerCred(c net.Conn) (peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}, fmt.Errorf("not a unix socket connection (%T)", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", credErr)
	}
	return peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}
