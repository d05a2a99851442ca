package upstream

import "syscall"

// alive reports whether an idle connection may still be used: the backend
// has not closed it (a backend's keep-alive timeout ends idle connections
// while they sit in the pool) nor sent anything unasked. One non-blocking
// peek at the socket, so that a request that cannot be retried (a POST)
// does not meet a connection the backend already closed.
func alive(c syscall.Conn) bool {
	if c == nil {
		return true
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	ok := true
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing pending, the connection is as we left it. EOF
		// (0, nil), an error, or bytes nobody asked for: not reusable.
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		_ = n
		return true
	})
	return err == nil && ok
}
