// Package adminclient is the typed client of a running agent's admin API
// (package adminapi), over its unix socket. The CLI uses it, and falls
// back to adminapi's in-process operations when ErrNotRunning says no
// agent answers.
//
// A client and an agent of different builds may speak different admin
// API versions: a route the agent lacks is reported as that, naming both
// versions, rather than as a bare 404.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/keystore"
)

// ErrNotRunning reports that no agent answers on the admin socket.
var ErrNotRunning = errors.New("no edgefort agent is running")

// ErrVersion reports that the agent speaks another admin API version and
// lacks the route asked for.
var ErrVersion = errors.New("admin API version mismatch")

// Client talks to a running agent over its admin socket. It implements
// adminapi.Keystores and adminapi.Updates.
type Client struct {
	// Version is this binary's build version, named when the agent
	// speaks another admin API version. Empty leaves it out.
	Version string

	socket string
	http   *http.Client // short calls
	long   *http.Client // calls that stream or wait for an install
}

var (
	_ adminapi.Keystores = (*Client)(nil)
	_ adminapi.Updates   = (*Client)(nil)
	_ adminapi.Cloud     = (*Client)(nil)
)

// New returns a client for the agent whose admin socket is at socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{
		socket: socket,
		http:   &http.Client{Timeout: 5 * time.Second, Transport: tr},
		long:   &http.Client{Transport: tr},
	}
}

// Ping returns nil when an agent answers on the socket, an error wrapping
// ErrNotRunning when none does.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.send(ctx, c.http, http.MethodGet, "/healthz", nil)
	return err
}

// AgentVersion asks GET /v1/version.
func (c *Client) AgentVersion(ctx context.Context) (*adminapi.VersionInfo, error) {
	return get[adminapi.VersionInfo](ctx, c, "/v1/version")
}

// Status asks GET /v1/status.
func (c *Client) Status(ctx context.Context) (*adminapi.Status, error) {
	return get[adminapi.Status](ctx, c, "/v1/status")
}

// get GETs path and decodes the reply into a new T.
func get[T any](ctx context.Context, c *Client, path string) (*T, error) {
	return call[T](ctx, c, http.MethodGet, path, nil)
}

// call sends req (nil for no body) as JSON and decodes the reply.
func call[T any](ctx context.Context, c *Client, method, path string, req any) (*T, error) {
	var body io.Reader
	if req != nil {
		data, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(data)
	}
	data, err := c.send(ctx, c.http, method, path, body)
	if err != nil {
		return nil, err
	}
	return decodeReply[T](method, path, data)
}

func decodeReply[T any](method, path string, data []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("admin: decode the reply to %s %s: %w", method, path, err)
	}
	return v, nil
}

// replyLimit bounds a reply: the largest are status and store listings.
const replyLimit = 8 << 20

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://edgefort"+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
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
	data, err := httpbody.Read(resp, replyLimit, "agent reply")
	if err != nil {
		return nil, fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return data, nil
	}
	var e adminapi.ErrorReply
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		// The agent's own words, already phrased for the operator.
		return nil, errors.New(e.Error)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		if err := c.versionError(resp.Header, method, path); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("admin: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
}

// versionError explains a route the agent lacks by the versions of the
// two sides, or returns nil when they speak the same one.
func (c *Client) versionError(h http.Header, method, path string) error {
	self := "this edgefort"
	if c.Version != "" {
		self += " (version " + c.Version + ")"
	}
	route := method + " " + strings.SplitN(path, "?", 2)[0]
	api, err := strconv.Atoi(h.Get(adminapi.HeaderAPI))
	if err != nil {
		// Agents from before the versioned API send no version.
		return fmt.Errorf("%w: the running agent speaks an admin API older than version %d and has no %s; %s speaks admin API %d: use the edgefort binary that came with the agent, or upgrade the agent",
			ErrVersion, adminapi.Version, route, self, adminapi.Version)
	}
	if api == adminapi.Version {
		return nil
	}
	agent := "the running agent"
	if v := h.Get(adminapi.HeaderAgent); v != "" {
		agent += " (version " + v + ")"
	}
	advice := "use the edgefort binary that came with the agent, or upgrade the agent"
	if api > adminapi.Version {
		advice = "use the edgefort binary that came with the agent"
	}
	return fmt.Errorf("%w: %s speaks admin API %d and has no %s; %s speaks admin API %d: %s",
		ErrVersion, agent, api, route, self, adminapi.Version, advice)
}

