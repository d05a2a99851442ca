package devcloud

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// AuthStatus is the state of a device's authentication set.
type AuthStatus string

// The auth set states.
const (
	AuthPending  AuthStatus = "pending"
	AuthAccepted AuthStatus = "accepted"
	AuthRejected AuthStatus = "rejected"
)

// AuthSet is one (identity, key) pair a device authenticated with.
type AuthSet struct {
	DeviceID string // MenderDeviceID(IDData)
	IDData   string // the id_data string as sent
	PubKey   string // the PEM as sent
	Status   AuthStatus
}

type authSet struct {
	AuthSet
	key crypto.PublicKey
}

// MenderDeviceID is the device ID the server gives the device with this
// id_data: the first 16 bytes of its SHA-256, in hex. It is the JWT's sub.
func MenderDeviceID(idData string) string {
	sum := sha256.Sum256([]byte(idData))
	return hex.EncodeToString(sum[:16])
}

func authSetKey(idData, pubPEM string) string { return idData + "\x00" + pubPEM }

// authRequest is the body of POST .../authentication/auth_requests.
type authRequest struct {
	IDData      string `json:"id_data"`
	PubKey      string `json:"pubkey"`
	TenantToken string `json:"tenant_token"`
}

func (s *MenderServer) handleAuth(w http.ResponseWriter, r *http.Request) {
	if s.inject(w, r, EndpointAuth) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req authRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.errorf(w, r, http.StatusBadRequest, "decode auth request: %v", err)
		return
	}
	if req.IDData == "" || req.PubKey == "" {
		s.errorf(w, r, http.StatusBadRequest, "auth request: id_data and pubkey are required")
		return
	}
	if !json.Valid([]byte(req.IDData)) {
		s.errorf(w, r, http.StatusBadRequest, "auth request: id_data is not JSON")
		return
	}
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get("X-MEN-Signature"))
	if err != nil || len(sig) == 0 {
		s.errorf(w, r, http.StatusBadRequest, "auth request: missing or bad X-MEN-Signature")
		return
	}
	pub, err := parsePublicKeyPEM(req.PubKey)
	if err != nil {
		s.errorf(w, r, http.StatusBadRequest, "auth request: %v", err)
		return
	}
	if err := verifyAuthSignature(pub, body, sig); err != nil {
		s.errorf(w, r, http.StatusUnauthorized, "auth request: %v", err)
		return
	}
	certMatch := false
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		certMatch = publicKeysEqual(r.TLS.PeerCertificates[0].PublicKey, pub)
	}

	s.mu.Lock()
	k := authSetKey(req.IDData, req.PubKey)
	as := s.authSets[k]
	if as == nil {
		st := AuthAccepted
		if s.opts.ManualAccept && !certMatch {
			st = AuthPending
		}
		as = &authSet{AuthSet: AuthSet{DeviceID: MenderDeviceID(req.IDData), IDData: req.IDData, PubKey: req.PubKey, Status: st}, key: pub}
		s.authSets[k] = as
	} else if as.Status == AuthPending && certMatch {
		as.Status = AuthAccepted
	}
	st, id := as.Status, as.DeviceID
	s.mu.Unlock()

	if st != AuthAccepted {
		s.errorf(w, r, http.StatusUnauthorized, "device %s is %s", id, st)
		return
	}
	tok, err := s.signJWT(id, req.TenantToken)
	if err != nil {
		s.errorf(w, r, http.StatusInternalServerError, "sign token: %v", err)
		return
	}
	s.log.Info("mender device authenticated", "device_id", id)
	w.Header().Set("Content-Type", "application/jwt")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(tok))
}

func parsePublicKeyPEM(s string) (crypto.PublicKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("pubkey is not a PEM PUBLIC KEY")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse pubkey: %w", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported pubkey type %T", pub)
}

