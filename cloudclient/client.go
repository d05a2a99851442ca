// Package cloudclient is the node's side of the "cloud calls" link: an
// HTTPS client for the control plane API (package api and its OpenAPI
// document) that proves the device's identity with RFC 7523 JWT assertions
// signed by the device key and caches the short-lived access token it gets
// back. On top of single calls it owns enrollment (Enroll), the cache of
// authorization decisions with its policy for an unreachable cloud
// (Authorizer), and the temporary AWS credentials of the event link
// (NewIoTCredentials). It owns the configuration's cloud section (Config)
// and the enrolled identity in the state store (Enrollment); NewNode
// builds the running link from them: the client, the authorizer and the
// outbox of reports.
//
// Client makes one call at a time and owns no goroutines: retries happen
// inside the call, bounded by its context, and only for calls that are
// safe to repeat.
//
// Every answer is read within a limit that fits its message, and the
// fields the node keeps are checked against theirs (the reply limits
// below); a reply past a limit is refused, not retried, with an error
// naming the limit. Enrollment goes over https only, redirects included.
package cloudclient

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/internal/retryafter"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultRetryAttempts = 4
	DefaultRetryInitial  = 200 * time.Millisecond
	DefaultRetryMax      = 5 * time.Second
)

// Reply limits, one per message. The OpenAPI document (package api) bounds
// what the node sends; these bound what it reads back, with room to spare
// over the largest answer the control plane can legitimately give.
const (
	// maxTokenReply: an access token (a JWT of well under 2 KiB), its type
	// and lifetime. The token goes back in a header on every call.
	maxTokenReply = 64 << 10
	// maxDecisionReply: one decision, whose reason is at most maxReason.
	maxDecisionReply = 64 << 10
	// maxBatchReply: up to 100 decisions (BatchAuthorizeRequest maxItems).
	maxBatchReply = 1 << 20
	// maxCredentialsReply: temporary AWS credentials; an STS session token
	// is 1 to 3 KiB.
	maxCredentialsReply = 64 << 10
	// maxReportsReply: acknowledgements or rejections of up to 500 reports
	// (ReportsRequest maxItems), keys of at most maxReportKey and reasons
	// of at most maxReason: about 650 KiB at worst.
	maxReportsReply = 1 << 20
	// maxJWKSReply: a key set; a 4096-bit RSA JWK is under 1 KiB.
	maxJWKSReply = 1 << 20
	// maxEnrollReply: the device certificate chain and the CA bundle, a
	// few PEM certificates of 1 to 2 KiB each, and the endpoints.
	maxEnrollReply = 1 << 20
)

// Field limits for what the node keeps or echoes.
const (
	// maxReason caps a decision's or rejection's reason: a sentence for
	// logs and audit, kept in the decision cache.
	maxReason = 1 << 10
	// maxReportKey is Report.idempotency_key's maxLength in the OpenAPI
	// document; the node never sends a longer one, so a longer answer
	// cannot name one of its reports.
	maxReportKey = 200
)

// Options configures a Client.
type Options struct {
	// BaseURL is the control plane's base URL, https://host[:port][/prefix].
	// Required.
	BaseURL string
	// TokenURL is the token endpoint, also the audience of assertions.
	// Empty means BaseURL + api.PathToken.
	TokenURL string
	// HTTP sends every request. The caller configures its TLS (from the
	// keystore; optionally with the device certificate for mutual TLS).
	// Its own Timeout, if any, applies on top of Timeout. Required.
	HTTP *http.Client
	// DeviceID is the device's identity from enrollment: the issuer and
	// subject of assertions. Required for device calls (all but JWKS).
	DeviceID string
	// Key is the device key that signs assertions: *ecdsa.PrivateKey on
	// P-256 (ES256) or *rsa.PrivateKey (RS256), or a crypto.Signer whose
	// public key is one of those. Required for device calls.
	Key crypto.Signer
	// Timeout bounds each attempt of a call, reading the answer included.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Retry shapes the retries of idempotent calls.
	Retry Retry
	// Logger receives debug and warning logs; never tokens, assertions or
	// secrets. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for assertions and token lifetimes. Nil means
	// time.Now.
	Now func() time.Time
}