// seg escapes one path segment: a store may be named ref://NAME.
func seg(s string) string { return url.PathEscape(s) }

func kindQuery(kind keystore.Kind) string {
	if kind == "" {
		return ""
	}
	return "?kind=" + url.QueryEscape(string(kind))
}

func (c *Client) ListStores(ctx context.Context, kind keystore.Kind) (*adminapi.StoreList, error) {
	return get[adminapi.StoreList](ctx, c, "/v1/stores"+kindQuery(kind))
}

func (c *Client) CreateStore(ctx context.Context, r adminapi.CreateStoreRequest) (*adminapi.Change, error) {
	return call[adminapi.Change](ctx, c, http.MethodPost, "/v1/stores", r)
}

func (c *Client) DeleteStore(ctx context.Context, name string, kind keystore.Kind) (*adminapi.Change, error) {
	return call[adminapi.Change](ctx, c, http.MethodDelete, "/v1/stores/"+seg(name)+kindQuery(kind), nil)
}

func (c *Client) ImportEntry(ctx context.Context, store, alias string, r adminapi.ImportRequest) (*adminapi.Change, error) {
	return call[adminapi.Change](ctx, c, http.MethodPut, "/v1/stores/"+seg(store)+"/entries/"+seg(alias), r)
}

func (c *Client) DeleteEntry(ctx context.Context, store, alias string, kind keystore.Kind) (*adminapi.Change, error) {
	return call[adminapi.Change](ctx, c, http.MethodDelete, "/v1/stores/"+seg(store)+"/entries/"+seg(alias)+kindQuery(kind), nil)
}

func (c *Client) Certificates(ctx context.Context, store, alias string) (*adminapi.Document, error) {
	return get[adminapi.Document](ctx, c, "/v1/stores/"+seg(store)+"/entries/"+seg(alias)+"/certificates")
}

func (c *Client) ListRefs(ctx context.Context) (*adminapi.RefList, error) {
	return get[adminapi.RefList](ctx, c, "/v1/refs")
}

func (c *Client) SetRef(ctx context.Context, name, store string) (*adminapi.Change, error) {
	name = strings.TrimPrefix(name, keystore.RefScheme)
	return call[adminapi.Change](ctx, c, http.MethodPut, "/v1/refs/"+seg(name), adminapi.SetRefRequest{Store: store})
}

func (c *Client) DeleteRef(ctx context.Context, name string) (*adminapi.Change, error) {
	name = strings.TrimPrefix(name, keystore.RefScheme)
	return call[adminapi.Change](ctx, c, http.MethodDelete, "/v1/refs/"+seg(name), nil)
}

func (c *Client) ListKeyPairs(ctx context.Context) (*adminapi.KeyPairList, error) {
	return get[adminapi.KeyPairList](ctx, c, "/v1/keypairs")
}

func (c *Client) GenerateKeyPair(ctx context.Context, bits int) (*adminapi.Change, error) {
	return call[adminapi.Change](ctx, c, http.MethodPost, "/v1/keypairs", adminapi.GenerateKeyPairRequest{Bits: bits})
}

func (c *Client) PublicKey(ctx context.Context, which, format string) (*adminapi.Document, error) {
	q := url.Values{"which": {which}, "format": {format}}
	return get[adminapi.Document](ctx, c, "/v1/keypairs/public?"+q.Encode())
}

