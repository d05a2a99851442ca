package backendjwt

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Defaults and limits of Config.
const (
	DefaultHeader = "X-Edgefort-Identity"
	DefaultTTL    = 60 * time.Second
	MinTTL        = 10 * time.Second
	MaxTTL        = 10 * time.Minute
)

// Config is the identity JWT a virtual host hands to its backends: the
// configuration's clients.virtual_hosts[].identity.jwt entry (clientapi
// composes it).
type Config struct {
	// Keystore holds the signing key: a keystore name or ref://NAME.
	// Required. Through a reference, repointing it rotates the signing key
	// at the next token, with no restart.
	Keystore string `yaml:"keystore"`
	// KeyAlias is the entry of Keystore whose key signs. "" means the
	// keystore's only entry. RSA keys sign RS256, ECDSA P-256 keys ES256.
	KeyAlias string `yaml:"key_alias"`
	// Header carries the token to the backend. Default
	// X-Edgefort-Identity. Whatever a client sends in it is replaced.
	Header string `yaml:"header"`
	// TTL is the token's lifetime (exp - iat). Default 60s, from 10s to
	// 10m. A token is reused for the same identity until half of it has
	// passed.
	TTL time.Duration `yaml:"ttl"`
	// Audience is the aud claim. Default: none (no aud claim).
	Audience string `yaml:"audience"`
	// Issuer is the iss claim. Default: the one the caller gives
	// (Deps.Issuer, the node's identity).
	Issuer string `yaml:"issuer"`
}

// withDefaults returns cfg with its zero fields set to their defaults;
// issuer is the caller's default for Issuer.
func (c Config) withDefaults(issuer string) Config {
	if c.Header == "" {
		c.Header = DefaultHeader
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Issuer == "" {
		c.Issuer = issuer
	}
	return c
}

// Validate reports every setting that cannot be used, each as an
// *auth.FieldError named relative to this section ("ttl"). Zero fields
// stand for their defaults; it changes nothing.
func (c Config) Validate() error {
	var errs []error
	add := func(field string, err error) { errs = append(errs, &auth.FieldError{Field: field, Err: err}) }
	switch {
	case c.Keystore == "":
		add("keystore", errors.New("required: the keystore (or ref://NAME) whose key signs the identity tokens"))
	case strings.TrimPrefix(c.Keystore, "ref://") == "":
		add("keystore", fmt.Errorf("%q names no reference", c.Keystore))
	}
	if c.Header != "" && !isToken(c.Header) {
		add("header", fmt.Errorf("%q is not a valid HTTP header name", c.Header))
	}
	if hop := http.CanonicalHeaderKey(c.Header); hop == "Connection" || hop == "Host" || hop == "Authorization" || hop == "Cookie" || hop == "Upgrade" || hop == "Te" || hop == "Transfer-Encoding" || hop == "Content-Length" {
		add("header", fmt.Errorf("%q is a header the proxy itself manages; pick another (default %s)", c.Header, DefaultHeader))
	}
	if c.TTL != 0 && (c.TTL < MinTTL || c.TTL > MaxTTL) {
		add("ttl", fmt.Errorf("%s: must be from %s to %s", c.TTL, MinTTL, MaxTTL))
	}
	if strings.TrimSpace(c.Audience) != c.Audience {
		add("audience", fmt.Errorf("%q has surrounding spaces", c.Audience))
	}
	if strings.TrimSpace(c.Issuer) != c.Issuer {
		add("issuer", fmt.Errorf("%q has surrounding spaces", c.Issuer))
	}
	return errors.Join(errs...)
}

// isToken reports whether s is an RFC 9110 token, the syntax of a header
// name.
func isToken(s string) bool {
	for _, r := range s {
		if r >= 0x80 || !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return s != ""
}