// Retry is exponential backoff with full jitter: before retry n (from 0)
// the call sleeps a random duration in [0, min(Max, Initial·2ⁿ)), or what a
// 429 or 503 answer's Retry-After asks, capped at 4·Max.
type Retry struct {
	// Attempts is the total number of tries, the first included. Zero
	// means DefaultRetryAttempts; 1 disables retries.
	Attempts int
	// Initial is the first backoff bound. Zero means DefaultRetryInitial.
	Initial time.Duration
	// Max caps a backoff. Zero means DefaultRetryMax.
	Max time.Duration
}

// Client calls the control plane. It is safe for concurrent use.
type Client struct {
	base     string // without trailing slash
	tokenURL string
	http     *http.Client
	deviceID string
	key      crypto.Signer // nil: no device calls
	kid      string
	alg      jwt.SigningMethod
	timeout  time.Duration
	retry    Retry
	log      *slog.Logger
	now      func() time.Time
	flight   singleflight.Group // one token fetch at a time

	mu  sync.Mutex   // guards tok
	tok *accessToken // nil until the first fetch
}

// New checks opts and returns a client. It sends nothing.
func New(opts Options) (*Client, error) {
	var errs []error
	if err := checkURL("base URL", opts.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if opts.TokenURL != "" {
		if err := checkURL("token URL", opts.TokenURL); err != nil {
			errs = append(errs, err)
		}
	}
	if opts.HTTP == nil {
		errs = append(errs, errors.New("HTTP client is required"))
	}
	if opts.DeviceID != "" && opts.Key == nil {
		errs = append(errs, errors.New("device key is required with a device ID"))
	}
	if opts.Key != nil && opts.DeviceID == "" {
		errs = append(errs, errors.New("device ID is required with a device key"))
	}
	var kid string
	var alg jwt.SigningMethod
	if opts.Key != nil {
		var err error
		if alg, err = signingMethod(opts.Key.Public()); err != nil {
			errs = append(errs, fmt.Errorf("device key: %w", err))
		} else if kid, err = KeyID(opts.Key.Public()); err != nil {
			errs = append(errs, fmt.Errorf("device key: %w", err))
		}
	}
	if opts.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", opts.Timeout))
	}
	r := opts.Retry
	if r.Attempts < 0 || r.Initial < 0 || r.Max < 0 {
		errs = append(errs, fmt.Errorf("retry %+v has a negative field", r))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cloudclient: new: %w", err)
	}
	c := &Client{
		base:     strings.TrimRight(opts.BaseURL, "/"),
		tokenURL: opts.TokenURL,
		http:     opts.HTTP,
		deviceID: opts.DeviceID,
		key:      opts.Key,
		kid:      kid,
		alg:      alg,
		timeout:  orDefault(opts.Timeout, DefaultTimeout),
		retry: Retry{
			Attempts: orDefault(r.Attempts, DefaultRetryAttempts),
			Initial:  orDefault(r.Initial, DefaultRetryInitial),
			Max:      orDefault(r.Max, DefaultRetryMax),
		},
		log: opts.Logger,
		now: opts.Now,
	}
	if c.tokenURL == "" {
		c.tokenURL = c.base + api.PathToken
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func checkURL(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is required", what)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s %q: want https://host", what, s)
	}
	return nil
}

// Log keys.
const (
	logKeyCall    = "call"
	logKeyAttempt = "attempt"
	logKeyDelay   = "delay"
	logKeyError   = "error"
)

// call is one API call.
type call struct {
	name   string // for errors and logs: "authorize"
	method string
	path   string // relative to the base URL
	body   any    // marshalled to JSON; nil sends none
	// device sends the access token and refreshes it once on a 401.
	device bool
	// retry allows retries on ErrUnavailable: the call is a read or keyed.
	retry bool
	// out receives the decoded 2xx body; a *[]byte receives it raw.
	out any
	// limit caps the 2xx body; zero expects none (a non-empty body is
	// refused).
	limit int64
	// check, when set, checks out once decoded, e.g. its field lengths.
	check func() error
}

// do makes cl, retrying as allowed, and names the call in its error.
func (c *Client) do(ctx context.Context, cl call) error {
	if err := c.doRetry(ctx, cl); err != nil {
		return fmt.Errorf("cloudclient: %s: %w", cl.name, err)
	}
	return nil
}

