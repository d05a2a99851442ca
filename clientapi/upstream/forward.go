package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Route forwards requests to one backend through Pool.
type Route struct {
	Pool *Pool
	// Timeout bounds the wait for the response header (the request
	// written, the backend thinking); 0: no bound.
	Timeout time.Duration
	// DropResponse are response headers (canonical names) the client
	// never sees from the backend.
	DropResponse []string
}

// Handles reports whether Forward handles in: everything but protocol
// upgrades (WebSocket) and CONNECT.
func Handles(in *http.Request) bool {
	if in.Method == http.MethodConnect {
		return false
	}
	_, up := in.Header["Upgrade"]
	return !up && !httpguts.HeaderValuesContainsToken(in.Header["Connection"], "upgrade")
}

// Forward sends out (its Method, URL.RequestURI(), Host and Header, already
// rewritten by the caller, hop-by-hop headers removed) with in's body to
// the backend, and streams the response to w. It runs on the caller's
// goroutine; only a request body is written from a second one, so that
// the response can stream back while the client still sends (full
// duplex). An error is returned only while nothing was written to w (the
// caller answers 502/504/413); once the response has started, a failure
// aborts the client's connection or stream (http.ErrAbortHandler), so
// that a truncated body is never taken for a whole one.
func (rt *Route) Forward(w http.ResponseWriter, in, out *http.Request) error {
	hasBody := in.ContentLength != 0 && in.Body != nil && in.Body != http.NoBody
	retryable := !hasBody && (in.Method == http.MethodGet || in.Method == http.MethodHead || in.Method == http.MethodOptions)
	ctx := in.Context()
	for attempt := 0; ; attempt++ {
		c, reused, err := rt.Pool.get(ctx, attempt > 0)
		if err != nil {
			return err
		}
		x := exchange{rt: rt, c: c, in: in, out: out, hasBody: hasBody}
		if hasBody {
			// The body's goroutine may still be reading when the handler
			// ends (the backend answered first), and net/http's server
			// then reads the connection for the next request: a closed
			// body waits for a read in flight and refuses the next one,
			// as httputil.ReverseProxy relies on too.
			defer in.Body.Close()
		}
		stop := context.AfterFunc(ctx, c.close)
		resp, err := x.roundTrip()
		if err != nil {
			stop()
			c.close()
			// A kept-alive connection the backend closed meanwhile fails
			// before any byte of a response: a request that cannot have
			// had an effect is sent again, once, on a new connection.
			var ne net.Error
			if reused && retryable && attempt == 0 && c.lr.count == 0 && ctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
				continue
			}
			return err
		}
		reuse := x.respond(w, resp)
		// The request's context ends with the handler: after stop, the
		// connection is ours again unless the client left meanwhile.
		if stop() && reuse {
			rt.Pool.put(c)
		} else {
			c.close()
		}
		return nil
	}
}

// exchange is one request and its response on one connection.
type exchange struct {
	rt      *Route
	c       *conn
	in, out *http.Request
	hasBody bool
	// bodyDone receives the request body's outcome (nil: all written)
	// when it is written from its own goroutine.
	bodyDone chan error
}

