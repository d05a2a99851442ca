// Package sigv4 presigns and verifies the AWS Signature Version 4 query
// string that AWS IoT Core requires on its MQTT-over-WebSocket endpoint,
// GET wss://<endpoint>/mqtt. It owns the IoT specifics: the signing
// service "iotdevicegateway", only the host header signed, the empty
// payload hash, and X-Amz-Security-Token kept out of the signature and
// appended after it (AWS IoT developer guide, "IAM users, groups, and
// roles"). Presign is the device side, Verify what devcloud's broker does
// on the HTTP upgrade. Both sign with aws-sdk-go-v2's v4 signer, so the
// canonical request is the SDK's, not a second implementation.
package sigv4

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Names and limits of the AWS IoT WebSocket signature.
const (
	// Service is the SigV4 signing name of the AWS IoT data plane
	// (not "iot").
	Service = "iotdevicegateway"
	// Path is the WebSocket endpoint's path.
	Path = "/mqtt"
	// DefaultExpires is the X-Amz-Expires Presign uses when given zero:
	// 24 h, AWS IoT's maximum SigV4 connection duration and the AWS SDKs'
	// usual value. The URL only needs to be valid when the connection
	// opens; callers that re-sign per attempt may pass much less.
	DefaultExpires = 24 * time.Hour
	// MaxExpires is the largest X-Amz-Expires SigV4 query authentication
	// accepts (7 days). AWS publishes no IoT-specific maximum.
	MaxExpires = 7 * 24 * time.Hour
	// MaxSkew is how far in the future X-Amz-Date may be: SigV4's general
	// 5 minute rule.
	MaxSkew = 5 * time.Minute
)

// The query parameters of a presigned URL.
const (
	ParamAlgorithm     = "X-Amz-Algorithm"
	ParamCredential    = "X-Amz-Credential"
	ParamDate          = "X-Amz-Date"
	ParamExpires       = "X-Amz-Expires"
	ParamSignedHeaders = "X-Amz-SignedHeaders"
	ParamSignature     = "X-Amz-Signature"
	ParamSecurityToken = "X-Amz-Security-Token"
)

