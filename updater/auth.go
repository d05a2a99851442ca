package updater

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"

	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/internal/retryafter"
)

// maxJWT caps the size of the token the server returns. Mender's JWTs are
// under 1 KiB (a few claims, an RS256 or EdDSA signature); the token is
// sent back in a header on every call.
const maxJWT = 64 << 10

// authRequest is the auth request body, in the field order Mender's Go
// client sends. IDData is the identity map encoded as a JSON string.
type authRequest struct {
	IDData      string `json:"id_data"`
	TenantToken string `json:"tenant_token"`
	PubKey      string `json:"pubkey"`
}

// Authenticate sends the auth request and stores the JWT the server
// returns. A 401 (device pending or rejected, or a bad signature) gives
// ErrUnauthorized with the server's message.
func (c *Client) Authenticate(ctx context.Context) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if err := c.authenticateLocked(ctx); err != nil {
		return fmt.Errorf("updater: authenticate: %w", err)
	}
	return nil
}

func (c *Client) authenticateLocked(ctx context.Context) error {
	body, err := json.Marshal(authRequest{IDData: c.idData, TenantToken: c.tenant, PubKey: c.pubPEM})
	if err != nil {
		return err
	}
	sig, err := signBody(c.key, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.server+pathAuth, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-MEN-Signature", base64.StdEncoding.EncodeToString(sig))
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		defer resp.Body.Close()
		b, err := httpbody.Read(resp, maxJWT, "token")
		if err != nil {
			return err
		}
		jwt := strings.TrimSpace(string(b))
		if jwt == "" {
			return fmt.Errorf("server returned an empty token")
		}
		c.mu.Lock()
		c.jwt = jwt
		c.mu.Unlock()
		c.log.Debug("updater: authenticated")
		return nil
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: %w", ErrUnauthorized, statusError(resp))
	case http.StatusTooManyRequests:
		drain(resp)
		return &RetryAfterError{After: retryafter.FromHeader(resp.Header, c.now())}
	default:
		return statusError(resp)
	}
}

// signBody signs the exact request body as the device auth service
// verifies it: RSA PKCS#1 v1.5 over SHA-256, ECDSA ASN.1 DER over SHA-256,
// or pure Ed25519 over the body itself.
func signBody(key crypto.Signer, body []byte) ([]byte, error) {
	switch key.Public().(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		sum := sha256.Sum256(body)
		// crypto.Signer for ECDSA returns ASN.1 DER; for RSA, PKCS#1 v1.5
		// when given a plain hash (not *rsa.PSSOptions).
		return key.Sign(rand.Reader, sum[:], crypto.SHA256)
	case ed25519.PublicKey:
		return key.Sign(rand.Reader, body, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("unsupported device key type %T", key.Public())
	}
}

// publicKeyPEM encodes the signer's public key as PKIX PEM.
func publicKeyPEM(key crypto.Signer) (string, error) {
	switch key.Public().(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return "", fmt.Errorf("unsupported device key type %T", key.Public())
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", fmt.Errorf("device public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
