package devcloud

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// httpsServer is the loopback HTTPS server under devcloud's services (the
// Mender server, the control plane): a free port on 127.0.0.1, served in
// the background until close.
type httpsServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve returned

	wire *WireCounter // set before start to count the traffic under link; nil: none
	link string
}

func (s *httpsServer) start(name string, tlsConf *tls.Config, h http.Handler, log *slog.Logger) error {
	if s.ln != nil {
		return fmt.Errorf("%s: already started", name)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("%s: listen: %w", name, err)
	}
	s.ln = tls.NewListener(s.wire.listener(s.link, ln, true), tlsConf)
	s.srv = &http.Server{
		Handler:           s.wire.handler(h),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.srv.Serve(s.ln)
	}()
	return nil
}

// url is https://127.0.0.1:PORT, or empty before start.
func (s *httpsServer) url() string {
	if s.ln == nil {
		return ""
	}
	return "https://" + s.ln.Addr().String()
}

// close stops the server, cutting open connections, and waits for it.
func (s *httpsServer) close() error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