func (c *Client) doRetry(ctx context.Context, cl call) error {
	var body []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	if cl.device && c.key == nil {
		return errors.New("no device ID and key configured")
	}
	attempts := 1
	if cl.retry {
		attempts = c.retry.Attempts
	}
	reauthorized := false
	for n := 0; ; n++ {
		var token string
		if cl.device {
			t, err := c.token(ctx)
			if err != nil {
				return err // Token retried already
			}
			token = t
		}
		err := c.attempt(ctx, cl, body, token)
		if err == nil {
			return nil
		}
		if cl.device && !reauthorized && errors.Is(err, ErrUnauthorized) {
			// The token may have been revoked or the server's clock may
			// disagree: fetch a new one and try once more.
			reauthorized = true
			c.log.Debug("cloudclient: token refused, refreshing", logKeyCall, cl.name)
			c.dropToken(token)
			n--
			continue
		}
		if !errors.Is(err, ErrUnavailable) || n+1 >= attempts || ctx.Err() != nil {
			return err
		}
		delay := c.backoff(n, err)
		c.log.Debug("cloudclient: retrying", logKeyCall, cl.name, logKeyAttempt, n+1, logKeyDelay, delay, logKeyError, err)
		if err := backoff.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// attempt sends one request bounded by the per-attempt timeout and reads
// the answer.
func (c *Client) attempt(ctx context.Context, cl call, body []byte, token string) error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, c.base+cl.path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return c.statusError(resp)
	}
	b, err := readReply(ctx, resp, cl.limit, "reply")
	if err != nil {
		return err
	}
	switch out := cl.out.(type) {
	case nil:
	case *[]byte:
		*out = b
	default:
		if err := httpbody.DecodeJSON(b, out, "reply"); err != nil {
			return badReply(resp.StatusCode, err)
		}
	}
	if cl.check != nil {
		if err := cl.check(); err != nil {
			return badReply(resp.StatusCode, fmt.Errorf("reply: %w", err))
		}
	}
	return nil
}

// readReply reads a 2xx body within limit. A body past it is a
// *ResponseError naming the limit, never retried: the server answered, and
// asking again would give the same answer.
func readReply(ctx context.Context, resp *http.Response, limit int64, what string) ([]byte, error) {
	b, err := httpbody.Read(resp, limit, what)
	var tl *httpbody.TooLargeError
	switch {
	case errors.As(err, &tl):
		return nil, badReply(resp.StatusCode, err)
	case err != nil:
		return nil, transportError(ctx, err)
	}
	return b, nil
}

// badReply is a 2xx answer the node cannot use.
func badReply(status int, err error) *ResponseError {
	return &ResponseError{Status: status, Message: err.Error(), cause: err}
}

// transportError classifies a failure to get an answer: the caller's
// context ending is returned as is; anything else (refused, reset, the
// attempt's own timeout) is ErrUnavailable.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return unavailable(err)
}

// statusError turns an error answer into a *ResponseError, reading the
// api.Error body when there is one.
func (c *Client) statusError(resp *http.Response) *ResponseError {
	b, cut := httpbody.Message(resp)
	return newResponseError(resp, b, cut, c.now())
}

// newResponseError makes the error of an error answer whose body starts
// with b; cut says the body went on past httpbody.ErrorLimit.
func newResponseError(resp *http.Response, b []byte, cut bool, now time.Time) *ResponseError {
	e := &ResponseError{Status: resp.StatusCode}
	var body api.Error
	if !cut && json.Unmarshal(b, &body) == nil && (body.Code != "" || body.Message != "") {
		e.Code, e.Message = body.Code, body.Message
	} else {
		e.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
		if cut {
			e.Message += httpbody.CutNote
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.retryAfter = retryafter.FromHeader(resp.Header, now)
	}
	return e
}

// backoff is the delay before retry n (from 0): full jitter under
// min(Max, Initial·2ⁿ), or the server's Retry-After capped at 4·Max.
func (c *Client) backoff(n int, err error) time.Duration {
	var re *ResponseError
	if errors.As(err, &re) && re.retryAfter > 0 {
		return min(re.retryAfter, 4*c.retry.Max)
	}
	return backoff.Policy{Initial: c.retry.Initial, Max: c.retry.Max}.Delay(n, rand.Float64())
}
