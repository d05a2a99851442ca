// Package upstream is the client API's HTTP/1.1 client to its target
// endpoints: a pool of kept-alive backend connections per route, and the
// forwarding of one plain request and its response on the handler's own
// goroutine (Route.Forward). It replaces httputil.ReverseProxy and
// http.Transport for everything but upgrades, whose goroutine hand-offs,
// header clones and per-request allocations cost the proxy three times
// HAProxy's CPU per request (docs/benchmarks.md). Framing on the backend
// side is always this package's own (Content-Length when known, chunked
// otherwise), never the client's; responses are parsed by net/http's
// http.ReadResponse.
package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Defaults of a Pool.
const (
	DefaultDialTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 90 * time.Second
	// DefaultMaxIdle bounds the idle connections kept per route: more
	// than the concurrent requests a node sees on one route.
	DefaultMaxIdle = 256
	// DefaultMaxResponseHeaderBytes bounds a response's status line and
	// headers (net/http's own bound is about 10 MiB).
	DefaultMaxResponseHeaderBytes = 64 << 10
	keepAlivePeriod               = 30 * time.Second
	bufferSize                    = 4 << 10
)

// PoolConfig is where a Pool connects and how. The zero durations and
// counts mean the defaults above.
type PoolConfig struct {
	// Addr is the backend's host:port.
	Addr string
	// TLS is the backend's TLS configuration; nil for plain HTTP. Its
	// ServerName must be set (the target's host name).
	TLS                    *tls.Config
	DialTimeout            time.Duration
	HandshakeTimeout       time.Duration
	IdleTimeout            time.Duration
	MaxIdle                int
	MaxResponseHeaderBytes int64
}

// Pool holds the idle connections to one backend. Safe for concurrent
// use; it owns no goroutine (an idle connection past its timeout is
// closed when the pool next looks at it, or by CloseIdle).
type Pool struct {
	cfg    PoolConfig
	dialer net.Dialer

	mu     sync.Mutex // guards idle and closed
	idle   []*conn    // most recently used last
	closed bool
}

// NewPool is a pool for cfg; it connects nothing yet.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.MaxResponseHeaderBytes <= 0 {
		cfg.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	if cfg.TLS != nil {
		// The backend speaks HTTP/1.1 to us whatever ALPN the
		// configuration offers elsewhere.
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.NextProtos = nil
	}
	return &Pool{cfg: cfg, dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: keepAlivePeriod}}
}

// CloseIdle closes the idle connections, and every connection handed back
// from now on: the pool's route has been replaced.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// conn is one backend connection with its buffers.
type conn struct {
	nc   net.Conn // *tls.Conn or the TCP connection
	tcp  syscall.Conn
	lr   limitedReader // between nc and br: bounds a response's header, counts bytes
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it was last handed back
}

func (c *conn) close() { c.nc.Close() }

// get is an idle connection (reused true) or, when none is left or fresh
// is set, a new one.
func (p *Pool) get(ctx context.Context, fresh bool) (c *conn, reused bool, err error) {
	for !fresh {
		c = p.pop()
		if c == nil {
			break
		}
		if time.Since(c.used) < p.cfg.IdleTimeout && alive(c.tcp) {
			return c, true, nil
		}
		c.close()
	}
	c, err = p.dial(ctx)
	return c, false, err
}

func (p *Pool) pop() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c
}

// put hands c back for another request; it is closed instead when the
// pool is full or closed. The oldest idle connections past their timeout
// go at the same time.
func (p *Pool) put(c *conn) {
	c.used = time.Now()
	var stale []*conn
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && c.used.Sub(p.idle[n].used) >= p.cfg.IdleTimeout {
		n++
	}
	if n > 0 {
		stale = append(stale, p.idle[:n]...)
		p.idle = append(p.idle[:0], p.idle[n:]...)
	}
	keep := !p.closed && len(p.idle) < p.cfg.MaxIdle
	if keep {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	if !keep {
		c.close()
	}
	for _, s := range stale {
		s.close()
	}
}

func (p *Pool) dial(ctx context.Context) (*conn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return nil, err
	}
	tcp, _ := nc.(syscall.Conn)
	if p.cfg.TLS != nil {
		tc := tls.Client(nc, p.cfg.TLS)
		hctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", p.cfg.Addr, err)
		}
		nc = tc
	}
	c := &conn{nc: nc, tcp: tcp}
	c.lr.r = nc
	c.br = bufio.NewReaderSize(&c.lr, bufferSize)
	c.bw = bufio.NewWriterSize(nc, bufferSize)
	return c, nil
}

// errHeaderTooLarge: the backend's response header is over the bound.
var errHeaderTooLarge = errors.New("response header too large")

// limitedReader reads from r, at most n bytes while n is bounded (the
// response header), and counts what it read (a failure before any byte
// of a response makes a request retryable).
type limitedReader struct {
	r     net.Conn
	n     int64 // bytes left; <0: unbounded
	count int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, errHeaderTooLarge
	}
	if l.n > 0 && int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.count += int64(n)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}
