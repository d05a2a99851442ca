package devstack

import (
	"io"
	"net"
	"sync"
)

// forwarder is the front door of the virtual host sso: a loopback port
// bound before the node starts, forwarding each TCP connection (TLS end to
// end: the node's certificate) to the port the node binds. SAML needs the
// host's URL (base_url) in the node's configuration, and the node picks
// its port at start; a port forward, as in front of many real nodes, makes
// the URL known first without picking a port and hoping it stays free.
type forwarder struct {
	ln     net.Listener
	target chan string // receives the node's address once
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool // open connections, both sides, closed by Close
	done  bool
}

func listenForwarder() (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, target: make(chan string, 1), conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Port is the front door's port.
func (f *forwarder) Port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// SetTarget starts forwarding to addr (host:port); connections accepted
// before wait for it in the listen backlog.
func (f *forwarder) SetTarget(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return
	}
	select {
	case f.target <- addr:
	default: // set already
	}
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	addr, ok := <-f.target
	if !ok {
		return
	}
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.pipe(c, addr)
	}
}

// track records c as open; false when Close has begun (c is then closed).
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		c.Close()
		return false
	}
	f.conns[c] = true
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *forwarder) pipe(c net.Conn, addr string) {
	defer f.wg.Done()
	if !f.track(c) {
		return
	}
	defer f.untrack(c)
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	if !f.track(up) {
		return
	}
	defer f.untrack(up)
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, up)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// Close stops accepting, closes the open connections and waits for its
// goroutines.
func (f *forwarder) Close() {
	f.mu.Lock()
	f.done = true
	for c := range f.conns {
		c.Close()
	}
	select {
	case <-f.target: // set but not taken: serve takes the close instead
	default:
	}
	close(f.target) // SetTarget sends no more (done)
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}
