package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/agent/supervisor"
	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/iot"
)

// Status is what GET /v1/status answers and `edgefort status` prints.
type Status struct {
	Version    string              `json:"version"`
	Commit     string              `json:"commit"`
	PID        int                 `json:"pid"`
	Started    time.Time           `json:"started"`
	StateDir   string              `json:"state_dir"`
	MetricsURL string              `json:"metrics_url,omitempty"`
	Ready      bool                `json:"ready"`
	Components []supervisor.Status `json:"components"`
	// CertificateWarnings name certificates that have expired or expire
	// within 30 days, as "store/alias: what".
	CertificateWarnings []string `json:"certificate_warnings,omitempty"`
	// VirtualHosts are the client-facing base URLs by virtual host name.
	VirtualHosts map[string]string `json:"virtual_hosts,omitempty"`
	// Updates is the update state, when device.device_type is set.
	Updates *UpdateStatus `json:"updates,omitempty"`
	// Cloud is the control plane link, when enabled.
	Cloud *CloudStatus `json:"cloud,omitempty"`
	// IoT is the event link, when enabled.
	IoT *iot.Status `json:"iot,omitempty"`
}

// adminHandler serves the local admin API. The socket's file mode and the
// peer gate (adminpeer.go) decide who reaches it; the routes themselves
// authenticate no one.
func (a *Agent) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Liveness: answering at all means the process and its admin
		// loop are alive; a failing component is readiness, not liveness.
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := a.Status()
		if st.Ready {
			fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, c := range st.Components {
			if c.State != supervisor.StateRunning {
				fmt.Fprintf(w, "%s: %s\n", c.Name, c.State)
			}
		}
	})
	mux.HandleFunc("POST /v1/keystore", a.keystores.handle)
	a.updateHandlers(mux)
	a.cloudHandlers(mux)
	return mux
}

// listenAdmin binds the admin socket at cfg.Socket with mode 0600, or
// 0666 when cfg allows other users (the peer gate then checks each
// caller), replacing a stale socket file left by a crash. Only one agent
// holds the state directory lock, so a leftover socket at our path is
// never a live peer's.
//
// The socket never exists at its path with a wider mode than that, and no
// one else can connect before the mode is set: it is bound in a fresh
// directory of mode 0700 beside the final path, chmodded there, and then
// renamed into place, which is atomic. The alternatives were worse: the
// umask is process-wide, so narrowing it around the bind races with every
// other goroutine creating files (and runAgent's umask 077 does not hold
// for tests or embedders); binding and then chmodding at the final path
// leaves a window in which the socket has the umask's mode.
func listenAdmin(cfg config.Admin) (net.Listener, error) {
	path := cfg.Socket
	mode, dirMode := os.FileMode(0o600), os.FileMode(0o700)
	if cfg.AllowsOthers() {
		if !peerCredSupported {
			return nil, fmt.Errorf("admin: allow_uids and allow_gids need SO_PEERCRED, which edgefort supports only on Linux")
		}
		// Allowed users must search the directory and write the socket
		// to connect; the peer gate then decides.
		mode, dirMode = 0o666, 0o755
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("admin: socket directory: %w", err)
		}
		// MkdirAll's mode went through the umask.
		if err := os.Chmod(dir, dirMode); err != nil {
			return nil, fmt.Errorf("admin: socket directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("admin: %s exists and is not a socket; refusing to replace it", path)
	}
	// The name fits in a socket address: config checks the directory's
	// length against it (maxSocketDir).
	private, err := os.MkdirTemp(dir, ".a")
	if err != nil {
		return nil, fmt.Errorf("admin: socket directory: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it will not be at tmp; Close removes path
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: move the socket into place at %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return &adminListener{UnixListener: ul, path: path, file: fi}, nil
}

// adminListener removes its socket file on Close, as a unix listener
// does for the path it bound, unless another file has taken its place.
type adminListener struct {
	*net.UnixListener
	path string
	file os.FileInfo // the socket as moved into place
}

// Addr is the socket's path, not the private name it was bound at.
func (l *adminListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *adminListener) Close() error {
	err := l.UnixListener.Close()
	if fi, statErr := os.Lstat(l.path); statErr == nil && os.SameFile(fi, l.file) {
		os.Remove(l.path)
	}
	return err
}

// ErrNotRunning reports that no agent answers on the admin socket.
var ErrNotRunning = errors.New("no edgefort agent is running")

// AdminClient talks to a running agent over its admin socket.
type AdminClient struct {
	socket string
	http   *http.Client // short calls
	long   *http.Client // calls that stream or wait for an install
}

// NewAdminClient returns a client for the agent whose admin socket is at
// socket.
func NewAdminClient(socket string) *AdminClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &AdminClient{
		socket: socket,
		http:   &http.Client{Timeout: 5 * time.Second, Transport: tr},
		long:   &http.Client{Transport: tr},
	}
}

// Keystore performs a keystore operation in the running agent.
func (c *AdminClient) Keystore(ctx context.Context, r *KeystoreRequest) (*KeystoreResponse, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	data, err := c.do(ctx, http.MethodPost, "/v1/keystore", body)
	if err != nil {
		return nil, err
	}
	var resp KeystoreResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("admin: decode keystore response: %w", err)
	}
	return &resp, nil
}

// Ping returns nil when an agent answers on the socket, an error wrapping
// ErrNotRunning when none does.
func (c *AdminClient) Ping(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil)
	return err
}

// Status fetches GET /v1/status.
func (c *AdminClient) Status(ctx context.Context) (*Status, error) {
	body, err := c.do(ctx, http.MethodGet, "/v1/status", nil)
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("admin: decode status: %w", err)
	}
	return &st, nil
}

func (c *AdminClient) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	return c.send(ctx, c.http, method, path, bytes.NewReader(body))
}

// doStream is do without the short timeout, for request bodies that
// stream and answers that wait for an install; ctx bounds it.
func (c *AdminClient) doStream(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	return c.send(ctx, c.long, method, path, body)
}

func (c *AdminClient) send(ctx context.Context, hc *http.Client, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://edgefort"+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (nothing answers on %s; is the agent started with the same config?)", ErrNotRunning, c.socket)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("admin: %s: permission denied (the socket is mode 0600: run as root or the agent's user, or list your uid in admin.allow_uids)", c.socket)
		}
		return nil, fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	// 8 MiB: the largest answers are status and update listings.
	data, err := httpbody.Read(resp, 8<<20, "agent reply")
	if err != nil {
		return nil, fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			// The agent's own words, already phrased for the operator.
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("admin: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	return data, nil
}