// roundTrip writes the request and reads the response header, skipping
// 1xx interim responses.
func (x *exchange) roundTrip() (*http.Response, error) {
	c := x.c
	c.lr.count = 0
	c.lr.n = x.rt.Pool.cfg.MaxResponseHeaderBytes
	if err := x.writeHeader(); err != nil {
		return nil, err
	}
	if x.hasBody {
		if x.in.ContentLength < 0 {
			// A streamed body: the backend sees the header at once,
			// whenever the client sends the rest.
			if err := c.bw.Flush(); err != nil {
				return nil, err
			}
		}
		x.bodyDone = make(chan error, 1)
		go x.writeBody()
	} else if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	if x.rt.Timeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(x.rt.Timeout))
	}
	for {
		resp, err := http.ReadResponse(c.br, x.out)
		if err != nil {
			// The body's failure (over the limit, the client gone)
			// closed the connection: it is the cause to report.
			if berr := x.bodyFailed(); berr != nil {
				return nil, berr
			}
			return nil, fmt.Errorf("reading the backend's response: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("the backend switched protocols unasked")
		case resp.StatusCode < 100:
			// ReadResponse takes any three digits; net/http's server
			// would panic on writing such a status.
			return nil, fmt.Errorf("the backend answered status %03d", resp.StatusCode)
		}
		if resp.StatusCode >= 200 {
			if berr := x.bodyFailed(); berr != nil {
				// The body failed first and the connection was closed
				// (tls.Conn.Close sends close_notify before it closes):
				// the backend may have answered the truncated request
				// in between. That answer is not the client's; the
				// failure is (413 for a body over the limit).
				resp.Body.Close()
				return nil, berr
			}
			if x.rt.Timeout > 0 {
				c.nc.SetReadDeadline(time.Time{})
			}
			c.lr.n = -1
			return resp, nil
		}
		// 1xx: 100 Continue was the node's to send (net/http did), and
		// 103 Early Hints are dropped; the final answer follows.
		c.lr.n = x.rt.Pool.cfg.MaxResponseHeaderBytes
	}
}

// bodyFailed is the request body's error when its goroutine has already
// ended with one; the outcome stays for bodyWritten.
func (x *exchange) bodyFailed() error {
	if x.bodyDone == nil {
		return nil
	}
	select {
	case err := <-x.bodyDone:
		x.bodyDone <- err
		return err
	default:
		return nil
	}
}