const (
	algorithm   = "AWS4-HMAC-SHA256"
	dateFormat  = "20060102T150405Z" // X-Amz-Date
	scopeFormat = "20060102"         // the date in the credential scope
	terminator  = "aws4_request"
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// The reasons Verify refuses a request. Each error Verify returns wraps
// exactly one of them, with the detail in its text.
var (
	// ErrMalformed: not GET /mqtt, a X-Amz-* parameter missing, repeated
	// or not well-formed, or the credential scope inconsistent with
	// X-Amz-Date.
	ErrMalformed = errors.New("malformed signed request")
	// ErrExpired: now is after X-Amz-Date + X-Amz-Expires.
	ErrExpired = errors.New("signed request expired")
	// ErrClockSkew: X-Amz-Date is more than MaxSkew after now.
	ErrClockSkew = errors.New("signed request date is in the future")
	// ErrUnknownKey: lookup does not know the access key ID.
	ErrUnknownKey = errors.New("unknown access key")
	// ErrBadToken: X-Amz-Security-Token missing, unexpected or not the
	// one the access key was issued with.
	ErrBadToken = errors.New("bad security token")
	// ErrBadSignature: the signature does not match, or the request was
	// signed for another region, service or host.
	ErrBadSignature = errors.New("signature does not match")
)

// newSigner returns a fresh signer per use: the SDK caches derived signing
// keys by access key ID, region, service and day, not by secret, so one
// shared signer would let a URL signed with a wrong secret for a known key
// ID verify within the same process.
func newSigner() *v4.Signer { return v4.NewSigner() }

// Presign returns the wss:// URL for AWS IoT Core's MQTT-over-WebSocket
// endpoint on host (a host name, with ":port" only when not 443): GET
// wss://host/mqtt presigned with SigV4 for Service in region, valid for
// expires (zero: DefaultExpires; at most MaxExpires) from now. When creds
// carry a session token it is appended as X-Amz-Security-Token after
// signing, outside the signature, as AWS IoT requires. now is explicit so
// callers and tests control the clock; a caller must presign again for
// every connection attempt rather than reuse a URL.
func Presign(ctx context.Context, creds aws.Credentials, host, region string, expires time.Duration, now time.Time) (string, error) {
	if host == "" || strings.ContainsAny(host, "/?#@") {
		return "", fmt.Errorf("presign: invalid host %q", host)
	}
	if region == "" {
		return "", errors.New("presign: region is required")
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return "", errors.New("presign: credentials have no access key or secret")
	}
	if expires == 0 {
		expires = DefaultExpires
	}
	if expires < time.Second || expires > MaxExpires {
		return "", fmt.Errorf("presign: expires %v outside 1s..%v", expires, MaxExpires)
	}
	u := &url.URL{
		Scheme:   "wss",
		Host:     host,
		Path:     Path,
		RawQuery: ParamExpires + "=" + strconv.FormatInt(int64(expires/time.Second), 10),
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	signed, _, err := newSigner().PresignHTTP(ctx, creds, req, emptySHA256, Service, region, now.UTC(), withoutToken)
	if err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	if creds.SessionToken != "" {
		signed += "&" + ParamSecurityToken + "=" + url.QueryEscape(creds.SessionToken)
	}
	return signed, nil
}

// withoutToken keeps the SDK from putting the session token into the
// canonical query.
func withoutToken(o *v4.SignerOptions) { o.DisableSessionToken = true }

// Lookup returns the secret of an access key ID and the session token it
// was issued with (empty for long-term keys); ok is false for a key that
// is unknown or no longer valid.
type Lookup func(accessKeyID string) (secret, sessionToken string, ok bool)

// Verify checks a presigned WebSocket upgrade request as AWS IoT would and
// returns the access key ID that signed it. It requires GET Path; the
// X-Amz-* parameters present once and well-formed (algorithm
// AWS4-HMAC-SHA256, SignedHeaders "host", a credential scope whose date is
// X-Amz-Date's, X-Amz-Expires within 1s..MaxExpires); the scope's region
// and service equal to region and Service; X-Amz-Date at most MaxSkew
// ahead of now and now not after X-Amz-Date + X-Amz-Expires; the key known
// to lookup; X-Amz-Security-Token equal to the token the key was issued
// with (absent when it has none); and X-Amz-Signature equal, in constant
// time, to the one aws-sdk-go-v2 computes over the request as received
// (its Host header, every query parameter but the signature and the
// token). A request that put the token inside the signature therefore
// fails with ErrBadSignature, as it does at AWS IoT.
//
// host, when not empty, is the Host the signature must be for; empty
// accepts the Host header as sent (the signature covers it either way).
// The error wraps one of the Err* sentinels above.
func Verify(ctx context.Context, r *http.Request, host, region string, lookup Lookup, now time.Time) (accessKeyID string, err error) {
	if r.Method != http.MethodGet {
		return "", fmt.Errorf("%w: method %s, want GET", ErrMalformed, r.Method)
	}
	if r.URL.Path != Path {
		return "", fmt.Errorf("%w: path %q, want %q", ErrMalformed, r.URL.Path, Path)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: query: %v", ErrMalformed, err)
	}
	p, err := parseParams(q)
	if err != nil {
		return "", err
	}
	if p.region != region || p.service != Service {
		return "", fmt.Errorf("%w: signed for %s/%s, want %s/%s", ErrBadSignature, p.region, p.service, region, Service)
	}
	if p.date.After(now.Add(MaxSkew)) {
		return "", fmt.Errorf("%w: X-Amz-Date %s is %v ahead of the server clock (max %v)",
			ErrClockSkew, p.date.Format(dateFormat), p.date.Sub(now).Truncate(time.Second), MaxSkew)
	}
	if end := p.date.Add(p.expires); now.After(end) {
		return "", fmt.Errorf("%w: at %s", ErrExpired, end.Format(dateFormat))
	}
	secret, wantToken, ok := lookup(p.accessKeyID)
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownKey, p.accessKeyID)
	}
	if err := checkToken(q[ParamSecurityToken], wantToken); err != nil {
		return "", err
	}
	reqHost := r.Host
	if host != "" && !strings.EqualFold(reqHost, host) {
		return "", fmt.Errorf("%w: request for host %q, want %q", ErrBadSignature, reqHost, host)
	}
	want, err := signature(ctx, q, reqHost, p, secret)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(p.signature)) != 1 {
		return "", fmt.Errorf("%w for access key %q", ErrBadSignature, p.accessKeyID)
	}
	return p.accessKeyID, nil
}

