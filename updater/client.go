package updater

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/internal/retryafter"
)

// Device API paths, relative to ClientOptions.ServerURL.
const (
	pathAuth      = "/api/devices/v1/authentication/auth_requests"
	pathNextV2    = "/api/devices/v2/deployments/device/deployments/next"
	pathNextV1    = "/api/devices/v1/deployments/device/deployments/next"
	pathDeploy    = "/api/devices/v1/deployments/device/deployments/"
	pathInventory = "/api/devices/v1/inventory/device/attributes"
)

// ClientOptions configures a Client.
type ClientOptions struct {
	// ServerURL is the Mender server, e.g. "https://mender.example.com".
	// Required.
	ServerURL string
	// TenantToken identifies the tenant on a multi-tenant server. Optional;
	// always sent, empty when unset, as Mender's Go client does.
	TenantToken string
	// HTTP sends every request, API calls and artifact downloads alike. The
	// caller configures TLS on it (keystore.Manager.ClientTLS). Required.
	HTTP *http.Client
	// Key signs auth requests: *rsa.PrivateKey, *ecdsa.PrivateKey or
	// ed25519.PrivateKey (or any crypto.Signer whose Public() is one of
	// those). Required.
	Key crypto.Signer
	// Identity is the device identity, sent as id_data. Values are strings
	// or []string (a repeated key). Required, non-empty.
	Identity map[string]any
	// AgentVersion is reported in every inventory as AttrAgentVersion.
	// Optional.
	AgentVersion string
	// Logger receives debug logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock used to read HTTP-date Retry-After values. Nil means
	// time.Now.
	Now func() time.Time
}

// Client makes single calls to the Mender device API. It is safe for
// concurrent use. It owns no goroutines: retries over time, polling and
// backoff are the caller's.
type Client struct {
	server  string // without trailing slash
	tenant  string
	http    *http.Client
	key     crypto.Signer
	pubPEM  string
	idData  string
	version string
	log     *slog.Logger
	now     func() time.Time
	authMu  sync.Mutex // serialises Authenticate, so concurrent 401s do not stampede

	mu  sync.Mutex // guards jwt
	jwt string
}

// NewClient checks opts and returns a client. It sends nothing.
func NewClient(opts ClientOptions) (*Client, error) {
	var errs []error
	u, err := url.Parse(opts.ServerURL)
	switch {
	case opts.ServerURL == "":
		errs = append(errs, errors.New("server URL is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("server URL: %w", err))
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		errs = append(errs, fmt.Errorf("server URL %q: want https://host", opts.ServerURL))
	}
	if opts.HTTP == nil {
		errs = append(errs, errors.New("HTTP client is required"))
	}
	var pubPEM string
	if opts.Key == nil {
		errs = append(errs, errors.New("device key is required"))
	} else if pubPEM, err = publicKeyPEM(opts.Key); err != nil {
		errs = append(errs, err)
	}
	var idData []byte
	if len(opts.Identity) == 0 {
		errs = append(errs, errors.New("identity is required"))
	} else if idData, err = json.Marshal(opts.Identity); err != nil {
		errs = append(errs, fmt.Errorf("identity: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("updater: new client: %w", err)
	}
	c := &Client{
		server:  strings.TrimRight(opts.ServerURL, "/"),
		tenant:  opts.TenantToken,
		http:    opts.HTTP,
		key:     opts.Key,
		pubPEM:  pubPEM,
		idData:  string(idData),
		version: opts.AgentVersion,
		log:     opts.Logger,
		now:     opts.Now,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// HasToken reports whether the client holds a JWT from a successful
// Authenticate.
func (c *Client) HasToken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jwt != ""
}

// ClearToken drops the JWT so that the next call authenticates afresh.
// Mender's client does this just before commit, to prove that the new
// software can still authenticate.
func (c *Client) ClearToken() {
	c.mu.Lock()
	c.jwt = ""
	c.mu.Unlock()
}

func (c *Client) token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jwt
}

// apiRequest is one JSON call to the device API.
type apiRequest struct {
	method string
	path   string // may include a query
	body   any    // marshalled to JSON; nil sends no body
}

// do sends req with the JWT, authenticating first when there is none, and
// re-authenticating and retrying once when the server answers 401. The
// caller closes the response body. A 429 becomes *RetryAfterError and a
// second 401 ErrUnauthorized; other statuses are left to the caller.
func (c *Client) do(ctx context.Context, req apiRequest) (*http.Response, error) {
	var body []byte
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	if c.token() == "" {
		if err := c.Authenticate(ctx); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, req.method, req.path, body, c.token())
		if err != nil {
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			drain(resp)
			if attempt > 0 {
				return nil, fmt.Errorf("%w: still 401 after re-authenticating", ErrUnauthorized)
			}
			c.log.Debug("updater: token refused, re-authenticating", logKeyPath, req.path)
			c.ClearToken()
			if err := c.Authenticate(ctx); err != nil {
				return nil, err
			}
			continue
		case http.StatusTooManyRequests:
			drain(resp)
			return nil, &RetryAfterError{After: retryafter.FromHeader(resp.Header, c.now())}
		}
		return resp, nil
	}
}

// send sends one request with Content-Length, never chunked.
func (c *Client) send(ctx context.Context, method, path string, body []byte, jwt string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if jwt != "" {
		req.Header.Set("Authorization", "Bearer "+jwt)
	}
	return c.http.Do(req)
}

// Log keys.
const (
	logKeyPath = "path"
)

// drain reads a little of an unwanted body so the connection can be reused,
// then closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, httpbody.ErrorLimit))
	resp.Body.Close()
}

// statusError reads the server's error message from resp and closes it.
// The message is cut at httpbody.ErrorLimit.
func statusError(resp *http.Response) *StatusError {
	defer resp.Body.Close()
	b, cut := httpbody.Message(resp)
	e := &StatusError{Code: resp.StatusCode, RequestID: cutRequestID(resp.Header.Get("X-Men-Requestid"))}
	var msg struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}
	if !cut && json.Unmarshal(b, &msg) == nil && msg.Error != "" {
		e.Message = msg.Error
		if e.RequestID == "" {
			e.RequestID = cutRequestID(msg.RequestID)
		}
	} else {
		e.Message = strings.TrimSpace(string(b))
		if cut {
			e.Message += httpbody.CutNote
		}
	}
	return e
}

// maxRequestID caps the request ID echoed in errors and logs; Mender's are
// UUIDs (36 bytes).
const maxRequestID = 128

func cutRequestID(s string) string {
	if len(s) > maxRequestID {
		return s[:maxRequestID] + "..."
	}
	return s
}
