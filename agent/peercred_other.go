//go:build !linux

package agent

import (
	"errors"
	"net"
)

// peerCredSupported: edgefort reads peer credentials on Linux only, the OS
// it ships for; elsewhere the admin socket's mode 0600 is the only gate
// and allow lists are refused at start.
const peerCredSupported = false

var errNoPeerCred = errors.New("peer credentials are not supported on this OS")

func peerCred(net.Conn) (peer, error) { return peer{}, errNoPeerCred }
