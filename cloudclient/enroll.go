package cloudclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/httpbody"
)

// EnrollOptions configures Enroll.
type EnrollOptions struct {
	// BaseURL is the control plane's base URL. Required.
	BaseURL string
	// HTTP sends the request; the caller configures TLS. Required.
	HTTP *http.Client
	// Token is the one-time enrollment token. Required.
	Token string
	// Key is the device key, generated on the node: ECDSA P-256 or RSA of
	// 2048 bits or more. Only a CSR signed with it leaves the node.
	// Required.
	Key crypto.Signer
	// Hostname is the CSR's common name and is shown to the operator.
	// Required.
	Hostname string
	// AgentVersion is shown to the operator. Optional.
	AgentVersion string
	// Timeout bounds the call. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Enroll exchanges a one-time enrollment token and a CSR made from
// opts.Key for the device's identity. It is sent once, never retried (the
// token is single-use). The answer is checked: the device certificate must
// be for opts.Key and name the device ID, and the whole chain and the CA
// bundle must parse.
func Enroll(ctx context.Context, opts EnrollOptions) (*api.EnrollResponse, error) {
	resp, err := enroll(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("cloudclient: enroll: %w", err)
	}
	return resp, nil
}

func enroll(ctx context.Context, opts EnrollOptions) (*api.EnrollResponse, error) {
	var errs []error
	if err := checkHTTPS("base URL", opts.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if opts.HTTP == nil {
		errs = append(errs, errors.New("HTTP client is required"))
	}
	if opts.Token == "" {
		errs = append(errs, errors.New("enrollment token is required"))
	}
	if opts.Hostname == "" {
		errs = append(errs, errors.New("hostname is required"))
	}
	if opts.Key == nil {
		errs = append(errs, errors.New("device key is required"))
	} else if _, err := signingMethod(opts.Key.Public()); err != nil {
		errs = append(errs, fmt.Errorf("device key: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: opts.Hostname},
	}, opts.Key)
	if err != nil {
		return nil, fmt.Errorf("make CSR: %w", err)
	}
	body, err := json.Marshal(api.EnrollRequest{
		Token:        opts.Token,
		CSR:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		Hostname:     opts.Hostname,
		AgentVersion: opts.AgentVersion,
	})
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, orDefault(opts.Timeout, DefaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(opts.BaseURL, "/")+api.PathEnroll, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	hc := *opts.HTTP
	hc.CheckRedirect = httpsRedirectsOnly(opts.HTTP.CheckRedirect)
	hresp, err := hc.Do(req)
	if err != nil {
		return nil, transportError(parent, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode/100 != 2 {
		b, cut := httpbody.Message(hresp)
		return nil, newResponseError(hresp, b, cut, time.Now())
	}
	b, err := readReply(parent, hresp, maxEnrollReply, "reply")
	if err != nil {
		return nil, err
	}
	var er api.EnrollResponse
	if err := httpbody.DecodeJSON(b, &er, "reply"); err != nil {
		return nil, badReply(hresp.StatusCode, err)
	}
	if err := checkEnrollment(&er, opts.Key.Public()); err != nil {
		return nil, badReply(hresp.StatusCode, err)
	}
	return &er, nil
}

// checkHTTPS refuses a URL that is not https://host: enrollment sends the
// one-time token and the CSR, which must never travel in cleartext.
func checkHTTPS(what, s string) error {
	if err := checkURL(what, s); err != nil {
		return err
	}
	if u, _ := url.Parse(s); u.Scheme != "https" {
		return fmt.Errorf("%s %q: https is required (the enrollment token must not travel in cleartext)", what, s)
	}
	return nil
}

// httpsRedirectsOnly wraps a client's redirect policy (nil: Go's default)
// so that a redirect never leaves https: a 307 or 308 would resend the
// token to the new location.
func httpsRedirectsOnly(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("refusing a redirect to %s: https is required", req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// Limits of the fields of an enrollment answer that the node keeps.
const (
	maxURL       = 4 << 10 // an endpoint URL
	maxHostname  = 253     // a DNS name (the IoT endpoint)
	maxRegion    = 64      // an AWS region ("us-east-1")
	maxThingName = 128     // AWS IoT's limit on thing names
)

// deviceIDPattern is api's DeviceID: the ID goes into URL paths and file
// names.
// Compiled on first use, not at every start (cmd/edgefort's TestInitAllocations).
var deviceIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`) })

// checkEnrollment checks that an enrollment answer is usable with pub.
func checkEnrollment(er *api.EnrollResponse, pub crypto.PublicKey) error {
	if er.DeviceID == "" {
		return errors.New("no device_id")
	}
	if err := checkEndpoints(er); err != nil {
		return err
	}
	chain, err := parseCertificates([]byte(er.CertificateChain))
	if err != nil {
		return fmt.Errorf("certificate_chain: %w", err)
	}
	leaf := chain[0]
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(pub) {
		return errors.New("certificate_chain: the device certificate is not for the device key")
	}
	if leaf.Subject.CommonName != er.DeviceID {
		return fmt.Errorf("certificate_chain: the device certificate names %q, not device %q", leaf.Subject.CommonName, er.DeviceID)
	}
	if _, err := parseCertificates([]byte(er.CABundle)); err != nil {
		return fmt.Errorf("ca_bundle: %w", err)
	}
	return nil
}

// checkEndpoints checks the device ID and the endpoints the node keeps:
// their lengths, and https for the control plane, which receives the
// device's assertions and tokens.
func checkEndpoints(er *api.EnrollResponse) error {
	if err := httpbody.CheckLen("device_id", er.DeviceID, 128); err != nil {
		return err
	}
	if !deviceIDPattern().MatchString(er.DeviceID) {
		return fmt.Errorf("device_id %q: want letters, digits, '-' and '_'", er.DeviceID)
	}
	ep := er.Endpoints
	errs := []error{
		httpbody.CheckLen("endpoints.control_plane_url", ep.ControlPlaneURL, maxURL),
		httpbody.CheckLen("endpoints.token_url", ep.TokenURL, maxURL),
		httpbody.CheckLen("endpoints.update_server_url", ep.UpdateServerURL, maxURL),
	}
	if ep.IoT != nil {
		errs = append(errs,
			httpbody.CheckLen("endpoints.iot.endpoint", ep.IoT.Endpoint, maxHostname),
			httpbody.CheckLen("endpoints.iot.region", ep.IoT.Region, maxRegion),
			httpbody.CheckLen("endpoints.iot.thing_name", ep.IoT.ThingName, maxThingName))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := checkHTTPS("endpoints.control_plane_url", ep.ControlPlaneURL); err != nil {
		return err
	}
	if ep.TokenURL != "" {
		return checkHTTPS("endpoints.token_url", ep.TokenURL)
	}
	return nil
}

// parseCertificates reads every PEM "CERTIFICATE" block of b; it fails on
// any other block, on trailing garbage, and when there is none.
func parseCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, errors.New("trailing data after the last PEM block")
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}
