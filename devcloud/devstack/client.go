package devstack

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/httpbody"
)

// Client drives a running dev stack from another process: its agent
// through the admin socket, its servers through their management APIs.
type Client struct {
	Config *config.Config
	Info   Info

	admin  *adminclient.Client
	roots  *x509.CertPool // the dev CA
	tls    *http.Client   // the control plane and the broker: trusts the dev CA
	mender *http.Client   // the update server: also a client certificate (it requires one)
}

// Open finds the running dev stack of the configuration at cfgPath.
func Open(ctx context.Context, cfgPath string) (*Client, error) {
	cfg, err := config.Load(cfgPath)
	if errors.Is(err, config.ErrNoConfig) {
		return nil, fmt.Errorf("no configuration at %s: start edgefort-dev and point --config or $%s at the configuration its banner names", cfgPath, config.EnvConfig)
	}
	if err != nil {
		return nil, err
	}
	c := &Client{Config: cfg, admin: newAdminClient(cfg.Admin.Socket)}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.admin.Ping(pctx); errors.Is(err, adminclient.ErrNotRunning) {
		return nil, fmt.Errorf("edgefort-dev is not running for %s (no agent on %s): start it with 'edgefort-dev'", cfgPath, cfg.Admin.Socket)
	} else if err != nil {
		return nil, err
	}
	info, err := ReadInfo(cfg.StateDir)
	if errors.Is(err, ErrNotRunning) {
		return nil, fmt.Errorf("%w: the agent on %s is not one edgefort-dev runs (edgefort run?)", err, cfg.Admin.Socket)
	}
	if err != nil {
		return nil, err
	}
	c.Info = *info
	ca, err := LoadCA(filepath.Join(cfg.StateDir, CADir))
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	// A short-lived client certificate from the dev CA: the update server
	// requires one on every connection.
	key, leaf, err := ca.Issue("edgefort-dev client", nil, time.Hour)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c.roots = roots
	c.tls = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
	}}
	c.mender = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    roots,
			Certificates: []tls.Certificate{{
				Certificate: [][]byte{leaf.Raw, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf,
			}},
		},
		DisableCompression: true,
	}}
	return c, nil
}

// Close closes idle connections.
func (c *Client) Close() {
	c.tls.CloseIdleConnections()
	c.mender.CloseIdleConnections()
}

// ServerError is an error answer of a management API.
type ServerError struct {
	Server    string // "update server", "broker", "control plane"
	Code      int
	Msg       string
	RequestID string
}

func (e *ServerError) Error() string {
	s := fmt.Sprintf("%s: %d %s: %s", e.Server, e.Code, http.StatusText(e.Code), e.Msg)
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// call makes one management API call. body is an io.Reader sent as an
// Artifact, or a value sent as JSON; out, when not nil, receives the JSON
// answer (limit bytes at most).
func call(ctx context.Context, hc *http.Client, server, method, url, token string, body, out any, limit int64) error {
	var r io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r, ctype = b, "application/vnd.mender-artifact"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		r, ctype = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("cannot reach the dev %s at %s (is edgefort-dev still running?): %w", server, url, err)
	}
	defer resp.Body.Close()
	data, err := httpbody.Read(resp, limit, server+" reply")
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &ServerError{Server: server, Code: resp.StatusCode, Msg: e.Error, RequestID: e.RequestID}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode %s: %w", server, url, err)
	}
	return nil
}

// poll calls f every interval until it reports done, fails, or ctx ends
// (then ctx's error).
func poll(ctx context.Context, interval time.Duration, f func() (done bool, err error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// newAdminClient is the agent's typed admin client, naming this build's
// version when it meets an agent that speaks another admin API.
func newAdminClient(socket string) *adminclient.Client {
	c := adminclient.New(socket)
	c.Version = agent.Version()
	return c
}

// Login signs user in through the running stack's dev IdP idp, as Login
// does, and returns the engine's page the login ends on.
func (c *Client) Login(ctx context.Context, idp, user, password string) ([]byte, error) {
	if c.Info.IdPs.SSO == "" {
		return nil, errors.New("this dev stack runs without the dev IdPs (edgefort-dev --no-idps)")
	}
	return Login(ctx, c.Info.IdPs, c.roots, idp, user, password)
}