// verifyAuthSignature checks X-MEN-Signature over the raw body: RSA
// PKCS#1 v1.5 SHA-256, ECDSA SHA-256 ASN.1 DER, or pure Ed25519.
func verifyAuthSignature(pub crypto.PublicKey, body, sig []byte) error {
	sum := sha256.Sum256(body)
	ok := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, sum[:], sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, body, sig)
	}
	if !ok {
		return errors.New("signature verification failed")
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

// jwtClaims are the claims of a device token, as Mender's deviceauth
// issues them.
type jwtClaims struct {
	Subject string `json:"sub"`
	ID      string `json:"jti"`
	Issuer  string `json:"iss"`
	Expires int64  `json:"exp"`
	Issued  int64  `json:"iat"`
	Device  bool   `json:"mender.device"`
	Tenant  string `json:"mender.tenant,omitempty"`
}

const jwtIssuer = "edgefort-devcloud"

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT"}`))

// signJWT makes an EdDSA-signed device token for deviceID.
func (s *MenderServer) signJWT(deviceID, tenant string) (string, error) {
	now := s.now()
	c, err := json.Marshal(jwtClaims{
		Subject: deviceID, ID: newID(), Issuer: jwtIssuer,
		Expires: now.Add(s.opts.JWTLifetime).Unix(), Issued: now.Unix(),
		Device: true, Tenant: tenant,
	})
	if err != nil {
		return "", err
	}
	signed := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(c)
	sig := ed25519.Sign(s.jwtKey, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// verifyJWT checks a device token's signature, issuer, expiry and claims
// and returns the device ID.
func (s *MenderServer) verifyJWT(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return "", errors.New("malformed token")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || !ed25519.Verify(s.jwtKey.Public().(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig) {
		return "", errors.New("bad token signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("malformed token claims")
	}
	var c jwtClaims
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&c); err != nil {
		return "", errors.New("malformed token claims")
	}
	if c.Issuer != jwtIssuer || !c.Device || c.Subject == "" {
		return "", errors.New("not a device token")
	}
	if !s.now().Before(time.Unix(c.Expires, 0)) {
		return "", errors.New("token expired")
	}
	return c.Subject, nil
}

type deviceIDKey struct{}

// device wraps a device endpoint: faults, then the JWT (401 when missing,
// bad, expired, or the device no longer has an accepted auth set).
func (s *MenderServer) device(ep Endpoint, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.inject(w, r, ep) {
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			s.errorf(w, r, http.StatusUnauthorized, "missing bearer token")
			return
		}
		id, err := s.verifyJWT(strings.TrimSpace(tok))
		if err == nil && !s.deviceAccepted(id) {
			err = errors.New("device not accepted")
		}
		if err != nil {
			s.errorf(w, r, http.StatusUnauthorized, "%v", err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), deviceIDKey{}, id)))
	}
}

func requestDeviceID(r *http.Request) string {
	id, _ := r.Context().Value(deviceIDKey{}).(string)
	return id
}

func (s *MenderServer) deviceAccepted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, as := range s.authSets {
		if as.DeviceID == id && as.Status == AuthAccepted {
			return true
		}
	}
	return false
}

// AuthSets lists every auth set the server has seen.
func (s *MenderServer) AuthSets() []AuthSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AuthSet, 0, len(s.authSets))
	for _, as := range s.authSets {
		out = append(out, as.AuthSet)
	}
	return out
}

// SetAuthStatus sets the status of every auth set of deviceID (accepting
// or rejecting the device). A device whose sets are no longer accepted gets
// 401 with its current token. It fails if the device is unknown.
func (s *MenderServer) SetAuthStatus(deviceID string, st AuthStatus) error {
	switch st {
	case AuthPending, AuthAccepted, AuthRejected:
	default:
		return fmt.Errorf("set auth status: unknown status %q", st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, as := range s.authSets {
		if as.DeviceID == deviceID {
			as.Status, found = st, true
		}
	}
	if !found {
		return fmt.Errorf("set auth status: unknown device %q", deviceID)
	}
	return nil
}
