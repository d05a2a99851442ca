package jwtauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
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
	// Leeway is the clock skew allowed for exp, nbf and iat. Zero means
	// the default, 30s; at most 5m.
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

// Cache bounds the verified-token cache. An entry lasts until the token's
// exp, and only while the key that verified it stays in the key set (a key
// dropped from the JWK Set takes its tokens along at the refresh that
// drops it); the least recently used entry goes when the cache is full.
type Cache struct {
	// Enabled turns the cache on. Default true.
	Enabled *bool `yaml:"enabled"`
	// Size is the most tokens kept. Default 10000.
	Size int `yaml:"size"`
}

// Defaults of the fields left zero.
const (
	DefaultName            = "jwt"
	DefaultJWKSRefresh     = time.Hour
	DefaultJWKSMinInterval = 30 * time.Second
	DefaultLeeway          = 30 * time.Second
	DefaultMaxTokenBytes   = 8192
	DefaultUserIDClaim     = "sub"
	DefaultGroupsClaim     = "groups"
	DefaultCacheSize       = 10000
	// MaxLeeway bounds Leeway: a larger skew is a clock to fix, not to
	// tolerate.
	MaxLeeway = 5 * time.Minute
)

// DefaultAlgorithms are the algorithms allowed when none are configured.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512"}

// allowedAlgorithms are the asymmetric algorithms a configuration may
// list, each with the key type that verifies it. HMAC and "none" are not
// here, so no configuration can let a public key serve as an HMAC secret.
var allowedAlgorithms = map[string]keyType{
	"RS256": keyRSA, "RS384": keyRSA, "RS512": keyRSA,
	"PS256": keyRSA, "PS384": keyRSA, "PS512": keyRSA,
	"ES256": keyP256, "ES384": keyP384, "ES512": keyP521,
	"EdDSA": keyEd25519,
}

// withDefaults returns c with every zero field set to its default; it
// changes nothing else and checks nothing.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.JWKSMinInterval == 0 {
		c.JWKSMinInterval = DefaultJWKSMinInterval
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.Claims.UserID == "" {
		c.Claims.UserID = DefaultUserIDClaim
	}
	if c.Claims.Groups == "" {
		c.Claims.Groups = DefaultGroupsClaim
	}
	if c.Claims.DirectoryValue == "" {
		c.Claims.DirectoryValue = c.Issuer
	}
	if c.Cache.Size == 0 {
		c.Cache.Size = DefaultCacheSize
	}
	return c
}

// cacheEnabled is Cache.Enabled with its default, true.
func (c Config) cacheEnabled() bool { return c.Cache.Enabled == nil || *c.Cache.Enabled }

// Validate checks the settings that need neither files nor the network;
// zero fields stand for their defaults. Every problem is a *auth.FieldError
// named relative to the jwt entry, all of them joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &auth.FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if c.Issuer == "" {
		bad("issuer", "required: tokens are only accepted from a named issuer")
	}
	if len(c.Audience) == 0 {
		bad("audience", "required: tokens must name this node's audience")
	}
	for i, a := range c.Audience {
		if a == "" {
			bad(fmt.Sprintf("audience[%d]", i), "empty")
		}
	}
	if len(c.KeyFiles) == 0 && c.JWKSURL == "" {
		bad("key_files", "key_files or jwks_url (or both) required: there is no key to verify tokens with")
	}
	for i, f := range c.KeyFiles {
		if f == "" {
			bad(fmt.Sprintf("key_files[%d]", i), "empty")
		}
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		switch {
		case err != nil:
			bad("jwks_url", "%w", err)
		case u.Scheme != "https":
			bad("jwks_url", "%q: must be an https URL (keys fetched in clear could be replaced on the way)", c.JWKSURL)
		case u.Hostname() == "":
			bad("jwks_url", "%q: no host", c.JWKSURL)
		case u.User != nil:
			bad("jwks_url", "credentials in the URL are not supported")
		}
	}
	for i, a := range c.Algorithms {
		if _, ok := allowedAlgorithms[a]; ok {
			continue
		}
		field := fmt.Sprintf("algorithms[%d]", i)
		switch {
		case strings.EqualFold(a, "none"):
			bad(field, "%q: unsigned tokens are never accepted", a)
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			bad(field, "%q: HMAC is refused: the verification key would be a shared secret, and a public key must never serve as one", a)
		default:
			bad(field, "%q: not an allowed algorithm (allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", a)
		}
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		bad("leeway", "%s: must be between 0 and %s", c.Leeway, MaxLeeway)
	}
	if c.JWKSRefresh < 0 {
		bad("jwks_refresh", "%s: must be positive", c.JWKSRefresh)
	}
	if c.JWKSMinInterval < 0 {
		bad("jwks_min_interval", "%s: must be positive", c.JWKSMinInterval)
	}
	if c.MaxTokenBytes < 0 {
		bad("max_token_bytes", "%d: must be positive", c.MaxTokenBytes)
	}
	if c.Cache.Size < 0 {
		bad("cache.size", "%d: must be positive", c.Cache.Size)
	}
	return errors.Join(errs...)
}
