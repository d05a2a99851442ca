package devcloud

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpSegments reads the segments a TCP connection received and sent so
// far from the kernel's TCP_INFO (Linux 4.2 and later).
func tcpSegments(c net.Conn) (in, out int64, ok bool) {
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return 0, 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil || ierr != nil {
		return 0, 0, false
	}
	return int64(info.Segs_in), int64(info.Segs_out), true
}