// params are the parsed X-Amz-* parameters of a presigned request.
type params struct {
	accessKeyID, region, service string
	date                         time.Time
	expires                      time.Duration
	signature                    string
}

// parseParams checks the form of the X-Amz-* parameters; errors wrap
// ErrMalformed.
func parseParams(q url.Values) (params, error) {
	var p params
	get := func(name string) (string, error) {
		v := q[name]
		switch {
		case len(v) == 0 || v[0] == "":
			return "", fmt.Errorf("%w: %s missing", ErrMalformed, name)
		case len(v) > 1:
			return "", fmt.Errorf("%w: %s repeated", ErrMalformed, name)
		}
		return v[0], nil
	}
	var vals [6]string
	for i, name := range []string{ParamAlgorithm, ParamCredential, ParamDate, ParamExpires, ParamSignedHeaders, ParamSignature} {
		v, err := get(name)
		if err != nil {
			return p, err
		}
		vals[i] = v
	}
	alg, cred, date, expires, signedHeaders, sig := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
	if alg != algorithm {
		return p, fmt.Errorf("%w: algorithm %q, want %q", ErrMalformed, alg, algorithm)
	}
	if signedHeaders != "host" {
		return p, fmt.Errorf("%w: signed headers %q, want \"host\"", ErrMalformed, signedHeaders)
	}
	var err error
	if p.date, err = time.Parse(dateFormat, date); err != nil || p.date.Format(dateFormat) != date {
		return p, fmt.Errorf("%w: X-Amz-Date %q", ErrMalformed, date)
	}
	secs, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || secs < 1 || secs > int64(MaxExpires/time.Second) {
		return p, fmt.Errorf("%w: X-Amz-Expires %q outside 1..%d", ErrMalformed, expires, int64(MaxExpires/time.Second))
	}
	p.expires = time.Duration(secs) * time.Second
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] == "" || scope[2] == "" || scope[4] != terminator {
		return p, fmt.Errorf("%w: credential %q is not AKID/date/region/service/%s", ErrMalformed, cred, terminator)
	}
	if scope[1] != p.date.Format(scopeFormat) {
		return p, fmt.Errorf("%w: credential date %s is not X-Amz-Date's", ErrMalformed, scope[1])
	}
	p.accessKeyID, p.region, p.service = scope[0], scope[2], scope[3]
	if len(sig) != 64 || strings.Trim(sig, "0123456789abcdef") != "" {
		return p, fmt.Errorf("%w: signature is not 64 lower-case hex digits", ErrMalformed)
	}
	p.signature = sig
	return p, nil
}

// checkToken compares the X-Amz-Security-Token values sent with the
// token the key was issued with.
func checkToken(got []string, want string) error {
	switch {
	case want == "" && len(got) == 0:
		return nil
	case want == "":
		return fmt.Errorf("%w: key was issued without a session token", ErrBadToken)
	case len(got) == 0:
		return fmt.Errorf("%w: %s missing", ErrBadToken, ParamSecurityToken)
	case len(got) > 1:
		return fmt.Errorf("%w: %s repeated", ErrBadToken, ParamSecurityToken)
	case subtle.ConstantTimeCompare([]byte(got[0]), []byte(want)) != 1:
		return fmt.Errorf("%w: not the token issued with the key", ErrBadToken)
	}
	return nil
}

// signature recomputes X-Amz-Signature with the SDK's signer over GET
// wss://host/mqtt and the received query without the signature and the
// session token.
func signature(ctx context.Context, q url.Values, host string, p params, secret string) (string, error) {
	signed := make(url.Values, len(q))
	for k, v := range q {
		if k != ParamSignature && k != ParamSecurityToken {
			signed[k] = v
		}
	}
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "wss", Host: host, Path: Path, RawQuery: signed.Encode()},
		Host:   host,
		Header: make(http.Header),
	}
	creds := aws.Credentials{AccessKeyID: p.accessKeyID, SecretAccessKey: secret}
	out, _, err := newSigner().PresignHTTP(ctx, creds, req.WithContext(ctx), emptySHA256, p.service, p.region, p.date, withoutToken)
	if err != nil {
		return "", fmt.Errorf("%w: recompute: %v", ErrMalformed, err)
	}
	u, err := url.Parse(out)
	if err != nil {
		return "", fmt.Errorf("%w: recompute: %v", ErrMalformed, err)
	}
	return u.Query().Get(ParamSignature), nil
}