func (c *Client) VerifyKeyPair(ctx context.Context, r adminapi.VerifyKeyPairRequest) (*adminapi.Change, error) {
	return call[adminapi.Change](ctx, c, http.MethodPost, "/v1/keypairs/verify", r)
}

func (c *Client) DeleteKeyPair(ctx context.Context, which string) (*adminapi.Change, error) {
	return call[adminapi.Change](ctx, c, http.MethodDelete, "/v1/keypairs/"+seg(which), nil)
}

// UpdateStatus asks GET /v1/update/status.
func (c *Client) UpdateStatus(ctx context.Context) (*adminapi.UpdateStatus, error) {
	return get[adminapi.UpdateStatus](ctx, c, "/v1/update/status")
}

// CheckUpdate makes the agent ask the update server now, or once the
// server's Retry-After ends (the reply's HeldUntil).
func (c *Client) CheckUpdate(ctx context.Context) (*adminapi.CheckReply, error) {
	return call[adminapi.CheckReply](ctx, c, http.MethodPost, "/v1/update/check", nil)
}

// ReloadClients has the agent apply its configuration file's clients
// section without a restart; the error lists the file's problems.
func (c *Client) ReloadClients(ctx context.Context) error {
	_, err := call[adminapi.ReloadReply](ctx, c, http.MethodPost, "/v1/clients/reload", nil)
	return err
}

// InstallUpdate streams an Artifact to the agent and waits for the
// result; ctx alone bounds it.
func (c *Client) InstallUpdate(ctx context.Context, artifact io.Reader, commit bool) (*adminapi.UpdateResult, error) {
	path := "/v1/update/install"
	if commit {
		path += "?commit=true"
	}
	return c.updateResult(ctx, path, artifact)
}

func (c *Client) CommitUpdate(ctx context.Context) (*adminapi.UpdateResult, error) {
	return c.updateResult(ctx, "/v1/update/commit", nil)
}

func (c *Client) RollbackUpdate(ctx context.Context) (*adminapi.UpdateResult, error) {
	return c.updateResult(ctx, "/v1/update/rollback", nil)
}

func (c *Client) updateResult(ctx context.Context, path string, body io.Reader) (*adminapi.UpdateResult, error) {
	data, err := c.send(ctx, c.long, http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	return decodeReply[adminapi.UpdateResult](http.MethodPost, path, data)
}

// CloudStatus asks GET /v1/cloud/status.
func (c *Client) CloudStatus(ctx context.Context) (*adminapi.CloudStatus, error) {
	return get[adminapi.CloudStatus](ctx, c, "/v1/cloud/status")
}

// Authorize asks for a decision through the agent's cache.
func (c *Client) Authorize(ctx context.Context, r api.AuthorizeRequest) (*adminapi.AuthorizeReply, error) {
	return call[adminapi.AuthorizeReply](ctx, c, http.MethodPost, "/v1/cloud/authorize", r)
}

// Report queues a report in the agent's outbox.
func (c *Client) Report(ctx context.Context, r adminapi.ReportRequest) (*adminapi.ReportReply, error) {
	return call[adminapi.ReportReply](ctx, c, http.MethodPost, "/v1/cloud/report", r)
}

var _ adminapi.Sessions = (*Client)(nil)

func (c *Client) ListSessions(ctx context.Context) (*adminapi.SessionList, error) {
	return get[adminapi.SessionList](ctx, c, "/v1/sessions")
}

func (c *Client) RevokeSession(ctx context.Context, id string) (*adminapi.SessionRevoked, error) {
	return call[adminapi.SessionRevoked](ctx, c, http.MethodDelete, "/v1/sessions/"+seg(id), nil)
}

func (c *Client) RevokeUserSessions(ctx context.Context, user string) (*adminapi.SessionRevoked, error) {
	return call[adminapi.SessionRevoked](ctx, c, http.MethodDelete, "/v1/sessions?user="+url.QueryEscape(user), nil)
}