// writeHeader buffers the request line and header; the framing is the
// body's as the node received it (Content-Length when known, chunked
// otherwise), never a header the client sent.
func (x *exchange) writeHeader() error {
	bw, out := x.c.bw, x.out
	uri := out.URL.RequestURI()
	if !validURI(uri) {
		return fmt.Errorf("request target %q cannot be sent", uri)
	}
	bw.WriteString(out.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(out.Host)
	bw.WriteString("\r\n")
	for k, vs := range out.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Expect", "Te", "Trailer", "Upgrade", "Keep-Alive", "Proxy-Connection":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("header name %q cannot be sent", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("header %s: the value cannot be sent", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case !x.hasBody:
		if sendsBody(out.Method) {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case x.in.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], x.in.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// sendsBody: net/http's client says Content-Length: 0 for these methods
// without a body, and some servers insist on it.
func sendsBody(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// validURI: no byte that would end or split the request line.
func validURI(uri string) bool {
	if uri == "" {
		return false
	}
	for i := 0; i < len(uri); i++ {
		if b := uri[i]; b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

// writeBody copies the request body (on its own goroutine), each part
// flushed as it arrives; a known length is sent exactly, a short or long
// body is an error and the connection is closed, so the backend never
// takes what follows for another request.
func (x *exchange) writeBody() {
	err := x.copyBody()
	x.bodyDone <- err
	if err != nil {
		x.c.close()
	}
}

func (x *exchange) copyBody() error {
	bw := x.c.bw
	bp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bp)
	buf := *bp
	chunked := x.in.ContentLength < 0
	var sent int64
	for {
		n, rerr := x.in.Body.Read(buf)
		if rerr != nil && rerr != io.EOF {
			rerr = &RequestBodyError{Err: rerr}
		}
		if n > 0 {
			sent += int64(n)
			if !chunked && sent > x.in.ContentLength {
				return fmt.Errorf("request body longer than its Content-Length %d", x.in.ContentLength)
			}
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(n), 16))
				bw.WriteString("\r\n")
			}
			bw.Write(buf[:n])
			if chunked {
				bw.WriteString("\r\n")
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !chunked && sent != x.in.ContentLength {
		return fmt.Errorf("request body ended after %d of its %d bytes: %w", sent, x.in.ContentLength, io.ErrUnexpectedEOF)
	}
	if chunked {
		bw.WriteString("0\r\n\r\n")
	}
	return bw.Flush()
}

// RequestBodyError: the client's request body could not be read (bad
// chunked framing, over the limit, the client gone); the backend got an
// aborted request and the node's answer is the client's fault, not the
// backend's.
type RequestBodyError struct{ Err error }

func (e *RequestBodyError) Error() string { return "reading the request body: " + e.Err.Error() }
func (e *RequestBodyError) Unwrap() error { return e.Err }

// bodyBuffers are the request bodies' copy buffers.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// respBuffers are the response bodies' copy buffers.
var respBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// hopHeaders are the hop-by-hop headers (RFC 9110 7.6.1): they stay
// between two peers, never passed on.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// RemoveHopByHop deletes from h the hop-by-hop headers and those its
// Connection header names.
func RemoveHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// respond writes resp to w and reports whether the connection may carry
// another request: the request was written whole, the response read to
// the end of a definite framing, nobody asked to close, nothing extra
// arrived.
func (x *exchange) respond(w http.ResponseWriter, resp *http.Response) bool {
	h := w.Header()
	RemoveHopByHop(resp.Header)
	for _, k := range x.rt.DropResponse {
		delete(resp.Header, k)
	}
	for k, vs := range resp.Header {
		if prev := h[k]; len(prev) > 0 {
			h[k] = append(prev, vs...)
		} else {
			h[k] = vs // resp is ours alone: no copy
		}
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	complete := x.copyResponse(w, resp)
	for k, vs := range resp.Trailer {
		h[k] = vs
	}
	if !complete || resp.Close {
		return false
	}
	if x.bodyDone != nil && !x.bodyWritten() {
		// The backend answered before the body was all sent: the rest
		// cannot be told apart from a next request.
		return false
	}
	return x.c.br.Buffered() == 0
}

// maxBodyWait is how long a response that came before the end of its
// request body waits for the rest to be written (a backend that answers
// as soon as it has the header, nginx's "return"): within it, the
// connection is kept and the client's body consumed, so that the client's
// next request on its connection is read, as net/http's Transport does.
const maxBodyWait = 50 * time.Millisecond

// bodyWritten reports whether the request body was written whole, waiting
// for it at most maxBodyWait.
func (x *exchange) bodyWritten() bool {
	select {
	case err := <-x.bodyDone:
		return err == nil
	default:
	}
	t := time.NewTimer(maxBodyWait)
	defer t.Stop()
	select {
	case err := <-x.bodyDone:
		return err == nil
	case <-t.C:
		return false
	}
}

// copyResponse streams the body to w. A streamed response (no length, or
// server-sent events) is flushed after every write; one of known length
// whenever the backend has nothing more buffered (the next read may wait),
// so a pause mid-body reaches the client, and a small body goes out in one
// write when the handler ends. It reports whether the body was read to
// its end; a failure after the header went out aborts the client's
// connection.
func (x *exchange) copyResponse(w http.ResponseWriter, resp *http.Response) bool {
	if resp.Body == http.NoBody || x.out.Method == http.MethodHead {
		return true // HEAD, 204, 304 and empty bodies: nothing follows the header
	}
	rc := http.NewResponseController(w)
	streamed := resp.ContentLength < 0 || isEventStream(resp.Header.Get("Content-Type"))
	bp := respBuffers.Get().(*[]byte)
	defer respBuffers.Put(bp)
	buf := *bp
	var copied int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			copied += int64(n)
			if _, err := w.Write(buf[:n]); err != nil {
				x.c.close()
				panic(http.ErrAbortHandler)
			}
			if streamed || (copied < resp.ContentLength && x.c.br.Buffered() == 0) {
				if err := rc.Flush(); err != nil {
					x.c.close()
					panic(http.ErrAbortHandler)
				}
			}
		}
		if rerr == io.EOF {
			return true
		}
		if rerr != nil {
			x.c.close()
			panic(http.ErrAbortHandler)
		}
	}
}

func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}
