package jwtauth

import (
	"time"

	"github.com/edgefort/edgefort/keystore"
)

// Config is one JWT solution: the configuration's
// clients.virtual_hosts[].authentication[].jwt entry (agent/config composes
// it through clientapi).
type Config struct {
	// Name identifies the solution in logs and metrics. Default "jwt".
	Name string `yaml:"name"`
	// Issuer is the iss every token must carry. Required.
	Issuer string `yaml:"issuer"`
	// Audience: a token's aud must contain one of these. Required.
	Audience []string `yaml:"audience"`
	// Algorithms allowed. Default [RS256, RS384, RS512]. Asymmetric
	// algorithms only (RS*, PS*, ES*, EdDSA): "none" and HMAC are refused
	// by the configuration, so a public key can never serve as an HMAC
	// secret.
	Algorithms []string `yaml:"algorithms"`
	// KeyFiles are PEM files of public keys or certificates. A key's kid
	// is the RFC 7638 thumbprint. KeyFiles or JWKSURL (or both) required.
	KeyFiles []string `yaml:"key_files"`
	// JWKSURL is an https URL serving a JWK Set. Cached; refreshed every
	// JWKSRefresh, and at once (at most every JWKSMinInterval) when a
	// token names an unknown kid; the last good set is kept when the URL
	// fails.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSSSL is the TLS block for JWKSURL (truststore, client
	// certificate, name check), as for a target endpoint.
	JWKSSSL keystore.SSL `yaml:"jwks_ssl"`
	// JWKSRefresh is how often the JWK Set is fetched again. Default 1h.
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	// JWKSMinInterval bounds fetches caused by unknown kids. Default 30s.
	JWKSMinInterval time.Duration `yaml:"jwks_min_interval"`
	// Leeway is the clock skew allowed for exp, nbf and iat. Default 30s,
	// at most 5m.
	Leeway time.Duration `yaml:"leeway"`
	// MaxTokenBytes refuses longer tokens unread. Default 8192.
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// Cookie, when set, is a cookie that may carry the token when no
	// Authorization: Bearer header does.
	Cookie string `yaml:"cookie"`
	// Claims maps token claims to the user.
	Claims Claims `yaml:"claims"`
	// Cache keeps verified tokens by their hash until exp, so that repeat
	// requests skip the signature check.
	Cache Cache `yaml:"cache"`
}

// Claims names the claims an identity is taken from.
type Claims struct {
	// UserID claim. Default "sub".
	UserID string `yaml:"user_id"`
	// Directory claim. Default: none (DirectoryValue is used).
	Directory string `yaml:"directory"`
	// DirectoryValue is the directory when no Directory claim is set or
	// the token lacks it. Default: the issuer.
	DirectoryValue string `yaml:"directory_value"`
	// Groups claim (a string or a list of strings). Default "groups".
	Groups string `yaml:"groups"`
}

// Cache bounds the verified-token cache.
type Cache struct {
	// Enabled turns the cache on. Default true.
	Enabled *bool `yaml:"enabled"`
	// Size is the most tokens kept. Default 10000.
	Size int `yaml:"size"`
}
