package devcloud

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// deviceCertLifetime is how long a device certificate is valid.
const deviceCertLifetime = 365 * 24 * time.Hour

// EnrolledDevice is a device the control plane knows.
type EnrolledDevice struct {
	ID          string
	Certificate *x509.Certificate
	PublicKey   crypto.PublicKey
	// KeyID is the RFC 7638 thumbprint of PublicKey (SHA-256, base64url),
	// the kid of the device's assertions.
	KeyID    string
	Hostname string
	Enrolled time.Time
}

// NewEnrollmentToken makes a one-time enrollment token.
func (c *ControlPlane) NewEnrollmentToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enrollTok[tok] = false
	return tok
}

// Devices lists the enrolled devices, oldest first.
func (c *ControlPlane) Devices() []EnrolledDevice {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]EnrolledDevice, 0, len(c.devices))
	for _, d := range c.devices {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b EnrolledDevice) int { return a.Enrolled.Compare(b.Enrolled) })
	return out
}

func (c *ControlPlane) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if !c.decode(w, r, &req) {
		c.stats.enrollmentsFailed.Add(1)
		return
	}
	status, code, msg, resp := c.enroll(req)
	if status != http.StatusOK {
		c.stats.enrollmentsFailed.Add(1)
		c.fail(w, r, status, code, "%s", msg)
		return
	}
	c.stats.enrollments.Add(1)
	c.log.Info("device enrolled", "device", resp.DeviceID, "hostname", req.Hostname)
	writeJSON(w, http.StatusOK, resp)
}

// enroll checks an enrollment and, when it is good, records the device;
// it returns the HTTP status and, on failure, the error code and message.
func (c *ControlPlane) enroll(req api.EnrollRequest) (int, string, string, *api.EnrollResponse) {
	c.mu.Lock()
	used, known := c.enrollTok[req.Token]
	c.mu.Unlock()
	switch {
	case !known:
		return http.StatusUnauthorized, api.CodeUnauthorized, "invalid enrollment token", nil
	case used:
		return http.StatusUnauthorized, api.CodeUnauthorized, "invalid enrollment token: already used", nil
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return http.StatusBadRequest, api.CodeBadRequest, err.Error(), nil
	}
	kid, err := keyThumbprint(csr.PublicKey)
	if err != nil {
		return http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("csr: %v", err), nil
	}
	id := "dev-" + randomHex(8)
	cert, err := c.issueDeviceCert(id, csr.PublicKey)
	if err != nil {
		return http.StatusInternalServerError, api.CodeInternal, fmt.Sprintf("issue certificate: %v", err), nil
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enrollTok[req.Token] { // lost a race with the same token
		return http.StatusUnauthorized, api.CodeUnauthorized, "invalid enrollment token: already used", nil
	}
	if d := c.byKID[kid]; d != nil {
		return http.StatusConflict, api.CodeConflict, "key already enrolled", nil
	}
	c.enrollTok[req.Token] = true
	d := &EnrolledDevice{ID: id, Certificate: cert, PublicKey: csr.PublicKey, KeyID: kid, Hostname: req.Hostname, Enrolled: c.now()}
	c.devices[id] = d
	c.byKID[kid] = d

	ep := api.Endpoints{
		ControlPlaneURL: c.URL(),
		TokenURL:        c.TokenURL(),
		UpdateServerURL: c.opts.UpdateServerURL,
	}
	if c.opts.IoT != nil {
		iot := *c.opts.IoT
		if iot.ThingName == "" {
			iot.ThingName = id
		}
		ep.IoT = &iot
	}
	return http.StatusOK, "", "", &api.EnrollResponse{
		DeviceID:         id,
		CertificateChain: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		CABundle:         string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.opts.CA.Cert.Raw})),
		Endpoints:        ep,
	}
}

// parseCSR decodes a PEM CSR, checks its signature and its key: ECDSA
// P-256 or RSA of at least 2048 bits.
func parseCSR(s string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New(`csr: no PEM "CERTIFICATE REQUEST" block`)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: signature: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("csr: ECDSA key on %s, want P-256", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("csr: RSA key of %d bits, want at least 2048", k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("csr: %T key, want ECDSA P-256 or RSA", csr.PublicKey)
	}
	return csr, nil
}

// issueDeviceCert signs a client certificate for pub with the device ID
// as common name.
func (c *ControlPlane) issueDeviceCert(id string, pub crypto.PublicKey) (*x509.Certificate, error) {
	ca := c.opts.CA
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id, Organization: []string{"edgefort dev devices"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(deviceCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// keyThumbprint is the RFC 7638 JWK thumbprint of pub: SHA-256,
// base64url without padding.
func keyThumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
