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
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
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
	if err := checkURL("base URL", opts.BaseURL); err != nil {
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
	hresp, err := opts.HTTP.Do(req)
	if err != nil {
		return nil, transportError(parent, err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, maxBody))
	if err != nil {
		return nil, transportError(parent, fmt.Errorf("read response: %w", err))
	}
	if hresp.StatusCode/100 != 2 {
		return nil, newResponseError(hresp, b, time.Now())
	}
	var er api.EnrollResponse
	if err := json.Unmarshal(b, &er); err != nil {
		return nil, &ResponseError{Status: hresp.StatusCode, Message: fmt.Sprintf("decode response: %v", err)}
	}
	if err := checkEnrollment(&er, opts.Key.Public()); err != nil {
		return nil, &ResponseError{Status: hresp.StatusCode, Message: err.Error()}
	}
	return &er, nil
}

// checkEnrollment checks that an enrollment answer is usable with pub.
func checkEnrollment(er *api.EnrollResponse, pub crypto.PublicKey) error {
	if er.DeviceID == "" {
		return errors.New("no device_id")
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
